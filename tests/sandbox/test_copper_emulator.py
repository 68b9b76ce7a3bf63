"""The Copper sandbox speaks Copper's Developer API v1 as crm-reference §6 describes it.

Copper publishes no OpenAPI document (§6.8), so answers are checked against the reference's
facts: the object shapes of §6.2 to §6.4, Unix-second times, the error body of §6.6. No database:
these tests start the emulator on loopback and talk to it with ``requests``.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from integrations.sandbox.copper import CopperEmulator, CopperProbe, build
from integrations.sandbox.core import EmulatorServer

REDIRECT = "http://127.0.0.1:8000/oauth/callback/copper/"
CLIENT_ID, CLIENT_SECRET = "copper-test-client", "copper-test-secret"
API = "/developer_api/v1"
# The person object of §6.2: every key Copper documents.
PERSON_KEYS = {
    "id", "name", "first_name", "last_name", "prefix", "middle_name", "suffix", "address", "assignee_id",
    "company_id", "company_name", "contact_type_id", "details", "emails", "phone_numbers", "socials", "websites",
    "tags", "title", "custom_fields", "date_created", "date_modified", "interaction_count",
}  # fmt: skip


class Client:
    """A tiny Copper client: the three X-PW headers (or a Bearer token) and JSON bodies."""

    def __init__(self, base_url: str, key: str | None = None, email: str | None = None, bearer: str | None = None):
        self.base_url = base_url
        self.session = requests.Session()
        self.session.trust_env = False
        self.headers = {"X-PW-Application": "developer_api", "Content-Type": "application/json"}
        if bearer:
            self.headers["Authorization"] = f"Bearer {bearer}"
        else:
            self.headers.update({"X-PW-AccessToken": key or "", "X-PW-UserEmail": email or ""})

    def call(self, method: str, path: str, body=None, headers=None, **kwargs) -> requests.Response:
        merged = {**self.headers, **(headers or {})}
        merged = {k: v for k, v in merged.items() if v is not None}
        data = json.dumps(body) if body is not None else None
        return self.session.request(method, f"{self.base_url}{API}/{path}", data=data, headers=merged, **kwargs)

    def ok(self, method: str, path: str, body=None) -> object:
        response = self.call(method, path, body)
        assert response.status_code == 200, response.text
        return response.json()


def refused(response: requests.Response, status: int) -> str:
    """Copper's error body (§6.6): ``{"success": false, "status", "message"}``."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False and body["status"] == status and body["message"]
    return body["message"]


@pytest.fixture
def app() -> CopperEmulator:
    return build(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, redirect_uris=[REDIRECT], allow_http_targets=True)


@pytest.fixture
def server(app):
    with EmulatorServer(app) as running:
        yield running


@pytest.fixture
def client(app, server) -> Client:
    key, email = app.issue_api_key()
    return Client(server.url, key, email)


def new_person(client: Client, email: str = "ann@example.com", **body) -> dict:
    return client.ok("POST", "people", {"name": "Ann Lee", "emails": [{"email": email, "category": "work"}], **body})


# ---------------------------------------------------------------------------------------------
# Authentication


def test_every_request_needs_the_three_x_pw_headers(app, server, client):
    assert client.call("GET", "account").status_code == 200
    for missing in ("X-PW-AccessToken", "X-PW-UserEmail", "X-PW-Application"):
        assert "Unauthorized" in refused(client.call("GET", "account", headers={missing: None}), 401)
    refused(client.call("GET", "account", headers={"X-PW-Application": "other_api"}), 401)
    refused(client.call("GET", "account", headers={"X-PW-UserEmail": "someone@else.example.com"}), 401)
    refused(client.call("GET", "account", headers={"X-PW-AccessToken": "f" * 32}), 401)
    assert app.api_calls == 7  # refused calls count too


def test_the_email_is_the_key_owners_whatever_its_case(app, server):
    key, email = app.issue_api_key("Rep@Example.com")
    assert email == "rep@example.com"
    assert Client(server.url, key, "REP@example.com").call("GET", "users/me").json()["email"] == email


def test_a_partner_apps_bearer_token_needs_no_email(app, server):
    token = app.issue_oauth_token().access_token
    me = Client(server.url, bearer=token).ok("GET", "users/me")
    assert me == {"id": app.admin.id, "name": app.admin.name, "email": app.admin.email}
    refused(Client(server.url, bearer="not-a-token").call("GET", "account"), 401)


def test_a_body_must_be_json(client):
    response = client.call("POST", "people", {"name": "x"}, headers={"Content-Type": "text/plain"})
    refused(response, 415)
    assert (
        client.session.post(f"{client.base_url}{API}/people", data=b"{not json", headers=client.headers).status_code
        == 400
    )


def test_identity_names_the_account_and_the_user(app, client):
    assert client.ok("GET", "account") == {
        "id": app.account_id,
        "name": app.account_name,
        "primary_timezone": "Etc/UTC",
    }
    me = client.ok("GET", "users/me")
    assert client.ok("GET", f"users/{me['id']}")["email"] == app.admin.email


# ---------------------------------------------------------------------------------------------
# People and leads


def test_a_person_is_created_read_updated_and_deleted_in_coppers_shape(app, client):
    created = new_person(client, phone_numbers=[{"number": "+44 1", "category": "mobile"}], tags=["a"])
    assert set(created) == PERSON_KEYS | {"leads_converted_from"}
    assert isinstance(created["id"], int) and isinstance(created["date_created"], int)
    assert (created["first_name"], created["last_name"]) == ("Ann", "Lee")  # split from name
    assert created["emails"] == [{"email": "ann@example.com", "category": "work"}]
    assert client.ok("GET", f"people/{created['id']}") == created
    updated = client.ok("PUT", f"people/{created['id']}", {"title": "CTO", "tags": None})
    assert (updated["title"], updated["tags"], updated["phone_numbers"]) == ("CTO", [], created["phone_numbers"])
    assert updated["name"] == "Ann Lee"  # only what was sent changed
    assert client.ok("DELETE", f"people/{created['id']}") == {"id": created["id"], "is_deleted": True}
    refused(client.call("GET", f"people/{created['id']}"), 404)
    refused(client.call("PUT", f"people/{created['id']}", {"title": "x"}), 404)
    assert [(c.entity, c.event) for c in app.changes] == [("person", "new"), ("person", "update"), ("person", "delete")]


def test_name_is_required_and_rebuilt_from_its_parts(client):
    assert "name" in refused(client.call("POST", "people", {"emails": [{"email": "x@example.com"}]}), 422)
    person = new_person(client)
    renamed = client.ok("PUT", f"people/{person['id']}", {"first_name": "Anne", "last_name": "Leigh"})
    assert renamed["name"] == "Anne Leigh"


def test_email_is_unique_on_people(client):
    first = new_person(client, "dup@example.com")
    message = refused(client.call("POST", "people", {"name": "B", "emails": [{"email": "DUP@example.com"}]}), 422)
    assert message.startswith("Invalid input:") and "dup@example.com" in message
    other = new_person(client, "other@example.com")
    refused(client.call("PUT", f"people/{other['id']}", {"emails": [{"email": "dup@example.com"}]}), 422)
    # A person may keep their own address when updated.
    assert client.ok("PUT", f"people/{first['id']}", {"emails": [{"email": "dup@example.com"}]})["id"] == first["id"]
    refused(client.call("POST", "people", {"name": "C", "emails": [{"email": "not-an-address"}]}), 422)


def test_fetch_by_email_answers_the_person_or_404(client):
    person = new_person(client, "find@example.com")
    assert client.ok("POST", "people/fetch_by_email", {"email": "FIND@example.com"})["id"] == person["id"]
    refused(client.call("POST", "people/fetch_by_email", {"email": "nobody@example.com"}), 404)
    refused(client.call("POST", "people/fetch_by_email", {}), 422)


def test_people_search_filters_sorts_and_pages(app, client):
    ids = [new_person(client, f"s{n}@example.com", name=f"P {n}")["id"] for n in range(5)]
    app.set_modified("people", ids[:2], 1_000)
    app.set_modified("people", ids[2:], 2_000)
    body = {"minimum_modified_date": 1_500, "sort_by": "date_modified", "sort_direction": "asc", "page_size": 2}
    first = client.call("POST", "people/search", body)
    assert [p["id"] for p in first.json()] == ids[2:4] and first.headers["X-PW-TOTAL"] == "3"
    second = client.ok("POST", "people/search", {**body, "page_number": 2})
    assert [p["id"] for p in second] == ids[4:]
    assert [p["id"] for p in client.ok("POST", "people/search", {"emails": ["S1@example.com", "x@y.z"]})] == [ids[1]]
    desc = client.ok("POST", "people/search", {"sort_by": "date_modified", "sort_direction": "desc", "page_size": 1})
    assert desc[0]["id"] == ids[4]
    refused(client.call("POST", "people/search", {"page_size": 201}), 422)
    refused(client.call("POST", "people/search", {"sort_by": "id"}), 422)
    refused(client.call("POST", "people/search", {"minimum_modified_date": "yesterday"}), 422)


def test_leads_carry_one_email_and_may_share_it(client):
    first = client.ok("POST", "leads", {"name": "Lee One", "email": {"email": "lead@example.com", "category": "work"}})
    second = client.ok("POST", "leads", {"name": "Lee Two", "email": {"email": "lead@example.com"}})
    assert first["email"] == {"email": "lead@example.com", "category": "work"} and first["status"] == "New"
    found = client.ok("POST", "leads/search", {"emails": ["lead@example.com"], "sort_by": "date_created"})
    assert [lead["id"] for lead in found] == [first["id"], second["id"]]
    assert client.ok("PUT", f"leads/{first['id']}", {"status": "Qualified"})["status_id"] == 208_234
    refused(client.call("PUT", f"leads/{first['id']}", {"status": "Hot"}), 422)


# ---------------------------------------------------------------------------------------------
# Activities, tasks, opportunities


def test_activities_hang_off_people_and_are_searched_newest_first(client):
    person = new_person(client)
    types = client.ok("GET", "activity_types")
    note = next(t for t in types["user"] if t["name"] == "Note")
    assert note["id"] == 0 and note["category"] == "user" and types["system"]
    made = [
        client.ok(
            "POST",
            "activities",
            {
                "parent": {"type": "person", "id": person["id"]},
                "type": {"category": "user", "id": 0},
                "details": f"n{n}",
                "activity_date": 1_000 + n,
            },
        )
        for n in range(3)
    ]
    assert set(made[0]) >= {"id", "parent", "type", "user_id", "details", "activity_date", "date_created"}
    found = client.ok(
        "POST",
        "activities/search",
        {
            "parent": {"type": "person", "id": person["id"]},
            "activity_types": [{"category": "user", "id": 0}],
            "minimum_activity_date": 1_001,
            "maximum_activity_date": 1_002,
        },
    )
    assert [a["details"] for a in found] == ["n2", "n1"]
    refused(
        client.call(
            "POST", "activities", {"parent": {"type": "person", "id": 1}, "type": {"category": "user", "id": 0}}
        ),
        422,
    )
    refused(
        client.call(
            "POST",
            "activities",
            {"parent": {"type": "person", "id": person["id"]}, "type": {"category": "system", "id": 1}},
        ),
        422,
    )
    assert client.ok("DELETE", f"activities/{made[0]['id']}")["is_deleted"] is True


def test_tasks_relate_to_a_record_and_check_their_fields(client):
    person = new_person(client)
    task = client.ok(
        "POST",
        "tasks",
        {"name": "Call", "related_resource": {"type": "person", "id": person["id"]}, "due_date": 1_700_000_000},
    )
    assert (task["status"], task["priority"], task["due_date"]) == ("Open", "None", 1_700_000_000)
    done = client.ok("PUT", f"tasks/{task['id']}", {"status": "Completed"})
    assert done["completed_date"] is not None
    refused(client.call("POST", "tasks", {"name": "x", "related_resource": {"type": "person", "id": 5}}), 422)
    refused(client.call("POST", "tasks", {"name": "x", "status": "Done"}), 422)


def test_opportunities_get_the_default_pipeline_and_check_dates_and_contacts(app, client):
    person = new_person(client)
    deal = client.ok(
        "POST",
        "opportunities",
        {
            "name": "Deal",
            "primary_contact_id": person["id"],
            "close_date": "03/01/2025",
            "monetary_value": 10,
            "monetary_unit": "EUR",
        },
    )
    [pipeline] = client.ok("GET", "pipelines")
    assert deal["pipeline_id"] == pipeline["id"] and deal["pipeline_stage_id"] == pipeline["stages"][0]["id"]
    assert deal["status"] == "Open"
    refused(client.call("POST", "opportunities", {"name": "x", "close_date": "2025-03-01"}), 422)
    refused(client.call("POST", "opportunities", {"name": "x", "primary_contact_id": 42}), 422)
    refused(client.call("POST", "opportunities", {"name": "x", "pipeline_stage_id": 1}), 422)
    refused(client.call("POST", "opportunities", {"name": "x", "monetary_unit": "XYZ"}), 422)
    refused(client.call("POST", "opportunities", {"name": "x", "status": "Maybe"}), 422)
    assert client.ok("POST", "opportunities/search", {"primary_contact_ids": [person["id"]]})[0]["id"] == deal["id"]


# ---------------------------------------------------------------------------------------------
# Custom fields


def test_custom_field_definitions_and_their_values(app, client):
    tier = client.ok(
        "POST",
        "custom_field_definitions",
        {"name": "Tier", "data_type": "Dropdown", "available_on": ["person"], "options": [{"name": "Gold"}]},
    )
    gold = tier["options"][0]["id"]
    assert set(tier) >= {"id", "name", "data_type", "available_on", "options"} and tier["options"][0]["rank"] == 0
    score = client.ok(
        "POST", "custom_field_definitions", {"name": "Score", "data_type": "Float", "available_on": ["person", "lead"]}
    )
    assert [d["id"] for d in client.ok("GET", "custom_field_definitions")] == [tier["id"], score["id"]]
    person = new_person(client, custom_fields=[{"custom_field_definition_id": tier["id"], "value": gold}])
    assert person["custom_fields"] == [
        {"custom_field_definition_id": tier["id"], "value": gold},
        {"custom_field_definition_id": score["id"], "value": None},
    ]
    updated = client.ok(
        "PUT", f"people/{person['id']}", {"custom_fields": [{"custom_field_definition_id": score["id"], "value": 7.5}]}
    )
    assert [c["value"] for c in updated["custom_fields"]] == [gold, 7.5]  # the other value stays
    for bad in (
        {"custom_field_definition_id": tier["id"], "value": 1},
        {"custom_field_definition_id": 1, "value": 1},
        {"custom_field_definition_id": score["id"], "value": "high"},
    ):
        refused(client.call("PUT", f"people/{person['id']}", {"custom_fields": [bad]}), 422)
    found = client.ok(
        "POST", "people/search", {"custom_fields": [{"custom_field_definition_id": tier["id"], "value": gold}]}
    )
    assert [p["id"] for p in found] == [person["id"]]


def test_custom_field_definitions_are_checked(app, server, client):
    refused(
        client.call(
            "POST", "custom_field_definitions", {"name": "Key", "data_type": "String", "available_on": ["activity"]}
        ),
        422,
    )
    client.ok("POST", "custom_field_definitions", {"name": "Key", "data_type": "String", "available_on": ["task"]})
    refused(
        client.call(
            "POST", "custom_field_definitions", {"name": "key", "data_type": "String", "available_on": ["task"]}
        ),
        422,
    )
    refused(
        client.call("POST", "custom_field_definitions", {"name": "X", "data_type": "Blob", "available_on": ["task"]}),
        422,
    )
    refused(
        client.call(
            "POST", "custom_field_definitions", {"name": "D", "data_type": "Dropdown", "available_on": ["task"]}
        ),
        422,
    )
    key, email = app.issue_api_key("rep@example.com", admin=False)
    rep = Client(server.url, key, email)
    refused(
        rep.call("POST", "custom_field_definitions", {"name": "Y", "data_type": "String", "available_on": ["person"]}),
        403,
    )


# ---------------------------------------------------------------------------------------------
# Rate limit and faults


def test_180_requests_a_minute_then_429(app, server, client):
    for _ in range(180):
        assert client.call("GET", "account").status_code == 200
    message = refused(client.call("GET", "account"), 429)
    assert "Rate limit" in message
    assert app.rate_limited_count == 1 and app.api_calls == 181
    # The limit is per user: another user's key still gets through.
    key, email = app.issue_api_key("second@example.com")
    assert Client(server.url, key, email).call("GET", "account").status_code == 200
    assert not {"Retry-After", "X-RateLimit-Remaining"} & set(client.call("GET", "account").headers)


def test_an_injected_rate_limit_is_coppers_429(app, client):
    app.faults.inject("rate_limit")
    refused(client.call("GET", "account"), 429)
    assert app.rate_limited_count == 1
    assert client.call("GET", "account").status_code == 200


def test_an_injected_server_error_is_a_500_in_coppers_shape(app, client):
    app.faults.inject("server_error", path_prefix=f"{API}/people")
    assert client.call("GET", "account").status_code == 200  # another path is not affected
    refused(client.call("POST", "people/search", {}), 500)


def test_a_slow_fault_delays_but_answers(app, client):
    app.faults.inject("slow", seconds=0.2)
    assert client.call("GET", "account").status_code == 200
    assert app.faults.pending() == 0


def test_a_dropped_connection_has_no_answer(app, client):
    app.faults.inject("drop")
    with pytest.raises(requests.ConnectionError):
        client.call("GET", "account")
    assert client.call("GET", "account").status_code == 200


def test_an_expired_token_fault_expires_an_oauth_token_for_good_and_refuses_a_key_once(app, server, client):
    bearer = Client(server.url, bearer=app.issue_oauth_token().access_token)
    app.faults.inject("expire_token")
    assert "expired" in refused(bearer.call("GET", "account"), 401)
    refused(bearer.call("GET", "account"), 401)
    app.faults.inject("expire_token")
    refused(client.call("GET", "account"), 401)
    assert client.call("GET", "account").status_code == 200


def test_the_control_api_injects_faults_shows_state_and_resets(app, server, client):
    new_person(client)
    state = requests.get(f"{server.url}/__sandbox__/state").json()
    assert state["records"]["people"] == 1 and state["api_calls"] == 1
    requests.post(f"{server.url}/__sandbox__/faults", json={"kind": "server_error"})
    refused(client.call("GET", "account"), 500)
    requests.post(f"{server.url}/__sandbox__/reset")
    assert app.records("people") == [] and app.api_calls == 0
    assert client.call("GET", "account").status_code == 200  # keys survive a reset


def test_calls_are_counted_by_route(app, client):
    person = new_person(client)
    client.ok("GET", f"people/{person['id']}")
    client.ok("POST", "people/fetch_by_email", {"email": "ann@example.com"})
    assert dict(app.calls_by_route) == {"POST people": 1, "GET people/{id}": 1, "POST people/fetch_by_email": 1}


# ---------------------------------------------------------------------------------------------
# Webhooks


class Receiver:
    """A loopback HTTP server that records what it is sent and answers with ``status``."""

    def __init__(self, status: int = 200) -> None:
        self.received: list[tuple[dict, bytes]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                owner.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(owner.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                return

        self.status = status
        self.httpd = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def receiver():
    running = Receiver()
    yield running
    running.close()


def test_webhook_subscriptions_are_created_listed_changed_and_deleted(app, client):
    body = {
        "target": "https://hooks.example.com/in",
        "type": "person",
        "event": "update",
        "secret": {"token": "abc"},
        "headers": {"X-Key": "v"},
    }
    made = client.ok("POST", "webhooks", body)
    assert {k: made[k] for k in body} == body and isinstance(made["id"], int)
    assert [w["id"] for w in client.ok("GET", "webhooks")] == [made["id"]]
    assert client.ok("PUT", f"webhooks/{made['id']}", {"event": "new"})["event"] == "new"
    assert client.ok("DELETE", f"webhooks/{made['id']}") == {"id": made["id"]}
    refused(client.call("GET", f"webhooks/{made['id']}"), 404)
    refused(client.call("POST", "webhooks", {**body, "type": "comment"}), 422)
    refused(client.call("POST", "webhooks", {**body, "secret": {"n": 1}}), 422)
    app.allow_http_targets = False
    assert "HTTPS" in refused(client.call("POST", "webhooks", {**body, "target": "http://hooks.example.com/"}), 422)


def test_an_account_holds_at_most_100_subscriptions(client):
    for n in range(100):
        client.ok("POST", "webhooks", {"target": f"https://h.example.com/{n}", "type": "task", "event": "new"})
    refused(client.call("POST", "webhooks", {"target": "https://h.example.com/x", "type": "task", "event": "new"}), 422)


def test_a_notification_echoes_the_secret_and_headers_and_is_never_retried(app, client, receiver):
    client.ok(
        "POST",
        "webhooks",
        {
            "target": receiver.url,
            "type": "person",
            "event": "update",
            "secret": {"capsule_secret": "s3"},
            "headers": {"X-Capsule-Webhook-Secret": "s3"},
        },
    )
    receiver.status = 500
    ids = list(range(1, 36))
    deliveries = app.send_webhook("person", "update", ids, updated_attributes={"title": ["a", "b"]})
    assert [d.status for d in deliveries] == [500, 500] and [len(d.ids) for d in deliveries] == [30, 5]
    assert len(receiver.received) == 2  # one POST per notification, no retry after the 500
    headers, body = receiver.received[0]
    payload = json.loads(body)
    assert payload["ids"] == ids[:30] and payload["type"] == "person" and payload["event"] == "update"
    assert payload["capsule_secret"] == "s3" and payload["updated_attributes"] == {"title": ["a", "b"]}
    assert headers["x-capsule-webhook-secret"] == "s3" and headers["content-type"] == "application/json"
    assert "signature" not in " ".join(headers).lower()  # Copper signs nothing
    assert app.send_webhook("person", "new", [1]) == []  # no subscription to new people


def test_an_unreachable_target_loses_the_notification(app, client):
    client.ok("POST", "webhooks", {"target": "http://127.0.0.1:9/hook", "type": "lead", "event": "new"})
    [delivery] = app.send_webhook("lead", "new", [7], timeout=2)
    assert delivery.status == 0 and app.deliveries == [delivery]


# ---------------------------------------------------------------------------------------------
# OAuth for partner apps


def authorize(server, decision: str) -> requests.Response:
    params = {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT,
        "scope": "developer/v1/all",
        "state": "st",
    }
    page = requests.get(f"{server.url}/oauth/authorize", params=params)
    assert page.status_code == 200 and 'value="allow"' in page.text and 'value="deny"' in page.text
    return requests.post(f"{server.url}/oauth/authorize", data={**params, "decision": decision}, allow_redirects=False)


def test_the_consent_flow_gives_a_long_lived_token_without_refresh(app, server):
    answer = authorize(server, "allow")
    query = parse_qs(urlsplit(answer.headers["Location"]).query)
    assert answer.status_code == 302 and query["state"] == ["st"]
    form = {
        "grant_type": "authorization_code",
        "code": query["code"][0],
        "redirect_uri": REDIRECT,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
    }
    token = requests.post(f"{server.url}/oauth/token", data=form).json()
    assert token == {"access_token": token["access_token"], "token_type": "Bearer", "scope": "developer/v1/all"}
    assert Client(server.url, bearer=token["access_token"]).call("GET", "account").status_code == 200
    again = requests.post(f"{server.url}/oauth/token", data=form)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"  # codes are single use
    bad = requests.post(f"{server.url}/oauth/token", data={**form, "client_secret": "x"})
    assert bad.status_code == 401 and bad.json()["error"] == "invalid_client"


def test_a_denial_goes_back_with_access_denied(server):
    answer = authorize(server, "deny")
    assert parse_qs(urlsplit(answer.headers["Location"]).query)["error"] == ["access_denied"]


def test_post_delivery_sends_the_code_in_an_auto_submitting_form(app, server):
    app.code_delivery = "post"
    answer = authorize(server, "allow")
    assert answer.status_code == 200 and f'action="{REDIRECT}"' in answer.text
    assert 'name="code"' in answer.text and 'name="state" value="st"' in answer.text


def test_a_refresh_grant_works_for_tokens_that_carry_a_refresh_token(app, server):
    issued = app.issue_oauth_token(with_refresh=True)
    form = {
        "grant_type": "refresh_token",
        "refresh_token": issued.refresh_token,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
    }
    answer = requests.post(f"{server.url}/oauth/token", data=form).json()
    assert answer["access_token"] != issued.access_token and answer["refresh_token"] == issued.refresh_token
    assert app.oauth.refresh_calls == 1


# ---------------------------------------------------------------------------------------------
# Helpers tests and benchmarks rely on


def test_ui_edits_change_records_and_log_the_attributes(app, client):
    person = new_person(client)
    app.edit_in_ui("people", person["id"], {"title": "VP"})
    change = app.changes[-1]
    assert (change.entity, change.event, change.attributes["title"]) == ("person", "update", [None, "VP"])
    with pytest.raises(KeyError):
        app.edit_in_ui("people", 1, {"title": "x"})


def test_the_probe_reads_people_and_our_keys(app, server, client):
    person = new_person(client)
    client.ok("POST", "leads", {"name": "L", "email": {"email": "LEAD@example.com"}})
    client.ok(
        "POST",
        "activities",
        {
            "parent": {"type": "person", "id": person["id"]},
            "type": {"category": "user", "id": 0},
            "details": "x\n\nCapsule key: capsule-evt-1",
        },
    )
    probe = CopperProbe()
    assert sorted(email for _id, email in probe.people(app)) == ["ann@example.com", "lead@example.com"]
    assert probe.engagement_keys(app) == ["capsule-evt-1"]
    assert Client(server.url, bearer=probe.token(app)).call("GET", "account").status_code == 200
    assert probe.api_calls(app) == app.api_calls and probe.rate_limited(app) == 0
    assert probe.first_name(app, str(person["id"])) == "Ann"


def test_the_sandbox_uniqueness_aid_refuses_a_value_another_person_holds(app, client):
    """Not a Copper feature: a test aid standing in for any record Copper refuses (422)."""
    field_name = CopperProbe().add_unique_field(app)
    assert field_name == "cf_external_ref"
    [definition] = app.store.definitions.values()
    ref = {"custom_fields": [{"custom_field_definition_id": definition["id"], "value": "R-1"}]}
    first = new_person(client, "one@example.com", **ref)
    assert client.ok("PUT", f"people/{first['id']}", ref)["id"] == first["id"]  # its own value is fine
    message = refused(
        client.call("POST", "people", {"name": "Two", "emails": [{"email": "two@example.com"}], **ref}), 422
    )
    assert "External ref" in message and "already used" in message
    assert [p["id"] for p in app.records("people")] == [first["id"]]
    assert CopperProbe().batch_write_path == f"{API}/people"
