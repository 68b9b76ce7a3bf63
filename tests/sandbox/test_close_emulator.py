"""The Close sandbox emulator speaks Close's wire format (crm-reference §8, §11.8).

Every JSON answer these tests receive is checked: against the vendor's OpenAPI document
(../shared/specs/close/close-openapi.yml, with its /api/v1 server prefix) where it declares the
status, otherwise against the facts of crm-reference §8 (429 and 5xx bodies, ``_fields`` answers,
/data/search/, which the archived spec lacks, and the OAuth endpoints).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from integrations.sandbox.close import CloseEmulator
from integrations.sandbox.core import FAULT_KINDS, EmulatorApp, EmulatorServer, LocalCA, Request, Response
from tests.openapi_check import validate_http_response

SPEC = "close/close-openapi.yml"
CLIENT_ID, CLIENT_SECRET = "close-emulator-client", "close-emulator-secret"
REDIRECT = "https://capsule.example.com/oauth/callback/close/"
RATE = re.compile(r"^limit=(\d+), remaining=(\d+), reset=(\d+)$")  # the official client's regex: integers


def check(response: requests.Response) -> requests.Response:
    """Hold one answer up against the spec, or against crm-reference §8 where the spec is silent."""
    path, status = urlsplit(response.request.url).path, response.status_code
    assert RATE.match(response.headers.get("RateLimit", "")) or not path.startswith("/api/v1/"), response.headers
    body = response.json() if response.content else None
    if path.startswith("/oauth2/"):
        if status >= 400:
            assert set(body) == {"error", "error_description"}  # RFC 6749 §5.2
    elif status == 429:
        # §8.5: RateLimit and Retry-After, and the reset in the body's error object.
        assert int(response.headers["Retry-After"]) >= 1
        assert body["error"]["message"] and body["error"]["rate_reset"] > 0
    elif status >= 500:
        assert isinstance(body["error"], str)
    elif "_fields" in parse_qs(urlsplit(response.request.url).query) and status == 200:
        # The spec models whole objects; ``_fields`` cuts them to the keys asked for (§8.2), and the
        # whole objects are validated by the tests that read them without it.
        wanted = set(parse_qs(urlsplit(response.request.url).query)["_fields"][0].split(","))
        items = body["data"] if "data" in body else [body]
        assert all(set(item) <= wanted for item in items), (wanted, items)
    elif path == "/api/v1/data/search/":
        # §8.2: {"data": [{"__object_type", "id", <_fields>}], "cursor": str | null}; errors {"error": …}.
        if status == 200:
            assert set(body) <= {"data", "cursor", "count"} and "cursor" in body
            assert all(item["__object_type"] in ("lead", "contact") and item["id"] for item in body["data"])
        else:
            assert isinstance(body["error"], str)
    else:
        validate_http_response(SPEC, response)
        if status == 400 and "field-errors" in body:
            assert isinstance(body["field-errors"], dict) and isinstance(body["errors"], list)  # §8.6
    return response


class Api:
    """A requests session on the emulator whose every answer goes through ``check``."""

    def __init__(self, base: str, auth: Any = None, verify: Any = True) -> None:
        self.base, self.session = base, requests.Session()
        self.session.auth, self.session.verify = auth, verify
        self.session.trust_env = False

    def __call__(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return check(self.session.request(method, self.base + path, timeout=10, **kwargs))


@pytest.fixture(scope="module")
def server() -> Iterator[EmulatorServer]:
    app = CloseEmulator(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, redirect_uris=[REDIRECT], rate_limit=1000)
    with EmulatorServer(app) as running:
        yield running


@pytest.fixture
def close(server) -> CloseEmulator:
    server.app.reset()
    server.app.oauth.rotate_refresh_tokens = True
    return server.app


@pytest.fixture
def api(server, close) -> Api:
    return Api(server.url, (close.issue_api_key(), ""))


def new_lead(api: Api, email: str = "ann@example.com", **contact: Any) -> dict[str, Any]:
    body = {"name": "Northwind", "contacts": [{"name": "Ann Lee", "emails": [{"email": email}], **contact}]}
    return api("POST", "/api/v1/lead/", json=body).json()


# ---------------------------------------------------------------------------------------------
# Leads and contacts


def test_a_lead_is_created_with_its_contact_and_answers_200_with_prefixed_ids(api, close):
    response = api(
        "POST",
        "/api/v1/lead/",
        json={
            "name": "Northwind",
            "contacts": [
                {
                    "name": "Ann Lee",
                    "title": "CTO",
                    "emails": [{"email": "ann@example.com", "type": "office"}],
                    "phones": [{"phone": "+14155550100"}],
                }
            ],
        },
    )
    assert response.status_code == 200
    lead = response.json()
    assert lead["id"].startswith("lead_") and lead["name"] == "Northwind"
    [contact] = lead["contacts"]
    assert contact["id"].startswith("cont_") and contact["lead_id"] == lead["id"]
    assert contact["emails"] == [{"email": "ann@example.com", "type": "office", "is_unsubscribed": False}]
    assert contact["phones"][0]["phone"] == "+14155550100" and lead["contact_ids"] == [contact["id"]]
    assert api("GET", f"/api/v1/lead/{lead['id']}/").json()["display_name"] == "Northwind"
    assert [c["id"] for c in close.contacts()] == [contact["id"]]


def test_a_contact_without_a_lead_gets_a_new_lead_named_after_it(api, close):
    contact = api("POST", "/api/v1/contact/", json={"name": "Bo Chen", "emails": [{"email": "bo@example.com"}]}).json()
    assert contact["id"].startswith("cont_")
    assert close.lead(contact["lead_id"])["name"] == "Bo Chen"


def test_contacts_are_read_listed_updated_partially_and_deleted(api, close):
    lead = new_lead(api)
    contact_id = lead["contacts"][0]["id"]
    second = api("POST", "/api/v1/contact/", json={"lead_id": lead["id"], "name": "Cy"}).json()
    listed = api("GET", "/api/v1/contact/", params={"lead_id": lead["id"], "_limit": 1}).json()
    assert listed["has_more"] is True and listed["data"][0]["id"] == contact_id
    updated = api("PUT", f"/api/v1/contact/{contact_id}/", json={"title": "CEO"}).json()
    assert updated["title"] == "CEO" and updated["name"] == "Ann Lee"  # PUT is partial
    assert updated["date_updated"] >= updated["date_created"]
    assert api("GET", f"/api/v1/contact/{contact_id}/", params={"_fields": "id,title"}).json() == {
        "id": contact_id,
        "title": "CEO",
    }
    assert api("DELETE", f"/api/v1/contact/{second['id']}/").json() == {}
    gone = api("GET", f"/api/v1/contact/{second['id']}/")
    assert gone.status_code == 404 and "error" in gone.json()


def test_validation_errors_name_each_field(api):
    answer = api(
        "POST",
        "/api/v1/contact/",
        json={"lead_id": "lead_missing", "emails": [{"email": "not-an-address"}], "custom.cf_nope": 1},
    )
    assert answer.status_code == 400
    errors = answer.json()["field-errors"]
    assert set(errors) == {"emails", "custom.cf_nope"}
    answer = api("POST", "/api/v1/contact/", json={"lead_id": "lead_missingAAAAAAAAAAAAAAA"})
    assert answer.status_code == 400 and answer.json()["field-errors"] == {"lead_id": "Invalid lead id."}
    assert api("GET", "/api/v1/lead/", params={"_limit": 101}).status_code == 400


def test_paths_end_with_a_slash(api):
    assert api.session.get(api.base + "/api/v1/lead", timeout=10).status_code == 404


# ---------------------------------------------------------------------------------------------
# Custom fields


def test_contact_custom_fields_are_defined_written_as_custom_keys_and_validated(api):
    field = api(
        "POST", "/api/v1/custom_field/contact/", json={"name": "Tier", "type": "choices", "choices": ["Gold", "Silver"]}
    ).json()
    assert field["id"].startswith("cf_") and field["choices"] == ["Gold", "Silver"]
    assert api("POST", "/api/v1/custom_field/contact/", json={"name": "Tier", "type": "text"}).status_code == 400
    lead = new_lead(api, **{f"custom.{field['id']}": "Gold"})
    assert lead["contacts"][0][f"custom.{field['id']}"] == "Gold"
    refused = api("PUT", f"/api/v1/contact/{lead['contacts'][0]['id']}/", json={f"custom.{field['id']}": "Bronze"})
    assert refused.status_code == 400 and f"custom.{field['id']}" in refused.json()["field-errors"]
    listed = api("GET", "/api/v1/custom_field/contact/").json()
    assert [f["name"] for f in listed["data"]] == ["Tier"]


def test_number_date_and_datetime_fields_take_their_types(api):
    ids = {
        kind: api("POST", "/api/v1/custom_field/lead/", json={"name": kind, "type": kind}).json()["id"]
        for kind in ("number", "date", "datetime")
    }
    ok = api(
        "POST",
        "/api/v1/lead/",
        json={
            "name": "X",
            f"custom.{ids['number']}": "42",
            f"custom.{ids['date']}": "2025-03-01",
            f"custom.{ids['datetime']}": "2025-03-01T10:00:00Z",
        },
    ).json()
    assert ok[f"custom.{ids['number']}"] == 42 and ok[f"custom.{ids['date']}"] == "2025-03-01"
    assert ok[f"custom.{ids['datetime']}"].startswith("2025-03-01T10:00:00")
    bad = api("POST", "/api/v1/lead/", json={"name": "X", f"custom.{ids['number']}": "lots"})
    assert bad.status_code == 400


def test_activity_custom_fields_belong_to_a_custom_activity_type(api):
    refused = api("POST", "/api/v1/custom_field/activity/", json={"name": "Key", "type": "text"})
    assert "custom_activity_type_id" in refused.json()["field-errors"]
    kind = api("POST", "/api/v1/custom_activity/", json={"name": "Capsule engagement"})
    assert kind.status_code == 201 and kind.json()["id"].startswith("actitype_")
    field = api(
        "POST",
        "/api/v1/custom_field/activity/",
        json={"name": "Key", "type": "text", "custom_activity_type_id": kind.json()["id"], "required": True},
    ).json()
    listed = api("GET", "/api/v1/custom_activity/").json()["data"]
    assert [f["id"] for f in listed[0]["fields"]] == [field["id"]]
    lead = new_lead(api)
    missing = api(
        "POST", "/api/v1/activity/custom/", json={"custom_activity_type_id": kind.json()["id"], "lead_id": lead["id"]}
    )
    assert missing.status_code == 400 and f"custom.{field['id']}" in missing.json()["field-errors"]
    made = api(
        "POST",
        "/api/v1/activity/custom/",
        json={"custom_activity_type_id": kind.json()["id"], "lead_id": lead["id"], f"custom.{field['id']}": "k1"},
    ).json()
    assert (
        made["_type"] == "CustomActivity" and made[f"custom.{field['id']}"] == "k1" and made["id"].startswith("acti_")
    )


# ---------------------------------------------------------------------------------------------
# Activities, tasks, opportunities


def test_notes_and_calls_are_created_and_listed_with_filters(api):
    lead = new_lead(api)
    other = new_lead(api, "bo@example.com")
    contact_id = lead["contacts"][0]["id"]
    note = api(
        "POST",
        "/api/v1/activity/note/",
        json={
            "lead_id": lead["id"],
            "contact_id": contact_id,
            "title": "Hello",
            "note": "Body",
            "activity_at": "2025-03-01T10:00:00+00:00",
        },
    ).json()
    assert note["_type"] == "Note" and note["activity_at"].startswith("2025-03-01T10:00:00")
    call = api("POST", "/api/v1/activity/call/", json={"lead_id": lead["id"], "direction": "inbound"}).json()
    assert call["_type"] == "Call" and call["status"] == "completed" and call["source"] == "External"
    api("POST", "/api/v1/activity/note/", json={"lead_id": other["id"], "note": "Elsewhere"})
    notes = api("GET", "/api/v1/activity/", params={"lead_id": lead["id"], "_type": "Note"}).json()["data"]
    assert [a["id"] for a in notes] == [note["id"]]
    in_window = api(
        "GET",
        "/api/v1/activity/",
        params={
            "lead_id__in": f"{lead['id']},{other['id']}",
            "activity_at__gte": "2025-03-01T09:59:59+00:00",
            "activity_at__lte": "2025-03-01T10:00:01+00:00",
        },
    ).json()["data"]
    assert [a["id"] for a in in_window] == [note["id"]]
    # contact_id and _type only work for a single lead, as Close documents.
    assert api("GET", "/api/v1/activity/", params={"_type": "Note"}).status_code == 400
    assert api("GET", "/api/v1/activity/note/", params={"lead_id": lead["id"]}).json()["data"][0]["id"] == note["id"]
    wrong = api("POST", "/api/v1/activity/note/", json={"lead_id": other["id"], "contact_id": contact_id})
    assert "contact_id" in wrong.json()["field-errors"]


def test_meetings_are_listed_but_cannot_be_created(api):
    assert api("GET", "/api/v1/activity/meeting/").json() == {"data": [], "has_more": False}
    assert api.session.post(api.base + "/api/v1/activity/meeting/", json={}, timeout=10).status_code == 404


def test_tasks_are_created_listed_by_lead_and_completed(api):
    lead = new_lead(api)
    task = api("POST", "/api/v1/task/", json={"lead_id": lead["id"], "text": "Call Ann", "date": "2025-03-02"}).json()
    assert task["id"].startswith("task_") and task["_type"] == "lead" and task["is_complete"] is False
    assert api("POST", "/api/v1/task/", json={"lead_id": lead["id"]}).status_code == 400
    listed = api("GET", "/api/v1/task/", params={"lead_id": lead["id"], "_fields": "id,text"}).json()["data"]
    assert listed == [{"id": task["id"], "text": "Call Ann"}]
    done = api("PUT", f"/api/v1/task/{task['id']}/", json={"is_complete": True}).json()
    assert done["is_complete"] is True


def test_opportunities_take_cents_statuses_and_filters(api):
    lead = new_lead(api)
    statuses = api("GET", "/api/v1/status/opportunity/").json()["data"]
    won = next(s for s in statuses if s["type"] == "won")
    made = api(
        "POST",
        "/api/v1/opportunity/",
        json={"lead_id": lead["id"], "value": 120000, "status_id": won["id"], "contact_id": lead["contacts"][0]["id"]},
    ).json()
    assert made["id"].startswith("oppo_") and made["status_type"] == "won" and made["date_won"]
    assert made["value"] == 120000 and made["value_period"] == "one_time"
    assert api("POST", "/api/v1/opportunity/", json={"lead_id": lead["id"], "value": 12.5}).status_code == 400
    active = api("POST", "/api/v1/opportunity/", json={"lead_id": lead["id"]}).json()
    assert active["status_type"] == "active"
    since = api(
        "GET", "/api/v1/opportunity/", params={"date_updated__gte": active["date_updated"], "_order_by": "date_updated"}
    ).json()["data"]
    assert [o["id"] for o in since] == [active["id"]]
    assert api("GET", "/api/v1/opportunity/", params={"status_type": "won"}).json()["data"][0]["id"] == made["id"]


# ---------------------------------------------------------------------------------------------
# Advanced Filtering


def email_query(*emails: str) -> dict[str, Any]:
    return {
        "type": "and",
        "queries": [
            {"type": "object_type", "object_type": "contact"},
            {
                "type": "has_related",
                "this_object_type": "contact",
                "related_object_type": "contact_email",
                "related_query": {
                    "type": "field_condition",
                    "field": {"type": "regular_field", "object_type": "contact_email", "field_name": "email"},
                    "condition": {"type": "term", "values": list(emails)},
                },
            },
        ],
    }


def test_search_finds_contacts_by_email_and_returns_the_fields_asked_for(api):
    ann = new_lead(api)["contacts"][0]
    new_lead(api, "bo@example.com", name="Bo Chen")
    body = {
        "query": email_query("ANN@example.com", "nobody@example.com"),
        "_fields": {"contact": ["lead_id", "emails"]},
        "_limit": 10,
    }
    answer = api("POST", "/api/v1/data/search/", json=body).json()
    assert answer["cursor"] is None
    assert answer["data"] == [
        {"__object_type": "contact", "id": ann["id"], "lead_id": ann["lead_id"], "emails": ann["emails"]}
    ]
    text = {
        "query": {
            "type": "field_condition",
            "field": {"type": "regular_field", "object_type": "contact", "field_name": "name"},
            "condition": {"type": "text", "mode": "full_words", "value": "ann"},
        }
    }
    assert [d["id"] for d in api("POST", "/api/v1/data/search/", json=text).json()["data"]] == [ann["id"]]


def test_search_pages_with_a_cursor_in_sort_order(api):
    ids = [new_lead(api, f"p{i}@example.com")["contacts"][0]["id"] for i in range(5)]
    body = {
        "query": {"type": "object_type", "object_type": "contact"},
        "_limit": 2,
        "sort": [
            {
                "direction": "desc",
                "field": {"type": "regular_field", "object_type": "contact", "field_name": "date_created"},
            }
        ],
    }
    seen, cursor = [], None
    while True:
        answer = api("POST", "/api/v1/data/search/", json={**body, **({"cursor": cursor} if cursor else {})}).json()
        seen += [d["id"] for d in answer["data"]]
        cursor = answer["cursor"]
        if not cursor:
            break
    assert seen == list(reversed(ids))
    assert api("POST", "/api/v1/data/search/", json={**body, "cursor": "bm9wZQ=="}).status_code == 400


def test_search_filters_by_a_moment_range_and_refuses_what_it_cannot_do(api, close):
    old = new_lead(api)["contacts"][0]
    fresh = new_lead(api, "bo@example.com")["contacts"][0]
    close.set_modified([old["id"]], "2020-01-01T00:00:00.000000+00:00")
    since = {
        "type": "field_condition",
        "field": {"type": "regular_field", "object_type": "contact", "field_name": "date_updated"},
        "condition": {"type": "moment_range", "on_or_after": {"type": "fixed_utc", "value": "2021-01-01T00:00:00Z"}},
    }
    found = api("POST", "/api/v1/data/search/", json={"query": since}).json()["data"]
    assert [d["id"] for d in found] == [fresh["id"]]
    assert api("POST", "/api/v1/data/search/", json={"query": {"type": "lucky"}}).status_code == 400
    assert api("POST", "/api/v1/data/search/", json={"query": since, "_limit": 201}).status_code == 400


# ---------------------------------------------------------------------------------------------
# Authentication and identity


def test_api_keys_travel_as_basic_username_with_an_empty_password(server, close):
    key = close.issue_api_key()
    assert key.startswith("api_")
    assert Api(server.url, (key, ""))("GET", "/api/v1/me/").status_code == 200
    header = {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}
    assert Api(server.url)("GET", "/api/v1/me/", headers=header).status_code == 200
    for auth in [("api_wrong", ""), None]:
        refused = Api(server.url, auth)("GET", "/api/v1/me/")
        assert refused.status_code == 401 and refused.json()["error"]
    close.revoke_api_key(key)
    assert Api(server.url, (key, ""))("GET", "/api/v1/me/").status_code == 401


def test_oauth_tokens_travel_as_bearer(server, close):
    token = close.issue_oauth_token().access_token
    bearer = {"Authorization": f"Bearer {token}"}
    me = Api(server.url)("GET", "/api/v1/me/", headers=bearer).json()
    assert me["organizations"] == [close.organization()] and me["email"] == close.store.user["email"]
    assert Api(server.url)("GET", "/api/v1/me/", headers={"Authorization": "Bearer nope"}).status_code == 401


# ---------------------------------------------------------------------------------------------
# Rate limits


def test_every_answer_carries_integer_ratelimit_headers(api, server):
    ok = api("GET", "/api/v1/me/")
    limit, remaining, reset = map(int, RATE.match(ok.headers["RateLimit"]).groups())
    assert (limit, reset) == (1000, 1) and remaining == 999
    assert RATE.match(Api(server.url)("GET", "/api/v1/me/").headers["RateLimit"])  # a 401 too


def test_a_spent_bucket_answers_429_with_retry_after_and_other_groups_go_on():
    app = CloseEmulator(rate_limit=3, window_seconds=60)
    with EmulatorServer(app) as running:
        api = Api(running.url, (app.issue_api_key(), ""))
        statuses = [api("GET", "/api/v1/me/").status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        refused = api("GET", "/api/v1/me/")
        assert RATE.match(refused.headers["RateLimit"]).group(2) == "0"
        assert int(refused.headers["Retry-After"]) == int(RATE.match(refused.headers["RateLimit"]).group(3))
        assert api("GET", "/api/v1/lead/").status_code == 200  # its own endpoint group
        assert app.rate_limited_count == 2 and app.api_calls == 6
        assert app.calls_by_group["GET /api/v1/me/"] == 5


def test_the_organisation_shares_a_multiple_of_the_key_limit():
    app = CloseEmulator(rate_limit=2, window_seconds=60, org_rate_multiplier=1)
    with EmulatorServer(app) as running:
        first, second = (Api(running.url, (app.issue_api_key(), "")) for _ in range(2))
        assert [first("GET", "/api/v1/me/").status_code for _ in range(2)] == [200, 200]
        assert second("GET", "/api/v1/me/").status_code == 429


# ---------------------------------------------------------------------------------------------
# OAuth


class _Form(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.fields: dict[str, str] = {}
        self.buttons: list[str] = []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "input" and attributes.get("type") == "hidden":
            self.fields[attributes["name"]] = attributes.get("value") or ""
        if tag == "button":
            self.buttons.append(attributes.get("value") or "")


def consent(base: str, decision: str) -> dict[str, str]:
    page = requests.get(
        base + "/oauth2/authorize/",
        params={"client_id": CLIENT_ID, "response_type": "code", "redirect_uri": REDIRECT, "state": "s1"},
        timeout=10,
    )
    form = _Form()
    form.feed(page.text)
    assert page.status_code == 200 and form.buttons == ["allow", "deny"]
    answer = requests.post(
        base + "/oauth2/authorize/", data={**form.fields, "decision": decision}, allow_redirects=False, timeout=10
    )
    assert answer.status_code == 302 and answer.headers["Location"].startswith(REDIRECT)
    return {k: v[0] for k, v in parse_qs(urlsplit(answer.headers["Location"]).query).items()}


def token(base: str, **form: str) -> requests.Response:
    return check(
        requests.post(
            base + "/oauth2/token/", data={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, **form}, timeout=10
        )
    )


def test_consent_code_token_and_rotating_refresh(server, close):
    query = consent(server.url, "allow")
    assert query["state"] == "s1"
    issued = token(server.url, grant_type="authorization_code", code=query["code"], redirect_uri=REDIRECT).json()
    assert issued["token_type"] == "Bearer" and issued["expires_in"] == 3600
    assert issued["scope"] == "all.full_access offline_access"
    assert issued["organization_id"] == close.store.org_id and issued["user_id"] == close.store.user["id"]
    again = token(server.url, grant_type="authorization_code", code=query["code"], redirect_uri=REDIRECT)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"  # codes are single use
    refreshed = token(server.url, grant_type="refresh_token", refresh_token=issued["refresh_token"]).json()
    assert refreshed["refresh_token"] != issued["refresh_token"]
    reused = token(server.url, grant_type="refresh_token", refresh_token=issued["refresh_token"])
    assert reused.json()["error"] == "invalid_grant"  # the old refresh token was retired
    assert (
        Api(server.url)(
            "GET", "/api/v1/me/", headers={"Authorization": f"Bearer {refreshed['access_token']}"}
        ).status_code
        == 200
    )


def test_denied_consent_bad_clients_and_revocation(server, close):
    assert consent(server.url, "deny")["error"] == "access_denied"
    bad = check(
        requests.post(
            server.url + "/oauth2/token/",
            data={
                "client_id": CLIENT_ID,
                "client_secret": "wrong",
                "grant_type": "refresh_token",
                "refresh_token": "x",
            },
            timeout=10,
        )
    )
    assert bad.status_code == 401 and bad.json()["error"] == "invalid_client"
    issued = close.issue_oauth_token()
    revoked = check(
        requests.post(
            server.url + "/oauth2/revoke/",
            data={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "token": issued.refresh_token},
            timeout=10,
        )
    )
    assert revoked.status_code == 200 and close.oauth.token_state(issued.access_token) == "invalid"


# ---------------------------------------------------------------------------------------------
# Faults


def test_every_fault_kind_answers_in_closes_shape(api, server, close):
    assert set(FAULT_KINDS) == {"rate_limit", "server_error", "slow", "drop", "expire_token"}
    close.faults.inject("rate_limit", path_prefix="/api/v1/me/")
    limited = api("GET", "/api/v1/me/")
    assert limited.status_code == 429 and close.rate_limited_count == 1
    close.faults.inject("server_error")
    assert api("GET", "/api/v1/me/").status_code == 500
    close.faults.inject("slow", seconds=0.05)
    assert api("GET", "/api/v1/me/").status_code == 200 and close.faults.pending() == 0
    close.faults.inject("drop")
    with pytest.raises(requests.ConnectionError):
        api("GET", "/api/v1/me/")
    close.faults.inject("expire_token")
    assert api("GET", "/api/v1/me/").status_code == 401
    assert api("GET", "/api/v1/me/").status_code == 200  # an API key does not stay expired


def test_an_expired_oauth_token_stays_expired(server, close):
    bearer = {"Authorization": f"Bearer {close.issue_oauth_token().access_token}"}
    close.faults.inject("expire_token")
    statuses = [Api(server.url)("GET", "/api/v1/me/", headers=bearer).status_code for _ in range(2)]
    assert statuses == [401, 401]


def test_the_control_api_injects_faults_and_resets(server, close, api):
    new_lead(api)
    assert requests.get(server.url + "/__sandbox__/state", timeout=10).json()["objects"]["contacts"] == 1
    requests.post(server.url + "/__sandbox__/faults", json={"kind": "server_error"}, timeout=10)
    assert api("GET", "/api/v1/me/").status_code == 500
    requests.post(server.url + "/__sandbox__/reset", timeout=10)
    assert close.contacts() == [] and close.api_calls == 0


def test_it_is_served_over_tls_with_a_local_ca(tmp_path):
    ca = LocalCA(tmp_path / "ca")
    app = CloseEmulator()
    with EmulatorServer(app, tls=ca) as running:
        assert running.url.startswith("https://")
        assert Api(running.url, (app.issue_api_key(), ""), verify=str(ca.ca_path))("GET", "/api/v1/me/").ok


# ---------------------------------------------------------------------------------------------
# Webhooks and the event log


def test_subscriptions_get_a_hex_signature_key_and_signed_deliveries(api, close):
    created = api(
        "POST",
        "/api/v1/webhook/",
        json={"url": "https://capsule.example.com/hook", "events": [{"object_type": "contact", "action": "updated"}]},
    )
    assert created.status_code == 201
    subscription = created.json()
    assert subscription["id"].startswith("whsub_") and re.fullmatch(r"[0-9a-f]{64}", subscription["signature_key"])
    assert "signature_key" not in api("GET", "/api/v1/webhook/").json()["data"][0]
    contact = new_lead(api)["contacts"][0]
    api("PUT", f"/api/v1/contact/{contact['id']}/", json={"title": "CEO"})
    [(subscription_id, event)] = close.store.deliveries  # only the subscribed action was queued
    assert subscription_id == subscription["id"]
    assert event["action"] == "updated" and event["object_id"] == contact["id"] and "title" in event["changed_fields"]
    assert event["previous_data"]["title"] is None and event["data"]["title"] == "CEO" and event["api_key_id"]
    headers, body = close.webhook_delivery(event, timestamp=1_700_000_000)
    assert json.loads(body) == {"subscription_id": subscription["id"], "event": event}
    # Computed here independently: hex HMAC-SHA256, key bytes.fromhex(signature_key), message timestamp + body.
    expected = hmac.new(bytes.fromhex(subscription["signature_key"]), b"1700000000" + body, hashlib.sha256).hexdigest()
    assert headers["close-sig-hash"] == expected and headers["close-sig-timestamp"] == "1700000000"


def test_the_event_log_lists_changes_newest_first_with_filters(api):
    contact = new_lead(api)["contacts"][0]
    api("PUT", f"/api/v1/contact/{contact['id']}/", json={"name": "Ann B"})
    events = api("GET", "/api/v1/event/", params={"object_type": "contact", "object_id": contact["id"]}).json()
    assert [e["action"] for e in events["data"]] == ["updated", "created"] and events["cursor_next"] is None
    one = api("GET", f"/api/v1/event/{events['data'][0]['id']}/").json()
    assert one["changed_fields"] == ["display_name", "name"]


def test_subscriptions_are_updated_deleted_and_capped_at_forty(api):
    body = {"url": "https://capsule.example.com/hook", "events": [{"object_type": "contact", "action": "created"}]}
    made = [api("POST", "/api/v1/webhook/", json=body).json() for _ in range(40)]
    assert api("POST", "/api/v1/webhook/", json=body).status_code == 400
    paused = api("PUT", f"/api/v1/webhook/{made[0]['id']}/", json={"status": "paused"}).json()
    assert paused["status"] == "paused"
    assert api("DELETE", f"/api/v1/webhook/{made[0]['id']}/").json() == {}
    assert api("GET", f"/api/v1/webhook/{made[0]['id']}/").status_code == 404
    assert api("POST", "/api/v1/webhook/", json={"url": "ftp://x", "events": []}).status_code == 400


class Receiver(EmulatorApp):
    """A loopback endpoint that keeps what it is sent, standing in for our webhook URL."""

    def __init__(self) -> None:
        super().__init__()
        self.received: list[Request] = []
        self.route("POST", r"/hook", self.keep, auth=False)

    def keep(self, request: Request) -> Response:
        self.received.append(request)
        return Response.json({"received": 1})


def test_queued_deliveries_are_posted_signed_to_the_subscribed_url(api, close):
    with EmulatorServer(Receiver()) as receiver:
        subscription = api(
            "POST",
            "/api/v1/webhook/",
            json={"url": receiver.url + "/hook", "events": [{"object_type": "contact", "action": "created"}]},
        ).json()
        new_lead(api)
        answers = close.deliver_pending()
        assert answers == [(200, b'{"received": 1}')] and close.deliver_pending() == []
        [request] = receiver.app.received
    payload = json.loads(request.body)
    assert payload["subscription_id"] == subscription["id"] and payload["event"]["object_type"] == "contact"
    stamp = request.header("close-sig-timestamp")
    expected = hmac.new(
        bytes.fromhex(subscription["signature_key"]), stamp.encode() + request.body, hashlib.sha256
    ).hexdigest()
    assert request.header("close-sig-hash") == expected
