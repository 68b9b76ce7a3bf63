"""The HubSpot sandbox speaks HubSpot's wire format: real HTTP, every JSON answer checked against the spec.

No database: these tests start the emulator on loopback and talk to it with ``requests``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from integrations.sandbox.core import EmulatorApp, EmulatorServer, Request, Response
from integrations.sandbox.hubspot import HubSpotEmulator, build, sign_v3
from tests.openapi_check import load_spec, validate_http_response, validate_response

REDIRECT = "http://127.0.0.1:8000/integrations/oauth/hubspot/callback"
CLIENT_ID, CLIENT_SECRET = "test-client", "test-secret"
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


# ---------------------------------------------------------------------------------------------
# Spec checking: which vendor document describes which path


def spec_for(path: str) -> tuple[str, str] | None:
    """(spec file, path as the spec writes it) for a request path, or None when no spec covers it."""
    if m := re.match(r"^/crm/v3/objects/([^/]+)(.*)$", path):
        name, rest = m.groups()
        if name in ("deals", "0-3"):  # deals.json writes its paths with the type id
            return "hubspot/deals.json", f"/crm/v3/objects/0-3{rest}"
        if name in ("contacts", "companies", "notes", "tasks", "calls", "meetings", "emails", "leads"):
            return f"hubspot/{name}.json", path
        return "hubspot/objects.json", path
    if m := re.match(r"^/crm/v4/associations/([^/]+)/([^/]+)/labels$", path):
        return "hubspot/associationsSchema.json", f"/crm/associations/v4/{m[1]}/{m[2]}/labels"
    for prefix, spec in (
        ("/crm/associations/v4/", "hubspot/associationsSchema.json"),
        ("/crm/v4/", "hubspot/associations.json"),
        ("/crm/v3/properties/", "hubspot/properties.json"),
        ("/crm/v3/owners", "hubspot/crmOwners.json"),
        ("/crm/v3/pipelines/", "hubspot/pipelines.json"),
        ("/oauth/v3/", "hubspot/oauth-v3/oauth.json"),
        ("/oauth/v1/", "hubspot/oauth.json"),
    ):
        if path.startswith(prefix):
            return spec, path
    return None


def check(response: requests.Response) -> requests.Response:
    """Validate a JSON answer against its spec. 429s are exempt: HubSpot's rate-limit body has no
    `category`, unlike the spec's Error schema (crm-reference §2.5 gives the vendor's shape)."""
    path = urlsplit(response.request.url).path
    found = spec_for(path)
    if found is None or response.status_code == 429 or "json" not in response.headers.get("Content-Type", "json"):
        return response
    spec, spec_path = found
    validate_http_response(spec, response, spec_path)
    return response


class Api:
    """A tiny HubSpot client: bearer auth, JSON bodies, every answer spec-checked."""

    def __init__(self, base_url: str, token: str | None) -> None:
        self.base_url, self.token = base_url, token
        self.session = requests.Session()

    def call(self, method: str, path: str, *, token: str | None = None, validate: bool = True, **kwargs):
        headers = dict(kwargs.pop("headers", {}))
        bearer = token if token is not None else self.token
        if bearer:
            headers["Authorization"] = f"Bearer {bearer}"
        response = self.session.request(method, self.base_url + path, headers=headers, timeout=10, **kwargs)
        return check(response) if validate else response

    def get(self, path: str, **kw):
        return self.call("GET", path, **kw)

    def post(self, path: str, body=None, **kw):
        return self.call("POST", path, json=body, **kw)

    def patch(self, path: str, body=None, **kw):
        return self.call("PATCH", path, json=body, **kw)

    def put(self, path: str, body=None, **kw):
        return self.call("PUT", path, json=body, **kw)

    def delete(self, path: str, **kw):
        return self.call("DELETE", path, **kw)


@pytest.fixture(scope="module")
def hub():
    # A generous search limit here; the 5/s default has its own test.
    app = HubSpotEmulator(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, redirect_uris=[REDIRECT], search_limit=1000)
    server = EmulatorServer(app).start()
    yield app
    server.stop()


@pytest.fixture(autouse=True)
def clean(hub):
    hub.reset()
    yield


@pytest.fixture(scope="module")
def token(hub) -> str:
    return hub.issue_oauth_token().access_token


@pytest.fixture
def api(hub, token) -> Api:
    return Api(hub.base_url, token)


def serve(**options) -> tuple[HubSpotEmulator, EmulatorServer]:
    app = build(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, redirect_uris=[REDIRECT], **options)
    return app, EmulatorServer(app).start()


def note(api: Api, contact_id: str | None = None, **props):
    body = {
        "properties": {"hs_timestamp": "2025-03-01T10:00:00Z", "hs_note_body": "Viewed the pricing capsule", **props}
    }
    if contact_id:
        body["associations"] = [
            {"to": {"id": contact_id}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 202}]}
        ]
    return api.post("/crm/v3/objects/notes", body)


def contact(api: Api, email: str, **props) -> str:
    response = api.post("/crm/v3/objects/contacts", {"properties": {"email": email, **props}})
    assert response.status_code == 201, response.text
    return response.json()["id"]


# ---------------------------------------------------------------------------------------------
# OAuth


class _Form(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.fields: dict[str, str] = {}
        self.buttons: dict[str, str] = {}

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "input" and a.get("type") == "hidden":
            self.fields[a["name"]] = a.get("value", "")
        if tag == "button":
            self.buttons[a.get("id", "")] = a.get("value", "")


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def consent(hub, decision: str = "allow", **params) -> dict[str, list[str]]:
    """Open the consent page, submit it as the browser would, return the redirect's query."""
    query = {
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT,
        "scope": "oauth crm.objects.contacts.write",
        "state": "st-123",
        **params,
    }
    page = requests.get(f"{hub.base_url}/oauth/authorize", params=query, timeout=5)
    assert page.status_code == 200
    form = _Form()
    form.feed(page.text)
    answer = requests.post(
        f"{hub.base_url}/oauth/authorize", data={**form.fields, "decision": decision}, allow_redirects=False, timeout=5
    )
    assert answer.status_code == 302
    location = answer.headers["Location"]
    assert location.startswith(REDIRECT + "?")
    return parse_qs(urlsplit(location).query)


def exchange(hub, version: str = "v1", **form):
    data = {
        "grant_type": "authorization_code",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "redirect_uri": REDIRECT,
        **form,
    }
    return check(requests.post(f"{hub.base_url}/oauth/{version}/token", data=data, timeout=5))


def test_the_consent_page_has_allow_and_deny_buttons(hub):
    page = requests.get(
        f"{hub.base_url}/oauth/authorize",
        params={"client_id": CLIENT_ID, "redirect_uri": REDIRECT, "scope": "oauth"},
        timeout=5,
    )
    form = _Form()
    form.feed(page.text)
    assert page.headers["Content-Type"].startswith("text/html")
    assert form.buttons == {"allow": "allow", "deny": "deny"}
    assert form.fields["client_id"] == CLIENT_ID


def test_code_flow_with_pkce_issues_tokens_that_work_on_the_crm(hub):
    verifier, challenge = pkce()
    query = consent(
        hub, code_challenge=challenge, code_challenge_method="S256", optional_scope="crm.objects.deals.read"
    )
    assert query["state"] == ["st-123"]
    answer = exchange(hub, code=query["code"][0], code_verifier=verifier)
    assert answer.status_code == 200
    tokens = answer.json()
    assert tokens["token_type"] == "bearer" and tokens["expires_in"] == 1800
    assert tokens["hub_id"] == hub.hub_id and tokens["token_use"] == "access_token"
    assert set(tokens["scopes"]) == {"oauth", "crm.objects.contacts.write", "crm.objects.deals.read"}
    crm = Api(hub.base_url, tokens["access_token"]).get("/crm/v3/objects/contacts")
    assert crm.status_code == 200 and crm.json() == {"results": []}


def test_a_wrong_pkce_verifier_is_refused(hub):
    _verifier, challenge = pkce()
    query = consent(hub, code_challenge=challenge, code_challenge_method="S256")
    answer = exchange(hub, code=query["code"][0], code_verifier="not-the-verifier")
    assert answer.status_code == 400
    assert answer.json()["status"] == "BAD_AUTH_CODE" and answer.json()["error"] == "invalid_grant"


def test_an_authorization_code_works_once(hub):
    code = consent(hub)["code"][0]
    assert exchange(hub, code=code).status_code == 200
    again = exchange(hub, "v3", code=code)
    assert again.status_code == 400
    assert again.json()["status"] == "BAD_AUTH_CODE" and again.json()["message"] == "missing or unknown auth code"


def test_a_redirect_uri_that_differs_from_the_authorize_one_is_refused(hub):
    code = consent(hub)["code"][0]
    answer = exchange(hub, code=code, redirect_uri="http://127.0.0.1:8000/elsewhere")
    assert answer.status_code == 400 and answer.json()["status"] == "BAD_REDIRECT_URI"
    page = requests.get(
        f"{hub.base_url}/oauth/authorize",
        params={"client_id": CLIENT_ID, "redirect_uri": "https://evil.example/cb"},
        timeout=5,
    )
    assert page.status_code == 400


def test_denying_consent_redirects_with_access_denied_and_the_state(hub):
    query = consent(hub, decision="deny", state="keep-me")
    assert query["error"] == ["access_denied"] and query["state"] == ["keep-me"]
    assert "code" not in query


def test_a_wrong_client_secret_is_refused(hub):
    code = consent(hub)["code"][0]
    answer = exchange(hub, code=code, client_secret="wrong")
    assert answer.status_code == 400 and answer.json()["status"] == "BAD_CLIENT_SECRET"


def refresh(hub, refresh_token: str, version: str = "v1"):
    data = {
        "grant_type": "refresh_token",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "refresh_token": refresh_token,
    }
    return check(requests.post(f"{hub.base_url}/oauth/{version}/token", data=data, timeout=5))


def test_refresh_keeps_the_refresh_token_by_default(hub):
    first = exchange(hub, code=consent(hub)["code"][0]).json()
    again = refresh(hub, first["refresh_token"])
    assert again.status_code == 200
    assert again.json()["refresh_token"] == first["refresh_token"]
    assert again.json()["access_token"] != first["access_token"]
    assert refresh(hub, first["refresh_token"], "v3").status_code == 200  # still usable
    assert Api(hub.base_url, again.json()["access_token"]).get("/crm/v3/owners").status_code == 200


def test_refresh_rotates_the_refresh_token_when_asked_to():
    app, server = serve(rotate_refresh_tokens=True, access_token_ttl=60)
    try:
        first = exchange(app, code=consent(app)["code"][0]).json()
        assert first["expires_in"] == 60
        rotated = refresh(app, first["refresh_token"])
        assert rotated.status_code == 200 and rotated.json()["refresh_token"] != first["refresh_token"]
        old = refresh(app, first["refresh_token"])
        assert old.status_code == 400 and old.json()["status"] == "BAD_REFRESH_TOKEN"
        assert refresh(app, rotated.json()["refresh_token"]).status_code == 200
    finally:
        server.stop()


def test_revoking_a_refresh_token_spares_live_access_tokens_which_can_be_revoked_alone(hub):
    tokens = exchange(hub, code=consent(hub)["code"][0]).json()
    revoke = requests.post(
        f"{hub.base_url}/oauth/v3/token/revoke",
        timeout=5,
        data={"token": tokens["refresh_token"], "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
    )
    assert revoke.status_code == 200
    assert refresh(hub, tokens["refresh_token"]).json()["status"] == "BAD_REFRESH_TOKEN"
    assert Api(hub.base_url, tokens["access_token"]).get("/crm/v3/objects/contacts").status_code == 200
    requests.post(
        f"{hub.base_url}/oauth/v3/token/revoke",
        timeout=5,
        data={"token": tokens["access_token"], "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
    )
    assert Api(hub.base_url, tokens["access_token"]).get("/crm/v3/objects/contacts").status_code == 401


def test_deleting_a_refresh_token_with_v1(hub):
    tokens = hub.issue_oauth_token()
    info = check(requests.get(f"{hub.base_url}/oauth/v1/refresh-tokens/{tokens.refresh_token}", timeout=5))
    assert info.status_code == 200 and info.json()["hub_id"] == hub.hub_id
    gone = check(requests.delete(f"{hub.base_url}/oauth/v1/refresh-tokens/{tokens.refresh_token}", timeout=5))
    assert gone.status_code == 204
    assert refresh(hub, tokens.refresh_token).status_code == 400
    missing = check(requests.get(f"{hub.base_url}/oauth/v1/refresh-tokens/{tokens.refresh_token}", timeout=5))
    assert missing.status_code == 404


def introspect(hub, value: str, validate: bool = True):
    answer = requests.post(
        f"{hub.base_url}/oauth/v3/token/introspect",
        timeout=5,
        data={"token": value, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
    )
    return check(answer) if validate else answer


def test_introspection_describes_access_and_refresh_tokens(hub):
    tokens = hub.issue_oauth_token()
    access = introspect(hub, tokens.access_token).json()
    assert access["active"] is True and access["token_use"] == "access_token"
    assert access["hub_id"] == hub.hub_id and 0 < access["expires_in"] <= 1800
    refreshing = introspect(hub, tokens.refresh_token).json()
    assert refreshing["active"] is True and refreshing["token_use"] == "refresh_token"
    hub.oauth.expire(tokens.access_token)
    assert introspect(hub, tokens.access_token).json()["active"] is False
    # An unknown token: RFC 7662's bare {"active": false}, which the spec's schema does not describe.
    unknown = introspect(hub, "no-such-token", validate=False)
    assert unknown.status_code == 200 and unknown.json() == {"active": False}


def test_the_access_token_endpoint_names_the_connected_portal(hub):
    tokens = hub.issue_oauth_token(scopes=["oauth", "crm.objects.contacts.read"])
    info = check(requests.get(f"{hub.base_url}/oauth/v1/access-tokens/{tokens.access_token}", timeout=5))
    body = info.json()
    assert info.status_code == 200
    assert body["hub_id"] == hub.hub_id and body["hub_domain"] == hub.hub_domain
    assert body["user"] == hub.user_email and body["user_id"] == hub.user_id
    assert body["scopes"] == ["oauth", "crm.objects.contacts.read"] and body["token_type"] == "access"
    assert 1790 <= body["expires_in"] <= 1800
    assert check(requests.get(f"{hub.base_url}/oauth/v1/access-tokens/nope", timeout=5)).status_code == 404
    hub.oauth.expire(tokens.access_token)
    expired = check(requests.get(f"{hub.base_url}/oauth/v1/access-tokens/{tokens.access_token}", timeout=5))
    assert expired.status_code == 401 and expired.json()["category"] == "EXPIRED_AUTHENTICATION"


def test_private_app_tokens_never_expire_and_carry_the_private_limits(hub):
    pat = hub.issue_private_app_token()
    answer = Api(hub.base_url, pat).get("/crm/v3/objects/contacts")
    assert answer.status_code == 200
    assert answer.headers["X-HubSpot-RateLimit-Max"] == "190"
    assert answer.headers["X-HubSpot-RateLimit-Daily"] == "250000"
    assert answer.headers["X-HubSpot-RateLimit-Daily-Remaining"] == "249999"
    assert hub.oauth.token_state(pat) == "invalid"  # not an OAuth token: nothing can expire it


def test_missing_or_unknown_credentials_get_invalid_authentication(hub):
    api = Api(hub.base_url, None)
    for token in (None, "made-up"):
        answer = api.get("/crm/v3/objects/contacts", token=token or "")
        assert answer.status_code == 401
        assert answer.json()["category"] == "INVALID_AUTHENTICATION"
        assert answer.json()["message"].startswith("Authentication credentials not found")


# ---------------------------------------------------------------------------------------------
# Contacts: single-record routes


def test_contact_lifecycle_create_read_update_archive(api, hub):
    created = api.post(
        "/crm/v3/objects/contacts",
        {"properties": {"email": "Ada@Example.com", "firstname": "Ada", "lifecyclestage": "lead"}},
    )
    assert created.status_code == 201
    body = created.json()
    cid = body["id"]
    assert cid.isdigit() and body["properties"]["hs_object_id"] == cid
    assert body["properties"]["email"] == "ada@example.com"  # HubSpot stores emails lower-cased
    assert ISO_MS.match(body["createdAt"]) and ISO_MS.match(body["properties"]["createdate"])
    assert all(isinstance(v, str) for v in body["properties"].values())

    read = api.get(f"/crm/v3/objects/contacts/{cid}").json()
    assert set(read["properties"]) == {"createdate", "email", "firstname", "hs_object_id", "lastmodifieddate"}

    time.sleep(0.002)
    updated = api.patch(f"/crm/v3/objects/contacts/{cid}", {"properties": {"lastname": "Lovelace", "firstname": ""}})
    assert updated.status_code == 200
    assert updated.json()["properties"]["lastname"] == "Lovelace"
    assert "firstname" not in updated.json()["properties"]  # an empty string clears the value
    assert updated.json()["updatedAt"] > body["updatedAt"]

    assert api.delete(f"/crm/v3/objects/contacts/{cid}").status_code == 204
    gone = api.get(f"/crm/v3/objects/contacts/{cid}")
    assert gone.status_code == 404 and gone.json()["category"] == "OBJECT_NOT_FOUND"
    archived = api.get(f"/crm/v3/objects/contacts/{cid}", params={"archived": "true"}).json()
    assert archived["archived"] is True and ISO_MS.match(archived["archivedAt"])
    assert hub.get("contacts", cid)["archived"] is True


def test_contacts_are_read_and_updated_by_email(api, hub):
    cid = contact(api, "grace@example.com", firstname="Grace")
    read = api.get(
        "/crm/v3/objects/contacts/GRACE@example.com",
        params={"idProperty": "email", "properties": "firstname,email,phone"},
    )
    assert read.json()["id"] == cid
    assert read.json()["properties"] == {
        "firstname": "Grace",
        "email": "grace@example.com",
        "hs_object_id": cid,
        "createdate": hub.get("contacts", cid)["properties"]["createdate"],
        "lastmodifieddate": hub.get("contacts", cid)["properties"]["lastmodifieddate"],
    }
    patched = api.patch(
        "/crm/v3/objects/contacts/grace@example.com",
        {"properties": {"jobtitle": "Admiral"}},
        params={"idProperty": "email"},
    )
    assert patched.status_code == 200 and hub.find_contact("grace@example.com")["properties"]["jobtitle"] == "Admiral"
    bad = api.get("/crm/v3/objects/contacts/Grace", params={"idProperty": "firstname"})
    assert bad.status_code == 400 and bad.json()["category"] == "VALIDATION_ERROR"


def test_a_second_contact_with_the_same_email_is_a_conflict(api):
    cid = contact(api, "dup@example.com")
    again = api.post("/crm/v3/objects/contacts", {"properties": {"email": "DUP@example.com"}})
    assert again.status_code == 409
    assert again.json()["category"] == "CONFLICT"
    assert again.json()["message"] == f"Contact already exists. Existing ID: {cid}"


@pytest.mark.parametrize(
    ("properties", "code", "name"),
    [
        ({"favourite_colour": "teal"}, "PROPERTY_DOESNT_EXIST", "favourite_colour"),
        ({"lifecyclestage": "champion"}, "INVALID_OPTION", "lifecyclestage"),
        ({"email": "not-an-email"}, "INVALID_EMAIL", "email"),
        ({"hs_object_id": "5"}, "READ_ONLY_VALUE", "hs_object_id"),
        ({"num_associated_deals": "3"}, "READ_ONLY_VALUE", "num_associated_deals"),
        ({"hubspot_owner_id": "1"}, "INVALID_OPTION", "hubspot_owner_id"),
    ],
)
def test_invalid_property_values_are_refused_with_hubspots_codes(api, hub, properties, code, name):
    answer = api.post("/crm/v3/objects/contacts", {"properties": {"firstname": "X", **properties}})
    assert answer.status_code == 400
    body = answer.json()
    assert body["category"] == "VALIDATION_ERROR"
    assert body["message"].startswith("Property values were not valid: ")
    detail = json.loads(body["message"].split(": ", 1)[1])
    assert detail[0]["error"] == code and detail[0]["name"] == name
    assert body["errors"][0]["code"] == code
    assert hub.objects("contacts") == []  # nothing half-written


def test_number_date_and_boolean_properties_must_parse(api, hub):
    hub.add_custom_property("contacts", "capsule_score", "number", "number")
    hub.add_custom_property("contacts", "capsule_opted_in", "bool", "booleancheckbox")
    hub.add_custom_property("contacts", "capsule_first_seen", "date", "date")
    for props, code in (
        ({"capsule_score": "lots"}, "INVALID_INTEGER"),
        ({"capsule_opted_in": "maybe"}, "INVALID_BOOLEAN"),
        ({"capsule_first_seen": "2025-03-01T10:00:00Z"}, "INVALID_DATE"),  # dates must be midnight UTC
    ):
        answer = api.post("/crm/v3/objects/contacts", {"properties": props})
        assert answer.status_code == 400 and answer.json()["errors"][0]["code"] == code
    ok = api.post(
        "/crm/v3/objects/contacts",
        {"properties": {"capsule_score": 42.5, "capsule_opted_in": "TRUE", "capsule_first_seen": "1740787200000"}},
    )
    assert ok.status_code == 201
    assert ok.json()["properties"]["capsule_score"] == "42.5"  # JSON numbers become strings on the wire
    assert ok.json()["properties"]["capsule_opted_in"] == "true"
    assert ok.json()["properties"]["capsule_first_seen"] == "2025-03-01"


def test_unknown_object_types_and_paths_are_refused(api):
    answer = api.get("/crm/v3/objects/widgets")
    assert answer.status_code == 400 and answer.json()["message"] == "Unable to infer object type from: widgets"
    assert api.get("/crm/v3/nothing-here").status_code == 404


def test_object_type_ids_work_like_names(api):
    cid = contact(api, "typeid@example.com")
    by_id = api.get(f"/crm/v3/objects/0-1/{cid}")
    assert by_id.status_code == 200 and by_id.json()["properties"]["email"] == "typeid@example.com"
    deal = api.post("/crm/v3/objects/0-3", {"properties": {"dealname": "Pilot", "amount": "1200"}})
    assert deal.status_code == 201
    assert api.get(f"/crm/v3/objects/deals/{deal.json()['id']}").json()["properties"]["pipeline"] == "default"


def test_listing_pages_with_after(api):
    created = api.post(
        "/crm/v3/objects/contacts/batch/create",
        {"inputs": [{"properties": {"email": f"p{n}@example.com"}} for n in range(5)]},
    )
    ids = [r["id"] for r in created.json()["results"]]
    first = api.get("/crm/v3/objects/contacts", params={"limit": 2, "properties": "email"}).json()
    assert [r["id"] for r in first["results"]] == ids[:2]
    after = first["paging"]["next"]["after"]
    assert first["paging"]["next"]["link"].endswith(f"?after={after}")
    rest = api.get("/crm/v3/objects/contacts", params={"limit": 10, "after": after}).json()
    assert [r["id"] for r in rest["results"]] == ids[2:] and "paging" not in rest
    assert api.get("/crm/v3/objects/contacts", params={"limit": 101}).status_code == 400


def test_invalid_json_is_a_validation_error(api):
    answer = api.call("POST", "/crm/v3/objects/contacts", data=b"{nope", headers={"Content-Type": "application/json"})
    assert answer.status_code == 400 and answer.json()["category"] == "VALIDATION_ERROR"


# ---------------------------------------------------------------------------------------------
# Batch routes


def test_batch_create_answers_201_with_every_record(api, hub):
    answer = api.post(
        "/crm/v3/objects/contacts/batch/create",
        {
            "inputs": [
                {"properties": {"email": "a@example.com"}, "objectWriteTraceId": "t-1"},
                {"properties": {"email": "b@example.com"}, "objectWriteTraceId": "t-2"},
            ]
        },
    )
    assert answer.status_code == 201
    body = answer.json()
    assert body["status"] == "COMPLETE" and ISO_MS.match(body["startedAt"])
    assert [r["objectWriteTraceId"] for r in body["results"]] == ["t-1", "t-2"]
    assert len(hub.objects("contacts")) == 2


def test_more_than_100_inputs_is_a_validation_error(api, hub):
    inputs = [{"properties": {"email": f"n{n}@example.com"}} for n in range(101)]
    for action in ("create", "upsert", "update", "read", "archive"):
        answer = api.post(f"/crm/v3/objects/contacts/batch/{action}", {"inputs": inputs})
        assert answer.status_code == 400, action
        assert answer.json()["category"] == "VALIDATION_ERROR"
    assert hub.objects("contacts") == []
    assert api.post("/crm/v3/objects/contacts/batch/create", {"inputs": inputs[:100]}).status_code == 201


def test_a_partly_failing_batch_answers_207_naming_each_failure(api, hub):
    existing = contact(api, "taken@example.com")
    answer = api.post(
        "/crm/v3/objects/contacts/batch/create",
        {
            "inputs": [
                {"properties": {"email": "fine@example.com"}},
                {"properties": {"email": "fine2@example.com", "shoe_size": "9"}, "objectWriteTraceId": "bad-prop"},
                {"properties": {"email": "taken@example.com"}},
            ]
        },
    )
    assert answer.status_code == 207
    body = answer.json()
    assert body["numErrors"] == 2 and len(body["results"]) == 1
    prop_error, conflict = body["errors"]
    assert prop_error["category"] == "VALIDATION_ERROR" and "PROPERTY_DOESNT_EXIST" in prop_error["message"]
    assert prop_error["context"]["inputIndex"] == ["1"] and prop_error["context"]["objectWriteTraceId"] == ["bad-prop"]
    assert conflict["category"] == "CONFLICT" and conflict["context"]["inputIndex"] == ["2"]
    assert conflict["message"] == f"Contact already exists. Existing ID: {existing}"
    assert {c["properties"]["email"] for c in hub.objects("contacts")} == {"taken@example.com", "fine@example.com"}


def test_batch_upsert_by_email_creates_then_updates(api, hub):
    cid = contact(api, "known@example.com", firstname="Old")
    first = api.post(
        "/crm/v3/objects/contacts/batch/upsert",
        {
            "inputs": [
                {"id": "KNOWN@example.com", "idProperty": "email", "properties": {"firstname": "New"}},
                {"id": "fresh@example.com", "idProperty": "email", "properties": {"firstname": "Fresh"}},
            ]
        },
    )
    assert first.status_code == 200
    results = {r["properties"]["email"]: r for r in first.json()["results"]}
    assert results["known@example.com"]["new"] is False and results["known@example.com"]["id"] == cid
    assert results["fresh@example.com"]["new"] is True
    again = api.post(
        "/crm/v3/objects/contacts/batch/upsert",
        {"inputs": [{"id": "fresh@example.com", "idProperty": "email", "properties": {"firstname": "Fresh"}}]},
    )
    assert again.json()["results"][0]["new"] is False
    assert len(hub.objects("contacts")) == 2
    assert hub.find_contact("known@example.com")["properties"]["firstname"] == "New"


def test_activity_upsert_by_a_unique_custom_property_is_idempotent(api, hub):
    cid = contact(api, "act@example.com")
    for object_type in ("notes", "tasks", "calls", "meetings"):
        hub.add_custom_property(object_type, "capsule_event_id", "string", "text", hasUniqueValue=True)
    item = {
        "id": "evt-1",
        "idProperty": "capsule_event_id",
        "properties": {"hs_timestamp": "2025-03-01T10:00:00.000Z", "hs_note_body": "Opened the deck"},
    }
    first = api.post("/crm/v3/objects/notes/batch/upsert", {"inputs": [item]})
    second = api.post("/crm/v3/objects/notes/batch/upsert", {"inputs": [item]})
    assert first.json()["results"][0]["new"] is True and second.json()["results"][0]["new"] is False
    assert first.json()["results"][0]["id"] == second.json()["results"][0]["id"]
    assert [n["properties"]["capsule_event_id"] for n in hub.objects("notes")] == ["evt-1"]
    task = api.post(
        "/crm/v3/objects/tasks/batch/upsert",
        {
            "inputs": [
                {
                    "id": "evt-2",
                    "idProperty": "capsule_event_id",
                    "properties": {
                        "hs_timestamp": "1740823200000",
                        "hs_task_subject": "Call back",
                        "hs_task_status": "NOT_STARTED",
                    },
                }
            ]
        },
    )
    assert task.status_code == 200
    # A single create that repeats a unique value is refused.
    dup = api.post(
        "/crm/v3/objects/notes", {"properties": {"hs_timestamp": "1740823200000", "capsule_event_id": "evt-1"}}
    )
    assert dup.status_code == 409
    assert (
        api.put(
            f"/crm/v4/objects/notes/{first.json()['results'][0]['id']}/associations/default/contacts/{cid}"
        ).status_code
        == 200
    )


def test_upsert_by_a_property_without_unique_values_is_refused(api):
    answer = api.post(
        "/crm/v3/objects/contacts/batch/upsert",
        {"inputs": [{"id": "Ada", "idProperty": "firstname", "properties": {"lastname": "L"}}]},
    )
    assert answer.status_code == 400 and answer.json()["category"] == "VALIDATION_ERROR"
    dup = api.post(
        "/crm/v3/objects/contacts/batch/upsert",
        {
            "inputs": [
                {"id": "x@example.com", "idProperty": "email", "properties": {}},
                {"id": "X@example.com", "idProperty": "email", "properties": {}},
            ]
        },
    )
    assert dup.status_code == 400 and "Duplicate IDs" in dup.json()["message"]


def test_batch_read_reports_missing_ids_in_a_207(api):
    cid = contact(api, "r@example.com", firstname="R")
    answer = api.post(
        "/crm/v3/objects/contacts/batch/read",
        {"inputs": [{"id": cid}, {"id": "999999"}], "properties": ["firstname"], "propertiesWithHistory": []},
    )
    assert answer.status_code == 207
    assert answer.json()["results"][0]["properties"]["firstname"] == "R"
    assert set(answer.json()["results"][0]["properties"]) == {
        "firstname",
        "hs_object_id",
        "createdate",
        "lastmodifieddate",
    }
    error = answer.json()["errors"][0]
    assert error["category"] == "OBJECT_NOT_FOUND" and error["context"]["ids"] == ["999999"]
    by_email = api.post(
        "/crm/v3/objects/contacts/batch/read",
        {
            "inputs": [{"id": "r@example.com"}],
            "idProperty": "email",
            "properties": ["email"],
            "propertiesWithHistory": ["email"],
        },
    )
    assert by_email.status_code == 200
    assert by_email.json()["results"][0]["propertiesWithHistory"]["email"][0]["value"] == "r@example.com"


def test_batch_update_and_archive(api, hub):
    a, b = contact(api, "u1@example.com"), contact(api, "u2@example.com")
    answer = api.post(
        "/crm/v3/objects/contacts/batch/update",
        {
            "inputs": [
                {"id": a, "properties": {"firstname": "One"}},
                {"id": "123456", "properties": {"firstname": "Ghost"}},
                {"id": b, "properties": {"lifecyclestage": "nope"}},
            ]
        },
    )
    assert answer.status_code == 207
    errors = {e["context"]["ids"][0]: e["category"] for e in answer.json()["errors"]}
    assert errors == {"123456": "OBJECT_NOT_FOUND", b: "VALIDATION_ERROR"}
    assert hub.get("contacts", a)["properties"]["firstname"] == "One"
    assert (
        api.post(
            "/crm/v3/objects/contacts/batch/update",
            {"inputs": [{"id": a, "properties": {}}, {"id": a, "properties": {}}]},
        ).status_code
        == 400
    )
    archive = api.post("/crm/v3/objects/contacts/batch/archive", {"inputs": [{"id": a}, {"id": "404404"}]})
    assert archive.status_code == 204 and archive.content == b""
    assert [c["id"] for c in hub.objects("contacts")] == [b]


# ---------------------------------------------------------------------------------------------
# Search


@pytest.fixture
def people(api, hub):
    hub.add_custom_property("contacts", "capsule_score", "number", "number")
    rows = [
        {"email": "ann@acme.com", "firstname": "Ann", "capsule_score": "10", "lifecyclestage": "lead"},
        {"email": "bob@acme.com", "firstname": "Bob", "capsule_score": "55", "lifecyclestage": "customer"},
        {"email": "cy@other.org", "firstname": "Cy", "capsule_score": "80"},
        {"email": "di@other.org", "firstname": "Di Anne"},
    ]
    answer = api.post("/crm/v3/objects/contacts/batch/create", {"inputs": [{"properties": r} for r in rows]})
    return {r["properties"]["firstname"]: r["id"] for r in answer.json()["results"]}


def search(api: Api, *filters, groups=None, **body):
    payload = {
        "filterGroups": groups if groups is not None else ([{"filters": list(filters)}] if filters else []),
        "properties": ["firstname"],
        **body,
    }
    answer = api.post("/crm/v3/objects/contacts/search", payload)
    assert answer.status_code == 200, answer.text
    return answer.json()


def names(result) -> list[str]:
    return [r["properties"]["firstname"] for r in result["results"]]


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        ({"propertyName": "email", "operator": "EQ", "value": "BOB@acme.com"}, ["Bob"]),
        ({"propertyName": "lifecyclestage", "operator": "NEQ", "value": "lead"}, ["Bob", "Cy", "Di Anne"]),
        ({"propertyName": "capsule_score", "operator": "GT", "value": "10"}, ["Bob", "Cy"]),
        ({"propertyName": "capsule_score", "operator": "GTE", "value": "10"}, ["Ann", "Bob", "Cy"]),
        ({"propertyName": "capsule_score", "operator": "LT", "value": "55"}, ["Ann"]),
        ({"propertyName": "capsule_score", "operator": "LTE", "value": "55"}, ["Ann", "Bob"]),
        ({"propertyName": "capsule_score", "operator": "BETWEEN", "value": "20", "highValue": "90"}, ["Bob", "Cy"]),
        ({"propertyName": "firstname", "operator": "IN", "values": ["ann", "cy"]}, ["Ann", "Cy"]),
        ({"propertyName": "firstname", "operator": "NOT_IN", "values": ["ann", "cy"]}, ["Bob", "Di Anne"]),
        ({"propertyName": "lifecyclestage", "operator": "HAS_PROPERTY"}, ["Ann", "Bob"]),
        ({"propertyName": "capsule_score", "operator": "NOT_HAS_PROPERTY"}, ["Di Anne"]),
        ({"propertyName": "email", "operator": "CONTAINS_TOKEN", "value": "*@other.org"}, ["Cy", "Di Anne"]),
        ({"propertyName": "firstname", "operator": "CONTAINS_TOKEN", "value": "anne"}, ["Di Anne"]),
        ({"propertyName": "firstname", "operator": "NOT_CONTAINS_TOKEN", "value": "anne"}, ["Ann", "Bob", "Cy"]),
    ],
)
def test_search_filter_operators(api, people, flt, expected):
    result = search(api, flt)
    assert names(result) == expected and result["total"] == len(expected)


def test_search_groups_are_ored_and_filters_anded(api, people):
    groups = [
        {
            "filters": [
                {"propertyName": "email", "operator": "CONTAINS_TOKEN", "value": "*@acme.com"},
                {"propertyName": "capsule_score", "operator": "GT", "value": "20"},
            ]
        },
        {"filters": [{"propertyName": "firstname", "operator": "EQ", "value": "Di Anne"}]},
    ]
    assert names(search(api, groups=groups)) == ["Bob", "Di Anne"]


def test_search_on_modification_time_sorts_and_pages(api, hub, people):
    since = hub.get("contacts", people["Ann"])["properties"]["lastmodifieddate"]
    flt = {"propertyName": "lastmodifieddate", "operator": "GTE", "value": since}
    page1 = search(api, flt, sorts=[{"propertyName": "capsule_score", "direction": "DESCENDING"}], limit=2)
    assert names(page1) == ["Cy", "Bob"] and page1["total"] == 4
    page2 = search(
        api,
        flt,
        sorts=[{"propertyName": "capsule_score", "direction": "DESCENDING"}],
        limit=2,
        after=page1["paging"]["next"]["after"],
    )
    assert names(page2) == ["Ann", "Di Anne"] and "paging" not in page2
    epoch_ms = str(int(time.time() * 1000) + 60_000)
    assert search(api, {"propertyName": "lastmodifieddate", "operator": "GT", "value": epoch_ms})["total"] == 0
    assert names(search(api, sorts=["-firstname"])) == ["Di Anne", "Cy", "Bob", "Ann"]
    assert names(search(api, query="acme")) == ["Ann", "Bob"]


def test_search_refuses_a_limit_over_200_and_unknown_properties(api, people):
    too_many = api.post("/crm/v3/objects/contacts/search", {"filterGroups": [], "limit": 201})
    assert too_many.status_code == 400
    unknown = api.post(
        "/crm/v3/objects/contacts/search",
        {"filterGroups": [{"filters": [{"propertyName": "shoe", "operator": "EQ", "value": "9"}]}]},
    )
    assert unknown.status_code == 400 and unknown.json()["category"] == "VALIDATION_ERROR"
    bad_op = api.post(
        "/crm/v3/objects/contacts/search",
        {"filterGroups": [{"filters": [{"propertyName": "email", "operator": "LIKE", "value": "x"}]}]},
    )
    assert bad_op.status_code == 400


def test_search_has_its_own_tighter_limit_and_no_rate_headers():
    app, server = serve()  # default: 5 searches a second per token
    try:
        api = Api(app.base_url, app.issue_oauth_token().access_token)
        answers = [api.post("/crm/v3/objects/contacts/search", {"filterGroups": []}) for _ in range(6)]
        assert [a.status_code for a in answers] == [200] * 5 + [429]
        assert not any(h.startswith("X-HubSpot-RateLimit") for a in answers for h in a.headers)
        assert answers[-1].json()["policyName"] == "SECONDLY"
        assert api.get("/crm/v3/objects/contacts").status_code == 200  # other routes are unaffected
    finally:
        server.stop()


# ---------------------------------------------------------------------------------------------
# Merge and GDPR delete


def test_merging_two_contacts_keeps_the_primary_and_redirects_the_other(api, hub):
    primary = contact(api, "main@example.com", firstname="Main")
    other = contact(api, "alt@example.com", firstname="Alt", jobtitle="CTO")
    note(api, other)
    merged = api.post("/crm/v3/objects/contacts/merge", {"primaryObjectId": primary, "objectIdToMerge": other})
    assert merged.status_code == 200
    props = merged.json()["properties"]
    assert props["firstname"] == "Main" and props["jobtitle"] == "CTO"
    assert props["hs_additional_emails"] == "alt@example.com" and props["hs_merged_object_ids"] == other
    assert api.get(f"/crm/v3/objects/contacts/{other}").json()["id"] == primary
    assert hub.find_contact("alt@example.com")["id"] == primary
    assert [a["toObjectId"] for a in hub.associations_of("contacts", primary, "notes")]
    assert hub.changes[-1].kind == "merge"
    same = api.post("/crm/v3/objects/contacts/merge", {"primaryObjectId": primary, "objectIdToMerge": primary})
    assert same.status_code == 400


def test_gdpr_delete_erases_by_id_or_email(api, hub):
    cid = contact(api, "forget@example.com")
    note(api, cid)
    assert api.post("/crm/v3/objects/contacts/gdpr-delete", {"objectId": cid}).status_code == 204
    assert hub.get("contacts", cid) is None and hub.associations_of("contacts", cid) == []
    assert "forget@example.com" in hub.gdpr_deleted
    contact(api, "me-too@example.com")
    by_email = api.post(
        "/crm/v3/objects/contacts/gdpr-delete", {"objectId": "me-too@example.com", "idProperty": "email"}
    )
    assert by_email.status_code == 204 and hub.find_contact("me-too@example.com") is None
    unknown = api.post("/crm/v3/objects/contacts/gdpr-delete", {"objectId": "never@example.com", "idProperty": "email"})
    assert unknown.status_code == 204 and "never@example.com" in hub.gdpr_deleted  # blocklisted
    assert api.post("/crm/v3/objects/contacts/gdpr-delete", {"objectId": "555"}).status_code == 404
    assert hub.changes[-1].kind == "privacyDeletion"


# ---------------------------------------------------------------------------------------------
# Every object family


def test_every_object_family_supports_create_read_search(api, hub):
    cid = contact(api, "family@example.com")
    company = api.post("/crm/v3/objects/companies", {"properties": {"name": "Acme", "domain": "acme.com"}})
    deal = api.post(
        "/crm/v3/objects/deals",
        {
            "properties": {
                "dealname": "Capsule pilot",
                "amount": "5000",
                "pipeline": "default",
                "dealstage": "qualifiedtobuy",
                "closedate": "2025-06-30T00:00:00Z",
            }
        },
    )
    ts = "2025-03-01T10:00:00Z"
    task = api.post(
        "/crm/v3/objects/tasks",
        {
            "properties": {
                "hs_timestamp": ts,
                "hs_task_subject": "Follow up",
                "hs_task_status": "NOT_STARTED",
                "hs_task_priority": "HIGH",
                "hs_task_type": "CALL",
            }
        },
    )
    call = api.post(
        "/crm/v3/objects/calls",
        {
            "properties": {
                "hs_timestamp": ts,
                "hs_call_title": "Intro",
                "hs_call_direction": "OUTBOUND",
                "hs_call_duration": "60000",
            }
        },
    )
    meeting = api.post(
        "/crm/v3/objects/meetings",
        {
            "properties": {
                "hs_timestamp": ts,
                "hs_meeting_title": "Demo",
                "hs_meeting_start_time": ts,
                "hs_meeting_end_time": "2025-03-01T11:00:00Z",
                "hs_meeting_outcome": "SCHEDULED",
            }
        },
    )
    email = api.post(
        "/crm/v3/objects/emails",
        {"properties": {"hs_timestamp": ts, "hs_email_subject": "Hello", "hs_email_direction": "EMAIL"}},
    )
    lead = api.post(
        "/crm/v3/objects/leads",
        {
            "properties": {"hs_lead_name": "Family lead", "hs_lead_label": "WARM"},
            "associations": [
                {"to": {"id": cid}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 578}]}
            ],
        },
    )
    created = {
        "companies": company,
        "deals": deal,
        "tasks": task,
        "calls": call,
        "meetings": meeting,
        "emails": email,
        "leads": lead,
        "notes": note(api, cid),
    }
    for object_type, answer in created.items():
        assert answer.status_code == 201, (object_type, answer.text)
        oid = answer.json()["id"]
        assert api.get(f"/crm/v3/objects/{object_type}/{oid}").status_code == 200
        assert api.post(f"/crm/v3/objects/{object_type}/search", {"filterGroups": []}).json()["total"] == 1
        assert "hs_lastmodifieddate" in answer.json()["properties"]
    assert deal.json()["properties"]["closedate"] == "2025-06-30T00:00:00.000Z"
    assert hub.state()["objects"] == {name: 1 for name in hub.records}


def test_activities_need_a_timestamp_and_leads_need_a_contact(api):
    no_time = api.post("/crm/v3/objects/notes", {"properties": {"hs_note_body": "x"}})
    assert no_time.status_code == 400 and no_time.json()["errors"][0]["code"] == "REQUIRED_PROPERTY"
    orphan = api.post("/crm/v3/objects/leads", {"properties": {"hs_lead_name": "Orphan"}})
    assert orphan.status_code == 400
    bad_stage = api.post("/crm/v3/objects/deals", {"properties": {"dealname": "X", "dealstage": "won-ish"}})
    assert bad_stage.status_code == 400 and bad_stage.json()["errors"][0]["code"] == "INVALID_OPTION"


# ---------------------------------------------------------------------------------------------
# Associations


def test_associations_given_at_create_are_stored_both_ways(api, hub):
    cid = contact(api, "assoc@example.com")
    nid = note(api, cid).json()["id"]
    assert hub.associations_of("notes", nid) == [
        {
            "toObjectType": "contacts",
            "toObjectId": cid,
            "associationTypeId": 202,
            "category": "HUBSPOT_DEFINED",
            "label": None,
        }
    ]
    read = api.get(f"/crm/v3/objects/contacts/{cid}", params={"associations": "notes"}).json()
    assert read["associations"]["notes"]["results"] == [{"id": nid, "type": "contact_to_note"}]
    listed = api.get(f"/crm/v4/objects/contacts/{cid}/associations/notes").json()
    assert listed["results"] == [
        {"toObjectId": nid, "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": 201}]}
    ]
    bad = api.post(
        "/crm/v3/objects/notes",
        {
            "properties": {"hs_timestamp": "1740823200000"},
            "associations": [
                {"to": {"id": cid}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 3}]}
            ],
        },
    )
    assert bad.status_code == 400
    missing = note(api, "987654")
    assert missing.status_code == 400


def test_v4_association_routes(api, hub):
    cid = contact(api, "v4@example.com")
    company = api.post("/crm/v3/objects/companies", {"properties": {"name": "Initech"}}).json()["id"]
    default = api.put(f"/crm/v4/objects/contacts/{cid}/associations/default/companies/{company}")
    assert default.status_code == 200
    assert default.json()["results"][0]["associationSpec"] == {
        "associationCategory": "HUBSPOT_DEFINED",
        "associationTypeId": 279,
    }
    labeled = api.put(
        f"/crm/v4/objects/contacts/{cid}/associations/companies/{company}",
        [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 1}],
    )
    assert labeled.status_code == 201
    assert labeled.json()["labels"] == ["Primary"] and labeled.json()["toObjectTypeId"] == "0-2"
    types = api.get(f"/crm/v4/objects/companies/{company}/associations/contacts").json()["results"][0][
        "associationTypes"
    ]
    assert {t["typeId"] for t in types} == {2, 280}
    assert (
        api.put(
            f"/crm/v4/objects/contacts/{cid}/associations/companies/{company}",
            [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 202}],
        ).status_code
        == 400
    )
    assert api.delete(f"/crm/v4/objects/contacts/{cid}/associations/companies/{company}").status_code == 204
    assert hub.associations_of("companies", company) == []


def test_v4_batch_association_routes(api, hub):
    a, b = contact(api, "ba@example.com"), contact(api, "bb@example.com")
    deal = api.post("/crm/v3/objects/deals", {"properties": {"dealname": "Batch deal"}}).json()["id"]
    created = api.post(
        "/crm/v4/associations/deals/contacts/batch/create",
        {
            "inputs": [
                {
                    "from": {"id": deal},
                    "to": {"id": a},
                    "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 3}],
                },
                {
                    "from": {"id": deal},
                    "to": {"id": "31337"},
                    "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 3}],
                },
            ]
        },
    )
    assert created.status_code == 207 and created.json()["numErrors"] == 1
    default = api.post(
        "/crm/v4/associations/deals/contacts/batch/associate/default",
        {"inputs": [{"from": {"id": deal}, "to": {"id": b}}]},
    )
    assert default.status_code == 200
    read = api.post("/crm/v4/associations/deals/contacts/batch/read", {"inputs": [{"id": deal}]})
    assert read.status_code == 200
    assert sorted(t["toObjectId"] for t in read.json()["results"][0]["to"]) == sorted([a, b])
    assert (
        api.post("/crm/v4/associations/contacts/deals/batch/read", {"inputs": [{"id": a}]}).json()["results"][0]["to"][
            0
        ]["associationTypes"][0]["typeId"]
        == 4
    )
    archived = api.post(
        "/crm/v4/associations/deals/contacts/batch/archive", {"inputs": [{"from": {"id": deal}, "to": [{"id": a}]}]}
    )
    assert archived.status_code == 204
    assert [x["toObjectId"] for x in hub.associations_of("deals", deal)] == [b]
    empty = api.post("/crm/v4/associations/contacts/deals/batch/read", {"inputs": [{"id": a}]})
    assert empty.status_code == 207 and empty.json()["errors"][0]["context"]["fromObjectId"] == [a]


@pytest.mark.parametrize(
    ("from_type", "to_type", "type_id"),
    [
        ("notes", "contacts", 202),
        ("tasks", "contacts", 204),
        ("calls", "contacts", 194),
        ("meetings", "contacts", 200),
        ("deals", "contacts", 3),
        ("contacts", "deals", 4),
        ("emails", "contacts", 198),
    ],
)
def test_association_labels_list_hubspots_type_ids(api, from_type, to_type, type_id):
    answer = api.get(f"/crm/v4/associations/{from_type}/{to_type}/labels")
    assert answer.status_code == 200
    assert {"category": "HUBSPOT_DEFINED", "typeId": type_id} in answer.json()["results"]
    assert api.get(f"/crm/associations/v4/{from_type}/{to_type}/labels").json() == answer.json()


def test_user_defined_association_labels(api, hub):
    type_id = hub.add_association_label("contacts", "deals", "Decision maker")
    cid = contact(api, "dm@example.com")
    deal = api.post("/crm/v3/objects/deals", {"properties": {"dealname": "Labelled"}}).json()["id"]
    answer = api.put(
        f"/crm/v4/objects/contacts/{cid}/associations/deals/{deal}",
        [{"associationCategory": "USER_DEFINED", "associationTypeId": type_id}],
    )
    assert answer.status_code == 201 and answer.json()["labels"] == ["Decision maker"]
    labels = api.get("/crm/v4/associations/contacts/deals/labels").json()["results"]
    assert {"category": "USER_DEFINED", "typeId": type_id, "label": "Decision maker"} in labels


# ---------------------------------------------------------------------------------------------
# Properties API


def test_standard_properties_are_hubspot_defined(api):
    answer = api.get("/crm/v3/properties/contacts")
    props = {p["name"]: p for p in answer.json()["results"]}
    for name in (
        "firstname",
        "lastname",
        "email",
        "phone",
        "company",
        "jobtitle",
        "lifecyclestage",
        "hs_lead_status",
        "hubspot_owner_id",
        "city",
        "country",
        "website",
        "lastmodifieddate",
        "createdate",
    ):
        assert props[name]["hubspotDefined"] is True, name
    assert props["lifecyclestage"]["type"] == "enumeration"
    assert "customer" in [o["value"] for o in props["lifecyclestage"]["options"]]
    assert props["email"]["hasUniqueValue"] is True
    for object_type, expected in (
        ("deals", {"dealname", "amount", "closedate", "pipeline", "dealstage"}),
        ("notes", {"hs_note_body", "hs_timestamp"}),
        (
            "tasks",
            {"hs_task_subject", "hs_task_body", "hs_task_status", "hs_task_priority", "hs_task_type", "hs_timestamp"},
        ),
        ("calls", {"hs_call_title", "hs_call_body", "hs_timestamp"}),
        ("meetings", {"hs_meeting_title", "hs_meeting_start_time", "hs_timestamp"}),
        ("companies", {"name", "domain"}),
        ("leads", {"hs_lead_name"}),
    ):
        listed = {p["name"] for p in api.get(f"/crm/v3/properties/{object_type}").json()["results"]}
        assert expected <= listed, object_type
    one = api.get("/crm/v3/properties/contacts/email")
    assert one.status_code == 200 and one.json()["name"] == "email"
    assert api.get("/crm/v3/properties/contacts/nope").status_code == 404


def test_custom_properties_are_created_validated_updated_and_archived(api, hub):
    body = {
        "name": "capsule_engagement",
        "label": "Capsule engagement",
        "type": "enumeration",
        "fieldType": "select",
        "groupName": "contactinformation",
        "options": [
            {"label": "High", "value": "high", "hidden": False},
            {"label": "Low", "value": "low", "hidden": False},
        ],
    }
    created = api.post("/crm/v3/properties/contacts", body)
    assert created.status_code == 201 and created.json()["hubspotDefined"] is False
    assert created.headers["Location"].endswith("/crm/v3/properties/contacts/capsule_engagement")
    assert api.post("/crm/v3/properties/contacts", body).status_code == 409
    for broken in (
        {**body, "name": "Bad Name"},
        {**body, "name": "hs_mine"},
        {**body, "name": "x1", "fieldType": "date"},
        {**body, "name": "x2", "options": []},
        {**body, "name": "x3", "groupName": "nope"},
        {**body, "name": "x4", "type": "blob"},
    ):
        assert api.post("/crm/v3/properties/contacts", broken).status_code == 400, broken["name"]
    assert contact(api, "cp@example.com", capsule_engagement="high")
    wrong = api.post("/crm/v3/objects/contacts", {"properties": {"capsule_engagement": "medium"}})
    assert wrong.json()["errors"][0]["code"] == "INVALID_OPTION"
    patched = api.patch(
        "/crm/v3/properties/contacts/capsule_engagement",
        {"label": "Engagement", "options": [{"label": "Medium", "value": "medium", "hidden": False}]},
    )
    assert patched.status_code == 200 and patched.json()["label"] == "Engagement"
    assert api.post("/crm/v3/objects/contacts", {"properties": {"capsule_engagement": "medium"}}).status_code == 201
    assert api.patch("/crm/v3/properties/contacts/email", {"type": "number", "fieldType": "number"}).status_code == 400
    assert api.delete("/crm/v3/properties/contacts/email").status_code == 400
    assert api.delete("/crm/v3/properties/contacts/capsule_engagement").status_code == 204
    after = api.post("/crm/v3/objects/contacts", {"properties": {"capsule_engagement": "medium"}})
    assert after.json()["errors"][0]["code"] == "PROPERTY_DOESNT_EXIST"
    archived = api.get("/crm/v3/properties/contacts", params={"archived": "true"}).json()["results"]
    assert [p["name"] for p in archived] == ["capsule_engagement"]


def test_property_batches_and_groups(api):
    read = api.post(
        "/crm/v3/properties/contacts/batch/read",
        {"inputs": [{"name": "email"}, {"name": "nope"}], "archived": False, "dataSensitivity": "non_sensitive"},
    )
    assert read.status_code == 207 and read.json()["results"][0]["name"] == "email"
    assert read.json()["errors"][0]["context"]["name"] == ["nope"]
    created = api.post(
        "/crm/v3/properties/notes/batch/create",
        {
            "inputs": [
                {
                    "name": "capsule_event_id",
                    "label": "Capsule event",
                    "type": "string",
                    "fieldType": "text",
                    "groupName": "noteinformation",
                    "hasUniqueValue": True,
                }
            ]
        },
    )
    assert created.status_code == 201 and created.json()["results"][0]["hasUniqueValue"] is True
    groups = api.get("/crm/v3/properties/contacts/groups")
    assert [g["name"] for g in groups.json()["results"]] == ["contactinformation"]
    group = api.post("/crm/v3/properties/contacts/groups", {"name": "capsule", "label": "Capsule"})
    assert group.status_code == 201
    assert api.get("/crm/v3/properties/contacts/groups/capsule").json()["label"] == "Capsule"
    assert api.post("/crm/v3/properties/contacts/batch/archive", {"inputs": [{"name": "email"}]}).status_code == 204


def test_scope_checks_are_optional_and_answer_missing_scopes():
    app, server = serve(enforce_scopes=True)
    try:
        readonly = Api(app.base_url, app.issue_oauth_token(scopes=["oauth", "crm.objects.contacts.read"]).access_token)
        refused = readonly.post(
            "/crm/v3/properties/contacts",
            {"name": "x", "label": "X", "type": "string", "fieldType": "text", "groupName": "contactinformation"},
        )
        assert refused.status_code == 403 and refused.json()["category"] == "MISSING_SCOPES"
        assert refused.json()["errors"][0]["context"]["requiredGranularScopes"] == ["crm.schemas.contacts.write"]
        assert readonly.post("/crm/v3/objects/contacts", {"properties": {}}).status_code == 403
        assert readonly.get("/crm/v3/objects/contacts").status_code == 200
        assert readonly.get("/crm/v3/objects/deals").status_code == 403
        full = Api(app.base_url, app.issue_oauth_token().access_token)
        assert full.post("/crm/v3/objects/contacts", {"properties": {}}).status_code == 201
    finally:
        server.stop()


# ---------------------------------------------------------------------------------------------
# Owners and pipelines


def test_owners_and_deal_pipelines(api, hub):
    owners = api.get("/crm/v3/owners").json()["results"]
    assert len(owners) == 3 and all(o["id"].isdigit() for o in owners)
    only = api.get("/crm/v3/owners", params={"email": owners[1]["email"]}).json()["results"]
    assert [o["id"] for o in only] == [owners[1]["id"]]
    assert api.get(f"/crm/v3/owners/{owners[0]['id']}").json()["email"] == owners[0]["email"]
    assert api.get("/crm/v3/owners/1").status_code == 404
    pipelines = api.get("/crm/v3/pipelines/deals").json()["results"]
    stages = [s["id"] for s in pipelines[0]["stages"]]
    assert pipelines[0]["id"] == "default" and stages[0] == "appointmentscheduled"
    assert stages[-2:] == ["closedwon", "closedlost"]
    assert api.get("/crm/v3/pipelines/deals/default/stages").json()["results"][-2]["metadata"]["isClosed"] == "true"
    assert api.get("/crm/v3/pipelines/deals/default/stages/closedwon").json()["label"] == "Closed Won"
    assert api.get("/crm/v3/pipelines/deals/nope").status_code == 404
    owned = api.post("/crm/v3/objects/contacts", {"properties": {"hubspot_owner_id": owners[0]["id"]}})
    assert owned.status_code == 201


# ---------------------------------------------------------------------------------------------
# Rate limits


def test_101_requests_under_a_100_per_10s_limit_get_exactly_one_429():
    app, server = serve(oauth_limit=100)
    try:
        api = Api(app.base_url, app.issue_oauth_token().access_token)
        answers = [api.get("/crm/v3/owners") for _ in range(101)]
        statuses = [a.status_code for a in answers]
        assert statuses.count(429) == 1 and statuses[-1] == 429
        remaining = [int(a.headers["X-HubSpot-RateLimit-Remaining"]) for a in answers[:100]]
        assert remaining == list(range(99, -1, -1))
        assert {a.headers["X-HubSpot-RateLimit-Max"] for a in answers} == {"100"}
        assert {a.headers["X-HubSpot-RateLimit-Interval-Milliseconds"] for a in answers} == {"10000"}
        assert "X-HubSpot-RateLimit-Daily" not in answers[0].headers  # not sent on OAuth calls
        body = answers[-1].json()
        assert body["status"] == "error" and body["errorType"] == "RATE_LIMIT"
        assert body["message"] == "You have reached your ten_secondly_rolling limit."
        assert body["policyName"] == "TEN_SECONDLY_ROLLING" and body["correlationId"] and body["requestId"]
        assert answers[-1].headers["X-HubSpot-RateLimit-Remaining"] == "0"
        assert app.rate_limited_count == 1 and app.api_calls == 101 and app.calls_by_kind["owners"] == 101
    finally:
        server.stop()


def test_the_window_is_per_app_so_a_refresh_does_not_reset_it():
    app, server = serve(oauth_limit=3)
    try:
        first, second = app.issue_oauth_token(), app.issue_oauth_token()
        api = Api(app.base_url, first.access_token)
        assert [api.get("/crm/v3/owners").status_code for _ in range(3)] == [200] * 3
        assert api.get("/crm/v3/owners", token=second.access_token).status_code == 429
        pat = app.issue_private_app_token()
        assert api.get("/crm/v3/owners", token=pat).status_code == 200  # a private app has its own window
    finally:
        server.stop()


def test_the_daily_budget_answers_429_daily():
    app, server = serve(daily_limit=3)
    try:
        api = Api(app.base_url, app.issue_private_app_token())
        answers = [api.get("/crm/v3/objects/contacts") for _ in range(4)]
        assert [a.status_code for a in answers] == [200, 200, 200, 429]
        assert [a.headers["X-HubSpot-RateLimit-Daily-Remaining"] for a in answers] == ["2", "1", "0", "0"]
        assert answers[-1].json()["policyName"] == "DAILY"
        assert answers[-1].json()["message"] == "You have reached your daily limit."
    finally:
        server.stop()


def test_counters_and_the_control_api_state(api, hub):
    contact(api, "count@example.com")
    api.post("/crm/v3/objects/contacts/search", {"filterGroups": []})
    api.get("/crm/v3/properties/contacts")
    state = requests.get(f"{hub.base_url}/__sandbox__/state", timeout=5).json()
    assert state["api_calls"] == 3 and state["objects"]["contacts"] == 1
    assert state["calls_by_kind"] == {"objects": 1, "search": 1, "properties": 1}
    assert state["rate_limited"] == 0 and state["hub_id"] == hub.hub_id


# ---------------------------------------------------------------------------------------------
# Injected faults look like HubSpot


def test_an_injected_rate_limit_is_hubspots_429(api, hub):
    hub.faults.inject("rate_limit", path_prefix="/crm/v3/objects")
    answer = api.get("/crm/v3/objects/contacts")
    assert answer.status_code == 429 and answer.json()["errorType"] == "RATE_LIMIT"
    assert answer.headers["X-HubSpot-RateLimit-Remaining"] == "0"
    assert hub.rate_limited_count == 1
    assert api.get("/crm/v3/objects/contacts").status_code == 200


def test_injected_server_errors_carry_hubspots_error_body(api, hub):
    hub.faults.inject("server_error")
    answer = api.get("/crm/v3/objects/contacts")
    assert answer.status_code == 500 and answer.json()["status"] == "error" and answer.json()["correlationId"]
    hub.server_error_status = 502
    try:
        hub.faults.inject("server_error")
        assert api.get("/crm/v3/objects/contacts").status_code == 502
    finally:
        hub.server_error_status = 500


def test_an_injected_slow_answer_is_slow(api, hub):
    hub.faults.inject("slow", seconds=0.3)
    started = time.monotonic()
    answer = api.get("/crm/v3/objects/contacts")
    assert answer.status_code == 200 and time.monotonic() - started >= 0.3


def test_an_injected_drop_closes_the_connection(hub, token):
    hub.faults.inject("drop")
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{hub.base_url}/crm/v3/objects/contacts", headers={"Authorization": f"Bearer {token}"}, timeout=5)


def test_an_injected_expiry_stays_expired_until_refresh(hub):
    tokens = hub.issue_oauth_token()
    api = Api(hub.base_url, tokens.access_token)
    hub.faults.inject("expire_token")
    answer = api.get("/crm/v3/objects/contacts")
    assert answer.status_code == 401 and answer.json()["category"] == "EXPIRED_AUTHENTICATION"
    assert "expired" in answer.json()["message"]
    assert api.get("/crm/v3/objects/contacts").status_code == 401
    fresh = refresh(hub, tokens.refresh_token).json()["access_token"]
    assert api.get("/crm/v3/objects/contacts", token=fresh).status_code == 200


# ---------------------------------------------------------------------------------------------
# Webhooks and the change log


def independent_v3_signature(secret: str, method: str, uri: str, body: bytes, timestamp: str) -> str:
    digest = hmac.new(secret.encode(), method.encode() + uri.encode() + body + timestamp.encode(), hashlib.sha256)
    return base64.b64encode(digest.digest()).decode()


class Receiver(EmulatorApp):
    name = "receiver"

    def __init__(self) -> None:
        super().__init__()
        self.received: list[Request] = []
        self.route("POST", r"/hooks/hubspot", self._hook, auth=False)

    def _hook(self, request: Request) -> Response:
        self.received.append(request)
        return Response(204)


def test_webhook_requests_are_signed_with_v3(hub):
    url = "https://capsule.example.com/integrations/webhooks/hubspot?account=7"
    events = [hub.webhook_event("contact.propertyChange", 101, property_name="firstname", property_value="Ann")]
    headers, body = hub.make_webhook_request(url, events, CLIENT_SECRET, timestamp_ms=1_700_000_000_123)
    assert headers["X-HubSpot-Request-Timestamp"] == "1700000000123"
    expected = independent_v3_signature(CLIENT_SECRET, "POST", url, body, "1700000000123")
    assert hmac.compare_digest(headers["X-HubSpot-Signature-v3"], expected)
    assert headers["X-HubSpot-Signature"] == hashlib.sha256(CLIENT_SECRET.encode() + body).hexdigest()
    assert independent_v3_signature("other", "POST", url, body, "1700000000123") != expected
    event = json.loads(body)[0]
    for key in (
        "eventId",
        "subscriptionId",
        "portalId",
        "occurredAt",
        "subscriptionType",
        "attemptNumber",
        "objectId",
        "changeSource",
        "appId",
        "propertyName",
        "propertyValue",
    ):
        assert key in event, key
    assert event["portalId"] == hub.hub_id and event["objectId"] == 101
    # HubSpot decodes a few escapes in the URI before signing.
    assert sign_v3("s", "POST", "https://x.example/a%3Ab", b"{}", 1) == sign_v3(
        "s", "POST", "https://x.example/a:b", b"{}", 1
    )


def test_send_webhook_posts_a_signed_json_array():
    receiver = Receiver()
    server = EmulatorServer(receiver).start()
    app = build()
    try:
        url = f"{server.url}/hooks/hubspot"
        events = [
            app.webhook_event("contact.creation", 5),
            app.webhook_event("deal.propertyChange", 6, property_name="dealstage", property_value="closedwon"),
        ]
        status, _ = app.send_webhook(url, events, "hook-secret")
        assert status == 204
        got = receiver.received[0]
        assert json.loads(got.body) == events and isinstance(json.loads(got.body), list)
        assert got.header("x-hubspot-signature-v3") == independent_v3_signature(
            "hook-secret", "POST", url, got.body, got.header("x-hubspot-request-timestamp")
        )
        assert events[0]["changeFlag"] == "NEW"
    finally:
        server.stop()


def test_the_change_log_tells_our_writes_from_a_users(api, hub):
    cid = contact(api, "echo@example.com", firstname="Api")
    hub.edit_in_ui("contacts", cid, {"firstname": "Human"})
    ours = [c for c in hub.changes if c.property == "firstname"]
    assert [(c.value, c.source, c.source_id) for c in ours] == [
        ("Api", "INTEGRATION", str(hub.app_id)),
        ("Human", "CRM_UI", f"userId:{hub.user_id}"),
    ]
    events = hub.events_for_changes(hub.changes_since(source="CRM_UI"))
    assert events == [
        {
            **events[0],
            "subscriptionType": "contact.propertyChange",
            "objectId": int(cid),
            "propertyName": "firstname",
            "propertyValue": "Human",
            "changeSource": "CRM_UI",
            "sourceId": f"userId:{hub.user_id}",
        }
    ]
    creation = hub.events_for_changes([c for c in hub.changes if c.kind == "creation"])
    assert creation[0]["subscriptionType"] == "contact.creation" and creation[0]["changeFlag"] == "NEW"
    pat = hub.issue_private_app_token()
    Api(hub.base_url, pat).patch(f"/crm/v3/objects/contacts/{cid}", {"properties": {"firstname": "Private"}})
    assert hub.changes[-1].source_id == str(hub.private_apps[pat].app_id)
    history = api.get(f"/crm/v3/objects/contacts/{cid}", params={"propertiesWithHistory": "firstname"}).json()
    assert [h["value"] for h in history["propertiesWithHistory"]["firstname"]] == ["Private", "Human", "Api"]


# ---------------------------------------------------------------------------------------------
# Inspection helpers and the optional null behaviour


def test_inspection_helpers_and_reset(api, hub):
    cid = hub.create_record("contacts", {"email": "seed@example.com"})
    assert hub.find_contact("SEED@example.com")["id"] == cid
    assert [c["id"] for c in hub.objects("contacts")] == [cid]
    assert hub.get("contacts", "999") is None
    hub.reset()
    assert hub.objects("contacts") == [] and hub.changes == [] and hub.api_calls == 0
    assert api.get("/crm/v3/objects/contacts").status_code == 200  # tokens survive a reset


def test_unset_requested_properties_can_be_answered_as_null():
    app, server = serve(unset_properties_as_null=True)
    try:
        api = Api(app.base_url, app.issue_oauth_token().access_token)
        cid = api.post(
            "/crm/v3/objects/contacts", {"properties": {"email": "null@example.com"}}, validate=False
        ).json()["id"]
        read = api.get(
            f"/crm/v3/objects/contacts/{cid}", params={"properties": "email,phone,not_defined"}, validate=False
        )
        props = read.json()["properties"]
        assert props["email"] == "null@example.com" and props["phone"] is None
        assert "not_defined" not in props  # only defined properties come back as null
    finally:
        server.stop()


# ---------------------------------------------------------------------------------------------
# The spec checker itself


def test_the_spec_checker_names_path_status_and_schema_error():
    good = {
        "id": "1",
        "properties": {},
        "createdAt": "2025-01-01T00:00:00.000Z",
        "updatedAt": "2025-01-01T00:00:00.000Z",
        "archived": False,
    }
    validate_response("hubspot/contacts.json", "GET", "/crm/v3/objects/contacts/1", 200, good)
    with pytest.raises(AssertionError, match=r"GET /crm/v3/objects/contacts/1 -> 200: schema error at properties/x"):
        validate_response(
            "hubspot/contacts.json", "GET", "/crm/v3/objects/contacts/1", 200, {**good, "properties": {"x": 1}}
        )
    with pytest.raises(AssertionError, match="is not a 'date-time'"):
        validate_response("hubspot/contacts.json", "GET", "/crm/v3/objects/contacts/1", 200, {**good, "createdAt": "x"})
    with pytest.raises(AssertionError, match="no operation"):
        validate_response("hubspot/contacts.json", "GET", "/crm/v3/nowhere", 200, {})
    with pytest.raises(AssertionError, match="declares no body"):
        validate_response("hubspot/contacts.json", "DELETE", "/crm/v3/objects/contacts/1", 204, {"x": 1})


def test_the_spec_checker_prefers_literal_segments_and_follows_refs():
    spec = load_spec("hubspot/properties.json")
    assert spec.operation("GET", "/crm/v3/properties/contacts/groups").template.endswith("/groups")
    assert spec.operation("GET", "/crm/v3/properties/contacts/email").template.endswith("/{propertyName}")
    assert spec.response_schema_uri("GET", "/crm/v3/properties/contacts", 418).endswith(
        "#/components/responses/Error/content/*~1*/schema"
    )
    with pytest.raises(AssertionError, match="correlationId"):
        validate_response(
            "hubspot/contacts.json",
            "GET",
            "/crm/v3/objects/contacts/1",
            404,
            {"message": "m", "category": "OBJECT_NOT_FOUND", "correlationId": "not-a-uuid"},
        )


def test_concurrent_upserts_of_one_email_make_one_contact(hub):
    api = Api(hub.base_url, hub.issue_private_app_token())
    item = {"inputs": [{"id": "race@example.com", "idProperty": "email", "properties": {"firstname": "Race"}}]}

    def upsert(_n: int) -> int:
        return Api(hub.base_url, api.token).post("/crm/v3/objects/contacts/batch/upsert", item).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(upsert, range(24)))
    assert statuses == [200] * 24
    assert [c["properties"]["email"] for c in hub.objects("contacts")] == ["race@example.com"]
