"""The HubSpot connector against the HubSpot sandbox emulator, over real HTTP.

Assertions are on what the emulator stored and on how many calls reached it, since the number of
calls is what the rate limit charges (issue 9).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import dataclass, field

import pytest
import requests
from django.test import override_settings

from integrations.connector import (
    ActivityInput,
    ChangeCursor,
    ConnectionCredentials,
    DealInput,
    FieldSchema,
    NoteInput,
    PersonInput,
    TaskInput,
)
from integrations.errors import (
    AuthError,
    ConfigurationError,
    NotFound,
    OAuthError,
    RateLimited,
    RecordError,
    RetryableError,
)
from integrations.providers.hubspot.connector import HubSpotConnector
from integrations.sandbox.core import EmulatorServer
from integrations.sandbox.hubspot import HubSpotEmulator, iso
from tests.integrations.conftest import HUBSPOT_CLIENT_SECRET

WHEN = dt.datetime(2025, 3, 1, 10, 30, tzinfo=dt.UTC)
WHEN_MS = 1740825000000


def person(n: int | str, **fields) -> PersonInput:
    email = f"person{n}@example.com"
    return PersonInput(key=f"p{n}", email=email, fields={"email": email, **fields})


def connector_for(token: str) -> HubSpotConnector:
    return HubSpotConnector(ConnectionCredentials(access_token=token))


def contact_id(hubspot_emulator: HubSpotEmulator, email: str) -> str:
    return hubspot_emulator.create_record("contacts", {"email": email})


# ---------------------------------------------------------------------------------------------
# People


def test_upsert_creates_then_updates_the_same_contact(hubspot_emulator, hubspot_connector):
    [first] = hubspot_connector.upsert_people("contact", [person(1, firstname="Ada")])
    assert first.ok and first.created and first.key == "p1"
    [second] = hubspot_connector.upsert_people("contact", [person(1, firstname="Ada", lastname="Lovelace")])
    assert second.ok and not second.created and second.crm_id == first.crm_id
    stored = hubspot_emulator.find_contact("person1@example.com")
    assert stored["id"] == first.crm_id
    assert stored["properties"]["lastname"] == "Lovelace"
    assert len(hubspot_emulator.objects("contacts")) == 1


def test_an_existing_contact_is_matched_by_email_whatever_its_case(hubspot_emulator, hubspot_connector):
    existing = contact_id(hubspot_emulator, "known@example.com")
    [outcome] = hubspot_connector.upsert_people(
        "lead", [PersonInput(key="k", email=" Known@Example.com ", fields={"firstname": "K"})]
    )
    assert outcome.crm_id == existing and not outcome.created
    assert len(hubspot_emulator.objects("contacts")) == 1


def test_250_people_take_exactly_three_batch_calls(hubspot_emulator, hubspot_connector):
    outcomes = hubspot_connector.upsert_people("contact", [person(n, firstname=f"P{n}") for n in range(250)])
    assert [o.key for o in outcomes] == [f"p{n}" for n in range(250)]
    assert all(o.ok and o.created for o in outcomes)
    assert dict(hubspot_emulator.calls_by_kind) == {"batch": 3}
    assert len(hubspot_emulator.requests_to("POST", r"/crm/v3/objects/contacts/batch/upsert$")) == 3
    assert len(hubspot_emulator.objects("contacts")) == 250
    assert len({o.crm_id for o in outcomes}) == 250


def test_a_replay_creates_no_duplicate(hubspot_emulator, hubspot_connector):
    batch = [person(n, firstname="Same") for n in range(5)]
    first = hubspot_connector.upsert_people("contact", batch)
    again = hubspot_connector.upsert_people("contact", batch)
    assert [o.crm_id for o in again] == [o.crm_id for o in first]
    assert not any(o.created for o in again)
    assert len(hubspot_emulator.objects("contacts")) == 5


def test_an_email_changed_in_the_capsule_updates_the_stored_record(hubspot_emulator, hubspot_connector):
    [created] = hubspot_connector.upsert_people("contact", [person("old", firstname="Grace")])
    moved = PersonInput(key="pold", email="grace@new.example.com", fields={"firstname": "Grace"}, crm_id=created.crm_id)
    before = hubspot_emulator.calls_by_kind["batch"]
    [outcome] = hubspot_connector.upsert_people("contact", [moved])
    assert outcome.ok and outcome.crm_id == created.crm_id and not outcome.created
    assert hubspot_emulator.calls_by_kind["batch"] == before + 1
    assert len(hubspot_emulator.requests_to("POST", r"/contacts/batch/update$")) == 1
    assert hubspot_emulator.get("contacts", created.crm_id)["properties"]["email"] == "grace@new.example.com"
    assert hubspot_emulator.find_contact("personold@example.com") is None
    assert len(hubspot_emulator.objects("contacts")) == 1


def test_stored_ids_and_emails_share_one_pass_of_one_call_each(hubspot_emulator, hubspot_connector):
    known = contact_id(hubspot_emulator, "linked@example.com")
    inputs = [
        PersonInput(key="a", email="linked@example.com", fields={"firstname": "L"}, crm_id=known),
        person(2, firstname="New"),
    ]
    outcomes = hubspot_connector.upsert_people("contact", inputs)
    assert [o.key for o in outcomes] == ["a", "p2"]
    assert outcomes[0].crm_id == known and not outcomes[0].created
    assert outcomes[1].created
    assert dict(hubspot_emulator.calls_by_kind) == {"batch": 2}


def test_a_stale_stored_id_is_a_not_found_outcome(hubspot_emulator, hubspot_connector):
    gone = contact_id(hubspot_emulator, "gone@example.com")
    hubspot_connector.http.request("DELETE", f"/crm/v3/objects/contacts/{gone}")
    outcomes = hubspot_connector.upsert_people(
        "contact",
        [PersonInput(key="stale", email="gone@example.com", fields={}, crm_id=gone), person(3)],
    )
    assert isinstance(outcomes[0].error, NotFound) and outcomes[0].crm_id is None
    assert outcomes[1].ok and outcomes[1].created


def test_one_bad_record_in_a_207_keeps_hubspots_message_and_spares_the_rest(hubspot_emulator, hubspot_connector):
    outcomes = hubspot_connector.upsert_people(
        "contact",
        [person(1, hs_lead_status="NEW"), person(2, hs_lead_status="NOT_A_STATUS"), person(3, firstname="C")],
    )
    assert outcomes[0].ok and outcomes[2].ok
    error = outcomes[1].error
    assert isinstance(error, RecordError) and not isinstance(error, NotFound)
    assert error.kind == "record" and error.code == "VALIDATION_ERROR"
    assert error.field == "hs_lead_status"
    assert error.message.startswith("NOT_A_STATUS was not one of the allowed options")
    assert hubspot_emulator.find_contact("person2@example.com") is None
    assert len(hubspot_emulator.objects("contacts")) == 2


def test_values_go_over_the_wire_as_hubspot_strings(hubspot_emulator, hubspot_connector):
    hubspot_emulator.add_custom_property("contacts", "capsule_opted", "bool", "booleancheckbox")
    hubspot_emulator.add_custom_property("contacts", "capsule_score", "number", "number")
    hubspot_emulator.add_custom_property("contacts", "capsule_first_seen", "date", "date")
    hubspot_emulator.add_custom_property("contacts", "capsule_last_engaged", "datetime", "date")
    options = [{"label": v, "value": v} for v in ("a", "b", "c")]
    hubspot_emulator.add_custom_property("contacts", "capsule_topics", "enumeration", "checkbox", options=options)
    [outcome] = hubspot_connector.upsert_people(
        "contact",
        [
            person(
                1,
                capsule_opted=True,
                capsule_score=87.0,
                capsule_first_seen=dt.date(2025, 3, 1),
                capsule_last_engaged=WHEN,
                capsule_topics=["a", "c"],
            )
        ],
    )
    assert outcome.ok, outcome.error
    props = hubspot_emulator.find_contact("person1@example.com")["properties"]
    assert props["capsule_opted"] == "true"
    assert props["capsule_score"] == "87"
    assert props["capsule_first_seen"] == "2025-03-01"
    assert props["capsule_last_engaged"] == iso(WHEN_MS)
    assert props["capsule_topics"] == "a;c"


def test_a_person_without_email_or_id_fails_alone_without_a_call(hubspot_emulator, hubspot_connector):
    outcomes = hubspot_connector.upsert_people("contact", [PersonInput(key="anon", email="", fields={})])
    assert outcomes[0].error is not None and outcomes[0].error.field == "email"
    assert hubspot_emulator.api_calls == 0


def test_the_same_email_twice_in_one_call_is_split_not_refused(hubspot_emulator, hubspot_connector):
    outcomes = hubspot_connector.upsert_people(
        "contact",
        [
            PersonInput(key="a", email="twin@example.com", fields={"firstname": "A"}),
            PersonInput(key="b", email="TWIN@example.com", fields={"lastname": "B"}),
        ],
    )
    assert all(o.ok for o in outcomes) and outcomes[0].crm_id == outcomes[1].crm_id
    assert outcomes[0].created and not outcomes[1].created
    assert len(hubspot_emulator.objects("contacts")) == 1


def test_set_fields_patches_one_record(hubspot_emulator, hubspot_connector):
    cid = contact_id(hubspot_emulator, "patch@example.com")
    hubspot_connector.set_fields("contact", cid, {"jobtitle": "CTO"})
    assert hubspot_emulator.get("contacts", cid)["properties"]["jobtitle"] == "CTO"
    with pytest.raises(NotFound):
        hubspot_connector.set_fields("contact", "99999999", {"jobtitle": "x"})


# ---------------------------------------------------------------------------------------------
# Reading


def test_find_by_email_is_one_batch_read_not_a_search(hubspot_emulator, hubspot_connector):
    a = contact_id(hubspot_emulator, "a@example.com")
    b = contact_id(hubspot_emulator, "b@example.com")
    found = hubspot_connector.find_by_email("contact", ["A@example.com", "b@example.com", "nobody@example.com"])
    assert set(found) == {"a@example.com", "b@example.com"}
    assert found["a@example.com"].crm_id == a and found["b@example.com"].crm_id == b
    assert found["a@example.com"].modified_at is not None
    assert dict(hubspot_emulator.calls_by_kind) == {"batch": 1}
    assert len(hubspot_emulator.requests_to("POST", r"/contacts/batch/read$")) == 1


def test_find_by_id_reads_one_record_or_none(hubspot_emulator, hubspot_connector):
    cid = hubspot_emulator.create_record("contacts", {"email": "id@example.com", "firstname": "Id"})
    record = hubspot_connector.find_by_id("contact", cid)
    assert record.crm_id == cid and record.fields["firstname"] == "Id"
    assert hubspot_connector.find_by_id("contact", "99999999") is None


def test_identity_of_a_private_app_token_comes_from_account_info(hubspot_emulator, hubspot_connector):
    identity = hubspot_connector.identity()
    assert identity.account_id == str(hubspot_emulator.hub_id)
    assert identity.account_name == f"HubSpot portal {hubspot_emulator.hub_id}"
    assert len(hubspot_emulator.requests_to("GET", r"^/account-info/v3/details$")) == 1


def test_identity_of_an_oauth_token_names_the_portal_domain_and_user(hubspot_emulator):
    issued = hubspot_emulator.issue_oauth_token()
    identity = connector_for(issued.access_token).identity()
    assert identity.account_id == str(hubspot_emulator.hub_id)
    assert identity.account_name == hubspot_emulator.hub_domain
    assert identity.user_email == hubspot_emulator.user_email
    assert hubspot_emulator.requests_to("GET", r"^/account-info/") == []
    # The token travels in a form body, never in a URL path (which HTTP libraries log).
    assert all(issued.access_token not in r.path for r in hubspot_emulator.log)


def test_a_bad_token_is_an_auth_error_with_hubspots_reason(hubspot_emulator):
    with pytest.raises(AuthError) as caught:
        connector_for("pat-na1-not-a-real-token").identity()
    assert caught.value.code == "INVALID_AUTHENTICATION"
    assert "Authentication credentials not found" in caught.value.message
    assert "pat-na1-not-a-real-token" not in str(caught.value)


def test_describe_fields_maps_types_options_custom_and_read_only(hubspot_emulator, hubspot_connector):
    hubspot_emulator.add_custom_property(
        "contacts",
        "capsule_interest",
        "enumeration",
        "checkbox",
        options=[{"label": "Pricing", "value": "pricing"}, {"label": "Security", "value": "security"}],
    )
    hubspot_emulator.add_custom_property("contacts", "capsule_summary", "string", "textarea")
    fields = {f.name: f for f in hubspot_connector.describe_fields("contact")}
    assert fields["email"].type == "email" and fields["email"].unique and not fields["email"].custom
    assert fields["firstname"].type == "string" and not fields["firstname"].read_only
    assert fields["phone"].type == "phone"
    assert fields["lifecyclestage"].type == "picklist" and "customer" in fields["lifecyclestage"].options
    assert fields["hs_additional_emails"].type == "multipicklist"
    assert fields["lastmodifieddate"].type == "datetime" and fields["lastmodifieddate"].read_only
    assert fields["hs_object_id"].read_only and fields["hs_object_id"].type == "number"
    assert fields["num_associated_deals"].read_only  # calculated
    interest = fields["capsule_interest"]
    assert interest.custom and interest.type == "multipicklist" and interest.options == ("pricing", "security")
    assert fields["capsule_summary"].type == "text" and fields["capsule_summary"].custom
    deals = {f.name: f for f in hubspot_connector.describe_fields("deal")}
    assert deals["amount"].type == "number" and deals["closedate"].type == "datetime"
    assert deals["hs_is_closed"].type == "boolean" and deals["hs_is_closed"].read_only
    assert deals["deal_currency_code"].options == ("USD", "EUR", "GBP")
    notes = {f.name for f in hubspot_connector.describe_fields("note")}
    assert {"hs_note_body", "hs_timestamp"} <= notes
    for kind, expected in (("task", "hs_task_subject"), ("call", "hs_call_title"), ("meeting", "hs_meeting_title")):
        assert expected in {f.name for f in hubspot_connector.describe_fields(kind)}


def test_an_unknown_object_kind_is_a_configuration_error(hubspot_connector):
    with pytest.raises(ConfigurationError):
        hubspot_connector.describe_fields("ticket")


@dataclass(frozen=True)
class Spec:
    """The shape mapping.provisioning passes (its CustomFieldSpec)."""

    name: str
    label: str
    type: str
    description: str = ""
    options: tuple[str, ...] = ()
    extra: dict = field(default_factory=dict)


def test_create_custom_field_makes_a_property_that_describe_fields_then_lists(hubspot_emulator, hubspot_connector):
    made = hubspot_connector.create_custom_field(
        "contact", Spec("capsule_grade", "Capsule grade", "picklist", options=("A", "B", "C"))
    )
    assert made.name == "capsule_grade" and made.custom and made.type == "picklist"
    assert made.options == ("A", "B", "C")
    scored = hubspot_connector.create_custom_field(
        "contact", Spec("capsule_score", "Capsule score", "number", extra={"groupName": "contactinformation"})
    )
    assert scored.type == "number"
    fields = {f.name: f for f in hubspot_connector.describe_fields("contact")}
    assert fields["capsule_grade"].options == ("A", "B", "C") and fields["capsule_score"].custom
    definition = hubspot_emulator.properties["contacts"]["capsule_score"]
    assert definition["groupName"] == "contactinformation"
    assert hubspot_emulator.properties["contacts"]["capsule_grade"]["groupName"] == "capsule"
    with pytest.raises(ConfigurationError):
        hubspot_connector.create_custom_field("contact", Spec("capsule_blob", "Blob", "binary"))
    # Asking again answers with the existing property instead of failing.
    again = hubspot_connector.create_custom_field("contact", FieldSchema("capsule_grade", "Capsule grade", "picklist"))
    assert again.options == ("A", "B", "C")


def test_custom_field_permission_follows_the_tokens_scopes(hubspot_emulator, hubspot_connector):
    assert hubspot_connector.has_custom_field_permission("contact") is True
    hubspot_emulator.enforce_scopes = True
    limited = hubspot_emulator.issue_private_app_token(
        scopes=["crm.objects.contacts.read", "crm.objects.contacts.write"]
    )
    assert connector_for(limited).has_custom_field_permission("contact") is False
    with pytest.raises(ConfigurationError) as caught:
        connector_for(limited).create_custom_field("contact", Spec("capsule_x", "X", "string"))
    assert caught.value.code == "MISSING_SCOPES"
    oauth = hubspot_emulator.issue_oauth_token(scopes=["oauth", "crm.schemas.deals.write"])
    assert connector_for(oauth.access_token).has_custom_field_permission("deal") is True
    assert connector_for(oauth.access_token).has_custom_field_permission("contact") is False


# ---------------------------------------------------------------------------------------------
# Changes since a cursor


@pytest.mark.parametrize("tie_order", ["id", "reverse_id"])
def test_changes_since_pages_through_a_shared_modification_time_without_gaps_or_repeats(
    hubspot_emulator, hubspot_connector, tie_order
):
    hubspot_emulator.search_tie_order = tie_order  # HubSpot promises no order among equal times
    ids = [hubspot_emulator.create_record("contacts", {"email": f"c{n}@example.com"}) for n in range(5)]
    base = 1_750_000_000_000
    hubspot_emulator.set_modified("contacts", [ids[0]], base)
    hubspot_emulator.set_modified("contacts", ids[1:4], base + 1000)  # three records share one instant
    hubspot_emulator.set_modified("contacts", [ids[4]], base + 2000)
    seen: list[str] = []
    cursor = ChangeCursor(dt.datetime.fromtimestamp((base - 1) / 1000, dt.UTC))
    pages = 0
    while True:
        page = hubspot_connector.changes_since("contact", cursor, limit=2)
        pages += 1
        seen += [r.crm_id for r in page.records]
        if page.records:
            cursor = page.next_cursor
        if not page.has_more:
            break
        assert pages < 20
    assert seen == ids  # oldest first, each once
    assert pages >= 3  # the instant shared by three records was split across pages
    assert hubspot_emulator.calls_by_kind["search"] >= pages
    assert set(hubspot_emulator.calls_by_kind) == {"search"}


def test_a_cursor_inside_an_instant_skips_the_ids_it_has_seen(hubspot_emulator, hubspot_connector):
    ids = [hubspot_emulator.create_record("contacts", {"email": f"t{n}@example.com"}) for n in range(3)]
    at = 1_760_000_000_000
    hubspot_emulator.set_modified("contacts", ids, at)
    cursor = ChangeCursor(dt.datetime.fromtimestamp(at / 1000, dt.UTC), last_id=ids[0])
    page = hubspot_connector.changes_since("contact", cursor, limit=10)
    assert [r.crm_id for r in page.records] == ids[1:]
    assert page.next_cursor == ChangeCursor(dt.datetime.fromtimestamp(at / 1000, dt.UTC), ids[2])
    assert not page.has_more
    assert hubspot_connector.changes_since("contact", page.next_cursor).records == []


def test_search_calls_count_against_the_search_bucket(hubspot_connector):
    assert HubSpotConnector.rate_bucket("POST", "http://h/crm/v3/objects/contacts/search") == "search"
    assert HubSpotConnector.rate_bucket("POST", "http://h/crm/v3/objects/contacts/batch/upsert") == "default"


# ---------------------------------------------------------------------------------------------
# Activities, notes, tasks, deals


def activity(key: str, contact: str) -> ActivityInput:
    return ActivityInput(
        key=key,
        person_crm_id=contact,
        person_kind="contact",
        kind="capsule_viewed",
        subject="Viewed capsule “Pricing”",
        body="Viewed capsule “Pricing”\nWhen: 2025-03-01 10:30 UTC\nCapsule: https://capsules.example.com/p",
        occurred_at=WHEN,
    )


def test_activities_become_notes_once_however_often_replayed(hubspot_emulator, hubspot_connector):
    contact = contact_id(hubspot_emulator, "viewer@example.com")
    inputs = [activity(f"capsule-evt-{n}", contact) for n in range(3)]
    first = hubspot_connector.log_activities(inputs)
    assert all(o.ok and o.created for o in first) and [o.key for o in first] == [i.key for i in inputs]
    definition = hubspot_emulator.properties["notes"]["capsule_event_id"]
    assert definition["hasUniqueValue"] is True and definition["hubspotDefined"] is False
    calls_after_first = hubspot_emulator.api_calls
    again = hubspot_connector.log_activities(inputs)
    assert [o.crm_id for o in again] == [o.crm_id for o in first] and not any(o.created for o in again)
    assert hubspot_emulator.api_calls - calls_after_first == 2  # one upsert, one association batch
    notes = hubspot_emulator.objects("notes")
    assert sorted(n["properties"]["capsule_event_id"] for n in notes) == [i.key for i in inputs]
    note = notes[0]["properties"]
    assert note["hs_timestamp"] == iso(WHEN_MS)
    assert note["hs_note_body"].startswith("<strong>Viewed capsule “Pricing”</strong><br>When: 2025-03-01")
    for outcome in first:
        links = hubspot_emulator.associations_of("notes", outcome.crm_id, "contacts")
        assert [(a["toObjectId"], a["associationTypeId"]) for a in links] == [(contact, 202)]


def test_a_crash_between_writing_and_linking_is_healed_by_the_replay(hubspot_emulator, hubspot_connector):
    contact = contact_id(hubspot_emulator, "crash@example.com")
    hubspot_emulator.faults.inject("drop", path_prefix="/crm/v4/associations/")
    with pytest.raises(RetryableError):
        hubspot_connector.log_activities([activity("capsule-evt-crash", contact)])
    [note] = hubspot_emulator.objects("notes")
    assert hubspot_emulator.associations_of("notes", note["id"], "contacts") == []
    [outcome] = hubspot_connector.log_activities([activity("capsule-evt-crash", contact)])
    assert outcome.crm_id == note["id"] and not outcome.created
    assert [a["toObjectId"] for a in hubspot_emulator.associations_of("notes", note["id"], "contacts")] == [contact]


def test_an_activity_for_a_missing_contact_fails_alone(hubspot_emulator, hubspot_connector):
    contact = contact_id(hubspot_emulator, "here@example.com")
    outcomes = hubspot_connector.log_activities([activity("e-1", contact), activity("e-2", "98765432")])
    assert outcomes[0].ok
    assert isinstance(outcomes[1].error, RecordError) and "98765432" in outcomes[1].error.message
    assert hubspot_emulator.associations_of("notes", outcomes[0].crm_id, "contacts")


def test_notes_are_idempotent_and_keep_line_breaks(hubspot_emulator, hubspot_connector):
    contact = contact_id(hubspot_emulator, "asker@example.com")
    note = NoteInput("capsule-evt-q1", contact, "contact", "Question asked:\nIs SSO <included>?", WHEN)
    [first] = hubspot_connector.add_notes([note])
    [second] = hubspot_connector.add_notes([note])
    assert first.created and not second.created and first.crm_id == second.crm_id
    [stored] = hubspot_emulator.objects("notes")
    assert stored["properties"]["hs_note_body"] == "Question asked:<br>Is SSO &lt;included&gt;?"
    assert hubspot_emulator.associations_of("notes", first.crm_id, "contacts")[0]["associationTypeId"] == 202


def test_tasks_are_idempotent_and_linked_to_the_contact(hubspot_emulator, hubspot_connector):
    contact = contact_id(hubspot_emulator, "hot@example.com")
    owner = hubspot_emulator.owners[0]["id"]
    task = TaskInput("trigger-7", contact, "contact", "Call the hot lead", "Score passed 80", WHEN, owner_id=owner)
    [first] = hubspot_connector.create_tasks([task])
    hubspot_emulator.edit_in_ui("tasks", first.crm_id, {"hs_task_status": "COMPLETED"})
    [second] = hubspot_connector.create_tasks([task])
    assert first.created and not second.created and second.crm_id == first.crm_id
    [stored] = hubspot_emulator.objects("tasks")
    props = stored["properties"]
    assert props["hs_task_subject"] == "Call the hot lead" and props["hubspot_owner_id"] == owner
    assert props["hs_timestamp"] == iso(WHEN_MS)
    assert props["hs_task_status"] == "COMPLETED"  # the replay did not reopen the done task
    assert hubspot_emulator.associations_of("tasks", first.crm_id, "contacts")[0]["associationTypeId"] == 204


def test_a_deal_is_upserted_once_per_conversion_and_linked_to_the_contact(hubspot_emulator, hubspot_connector):
    contact = contact_id(hubspot_emulator, "buyer@example.com")
    deal = DealInput("capsule-evt-conv", contact, "contact", "Pricing — Acme", 1200.5, "eur", None, dt.date(2025, 3, 1))
    first = hubspot_connector.upsert_deal(deal)
    second = hubspot_connector.upsert_deal(deal)
    assert first.ok and first.created and not second.created and second.crm_id == first.crm_id
    [stored] = hubspot_emulator.objects("deals")
    props = stored["properties"]
    assert props["dealname"] == "Pricing — Acme" and props["amount"] == "1200.5"
    assert props["dealstage"] == "closedwon" and props["pipeline"] == "default"
    assert props["closedate"] == "2025-03-01T00:00:00.000Z" and props["deal_currency_code"] == "EUR"
    assert props["capsule_conversion_id"] == "capsule-evt-conv"
    assert hubspot_emulator.properties["deals"]["capsule_conversion_id"]["hasUniqueValue"] is True
    assert [
        (a["toObjectId"], a["associationTypeId"]) for a in hubspot_emulator.associations_of("deals", first.crm_id)
    ] == [(contact, 3)]


def test_a_deal_in_a_currency_the_portal_lacks_fails_with_hubspots_message(hubspot_emulator, hubspot_connector):
    contact = contact_id(hubspot_emulator, "yen@example.com")
    outcome = hubspot_connector.upsert_deal(DealInput("conv-jpy", contact, "contact", "Yen deal", 10.0, "JPY"))
    assert isinstance(outcome.error, RecordError) and outcome.error.field == "deal_currency_code"
    assert "JPY was not one of the allowed options" in outcome.error.message
    assert hubspot_emulator.objects("deals") == []


def test_a_key_property_without_unique_values_falls_back_to_search_then_create(hubspot_emulator, hubspot_connector):
    hubspot_emulator.add_custom_property("notes", "capsule_event_id", "string", "text", hasUniqueValue=False)
    contact = contact_id(hubspot_emulator, "fallback@example.com")
    [first] = hubspot_connector.log_activities([activity("capsule-evt-f", contact)])
    [second] = hubspot_connector.log_activities([activity("capsule-evt-f", contact)])
    assert first.created and not second.created and first.crm_id == second.crm_id
    assert len(hubspot_emulator.objects("notes")) == 1
    assert hubspot_emulator.calls_by_kind["search"] == 2
    assert hubspot_emulator.associations_of("notes", first.crm_id, "contacts")


def test_without_schema_scope_or_key_property_activities_are_a_configuration_error(hubspot_emulator):
    hubspot_emulator.enforce_scopes = True
    token = hubspot_emulator.issue_private_app_token(scopes=["crm.objects.contacts.read", "crm.objects.contacts.write"])
    contact = contact_id(hubspot_emulator, "noscope@example.com")
    with pytest.raises(ConfigurationError) as caught:
        connector_for(token).log_activities([activity("capsule-evt-s", contact)])
    assert caught.value.code == "missing_key_property" and "capsule_event_id" in caught.value.message
    assert hubspot_emulator.objects("notes") == []


def test_a_key_property_deleted_behind_our_back_is_recreated(hubspot_emulator, hubspot_connector):
    contact = contact_id(hubspot_emulator, "again@example.com")
    hubspot_connector.log_activities([activity("capsule-evt-a", contact)])
    hubspot_emulator.reset()  # a new portal state: the property the connector remembers is gone
    contact = contact_id(hubspot_emulator, "again@example.com")
    [outcome] = hubspot_connector.log_activities([activity("capsule-evt-a", contact)])
    assert outcome.ok and outcome.created
    assert hubspot_emulator.properties["notes"]["capsule_event_id"]["hasUniqueValue"] is True


# ---------------------------------------------------------------------------------------------
# Errors mapped to the taxonomy


def test_an_injected_429_is_rate_limited_with_the_window_as_retry_after(hubspot_emulator, hubspot_connector):
    hubspot_emulator.faults.inject("rate_limit")
    with pytest.raises(RateLimited) as caught:
        hubspot_connector.upsert_people("contact", [person(1)])
    assert caught.value.retryable and caught.value.retry_after == 10.0
    assert caught.value.code == "TEN_SECONDLY_ROLLING"
    assert caught.value.message == "You have reached your ten_secondly_rolling limit."
    assert hubspot_connector.http.rate_limit is not None and hubspot_connector.http.rate_limit.remaining == 0


def test_a_daily_429_waits_an_hour():
    app = HubSpotEmulator(daily_limit=1)
    with EmulatorServer(app) as server:
        with override_settings(CRM_ENDPOINTS={"hubspot": {"api_url": server.url}}):
            connector = connector_for(app.issue_private_app_token())
            connector.find_by_id("contact", "1")
            with pytest.raises(RateLimited) as caught:
                connector.find_by_id("contact", "1")
    assert caught.value.code == "DAILY" and caught.value.retry_after == 3600.0


def test_the_rate_limit_headers_are_read_after_every_call(hubspot_emulator, hubspot_connector):
    hubspot_connector.describe_fields("contact")
    hubspot_connector.find_by_id("contact", "1")
    snapshot = hubspot_connector.http.rate_limit
    assert snapshot.limit == hubspot_emulator.private_app_limit and snapshot.window_seconds == 10.0
    assert snapshot.remaining == hubspot_emulator.private_app_limit - 2
    assert snapshot.daily_limit == hubspot_emulator.daily_limit


def test_an_expired_oauth_token_is_an_auth_error(hubspot_emulator):
    issued = hubspot_emulator.issue_oauth_token()
    hubspot_emulator.oauth.expire(issued.access_token)
    with pytest.raises(AuthError) as caught:
        connector_for(issued.access_token).find_by_id("contact", "1")
    assert caught.value.code == "EXPIRED_AUTHENTICATION" and caught.value.kind == "auth"


def test_a_401_is_an_auth_error(hubspot_emulator, hubspot_connector):
    hubspot_emulator.faults.inject("expire_token")
    with pytest.raises(AuthError):
        hubspot_connector.describe_fields("contact")


def test_missing_scopes_is_a_configuration_error(hubspot_emulator):
    hubspot_emulator.enforce_scopes = True
    token = hubspot_emulator.issue_private_app_token(scopes=["crm.objects.contacts.read"])
    with pytest.raises(ConfigurationError) as caught:
        connector_for(token).upsert_people("contact", [person(1)])
    assert caught.value.code == "MISSING_SCOPES" and caught.value.status == 403


def test_a_5xx_is_retryable(hubspot_emulator, hubspot_connector):
    hubspot_emulator.faults.inject("server_error")
    with pytest.raises(RetryableError) as caught:
        hubspot_connector.find_by_email("contact", ["x@example.com"])
    assert caught.value.status == 500 and caught.value.retryable and not isinstance(caught.value, RateLimited)


def test_a_dropped_connection_is_retryable(hubspot_emulator, hubspot_connector):
    hubspot_emulator.faults.inject("drop")
    with pytest.raises(RetryableError) as caught:
        hubspot_connector.upsert_people("contact", [person(1)])
    assert caught.value.code == "connection_error"
    assert hubspot_emulator.objects("contacts") == []


def test_a_conflict_is_a_record_error():
    response = _response(
        409, {"status": "error", "message": "Contact already exists. Existing ID: 5", "category": "CONFLICT"}
    )
    error = HubSpotConnector.classify_error(response)
    assert type(error) is RecordError and error.code == "CONFLICT"
    assert error.message == "Contact already exists. Existing ID: 5"


def _response(status: int, body: dict) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = json.dumps(body).encode()
    response.headers["Content-Type"] = "application/json"
    return response


# ---------------------------------------------------------------------------------------------
# Tokens


def test_a_token_answer_becomes_a_token_set():
    tokens = HubSpotConnector.parse_token_response(
        {
            "access_token": "a",
            "refresh_token": "r",
            "expires_in": 1800,
            "scopes": ["oauth", "crm.objects.contacts.read"],
        }
    )
    assert tokens.access_token == "a" and tokens.refresh_token == "r"
    assert tokens.scopes == ("oauth", "crm.objects.contacts.read") and tokens.api_base_url is None
    remaining = (tokens.expires_at - dt.datetime.now(dt.UTC)).total_seconds()
    assert 1790 < remaining <= 1800
    spaced = HubSpotConnector.parse_token_response({"access_token": "a", "scope": "oauth crm.objects.deals.read"})
    assert spaced.scopes == ("oauth", "crm.objects.deals.read") and spaced.expires_at is None


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        ({"token_type": "bearer"}, "invalid_response"),
        ({"status": "BAD_REFRESH_TOKEN", "message": "missing or invalid refresh token"}, "BAD_REFRESH_TOKEN"),
        ({"error": "invalid_grant", "error_description": "revoked"}, "invalid_grant"),
        ({"access_token": "a", "expires_in": "soon"}, "invalid_response"),
    ],
)
def test_a_token_answer_without_a_usable_token_is_an_oauth_error(payload, error):
    with pytest.raises(OAuthError) as caught:
        HubSpotConnector.parse_token_response(payload)
    assert caught.value.error == error


# ---------------------------------------------------------------------------------------------
# Webhooks

TARGET = "https://sync.example.com/hooks/hubspot_emulator?account=acme"


def test_a_signed_webhook_is_authentic(hubspot_emulator):
    headers, body = hubspot_emulator.make_webhook_request(
        TARGET, [hubspot_emulator.webhook_event("contact.creation", 101)]
    )
    assert HubSpotConnector.verify_webhook("POST", TARGET, headers, body, HUBSPOT_CLIENT_SECRET) is True
    lowered = {k.lower(): v for k, v in headers.items()}
    assert HubSpotConnector.verify_webhook("POST", TARGET, lowered, body, HUBSPOT_CLIENT_SECRET) is True


def test_a_webhook_signed_with_another_secret_or_altered_is_refused(hubspot_emulator):
    headers, body = hubspot_emulator.make_webhook_request(
        TARGET, [hubspot_emulator.webhook_event("contact.creation", 101)]
    )
    assert not HubSpotConnector.verify_webhook("POST", TARGET, headers, body, "another-secret")
    assert not HubSpotConnector.verify_webhook(
        "POST", TARGET, headers, body.replace(b"101", b"102"), HUBSPOT_CLIENT_SECRET
    )
    assert not HubSpotConnector.verify_webhook("POST", TARGET + "&x=1", headers, body, HUBSPOT_CLIENT_SECRET)


def test_a_stale_webhook_is_refused(hubspot_emulator):
    old = int(time.time() * 1000) - 6 * 60 * 1000
    headers, body = hubspot_emulator.make_webhook_request(
        TARGET, [hubspot_emulator.webhook_event("contact.creation", 101)], timestamp_ms=old
    )
    assert not HubSpotConnector.verify_webhook("POST", TARGET, headers, body, HUBSPOT_CLIENT_SECRET)


def test_a_webhook_without_signature_headers_is_refused(hubspot_emulator):
    headers, body = hubspot_emulator.make_webhook_request(
        TARGET, [hubspot_emulator.webhook_event("contact.creation", 101)]
    )
    for missing in ("X-HubSpot-Signature-v3", "X-HubSpot-Request-Timestamp"):
        partial = {k: v for k, v in headers.items() if k != missing}
        assert not HubSpotConnector.verify_webhook("POST", TARGET, partial, body, HUBSPOT_CLIENT_SECRET)


def test_webhook_events_become_inbound_changes(hubspot_emulator):
    events = [
        hubspot_emulator.webhook_event("contact.creation", 101, occurred_at=WHEN_MS),
        hubspot_emulator.webhook_event(
            "contact.propertyChange",
            101,
            property_name="lifecyclestage",
            property_value="customer",
            change_source="INTEGRATION",
            source_id="1234567",
        ),
        hubspot_emulator.webhook_event("contact.deletion", 102),
        hubspot_emulator.webhook_event(
            "contact.merge", 103, mergedObjectIds=[104, 103], primaryObjectId=103, newObjectId=103
        ),
        hubspot_emulator.webhook_event(
            "deal.propertyChange", 201, property_name="dealstage", property_value="closedlost"
        ),
        hubspot_emulator.webhook_event("ticket.creation", 301),
        hubspot_emulator.webhook_event("contact.associationChange", 101),
    ]
    _headers, body = hubspot_emulator.make_webhook_request(TARGET, events)
    changes = HubSpotConnector.parse_webhook(body)
    assert [(c.object_kind, c.crm_id, c.change) for c in changes] == [
        ("contact", "101", "created"),
        ("contact", "101", "property"),
        ("contact", "102", "deleted"),
        ("contact", "104", "merged"),
        ("deal", "201", "property"),
    ]
    assert changes[0].occurred_at == WHEN and changes[0].event_id == str(events[0]["eventId"])
    assert changes[0].source == "CRM_UI"
    assert changes[1].properties == {"lifecyclestage": "customer"} and changes[1].source == "INTEGRATION:1234567"
    assert changes[3].merged_into == "103"
    assert changes[4].properties == {"dealstage": "closedlost"}


def test_a_webhook_body_that_is_not_an_array_is_refused():
    with pytest.raises(ValueError):
        HubSpotConnector.parse_webhook(b'{"eventId": 1}')
    with pytest.raises(ValueError):
        HubSpotConnector.parse_webhook(b"not json")
