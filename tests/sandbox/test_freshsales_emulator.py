"""The Freshsales sandbox answers in Freshsales' wire format (checked against crm-reference §7, §11.7).

Plain HTTP on loopback (the emulator serves TLS in `make run`; the wire format is the same).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
import requests

from integrations.sandbox.core import EmulatorServer
from integrations.sandbox.freshsales import FreshsalesEmulator, FreshsalesProbe, build
from integrations.sandbox.registry import SANDBOXES

API = "/crm/sales/api"


@pytest.fixture
def app():
    emulator = build(client_id="ignored", client_secret="ignored", redirect_uris=[])
    with EmulatorServer(emulator):
        yield emulator


@pytest.fixture
def api(app):
    key = app.issue_api_key()
    session = requests.Session()
    session.headers["Authorization"] = f"Token token={key}"

    def call(method: str, path: str, prefix: str = API, **kwargs) -> requests.Response:
        return session.request(method, f"{app.base_url}{prefix}{path}", timeout=5, **kwargs)

    return call


def contact(email: str, **attrs) -> dict:
    return {"contact": {"first_name": "Ann", "emails": [{"value": email, "is_primary": True}], **attrs}}


def test_it_is_a_registered_tls_sandbox():
    [spec] = [s for s in SANDBOXES if s.name == "freshsales"]
    assert spec.port == 8107 and spec.tls and spec.factory == "integrations.sandbox.freshsales:build"


def test_only_the_token_scheme_is_accepted(app, api):
    key = app.issue_api_key()
    url = f"{app.base_url}{API}/selector/owners"
    assert requests.get(url, headers={"Authorization": f"Token token={key}"}, timeout=5).status_code == 200
    for header in (f"Bearer {key}", f"Token {key}", "Token token=wrong", ""):
        refused = requests.get(url, headers={"Authorization": header}, timeout=5)
        assert refused.status_code == 401
        assert refused.json() == {"errors": {"code": 401, "message": ["Incorrect or expired API key"]}}


def test_contacts_are_wrapped_in_their_root_key_and_upsert_says_created_or_updated(app, api):
    created = api(
        "POST", "/contacts/upsert", json={"unique_identifier": {"emails": "a@example.com"}, **contact("a@example.com")}
    )
    assert created.status_code == 201
    record = created.json()["contact"]
    assert isinstance(record["id"], int) and record["email"] == "a@example.com"
    assert record["emails"][0] == {**record["emails"][0], "value": "a@example.com", "is_primary": True}
    updated = api(
        "POST",
        "/contacts/upsert",
        json={"unique_identifier": {"emails": "A@example.com"}, "contact": {"job_title": "CTO"}},
    )
    assert updated.status_code == 200 and updated.json()["contact"]["id"] == record["id"]
    assert api("GET", f"/contacts/{record['id']}").json()["contact"]["job_title"] == "CTO"
    assert (
        api("PUT", f"/contacts/{record['id']}", json={"contact": {"last_name": "Lee"}}).json()["contact"][
            "display_name"
        ]
        == "Ann Lee"
    )
    assert api("DELETE", f"/contacts/{record['id']}").status_code == 200
    missing = api("GET", f"/contacts/{record['id']}")
    assert missing.status_code == 404 and missing.json()["errors"]["code"] == 404


def test_errors_use_the_errors_body(app, api):
    api("POST", "/contacts", json=contact("a@example.com"))
    duplicate = api("POST", "/contacts", json=contact("a@example.com"))
    assert duplicate.status_code == 400
    assert duplicate.json() == {"errors": {"code": 400, "message": ["Email already exists"]}}
    assert api("POST", "/contacts", json={"first_name": "no root"}).status_code == 400
    unknown = api("POST", "/contacts", json=contact("b@example.com", custom_field={"cf_nope": 1}))
    assert unknown.json()["errors"]["message"] == ["Invalid custom field cf_nope"]


def test_the_legacy_api_prefix_is_served_too(api):
    assert api("GET", "/selector/owners", prefix="/api").json()["users"][0]["display_name"] == "Sandbox Admin"


def test_lookup_search_views_and_filtered_search(app, api):
    ids = [api("POST", "/contacts", json=contact(f"p{i}@example.com")).json()["contact"]["id"] for i in range(3)]
    found = api("GET", "/lookup", params={"q": "p1@example.com", "f": "email", "entities": "contact"}).json()
    assert [c["id"] for c in found["contacts"]["contacts"]] == [ids[1]]
    assert {r["id"] for r in api("GET", "/search", params={"q": "p2@", "include": "contact"}).json()} == {ids[2]}
    views = api("GET", "/contacts/filters").json()["filters"]
    assert views[0]["name"] == "All Contacts"
    page = api(
        "GET",
        f"/contacts/view/{views[0]['id']}",
        params={"sort": "updated_at", "sort_type": "asc", "per_page": 2, "page": 2},
    ).json()
    assert page["meta"] == {"total": 3, "total_pages": 2} and [c["id"] for c in page["contacts"]] == [ids[2]]
    rule = {"filter_rule": [{"attribute": "contact_email.email", "operator": "is_in", "value": "p0@example.com"}]}
    assert [c["id"] for c in api("POST", "/filtered_search/contact", json=rule).json()["contacts"]] == [ids[0]]


def test_fields_list_custom_fields_with_choices(app, api):
    app.add_custom_field("contacts", "Capsule grade", "dropdown", choices=("A", "B"))
    fields = {f["name"]: f for f in api("GET", "/settings/contacts/fields").json()["fields"]}
    grade = fields["cf_capsule_grade"]
    assert grade["base_model"] == "Contact" and [c["value"] for c in grade["choices"]] == ["A", "B"]
    assert fields["first_name"]["default"] and not grade["default"]
    assert "name" in {f["name"] for f in api("GET", "/settings/deals/fields").json()["fields"]}


def test_notes_tasks_sales_activities_and_deals(app, api):
    contact_id = api("POST", "/contacts", json=contact("a@example.com")).json()["contact"]["id"]
    target = {"targetable_type": "Contact", "targetable_id": contact_id}
    note = api("POST", "/notes", json={"note": {"description": "hi", **target}})
    assert note.status_code == 201 and note.json()["note"]["description"] == "hi"
    task = api("POST", "/tasks", json={"task": {"title": "Call", "due_date": "2030-01-01T10:00:00Z", **target}})
    assert task.status_code == 201
    kinds = api("GET", "/selector/sales_activity_types").json()["sales_activity_types"]
    activity = api(
        "POST",
        "/sales_activities",
        json={
            "sales_activity": {
                "title": "Demo",
                "sales_activity_type_id": kinds[0]["id"],
                "start_date": "2030-01-01T10:00:00Z",
                "end_date": "2030-01-01T10:30:00Z",
                **target,
            }
        },
    )
    assert activity.status_code == 201
    assert (
        api(
            "POST", "/notes", json={"note": {"description": "x", "targetable_type": "Contact", "targetable_id": 1}}
        ).status_code
        == 404
    )
    shown = api("GET", f"/contacts/{contact_id}", params={"include": "notes,tasks,sales_activities"}).json()
    assert [len(shown[k]) for k in ("notes", "tasks", "sales_activities")] == [1, 1, 1]
    stages = api("GET", "/selector/deal_stages").json()["deal_stages"]
    deal = api(
        "POST",
        "/deals",
        json={
            "deal": {"name": "Big", "amount": 10, "deal_stage_id": stages[1]["id"], "contacts_added_list": [contact_id]}
        },
    )
    assert deal.status_code == 201 and deal.json()["deal"]["contact_ids"] == [contact_id]
    assert api("POST", "/deals", json={"deal": {"amount": 1}}).json()["errors"]["message"] == ["Name can't be blank"]


def test_hourly_and_per_minute_quotas_answer_429_with_headers(app, api):
    first = api("GET", "/selector/owners")
    assert first.headers["x-ratelimit-limit"] == "1000" and first.headers["x-ratelimit-remaining"] == "999"
    assert first.headers["per-min-x-ratelimit-limit"] == "400"
    app.set_limits(per_minute=1)
    api("GET", "/selector/owners")
    refused = api("GET", "/selector/owners")
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    assert refused.json()["errors"]["code"] == 429 and refused.headers["per-min-x-ratelimit-remaining"] == "0"
    app.set_limits(per_minute=100, hourly=1)
    api("GET", "/selector/owners")
    assert "per hour" in api("GET", "/selector/owners").json()["errors"]["message"][0]
    assert app.rate_limited_count == 2 and app.state()["rate_limited"] == 2


def test_faults_and_counters(app, api):
    app.faults.inject("server_error")
    assert api("GET", "/selector/owners").status_code == 500
    app.faults.inject("expire_token")
    assert api("GET", "/selector/owners").status_code == 401
    app.faults.inject("drop")
    with pytest.raises(requests.ConnectionError):
        api("GET", "/selector/owners")
    assert api("GET", "/selector/owners").status_code == 200
    assert app.api_calls == 1
    app.reset()
    assert app.api_calls == 0 and app.records("contacts") == []


def test_the_workflow_webhook_sender_posts_the_documented_body_with_the_secret_header(app, api):
    contact_id = api("POST", "/contacts", json=contact("a@example.com")).json()["contact"]["id"]
    received: list[tuple[dict, dict]] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((json.loads(body), dict(self.headers)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            return

    server = HTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.handle_request, daemon=True)
    thread.start()
    delivery = app.webhooks.send(f"http://127.0.0.1:{server.server_port}/hook", "contact", contact_id, secret="s3")
    thread.join(5)
    server.server_close()
    assert delivery.status == 204
    [(body, headers)] = received
    assert body["entity"] == "contact" and body["id"] == contact_id and body["email"] == "a@example.com"
    assert headers["X-Capsule-Webhook-Secret"] == "s3"


def test_the_probe_reads_people_and_keys(app, api):
    contact_id = api("POST", "/contacts", json=contact("A@example.com")).json()["contact"]["id"]
    api(
        "POST",
        "/notes",
        json={
            "note": {
                "description": "x\n\nCapsule key: capsule-evt-1",
                "targetable_type": "Contact",
                "targetable_id": contact_id,
            }
        },
    )
    probe = FreshsalesProbe()
    assert probe.people(app) == [(str(contact_id), "a@example.com")]
    assert probe.engagement_keys(app) == ["capsule-evt-1"]
    assert probe.first_name(app, str(contact_id)) == "Ann"
    assert isinstance(app, FreshsalesEmulator) and probe.api_calls(app) == 2
