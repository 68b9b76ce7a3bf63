"""Bulk API 2.0 ingest jobs and the Tooling API CustomField resource of the Salesforce sandbox, driven
with plain requests over TLS (crm-reference §1.2, §1.3)."""

from __future__ import annotations

import csv
import io

import pytest
import requests

from integrations.sandbox.core import EmulatorServer, LocalCA
from integrations.sandbox.salesforce import SalesforceEmulator


class Api:
    def __init__(self, server: EmulatorServer, ca: LocalCA, token: str) -> None:
        self.base = f"{server.url}/services/data/v59.0"
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.verify = str(ca.ca_path)
        self.session.headers["Authorization"] = f"Bearer {token}"

    def call(self, method: str, path: str, **kwargs) -> requests.Response:
        return self.session.request(method, f"{self.base}/{path}", **kwargs)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    ca = LocalCA(tmp_path_factory.mktemp("salesforce-bulk-ca"))
    app = SalesforceEmulator()
    locked = SalesforceEmulator(customize_application=False)
    servers = [EmulatorServer(app, tls=ca).start(), EmulatorServer(locked, tls=ca).start()]
    yield app, servers[0], locked, servers[1], ca
    for server in servers:
        server.stop()


@pytest.fixture
def app(served) -> SalesforceEmulator:
    served[0].reset()
    return served[0]


@pytest.fixture
def api(served, app: SalesforceEmulator) -> Api:
    return Api(served[1], served[4], app.issue_token().access_token)


def run_job(api: Api, csv_text: str, **definition) -> dict:
    created = api.call("POST", "jobs/ingest", json={"contentType": "CSV", "lineEnding": "LF", **definition})
    assert created.status_code == 200 and created.json()["state"] == "Open", created.text
    job_id = created.json()["id"]
    upload = api.call(
        "PUT", f"jobs/ingest/{job_id}/batches", data=csv_text.encode(), headers={"Content-Type": "text/csv"}
    )
    assert upload.status_code == 201
    closed = api.call("PATCH", f"jobs/ingest/{job_id}", json={"state": "UploadComplete"})
    assert closed.json()["state"] == "UploadComplete"
    return api.call("GET", f"jobs/ingest/{job_id}").json()


def results(api: Api, job_id: str, which: str) -> list[dict[str, str]]:
    answer = api.call("GET", f"jobs/ingest/{job_id}/{which}/")
    assert answer.headers["Content-Type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(answer.text)))


def test_insert_job_reports_successes_and_failures(app: SalesforceEmulator, api: Api) -> None:
    data = "FirstName,LastName,Email\nAda,Lovelace,ada@example.com\nNo,,no@example.com\nAlan,Turing,\n"
    job = run_job(api, data, object="Contact", operation="insert")
    assert job["id"].startswith("750") and job["state"] == "JobComplete" and job["jobType"] == "V2Ingest"
    assert job["numberRecordsProcessed"] == 3 and job["numberRecordsFailed"] == 1
    good = results(api, job["id"], "successfulResults")
    assert [(r["sf__Created"], r["LastName"]) for r in good] == [("true", "Lovelace"), ("true", "Turing")]
    assert all(r["sf__Id"].startswith("003") for r in good)
    (bad,) = results(api, job["id"], "failedResults")
    assert bad["sf__Error"] == "REQUIRED_FIELD_MISSING:Required fields are missing: [LastName]:LastName --"
    assert bad["Email"] == "no@example.com" and bad["sf__Id"] == ""
    raw = api.call("GET", f"jobs/ingest/{job['id']}/successfulResults/").text
    assert raw.splitlines()[0] == '"sf__Id","sf__Created","FirstName","LastName","Email"'
    assert sorted(c["LastName"] for c in app.records("Contact")) == ["Lovelace", "Turing"]
    assert app.state()["bulk_records"] == 3 and app.state()["calls_by_kind"]["bulk"] == 7


def test_upsert_update_and_delete_jobs(app: SalesforceEmulator, api: Api) -> None:
    existing = app.create("Contact", {"LastName": "Old", "Capsule_Prospect_Id__c": "p-1"})
    upsert = run_job(
        api,
        "Capsule_Prospect_Id__c,LastName,DoNotCall\np-1,Updated,true\np-2,Created,#N/A\n",
        object="Contact",
        operation="upsert",
        externalIdFieldName="Capsule_Prospect_Id__c",
    )
    rows = results(api, upsert["id"], "successfulResults")
    assert [(r["sf__Id"] == existing, r["sf__Created"]) for r in rows] == [(True, "false"), (False, "true")]
    assert app.get("Contact", existing)["DoNotCall"] is True
    created = rows[1]["sf__Id"]
    update = run_job(api, f"Id,Title\n{created},Buyer\n", object="Contact", operation="update")
    assert update["numberRecordsFailed"] == 0 and app.get("Contact", created)["Title"] == "Buyer"
    delete = run_job(api, f"Id\n{existing}\n0038d0000000zzzAAA\n", object="Contact", operation="delete")
    assert delete["numberRecordsProcessed"] == 2 and delete["numberRecordsFailed"] == 1
    assert [c["Id"] for c in app.records("Contact")] == [created]


def test_job_definition_and_upload_errors(app: SalesforceEmulator, api: Api) -> None:
    unknown = api.call("POST", "jobs/ingest", json={"object": "Widget", "operation": "insert"})
    assert unknown.status_code == 400 and unknown.json()[0]["errorCode"] == "INVALIDJOB"
    no_key = api.call("POST", "jobs/ingest", json={"object": "Contact", "operation": "upsert"})
    assert no_key.status_code == 400 and "External ID" in no_key.json()[0]["message"]
    job_id = api.call("POST", "jobs/ingest", json={"object": "Contact", "operation": "insert"}).json()["id"]
    assert api.call("PUT", f"jobs/ingest/{job_id}/batches", data=b"LastName\nA\n").status_code == 201
    twice = api.call("PUT", f"jobs/ingest/{job_id}/batches", data=b"LastName\nB\n")
    assert twice.status_code == 400 and twice.json()[0]["errorCode"] == "BULK_API_ERROR"
    bad_column = run_job(api, "LastName,Shoe_Size__c\nA,9\n", object="Contact", operation="insert")
    assert bad_column["state"] == "Failed" and "Shoe_Size__c" in bad_column["errorMessage"]
    assert api.call("GET", "jobs/ingest/750notajob").status_code == 404
    listed = api.call("GET", "jobs/ingest").json()
    assert listed["done"] is True and {j["id"] for j in listed["records"]} >= {job_id, bad_column["id"]}


def test_tooling_adds_a_custom_field_that_describe_and_writes_see(app: SalesforceEmulator, api: Api) -> None:
    definition = {
        "FullName": "Contact.Capsule_Score__c",
        "Metadata": {"type": "Number", "label": "Capsule score", "precision": 5, "scale": 1},
    }
    created = api.call("POST", "tooling/sobjects/CustomField/", json=definition)
    assert created.status_code == 201 and created.json()["success"] is True
    assert created.json()["id"].startswith("00N")
    fields = {f["name"]: f for f in api.call("GET", "sobjects/Contact/describe").json()["fields"]}
    score = fields["Capsule_Score__c"]
    assert (score["type"], score["precision"], score["scale"], score["custom"]) == ("double", 5, 1, True)
    assert score["label"] == "Capsule score"
    contact = api.call("POST", "sobjects/Contact/", json={"LastName": "Scored", "Capsule_Score__c": 42.25}).json()
    rows = api.call("GET", "query/", params={"q": "SELECT Capsule_Score__c FROM Contact WHERE Capsule_Score__c > 40"})
    assert rows.json()["records"][0]["Capsule_Score__c"] == 42.3  # rounded half up to the scale
    assert app.get("Contact", contact["id"])["Capsule_Score__c"] == 42.3
    again = api.call("POST", "tooling/sobjects/CustomField/", json=definition)
    assert again.status_code == 400 and again.json()[0]["errorCode"] == "DUPLICATE_DEVELOPER_NAME"
    read = api.call("GET", f"tooling/sobjects/CustomField/{created.json()['id']}").json()
    assert read["FullName"] == "Contact.Capsule_Score__c" and read["TableEnumOrId"] == "Contact"
    app.reset()
    assert "Capsule_Score__c" not in {f["name"] for f in api.call("GET", "sobjects/Contact/describe").json()["fields"]}


def test_tooling_checks_the_definition(api: Api) -> None:
    no_label = {"FullName": "Lead.Capsule_Tier__c", "Metadata": {"type": "Picklist"}}
    assert api.call("POST", "tooling/sobjects/CustomField/", json=no_label).json()[0]["errorCode"] == (
        "REQUIRED_FIELD_MISSING"
    )
    not_custom = {"FullName": "Lead.Tier", "Metadata": {"type": "Text", "label": "Tier", "length": 10}}
    assert api.call("POST", "tooling/sobjects/CustomField/", json=not_custom).status_code == 400
    picklist = {
        "FullName": "Lead.Capsule_Tier__c",
        "Metadata": {
            "type": "Picklist",
            "label": "Tier",
            "valueSet": {"valueSetDefinition": {"value": [{"fullName": "Hot"}, {"fullName": "Cold"}]}},
        },
    }
    assert api.call("POST", "tooling/sobjects/CustomField/", json=picklist).status_code == 201
    lead = api.call("POST", "sobjects/Lead/", json={"LastName": "L", "Company": "C", "Capsule_Tier__c": "Hot"})
    assert lead.status_code == 201


def test_tooling_without_customize_application_is_403(served) -> None:
    _app, _server, locked, locked_server, ca = served
    api = Api(locked_server, ca, locked.issue_token().access_token)
    definition = {"FullName": "Contact.Capsule_Score__c", "Metadata": {"type": "Checkbox", "label": "Scored"}}
    refused = api.call("POST", "tooling/sobjects/CustomField/", json=definition)
    assert refused.status_code == 403 and refused.json()[0]["errorCode"] == "INSUFFICIENT_ACCESS"
    assert locked.store.sobject("Contact").field("Capsule_Score__c") is None
