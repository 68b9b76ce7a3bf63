"""The Salesforce sandbox speaks Salesforce's REST wire format to the unpatched simple-salesforce client.

No database: each module serves one emulator over TLS on loopback (simple-salesforce always builds
https:// URLs, crm-reference §10.1) and the client trusts the emulator's local CA through a session
with ``trust_env = False`` (REQUESTS_CA_BUNDLE would otherwise win over ``verify``, §10.4).
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceMoreThanOneRecord,
    SalesforceRefusedRequest,
    SalesforceResourceNotFound,
)

from integrations.sandbox.core import EmulatorServer, LocalCA
from integrations.sandbox.salesforce import SalesforceEmulator, build
from integrations.sandbox.salesforce.ids import checksum

SPECS = Path(__file__).resolve().parents[3] / "shared" / "specs" / "salesforce"
REDIRECT = "http://127.0.0.1:8000/integrations/oauth/salesforce/callback"
CLIENT_ID, CLIENT_SECRET = "test-client", "test-secret"


def trusting_session(ca: LocalCA) -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    session.verify = str(ca.ca_path)
    return session


def client(app: SalesforceEmulator, server: EmulatorServer, ca: LocalCA, version: str = "59.0") -> Salesforce:
    token = app.issue_token().access_token
    return Salesforce(instance_url=server.url, session_id=token, session=trusting_session(ca), version=version)


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> LocalCA:
    return LocalCA(tmp_path_factory.mktemp("salesforce-ca"))


@pytest.fixture(scope="module")
def served(ca: LocalCA):
    app = SalesforceEmulator(
        client_id=CLIENT_ID, client_secret=CLIENT_SECRET, redirect_uris=[REDIRECT], query_batch_size=5
    )
    server = EmulatorServer(app, tls=ca).start()
    yield app, server
    server.stop()


@pytest.fixture(autouse=True)
def fresh(served) -> None:
    served[0].reset()


@pytest.fixture
def app(served) -> SalesforceEmulator:
    return served[0]


@pytest.fixture
def sf(served, ca: LocalCA) -> Salesforce:
    return client(*served, ca)


@pytest.fixture
def another(ca: LocalCA):
    """Serve a second emulator with its own options (daily limit, session timeout…)."""
    servers: list[EmulatorServer] = []

    def start(**options) -> tuple[SalesforceEmulator, EmulatorServer, Salesforce]:
        emulator = SalesforceEmulator(**options)
        server = EmulatorServer(emulator, tls=ca).start()
        servers.append(server)
        return emulator, server, client(emulator, server, ca)

    yield start
    for server in servers:
        server.stop()


def error_code(exc: pytest.ExceptionInfo) -> str:
    return exc.value.content[0]["errorCode"]


# ---------------------------------------------------------------------------------------------
# Describe, CRUD and upsert through SFType


def test_describe_reports_field_metadata_and_object_permissions(sf: Salesforce) -> None:
    contact = sf.Contact.describe()
    fields = {f["name"]: f for f in contact["fields"]}
    assert contact["keyPrefix"] == "003" and contact["createable"] and contact["updateable"]
    assert fields["LastName"]["nillable"] is False and fields["LastName"]["length"] == 80
    assert fields["Name"]["createable"] is False and fields["Email"]["type"] == "email"
    prospect = fields["Capsule_Prospect_Id__c"]
    assert prospect["externalId"] and prospect["unique"] and prospect["custom"]
    lead_status = {f["name"]: f for f in sf.Lead.describe()["fields"]}["Status"]
    assert lead_status["restrictedPicklist"] and lead_status["defaultedOnCreate"]
    defaults = [v["value"] for v in lead_status["picklistValues"] if v["defaultValue"]]
    assert defaults == ["Open - Not Contacted"]
    who = {f["name"]: f for f in sf.Task.describe()["fields"]}["WhoId"]
    assert who["type"] == "reference" and who["referenceTo"] == ["Contact", "Lead"]
    everything = {o["name"]: o for o in sf.describe()["sobjects"]}
    assert {"Contact", "Lead", "Task", "Event", "Note", "ContentNote", "Opportunity"} <= set(everything)
    assert everything["User"]["createable"] is False and everything["OpportunityContactRole"]["keyPrefix"] == "00K"


def test_create_read_update_delete_contact(app: SalesforceEmulator, sf: Salesforce) -> None:
    created = sf.Contact.create({"FirstName": "Ada", "LastName": "Lovelace", "Email": "ada@example.com"})
    assert created["success"] is True and created["errors"] == []
    contact_id = created["id"]
    assert len(contact_id) == 18 and contact_id.startswith("003")
    record = sf.Contact.get(contact_id)
    assert record["attributes"] == {"type": "Contact", "url": f"/services/data/v59.0/sobjects/Contact/{contact_id}"}
    assert record["Name"] == "Ada Lovelace" and record["OwnerId"] == app.integration_user_id
    assert record["CreatedDate"].endswith("+0000") and record["IsDeleted"] is False
    assert sf.Contact.get(contact_id[:15])["Id"] == contact_id  # 15-character ids work too
    assert sf.Contact.update(contact_id, {"Title": "Analyst"}) == 204
    assert sf.Contact.get(contact_id)["Title"] == "Analyst"
    assert sf.Contact.delete(contact_id) == 204
    with pytest.raises(SalesforceResourceNotFound):
        sf.Contact.get(contact_id)
    with pytest.raises(SalesforceResourceNotFound) as deleted:
        sf.Contact.update(contact_id, {"Title": "Gone"})
    assert error_code(deleted) == "ENTITY_IS_DELETED"


def test_upsert_by_external_id_creates_then_updates(served, ca: LocalCA, sf: Salesforce) -> None:
    app, server = served
    created = sf.Contact.upsert("Capsule_Prospect_Id__c/p-100", {"LastName": "First"}, raw_response=True)
    assert created.status_code == 201 and created.json()["created"] is True
    updated = sf.Contact.upsert("Capsule_Prospect_Id__c/p-100", {"LastName": "Second"}, raw_response=True)
    # From API 46.0 an update answers 200 with created=false; earlier versions answer 204.
    assert updated.status_code == 200 and updated.json() == {**created.json(), "created": False}
    assert [c["LastName"] for c in app.find("Contact", Capsule_Prospect_Id__c="P-100")] == ["Second"]
    assert sf.Contact.get_by_custom_id("Capsule_Prospect_Id__c", "p-100")["LastName"] == "Second"
    old_client = client(app, server, ca, version="45.0")
    assert old_client.Contact.upsert("Capsule_Prospect_Id__c/p-100", {"LastName": "Third"}) == 204
    with pytest.raises(SalesforceResourceNotFound):
        sf.Contact.upsert("Email/x@example.com", {"LastName": "Nope"})


def test_upsert_matching_several_records_answers_300(app: SalesforceEmulator, sf: Salesforce) -> None:
    app.add_custom_field("Contact", "Legacy_Key__c", "string", 40, external_id=True)
    first = sf.Contact.create({"LastName": "A", "Legacy_Key__c": "dup"})["id"]
    second = sf.Contact.create({"LastName": "B", "Legacy_Key__c": "DUP"})["id"]
    with pytest.raises(SalesforceMoreThanOneRecord) as multiple:
        sf.Contact.upsert("Legacy_Key__c/dup", {"LastName": "C"})
    assert multiple.value.content == [
        f"/services/data/v59.0/sobjects/Contact/{first}",
        f"/services/data/v59.0/sobjects/Contact/{second}",
    ]


# ---------------------------------------------------------------------------------------------
# SOQL paging, limits header, sessions


def test_query_all_follows_next_records_url(app: SalesforceEmulator, sf: Salesforce) -> None:
    for n in range(12):
        sf.Lead.create({"LastName": f"Lead {n:02d}", "Company": "Acme"})
    first = sf.query("SELECT Id, LastName FROM Lead ORDER BY LastName DESC")
    assert first["totalSize"] == 12 and first["done"] is False and len(first["records"]) == 5
    assert first["nextRecordsUrl"].startswith("/services/data/v59.0/query/01g")
    everything = sf.query_all("SELECT Id, LastName FROM Lead ORDER BY LastName DESC")
    assert [r["LastName"] for r in everything["records"]] == [f"Lead {n:02d}" for n in range(11, -1, -1)]
    assert len(app.requests_to("GET", r"/query/01g")) == 2  # pages two and three
    with pytest.raises(SalesforceMalformedRequest) as bad:
        sf.query_more("01gNOTACURSOR-5")
    assert error_code(bad) == "INVALID_QUERY_LOCATOR"


def test_every_answer_carries_api_usage(app: SalesforceEmulator, sf: Salesforce) -> None:
    sf.Contact.create({"LastName": "Usage"})
    sf.query("SELECT Id FROM Contact")
    used, limit = app.api_usage
    assert sf.api_usage["api-usage"].used == used == 2 and sf.api_usage["api-usage"].total == limit == 100_000
    assert sf.limits()["DailyApiRequests"] == {"Max": 100_000, "Remaining": 100_000 - 3}
    assert app.state()["calls_by_kind"] == {"sobject": 1, "query": 1, "limits": 1}


def test_expired_or_unknown_session_is_invalid_session_id(app: SalesforceEmulator, sf: Salesforce) -> None:
    app.oauth.expire(sf.session_id)
    with pytest.raises(SalesforceExpiredSession) as expired:
        sf.Contact.create({"LastName": "Late"})
    assert expired.value.content == [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
    stranger = Salesforce(instance_url=f"https://{sf.sf_instance}", session_id="00Dnotatoken", session=sf.session)
    with pytest.raises(SalesforceExpiredSession):
        stranger.query("SELECT Id FROM Contact")
    assert app.records("Contact") == []


def test_session_times_out_after_inactivity(another) -> None:
    _app, _server, sf = another(session_timeout=0.3)
    sf.query("SELECT Id FROM Contact")
    time.sleep(0.4)
    with pytest.raises(SalesforceExpiredSession):
        sf.query("SELECT Id FROM Contact")


def test_daily_allocation_exhausted_is_403_request_limit_exceeded(another) -> None:
    app, server, sf = another(daily_limit=3)
    for _ in range(3):
        sf.query("SELECT Id FROM Contact")
    with pytest.raises(SalesforceRefusedRequest) as refused:
        sf.query("SELECT Id FROM Contact")
    assert refused.value.content == [
        {"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}
    ]
    raw = sf.session.get(f"{server.url}/services/data/v59.0/limits/", headers=sf.headers)
    assert raw.status_code == 403 and raw.headers["Sforce-Limit-Info"] == "api-usage=3/3"
    assert app.state()["limit_refusals"] == 2 and app.api_usage == (3, 3)


def test_per_second_cap_refuses_the_excess_then_recovers(another) -> None:
    app, _server, sf = another(per_second_limit=2)
    sf.query("SELECT Id FROM Contact")
    sf.query("SELECT Id FROM Contact")
    with pytest.raises(SalesforceRefusedRequest) as refused:
        sf.query("SELECT Id FROM Contact")
    assert error_code(refused) == "REQUEST_LIMIT_EXCEEDED"
    time.sleep(1.05)
    assert sf.query("SELECT Id FROM Contact")["totalSize"] == 0
    assert app.state()["limit_refusals"] == 1


# ---------------------------------------------------------------------------------------------
# Injected faults


def test_injected_rate_limit_is_403_not_429(app: SalesforceEmulator, sf: Salesforce) -> None:
    app.faults.inject("rate_limit")
    with pytest.raises(SalesforceRefusedRequest) as refused:
        sf.query("SELECT Id FROM Contact")
    assert refused.value.status == 403 and error_code(refused) == "REQUEST_LIMIT_EXCEEDED"
    assert sf.query("SELECT Id FROM Contact")["done"] is True  # one fault, once


def test_injected_server_errors_use_salesforce_codes(app: SalesforceEmulator, sf: Salesforce) -> None:
    app.faults.inject("server_error")
    with pytest.raises(SalesforceGeneralError) as crashed:
        sf.Contact.create({"LastName": "Boom"})
    assert crashed.value.status == 500 and error_code(crashed) == "UNKNOWN_EXCEPTION"
    app.server_error_status = 503
    try:
        app.faults.inject("server_error")
        with pytest.raises(SalesforceGeneralError) as unavailable:
            sf.query("SELECT Id FROM Contact")
        assert unavailable.value.status == 503 and error_code(unavailable) == "SERVER_UNAVAILABLE"
    finally:
        app.server_error_status = 500
    assert app.records("Contact") == []


def test_dropped_connection_raises_connection_error(app: SalesforceEmulator, sf: Salesforce) -> None:
    app.faults.inject("drop", path_prefix="/services/data/")
    with pytest.raises(requests.ConnectionError):
        sf.query("SELECT Id FROM Contact")
    assert app.log[-1].status == 0


def test_slow_answers_arrive_late_or_time_out(app: SalesforceEmulator, sf: Salesforce) -> None:
    app.faults.inject("slow", seconds=0.3)
    started = time.monotonic()
    sf.query("SELECT Id FROM Contact")
    assert time.monotonic() - started >= 0.3
    app.faults.inject("slow", seconds=0.5)
    with pytest.raises(requests.Timeout):
        sf.session.get(f"https://{sf.sf_instance}/services/data/v59.0/limits/", headers=sf.headers, timeout=0.1)


def test_expire_token_fault_expires_the_session_for_good(served, ca: LocalCA) -> None:
    app, server = served
    sf = client(app, server, ca)
    control = trusting_session(ca).post(f"{server.url}/__sandbox__/faults", json={"kind": "expire_token"})
    assert control.json()["pending_faults"] == 1
    with pytest.raises(SalesforceExpiredSession):
        sf.query("SELECT Id FROM Contact")
    with pytest.raises(SalesforceExpiredSession):
        sf.query("SELECT Id FROM Contact")
    state = trusting_session(ca).get(f"{server.url}/__sandbox__/state").json()
    assert state["name"] == "salesforce" and state["pending_faults"] == 0 and state["api_usage"]["used"] == 0


# ---------------------------------------------------------------------------------------------
# sObject Collections and Composite


def collection(sf: Salesforce, method: str, path: str = "composite/sobjects", **body) -> list[dict]:
    return sf.restful(path, method=method, json=body)


def test_collection_create_reports_each_record_in_order(app: SalesforceEmulator, sf: Salesforce) -> None:
    results = collection(
        sf,
        "POST",
        records=[
            {"attributes": {"type": "Contact"}, "LastName": "One"},
            {"attributes": {"type": "Contact"}, "FirstName": "No last name"},
            {"attributes": {"type": "Lead"}, "LastName": "Three", "Company": "Acme"},
        ],
    )
    assert results[0]["success"] and results[0]["id"].startswith("003")
    assert results[1] == {
        "success": False,
        "errors": [
            {
                "statusCode": "REQUIRED_FIELD_MISSING",
                "message": "Required fields are missing: [LastName]",
                "fields": ["LastName"],
            }
        ],
    }
    assert results[2]["success"] and results[2]["id"].startswith("00Q")
    assert [c["LastName"] for c in app.records("Contact")] == ["One"]


def test_collection_all_or_none_rolls_every_record_back(app: SalesforceEmulator, sf: Salesforce) -> None:
    results = collection(
        sf,
        "POST",
        allOrNone=True,
        records=[
            {"attributes": {"type": "Contact"}, "LastName": "Kept?"},
            {"attributes": {"type": "Contact"}, "LastName": "Bad", "Email": "not-an-email"},
        ],
    )
    assert [r["success"] for r in results] == [False, False]
    assert results[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert results[1]["errors"][0]["statusCode"] == "INVALID_EMAIL_ADDRESS"
    assert app.records("Contact") == [] and app.changes_since() == []


def test_collection_update_upsert_retrieve_and_delete(app: SalesforceEmulator, sf: Salesforce) -> None:
    first = sf.Contact.create({"LastName": "First", "Capsule_Prospect_Id__c": "p-1"})["id"]
    updated = collection(
        sf,
        "PATCH",
        records=[
            {"attributes": {"type": "Contact"}, "id": first, "Title": "CTO"},
            {"attributes": {"type": "Contact"}, "Title": "no id"},
        ],
    )
    assert updated[0] == {"id": first, "success": True, "errors": []}
    assert updated[1]["errors"][0]["statusCode"] == "MISSING_ARGUMENT"
    upserted = collection(
        sf,
        "PATCH",
        "composite/sobjects/Contact/Capsule_Prospect_Id__c",
        records=[
            {"attributes": {"type": "Contact"}, "Capsule_Prospect_Id__c": "p-1", "LastName": "First again"},
            {"attributes": {"type": "Contact"}, "Capsule_Prospect_Id__c": "p-2", "LastName": "Second"},
        ],
    )
    assert [(r["success"], r["created"]) for r in upserted] == [(True, False), (True, True)]
    assert upserted[0]["id"] == first
    missing = "0038d0000009999" + checksum("0038d0000009999")
    rows = sf.restful(
        "composite/sobjects/Contact",
        params={"ids": f"{first},{upserted[1]['id']},{missing}", "fields": "LastName,Title"},
    )
    assert [r and (r["LastName"], r["Title"]) for r in rows] == [("First again", "CTO"), ("Second", None), None]
    deleted = sf.restful("composite/sobjects", method="DELETE", params={"ids": f"{first},{missing}"})
    assert deleted[0] == {"id": first, "success": True, "errors": []}
    assert deleted[1]["success"] is False and deleted[1]["errors"][0]["statusCode"] == "NOT_FOUND"
    assert [c["LastName"] for c in app.records("Contact")] == ["Second"]


def test_collection_of_more_than_200_records_is_refused(app: SalesforceEmulator, sf: Salesforce) -> None:
    records = [{"attributes": {"type": "Contact"}, "LastName": f"C{n}"} for n in range(201)]
    with pytest.raises(SalesforceMalformedRequest) as refused:
        collection(sf, "POST", records=records)
    assert error_code(refused) == "EXCEEDED_ID_LIMIT" and app.records("Contact") == []


def test_composite_substitutes_references_and_rolls_back_on_failure(app: SalesforceEmulator, sf: Salesforce) -> None:
    base = "/services/data/v59.0"
    answer = sf.restful(
        "composite",
        method="POST",
        json={
            "compositeRequest": [
                {"method": "POST", "url": f"{base}/sobjects/Account", "referenceId": "acct", "body": {"Name": "Acme"}},
                {
                    "method": "POST",
                    "url": f"{base}/sobjects/Contact",
                    "referenceId": "person",
                    "body": {"LastName": "Ref", "AccountId": "@{acct.id}"},
                },
                {"method": "GET", "url": f"{base}/sobjects/Contact/@{{person.id}}", "referenceId": "read"},
            ]
        },
    )["compositeResponse"]
    assert [a["httpStatusCode"] for a in answer] == [201, 201, 200]
    assert answer[2]["body"]["AccountId"] == answer[0]["body"]["id"]
    assert answer[0]["httpHeaders"]["Location"].endswith(answer[0]["body"]["id"])
    failed = sf.restful(
        "composite",
        method="POST",
        json={
            "allOrNone": True,
            "compositeRequest": [
                {"method": "POST", "url": f"{base}/sobjects/Account", "referenceId": "a2", "body": {"Name": "Rolled"}},
                {"method": "POST", "url": f"{base}/sobjects/Lead", "referenceId": "bad", "body": {"LastName": "X"}},
            ],
        },
    )["compositeResponse"]
    assert failed[0]["body"][0]["errorCode"] == "PROCESSING_HALTED"
    assert failed[1]["body"][0]["errorCode"] == "REQUIRED_FIELD_MISSING"
    assert [a["Name"] for a in app.records("Account")] == ["Acme"]


# ---------------------------------------------------------------------------------------------
# Helpers for echo suppression and inspection


def test_change_log_tells_api_writes_from_user_edits(app: SalesforceEmulator, sf: Salesforce) -> None:
    contact_id = sf.Contact.create({"LastName": "Echo"})["id"]
    before = app.get("Contact", contact_id)
    edited = app.simulate_user_edit("Contact", contact_id, {"Title": "Edited in the UI"})
    assert edited["SystemModstamp"] > before["SystemModstamp"]
    assert edited["LastModifiedById"] == app.admin_user_id != before["LastModifiedById"] == app.integration_user_id
    api_write, ui_edit = app.changes_since()
    assert api_write.client_id == app.client.client_id and api_write.change_type == "CREATE"
    assert api_write.origin == f"com/salesforce/api/rest/59.0;client={app.client.client_id}"
    assert ui_edit.client_id is None and ui_edit.fields == ("Title",) and ui_edit.user_id == app.admin_user_id
    assert app.changes_since(client_id=app.client.client_id) == [api_write]
    polled = sf.query(f"SELECT Id FROM Contact WHERE LastModifiedById = '{app.admin_user_id}'")
    assert polled["totalSize"] == 1


def test_merge_moves_children_and_deletes_duplicates(app: SalesforceEmulator, sf: Salesforce) -> None:
    master = sf.Contact.create({"LastName": "Master"})["id"]
    duplicate = sf.Contact.create({"LastName": "Duplicate"})["id"]
    task = sf.Task.create({"Subject": "Call", "WhoId": duplicate})["id"]
    app.merge("Contact", master, [duplicate])
    assert sf.Task.get(task)["WhoId"] == master
    gone = sf.query_all(
        f"SELECT Id, IsDeleted, MasterRecordId FROM Contact WHERE Id = '{duplicate}'", include_deleted=True
    )
    assert gone["records"][0]["IsDeleted"] is True and gone["records"][0]["MasterRecordId"] == master
    assert sf.query("SELECT Id FROM Contact")["totalSize"] == 1


def test_delete_cascades_to_activities_and_reset_forgets_everything(app: SalesforceEmulator, sf: Salesforce) -> None:
    contact_id = sf.Contact.create({"LastName": "Parent"})["id"]
    sf.Task.create({"Subject": "Follow up", "WhoId": contact_id})
    app.delete("Contact", contact_id)
    assert app.records("Task") == [] and len(app.records("Task", include_deleted=True)) == 1
    state = app.state()
    assert state["deleted"] == {"Contact": 1, "Task": 1} and state["objects"]["User"] == 3
    app.reset()
    assert app.records("Contact", include_deleted=True) == [] and app.state()["api_usage"]["used"] == 0
    assert sf.query("SELECT Id FROM User")["totalSize"] == 3  # users and tokens survive a reset


def test_build_writes_a_ca_that_another_process_can_trust(tmp_path: Path) -> None:
    app = build(ca_dir=tmp_path / "ca", daily_limit=10)
    server = app.serve()
    try:
        assert (tmp_path / "ca" / "sandbox-ca.pem").exists() and server.url.startswith("https://127.0.0.1:")
        sf = Salesforce(
            instance_url=server.url,
            session_id=app.issue_token().access_token,
            session=trusting_session(app.ca),
        )
        assert sf.query("SELECT COUNT() FROM User")["totalSize"] == 3
        assert sf.api_usage["api-usage"].total == 10
    finally:
        server.stop()


# ---------------------------------------------------------------------------------------------
# Every request template of the official Postman collection is routed


TEMPLATES = sorted(p.name for p in SPECS.glob("*.json"))


def _concrete(template: dict, app: SalesforceEmulator, server: EmulatorServer, ca: LocalCA) -> dict:
    """Turn a Postman request template into a concrete request against the sandbox."""
    account = app.create("Account", {"Name": "Acme"})
    issued = app.issue_token()
    code = _authorization_code(server, ca)
    now = datetime.now(UTC)
    values = {
        "{{_endpoint}}": server.url,
        "{{url}}": server.url,
        "{{site}}": "",
        "{{version}}": "59.0",
        "<SOBJECT_API_NAME>": "Account",
        "<RECORD_ID>": account,
        "<FIELD_NAME>": "Id",
        "<FIELD_VALUE>": account,
        "{{clientId}}": CLIENT_ID,
        "{{clientSecret}}": CLIENT_SECRET,
        "{{redirectUrl}}": REDIRECT,
        "{{_accessToken}}": issued.access_token,
        "{{_refreshToken}}": issued.refresh_token,
    }

    def fill(text: str) -> str:
        for placeholder, value in values.items():
            text = text.replace(placeholder, value)
        return text

    parts = urlsplit(fill(template["url"]))
    query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    filled = {
        "ids": account,
        "allOrNone": "false",
        "fields": "Name",
        "start": (now - timedelta(hours=1)).isoformat(),
        "end": (now + timedelta(minutes=5)).isoformat(),
        "q": {"search": "FIND {Acme}", "parameterized_search": "Acme"}.get(template["_name"], query.get("q", "")),
    }
    for key in query:
        if query[key] == "" and key in filled:
            query[key] = filled[key]
    query = {k: v for k, v in query.items() if v != ""}
    request = {"method": template["method"], "url": f"{parts.scheme}://{parts.netloc}{parts.path}", "params": query}
    if template.get("dataMode") in ("params", "urlencoded") and template.get("data"):
        form = {item["key"]: fill(item["value"]) for item in template["data"]}
        if form.get("grant_type") == "authorization_code":
            form["code"] = code
        request["data"] = form
    else:
        request["headers"] = {"Authorization": f"Bearer {issued.access_token}"}
        body = SPEC_BODIES.get(template["_name"])
        if callable(body):
            body = body(account)
        if body is not None:
            request["json"] = body
    return request


SPEC_BODIES = {
    "composite": {
        "compositeRequest": [
            {"method": "GET", "url": "/services/data/v59.0/limits", "referenceId": "limits"},
        ]
    },
    "sobject_collections_create": {"records": [{"attributes": {"type": "Account"}, "Name": "From the spec"}]},
    "sobject_collections_update": lambda account: {
        "records": [{"attributes": {"type": "Account"}, "id": account, "Name": "Renamed"}]
    },
    "sobject_create": {"Name": "test"},
    "sobject_rows_update": {"Name": "value"},
}


def _authorization_code(server: EmulatorServer, ca: LocalCA) -> str:
    answer = trusting_session(ca).post(
        f"{server.url}/services/oauth2/authorize",
        data={"client_id": CLIENT_ID, "redirect_uri": REDIRECT, "response_type": "code", "decision": "allow"},
        allow_redirects=False,
    )
    return parse_qs(urlsplit(answer.headers["Location"]).query)["code"][0]


def test_every_collection_template_is_checked() -> None:
    # An empty parametrization would pass silently; the Postman collection copy has 24 requests.
    assert len(TEMPLATES) == 24 and "sobject_rows_by_external_id.json" in TEMPLATES


@pytest.mark.parametrize("name", TEMPLATES)
def test_spec_request_template_is_routed(name: str, served, ca: LocalCA) -> None:
    app, server = served
    template = {**json.loads((SPECS / name).read_text()), "_name": name.removesuffix(".json")}
    request = _concrete(template, app, server, ca)
    answer = trusting_session(ca).request(**request, allow_redirects=False)
    assert answer.headers.get("X-Sandbox-Route") != "none", f"{template['method']} {template['url']} is not routed"
    assert 200 <= answer.status_code < 300, (name, answer.status_code, answer.text[:300])


def test_unknown_paths_are_told_apart_from_missing_records(sf: Salesforce) -> None:
    base = f"https://{sf.sf_instance}/services/data/v59.0"
    unknown = sf.session.get(f"{base}/no/such/resource", headers=sf.headers)
    missing = sf.session.get(f"{base}/sobjects/Contact/0038d0000000zzzAAA", headers=sf.headers)
    assert unknown.status_code == missing.status_code == 404
    assert unknown.headers["X-Sandbox-Route"] == "none" and "X-Sandbox-Route" not in missing.headers
    assert missing.json() == [{"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}]
    assert sf.session.get(f"{base}/", headers=sf.headers).json()["sobjects"] == "/services/data/v59.0/sobjects"
