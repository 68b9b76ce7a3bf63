"""The Freshsales connector against its sandbox emulator, over real HTTPS on loopback."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging

import pytest
from django.core.management import CommandError, call_command

from integrations.connector import (
    ActivityInput,
    ChangeCursor,
    DealInput,
    NoteInput,
    PersonInput,
    TaskInput,
)
from integrations.errors import AuthError, ConfigurationError, NotFound, RateLimited, RecordError, RetryableError
from integrations.models import Connection
from integrations.providers.freshsales.auth import FreshsalesAuth
from integrations.providers.freshsales.connector import FreshsalesConnector
from integrations.providers.freshsales.keys import CONVERSION_KEY_FIELD
from integrations.providers.freshsales.wire import api_base
from integrations.sandbox.freshsales import FreshsalesProbe
from tests.integrations.freshsales_fixtures import *  # noqa: F403

WHEN = dt.datetime(2030, 1, 2, 9, 30, tzinfo=dt.UTC)


def person(key: str, email: str | None = None, crm_id: str | None = None, **fields) -> PersonInput:
    email = email or f"{key}@example.com"
    return PersonInput(key=key, email=email, fields={"email": email, "first_name": "Ann", **fields}, crm_id=crm_id)


def made(connector, *people: PersonInput) -> list[str]:
    return [outcome.crm_id for outcome in connector.upsert_people("contact", list(people))]


# ---------------------------------------------------------------------------------------------
# Auth, identity, fields


def test_the_key_travels_as_token_token_and_never_shows_in_repr(freshsales_connector, freshsales_key, caplog):
    caplog.set_level(logging.INFO, logger="integrations.http")
    identity = freshsales_connector.identity()
    assert identity.account_id.startswith("127.0.0.1:") and identity.account_name.startswith("Freshsales ")
    assert repr(FreshsalesAuth(freshsales_key)) == "FreshsalesAuth([REDACTED])"
    assert freshsales_key not in repr(freshsales_connector.http.session.auth)
    assert "/crm/sales/api/selector/owners" in caplog.text and freshsales_key not in caplog.text


def test_a_host_only_url_gets_the_api_path_of_its_account_type():
    assert api_base("https://acme.myfreshworks.com") == "https://acme.myfreshworks.com/crm/sales/api"
    assert api_base("https://acme.freshsales.io/") == "https://acme.freshsales.io/api"
    assert api_base("https://acme.myfreshworks.com/crm/sales/api/") == "https://acme.myfreshworks.com/crm/sales/api"


def test_a_wrong_key_is_an_auth_error(make_freshsales_connector):
    with pytest.raises(AuthError, match="Incorrect or expired API key"):
        make_freshsales_connector(key="not-a-key").identity()


def test_describe_lists_standard_and_custom_fields_with_choices(freshsales_connector, freshsales_emulator):
    freshsales_emulator.add_custom_field("contacts", "Capsule grade", "dropdown", choices=("A", "B", "C"))
    fields = {f.name: f for f in freshsales_connector.describe_fields("contact")}
    assert fields["email"].type == "email" and fields["email"].unique
    assert fields["first_name"].type == "string" and not fields["first_name"].custom
    assert fields["updated_at"].read_only
    grade = fields["cf_capsule_grade"]
    assert grade.custom and grade.type == "picklist" and grade.options == ("A", "B", "C")
    assert {f.name for f in freshsales_connector.describe_fields("deal")} >= {"name", "amount", "deal_stage_id"}


# ---------------------------------------------------------------------------------------------
# People


def test_upsert_creates_then_updates_the_same_contact(freshsales_connector, freshsales_emulator):
    [first] = freshsales_connector.upsert_people("contact", [person("p1", job_title="CTO")])
    assert first.ok and first.created
    [second] = freshsales_connector.upsert_people("contact", [person("p1", first_name="Annie")])
    assert second.ok and not second.created and second.crm_id == first.crm_id
    record = freshsales_emulator.get("contacts", first.crm_id)
    assert record["first_name"] == "Annie" and record["job_title"] == "CTO"
    assert len(freshsales_emulator.requests_to("POST", r"/contacts/upsert$")) == 2


def test_a_replayed_batch_duplicates_nothing(freshsales_connector, freshsales_emulator):
    batch = [person(f"p{i}") for i in range(6)]
    first = freshsales_connector.upsert_people("contact", batch)
    again = freshsales_connector.upsert_people("contact", batch)
    assert [o.crm_id for o in first] == [o.crm_id for o in again]
    assert all(o.created for o in first) and not any(o.created for o in again)
    assert len(freshsales_emulator.records("contacts")) == 6


def test_an_email_change_goes_to_the_stored_id(freshsales_connector, freshsales_emulator):
    [crm_id] = made(freshsales_connector, person("p1", "old@example.com"))
    [outcome] = freshsales_connector.upsert_people("contact", [person("p1", "new@example.com", crm_id=crm_id)])
    assert outcome.crm_id == crm_id and not outcome.created
    record = freshsales_emulator.get("contacts", crm_id)
    assert record["email"] == "new@example.com"
    assert [e["value"] for e in record["emails"]] == ["new@example.com", "old@example.com"]
    assert freshsales_emulator.requests_to("PUT", rf"/contacts/{crm_id}$")
    assert set(freshsales_connector.find_by_email("contact", ["NEW@example.com"])) == {"new@example.com"}


def test_a_stale_id_is_not_found_and_the_rest_are_written(freshsales_connector, freshsales_emulator):
    [crm_id] = made(freshsales_connector, person("gone"))
    freshsales_emulator.store.records["contacts"].pop(int(crm_id))
    stale, fine = freshsales_connector.upsert_people("contact", [person("gone", crm_id=crm_id), person("fine")])
    assert isinstance(stale.error, NotFound) and stale.error.kind == "record"
    assert fine.ok and fine.created


def test_a_record_the_crm_refuses_fails_alone_with_its_reason(freshsales_connector, freshsales_emulator):
    field = FreshsalesProbe().add_unique_field(freshsales_emulator)
    made(freshsales_connector, person("first", **{field: "R-1"}))
    clash, fine = freshsales_connector.upsert_people(
        "contact", [person("clash", **{field: "R-1"}), person("fine", **{field: "R-2"})]
    )
    assert isinstance(clash.error, RecordError) and "already exists" in clash.error.message
    assert fine.ok and fine.created
    assert sorted(e for _i, e in FreshsalesProbe().people(freshsales_emulator)) == [
        "fine@example.com",
        "first@example.com",
    ]


def test_find_by_id_and_email_flatten_custom_fields(freshsales_connector, freshsales_emulator):
    freshsales_emulator.add_custom_field("contacts", "Capsule score", "number")
    [crm_id] = made(freshsales_connector, person("p1", cf_capsule_score=42))
    record = freshsales_connector.find_by_id("contact", crm_id)
    assert record.fields["cf_capsule_score"] == 42 and record.fields["email"] == "p1@example.com"
    assert record.modified_at is not None
    assert freshsales_connector.find_by_id("contact", "999") is None
    found = freshsales_connector.find_by_email("contact", ["p1@example.com", "nobody@example.com"])
    assert list(found) == ["p1@example.com"] and found["p1@example.com"].crm_id == crm_id


def test_set_fields_writes_standard_and_custom_fields(freshsales_connector, freshsales_emulator):
    freshsales_emulator.add_custom_field("contacts", "Capsule grade", "dropdown", choices=("A", "B"))
    [crm_id] = made(freshsales_connector, person("p1"))
    freshsales_connector.set_fields("contact", crm_id, {"owner_id": 1001, "cf_capsule_grade": "B"})
    record = freshsales_emulator.get("contacts", crm_id)
    assert record["owner_id"] == 1001 and record["custom_field"]["cf_capsule_grade"] == "B"
    with pytest.raises(RecordError, match="not one of its choices"):
        freshsales_connector.set_fields("contact", crm_id, {"cf_capsule_grade": "Z"})


# ---------------------------------------------------------------------------------------------
# Engagement


def activity(key: str, crm_id: str) -> ActivityInput:
    return ActivityInput(key, crm_id, "contact", "capsule_viewed", "Viewed capsule", "Viewed capsule\nWhen: now", WHEN)


def test_activities_are_notes_without_the_capsule_type_and_written_once(freshsales_connector, freshsales_emulator):
    [crm_id] = made(freshsales_connector, person("p1"))
    first = freshsales_connector.log_activities([activity("evt-1", crm_id), activity("evt-2", crm_id)])
    again = freshsales_connector.log_activities([activity("evt-1", crm_id), activity("evt-2", crm_id)])
    assert [o.created for o in first] == [True, True] and [o.created for o in again] == [False, False]
    assert [o.crm_id for o in first] == [o.crm_id for o in again]
    notes = freshsales_emulator.records("notes")
    assert len(notes) == 2 and notes[0]["targetable_type"] == "Contact"
    assert sorted(FreshsalesProbe().engagement_keys(freshsales_emulator)) == ["evt-1", "evt-2"]
    # One contact read per batch, not one per item.
    assert len(freshsales_emulator.requests_to("GET", rf"/contacts/{crm_id}$")) == 2


def test_activities_are_sales_activities_of_the_capsule_type_when_it_exists(
    make_freshsales_connector, freshsales_emulator
):
    kind = freshsales_emulator.add_sales_activity_type("Capsule activity")
    connector = make_freshsales_connector()
    [crm_id] = made(connector, person("p1"))
    [outcome] = connector.log_activities([activity("evt-1", crm_id)])
    [again] = make_freshsales_connector().log_activities([activity("evt-1", crm_id)])
    assert outcome.created and not again.created and again.crm_id == outcome.crm_id
    [record] = freshsales_emulator.records("sales_activities")
    assert record["sales_activity_type_id"] == kind["id"] and record["title"] == "Viewed capsule"
    assert record["start_date"].startswith("2030-01-02T09:30")


def test_an_activity_for_a_deleted_contact_fails_alone(freshsales_connector, freshsales_emulator):
    gone, kept = made(freshsales_connector, person("gone"), person("kept"))
    freshsales_emulator.store.records["contacts"].pop(int(gone))
    lost, written = freshsales_connector.log_activities([activity("evt-1", gone), activity("evt-2", kept)])
    assert isinstance(lost.error, NotFound) and written.ok and written.created


def test_notes_and_tasks_are_written_once(freshsales_connector, freshsales_emulator):
    [crm_id] = made(freshsales_connector, person("p1"))
    note = NoteInput("q-1", crm_id, "contact", "Asked: do you offer SSO?", WHEN)
    task = TaskInput("trigger:1:0", crm_id, "contact", "Call Ann", "She asked about SSO", WHEN, owner_id="1001")
    for _ in range(2):
        [n] = freshsales_connector.add_notes([note])
        [t] = freshsales_connector.create_tasks([task])
    assert n.ok and t.ok and not n.created and not t.created
    assert len(freshsales_emulator.records("notes")) == 1
    [stored] = freshsales_emulator.records("tasks")
    assert stored["owner_id"] == 1001 and stored["title"] == "Call Ann" and stored["description"].startswith("She")
    [bad] = freshsales_connector.create_tasks([TaskInput("trigger:1:1", crm_id, "contact", "x", "y", WHEN, "someone")])
    assert isinstance(bad.error, RecordError) and bad.error.field == "owner_id"


def test_deals_need_the_key_field_then_are_written_once(freshsales_connector, freshsales_emulator):
    [crm_id] = made(freshsales_connector, person("p1"))
    deal = DealInput("conv-1", crm_id, "contact", "Capsule conversion", 1200.0, "EUR")
    with pytest.raises(ConfigurationError, match=CONVERSION_KEY_FIELD):
        freshsales_connector.upsert_deal(deal)
    freshsales_emulator.add_custom_field("deals", "Capsule conversion id", "text", name=CONVERSION_KEY_FIELD)
    connector = FreshsalesConnector(freshsales_connector.credentials)
    first, again = connector.upsert_deal(deal), connector.upsert_deal(deal)
    assert first.created and not again.created and again.crm_id == first.crm_id
    [record] = freshsales_emulator.records("deals")
    won = next(s["id"] for s in freshsales_emulator.store.deal_stages if s["name"] == "Won")
    assert record["deal_stage_id"] == won and record["contact_ids"] == [int(crm_id)] and record["amount"] == 1200.0
    assert FreshsalesProbe().engagement_keys(freshsales_emulator) == ["conv-1"]
    bad = connector.upsert_deal(DealInput("conv-2", crm_id, "contact", "x", None, None, stage="Nowhere"))
    assert isinstance(bad.error, RecordError) and bad.error.code == "unknown_stage"


# ---------------------------------------------------------------------------------------------
# Changes by polling


def test_changes_since_reads_oldest_first_with_an_id_tie_break(make_freshsales_connector, freshsales_emulator):
    instant = dt.datetime(2030, 3, 1, 12, 0, tzinfo=dt.UTC)
    freshsales_emulator.clock = lambda: instant
    connector = make_freshsales_connector()
    ids = sorted(made(connector, *[person(f"p{i}") for i in range(5)]), key=int)  # all in one second
    page = connector.changes_since("contact", None, limit=3)
    # One instant fills the first page: it is read in id order and the cursor carries the last id.
    assert [r.crm_id for r in page.records] == ids[:3] and page.has_more
    assert page.next_cursor == ChangeCursor(instant, ids[2])
    cursor = ChangeCursor(instant, ids[1])
    page = connector.changes_since("contact", cursor, limit=2)
    assert [r.crm_id for r in page.records] == ids[2:4] and page.has_more
    page = connector.changes_since("contact", page.next_cursor, limit=2)
    assert [r.crm_id for r in page.records] == ids[4:] and not page.has_more
    later = instant + dt.timedelta(seconds=1)
    freshsales_emulator.touch("contacts", int(ids[0]), when=later, first_name="Changed")
    page = connector.changes_since("contact", page.next_cursor)
    assert [r.crm_id for r in page.records] == [ids[0]] and page.records[0].fields["first_name"] == "Changed"
    assert page.next_cursor == ChangeCursor(later, ids[0])
    assert connector.changes_since("contact", page.next_cursor).records == []


def test_changes_since_pages_through_a_long_view(make_freshsales_connector, freshsales_emulator):
    start = dt.datetime(2030, 3, 1, tzinfo=dt.UTC)
    connector = make_freshsales_connector()
    ids = made(connector, *[person(f"p{i}") for i in range(130)])
    for offset, crm_id in enumerate(ids):
        freshsales_emulator.touch("contacts", int(crm_id), when=start + dt.timedelta(seconds=offset))
    page = connector.changes_since("contact", ChangeCursor(start, ids[0]), limit=100)
    assert [r.crm_id for r in page.records] == ids[1:101] and page.has_more
    assert len(freshsales_emulator.requests_to("GET", r"/contacts/view/")) == 2


# ---------------------------------------------------------------------------------------------
# Errors and quotas


def test_the_per_minute_quota_is_a_rate_limit_with_retry_after(freshsales_connector, freshsales_emulator):
    freshsales_emulator.set_limits(per_minute=2)
    freshsales_connector.identity()
    freshsales_connector.identity()
    with pytest.raises(RateLimited) as caught:
        freshsales_connector.identity()
    assert caught.value.retry_after and caught.value.retry_after > 0
    assert freshsales_emulator.rate_limited_count == 1
    snapshot = freshsales_connector.http.rate_limit
    assert snapshot.remaining == 0 and snapshot.window_seconds == 60


def test_the_hourly_quota_is_read_from_the_headers_and_enforced(freshsales_connector, freshsales_emulator):
    freshsales_emulator.set_limits(hourly=3)
    freshsales_connector.identity()
    assert (freshsales_connector.http.rate_limit.limit, freshsales_connector.http.rate_limit.remaining) == (3, 2)
    freshsales_connector.identity()
    freshsales_connector.identity()
    with pytest.raises(RateLimited, match="per hour"):
        freshsales_connector.identity()


@pytest.mark.parametrize(
    ("fault", "error", "kind"),
    [
        ("server_error", RetryableError, "retryable"),
        ("drop", RetryableError, "retryable"),
        ("expire_token", AuthError, "auth"),
        ("rate_limit", RateLimited, "retryable"),
    ],
)
def test_faults_map_to_the_taxonomy(freshsales_connector, freshsales_emulator, fault, error, kind):
    freshsales_emulator.faults.inject(fault)
    with pytest.raises(error) as caught:
        freshsales_connector.upsert_people("contact", [person("p1")])
    assert caught.value.kind == kind
    [outcome] = freshsales_connector.upsert_people("contact", [person("p1")])
    assert outcome.ok


# ---------------------------------------------------------------------------------------------
# Webhooks


def test_workflow_webhooks_are_verified_by_the_shared_secret_and_parsed(freshsales_connector, freshsales_emulator):
    [crm_id] = made(freshsales_connector, person("p1"))
    body = json.dumps(freshsales_emulator.webhooks.payload("contact", int(crm_id))).encode()
    good = {"X-Capsule-Webhook-Secret": "s3cret", "Content-Type": "application/json"}
    assert FreshsalesConnector.verify_webhook("POST", "https://x/", good, body, "s3cret")
    assert not FreshsalesConnector.verify_webhook(
        "POST", "https://x/", {**good, "X-Capsule-Webhook-Secret": "no"}, body, "s3cret"
    )
    assert not FreshsalesConnector.verify_webhook("POST", "https://x/", {}, body, "s3cret")
    assert not FreshsalesConnector.verify_webhook("POST", "https://x/", good, body, "")
    [change] = FreshsalesConnector.parse_webhook(body)
    assert (change.object_kind, change.crm_id, change.change) == ("contact", crm_id, "updated")
    assert change.occurred_at is not None and change.event_id.startswith(f"freshsales:contact:updated:{crm_id}:")
    assert FreshsalesConnector.parse_webhook(b'{"entity": "invoice", "event": "updated", "id": 1}') == []
    with pytest.raises(ValueError):
        FreshsalesConnector.parse_webhook(b"not json")


# ---------------------------------------------------------------------------------------------
# Connecting with a token


@pytest.mark.django_db
def test_connect_crm_with_an_api_key_and_the_accounts_url(account, freshsales_emulator):
    key = freshsales_emulator.issue_api_key()
    out = io.StringIO()
    call_command(
        "connect_crm",
        "--account",
        account.slug,
        "--provider",
        "freshsales",
        "--token",
        key,
        "--api-url",
        freshsales_emulator.base_url,
        stdout=out,
    )
    connection = Connection.objects.get(pk=int(out.getvalue().split("CONNECTION_ID=")[1]))
    assert connection.api_base_url == freshsales_emulator.base_url
    assert connection.crm_account_id == freshsales_emulator.base_url.split("//")[1]
    [outcome] = connection.connector().upsert_people("contact", [person("cli")])
    assert outcome.created


@pytest.mark.django_db
def test_connect_crm_refuses_a_bad_key_with_freshsales_reason(account, freshsales_emulator):
    with pytest.raises(CommandError, match="Incorrect or expired API key"):
        call_command(
            "connect_crm",
            "--account",
            account.slug,
            "--provider",
            "freshsales",
            "--token",
            "nope",
            "--api-url",
            freshsales_emulator.base_url,
        )
    assert not Connection.objects.filter(provider="freshsales").exists()
