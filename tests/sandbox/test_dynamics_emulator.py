"""The Dataverse emulator's wire format, held against crm-reference.md §5 and §11.5 (there is no
public Dataverse spec to validate against, §5.8): OData headers and status codes, error bodies,
alternate keys, $batch, metadata, change tracking, limits and Entra ID OAuth."""

from __future__ import annotations

import json
import re
import uuid

import pytest
import requests

from integrations.sandbox.core import EmulatorServer
from integrations.sandbox.dynamics import DynamicsEmulator

API = "/api/data/v9.2"


@pytest.fixture
def org():
    app = DynamicsEmulator(client_id="c", client_secret="s", redirect_uris=["https://app.example/cb"], limit=50)
    with EmulatorServer(app) as server:
        token = app.issue_token().access_token
        session = requests.Session()
        session.headers.update(
            {"Authorization": f"Bearer {token}", "OData-Version": "4.0", "Accept": "application/json"}
        )
        yield app, server.url, session


def test_create_answers_204_with_the_entity_url_or_201_with_a_representation(org):
    _app, url, s = org
    plain = s.post(f"{url}{API}/contacts", json={"lastname": "Lee", "emailaddress1": "a@b.com"})
    assert plain.status_code == 204 and plain.content == b""
    new_id = re.search(r"contacts\(([0-9a-f-]{36})\)$", plain.headers["OData-EntityId"]).group(1)
    uuid.UUID(new_id)
    rich = s.post(
        f"{url}{API}/contacts?$select=lastname", json={"lastname": "Kim"}, headers={"Prefer": "return=representation"}
    )
    assert rich.status_code == 201 and rich.json()["lastname"] == "Kim" and "@odata.etag" in rich.json()
    assert rich.headers["Preference-Applied"] == "return=representation"
    assert int(rich.headers["x-ms-ratelimit-burst-remaining-xrm-requests"]) == 48
    assert float(rich.headers["x-ms-ratelimit-time-remaining-xrm-requests"]) > 0


def test_patch_updates_and_upserts_and_if_match_refuses_a_missing_row(org):
    app, url, s = org
    made = app.create("contact", {"lastname": "Lee"})
    assert s.patch(f"{url}{API}/contacts({made['contactid']})", json={"firstname": "Ann"}).status_code == 204
    assert app.get("contact", made["contactid"])["firstname"] == "Ann"
    missing = str(uuid.uuid4())
    refused = s.patch(f"{url}{API}/contacts({missing})", json={"firstname": "X"}, headers={"If-Match": "*"})
    assert refused.status_code == 404 and refused.json()["error"]["code"] == "0x80040217"
    upserted = s.patch(
        f"{url}{API}/contacts({missing})", json={"firstname": "X"}, headers={"Prefer": "return=representation"}
    )
    assert upserted.status_code == 201 and app.get("contact", missing)["firstname"] == "X"


def test_filter_select_and_paging(org):
    app, url, s = org
    for i in range(5):
        app.create("contact", {"lastname": f"L{i}", "emailaddress1": f"p{i}@example.com"})
    found = s.get(
        f"{url}{API}/contacts",
        params={
            "$filter": "emailaddress1 eq 'P1@example.com' or emailaddress1 eq 'p3@example.com'",
            "$select": "emailaddress1",
        },
    ).json()["value"]
    assert sorted(r["emailaddress1"] for r in found) == ["p1@example.com", "p3@example.com"]
    assert set(found[0]) == {"@odata.etag", "contactid", "emailaddress1"}
    first = s.get(f"{url}{API}/contacts", headers={"Prefer": "odata.maxpagesize=2"}).json()
    second = s.get(first["@odata.nextLink"], headers={"Prefer": "odata.maxpagesize=2"}).json()
    assert len(first["value"]) == 2 and len(second["value"]) == 2
    bad = s.get(f"{url}{API}/contacts", params={"$filter": "nosuch eq 'x'"})
    assert bad.status_code == 400 and bad.json()["error"]["code"].startswith("0x")


def test_alternate_key_urls_need_a_configured_key(org):
    app, url, s = org
    key = f"{url}{API}/contacts(emailaddress1='k@example.com')"
    refused = s.patch(key, json={"lastname": "K"})
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "0x80060888"
    app.add_alternate_key("contact", "emailaddress1")
    made = s.patch(key, json={"lastname": "K"}, headers={"Prefer": "return=representation"})
    again = s.patch(key, json={"lastname": "K2"}, headers={"Prefer": "return=representation"})
    assert (
        made.status_code == 201 and again.status_code == 200 and again.json()["contactid"] == made.json()["contactid"]
    )
    assert s.get(f"{url}{API}/contacts(emailaddress1='a+b@example.com')").status_code == 400


def test_binds_link_rows_and_refuse_unknown_targets(org):
    app, url, s = org
    person = app.create("contact", {"lastname": "Lee"})
    note = s.post(
        f"{url}{API}/annotations",
        headers={"Prefer": "return=representation"},
        json={"subject": "n", "objectid_contact@odata.bind": f"/contacts({person['contactid']})"},
    )
    assert note.json()["_objectid_value"] == person["contactid"]
    opp = s.post(
        f"{url}{API}/opportunities", json={"name": "Deal", "parentcontactid@odata.bind": f"/contacts({uuid.uuid4()})"}
    )
    assert opp.status_code == 404 and opp.json()["error"]["code"] == "0x80040217"


def test_batch_runs_operations_in_order_and_isolates_failures(org):
    app, url, s = org
    boundary = "batch_x"
    parts = [
        ("POST", "contacts", {"lastname": "A"}),
        ("POST", "contacts", {"lastname": "B", "nosuch": 1}),
        ("POST", "contacts", {"lastname": "C"}),
    ]
    body = (
        "".join(
            f"--{boundary}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n"
            f"{m} {url}{API}/{p} HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{json.dumps(b)}\r\n"
            for m, p, b in parts
        )
        + f"--{boundary}--\r\n"
    )
    headers = {"Content-Type": f"multipart/mixed; boundary={boundary}"}
    stopping = s.post(f"{url}{API}/$batch", data=body, headers=headers)
    assert stopping.status_code == 200 and stopping.headers["Content-Type"].startswith("multipart/mixed")
    assert re.findall(r"HTTP/1.1 (\d+)", stopping.text) == ["204", "400"]  # stops at the first failure
    going = s.post(f"{url}{API}/$batch", data=body, headers={**headers, "Prefer": "odata.continue-on-error"})
    assert re.findall(r"HTTP/1.1 (\d+)", going.text) == ["204", "400", "204"]
    assert sorted(r["lastname"] for r in app.records("contact")) == ["A", "A", "C"]


def test_a_change_set_is_atomic(org):
    app, url, s = org
    inner = "changeset_y"
    ops = (
        "".join(
            f"--{inner}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
            f"Content-ID: {i}\r\n\r\n"
            f"POST {API}/contacts HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{json.dumps(b)}\r\n"
            for i, b in enumerate([{"lastname": "ok"}, {"lastname": 5}], 1)
        )
        + f"--{inner}--\r\n"
    )
    body = f"--batch_z\r\nContent-Type: multipart/mixed; boundary={inner}\r\n\r\n{ops}--batch_z--\r\n"
    answer = s.post(f"{url}{API}/$batch", data=body, headers={"Content-Type": "multipart/mixed; boundary=batch_z"})
    assert "changesetresponse_" in answer.text and re.findall(r"HTTP/1.1 (\d+)", answer.text) == ["400"]
    assert app.records("contact") == []


def test_more_than_1000_operations_are_refused(org):
    _app, url, s = org
    part = (
        f"--b\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n"
        f"POST {API}/contacts HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{{}}\r\n"
    )
    answer = s.post(
        f"{url}{API}/$batch", data=part * 1001 + "--b--\r\n", headers={"Content-Type": "multipart/mixed; boundary=b"}
    )
    assert answer.status_code == 400 and "1000" in answer.json()["error"]["message"]


def test_metadata_attributes_option_sets_and_custom_columns(org):
    _app, url, s = org
    base = f"{url}{API}/EntityDefinitions(LogicalName='contact')/Attributes"
    attrs = {a["LogicalName"]: a for a in s.get(base).json()["value"]}
    assert (
        attrs["lastname"]["RequiredLevel"]["Value"] == "ApplicationRequired"
        and "OptionSet" not in attrs["leadsourcecode"]
    )
    assert attrs["emailaddress1"]["MaxLength"] == 100 and attrs["createdon"]["IsValidForCreate"] is False
    picklists = s.get(f"{base}/Microsoft.Dynamics.CRM.PicklistAttributeMetadata", params={"$expand": "OptionSet"})
    options = {p["LogicalName"]: p["OptionSet"]["Options"] for p in picklists.json()["value"]}
    assert options["leadsourcecode"][0]["Value"] == 1
    made = s.post(
        base,
        json={
            "@odata.type": "Microsoft.Dynamics.CRM.StringAttributeMetadata",
            "SchemaName": "new_Ref",
            "MaxLength": 20,
            "DisplayName": {"LocalizedLabels": [{"Label": "Ref", "LanguageCode": 1033}]},
        },
    )
    assert made.status_code == 204 and "Attributes(" in made.headers["OData-EntityId"]
    assert s.get(f"{base}(LogicalName='new_ref')").json()["IsCustomAttribute"] is True
    assert (
        s.post(
            base, json={"@odata.type": "Microsoft.Dynamics.CRM.StringAttributeMetadata", "SchemaName": "new_Ref"}
        ).status_code
        == 400
    )
    assert s.post(f"{url}{API}/contacts", json={"new_ref": "x" * 21}).json()["error"]["code"] == "0x80044331"


def test_change_tracking_gives_a_delta_link_with_changes_and_deletions(org):
    app, url, s = org
    a = app.create("contact", {"lastname": "A"})
    b = app.create("contact", {"lastname": "B"})
    first = s.get(f"{url}{API}/contacts?$select=lastname", headers={"Prefer": "odata.track-changes"}).json()
    assert len(first["value"]) == 2 and "$deltatoken=" in first["@odata.deltaLink"]
    app.edit("contact", a["contactid"], {"lastname": "A2"})
    app.remove("contact", b["contactid"])
    delta = s.get(first["@odata.deltaLink"]).json()
    assert [r.get("lastname") for r in delta["value"] if "lastname" in r] == ["A2"]
    [gone] = [r for r in delta["value"] if r.get("reason") == "deleted"]
    assert gone["id"] == b["contactid"] and gone["@odata.context"].endswith("$deletedEntity")
    assert s.get(delta["@odata.deltaLink"]).json()["value"] == []
    refused = s.get(f"{url}{API}/phonecalls", headers={"Prefer": "odata.track-changes"})
    assert refused.status_code == 400


def test_the_service_protection_limit_answers_429(org):
    app, url, s = org
    app.limiter.limit = 1
    assert s.get(f"{url}{API}/WhoAmI").status_code == 200
    throttled = s.get(f"{url}{API}/WhoAmI")
    assert throttled.status_code == 429 and throttled.json()["error"]["code"] == "0x80072322"
    assert int(throttled.headers["Retry-After"]) >= 1
    assert throttled.headers["x-ms-ratelimit-burst-remaining-xrm-requests"] == "0"
    assert app.rate_limited_count == 1


def test_tokens_are_required_and_faults_are_shaped(org):
    app, url, s = org
    assert requests.get(f"{url}{API}/WhoAmI").status_code == 401
    app.faults.inject("server_error")
    broken = s.get(f"{url}{API}/WhoAmI")
    assert broken.status_code == 500 and broken.json()["error"]["code"].startswith("0x")
    app.faults.inject("expire_token")
    assert "invalid_token" in s.get(f"{url}{API}/WhoAmI").headers["WWW-Authenticate"]
    assert s.get(f"{url}{API}/WhoAmI").status_code == 401  # the token stays expired


def test_entra_token_endpoint_rotates_refresh_tokens_and_answers_aadsts_errors(org):
    app, url, _s = org
    issued = app.oauth.issue("c", [f"{url}/.default", "offline_access"], account_ref=app.user_id)
    form = {
        "grant_type": "refresh_token",
        "refresh_token": issued.refresh_token,
        "client_id": "c",
        "client_secret": "s",
    }
    fresh = requests.post(f"{url}/organizations/oauth2/v2.0/token", data=form).json()
    assert fresh["refresh_token"] != issued.refresh_token and fresh["token_type"] == "Bearer"
    assert fresh["scope"].startswith(f"{url}/.default") and fresh["expires_in"] > 0
    reused = requests.post(f"{url}/organizations/oauth2/v2.0/token", data=form)
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
    assert reused.json()["error_description"].startswith("AADSTS") and reused.json()["error_codes"]
    page = requests.get(
        f"{url}/organizations/oauth2/v2.0/authorize",
        params={
            "client_id": "c",
            "redirect_uri": "https://app.example/cb",
            "scope": f"{url}/.default offline_access",
            "state": "s1",
            "response_type": "code",
        },
    )
    assert 'id="allow"' in page.text and 'id="deny"' in page.text
