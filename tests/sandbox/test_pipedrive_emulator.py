"""The Pipedrive sandbox speaks Pipedrive's wire format, checked over real HTTP.

No database: these tests start the emulator on loopback and talk to it with ``requests``.
Pipedrive publishes no spec file (crm-reference §3.8), so shapes are checked against the facts of
crm-reference §3 and the field names of the official SDK's models (client-nodejs, cited per set).
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from integrations.sandbox.core import EmulatorApp, EmulatorServer, Request, Response
from integrations.sandbox.pipedrive import UI_USER_ID, PipedriveEmulator, PipedriveProbe, build
from integrations.sandbox.pipedrive.v1 import is_deprecated_v1

REDIRECT = "http://127.0.0.1:8000/oauth/callback/pipedrive/"
CLIENT_ID, CLIENT_SECRET = "pd-test-client", "pd-test-secret"
HASH = re.compile(r"^[0-9a-f]{40}$")

# client-nodejs v2 AddPersonRequest / AddDealRequest / AddActivityRequest property names.
PERSON_KEYS = {
    "name",
    "owner_id",
    "org_id",
    "add_time",
    "update_time",
    "emails",
    "phones",
    "visible_to",
    "label_ids",
    "marketing_status",
    "custom_fields",
}
DEAL_KEYS = {
    "title",
    "owner_id",
    "person_id",
    "org_id",
    "pipeline_id",
    "stage_id",
    "value",
    "currency",
    "status",
    "probability",
    "lost_reason",
    "visible_to",
    "close_time",
    "won_time",
    "lost_time",
    "expected_close_date",
    "label_ids",
    "custom_fields",
    "is_archived",
}
ACTIVITY_KEYS = {
    "id",
    "subject",
    "type",
    "owner_id",
    "creator_user_id",
    "is_deleted",
    "add_time",
    "update_time",
    "deal_id",
    "lead_id",
    "person_id",
    "org_id",
    "project_id",
    "due_date",
    "due_time",
    "duration",
    "busy",
    "done",
    "marked_as_done_time",
    "location",
    "participants",
    "attendees",
    "public_description",
    "priority",
    "note",
}
# GetPersonFields200ResponseDataInner (required and common properties).
FIELD_KEYS = {"field_name", "field_code", "field_type", "is_custom_field", "is_optional_response_field", "options"}
# v1 Note and Lead models.
NOTE_KEYS = {
    "id",
    "active_flag",
    "add_time",
    "content",
    "lead_id",
    "deal_id",
    "org_id",
    "person_id",
    "pinned_to_deal_flag",
    "pinned_to_organization_flag",
    "pinned_to_person_flag",
    "update_time",
    "user_id",
}
LEAD_KEYS = {
    "id",
    "title",
    "owner_id",
    "creator_id",
    "label_ids",
    "person_id",
    "organization_id",
    "source_name",
    "origin",
    "is_archived",
    "was_seen",
    "value",
    "expected_close_date",
    "add_time",
    "update_time",
    "visible_to",
    "cc_email",
}


@pytest.fixture(scope="module")
def pd():
    app = PipedriveEmulator(
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        redirect_uris=[REDIRECT],
        api_token_limit=1000,
        oauth_limit=1000,
    )
    server = EmulatorServer(app).start()
    yield app
    server.stop()


@pytest.fixture(autouse=True)
def clean(pd):
    pd.reset()
    pd.v1_deprecated_gone = False
    pd.admin = True
    pd.records.users[1]["is_admin"] = 1
    yield


@pytest.fixture
def token(pd) -> str:
    return pd.issue_api_token()


class Api:
    def __init__(self, base_url: str, token: str | None) -> None:
        self.base_url, self.token = base_url, token
        self.session = requests.Session()

    def call(self, method: str, path: str, **kwargs) -> requests.Response:
        headers = dict(kwargs.pop("headers", {}))
        if self.token and "authorization" not in {k.lower() for k in headers}:
            headers.setdefault("x-api-token", self.token)
        return self.session.request(method, self.base_url + path, headers=headers, timeout=10, **kwargs)

    def get(self, path: str, **params) -> requests.Response:
        return self.call("GET", path, params=params)

    def post(self, path: str, body) -> requests.Response:
        return self.call("POST", path, json=body)

    def patch(self, path: str, body) -> requests.Response:
        return self.call("PATCH", path, json=body)


@pytest.fixture
def api(pd, token) -> Api:
    return Api(pd.base_url, token)


def person(api: Api, email: str = "ann@example.com", **extra) -> dict:
    answer = api.post(
        "/api/v2/persons",
        {"name": extra.pop("name", "Ann Lee"), "emails": [{"value": email, "primary": True, "label": "work"}], **extra},
    )
    assert answer.status_code == 200, answer.text
    return answer.json()["data"]


def assert_error(answer: requests.Response, status: int, text: str = "") -> dict:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert body["success"] is False and isinstance(body["error"], str) and body["error"]
    assert "error_info" in body and body["data"] is None and body["additional_data"] is None
    assert text.lower() in body["error"].lower()
    return body


# ---------------------------------------------------------------------------------------------
# Persons, search and the v2 envelope


def test_a_person_is_created_and_read_in_the_v2_envelope(api):
    created = api.post(
        "/api/v2/persons",
        {
            "name": "Ann Lee",
            "emails": [
                {"value": "ann@example.com", "primary": True, "label": "work"},
                {"value": "ann@home.example", "label": "home"},
            ],
        },
    )
    body = created.json()
    assert created.status_code == 200 and body["success"] is True
    data = body["data"]
    assert isinstance(data["id"], int) and PERSON_KEYS <= set(data)
    assert data["emails"] == [
        {"value": "ann@example.com", "primary": True, "label": "work"},
        {"value": "ann@home.example", "primary": False, "label": "home"},
    ]
    assert (data["first_name"], data["last_name"]) == ("Ann", "Lee")
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", data["update_time"])
    read = api.get(f"/api/v2/persons/{data['id']}").json()
    assert read["success"] is True and read["data"] == data


def test_an_email_array_without_a_primary_gets_exactly_one(api):
    data = api.post(
        "/api/v2/persons",
        {
            "name": "Bo",
            "emails": [{"value": "a@x.example"}, {"value": "b@x.example"}],
            "phones": [{"value": "+3725551234", "primary": True}],
        },
    ).json()["data"]
    assert [e["primary"] for e in data["emails"]] == [True, False]
    assert data["phones"] == [{"value": "+3725551234", "primary": True, "label": "work"}]


@pytest.mark.parametrize(
    ("body", "text"),
    [
        ({"emails": [{"value": "x@example.com"}]}, "name"),
        ({"name": "X", "first_name": "X"}, "first_name"),
        ({"name": "X", "emails": [{"value": "not an email"}]}, "email"),
        ({"name": "X", "org_id": 999}, "not found"),
        ({"name": "X", "marketing_status": "maybe"}, "marketing_status"),
    ],
)
def test_bad_person_bodies_are_refused_with_pipedrives_error_body(api, body, text):
    assert_error(api.post("/api/v2/persons", body), 400, text)


def test_patch_updates_and_delete_hides_a_person(api, pd):
    ann = person(api)
    patched = api.patch(f"/api/v2/persons/{ann['id']}", {"name": "Annie Lee"}).json()["data"]
    assert patched["name"] == "Annie Lee" and patched["emails"] == ann["emails"]
    assert api.call("DELETE", f"/api/v2/persons/{ann['id']}").json() == {"success": True, "data": {"id": ann["id"]}}
    assert_error(api.get(f"/api/v2/persons/{ann['id']}"), 404, "not found")
    assert_error(api.patch(f"/api/v2/persons/{ann['id']}", {"name": "x"}), 404)
    assert pd.persons() == [] and pd.persons(include_deleted=True)[0]["is_deleted"] is True


def test_lists_page_with_a_cursor_and_sort_by_update_time(api, pd):
    ids = [person(api, f"p{i}@example.com", name=f"P {i}")["id"] for i in range(5)]
    pd.set_update_time("person", ids[:3], "2026-01-01T10:00:05Z")
    pd.set_update_time("person", ids[3:], "2026-01-01T10:00:01Z")
    seen, cursor = [], None
    while True:
        params = {"sort_by": "update_time", "limit": 2, **({"cursor": cursor} if cursor else {})}
        answer = api.get("/api/v2/persons", **params).json()
        seen += [p["id"] for p in answer["data"]]
        cursor = answer["additional_data"]["next_cursor"]
        if cursor is None:
            break
    assert seen == ids[3:] + ids[:3]  # by update time, ties by id
    since = api.get("/api/v2/persons", updated_since="2026-01-01T10:00:05Z").json()["data"]
    assert [p["id"] for p in since] == ids[:3]
    assert_error(api.get("/api/v2/persons", limit=501), 400, "limit")


def test_search_by_email_with_exact_match(api):
    ann = person(api, "Ann@Example.com")
    person(api, "annabel@example.com", name="Annabel")
    exact = api.get("/api/v2/persons/search", term="ann@example.com", fields="email", exact_match="true").json()
    assert exact["success"] is True and exact["additional_data"] == {"next_cursor": None}
    [hit] = exact["data"]["items"]
    assert hit["result_score"] > 0 and hit["item"]["id"] == ann["id"] and hit["item"]["type"] == "person"
    assert hit["item"]["emails"] == ["Ann@Example.com"]  # search items list plain strings
    loose = api.get("/api/v2/persons/search", term="ann", fields="email").json()["data"]["items"]
    assert len(loose) == 2
    assert_error(api.get("/api/v2/persons/search", term="a"), 400, "at least 2")
    assert_error(api.get("/api/v2/persons/search", term="ann", fields="nickname"), 400, "fields")


# ---------------------------------------------------------------------------------------------
# Fields, deals, activities, organizations


def test_custom_fields_are_keyed_by_40_character_hashes_with_options(api):
    made = api.post(
        "/api/v2/personFields",
        {"field_name": "Tier", "field_type": "enum", "options": [{"label": "Gold"}, {"label": "Silver"}]},
    ).json()["data"]
    assert HASH.match(made["field_code"]) and made["is_custom_field"] is True and set(made) == FIELD_KEYS
    gold = next(o["id"] for o in made["options"] if o["label"] == "Gold")
    listed = api.get("/api/v2/personFields").json()
    assert listed["success"] is True and made in listed["data"]
    assert all(set(f) == FIELD_KEYS for f in listed["data"])
    assert api.get(f"/api/v2/personFields/{made['field_code']}").json()["data"] == made
    data = person(api, custom_fields={made["field_code"]: gold})
    assert data["custom_fields"][made["field_code"]] == gold
    assert_error(
        api.patch(f"/api/v2/persons/{data['id']}", {"custom_fields": {made["field_code"]: 999999}}), 400, "option"
    )
    assert_error(api.patch(f"/api/v2/persons/{data['id']}", {"custom_fields": {"f" * 40: "x"}}), 400, "custom field")


def test_activity_fields_can_be_read_but_not_created_through_the_api(api, pd):
    assert api.post("/api/v2/activityFields", {"field_name": "X", "field_type": "varchar"}).status_code == 404
    pd.add_custom_field("activity", "Made in the UI")
    names = [f["field_name"] for f in api.get("/api/v2/activityFields").json()["data"]]
    assert "Subject" in names and "Made in the UI" in names


def test_only_an_admin_may_create_fields(api, pd):
    requests.post(pd.base_url + "/__sandbox__/settings", json={"admin": False}, timeout=5)
    assert_error(api.post("/api/v2/dealFields", {"field_name": "X", "field_type": "varchar"}), 403, "permission")


def test_deals_and_activities_belong_to_a_person(api, pd):
    ann = person(api)
    key = pd.add_custom_field("deal", "Capsule conversion id")["field_code"]
    deal = api.post(
        "/api/v2/deals",
        {
            "title": "Pricing tour",
            "person_id": ann["id"],
            "value": 120,
            "currency": "USD",
            "status": "won",
            "custom_fields": {key: "capsule-evt-9"},
        },
    ).json()["data"]
    assert DEAL_KEYS <= set(deal) and deal["won_time"] and deal["custom_fields"][key] == "capsule-evt-9"
    assert_error(api.post("/api/v2/deals", {"title": "X", "currency": "JPY"}), 400, "currency")
    activity = api.post(
        "/api/v2/activities",
        {
            "subject": "Viewed",
            "type": "call",
            "person_id": ann["id"],
            "done": True,
            "due_date": "2026-01-02",
            "due_time": "10:30",
            "note": "<b>hi</b>",
        },
    ).json()["data"]
    assert ACTIVITY_KEYS <= set(activity) and activity["participants"] == [{"person_id": ann["id"], "primary": True}]
    listed = api.get("/api/v2/activities", person_id=ann["id"]).json()["data"]
    assert [a["id"] for a in listed] == [activity["id"]]
    assert api.get("/api/v2/deals", person_id=ann["id"]).json()["data"][0]["id"] == deal["id"]
    assert_error(api.post("/api/v2/activities", {"subject": "X", "type": "nonsense"}), 400, "activity type")


def test_activity_types_are_v1_and_a_new_one_can_be_used(api):
    keys = [t["key_string"] for t in api.get("/v1/activityTypes").json()["data"]]
    assert {"call", "meeting", "task", "deadline", "email", "lunch"} <= set(keys)
    made = api.post("/api/v1/activityTypes", {"name": "Capsule", "icon_key": "signpost"}).json()["data"]
    assert made["key_string"] == "capsule" and made["is_custom_flag"] is True
    again = api.post("/v1/activityTypes", {"name": "Capsule", "icon_key": "signpost"}).json()["data"]
    assert again["key_string"] != "capsule"  # a clashing key_string is numbered
    assert api.post("/api/v2/activities", {"type": "capsule", "subject": "Viewed"}).status_code == 200


def test_organizations_are_searched_by_exact_name(api):
    org = api.post("/api/v2/organizations", {"name": "Northwind"}).json()["data"]
    items = api.get("/api/v2/organizations/search", term="northwind", fields="name", exact_match="true").json()
    assert [i["item"]["id"] for i in items["data"]["items"]] == [org["id"]]


# ---------------------------------------------------------------------------------------------
# v1: notes, leads, users, webhooks — and the deprecated routes


@pytest.mark.parametrize("prefix", ["/v1", "/api/v1"])
def test_notes_answer_on_both_v1_paths(api, prefix):
    ann = person(api)
    empty = api.get(f"{prefix}/notes", person_id=ann["id"]).json()
    assert empty == {
        "success": True,
        "data": None,
        "additional_data": {"pagination": {"start": 0, "limit": 100, "more_items_in_collection": False}},
    }
    made = api.post(
        f"{prefix}/notes",
        {"content": "<b>Asked</b><br>[capsule:k1]", "person_id": ann["id"], "add_time": "2026-01-02 10:00:00"},
    )
    assert made.status_code == 201 and NOTE_KEYS <= set(made.json()["data"])
    for i in range(2):
        api.post(f"{prefix}/notes", {"content": f"n{i}", "person_id": ann["id"]})
    first = api.get(f"{prefix}/notes", person_id=ann["id"], limit=2).json()
    assert len(first["data"]) == 2 and first["additional_data"]["pagination"]["next_start"] == 2
    assert_error(api.post(f"{prefix}/notes", {"content": "orphan"}), 400, "person_id")


def test_leads_have_uuid_ids_and_attach_to_a_person(api):
    ann = person(api)
    made = api.post("/v1/leads", {"title": "Ann Lee", "person_id": ann["id"]})
    lead = made.json()["data"]
    assert made.status_code == 201 and LEAD_KEYS <= set(lead) and uuid.UUID(lead["id"])
    assert [x["id"] for x in api.get("/api/v1/leads", person_id=ann["id"]).json()["data"]] == [lead["id"]]
    api.patch(f"/v1/leads/{lead['id']}", {"is_archived": True})
    assert api.get("/v1/leads", person_id=ann["id"]).json()["data"] == []
    assert len(api.get("/v1/leads/archived").json()["data"]) == 1
    assert_error(api.post("/v1/leads", {"title": "Nobody"}), 400, "person")


def test_users_me_names_the_company_and_user(api, pd):
    me = api.get("/api/v1/users/me").json()["data"]
    assert (me["company_id"], me["company_name"], me["email"]) == (pd.company_id, pd.company_name, pd.user_email)
    assert api.get("/v1/users/me").json()["data"]["id"] == me["id"]


def test_webhooks_are_v1_with_basic_credentials_and_need_an_admin(api, pd):
    made = api.post(
        "/v1/webhooks",
        {
            "subscription_url": "https://hooks.example.com/in",
            "event_action": "*",
            "event_object": "person",
            "name": "ours",
            "http_auth_user": "u",
            "http_auth_password": "p",
            "version": "2.0",
        },
    )
    body = made.json()
    assert made.status_code == 201 and body["status"] == "ok" and body["data"]["http_auth_user"] == "u"
    assert [w["id"] for w in api.get("/api/v1/webhooks").json()["data"]] == [body["data"]["id"]]
    assert_error(
        api.post("/v1/webhooks", {"subscription_url": "ftp://x", "event_action": "*", "event_object": "rocket"}),
        400,
        "subscription_url",
    )
    assert api.call("DELETE", f"/v1/webhooks/{body['data']['id']}").json()["success"] is True
    assert_error(api.call("DELETE", f"/v1/webhooks/{body['data']['id']}"), 404)
    pd.records.users[1]["is_admin"] = 0
    assert_error(api.get("/v1/webhooks"), 403)


@pytest.mark.parametrize(
    ("path", "deprecated"),
    [
        ("/v1/persons", True),
        ("/api/v1/persons/5", True),
        ("/v1/persons/search", True),
        ("/v1/deals", True),
        ("/v1/activities", True),
        ("/v1/organizations", True),
        ("/v1/personFields", True),
        ("/api/v1/dealFields", True),
        ("/v1/itemSearch", True),
        ("/v1/notes", False),
        ("/api/v1/leads", False),
        ("/v1/webhooks", False),
        ("/v1/users/me", False),
        ("/v1/activityTypes", False),
        ("/api/v2/persons", False),
    ],
)
def test_the_deprecated_v1_routes_are_known(path, deprecated):
    assert is_deprecated_v1(path) is deprecated


def test_deprecated_v1_routes_answer_until_the_switch_makes_them_gone(api, pd):
    ann = person(api)
    code = pd.add_custom_field("person", "Tier")["field_code"]
    api.patch(f"/api/v2/persons/{ann['id']}", {"custom_fields": {code: "gold"}})
    v1 = api.get(f"/v1/persons/{ann['id']}").json()["data"]
    assert v1["email"] == ann["emails"] and v1[code] == "gold" and re.match(r"^\d{4}-\d\d-\d\d \d\d:", v1["add_time"])
    assert api.get("/v1/personFields").json()["data"][0]["key"] == "id"
    assert pd.v1_calls == 2
    switched = requests.post(pd.base_url + "/__sandbox__/settings", json={"v1_deprecated_gone": True}, timeout=5)
    assert switched.json()["v1_deprecated_gone"] is True
    for path in (
        "/v1/persons",
        f"/api/v1/persons/{ann['id']}",
        "/v1/persons/search?term=ann",
        "/v1/deals",
        "/v1/activities",
        "/v1/organizations",
        "/v1/personFields",
        "/v1/itemSearch?term=ann",
    ):
        assert_error(api.call("GET", path), 410, "gone")
    assert api.post("/v1/persons", {"name": "X"}).status_code == 410
    assert api.get("/v1/notes").status_code == 200 and api.get("/api/v2/persons").status_code == 200
    assert pd.v1_calls == 11 and pd.state()["v1_deprecated_gone"] is True


# ---------------------------------------------------------------------------------------------
# Authentication and OAuth


def test_an_api_token_works_in_the_header_or_the_query(pd, token):
    assert requests.get(pd.base_url + "/api/v2/persons", headers={"x-api-token": token}, timeout=5).status_code == 200
    assert requests.get(pd.base_url + "/api/v2/persons", params={"api_token": token}, timeout=5).status_code == 200
    assert_error(requests.get(pd.base_url + "/api/v2/persons", headers={"x-api-token": "0" * 40}, timeout=5), 401)
    assert_error(requests.get(pd.base_url + "/api/v2/persons", timeout=5), 401, "unauthorized")
    assert re.match(r"^[0-9a-f]{40}$", token)


class _Form(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.fields: dict[str, str] = {}
        self.buttons: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "input" and a.get("type") == "hidden":
            self.fields[a["name"]] = a.get("value") or ""
        if tag == "button":
            self.buttons.append(a.get("value") or "")


def consent(pd, decision: str) -> dict[str, str]:
    url = (
        pd.base_url
        + "/oauth/authorize?"
        + "&".join(f"{k}={v}" for k, v in {"client_id": CLIENT_ID, "redirect_uri": REDIRECT, "state": "s1"}.items())
    )
    page = requests.get(url, timeout=5)
    form = _Form()
    form.feed(page.text)
    assert page.status_code == 200 and form.buttons == ["allow", "deny"]
    answer = requests.post(
        pd.base_url + "/oauth/authorize", data={**form.fields, "decision": decision}, allow_redirects=False, timeout=5
    )
    assert answer.status_code == 302 and answer.headers["Location"].startswith(REDIRECT)
    return {k: v[0] for k, v in parse_qs(urlsplit(answer.headers["Location"]).query).items()}


def token_call(pd, data: dict, *, basic: bool = True) -> requests.Response:
    auth = (CLIENT_ID, CLIENT_SECRET) if basic else None
    if not basic:
        data = {**data, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    return requests.post(pd.base_url + "/oauth/token", data=data, auth=auth, timeout=5)


def test_the_code_is_exchanged_with_basic_client_auth_for_tokens_and_the_api_domain(pd):
    back = consent(pd, "allow")
    assert back["state"] == "s1"
    answer = token_call(pd, {"grant_type": "authorization_code", "code": back["code"], "redirect_uri": REDIRECT})
    tokens = answer.json()
    assert answer.status_code == 200 and tokens["token_type"] == "Bearer" and tokens["expires_in"] == 3600
    assert tokens["api_domain"] == pd.base_url and "base" in tokens["scope"].split(",")
    assert tokens["access_token"].startswith("v1u:") and tokens["refresh_token"]
    me = requests.get(
        pd.base_url + "/api/v1/users/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}, timeout=5
    )
    assert me.json()["data"]["company_id"] == pd.company_id
    again = token_call(pd, {"grant_type": "authorization_code", "code": back["code"], "redirect_uri": REDIRECT})
    assert again.status_code == 400 and "authorization_code is invalid" in again.json()["message"]


def test_the_token_endpoint_refuses_client_credentials_in_the_body(pd):
    back = consent(pd, "allow")
    answer = token_call(
        pd, {"grant_type": "authorization_code", "code": back["code"], "redirect_uri": REDIRECT}, basic=False
    )
    assert answer.status_code == 401 and answer.json()["error"] == "invalid_client"
    wrong = requests.post(
        pd.base_url + "/oauth/token",
        auth=(CLIENT_ID, "wrong"),
        timeout=5,
        data={"grant_type": "refresh_token", "refresh_token": "x"},
    )
    assert wrong.status_code == 401 and wrong.json()["message"] == "Invalid client: client is invalid"
    missing = token_call(pd, {})
    assert missing.status_code == 400 and missing.json()["message"] == "Missing parameter: grant_type"


def test_a_denied_consent_comes_back_as_access_denied(pd):
    assert consent(pd, "deny")["error"] == "access_denied"


def test_refresh_tokens_rotate_and_are_single_use(pd):
    issued = pd.issue_oauth_token()
    first = token_call(pd, {"grant_type": "refresh_token", "refresh_token": issued.refresh_token}).json()
    assert first["refresh_token"] != issued.refresh_token and first["api_domain"] == pd.base_url
    reused = token_call(pd, {"grant_type": "refresh_token", "refresh_token": issued.refresh_token})
    assert reused.status_code == 400 and reused.json()["message"] == "Invalid grant: refresh_token is invalid"
    second = token_call(pd, {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]})
    assert second.status_code == 200 and pd.oauth.refresh_calls == 3


def test_revoke_takes_basic_client_auth_and_kills_the_token(pd):
    issued = pd.issue_oauth_token()
    bearer = {"Authorization": f"Bearer {issued.access_token}"}
    refused = requests.post(pd.base_url + "/oauth/revoke", data={"token": issued.refresh_token}, timeout=5)
    assert refused.status_code == 401
    assert requests.get(pd.base_url + "/api/v2/persons", headers=bearer, timeout=5).status_code == 200
    revoked = requests.post(
        pd.base_url + "/oauth/revoke", data={"token": issued.refresh_token}, auth=(CLIENT_ID, CLIENT_SECRET), timeout=5
    )
    assert revoked.status_code == 200
    assert_error(requests.get(pd.base_url + "/api/v2/persons", headers=bearer, timeout=5), 401)


def test_an_expired_access_token_is_a_401_saying_so(pd):
    issued = pd.issue_oauth_token()
    pd.oauth.expire(issued.access_token)
    answer = requests.get(
        pd.base_url + "/api/v2/persons", headers={"Authorization": f"Bearer {issued.access_token}"}, timeout=5
    )
    assert_error(answer, 401, "expired")


# ---------------------------------------------------------------------------------------------
# Rate limits and the daily token budget


def test_every_answer_carries_the_burst_and_daily_budget_headers_and_v2_costs_half(api, pd):
    first = api.get("/api/v2/persons")
    second = api.get("/v1/notes")
    third = api.get("/api/v2/persons")
    for answer in (first, second, third):
        assert int(answer.headers["x-ratelimit-limit"]) == 1000
        assert int(answer.headers["x-ratelimit-reset"]) >= 1
        assert int(answer.headers["x-daily-ratelimit-token-limit"]) == pd.daily_token_budget
    assert int(first.headers["x-ratelimit-remaining"]) - int(second.headers["x-ratelimit-remaining"]) == 1
    left = [int(a.headers["x-daily-ratelimit-token-remaining"]) for a in (first, second, third)]
    v1_cost, v2_cost = left[0] - left[1], left[1] - left[2]
    assert v1_cost == 2 * v2_cost > 0


def test_over_the_burst_limit_is_a_429_with_the_headers():
    app = build(api_token_limit=3)
    with EmulatorServer(app) as server:
        token = app.issue_api_token()
        answers = [
            requests.get(server.url + "/api/v2/persons", headers={"x-api-token": token}, timeout=5) for _ in range(4)
        ]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    limited = assert_error(answers[3], 429, "over limit")
    assert limited["code"] == "ERR_RATE_LIMIT"
    assert answers[3].headers["x-ratelimit-remaining"] == "0" and int(answers[3].headers["x-ratelimit-reset"]) >= 1
    assert app.rate_limited_count == 1


def test_searches_have_their_own_lower_burst_limit():
    app = build(search_limit=2)
    with EmulatorServer(app) as server:
        token = app.issue_api_token()

        def get(path: str) -> requests.Response:
            return requests.get(server.url + path, headers={"x-api-token": token}, timeout=5)

        searches = [get("/api/v2/persons/search?term=ann@example.com&fields=email&exact_match=true") for _ in range(3)]
        other = get("/api/v2/persons")
    assert [a.status_code for a in searches] == [200, 200, 429]
    assert_error(searches[2], 429, "search request over limit")
    assert other.status_code == 200  # the token's own window still has room
    assert app.rate_limited_count == 1


def test_a_spent_daily_budget_is_a_429_until_tomorrow():
    app = build(daily_token_budget=15)
    with EmulatorServer(app) as server:
        token = app.issue_api_token()
        answers = [
            requests.get(server.url + "/api/v2/persons", headers={"x-api-token": token}, timeout=5) for _ in range(2)
        ]
    assert answers[0].status_code == 200 and answers[0].headers["x-daily-ratelimit-token-remaining"] == "5"
    assert_error(answers[1], 429, "daily")
    assert answers[1].headers["x-daily-ratelimit-token-remaining"] == "0"


# ---------------------------------------------------------------------------------------------
# Faults


def test_an_injected_rate_limit_is_pipedrives_429(api, pd):
    pd.faults.inject("rate_limit")
    answer = api.get("/api/v2/persons")
    assert_error(answer, 429)
    assert answer.headers["x-ratelimit-remaining"] == "0"


def test_an_injected_server_error_is_a_500_in_pipedrives_shape(api, pd):
    pd.faults.inject("server_error", path_prefix="/api/v2/deals")
    assert api.get("/api/v2/persons").status_code == 200  # only the named path fails
    assert_error(api.get("/api/v2/deals"), 500, "internal")


def test_an_injected_drop_closes_the_connection_without_an_answer(api, pd):
    pd.faults.inject("drop")
    with pytest.raises(requests.ConnectionError):
        api.get("/api/v2/persons")
    assert api.get("/api/v2/persons").status_code == 200


def test_an_injected_slow_answer_outlasts_a_short_client_timeout(pd, token):
    pd.faults.inject("slow", seconds=1.0)
    with pytest.raises(requests.Timeout):
        requests.get(pd.base_url + "/api/v2/persons", headers={"x-api-token": token}, timeout=0.2)


def test_an_injected_expiry_makes_an_oauth_token_stay_expired(pd):
    issued = pd.issue_oauth_token()
    bearer = {"Authorization": f"Bearer {issued.access_token}"}
    requests.post(pd.base_url + "/__sandbox__/faults", json={"kind": "expire_token"}, timeout=5)
    assert_error(requests.get(pd.base_url + "/api/v2/persons", headers=bearer, timeout=5), 401, "expired")
    assert_error(requests.get(pd.base_url + "/api/v2/persons", headers=bearer, timeout=5), 401, "expired")
    assert pd.oauth.token_state(issued.access_token) == "expired"


# ---------------------------------------------------------------------------------------------
# Webhooks out, inspection helpers


class Receiver(EmulatorApp):
    name = "receiver"

    def __init__(self) -> None:
        super().__init__()
        self.got: list[tuple[dict[str, str], dict]] = []
        self.route("POST", r"/hook", self._hook, auth=False)

    def _hook(self, request: Request) -> Response:
        self.got.append((request.headers, json.loads(request.body)))
        return Response.json({"ok": True})


def test_the_webhook_helper_sends_a_v2_body_with_basic_credentials(api, pd):
    ann = person(api)
    api.patch(f"/api/v2/persons/{ann['id']}", {"name": "Annie Lee"})
    pd.edit_in_ui("person", ann["id"], {"name": "Ann Lee-Smith"})
    receiver = Receiver()
    with EmulatorServer(receiver) as server:
        events = pd.events_for_changes()
        statuses = [pd.send_webhook(server.url + "/hook", e, "capsule", "s3cret")[0] for e in events]
    assert statuses == [200, 200, 200]
    headers, created = receiver.got[0]
    assert base64.b64decode(headers["authorization"][6:]).decode() == "capsule:s3cret"
    assert created["meta"]["action"] == "create" and created["meta"]["change_source"] == "api"
    assert created["meta"]["entity"] == "person" and created["meta"]["entity_id"] == str(ann["id"])
    assert created["data"]["emails"] == ann["emails"] and created["previous"] is None
    _h, by_api = receiver.got[1]
    _h, by_ui = receiver.got[2]
    assert by_api["previous"] == {"name": "Ann Lee"} and by_api["meta"]["user_id"] == by_api["meta"]["webhook_owner_id"]
    assert by_ui["meta"]["change_source"] == "app" and by_ui["meta"]["user_id"] == str(UI_USER_ID)
    assert by_ui["data"]["name"] == "Ann Lee-Smith" and by_ui["meta"]["version"] == "2.0"


def test_registered_webhooks_receive_matching_changes_with_their_credentials(api, pd):
    receiver = Receiver()
    with EmulatorServer(receiver) as server:
        api.post(
            "/v1/webhooks",
            {
                "subscription_url": server.url + "/hook",
                "event_action": "*",
                "event_object": "deal",
                "http_auth_user": "u",
                "http_auth_password": "pw",
            },
        )
        ann = person(api)
        api.post("/api/v2/deals", {"title": "Won", "person_id": ann["id"]})
        results = pd.deliver()
    assert [status for _id, status in results] == [200]
    headers, body = receiver.got[0]
    assert body["meta"]["entity"] == "deal" and headers["authorization"] == pd.basic_header("u", "pw")


def test_the_inspection_helpers_and_counters(api, pd):
    ann = person(api, "Ann@Example.com")
    api.post("/v1/notes", {"content": "x [capsule:n1]", "person_id": ann["id"]})
    api.post("/api/v2/activities", {"type": "call", "person_id": ann["id"], "note": "y [capsule:a1]"})
    assert pd.find_person("ann@example.COM")["id"] == ann["id"] and pd.find_person("nobody@example.com") is None
    assert len(pd.notes()) == 1 and len(pd.activities()) == 1 and pd.deals() == []
    assert pd.calls_by_route["POST /api/v2/persons"] == 1 and pd.calls_by_route["POST /v1/notes"] == 1
    assert pd.api_calls == 3 and pd.v1_calls == 0
    probe = PipedriveProbe()
    assert probe.people(pd) == [(str(ann["id"]), "ann@example.com")]
    assert sorted(probe.engagement_keys(pd)) == ["a1", "n1"]
    assert pd.state()["records"]["person"] == 1
