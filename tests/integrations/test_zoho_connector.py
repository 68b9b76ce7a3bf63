"""The Zoho CRM connector against the Zoho sandbox over real HTTPS: every operation, its call count,
its idempotency, the error taxonomy, OAuth through the owner pages, and notification channels."""

from __future__ import annotations

import datetime as dt
import json
import logging
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from crmsync.models import Role
from integrations import credentials, oauth
from integrations.connecting import disconnect
from integrations.connector import (
    ActivityInput,
    ChangeCursor,
    DealInput,
    FieldSchema,
    NoteInput,
    PersonInput,
    TaskInput,
)
from integrations.errors import AuthError, ConfigurationError, NotFound, OAuthError, RateLimited, RetryableError
from integrations.models import AuthKind, Connection, ConnectionStatus, WebhookRegistration
from integrations.providers.zoho import notifications
from integrations.providers.zoho.channels import renew_due_channels
from integrations.providers.zoho.connector import ZohoConnector
from integrations.registry import get_provider
from mapping.presets import CustomFieldSpec
from tests.integrations.zoho_fixtures import *  # noqa: F403
from tests.integrations.zoho_fixtures import ZOHO_CLIENT_ID, ZOHO_CLIENT_SECRET

WHEN = dt.datetime(2025, 3, 4, 10, 30, tzinfo=dt.UTC)


def person(key: str, email: str, last: str | None = "Lee", crm_id: str | None = None, **fields) -> PersonInput:
    values = {"First_Name": fields.pop("first", "Ann"), **fields}
    if last is not None:
        values["Last_Name"] = last
    return PersonInput(key=key, email=email, fields=values, crm_id=crm_id)


def calls(app, method: str, pattern: str) -> int:
    return len(app.requests_to(method, pattern))


# -- people ----------------------------------------------------------------------------------------------


def test_upsert_creates_then_updates_the_same_record(zoho_emulator, zoho_connector):
    [first] = zoho_connector.upsert_people("contact", [person("p1", "Ann@Example.com")])
    assert first.ok and first.created and first.crm_id
    [second] = zoho_connector.upsert_people("contact", [person("p1", "ann@example.com", first="Annie")])
    assert second.ok and not second.created and second.crm_id == first.crm_id
    [record] = zoho_emulator.records("Contacts")
    assert record["id"] == first.crm_id and record["First_Name"] == "Annie" and record["Email"] == "ann@example.com"
    assert calls(zoho_emulator, "POST", r"^/crm/v8/Contacts/upsert$") == 2


def test_250_people_take_exactly_three_upsert_calls(zoho_emulator, zoho_connector):
    people = [person(f"p{i}", f"p{i}@example.com") for i in range(250)]
    outcomes = zoho_connector.upsert_people("contact", people)
    assert [o.key for o in outcomes] == [p.key for p in people]
    assert all(o.ok and o.created for o in outcomes)
    assert calls(zoho_emulator, "POST", r"^/crm/v8/Contacts/upsert$") == 3
    assert zoho_emulator.api_calls == 3 and zoho_emulator.credits_used == 3
    assert len(zoho_emulator.records("Contacts")) == 250


def test_a_replayed_batch_duplicates_nothing(zoho_emulator, zoho_connector):
    people = [person(f"p{i}", f"p{i}@example.com") for i in range(5)]
    first = zoho_connector.upsert_people("contact", people)
    again = zoho_connector.upsert_people("contact", people)
    assert [o.crm_id for o in again] == [o.crm_id for o in first]
    assert not any(o.created for o in again)
    assert len(zoho_emulator.records("Contacts")) == 5


def test_an_email_change_with_a_stored_id_updates_the_same_record(zoho_emulator, zoho_connector):
    [made] = zoho_connector.upsert_people("contact", [person("p1", "old@example.com")])
    [moved] = zoho_connector.upsert_people("contact", [person("p1", "new@example.com", crm_id=made.crm_id)])
    assert moved.ok and moved.crm_id == made.crm_id and not moved.created
    assert [(r["id"], r["Email"]) for r in zoho_emulator.records("Contacts")] == [(made.crm_id, "new@example.com")]
    assert calls(zoho_emulator, "PUT", r"^/crm/v8/Contacts$") == 1


def test_a_stale_stored_id_comes_back_as_not_found(zoho_emulator, zoho_connector):
    [gone] = zoho_connector.upsert_people("contact", [person("p1", "ann@example.com", crm_id="5725767000009999999")])
    assert isinstance(gone.error, NotFound) and gone.error.field == "id"
    assert zoho_emulator.records("Contacts") == []


def test_a_record_missing_its_last_name_fails_alone_with_zohos_message(zoho_emulator, zoho_connector):
    outcomes = zoho_connector.upsert_people(
        "contact",
        [person("ok1", "a@example.com"), person("bad", "b@example.com", last=None), person("ok2", "c@example.com")],
    )
    assert [o.ok for o in outcomes] == [True, False, True]
    error = outcomes[1].error
    assert error.kind == "record" and error.code == "MANDATORY_NOT_FOUND" and error.field == "Last_Name"
    assert "required field not found" in error.message
    assert sorted(r["Email"] for r in zoho_emulator.records("Contacts")) == ["a@example.com", "c@example.com"]


def test_a_batch_whose_every_record_fails_still_answers_per_record(zoho_emulator, zoho_connector):
    outcomes = zoho_connector.upsert_people("contact", [person("bad", "b@example.com", last=None)])
    assert outcomes[0].error.code == "MANDATORY_NOT_FOUND"  # a 400 with data[] is not a whole-call failure


def test_leads_need_a_company(zoho_emulator, make_zoho_connector):
    connector = make_zoho_connector("lead")
    outcomes = connector.upsert_people(
        "lead", [person("l1", "lead@example.com", Company="Acme"), person("l2", "nocompany@example.com")]
    )
    assert outcomes[0].ok and outcomes[1].error.field == "Company"
    assert [r["Email"] for r in zoho_emulator.records("Leads")] == ["lead@example.com"]


def test_a_person_without_an_email_fails_without_a_call(zoho_emulator, zoho_connector):
    [outcome] = zoho_connector.upsert_people("contact", [person("p1", " ")])
    assert outcome.error.code == "no_email" and zoho_emulator.api_calls == 0


# -- reading --------------------------------------------------------------------------------------------------


def test_identity_names_the_org_and_the_connecting_user(zoho_emulator, zoho_connector, zoho_check):
    identity = zoho_connector.identity()
    assert identity.account_name == zoho_emulator.company_name
    assert identity.account_id and identity.user_email == zoho_emulator.integration_user["email"]
    assert identity.user_id == zoho_emulator.integration_user["id"]
    assert calls(zoho_emulator, "GET", r"^/crm/v8/org$") == 1
    assert calls(zoho_emulator, "GET", r"^/crm/v8/users$") == 1


def test_describe_fields_reads_types_requirements_and_picklists(zoho_emulator, zoho_connector):
    fields = {f.name: f for f in zoho_connector.describe_fields("lead")}
    assert fields["Last_Name"].required and fields["Company"].required
    assert fields["Email"].type == "email" and fields["Email_Opt_Out"].type == "boolean"
    assert "Web Download" in fields["Lead_Source"].options and "-None-" not in fields["Lead_Source"].options
    assert fields["Modified_Time"].read_only and fields["First_Name"].max_length == 40
    assert not fields["Last_Name"].custom


def test_a_custom_field_shows_in_describe_after_it_is_created(zoho_emulator, zoho_connector):
    spec = CustomFieldSpec("Capsule_Score", "Capsule Score", "number", extra={"data_type": "integer"})
    created = zoho_connector.create_custom_field("contact", spec)
    assert created == next(f for f in zoho_connector.describe_fields("contact") if f.name == "Capsule_Score")
    assert created.custom and created.type == "number"
    again = zoho_connector.create_custom_field("contact", spec)  # already there: returned, not re-created
    assert again.name == "Capsule_Score"
    assert calls(zoho_emulator, "POST", r"^/crm/v8/settings/fields$") == 1
    [made] = zoho_connector.upsert_people("contact", [person("p1", "a@example.com", Capsule_Score=42)])
    assert zoho_emulator.get("Contacts", made.crm_id)["Capsule_Score"] == 42


def test_creating_fields_without_permission_is_a_configuration_error(zoho_emulator, zoho_connector):
    zoho_emulator.can_create_fields = False
    with pytest.raises(ConfigurationError) as caught:
        zoho_connector.create_custom_field("contact", FieldSchema("Capsule_Grade", "Capsule Grade", "string"))
    assert caught.value.code == "NO_PERMISSION"


def test_find_by_email_uses_one_coql_query_per_fifty_addresses(zoho_emulator, zoho_connector):
    zoho_connector.upsert_people("contact", [person(f"p{i}", f"p{i}@example.com") for i in range(60)])
    before = zoho_emulator.api_calls
    found = zoho_connector.find_by_email("contact", [f"P{i}@example.com" for i in range(70)])
    assert sorted(found) == sorted(f"p{i}@example.com" for i in range(60))
    assert found["p7@example.com"].fields["Last_Name"] == "Lee"
    assert zoho_emulator.api_calls - before == 2 and calls(zoho_emulator, "POST", r"^/crm/v8/coql$") == 2


def test_a_mapped_field_zoho_does_not_have_does_not_stop_reads(zoho_emulator, zoho_connector):
    [made] = zoho_connector.upsert_people("contact", [person("p1", "ann@example.com")])
    found = zoho_connector.find_by_email("contact", ["ann@example.com"], fields=["Title", "Gone_Field"])
    assert found["ann@example.com"].crm_id == made.crm_id and "Gone_Field" not in found["ann@example.com"].fields
    page = zoho_connector.changes_since("contact", None, fields=["Gone_Field", "Title"])
    assert [r.crm_id for r in page.records] == [made.crm_id]
    assert calls(zoho_emulator, "POST", r"^/crm/v8/coql$") == 4  # each query sent again once without it


def test_find_by_id_reads_the_record_and_none_once_it_is_gone(zoho_emulator, zoho_connector):
    [made] = zoho_connector.upsert_people("contact", [person("p1", "ann@example.com")])
    record = zoho_connector.find_by_id("contact", made.crm_id, fields=["First_Name", "Owner.name"])
    assert record.crm_id == made.crm_id and record.fields["First_Name"] == "Ann"
    assert record.fields["Owner.name"] == zoho_emulator.integration_user["name"]
    assert record.modified_at is not None
    zoho_emulator.delete_in_ui("Contacts", made.crm_id)
    assert zoho_connector.find_by_id("contact", made.crm_id) is None


def test_set_fields_writes_fields_and_an_owner_given_by_id(zoho_emulator, zoho_connector):
    [made] = zoho_connector.upsert_people("contact", [person("p1", "ann@example.com")])
    zoho_connector.set_fields("contact", made.crm_id, {"Title": "CTO", "Owner": zoho_emulator.ui_user["id"]})
    record = zoho_emulator.get("Contacts", made.crm_id)
    assert record["Title"] == "CTO" and record["Owner"]["id"] == zoho_emulator.ui_user["id"]
    with pytest.raises(NotFound):
        zoho_connector.set_fields("contact", "5725767000009999999", {"Title": "CTO"})


def test_changes_since_pages_through_one_instant_by_id(zoho_emulator, zoho_connector):
    made = zoho_connector.upsert_people("contact", [person(f"p{i}", f"p{i}@example.com") for i in range(5)])
    instant = dt.datetime(2025, 1, 1, 12, 0, tzinfo=dt.UTC)
    zoho_emulator.set_modified("Contacts", [o.crm_id for o in made], instant)
    seen, cursor, pages = [], ChangeCursor(instant - dt.timedelta(seconds=1)), 0
    while True:
        page = zoho_connector.changes_since("contact", cursor, limit=2)
        seen += [r.crm_id for r in page.records]
        cursor, pages = page.next_cursor, pages + 1
        if not page.has_more:
            break
    assert seen == sorted((o.crm_id for o in made), key=int)  # none missed, none twice, in id order
    assert pages == 3 and cursor == ChangeCursor(instant, made[-1].crm_id)
    empty = zoho_connector.changes_since("contact", cursor, limit=2)
    assert empty.records == [] and empty.next_cursor == cursor and not empty.has_more
    zoho_emulator.edit_in_ui("Contacts", made[1].crm_id, {"Title": "CFO"})
    page = zoho_connector.changes_since("contact", cursor, limit=2)
    assert [r.crm_id for r in page.records] == [made[1].crm_id]
    assert page.records[0].fields["Modified_By"]["id"] == zoho_emulator.ui_user["id"]


# -- engagement -----------------------------------------------------------------------------------------------


def activity(key: str, person_id: str, kind: str = "contact") -> ActivityInput:
    return ActivityInput(key, person_id, kind, "capsule_viewed", "Viewed capsule “Pricing tour”", "When: …", WHEN)


def test_activities_are_completed_tasks_written_once(zoho_emulator, zoho_connector):
    [ann] = zoho_connector.upsert_people("contact", [person("p1", "ann@example.com")])
    first = zoho_connector.log_activities(
        [activity("capsule-evt-1", ann.crm_id), activity("capsule-evt-2", ann.crm_id)]
    )
    assert all(o.ok and o.created for o in first)
    again = zoho_connector.log_activities([activity("capsule-evt-1", ann.crm_id)])
    assert again[0].crm_id == first[0].crm_id and not again[0].created
    tasks = zoho_emulator.records("Tasks")
    assert sorted(t["Capsule_Event_Id"] for t in tasks) == ["capsule-evt-1", "capsule-evt-2"]
    task = tasks[0]
    assert task["Status"] == "Completed" and task["Due_Date"] == "2025-03-04"
    assert task["Who_Id"]["id"] == ann.crm_id and task["Subject"].startswith("Viewed capsule")
    # The key field was created once, unique, through the fields API; then one upsert per batch.
    key_field = next(f for f in zoho_connector.describe_fields("task") if f.name == "Capsule_Event_Id")
    assert key_field.custom and key_field.unique
    assert calls(zoho_emulator, "POST", r"^/crm/v8/settings/fields$") == 1
    assert calls(zoho_emulator, "POST", r"^/crm/v8/Tasks/upsert$") == 2


def test_activities_of_a_lead_link_through_what_id(zoho_emulator, make_zoho_connector):
    connector = make_zoho_connector("lead")
    [lead] = connector.upsert_people("lead", [person("l1", "lead@example.com", Company="Acme")])
    [outcome] = connector.log_activities([activity("capsule-evt-1", lead.crm_id, "lead")])
    task = zoho_emulator.get("Tasks", outcome.crm_id)
    assert task["What_Id"]["id"] == lead.crm_id and task["$se_module"] == "Leads" and task.get("Who_Id") is None


def test_an_activity_without_a_person_fails_alone(zoho_emulator, zoho_connector):
    [ann] = zoho_connector.upsert_people("contact", [person("p1", "ann@example.com")])
    outcomes = zoho_connector.log_activities([activity("k1", ""), activity("k2", ann.crm_id)])
    assert outcomes[0].error.code == "no_person" and outcomes[1].ok


def test_a_hand_made_key_field_that_takes_duplicates_falls_back_to_lookup_then_insert(zoho_emulator, zoho_connector):
    zoho_emulator.add_custom_field("Tasks", "Capsule Event Id", "text", api_name="Capsule_Event_Id")
    [ann] = zoho_connector.upsert_people("contact", [person("p1", "ann@example.com")])
    first = zoho_connector.log_activities([activity("k1", ann.crm_id), activity("k2", ann.crm_id)])
    again = zoho_connector.log_activities([activity("k1", ann.crm_id), activity("k3", ann.crm_id)])
    assert again[0].crm_id == first[0].crm_id and not again[0].created and again[1].created
    assert sorted(t["Capsule_Event_Id"] for t in zoho_emulator.records("Tasks")) == ["k1", "k2", "k3"]
    assert calls(zoho_emulator, "POST", r"^/crm/v8/Tasks/upsert$") == 0
    assert calls(zoho_emulator, "POST", r"^/crm/v8/Tasks$") == 2


def test_a_module_zoho_will_not_upsert_falls_back_to_lookup_then_insert(zoho_emulator, zoho_connector):
    zoho_emulator.upsert_refused_modules = {"Tasks"}
    [ann] = zoho_connector.upsert_people("contact", [person("p1", "ann@example.com")])
    [first] = zoho_connector.log_activities([activity("k1", ann.crm_id)])
    [again] = zoho_connector.log_activities([activity("k1", ann.crm_id)])
    assert first.created and again.crm_id == first.crm_id and not again.created
    assert [t["Capsule_Event_Id"] for t in zoho_emulator.records("Tasks")] == ["k1"]
    assert calls(zoho_emulator, "POST", r"^/crm/v8/Tasks/upsert$") == 1  # refused once, then remembered


def test_no_permission_for_the_key_field_names_what_to_create(zoho_emulator, zoho_connector):
    zoho_emulator.can_create_fields = False
    [ann] = zoho_connector.upsert_people("contact", [person("p1", "ann@example.com")])
    with pytest.raises(ConfigurationError) as caught:
        zoho_connector.log_activities([activity("k1", ann.crm_id)])
    assert caught.value.code == "missing_key_field" and "Capsule Event Id" in caught.value.message
    assert zoho_emulator.records("Tasks") == []


def test_notes_carry_their_key_in_the_title_and_are_written_once(zoho_emulator, zoho_connector):
    [ann] = zoho_connector.upsert_people("contact", [person("p1", "ann@example.com")])
    notes = [NoteInput("capsule-evt-7", ann.crm_id, "contact", "Question asked: SSO?", WHEN)]
    [first] = zoho_connector.add_notes(notes)
    [again] = zoho_connector.add_notes(notes)
    assert first.created and again.crm_id == first.crm_id and not again.created
    [note] = zoho_emulator.notes()
    assert note["Note_Title"] == "[capsule-evt-7] Capsule note" and note["Note_Content"] == "Question asked: SSO?"
    assert note["Parent_Id"]["id"] == ann.crm_id and note["Parent_Id"]["module"]["api_name"] == "Contacts"
    assert (
        calls(zoho_emulator, "POST", r"^/crm/v8/coql$") == 2 and calls(zoho_emulator, "POST", r"^/crm/v8/Notes$") == 1
    )


def test_tasks_are_open_for_their_owner_and_written_once(zoho_emulator, zoho_connector):
    [ann] = zoho_connector.upsert_people("contact", [person("p1", "ann@example.com")])
    due = dt.datetime(2030, 1, 2, 9, 0, tzinfo=dt.UTC)
    task = TaskInput(
        "trigger:1:0",
        ann.crm_id,
        "contact",
        "Call Ann",
        "She asked about SSO",
        due,
        owner_id=zoho_emulator.ui_user["id"],
    )
    [first] = zoho_connector.create_tasks([task])
    zoho_emulator.edit_in_ui("Tasks", first.crm_id, {"Status": "Completed"})
    [again] = zoho_connector.create_tasks([task])
    assert again.crm_id == first.crm_id and not again.created
    [stored] = zoho_emulator.records("Tasks")
    assert stored["Status"] == "Completed"  # a retry did not reopen it
    assert stored["Owner"]["id"] == zoho_emulator.ui_user["id"] and stored["Due_Date"] == "2030-01-02"


def test_deals_are_upserted_by_the_conversion_id(zoho_emulator, zoho_connector):
    [ann] = zoho_connector.upsert_people("contact", [person("p1", "ann@example.com")])
    deal = DealInput(
        "capsule-evt-9", ann.crm_id, "contact", "Pricing tour — Acme", 1200.0, "EUR", close_date=dt.date(2025, 3, 4)
    )
    first = zoho_connector.upsert_deal(deal)
    again = zoho_connector.upsert_deal(deal)
    assert first.created and again.crm_id == first.crm_id and not again.created
    [stored] = zoho_emulator.records("Deals")
    assert stored["Capsule_Conversion_Id"] == "capsule-evt-9" and stored["Stage"] == "Closed Won"
    assert stored["Amount"] == 1200.0 and stored["Currency"] == "EUR" and stored["Closing_Date"] == "2025-03-04"
    assert stored["Contact_Name"]["id"] == ann.crm_id
    assert zoho_connector.people_of_deal(first.crm_id) == [ann.crm_id]


def test_a_deal_in_a_currency_the_org_lacks_fails_with_zohos_reason(zoho_emulator, zoho_connector):
    [ann] = zoho_connector.upsert_people("contact", [person("p1", "ann@example.com")])
    outcome = zoho_connector.upsert_deal(DealInput("k", ann.crm_id, "contact", "Deal", 10.0, "JPY"))
    assert outcome.error.kind == "record" and outcome.error.field == "Currency"
    assert zoho_emulator.records("Deals") == []


# -- errors in the taxonomy ------------------------------------------------------------------------------------


def test_a_concurrency_429_is_a_short_rate_limit(zoho_emulator, zoho_connector):
    zoho_emulator.faults.inject("rate_limit")
    with pytest.raises(RateLimited) as caught:
        zoho_connector.identity()
    assert caught.value.code == "TOO_MANY_REQUESTS" and caught.value.retry_after == 2.0
    assert zoho_emulator.rate_limited_count == 1


def test_a_spent_credit_budget_is_a_long_rate_limit(zoho_emulator, zoho_connector):
    zoho_emulator.daily_credits = 2
    zoho_emulator.reset()
    zoho_connector.upsert_people("contact", [person("p1", "a@example.com")])
    zoho_connector.upsert_people("contact", [person("p2", "b@example.com")])
    with pytest.raises(RateLimited) as caught:
        zoho_connector.upsert_people("contact", [person("p3", "c@example.com")])
    assert caught.value.code == "LIMIT_EXCEEDED" and 60 <= caught.value.retry_after <= 900
    assert zoho_emulator.credits_used == 2 and len(zoho_emulator.records("Contacts")) == 2


def test_the_credit_headers_are_read(zoho_emulator, zoho_connector):
    zoho_connector.identity()
    snapshot = zoho_connector.http.rate_limit
    assert snapshot.daily_limit == 50_000 and snapshot.daily_remaining == 50_000 - zoho_emulator.credits_used


def test_an_expired_token_is_an_auth_error(zoho_emulator, zoho_connector):
    zoho_emulator.faults.inject("expire_token")
    with pytest.raises(AuthError) as caught:
        zoho_connector.identity()
    assert caught.value.code == "INVALID_TOKEN"
    with pytest.raises(AuthError):  # it stays expired, as a real one would
        zoho_connector.identity()


def test_server_errors_and_dropped_connections_are_retryable(zoho_emulator, zoho_connector):
    zoho_emulator.faults.inject("server_error")
    with pytest.raises(RetryableError) as caught:
        zoho_connector.identity()
    assert caught.value.status == 500 and caught.value.code == "INTERNAL_ERROR"
    zoho_emulator.faults.inject("drop")
    with pytest.raises(RetryableError) as dropped:
        zoho_connector.identity()
    assert dropped.value.code == "connection_error"


def test_a_missing_scope_is_a_configuration_error(zoho_emulator, make_zoho_connector):
    zoho_emulator.enforce_scopes = True
    token = zoho_emulator.issue_token(scopes=["ZohoCRM.org.READ", "ZohoCRM.users.READ"]).access_token
    connector = make_zoho_connector("contact", token=token)
    assert connector.identity().account_name == zoho_emulator.company_name
    with pytest.raises(ConfigurationError) as caught:
        connector.upsert_people("contact", [person("p1", "a@example.com")])
    assert caught.value.code == "OAUTH_SCOPE_MISMATCH"


def test_a_bearer_header_is_refused(zoho_emulator, zoho_token):
    answer = requests.get(
        f"{zoho_emulator.base_url}/crm/v8/org",
        headers={"Authorization": f"Bearer {zoho_token}"},
        verify=settings.CRM_CA_BUNDLE,
        timeout=10,
    )
    assert answer.status_code == 401 and answer.json()["code"] == "AUTHENTICATION_FAILURE"
    assert ZohoConnector.classify_error(answer).kind == "auth"


# -- tokens -------------------------------------------------------------------------------------------------


def test_a_token_answer_gives_the_api_domain_as_the_api_base():
    tokens = ZohoConnector.parse_token_response(
        {
            "access_token": "a",
            "refresh_token": "r",
            "api_domain": "https://www.zohoapis.eu",
            "token_type": "Bearer",
            "expires_in": 3600,
        }
    )
    assert tokens.api_base_url == "https://www.zohoapis.eu" and tokens.refresh_token == "r"
    assert dt.timedelta(minutes=59) < tokens.expires_at - timezone.now() <= dt.timedelta(hours=1)


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        ({"error": "invalid_code"}, "invalid_code"),
        ({"error": "invalid_client"}, "invalid_client"),
        ({"token_type": "Bearer"}, "invalid_response"),
        ({"access_token": "a", "refresh_token": "r"}, "invalid_response"),  # a code exchange without api_domain
        ({"access_token": "a", "api_domain": "not a url"}, "invalid_response"),
    ],
)
def test_error_answers_are_oauth_errors(payload, error):
    with pytest.raises(OAuthError) as caught:
        ZohoConnector.parse_token_response(payload)
    assert caught.value.error == error


def test_a_refused_code_arrives_as_http_200_and_is_an_oauth_error(zoho_emulator):
    spec = get_provider("zoho")
    with pytest.raises(OAuthError) as caught:
        oauth.exchange_code(spec, "not-a-code", settings.PUBLIC_BASE_URL + "/oauth/callback/zoho/", None)
    assert caught.value.error == "invalid_code"
    assert zoho_emulator.oauth.token_calls == 1


def test_a_refresh_keeps_the_refresh_token_and_the_api_domain(zoho_emulator, account, make_zoho_connection):
    connection = make_zoho_connection(account, "oauth")
    old_access, old_refresh = connection.access_token, connection.refresh_token
    connection.token_expires_at = timezone.now() + dt.timedelta(minutes=1)
    connection.save(update_fields=["token_expires_at"])
    credentials.fresh_connection(connection)
    stored = Connection.objects.get(pk=connection.pk)
    assert zoho_emulator.oauth.refresh_calls == 1
    assert stored.access_token != old_access and stored.refresh_token == old_refresh  # no rotation
    assert stored.api_base_url == zoho_emulator.base_url
    assert stored.connector().identity().account_name == zoho_emulator.company_name


def test_a_refused_refresh_needs_reauthentication(zoho_emulator, account, make_zoho_connection):
    connection = make_zoho_connection(account, "oauth")
    zoho_emulator.oauth.fail_next_refresh = "invalid_code"
    with pytest.raises(AuthError):
        credentials.refresh_after_rejection(connection)
    stored = Connection.objects.get(pk=connection.pk)
    assert stored.status == ConnectionStatus.NEEDS_REAUTH and "invalid_code" in stored.status_reason


def test_disconnect_revokes_the_refresh_token_at_zoho(zoho_emulator, account, make_zoho_connection):
    connection = make_zoho_connection(account, "oauth")
    refresh = connection.refresh_token
    assert disconnect(connection, actor_label="test") is True
    assert zoho_emulator.oauth.refresh_tokens[refresh].revoked
    assert Connection.objects.get(pk=connection.pk).refresh_token == ""


# -- connecting through the owner pages -------------------------------------------------------------------------


@pytest.fixture
def admin_client(client, account, make_member):
    client.force_login(make_member(account, Role.ADMIN))
    return client


def start_oauth(client, account) -> str:
    response = client.post(
        reverse("integrations:start_oauth", kwargs={"account_slug": account.slug, "provider": "zoho"})
    )
    assert response.status_code == 302
    return response["Location"]


def consent(authorize_url: str, decision: str = "allow") -> str:
    page = requests.get(authorize_url, timeout=10, verify=settings.CRM_CA_BUNDLE)
    assert page.status_code == 200 and 'value="allow"' in page.text and 'value="deny"' in page.text
    fields = dict(
        part.split('" value="', 1)
        for part in (
            chunk.split('name="', 1)[1].split('">', 1)[0] for chunk in page.text.split('<input type="hidden" ')[1:]
        )
    )
    parts = urlsplit(authorize_url)
    answer = requests.post(
        f"{parts.scheme}://{parts.netloc}{parts.path}",
        data={**fields, "decision": decision},
        allow_redirects=False,
        timeout=10,
        verify=settings.CRM_CA_BUNDLE,
    )
    assert answer.status_code == 302
    return answer.headers["Location"]


def test_connect_sends_the_owner_to_the_accounts_server_for_offline_access(admin_client, account, zoho_emulator):
    parts = urlsplit(start_oauth(admin_client, account))
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert f"{parts.scheme}://{parts.netloc}" == zoho_emulator.base_url and parts.path == "/oauth/v2/auth"
    assert query["client_id"] == ZOHO_CLIENT_ID and query["response_type"] == "code"
    assert query["access_type"] == "offline" and query["prompt"] == "consent"
    assert set(query["scope"].split(",")) == set(get_provider("zoho").oauth.scopes)
    assert "code_challenge" not in query and len(query["state"]) >= 32


def test_the_oauth_flow_stores_the_api_domain_and_names_the_org(admin_client, account, zoho_emulator, caplog):
    caplog.set_level(logging.DEBUG)
    location = consent(start_oauth(admin_client, account))
    query = parse_qs(urlsplit(location).query)
    assert query["location"] == ["us"] and query["accounts-server"] == [zoho_emulator.base_url]
    response = admin_client.get(urlsplit(location).path, {k: v[0] for k, v in query.items()})
    assert response.status_code == 302
    assert f"Connected to {zoho_emulator.company_name}" in admin_client.get(response["Location"]).content.decode()
    connection = Connection.objects.get(account=account, provider="zoho")
    assert connection.auth_kind == AuthKind.OAUTH and connection.status == ConnectionStatus.ACTIVE
    assert connection.api_base_url == zoho_emulator.base_url  # api_domain, not a setting: api_url is None
    assert connection.crm_user_email == zoho_emulator.integration_user["email"]
    assert connection.refresh_token in zoho_emulator.oauth.refresh_tokens
    assert dt.timedelta(minutes=59) < connection.token_expires_at - timezone.now() <= dt.timedelta(hours=1)
    secrets = [*zoho_emulator.secrets_issued, ZOHO_CLIENT_SECRET]
    assert not [r for r in caplog.records if any(s in r.getMessage() for s in secrets)]


def test_denying_consent_connects_nothing(admin_client, account, zoho_emulator):
    location = consent(start_oauth(admin_client, account), decision="deny")
    assert "error=access_denied" in location
    parts = urlsplit(location)
    response = admin_client.get(parts.path, {k: v[0] for k, v in parse_qs(parts.query).items()})
    assert "Zoho CRM did not grant access" in admin_client.get(response["Location"]).content.decode()
    assert not Connection.objects.exists() and zoho_emulator.oauth.token_calls == 0


def test_a_code_refused_with_http_200_connects_nothing_and_says_why(admin_client, account, zoho_emulator):
    location = consent(start_oauth(admin_client, account))
    parts = urlsplit(location)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    admin_client.get(parts.path, query)  # the code is used once…
    Connection.objects.all().delete()
    state_again = consent(start_oauth(admin_client, account))
    replay = {**{k: v[0] for k, v in parse_qs(urlsplit(state_again).query).items()}, "code": query["code"]}
    response = admin_client.get(parts.path, replay)  # …so a second use is refused, with HTTP 200 {"error"}
    assert "Zoho CRM refused the connection (invalid_code)" in admin_client.get(response["Location"]).content.decode()
    assert not Connection.objects.exists()


# -- notification channels ------------------------------------------------------------------------------------


def test_a_channel_is_registered_with_a_token_derived_from_the_secret(zoho_emulator, zoho_connector, zoho_receiver):
    ref = zoho_connector.register_webhooks(zoho_receiver.url, "s3cret-webhook-secret")
    channel_id, events = notifications.parse_ref(ref)
    channel = zoho_emulator.channels[channel_id]
    assert events == ["Contacts.all", "Deals.all"] and channel.events == events
    assert channel.notify_url == zoho_receiver.url and channel.token == notifications.channel_token(
        "s3cret-webhook-secret"
    )
    assert "s3cret" not in channel.token and len(channel.token) <= 50
    assert dt.timedelta(hours=22) < channel.expiry - timezone.now() <= dt.timedelta(hours=23)
    assert zoho_connector.register_webhooks(zoho_receiver.url, "s3cret-webhook-secret") == ref  # same channel again
    assert len(zoho_emulator.channels) == 1


def test_a_callback_is_verified_by_its_token_and_parsed_into_ids(zoho_emulator, zoho_connector, zoho_receiver):
    secret = "s3cret-webhook-secret"
    channel_id, _ = notifications.parse_ref(zoho_connector.register_webhooks(zoho_receiver.url, secret))
    [ann] = zoho_connector.upsert_people("contact", [person("p1", "ann@example.com")])
    status, _ = zoho_emulator.send_notification(
        channel_id, "Contacts", "update", [ann.crm_id], affected_fields=["Title"]
    )
    assert status == 200
    [body] = zoho_receiver.received
    url = zoho_receiver.url
    assert ZohoConnector.verify_webhook("POST", url, {}, body, secret)
    assert not ZohoConnector.verify_webhook("POST", url, {}, body, "another-secret")
    forged = json.dumps({**json.loads(body), "token": "guess"}).encode()
    assert not ZohoConnector.verify_webhook("POST", url, {}, forged, secret)
    assert not ZohoConnector.verify_webhook("POST", url, {}, b"not json", secret)
    [change] = ZohoConnector.parse_webhook(body)
    assert (change.object_kind, change.crm_id, change.change) == ("contact", ann.crm_id, "updated")
    assert change.properties == {} and change.event_id.startswith(f"zoho:{channel_id}:")
    assert ZohoConnector.parse_webhook(body)[0].event_id == change.event_id  # a redelivery dedupes


def test_callbacks_of_modules_we_do_not_sync_are_ignored(zoho_emulator):
    body = json.dumps({"module": "Tasks", "operation": "insert", "ids": ["1"], "token": "t"}).encode()
    assert ZohoConnector.parse_webhook(body) == []
    with pytest.raises(ValueError, match="JSON object"):
        ZohoConnector.parse_webhook(b"[]")


def test_a_renewed_channel_lives_on_and_an_unregistered_one_is_gone(zoho_emulator, zoho_connector, zoho_receiver):
    ref = zoho_connector.register_webhooks(zoho_receiver.url, "secret")
    channel_id, _ = notifications.parse_ref(ref)
    zoho_emulator.channels[channel_id].expiry = zoho_emulator.store.now() + dt.timedelta(minutes=5)
    expiry = zoho_connector.renew_webhooks(ref)
    assert zoho_emulator.channels[channel_id].expiry == expiry.replace(microsecond=0)
    assert zoho_emulator.channels[channel_id].token == notifications.channel_token("secret")  # kept by PATCH
    zoho_connector.unregister_webhooks(ref)
    assert channel_id not in zoho_emulator.channels
    with pytest.raises(NotFound):
        zoho_connector.renew_webhooks(ref)


def test_an_expired_channel_sends_nothing(zoho_emulator, zoho_connector, zoho_receiver):
    channel_id, _ = notifications.parse_ref(zoho_connector.register_webhooks(zoho_receiver.url, "secret"))
    zoho_emulator.channels[channel_id].expiry = zoho_emulator.store.now() - dt.timedelta(seconds=1)
    assert zoho_emulator.send_notification(channel_id, "Contacts", "insert", ["1"]) is None
    assert zoho_receiver.received == []


def test_the_renewal_job_renews_due_channels_and_re_registers_lost_ones(zoho_emulator, account, make_zoho_connection):
    connection = make_zoho_connection(account, "oauth")
    connection.webhook_secret = "secret"
    connection.save(update_fields=["webhook_secret"])
    ref = connection.connector().register_webhooks("https://capsule.example.com/webhooks/crm/zoho/1/", "secret")
    long_ago = timezone.now() - dt.timedelta(hours=13)
    WebhookRegistration.objects.create(
        connection=connection,
        ref=ref,
        callback_url="https://capsule.example.com/webhooks/crm/zoho/1/",
        registered_at=long_ago,
    )
    channel_id, _ = notifications.parse_ref(ref)
    zoho_emulator.channels[channel_id].expiry = zoho_emulator.store.now() + dt.timedelta(hours=1)
    assert renew_due_channels() == 1
    assert zoho_emulator.channels[channel_id].expiry - zoho_emulator.store.now() > dt.timedelta(hours=22)
    assert renew_due_channels() == 0  # renewed just now: not due
    WebhookRegistration.objects.filter(connection=connection).update(registered_at=long_ago)
    zoho_emulator.channels.clear()  # Zoho forgot the channel
    assert renew_due_channels() == 1
    assert channel_id in zoho_emulator.channels and zoho_emulator.channels[channel_id].token == (
        notifications.channel_token("secret")
    )


def test_changes_written_by_the_connection_user_are_its_own(zoho_emulator, account, make_zoho_connection):
    connection = make_zoho_connection(account, "oauth")
    connector = connection.connector()
    [ann] = connector.upsert_people("contact", [person("p1", "ann@example.com")])
    ours = connector.find_by_id("contact", ann.crm_id, fields=["Modified_By"])
    change = ZohoConnector.parse_webhook(
        json.dumps(
            {"module": "Contacts", "operation": "update", "ids": [ann.crm_id], "channel_id": "1", "server_time": 1}
        ).encode()
    )[0]
    assert ZohoConnector.is_own_change(type(change)(**{**change.__dict__, "properties": ours.fields}), connection)
    zoho_emulator.edit_in_ui("Contacts", ann.crm_id, {"Title": "CFO"})
    theirs = connector.find_by_id("contact", ann.crm_id, fields=["Modified_By"])
    assert not ZohoConnector.is_own_change(type(change)(**{**change.__dict__, "properties": theirs.fields}), connection)


# -- mapping presets against the sandbox ---------------------------------------------------------------------


@pytest.mark.parametrize("record_type", ["lead", "contact"])
def test_the_standard_mapping_and_every_template_validate_against_the_zoho_sandbox(zoho_emulator, account, record_type):
    from mapping import presets
    from mapping.provisioning import provision_fields
    from mapping.schema import refresh_schema
    from mapping.service import apply_standard_mapping, apply_template, problems_for

    connection = Connection.objects.create(
        account=account,
        provider="zoho",
        record_type=record_type,
        api_base_url=zoho_emulator.base_url,
        access_token=zoho_emulator.issue_token().access_token,
    )
    refresh_schema(connection, record_type)
    apply_standard_mapping(connection)
    assert problems_for(connection) == []
    report = provision_fields(connection, confirmed=True)
    assert report.supported and report.complete, report.failed
    assert {spec.name for spec in report.created} == {
        "Capsule_Score",
        "Capsule_Grade",
        "Capsule_Last_Engaged",
        "Capsule_Time_Spent",
        "Capsule_Last_Capsule_URL",
    }
    for name in sorted(presets.industry_templates()):
        apply_template(connection, name)
        assert problems_for(connection) == [], (name, [str(p) for p in problems_for(connection)])


# -- inbound: callbacks through the receiver, and polling --------------------------------------------------------


@pytest.fixture
def zoho_inbound(zoho_emulator, account, make_zoho_connection):
    """A Zoho connection syncing both ways, its contact linked to prospect Ann, Title mapped both ways."""
    import django_rq

    from crmsync.models import Prospect
    from integrations.models import Direction, RecordLink
    from mapping.models import FieldMapping

    connection = make_zoho_connection(account, "oauth")
    connection.direction, connection.webhook_secret = Direction.BOTH, "inbound-secret"
    connection.save(update_fields=["direction", "webhook_secret"])
    connector = connection.connector()
    [ann] = connector.upsert_people("contact", [person("p1", "ann@example.com", Title="CTO")])
    prospect = Prospect.objects.create(account=account, email="ann@example.com", first_name="Ann")
    RecordLink.objects.create(
        connection=connection,
        prospect=prospect,
        crm_object_type="contact",
        crm_id=ann.crm_id,
        last_sent_fields={"Title": "CTO"},
    )
    FieldMapping.objects.create(
        connection=connection,
        source_key="job_title",
        target_field="Title",
        target_object="contact",
        direction="both",
        order=50,
    )
    channel = connector.register_webhooks(settings.PUBLIC_BASE_URL + "/hook", connection.webhook_secret)
    yield connection, prospect, ann.crm_id, notifications.parse_ref(channel)[0]
    for job in django_rq.get_queue("default").jobs:
        if job.func_name.startswith("integrations.inbound."):
            job.delete()


def test_a_zoho_callback_reaches_the_prospect_through_the_receiver(client, zoho_emulator, zoho_inbound):
    from integrations.inbound.jobs import process_pending
    from integrations.models import ProspectCrmData

    connection, prospect, crm_id, channel = zoho_inbound
    path = reverse("integrations:crm_webhook", kwargs={"provider": "zoho", "connection_id": connection.pk})
    zoho_emulator.edit_in_ui("Contacts", crm_id, {"Title": "CFO"})
    body = zoho_emulator.callback_body(channel, "Contacts", "update", [crm_id], affected_fields=["Title"])
    forged = client.post(path, data=json.dumps({**body, "token": "guess"}), content_type="application/json")
    assert forged.status_code == 401
    answer = client.post(path, data=json.dumps(body), content_type="application/json")
    assert answer.status_code == 200 and answer.json() == {"received": 1, "duplicates": 0}
    again = client.post(path, data=json.dumps(body), content_type="application/json")
    assert again.json() == {"received": 0, "duplicates": 1}
    process_pending(connection.pk)
    assert ProspectCrmData.objects.get(prospect=prospect).fields["job_title"] == "CFO"


def test_polling_zoho_finds_a_ui_edit(zoho_emulator, zoho_inbound):
    from integrations.inbound.jobs import process_pending
    from integrations.inbound.polling import poll_connection
    from integrations.models import ProspectCrmData

    connection, prospect, crm_id, _channel = zoho_inbound
    zoho_emulator.edit_in_ui("Contacts", crm_id, {"Title": "COO"})
    result = poll_connection(connection.pk)
    assert result.errors == [] and result.stored >= 1
    process_pending(connection.pk)
    assert ProspectCrmData.objects.get(prospect=prospect).fields["job_title"] == "COO"
