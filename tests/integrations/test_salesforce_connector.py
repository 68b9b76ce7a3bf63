"""The Salesforce connector against the Salesforce sandbox emulator over real HTTPS.

Every operation goes through simple-salesforce and our HTTP seam to the emulator, and the
assertions read the emulator's records and call counters (``counters.calls_by_kind``: "query",
"collections", "sobject", "describe", "bulk", "tooling", …).
"""

from __future__ import annotations

import datetime as dt
import logging

import pytest
import requests
from django.test import override_settings

from integrations.connector import (
    ActivityInput,
    ConnectionCredentials,
    DealInput,
    NoteInput,
    PersonInput,
    TaskInput,
)
from integrations.errors import (
    AuthError,
    ConfigurationError,
    CrmError,
    NotFound,
    OAuthError,
    RateLimited,
    RecordError,
    RetryableError,
)
from integrations.providers.salesforce import soql
from integrations.providers.salesforce.connector import SalesforceConnector
from integrations.sandbox.core import EmulatorServer
from integrations.sandbox.salesforce import SalesforceEmulator
from mapping.presets import CustomFieldSpec
from tests.integrations.salesforce_fixtures import *  # noqa: F403

WHEN = dt.datetime(2025, 3, 14, 9, 30, tzinfo=dt.UTC)


def person(key: str, email: str, crm_id: str | None = None, **fields) -> PersonInput:
    return PersonInput(key=key, email=email, fields={"LastName": "Doe", **fields}, crm_id=crm_id)


def lead(key: str, email: str, **fields) -> PersonInput:
    return PersonInput(key=key, email=email, fields={"LastName": "Doe", "Company": "Acme", **fields})


def calls(app: SalesforceEmulator, kind: str) -> int:
    return app.counters.calls_by_kind[kind]


def contact_id(app: SalesforceEmulator, email: str = "ann@example.com") -> str:
    return app.create("Contact", {"LastName": "Ann", "Email": email})


# ---------------------------------------------------------------------------------------------
# People: Contacts and Leads


def test_a_contact_is_created_then_updated_in_place(salesforce_emulator, salesforce_connector):
    [made] = salesforce_connector.upsert_people("contact", [person("p1", "ann@example.com", FirstName="Ann")])
    assert made.ok and made.created and made.key == "p1"
    # Matched by e-mail, whatever its case: the same record, updated.
    [again] = salesforce_connector.upsert_people("contact", [person("p1", "ANN@example.com", FirstName="Annie")])
    assert again.ok and not again.created and again.crm_id == made.crm_id
    [record] = salesforce_emulator.records("Contact")
    assert record["Id"] == made.crm_id and record["FirstName"] == "Annie" and record["Email"] == "ANN@example.com"


def test_values_keep_their_json_types_and_dates_are_iso(salesforce_emulator, salesforce_connector):
    salesforce_emulator.add_custom_field("Contact", "Score__c", "double")
    salesforce_emulator.add_custom_field("Contact", "Last_Seen__c", "date")
    salesforce_emulator.add_custom_field("Contact", "Seen_At__c", "datetime")
    fields = {"DoNotCall": True, "Score__c": 42.5, "Last_Seen__c": WHEN.date(), "Seen_At__c": WHEN}
    [made] = salesforce_connector.upsert_people("contact", [person("p1", "ann@example.com", **fields)])
    record = salesforce_emulator.get("Contact", made.crm_id)
    assert record["DoNotCall"] is True and record["Score__c"] == 42.5
    assert record["Last_Seen__c"] == WHEN.date() and record["Seen_At__c"] == WHEN


def test_a_lead_missing_its_required_fields_fails_alone(salesforce_emulator, make_salesforce_connector):
    connector = make_salesforce_connector("lead")
    no_company = PersonInput("p2", "bob@example.com", {"LastName": "Bob"})
    outcomes = connector.upsert_people(
        "lead", [lead("p1", "ann@example.com"), no_company, lead("p3", "cy@example.com")]
    )
    assert [o.ok for o in outcomes] == [True, False, True]
    error = outcomes[1].error
    assert isinstance(error, RecordError) and not isinstance(error, NotFound)
    assert error.code == "REQUIRED_FIELD_MISSING" and error.field == "Company" and "Company" in error.message
    assert sorted(r["Email"] for r in salesforce_emulator.records("Lead")) == ["ann@example.com", "cy@example.com"]
    assert salesforce_emulator.records("Contact") == []


def test_a_converted_lead_is_not_matched_so_a_new_lead_is_made(salesforce_emulator, make_salesforce_connector):
    converted = salesforce_emulator.create("Lead", {"LastName": "Old", "Company": "Acme", "Email": "ann@example.com"})
    with salesforce_emulator.lock:  # conversion is a UI action the emulator has no route for
        rows = salesforce_emulator.store.records["Lead"]
        rows[converted] = {**rows[converted], "IsConverted": True}
    connector = make_salesforce_connector("lead")
    [made] = connector.upsert_people("lead", [lead("p1", "ann@example.com")])
    assert made.created and made.crm_id != converted
    assert connector.find_by_email("lead", ["ann@example.com"])["ann@example.com"].crm_id == made.crm_id


def test_450_people_take_three_collection_writes_and_three_queries(salesforce_emulator, salesforce_connector):
    people = [person(f"p{i}", f"person{i}@example.com", FirstName=f"N{i}") for i in range(450)]
    outcomes = salesforce_connector.upsert_people("contact", people)
    assert all(o.ok and o.created for o in outcomes) and [o.key for o in outcomes] == [p.key for p in people]
    assert calls(salesforce_emulator, "collections") == 3
    assert calls(salesforce_emulator, "query") + calls(salesforce_emulator, "composite") == 1  # 3 queries, 1 call
    assert len(salesforce_emulator.records("Contact")) == 450
    by_email = {r["Email"]: r["Id"] for r in salesforce_emulator.records("Contact")}
    assert all(by_email[p.email] == o.crm_id for p, o in zip(people, outcomes, strict=True))

    # A replay (say after a timeout) updates the same 450 records and creates none.
    salesforce_emulator.counters.reset()
    replay = salesforce_connector.upsert_people("contact", people)
    assert [o.crm_id for o in replay] == [o.crm_id for o in outcomes] and not any(o.created for o in replay)
    assert len(salesforce_emulator.records("Contact")) == 450
    assert calls(salesforce_emulator, "collections") == 3 and calls(salesforce_emulator, "query") <= 3


def test_people_with_stored_ids_need_no_query(salesforce_emulator, salesforce_connector):
    ids = [contact_id(salesforce_emulator, f"p{i}@example.com") for i in range(3)]
    salesforce_emulator.counters.reset()
    outcomes = salesforce_connector.upsert_people(
        "contact", [person(f"p{i}", f"p{i}@example.com", crm_id=ids[i], Title="CTO") for i in range(3)]
    )
    assert [o.crm_id for o in outcomes] == ids and not any(o.created for o in outcomes)
    assert calls(salesforce_emulator, "query") == 0 and calls(salesforce_emulator, "collections") == 1
    assert {r["Title"] for r in salesforce_emulator.records("Contact")} == {"CTO"}


def test_a_changed_email_with_a_stored_id_updates_the_same_record(salesforce_emulator, salesforce_connector):
    record_id = contact_id(salesforce_emulator, "old@example.com")
    [outcome] = salesforce_connector.upsert_people("contact", [person("p1", "new@example.com", crm_id=record_id)])
    assert outcome.ok and outcome.crm_id == record_id and not outcome.created
    [record] = salesforce_emulator.records("Contact")
    assert record["Id"] == record_id and record["Email"] == "new@example.com"


def test_a_stored_id_salesforce_no_longer_knows_is_not_found(salesforce_emulator, salesforce_connector):
    deleted = contact_id(salesforce_emulator, "gone@example.com")
    salesforce_emulator.delete("Contact", deleted)
    master, merged = contact_id(salesforce_emulator, "m@example.com"), contact_id(salesforce_emulator, "d@example.com")
    salesforce_emulator.merge("Contact", master, [merged])
    kept = contact_id(salesforce_emulator, "kept@example.com")
    outcomes = salesforce_connector.upsert_people(
        "contact",
        [
            person("p1", "gone@example.com", crm_id=deleted),
            person("p2", "d@example.com", crm_id=merged),
            person("p3", "kept@example.com", crm_id=kept, Title="CEO"),
            person("p4", "x@example.com", crm_id="not-an-id"),
        ],
    )
    assert [type(o.error) for o in outcomes] == [NotFound, NotFound, type(None), NotFound]
    assert outcomes[0].error.code == "ENTITY_IS_DELETED"
    assert salesforce_emulator.get("Contact", kept)["Title"] == "CEO"
    # The engine then matches by e-mail again: the merged person lands on the master record.
    [again] = salesforce_connector.upsert_people("contact", [person("p2", "m@example.com")])
    assert again.crm_id == master and not again.created


def test_two_inputs_for_one_new_email_make_one_record(salesforce_emulator, salesforce_connector):
    first, second = salesforce_connector.upsert_people(
        "contact", [person("p1", "ann@example.com", FirstName="Ann"), person("p2", "Ann@Example.com", Title="CTO")]
    )
    assert first.created and not second.created and first.crm_id == second.crm_id
    [record] = salesforce_emulator.records("Contact")
    assert (record["FirstName"], record["Title"]) == ("Ann", "CTO")


def test_a_person_without_email_or_id_is_refused_alone(salesforce_emulator, salesforce_connector):
    outcomes = salesforce_connector.upsert_people("contact", [person("p1", ""), person("p2", "b@example.com")])
    assert outcomes[0].error.code == "no_email" and outcomes[1].ok
    assert len(salesforce_emulator.records("Contact")) == 1


def test_creates_carry_our_key_so_a_lost_answer_is_not_written_twice(salesforce_emulator, salesforce_connector):
    [made] = salesforce_connector.upsert_people("contact", [person("prospect-7", "ann@example.com")])
    assert salesforce_emulator.get("Contact", made.crm_id)["Capsule_Prospect_Id__c"] == "prospect-7"
    # The first answer was lost, and meanwhile someone changed the address in Salesforce: the
    # e-mail lookup misses, the upsert on our key still finds the record.
    salesforce_emulator.simulate_user_edit("Contact", made.crm_id, {"Email": "ann.smith@example.com"})
    [retried] = salesforce_connector.upsert_people("contact", [person("prospect-7", "ann@example.com")])
    assert retried.crm_id == made.crm_id and not retried.created
    assert len(salesforce_emulator.records("Contact")) == 1


def test_without_the_key_field_creates_are_plain_inserts(salesforce_emulator, salesforce_connector):
    with salesforce_emulator.lock:  # an org that never had our field
        del salesforce_emulator.store.schema["Contact"].fields["capsule_prospect_id__c"]
    [made] = salesforce_connector.upsert_people("contact", [person("p1", "ann@example.com")])
    assert made.created and salesforce_emulator.requests_to("POST", r"/composite/sobjects/?$")
    assert salesforce_emulator.requests_to("PATCH", r"/composite/sobjects/Contact/") == []


def test_a_person_write_never_sends_more_than_200_records_a_call(salesforce_emulator, salesforce_connector):
    ids = [contact_id(salesforce_emulator, f"p{i}@example.com") for i in range(201)]
    outcomes = salesforce_connector.upsert_people(
        "contact", [person(f"k{i}", f"p{i}@example.com", crm_id=record_id) for i, record_id in enumerate(ids)]
    )
    assert all(o.ok for o in outcomes) and len(salesforce_emulator.requests_to("PATCH", r"/composite/sobjects/?$")) == 2


# ---------------------------------------------------------------------------------------------
# Bulk API 2.0 above the threshold


def test_above_the_bulk_threshold_one_job_writes_the_batch(salesforce_emulator, make_salesforce_connector):
    connector = make_salesforce_connector("contact", bulk_threshold=5)
    people = [person(f"p{i}", f"bulk{i}@example.com", FirstName=f"B{i}") for i in range(12)]
    people[4] = PersonInput("p4", "bulk4@example.com", {"FirstName": "No last name"})
    outcomes = connector.upsert_people("contact", people)
    assert len(salesforce_emulator.jobs) == 1 and calls(salesforce_emulator, "collections") == 0
    [job] = salesforce_emulator.jobs.values()
    assert job.operation == "upsert" and job.external_id_field == "Capsule_Prospect_Id__c"
    assert salesforce_emulator.counters.bulk_records == 12
    assert [o.key for o in outcomes] == [p.key for p in people]
    failed = outcomes[4].error
    assert isinstance(failed, RecordError) and failed.code == "REQUIRED_FIELD_MISSING" and failed.field == "LastName"
    by_email = {r["Email"]: r for r in salesforce_emulator.records("Contact")}
    assert len(by_email) == 11
    for p, o in zip(people, outcomes, strict=True):
        if p.key != "p4":
            record = by_email[p.email]
            assert o.created and record["Id"] == o.crm_id and record["FirstName"] == p.fields["FirstName"]

    # Updates by stored id above the threshold: one update job; a deleted id is NotFound.
    stored = [o for o in outcomes if o.ok]
    salesforce_emulator.delete("Contact", stored[0].crm_id)
    updates = [PersonInput(o.key, f"bulk{o.key[1:]}@example.com", {"Title": f"T{o.key}"}, o.crm_id) for o in stored]
    again = connector.upsert_people("contact", updates)
    assert len(salesforce_emulator.jobs) == 2 and calls(salesforce_emulator, "collections") == 0
    assert isinstance(again[0].error, NotFound)
    assert all(o.ok and not o.created and o.crm_id == u.crm_id for o, u in zip(again[1:], updates[1:], strict=True))
    assert all(salesforce_emulator.get("Contact", u.crm_id)["Title"] == f"T{u.key}" for u in updates[1:])


def test_bulk_inserts_without_the_key_field_are_told_apart_by_email(salesforce_emulator, make_salesforce_connector):
    with salesforce_emulator.lock:
        del salesforce_emulator.store.schema["Lead"].fields["capsule_prospect_id__c"]
    connector = make_salesforce_connector("lead", bulk_threshold=2)
    people = [lead(f"p{i}", f"lead{i}@example.com", Title=None) for i in range(4)]
    outcomes = connector.upsert_people("lead", people)
    [job] = salesforce_emulator.jobs.values()
    assert job.operation == "insert"
    assert {salesforce_emulator.get("Lead", o.crm_id)["Email"] for o in outcomes} == {p.email for p in people}
    assert all(o.created for o in outcomes)


# ---------------------------------------------------------------------------------------------
# Activities, notes, tasks, deals


def activity(key: str, who: str, subject: str = "Viewed capsule “Pricing”") -> ActivityInput:
    return ActivityInput(key, who, "contact", "capsule_viewed", subject, f"{subject}\nWhen: 2025-03-14", WHEN)


def test_activities_are_completed_tasks_written_once_per_event(salesforce_emulator, salesforce_connector):
    who = contact_id(salesforce_emulator)
    outcomes = salesforce_connector.log_activities([activity("capsule-evt-1", who), activity("capsule-evt-2", who)])
    assert all(o.ok and o.created for o in outcomes)
    tasks = {t["Capsule_Event_Id__c"]: t for t in salesforce_emulator.records("Task")}
    task = tasks["capsule-evt-1"]
    assert task["Id"] == outcomes[0].crm_id and task["WhoId"] == who and task["Status"] == "Completed"
    assert task["TaskSubtype"] == "Task" and task["ActivityDate"] == WHEN.date()
    assert task["Subject"] == "Viewed capsule “Pricing”" and task["Description"].startswith("Viewed capsule")
    assert calls(salesforce_emulator, "collections") == 1

    replay = salesforce_connector.log_activities([activity("capsule-evt-1", who), activity("capsule-evt-1", who)])
    assert [o.crm_id for o in replay] == [outcomes[0].crm_id] * 2 and not any(o.created for o in replay)
    assert len(salesforce_emulator.records("Task")) == 2


def test_an_activity_on_a_deleted_person_fails_alone(salesforce_emulator, salesforce_connector):
    who, gone = contact_id(salesforce_emulator), contact_id(salesforce_emulator, "gone@example.com")
    salesforce_emulator.delete("Contact", gone)
    ok, failed = salesforce_connector.log_activities([activity("capsule-evt-1", who), activity("capsule-evt-2", gone)])
    assert ok.ok and isinstance(failed.error, RecordError) and failed.error.field == "WhoId"


def test_a_missing_event_key_field_is_created_through_tooling(salesforce_emulator, salesforce_connector):
    with salesforce_emulator.lock:
        del salesforce_emulator.store.schema["Task"].fields["capsule_event_id__c"]
    who = contact_id(salesforce_emulator)
    [made] = salesforce_connector.log_activities([activity("capsule-evt-1", who)])
    assert made.created and calls(salesforce_emulator, "tooling") >= 1
    field = {f.name: f for f in salesforce_connector.describe_fields("activity")}["Capsule_Event_Id__c"]
    assert field.custom and field.unique
    [again] = salesforce_connector.log_activities([activity("capsule-evt-1", who)])
    assert again.crm_id == made.crm_id and len(salesforce_emulator.records("Task")) == 1


def test_without_the_field_or_the_right_to_make_it_a_description_marker_keeps_tasks_single(
    salesforce_emulator, salesforce_connector
):
    salesforce_emulator.customize_application = False
    with salesforce_emulator.lock:
        del salesforce_emulator.store.schema["Task"].fields["capsule_event_id__c"]
    who = contact_id(salesforce_emulator)
    [made] = salesforce_connector.log_activities([activity("capsule-evt-1", who)])
    [task] = salesforce_emulator.records("Task")
    assert made.created and task["Id"] == made.crm_id
    assert task["Description"].endswith("\n\nCapsule ref: capsule-evt-1")
    refused = calls(salesforce_emulator, "tooling")
    assert refused >= 1
    outcomes = salesforce_connector.log_activities([activity("capsule-evt-1", who), activity("capsule-evt-2", who)])
    assert outcomes[0].crm_id == made.crm_id and not outcomes[0].created and outcomes[1].created
    assert len(salesforce_emulator.records("Task")) == 2
    assert calls(salesforce_emulator, "tooling") == refused  # the refusal is remembered


def test_a_key_field_made_by_hand_without_external_id_is_looked_up(salesforce_emulator, salesforce_connector):
    with salesforce_emulator.lock:
        del salesforce_emulator.store.schema["Task"].fields["capsule_event_id__c"]
    salesforce_emulator.add_custom_field("Task", "Capsule_Event_Id__c", "string")  # no External ID
    who = contact_id(salesforce_emulator)
    [made] = salesforce_connector.log_activities([activity("capsule-evt-1", who)])
    assert made.created and salesforce_emulator.get("Task", made.crm_id)["Capsule_Event_Id__c"] == "capsule-evt-1"
    [again] = salesforce_connector.log_activities([activity("capsule-evt-1", who)])
    assert again.crm_id == made.crm_id and not again.created and len(salesforce_emulator.records("Task")) == 1
    assert calls(salesforce_emulator, "tooling") == 0


def test_notes_are_written_once_per_key(salesforce_emulator, salesforce_connector):
    who = contact_id(salesforce_emulator)
    notes = [
        NoteInput("capsule-evt-5", who, "contact", "Question asked in “Pricing”:\nDo you offer SSO?", WHEN),
        NoteInput("capsule-evt-6", who, "contact", "Question asked in “Pricing”:\nIs there an API?", WHEN),
    ]
    outcomes = salesforce_connector.add_notes(notes)
    assert all(o.ok and o.created for o in outcomes)
    note = salesforce_emulator.get("Note", outcomes[0].crm_id)
    assert note["ParentId"] == who and note["Title"].startswith("[capsule-evt-5] Question asked in")
    assert len(note["Title"]) <= 80 and note["Body"].endswith("Do you offer SSO?")
    salesforce_emulator.counters.reset()
    replay = salesforce_connector.add_notes(notes)
    assert [o.crm_id for o in replay] == [o.crm_id for o in outcomes] and not any(o.created for o in replay)
    assert len(salesforce_emulator.records("Note")) == 2
    assert calls(salesforce_emulator, "query") == 1 and calls(salesforce_emulator, "collections") == 0


def test_a_note_key_with_soql_wildcards_matches_only_itself(salesforce_emulator, salesforce_connector):
    who = contact_id(salesforce_emulator)
    [first] = salesforce_connector.add_notes([NoteInput("trigger_1%", who, "contact", "First", WHEN)])
    [second] = salesforce_connector.add_notes([NoteInput("trigger_10", who, "contact", "Second", WHEN)])
    assert first.created and second.created and first.crm_id != second.crm_id


def test_tasks_go_to_their_owner_and_a_replay_does_not_reopen_them(salesforce_emulator, salesforce_connector):
    who = contact_id(salesforce_emulator)
    rep = salesforce_emulator.find("User", Username="rep@capsule-sandbox.example.com")[0]["Id"]
    due = dt.datetime(2025, 4, 1, 15, 0, tzinfo=dt.UTC)
    task = TaskInput("trigger-9", who, "contact", "Call Ann back", "She asked for pricing", due, owner_id=rep)
    [made] = salesforce_connector.create_tasks([task])
    record = salesforce_emulator.get("Task", made.crm_id)
    assert made.created and record["OwnerId"] == rep and record["Status"] == "Not Started"
    assert record["ActivityDate"] == due.date() and record["Subject"] == "Call Ann back"
    assert record["Capsule_Event_Id__c"] == "trigger-9" and record["WhoId"] == who
    salesforce_emulator.simulate_user_edit("Task", made.crm_id, {"Status": "Completed"}, user_id=rep)
    [again] = salesforce_connector.create_tasks([task])
    assert again.crm_id == made.crm_id and not again.created
    assert salesforce_emulator.get("Task", made.crm_id)["Status"] == "Completed"
    assert len(salesforce_emulator.records("Task")) == 1


def test_a_task_for_an_unknown_owner_fails_alone(salesforce_emulator, salesforce_connector):
    who = contact_id(salesforce_emulator)
    due = WHEN + dt.timedelta(days=1)
    bad = TaskInput("trigger-1", who, "contact", "Call", "", due, owner_id="0058d00000000ZZZZZ")
    good = TaskInput("trigger-2", who, "contact", "Call", "", due)
    failed, made = salesforce_connector.create_tasks([bad, good])
    assert isinstance(failed.error, RecordError) and failed.error.field == "OwnerId" and made.ok


def deal(key: str, who: str, kind: str = "contact", **extra) -> DealInput:
    return DealInput(key, who, kind, "Pricing — Acme", 1200.5, "EUR", close_date=WHEN.date(), **extra)


def test_a_conversion_is_one_opportunity_with_one_contact_role(salesforce_emulator, salesforce_connector):
    who = contact_id(salesforce_emulator)
    made = salesforce_connector.upsert_deal(deal("capsule-evt-9", who))
    assert made.ok and made.created
    opportunity = salesforce_emulator.get("Opportunity", made.crm_id)
    assert opportunity["Name"] == "Pricing — Acme" and opportunity["StageName"] == "Closed Won"
    assert opportunity["CloseDate"] == WHEN.date() and opportunity["Amount"] == 1200.5
    assert opportunity["Capsule_Conversion_Id__c"] == "capsule-evt-9" and opportunity["IsWon"] is True
    [role] = salesforce_emulator.records("OpportunityContactRole")
    assert role["OpportunityId"] == made.crm_id and role["ContactId"] == who
    again = salesforce_connector.upsert_deal(deal("capsule-evt-9", who, stage="Negotiation/Review"))
    assert again.crm_id == made.crm_id and not again.created
    assert len(salesforce_emulator.records("Opportunity")) == 1
    assert len(salesforce_emulator.records("OpportunityContactRole")) == 1
    assert salesforce_emulator.get("Opportunity", made.crm_id)["StageName"] == "Negotiation/Review"


def test_a_lost_role_is_made_on_the_replay(salesforce_emulator, salesforce_connector):
    who = contact_id(salesforce_emulator)
    made = salesforce_connector.upsert_deal(deal("capsule-evt-9", who))
    [role] = salesforce_emulator.records("OpportunityContactRole")
    salesforce_emulator.delete("OpportunityContactRole", role["Id"])  # as if the role call never happened
    salesforce_connector.upsert_deal(deal("capsule-evt-9", who))
    [again] = salesforce_emulator.records("OpportunityContactRole")
    assert again["OpportunityId"] == made.crm_id


def test_a_lead_conversion_gets_no_contact_role(salesforce_emulator, make_salesforce_connector):
    who = salesforce_emulator.create("Lead", {"LastName": "Ann", "Company": "Acme", "Email": "ann@example.com"})
    made = make_salesforce_connector("lead").upsert_deal(deal("capsule-evt-9", who, "lead"))
    assert made.ok and made.created and salesforce_emulator.records("OpportunityContactRole") == []


def test_set_fields_patches_one_record(salesforce_emulator, salesforce_connector):
    record_id = contact_id(salesforce_emulator)
    salesforce_connector.set_fields("contact", record_id, {"Title": "VP Sales", "DoNotCall": True})
    record = salesforce_emulator.get("Contact", record_id)
    assert record["Title"] == "VP Sales" and record["DoNotCall"] is True
    salesforce_emulator.delete("Contact", record_id)
    with pytest.raises(NotFound):
        salesforce_connector.set_fields("contact", record_id, {"Title": "CEO"})
    with pytest.raises(RecordError) as bad:
        salesforce_connector.set_fields("contact", contact_id(salesforce_emulator, "b@example.com"), {"Nope__c": 1})
    assert bad.value.code == "INVALID_FIELD"


# ---------------------------------------------------------------------------------------------
# Describe and custom fields


def test_describe_reports_types_picklists_required_and_custom_fields(salesforce_emulator, salesforce_connector):
    salesforce_emulator.add_custom_field("Lead", "Capsule_Grade__c", "picklist", picklist=["A", "B", "C"])
    fields = {f.name: f for f in salesforce_connector.describe_fields("lead")}
    assert fields["LastName"].required and fields["Company"].required
    assert not fields["Email"].required and fields["Email"].type == "email" and fields["Email"].max_length == 80
    assert not fields["OwnerId"].required and not fields["DoNotCall"].required
    assert fields["DoNotCall"].type == "boolean" and fields["OwnerId"].type == "other"
    assert fields["Description"].type == "text" and fields["Phone"].type == "phone"
    assert fields["Status"].type == "picklist" and "Open - Not Contacted" in fields["Status"].options
    assert fields["Name"].read_only and not fields["LastName"].read_only
    grade = fields["Capsule_Grade__c"]
    assert grade.custom and grade.type == "picklist" and grade.options == ("A", "B", "C")
    assert fields["Capsule_Prospect_Id__c"].unique and not fields["LastName"].custom
    deal_fields = {f.name: f for f in salesforce_connector.describe_fields("deal")}
    assert deal_fields["Amount"].type == "number" and deal_fields["CloseDate"].type == "date"
    assert deal_fields["StageName"].required
    assert {f.name for f in salesforce_connector.describe_fields("note")} >= {"Title", "Body", "ParentId"}
    task = {f.name: f for f in salesforce_connector.describe_fields("task")}
    assert task["ActivityDate"].type == "date" and task["Subject"].type == "string"


def test_create_custom_field_makes_fields_describe_then_lists(salesforce_emulator, salesforce_connector):
    score = salesforce_connector.create_custom_field(
        "contact", CustomFieldSpec("Capsule_Score__c", "Capsule score", "number", description="Lead score")
    )
    assert score.name == "Capsule_Score__c" and score.type == "number" and score.custom
    grade = salesforce_connector.create_custom_field(
        "lead", CustomFieldSpec("Capsule_Grade", "Capsule grade", "picklist", options=("A", "B"))
    )
    assert grade.name == "Capsule_Grade__c" and grade.options == ("A", "B")
    engaged = salesforce_connector.create_custom_field(
        "contact", CustomFieldSpec("Capsule_Last_Engaged__c", "Last engaged", "datetime")
    )
    assert engaged.type == "datetime"
    described = {f.name: f for f in salesforce_connector.describe_fields("contact")}
    assert described["Capsule_Score__c"].type == "number" and described["Capsule_Last_Engaged__c"].custom
    # Asking again answers with the field that is there.
    again = salesforce_connector.create_custom_field("contact", CustomFieldSpec("Capsule_Score__c", "Score", "number"))
    assert again.name == "Capsule_Score__c"
    [made] = salesforce_connector.upsert_people("contact", [person("p1", "a@example.com", Capsule_Score__c=87)])
    assert salesforce_emulator.get("Contact", made.crm_id)["Capsule_Score__c"] == 87


def test_create_custom_field_without_permission_is_a_configuration_error(salesforce_emulator, salesforce_connector):
    salesforce_emulator.customize_application = False
    with pytest.raises(ConfigurationError) as refused:
        salesforce_connector.create_custom_field("contact", CustomFieldSpec("Capsule_Score__c", "Score", "number"))
    assert "Customize Application" in refused.value.message and refused.value.code == "INSUFFICIENT_ACCESS"
    with pytest.raises(ConfigurationError, match="cannot be a Salesforce custom field name"):
        salesforce_connector.create_custom_field("contact", CustomFieldSpec("Bad__Name__c", "Bad", "string"))


# ---------------------------------------------------------------------------------------------
# Reading


def test_find_by_email_asks_once_per_200_addresses(salesforce_emulator, salesforce_connector):
    for i in range(3):
        contact_id(salesforce_emulator, f"Known{i}@Example.com")
    wanted = [f"known{i}@example.com" for i in range(3)] + [f"unknown{i}@example.com" for i in range(197)]
    salesforce_emulator.counters.reset()
    found = salesforce_connector.find_by_email("contact", wanted)
    assert sorted(found) == ["known0@example.com", "known1@example.com", "known2@example.com"]
    assert found["known1@example.com"].fields["Email"] == "Known1@Example.com"
    assert found["known1@example.com"].modified_at is not None
    assert calls(salesforce_emulator, "query") == 1
    # 201 addresses: two queries, sent together in one Composite call (one API call).
    api_calls = salesforce_emulator.counters.api_calls
    again = salesforce_connector.find_by_email("contact", [*wanted, "one-more@example.com"])
    assert sorted(again) == sorted(found)
    assert calls(salesforce_emulator, "query") == 1 and calls(salesforce_emulator, "composite") == 1
    assert salesforce_emulator.counters.api_calls == api_calls + 1


def test_matching_2000_addresses_takes_two_composite_calls_of_five_queries(salesforce_emulator, salesforce_connector):
    known = [contact_id(salesforce_emulator, f"match{i}@example.com") for i in range(0, 2000, 97)]
    wanted = [f"match{i}@example.com" for i in range(2000)]
    salesforce_emulator.counters.reset()
    found = salesforce_connector.find_by_email("contact", wanted)
    assert sorted(r.crm_id for r in found.values()) == sorted(known)
    assert calls(salesforce_emulator, "composite") == 2 and calls(salesforce_emulator, "query") == 0


def test_the_sandbox_refuses_more_than_five_queries_in_one_composite_call(salesforce_emulator, salesforce_connector):
    sub = {"method": "GET", "url": "/services/data/v59.0/query/?q=SELECT+Id+FROM+Contact"}
    body = {"compositeRequest": [{**sub, "referenceId": f"q{i}"} for i in range(6)]}
    with pytest.raises(CrmError) as refused:
        salesforce_connector.api.rest("POST", "composite", json=body)
    assert "5 query or collection subrequests" in str(refused.value)


def test_email_literals_are_escaped(salesforce_emulator, salesforce_connector):
    tricky = contact_id(salesforce_emulator, "o'brien@example.com")
    contact_id(salesforce_emulator, "victim@example.com")
    found = salesforce_connector.find_by_email("contact", ["o'brien@example.com", "x' OR Email != 'y@example.com"])
    assert list(found) == ["o'brien@example.com"] and found["o'brien@example.com"].crm_id == tricky
    assert soql.quote("a\\' OR 1\n") == "'a\\\\\\' OR 1\\n'"
    assert soql.quote_like("50%_off", prefix="%", suffix="") == "'%50\\%\\_off'"
    with pytest.raises(ConfigurationError, match="not a Salesforce API name"):
        soql.name("Email FROM Contact --")
    with pytest.raises(ConfigurationError, match="not a Salesforce API name"):
        salesforce_connector.find_by_email("contact", ["a@example.com"], fields=["Id FROM User --"])


def test_find_by_id_returns_none_for_gone_records(salesforce_emulator, salesforce_connector):
    record_id = contact_id(salesforce_emulator)
    found = salesforce_connector.find_by_id("contact", record_id)
    assert found.crm_id == record_id and found.fields["LastName"] == "Ann" and found.modified_at is not None
    assert salesforce_connector.find_by_id("contact", record_id[:15]).crm_id == record_id
    salesforce_emulator.delete("Contact", record_id)
    assert salesforce_connector.find_by_id("contact", record_id) is None
    assert salesforce_connector.find_by_id("contact", "../../limits") is None


def test_changes_since_pages_through_a_shared_instant_without_misses_or_repeats(
    salesforce_emulator, salesforce_connector
):
    ids = [contact_id(salesforce_emulator, f"c{i}@example.com") for i in range(7)]
    instant = dt.datetime(2025, 3, 14, 9, 30, 0, 123000, tzinfo=dt.UTC)
    with salesforce_emulator.lock:  # five records saved in the same millisecond (a mass update)
        rows = salesforce_emulator.store.records["Contact"]
        for record_id in ids[1:6]:
            rows[record_id] = {**rows[record_id], "SystemModstamp": instant}
        rows[ids[0]] = {**rows[ids[0]], "SystemModstamp": instant - dt.timedelta(milliseconds=1)}
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = salesforce_connector.changes_since("contact", cursor, limit=2)
        seen += [r.crm_id for r in page.records]
        cursor, pages = page.next_cursor, pages + 1
        if not page.has_more:
            break
    assert sorted(seen) == sorted(ids) and len(seen) == len(set(seen)) == 7
    assert seen[0] == ids[0] and seen[-1] == ids[6] and pages == 4
    assert seen[1:6] == sorted(ids[1:6])  # the tie is broken by Id
    # Nothing new: an empty page that keeps the cursor. Then an edit shows up once, after it.
    empty = salesforce_connector.changes_since("contact", cursor, limit=2)
    assert empty.records == [] and empty.next_cursor == cursor and not empty.has_more
    salesforce_emulator.simulate_user_edit("Contact", ids[2], {"Title": "CFO"})
    later = salesforce_connector.changes_since("contact", cursor, limit=2)
    assert [r.crm_id for r in later.records] == [ids[2]] and later.records[0].fields["Title"] == "CFO"
    assert later.next_cursor.last_id == ids[2] and later.next_cursor.modified_at > instant


def test_identity_names_the_org_and_the_user(salesforce_emulator, salesforce_connector):
    identity = salesforce_connector.identity()
    assert identity.account_id == salesforce_emulator.org_id
    assert identity.account_name == f"Salesforce org {salesforce_emulator.org_id}"
    assert identity.user_email == "integration@capsule-sandbox.example.com"
    assert identity.user_id == salesforce_emulator.integration_user_id


def test_salesforce_has_no_signed_webhooks():
    assert SalesforceConnector.verify_webhook("POST", "https://x/", {}, b"[]", "secret") is False
    assert SalesforceConnector.parse_webhook(b'[{"changeType": "UPDATE"}]') == []


# ---------------------------------------------------------------------------------------------
# Errors, limits and TLS


def test_request_limit_exceeded_is_a_rate_limit(salesforce_emulator, salesforce_connector):
    salesforce_emulator.faults.inject("rate_limit", path_prefix="/services/data/")
    with pytest.raises(RateLimited) as limited:
        salesforce_connector.find_by_email("contact", ["ann@example.com"])
    assert limited.value.status == 403 and limited.value.code == "REQUEST_LIMIT_EXCEEDED"
    assert limited.value.retry_after == 900.0 and limited.value.retryable
    assert salesforce_emulator.counters.limit_refusals == 1


def test_the_daily_allocation_running_out_is_a_rate_limit(salesforce_ca, salesforce_emulator):
    small = SalesforceEmulator(daily_limit=2)
    with EmulatorServer(small, tls=salesforce_ca) as server:
        connector = SalesforceConnector(ConnectionCredentials(small.issue_token().access_token, server.url))
        connector.find_by_email("contact", ["a@example.com"])
        connector.find_by_email("contact", ["b@example.com"])
        assert connector.api_usage.used == 2 and connector.api_usage.remaining == 0
        with pytest.raises(RateLimited):
            connector.find_by_email("contact", ["c@example.com"])


def test_an_expired_session_is_an_auth_error_without_the_token_in_it(
    salesforce_emulator, salesforce_connector, salesforce_token, caplog
):
    caplog.set_level(logging.DEBUG)
    salesforce_emulator.faults.inject("expire_token")
    with pytest.raises(AuthError) as expired:
        salesforce_connector.upsert_people("contact", [person("p1", "ann@example.com")])
    assert expired.value.status == 401 and expired.value.code == "INVALID_SESSION_ID"
    assert salesforce_token not in str(expired.value) and salesforce_token not in repr(expired.value.args)
    assert salesforce_emulator.oauth.token_state(salesforce_token) == "expired"
    assert all(salesforce_token not in r.getMessage() for r in caplog.records)


def test_server_errors_and_dropped_connections_are_retryable(salesforce_emulator, salesforce_connector):
    salesforce_emulator.faults.inject("server_error", path_prefix="/services/data/")
    with pytest.raises(RetryableError) as failed:
        salesforce_connector.find_by_email("contact", ["ann@example.com"])
    assert failed.value.status == 500 and failed.value.code == "UNKNOWN_EXCEPTION"
    salesforce_emulator.faults.inject("drop", path_prefix="/services/data/")
    with pytest.raises(RetryableError) as dropped:
        salesforce_connector.upsert_people("contact", [person("p1", "ann@example.com")])
    assert dropped.value.code == "connection_error" and not isinstance(dropped.value, RateLimited)


def test_several_external_id_matches_are_a_record_error(salesforce_emulator, salesforce_connector):
    salesforce_emulator.add_custom_field("Contact", "Legacy_Id__c", "string", external_id=True)
    for email in ("a@example.com", "b@example.com"):
        salesforce_emulator.create("Contact", {"LastName": "X", "Email": email, "Legacy_Id__c": "L-1"})
    with pytest.raises(RecordError) as several:
        salesforce_connector.api.rest("PATCH", "sobjects/Contact/Legacy_Id__c/L-1", json={"Title": "CEO"})
    assert several.value.status == 300 and several.value.code == "MULTIPLE_RECORDS"


def test_sforce_limit_info_is_read_and_kept(salesforce_emulator, salesforce_connector):
    assert salesforce_connector.api_usage is None
    salesforce_connector.find_by_email("contact", ["ann@example.com"])
    used, limit = salesforce_emulator.api_usage
    assert (salesforce_connector.api_usage.used, salesforce_connector.api_usage.limit) == (used, limit)
    snapshot = salesforce_connector.http.rate_limit
    assert snapshot.daily_limit == limit and snapshot.daily_remaining == limit - used
    headers = requests.structures.CaseInsensitiveDict(
        {"Sforce-Limit-Info": "api-usage=18/15000; per-app-api-usage=17/250(appName=capsule)"}
    )
    parsed = SalesforceConnector.parse_rate_limit(headers)
    assert (parsed.daily_limit, parsed.daily_remaining, parsed.remaining) == (15000, 14982, None)
    assert SalesforceConnector.parse_rate_limit(requests.structures.CaseInsensitiveDict()) is None


def test_the_sandbox_ca_is_trusted_even_when_requests_ca_bundle_points_elsewhere(
    salesforce_emulator, salesforce_connector, monkeypatch
):
    import certifi

    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certifi.where())
    monkeypatch.setenv("CURL_CA_BUNDLE", certifi.where())
    [made] = salesforce_connector.upsert_people("contact", [person("p1", "ann@example.com")])
    assert made.ok and salesforce_emulator.get("Contact", made.crm_id) is not None


def test_without_the_sandbox_ca_the_call_fails_cleanly(salesforce_emulator, salesforce_token):
    with override_settings(CRM_CA_BUNDLE=None):
        connector = SalesforceConnector(ConnectionCredentials(salesforce_token, salesforce_emulator.base_url))
        with pytest.raises(RetryableError) as untrusted:
            connector.find_by_email("contact", ["ann@example.com"])
    assert untrusted.value.code == "connection_error"


def test_a_connection_without_an_instance_url_is_a_configuration_error(salesforce_emulator, salesforce_token):
    with pytest.raises(ConfigurationError, match="instance URL"):
        SalesforceConnector(ConnectionCredentials(salesforce_token, None))


# ---------------------------------------------------------------------------------------------
# Token answers


def test_a_token_answer_gives_the_instance_url_and_no_expiry():
    tokens = SalesforceConnector.parse_token_response(
        {
            "access_token": "00D!abc",
            "refresh_token": "5Aep",
            "instance_url": "https://acme.my.salesforce.com/",
            "id": "https://login.salesforce.com/id/00D/005",
            "scope": "api refresh_token id",
            "token_type": "Bearer",
            "issued_at": "1700000000000",
        }
    )
    assert tokens.api_base_url == "https://acme.my.salesforce.com" and tokens.expires_at is None
    assert tokens.refresh_token == "5Aep" and tokens.scopes == ("api", "refresh_token", "id")
    assert "access_token" in tokens.raw_fields and "00D!abc" not in tokens.raw_fields
    refreshed = SalesforceConnector.parse_token_response(
        {"access_token": "00D!new", "instance_url": "https://acme.my.salesforce.com", "scope": "api"}
    )
    assert refreshed.refresh_token is None and refreshed.access_token == "00D!new"


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        ({"error": "invalid_grant", "error_description": "expired access/refresh token"}, "invalid_grant"),
        ({"instance_url": "https://acme.my.salesforce.com"}, "invalid_response"),
        ({"access_token": "00D!abc"}, "invalid_response"),
        ({"access_token": "00D!abc", "instance_url": "http://acme.my.salesforce.com"}, "invalid_response"),
    ],
    ids=["oauth-error", "no-token", "no-instance", "not-https"],
)
def test_a_bad_token_answer_is_an_oauth_error(payload, error):
    with pytest.raises(OAuthError) as refused:
        SalesforceConnector.parse_token_response(payload)
    assert refused.value.error == error


def test_the_standard_mappings_custom_fields_are_created_with_their_sizes(salesforce_emulator, salesforce_connector):
    from mapping import presets

    specs = presets.object_preset("salesforce", "lead").custom_fields
    made = {spec.name: salesforce_connector.create_custom_field("lead", spec) for spec in specs}
    assert set(made) == {spec.name for spec in specs}
    described = {f.name: f for f in salesforce_connector.describe_fields("lead")}
    assert described["Capsule_Grade__c"].type == "string" and described["Capsule_Grade__c"].max_length == 10
    assert described["Capsule_Score__c"].type == "number" and described["Capsule_Last_Engaged__c"].type == "datetime"
    assert described["Capsule_Last_Capsule_URL__c"].type == "url"
    [created] = [c for c in salesforce_emulator.custom_fields.values() if c["FullName"] == "Lead.Capsule_Score__c"]
    assert (created["Metadata"]["precision"], created["Metadata"]["scale"]) == (18, 0)
