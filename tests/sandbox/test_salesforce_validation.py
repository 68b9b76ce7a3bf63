"""The Salesforce sandbox validates writes as Salesforce does, models the sObjects sync touches, and
answers the SOQL subset (crm-reference §1.2-§1.7) — all through simple-salesforce over TLS."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest, SalesforceResourceNotFound

from integrations.sandbox.core import EmulatorServer, LocalCA
from integrations.sandbox.salesforce import SalesforceEmulator


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    ca = LocalCA(tmp_path_factory.mktemp("salesforce-validation-ca"))
    app = SalesforceEmulator(query_batch_size=4)
    server = EmulatorServer(app, tls=ca).start()
    yield app, server, ca
    server.stop()


@pytest.fixture
def app(served) -> SalesforceEmulator:
    served[0].reset()
    return served[0]


@pytest.fixture
def sf(served, app: SalesforceEmulator) -> Salesforce:
    _app, server, ca = served
    session = requests.Session()
    session.trust_env = False
    session.verify = str(ca.ca_path)
    return Salesforce(instance_url=server.url, session_id=app.issue_token().access_token, session=session)


def refusal(call, *args) -> dict:
    """The single error entry of a 400 answer."""
    with pytest.raises(SalesforceMalformedRequest) as refused:
        call(*args)
    (entry,) = refused.value.content
    return entry


# ---------------------------------------------------------------------------------------------
# Validation errors


def test_required_fields_missing(sf: Salesforce) -> None:
    entry = refusal(sf.Lead.create, {"FirstName": "No"})
    assert entry == {
        "message": "Required fields are missing: [LastName, Company]",
        "errorCode": "REQUIRED_FIELD_MISSING",
        "fields": ["LastName", "Company"],
    }
    lead = sf.Lead.create({"LastName": "Lee", "Company": "Acme"})["id"]
    assert refusal(sf.Lead.update, lead, {"Company": ""})["errorCode"] == "REQUIRED_FIELD_MISSING"


def test_unknown_field_is_invalid_field(sf: Salesforce) -> None:
    entry = refusal(sf.Contact.create, {"LastName": "X", "Favourite_Colour__c": "blue"})
    assert entry["errorCode"] == "INVALID_FIELD"
    assert entry["message"] == "No such column 'Favourite_Colour__c' on sobject of type Contact"


def test_bad_value_for_restricted_picklist(sf: Salesforce) -> None:
    entry = refusal(sf.Lead.create, {"LastName": "X", "Company": "Y", "Status": "Bogus"})
    assert entry["errorCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST" and entry["fields"] == ["Status"]
    # An unrestricted picklist takes any value; a restricted one matches case-insensitively.
    lead = sf.Lead.create({"LastName": "X", "Company": "Y", "LeadSource": "Capsule", "Status": "working - contacted"})
    assert sf.Lead.get(lead["id"])["Status"] == "Working - Contacted"


def test_read_only_fields_cannot_be_written(sf: Salesforce) -> None:
    entry = refusal(sf.Lead.create, {"LastName": "X", "Company": "Y", "IsConverted": True, "Name": "Z"})
    assert entry["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE" and entry["fields"] == ["IsConverted", "Name"]
    task = sf.Task.create({"Subject": "Call", "TaskSubtype": "Call"})["id"]
    assert refusal(sf.Task.update, task, {"TaskSubtype": "Email"})["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"


def test_string_too_long_and_invalid_email(sf: Salesforce) -> None:
    entry = refusal(sf.Contact.create, {"LastName": "L" * 81})
    assert entry["errorCode"] == "STRING_TOO_LONG" and entry["fields"] == ["LastName"]
    assert "(max length=80)" in entry["message"]
    entry = refusal(sf.Contact.create, {"LastName": "Mail", "Email": "nobody-at-example"})
    assert entry == {
        "message": "Email: invalid email address: nobody-at-example",
        "errorCode": "INVALID_EMAIL_ADDRESS",
        "fields": ["Email"],
    }


def test_unique_external_ids_refuse_duplicates(sf: Salesforce) -> None:
    first = sf.Contact.create({"LastName": "A", "Capsule_Prospect_Id__c": "p-9"})["id"]
    entry = refusal(sf.Contact.create, {"LastName": "B", "Capsule_Prospect_Id__c": "P-9"})
    assert entry["errorCode"] == "DUPLICATE_VALUE" and first in entry["message"]
    sf.Task.create({"Subject": "Viewed", "Capsule_Event_Id__c": "evt-1"})
    assert (
        refusal(sf.Task.create, {"Subject": "Again", "Capsule_Event_Id__c": "evt-1"})["errorCode"] == "DUPLICATE_VALUE"
    )


def test_missing_and_malformed_ids(app: SalesforceEmulator, sf: Salesforce) -> None:
    with pytest.raises(SalesforceResourceNotFound) as missing:
        sf.Contact.get("0038d0000000zzzAAA")
    assert missing.value.content[0]["errorCode"] == "NOT_FOUND"
    with pytest.raises(SalesforceResourceNotFound):
        sf.restful("sobjects/NoSuchObject__c/describe")
    lead = sf.Lead.create({"LastName": "L", "Company": "C"})["id"]
    assert refusal(sf.Contact.get, lead)["errorCode"] == "MALFORMED_ID"  # a Lead id is not a Contact id
    assert refusal(sf.Task.create, {"Subject": "S", "WhoId": "not-an-id"})["errorCode"] == "MALFORMED_ID"
    account = sf.Account.create({"Name": "Acme"})["id"]
    entry = refusal(sf.Task.create, {"Subject": "S", "WhoId": account})
    assert entry["errorCode"] == "FIELD_INTEGRITY_EXCEPTION" and entry["fields"] == ["WhoId"]


def test_writes_to_or_through_deleted_records(sf: Salesforce) -> None:
    contact = sf.Contact.create({"LastName": "Soon gone"})["id"]
    sf.Contact.delete(contact)
    entry = refusal(sf.Task.create, {"Subject": "S", "WhoId": contact})
    assert entry["errorCode"] == "ENTITY_IS_DELETED"
    with pytest.raises(SalesforceResourceNotFound) as again:
        sf.Contact.delete(contact)
    assert again.value.content[0] == {"message": "entity is deleted", "errorCode": "ENTITY_IS_DELETED", "fields": []}


def test_unknown_types_are_invalid_type(sf: Salesforce) -> None:
    assert refusal(sf.query, "SELECT Id FROM Widget")["errorCode"] == "INVALID_TYPE"
    results = sf.restful(
        "composite/sobjects", method="POST", json={"records": [{"attributes": {"type": "Widget"}, "Name": "W"}]}
    )
    assert results[0]["errors"][0]["statusCode"] == "INVALID_TYPE"


def test_values_of_the_wrong_type_fail_to_deserialize(sf: Salesforce) -> None:
    assert refusal(sf.Contact.create, {"LastName": "X", "DoNotCall": "maybe"})["errorCode"] == "JSON_PARSER_ERROR"
    assert refusal(sf.Task.create, {"Subject": "S", "ActivityDate": "next week"})["errorCode"] == "JSON_PARSER_ERROR"
    contact = sf.Contact.create({"LastName": "Typed", "DoNotCall": "true"})["id"]
    assert sf.Contact.get(contact)["DoNotCall"] is True


# ---------------------------------------------------------------------------------------------
# The objects sync writes: ids, defaults, derived fields


def test_each_object_gets_its_key_prefix_and_defaults(app: SalesforceEmulator, sf: Salesforce) -> None:
    account = sf.Account.create({"Name": "Acme"})["id"]
    contact = sf.Contact.create({"LastName": "Buyer", "AccountId": account})["id"]
    lead = sf.Lead.create({"LastName": "Prospect", "Company": "Acme"})["id"]
    task = sf.Task.create({"Subject": "Viewed capsule", "WhoId": contact, "Status": "Completed"})["id"]
    event = sf.Event.create(
        {"Subject": "Demo", "WhoId": lead, "StartDateTime": "2030-01-02T10:00:00Z", "DurationInMinutes": 30}
    )["id"]
    note = sf.Note.create({"ParentId": contact, "Title": "Engagement", "Body": "Read 3 pages"})["id"]
    opportunity = sf.Opportunity.create(
        {"Name": "Capsule deal", "StageName": "Closed Won", "CloseDate": "2030-03-31", "Amount": 1200}
    )["id"]
    role = sf.OpportunityContactRole.create({"OpportunityId": opportunity, "ContactId": contact, "Role": "Evaluator"})
    prefixes = [i[:3] for i in (account, contact, lead, task, event, note, opportunity, role["id"])]
    assert prefixes == ["001", "003", "00Q", "00T", "00U", "002", "006", "00K"]
    assert app.integration_user_id.startswith("005")
    assert sf.Lead.get(lead)["Status"] == "Open - Not Contacted"
    task_row = sf.Task.get(task)
    assert task_row["IsClosed"] is True and task_row["Priority"] == "Normal" and task_row["TaskSubtype"] == "Task"
    event_row = sf.Event.get(event)
    assert event_row["EndDateTime"] == "2030-01-02T10:30:00.000+0000" and event_row["ActivityDate"] == "2030-01-02"
    won = sf.Opportunity.get(opportunity)
    assert won["IsWon"] is True and won["Probability"] == 100.0 and won["Amount"] == 1200.0
    entry = refusal(sf.Event.create, {"Subject": "No time"})
    assert entry["fields"] == ["ActivityDateTime", "DurationInMinutes"]


def test_content_note_is_linked_to_a_contact(app: SalesforceEmulator, sf: Salesforce) -> None:
    contact = sf.Contact.create({"LastName": "Reader"})["id"]
    html = "<p>Spent 4 minutes on <b>pricing</b></p>"
    note = sf.ContentNote.create({"Title": "Capsule activity", "Content": base64.b64encode(html.encode()).decode()})
    assert note["id"].startswith("069")
    link = sf.ContentDocumentLink.create({"ContentDocumentId": note["id"], "LinkedEntityId": contact})
    assert link["id"].startswith("06A")
    stored = sf.ContentNote.get(note["id"])
    assert stored["TextPreview"] == "Spent 4 minutes on pricing" and stored["FileType"] == "SNOTE"
    assert stored["Content"].endswith(f"/sobjects/ContentNote/{note['id']}/Content")
    blob = sf.session.get(f"https://{sf.sf_instance}{stored['Content']}", headers=sf.headers)
    assert blob.content == html.encode()
    linked = sf.query(
        f"SELECT ContentDocumentId, ContentDocument.Title FROM ContentDocumentLink WHERE LinkedEntityId = '{contact}'"
    )
    assert linked["records"][0]["ContentDocument"]["Title"] == "Capsule activity"
    assert refusal(sf.ContentNote.create, {"Title": "Bad", "Content": "***"})["errorCode"] == "JSON_PARSER_ERROR"


# ---------------------------------------------------------------------------------------------
# SOQL subset


@pytest.fixture
def people(sf: Salesforce) -> dict[str, str]:
    account = sf.Account.create({"Name": "Globex"})["id"]
    rows = [
        ("Ann", "Archer", "ann@globex.com", "Web"),
        ("Bob", "Baker", "bob@initech.com", "Phone Inquiry"),
        ("Cy", "Cooper", None, "Web"),
        ("Di", "Dalton", "di@globex.com", None),
        ("Ed", "Evans", "ed@umbrella.com", "Other"),
    ]
    ids = {}
    for first, last, email, source in rows:
        fields = {"FirstName": first, "LastName": last, "Email": email, "LeadSource": source}
        if email and email.endswith("globex.com"):
            fields["AccountId"] = account
        ids[last] = sf.Contact.create(fields)["id"]
    return ids


def names(sf: Salesforce, soql: str) -> list[str]:
    return [r["LastName"] for r in sf.query_all(soql)["records"]]


def test_equality_in_and_like(sf: Salesforce, people: dict[str, str]) -> None:
    assert names(sf, "SELECT LastName FROM Contact WHERE Email = 'ANN@GLOBEX.COM'") == ["Archer"]
    assert names(sf, "SELECT LastName FROM Contact WHERE LastName IN ('Baker', 'Evans') ORDER BY LastName") == [
        "Baker",
        "Evans",
    ]
    assert names(sf, "SELECT LastName FROM Contact WHERE Email LIKE '%@globex.com' ORDER BY LastName") == [
        "Archer",
        "Dalton",
    ]
    assert names(sf, "SELECT LastName FROM Contact WHERE LeadSource NOT IN ('Web') ORDER BY LastName") == [
        "Baker",
        "Dalton",
        "Evans",
    ]
    assert names(sf, "SELECT LastName FROM Contact WHERE Email = null") == ["Cooper"]
    assert names(sf, "SELECT LastName FROM Contact WHERE Email = ''") == ["Cooper"]  # '' is null for text
    assert len(names(sf, "SELECT LastName FROM Contact WHERE Email != ''")) == 4
    assert names(sf, f"SELECT LastName FROM Contact WHERE Id = '{people['Baker'][:15]}'") == ["Baker"]


def test_and_or_need_parentheses(sf: Salesforce, people: dict[str, str]) -> None:
    soql = (
        "SELECT LastName FROM Contact WHERE (LeadSource = 'Web' OR LeadSource = 'Other') "
        "AND Email != null ORDER BY LastName"
    )
    assert names(sf, soql) == ["Archer", "Evans"]
    entry = refusal(
        sf.query, "SELECT Id FROM Contact WHERE LeadSource = 'Web' OR LeadSource = 'Other' AND Email != null"
    )
    assert entry["errorCode"] == "MALFORMED_QUERY" and "ERROR at Row:1" in entry["message"]


def test_datetime_comparisons_and_date_literals(app: SalesforceEmulator, sf: Salesforce, people) -> None:
    cutoff = app.get("Contact", people["Cooper"])["SystemModstamp"]
    literal = cutoff.strftime("%Y-%m-%dT%H:%M:%S.") + f"{cutoff.microsecond // 1000:03d}Z"
    later = f"SELECT LastName FROM Contact WHERE SystemModstamp > {literal} ORDER BY SystemModstamp"
    assert names(sf, later) == ["Dalton", "Evans"]
    app.simulate_user_edit("Contact", people["Archer"], {"Title": "Edited"})
    assert names(sf, later) == ["Dalton", "Evans", "Archer"]
    assert len(names(sf, "SELECT LastName FROM Contact WHERE CreatedDate = TODAY")) == 5
    assert names(sf, "SELECT LastName FROM Contact WHERE CreatedDate < LAST_N_DAYS:3") == []
    quoted = refusal(sf.query, f"SELECT Id FROM Contact WHERE CreatedDate > '{literal}'")
    assert quoted["errorCode"] == "INVALID_QUERY_FILTER_OPERATOR"


def test_order_limit_offset_count_and_relationships(sf: Salesforce, people: dict[str, str]) -> None:
    desc = "SELECT LastName FROM Contact ORDER BY Email DESC NULLS LAST LIMIT 3 OFFSET 1"
    assert names(sf, desc) == ["Dalton", "Baker", "Archer"]
    assert sf.query("SELECT COUNT() FROM Contact WHERE AccountId != null") == {
        "totalSize": 2,
        "done": True,
        "records": [],
    }
    rows = sf.query("SELECT LastName, Account.Name FROM Contact WHERE Account.Name = 'globex' ORDER BY LastName")
    assert [(r["LastName"], r["Account"]["Name"]) for r in rows["records"]] == [
        ("Archer", "Globex"),
        ("Dalton", "Globex"),
    ]
    assert rows["records"][0]["Account"]["attributes"]["type"] == "Account"
    orphan = sf.query("SELECT Account.Name FROM Contact WHERE LastName = 'Cooper'")["records"][0]
    assert orphan["Account"] is None
    entry = refusal(sf.query, "SELECT Id, Shoe_Size__c FROM Contact")
    assert entry["errorCode"] == "INVALID_FIELD" and "Shoe_Size__c" in entry["message"]


def test_paging_uses_the_batch_size(sf: Salesforce, people: dict[str, str]) -> None:
    page = sf.query("SELECT Id FROM Contact ORDER BY LastName")
    assert len(page["records"]) == 4 and page["done"] is False
    rest = sf.query_more(page["nextRecordsUrl"], identifier_is_url=True)
    assert len(rest["records"]) == 1 and rest["done"] is True and "nextRecordsUrl" not in rest


def test_query_all_and_replication_see_deleted_rows(app: SalesforceEmulator, sf: Salesforce, people) -> None:
    sf.Contact.delete(people["Evans"])
    assert "Evans" not in names(sf, "SELECT LastName FROM Contact")
    deleted = sf.query_all("SELECT LastName FROM Contact WHERE IsDeleted = true", include_deleted=True)
    assert [r["LastName"] for r in deleted["records"]] == ["Evans"]
    now = datetime.now(UTC)
    window = (now - timedelta(hours=1), now + timedelta(minutes=5))
    assert set(sf.Contact.updated(*window)["ids"]) == {people[n] for n in ("Archer", "Baker", "Cooper", "Dalton")}
    gone = sf.Contact.deleted(*window)
    assert [r["id"] for r in gone["deletedRecords"]] == [people["Evans"]]
    with pytest.raises(SalesforceMalformedRequest) as too_old:
        sf.Contact.updated(now - timedelta(days=31), now)
    assert too_old.value.content[0]["errorCode"] == "INVALID_REPLICATION_DATE"


def test_sosl_search_finds_by_email(sf: Salesforce, people: dict[str, str]) -> None:
    found = sf.search("FIND {bob@initech.com} IN EMAIL FIELDS RETURNING Contact(Id, Email), Lead(Id)")
    assert [r["Id"] for r in found["searchRecords"]] == [people["Baker"]]
    quick = sf.quick_search("globex")
    assert {r["Id"] for r in quick["searchRecords"]} >= {people["Archer"], people["Dalton"]}
