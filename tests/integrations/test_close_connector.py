"""The Close connector against the Close sandbox emulator, over real HTTPS.

Assertions are on what the emulator stored and on how many calls reached it, since calls are what
Close's rate limit charges (issue 9). Connecting is tested end to end: the owner pages' OAuth
views and ``manage.py connect_crm``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from io import StringIO
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.conf import settings
from django.core.management import CommandError, call_command
from django.test import override_settings
from django.urls import reverse

from crmsync.models import Role
from integrations import credentials
from integrations.connecting import disconnect
from integrations.connector import (
    ActivityInput,
    ChangeCursor,
    ConnectionCredentials,
    DealInput,
    NoteInput,
    PersonInput,
    TaskInput,
)
from integrations.errors import AuthError, ConfigurationError, NotFound, RateLimited, RecordError, RetryableError
from integrations.models import AuthKind, Connection, ConnectionStatus, WebhookRegistration
from integrations.providers.close import webhooks
from integrations.providers.close.connector import CloseConnector
from integrations.sandbox.close import CloseEmulator
from integrations.sandbox.core import EmulatorApp, EmulatorServer, Request, Response
from tests.integrations.close_fixtures import *  # noqa: F403
from tests.integrations.close_fixtures import CLOSE_CLIENT_ID
from tests.mapping.conftest import score_group  # noqa: F401 - the scoring source group fixture

WHEN = dt.datetime(2025, 3, 1, 10, 30, tzinfo=dt.UTC)


def person(n: int | str, **fields) -> PersonInput:
    email = f"person{n}@example.com"
    return PersonInput(key=f"p{n}", email=email, fields={"email": email, **fields})


def calls(app: CloseEmulator, group: str) -> int:
    return app.calls_by_group.get(group, 0)


def make_contact(app: CloseEmulator, email: str, **custom) -> str:
    return app.create_contact(email, name="Known Person", **custom)["id"]


# ---------------------------------------------------------------------------------------------
# People


def test_a_new_person_becomes_a_lead_with_its_contact_then_updates_in_place(close_emulator, close_connector):
    [first] = close_connector.upsert_people(
        "contact", [person(1, name="Ada Lovelace", lead_name="Analytical Engines", title="CTO")]
    )
    assert first.ok and first.created and first.crm_id.startswith("cont_")
    contact = close_emulator.contact(first.crm_id)
    assert close_emulator.lead(contact["lead_id"])["name"] == "Analytical Engines"
    assert contact["emails"][0]["email"] == "person1@example.com" and contact["title"] == "CTO"
    [second] = close_connector.upsert_people("contact", [person(1, name="Ada King", lead_name="Renamed Ltd")])
    assert second.ok and not second.created and second.crm_id == first.crm_id
    assert close_emulator.contact(first.crm_id)["name"] == "Ada King"
    # Close's lead is the company: it is named once, when the capsule creates it.
    assert close_emulator.lead(contact["lead_id"])["name"] == "Analytical Engines"
    assert len(close_emulator.contacts()) == 1 and len(close_emulator.leads()) == 1


def test_a_lead_is_named_after_the_person_without_a_company(close_emulator, close_connector):
    [outcome] = close_connector.upsert_people("contact", [person(2, name="Grace Hopper")])
    assert close_emulator.lead(close_emulator.contact(outcome.crm_id)["lead_id"])["name"] == "Grace Hopper"
    [bare] = close_connector.upsert_people("contact", [person(3)])
    assert close_emulator.lead(close_emulator.contact(bare.crm_id)["lead_id"])["name"] == "person3@example.com"


def test_a_batch_costs_one_search_then_one_write_each(close_emulator, close_connector):
    existing = make_contact(close_emulator, "person0@example.com")
    outcomes = close_connector.upsert_people("contact", [person(n, name=f"P{n}") for n in range(150)])
    assert [o.key for o in outcomes] == [f"p{n}" for n in range(150)]
    assert outcomes[0].crm_id == existing and not outcomes[0].created
    assert all(o.ok and o.created for o in outcomes[1:])
    assert calls(close_emulator, "POST /api/v1/data/search/") == 2  # 100 + 50 addresses
    assert calls(close_emulator, "POST /api/v1/lead/") == 149
    assert calls(close_emulator, "PUT /api/v1/contact/{id}/") == 1
    assert close_emulator.api_calls == 152 and len(close_emulator.contacts()) == 150


def test_a_replay_creates_no_duplicate(close_emulator, close_connector):
    batch = [person(n, name="Same") for n in range(5)]
    first = close_connector.upsert_people("contact", batch)
    again = close_connector.upsert_people("contact", batch)
    assert [o.crm_id for o in again] == [o.crm_id for o in first]
    assert not any(o.created for o in again)
    assert len(close_emulator.contacts()) == 5 and len(close_emulator.leads()) == 5


def test_an_existing_contact_is_matched_by_email_whatever_its_case(close_emulator, close_connector):
    existing = make_contact(close_emulator, "Known@Example.com")
    [outcome] = close_connector.upsert_people(
        "contact", [PersonInput(key="k", email=" known@example.COM ", fields={"title": "VP"})]
    )
    assert outcome.crm_id == existing and not outcome.created
    assert close_emulator.contact(existing)["title"] == "VP"


def test_two_inputs_for_one_address_write_one_contact(close_emulator, close_connector):
    outcomes = close_connector.upsert_people("contact", [person(7, name="One"), person(7, name="Two")])
    assert outcomes[0].created and not outcomes[1].created and outcomes[0].crm_id == outcomes[1].crm_id
    assert [c["name"] for c in close_emulator.contacts()] == ["Two"]


def test_an_email_changed_in_the_capsule_updates_the_stored_contact(close_emulator, close_connector):
    [created] = close_connector.upsert_people("contact", [person("old", name="Grace", phone="+14155550100")])
    close_emulator.edit_in_ui(created.crm_id, urls=[{"url": "https://grace.example.com", "type": "url"}])
    moved = PersonInput(key="pold", email="grace@new.example.com", fields={"name": "Grace"}, crm_id=created.crm_id)
    before = close_emulator.api_calls
    [outcome] = close_connector.upsert_people("contact", [moved])
    assert outcome.ok and outcome.crm_id == created.crm_id and not outcome.created
    # One search (not found under the new address), one read to merge the addresses, one write.
    assert close_emulator.api_calls == before + 3
    assert calls(close_emulator, "GET /api/v1/contact/{id}/") == 1
    contact = close_emulator.contact(created.crm_id)
    assert [e["email"] for e in contact["emails"]] == ["grace@new.example.com", "personold@example.com"]
    assert contact["phones"][0]["phone"] == "+14155550100" and contact["urls"][0]["url"] == "https://grace.example.com"
    assert len(close_emulator.contacts()) == 1


def test_the_stored_id_wins_over_an_email_match(close_emulator, close_connector):
    linked = make_contact(close_emulator, "linked@example.com")
    other = make_contact(close_emulator, "taken@example.com")
    [outcome] = close_connector.upsert_people(
        "contact", [PersonInput(key="a", email="taken@example.com", fields={"title": "Linked"}, crm_id=linked)]
    )
    assert outcome.crm_id == linked
    assert close_emulator.contact(linked)["title"] == "Linked" and close_emulator.contact(other)["title"] is None


def test_a_stale_stored_id_is_a_not_found_outcome(close_emulator, close_connector):
    gone = make_contact(close_emulator, "gone@example.com")
    close_connector.http.request("DELETE", f"contact/{gone}/")
    outcomes = close_connector.upsert_people(
        "contact", [PersonInput(key="stale", email="gone@example.com", fields={}, crm_id=gone), person(3)]
    )
    assert isinstance(outcomes[0].error, NotFound) and outcomes[0].crm_id is None
    assert outcomes[1].ok and outcomes[1].created


def test_people_without_an_email_or_id_fail_alone(close_emulator, close_connector):
    outcomes = close_connector.upsert_people("contact", [PersonInput("x", "", {"name": "Nobody"}), person(4)])
    assert outcomes[0].error.code == "no_email" and outcomes[0].error.kind == "record"
    assert outcomes[1].ok


def test_custom_fields_are_written_by_their_close_name(close_emulator, close_connector):
    score = close_emulator.add_custom_field("contact", "Capsule score", "number")
    [outcome] = close_connector.upsert_people("contact", [person(5, **{"Capsule score": 42})])
    assert close_emulator.contact(outcome.crm_id)[f"custom.{score['id']}"] == 42
    [refused] = close_connector.upsert_people("contact", [person(6, **{"Capsule score": "lots"})])
    assert isinstance(refused.error, RecordError) and refused.error.field == f"custom.{score['id']}"
    [unknown] = close_connector.upsert_people("contact", [person(7, **{"No such field": 1})])
    assert unknown.error.code == "unknown_field" and unknown.error.field == "No such field"


def test_a_record_close_refuses_fails_alone_with_closes_reason(close_emulator, close_connector):
    ref = close_emulator.add_custom_field("contact", "External ref", "text", unique=True)
    close_connector.upsert_people("contact", [person(1, **{"External ref": "R-1"})])
    outcomes = close_connector.upsert_people(
        "contact", [person(2, **{"External ref": "R-1"}), person(3, **{"External ref": "R-3"})]
    )
    assert outcomes[0].error.kind == "record" and outcomes[0].error.status == 400
    assert outcomes[0].error.field == f"contacts.custom.{ref['id']}" and "R-1" in outcomes[0].error.message
    assert outcomes[1].ok
    assert sorted(e for c in close_emulator.contacts() for e in [c["emails"][0]["email"]]) == [
        "person1@example.com",
        "person3@example.com",
    ]


def test_a_429_on_one_record_is_waited_out_and_that_record_tried_again(close_emulator, close_connector):
    close_emulator.faults.inject("rate_limit", path_prefix="/api/v1/lead/")
    outcomes = close_connector.upsert_people("contact", [person(n) for n in range(6)])
    assert all(o.ok and o.created for o in outcomes) and len({o.crm_id for o in outcomes}) == 6
    assert close_emulator.rate_limited_count == 1
    assert calls(close_emulator, "POST /api/v1/lead/") == 7  # six writes and the one refused
    assert len(close_emulator.contacts()) == 6


def test_a_persisting_rate_limit_raises_and_the_retry_duplicates_nothing(close_emulator, close_connector):
    close_emulator.faults.inject("rate_limit", count=20, path_prefix="/api/v1/lead/")
    batch = [person(n) for n in range(6)]
    with pytest.raises(RateLimited) as caught:
        close_connector.upsert_people("contact", batch)
    assert caught.value.retry_after == 1.0
    close_emulator.faults.clear()
    outcomes = close_connector.upsert_people("contact", batch)
    assert all(o.ok for o in outcomes) and len({o.crm_id for o in outcomes}) == 6
    assert len(close_emulator.contacts()) == 6


def test_leads_are_not_people_in_close(close_connector):
    with pytest.raises(ConfigurationError, match="lead is the company"):
        close_connector.upsert_people("lead", [person(1)])


def test_find_by_email_and_by_id_read_flat_fields(close_emulator, close_connector):
    tier = close_emulator.add_custom_field("contact", "Tier", "choices", choices=["Gold", "Silver"])
    known = close_emulator.create_contact("ann@example.com", name="Ann", **{f"custom.{tier['id']}": "Gold"})
    found = close_connector.find_by_email("contact", ["ANN@example.com", "nobody@example.com"])
    assert list(found) == ["ann@example.com"]
    record = found["ann@example.com"]
    assert record.crm_id == known["id"] and record.fields["Tier"] == "Gold" and record.fields["name"] == "Ann"
    assert record.fields["email_unsubscribed"] is False and record.modified_at is not None
    by_id = close_connector.find_by_id("contact", known["id"])
    assert by_id.fields["email"] == "ann@example.com" and by_id.fields["lead_id"] == known["lead_id"]
    close_connector.http.request("DELETE", f"contact/{known['id']}/")
    assert close_connector.find_by_id("contact", known["id"]) is None


def test_set_fields_writes_one_contact(close_emulator, close_connector):
    contact_id = make_contact(close_emulator, "ann@example.com")
    close_connector.set_fields("contact", contact_id, {"title": "Founder"})
    assert close_emulator.contact(contact_id)["title"] == "Founder"
    assert close_emulator.contact(contact_id)["name"] == "Known Person"
    close_connector.set_fields("contact", contact_id, {"mobile_phone": "+447700900123", "lead_name": "New Co"})
    contact = close_emulator.contact(contact_id)
    assert contact["phones"] == [
        {"phone": "+447700900123", "type": "mobile", "phone_formatted": "+447700900123", "country": None}
    ]
    assert close_emulator.lead(contact["lead_id"])["name"] == "New Co"


# ---------------------------------------------------------------------------------------------
# Fields


def test_describe_lists_standard_and_custom_fields(close_emulator, close_connector):
    close_emulator.add_custom_field("contact", "Tier", "choices", choices=["Gold", "Silver"])
    close_emulator.add_custom_field("contact", "Interests", "choices", choices=["A", "B"], accepts_multiple_values=True)
    fields = {f.name: f for f in close_connector.describe_fields("contact")}
    assert {"name", "title", "email", "phone", "lead_name"} <= set(fields)
    assert fields["Tier"].custom and fields["Tier"].type == "picklist" and fields["Tier"].options == ("Gold", "Silver")
    assert fields["Interests"].type == "multipicklist"
    assert fields["id"].read_only and not fields["email"].read_only
    deal = {f.name: f for f in close_connector.describe_fields("deal")}
    assert deal["status_label"].options == ("Active", "Won", "Lost")


def test_create_custom_field_makes_the_field_once(close_emulator, close_connector):
    from mapping.presets import CustomFieldSpec

    spec = CustomFieldSpec(name="Capsule grade", label="Capsule grade", type="picklist", options=("A", "B"))
    made = close_connector.create_custom_field("contact", spec)
    again = close_connector.create_custom_field("contact", spec)
    assert made.name == again.name == "Capsule grade" and made.options == ("A", "B")
    assert [f["type"] for f in close_emulator.custom_fields("contact")] == ["choices"]


# ---------------------------------------------------------------------------------------------
# Activities, notes, tasks, deals


def activity(key: str, contact_id: str, at: dt.datetime = WHEN) -> ActivityInput:
    return ActivityInput(key, contact_id, "contact", "capsule_viewed", "Viewed capsule “Tour”", "When: …", at)


def test_activities_are_custom_activities_written_once(close_emulator, close_connector):
    ann = make_contact(close_emulator, "ann@example.com")
    bob = make_contact(close_emulator, "bob@example.com")
    batch = [activity("capsule-evt-1", ann), activity("capsule-evt-2", bob, WHEN + dt.timedelta(hours=2))]
    first = close_connector.log_activities(batch)
    assert all(o.created for o in first)
    made = close_emulator.activities("CustomActivity")
    assert len(made) == 2 and {a["contact_id"] for a in made} == {ann, bob}
    [kind] = close_emulator.store.activity_types.values()
    assert kind["name"] == "Capsule engagement" and kind["api_create_only"]
    assert {f["name"] for f in close_emulator.custom_fields("activity")} == {
        "Capsule event ID",
        "Capsule event",
        "Capsule event details",
    }
    before = close_emulator.api_calls
    again = close_connector.log_activities(batch)
    assert [o.crm_id for o in again] == [o.crm_id for o in first] and not any(o.created for o in again)
    assert close_emulator.api_calls == before + 2  # the lead search and one activity list
    assert len(close_emulator.activities("CustomActivity")) == 2


def test_an_existing_activity_type_made_by_hand_is_reused(close_emulator, close_connector):
    kind = close_emulator.add_activity_type("Capsule engagement")
    close_emulator.add_custom_field("activity", "Capsule event ID", "text", custom_activity_type_id=kind["id"])
    close_connector.log_activities([activity("capsule-evt-1", make_contact(close_emulator, "ann@example.com"))])
    assert len(close_emulator.store.activity_types) == 1 and len(close_emulator.custom_fields("activity")) == 3


def test_an_activity_for_a_gone_contact_is_a_not_found_outcome(close_emulator, close_connector):
    ann = make_contact(close_emulator, "ann@example.com")
    outcomes = close_connector.log_activities([activity("k1", "cont_gone0000000000000000000"), activity("k2", ann)])
    assert isinstance(outcomes[0].error, NotFound) and outcomes[1].ok


def test_notes_are_keyed_by_their_title_and_written_once(close_emulator, close_connector):
    ann = make_contact(close_emulator, "ann@example.com")
    note = NoteInput("capsule-evt-9", ann, "contact", "Question asked in “Tour”:\nDo you do SSO?", WHEN)
    [first] = close_connector.add_notes([note])
    [again] = close_connector.add_notes([note])
    assert first.created and not again.created and again.crm_id == first.crm_id
    [stored] = close_emulator.activities("Note")
    assert stored["title"] == "[capsule-evt-9] Question asked in “Tour”:" and "SSO" in stored["note"]


def test_tasks_are_keyed_by_their_text_and_written_once(close_emulator, close_connector):
    ann = make_contact(close_emulator, "ann@example.com")
    owner = close_emulator.store.user["id"]
    task = TaskInput("trigger-3", ann, "contact", "Call Ann", "She asked about SSO", WHEN, owner_id=owner)
    [first] = close_connector.create_tasks([task])
    [again] = close_connector.create_tasks([task])
    assert first.created and again.crm_id == first.crm_id and not again.created
    [stored] = close_emulator.tasks()
    assert stored["text"].startswith("[trigger-3] Call Ann") and stored["date"] == "2025-03-01"
    assert stored["assigned_to"] == owner


def test_a_deal_is_an_opportunity_keyed_by_a_custom_field(close_emulator, close_connector):
    ann = make_contact(close_emulator, "ann@example.com")
    deal = DealInput("capsule-evt-5", ann, "contact", "Tour — Northwind", 1200.5, "USD", close_date=WHEN.date())
    first = close_connector.upsert_deal(deal)
    again = close_connector.upsert_deal(deal)
    assert first.created and again.crm_id == first.crm_id and not again.created
    [stored] = close_emulator.opportunities()
    assert stored["value"] == 120050 and stored["status_type"] == "won" and stored["date_won"] == "2025-03-01"
    assert stored["contact_id"] == ann and stored["note"].startswith("Tour — Northwind")
    [key_field] = close_emulator.custom_fields("opportunity")
    assert key_field["name"] == "Capsule conversion ID" and stored[f"custom.{key_field['id']}"] == "capsule-evt-5"
    bigger = close_connector.upsert_deal(DealInput(deal.key, ann, "contact", deal.name, 2000.0, "USD"))
    assert bigger.crm_id == first.crm_id and close_emulator.opportunities()[0]["value"] == 200000


def test_a_deal_with_an_unknown_stage_fails_with_the_choices(close_emulator, close_connector):
    ann = make_contact(close_emulator, "ann@example.com")
    outcome = close_connector.upsert_deal(DealInput("d1", ann, "contact", "X", None, None, stage="Negotiation"))
    assert outcome.error.kind == "record" and "Active, Won, Lost" in outcome.error.message
    lost = close_connector.upsert_deal(DealInput("d2", ann, "contact", "X", None, None, stage="lost"))
    assert lost.ok and close_emulator.opportunities()[0]["status_type"] == "lost"


# ---------------------------------------------------------------------------------------------
# Changes since


def test_changes_since_pages_across_one_instant_by_id(close_emulator, close_connector):
    ids = [make_contact(close_emulator, f"p{n}@example.com") for n in range(7)]
    instant = "2025-03-01T10:00:00.000000+00:00"
    close_emulator.set_modified(ids[:5], instant)
    close_emulator.set_modified(ids[5:], "2025-03-01T10:00:01.000000+00:00")
    cursor, seen, pages = ChangeCursor(dt.datetime(2025, 1, 1, tzinfo=dt.UTC)), [], 0
    while True:
        page = close_connector.changes_since("contact", cursor, limit=2)
        seen += [r.crm_id for r in page.records]
        cursor, pages = page.next_cursor, pages + 1
        if not page.has_more:
            break
    assert seen == sorted(ids[:5]) + sorted(ids[5:]) and pages == 4
    # The boundary: a cursor inside the instant resumes after its id.
    middle = ChangeCursor(dt.datetime(2025, 3, 1, 10, tzinfo=dt.UTC), sorted(ids[:5])[2])
    assert [r.crm_id for r in close_connector.changes_since("contact", middle, limit=10).records] == (
        sorted(ids[:5])[3:] + sorted(ids[5:])
    )
    done = close_connector.changes_since("contact", cursor, limit=10)
    assert done.records == [] and done.next_cursor == cursor and not done.has_more


def test_changes_since_reads_deals(close_emulator, close_connector):
    ann = make_contact(close_emulator, "ann@example.com")
    made = close_connector.upsert_deal(DealInput("d1", ann, "contact", "X", 10.0, None))
    page = close_connector.changes_since("deal", None)
    [record] = page.records
    assert record.crm_id == made.crm_id and record.fields["status_label"] == "Won"
    assert record.fields["associated_people"] == [ann] and record.fields["amount"] == 10.0
    assert close_connector.people_of_deal(made.crm_id) == [ann]


# ---------------------------------------------------------------------------------------------
# Identity, HTTP, errors


def test_identity_names_the_organization_and_user(close_emulator, close_connector):
    identity = close_connector.identity()
    assert identity.account_id == close_emulator.store.org_id and identity.account_name == "Capsule Sandbox Inc."
    assert identity.user_email == close_emulator.store.user["email"]


def test_keys_go_as_basic_and_oauth_tokens_as_bearer(close_emulator):
    key = close_emulator.issue_api_key()
    basic = CloseConnector(ConnectionCredentials(key))
    request = requests.Request("GET", "https://x/").prepare()
    assert basic.http.session.auth(request).headers["Authorization"].startswith("Basic ")
    assert "[REDACTED]" in repr(basic.http.session.auth) and key not in repr(basic.http.session.auth)
    token = close_emulator.issue_oauth_token().access_token
    bearer = CloseConnector(ConnectionCredentials(token))
    assert bearer.identity().account_id == close_emulator.store.org_id
    assert close_emulator.oauth.token_for(token) is not None


def test_the_ratelimit_header_is_read_after_every_call(close_emulator, close_connector):
    close_connector.identity()
    snapshot = close_connector.http.rate_limit
    assert (snapshot.limit, snapshot.remaining, snapshot.reset_seconds) == (1000, 999, 1.0)


def test_a_429_is_rate_limited_with_closes_reset(close_emulator, close_connector):
    close_emulator.faults.inject("rate_limit")
    with pytest.raises(RateLimited) as caught:
        close_connector.identity()
    assert caught.value.retry_after == 1.0 and caught.value.status == 429


def test_a_bad_key_is_an_auth_error(close_emulator):
    with pytest.raises(AuthError):
        CloseConnector(ConnectionCredentials("api_not.a-key")).identity()


def test_server_errors_and_dropped_connections_are_retryable(close_emulator, close_connector):
    close_emulator.faults.inject("server_error")
    with pytest.raises(RetryableError) as server:
        close_connector.identity()
    close_emulator.faults.inject("drop")
    with pytest.raises(RetryableError) as dropped:
        close_connector.upsert_people("contact", [person(1)])
    assert server.value.status == 500 and dropped.value.code == "connection_error"
    assert close_connector.upsert_people("contact", [person(1)])[0].created


class Refusing(EmulatorApp):
    """Answers every API call with one status and body, as Close does for the cases the sandbox
    cannot reach (a forbidden key, a plan limit)."""

    def __init__(self, status: int, body: dict) -> None:
        super().__init__()
        self.route("GET", r"/api/v1/.*", lambda request: Response.json(body, status=status), auth=False)


@pytest.mark.parametrize(
    ("status", "body", "kind", "code"),
    [
        (403, {"error": "You do not have permission"}, ConfigurationError, "forbidden"),
        (402, {"error": "Your plan does not include this"}, ConfigurationError, "plan_limit"),
        (404, {"error": "Not found"}, NotFound, "not_found"),
        (400, {"errors": [], "field-errors": {"name": "Too long"}}, RecordError, "validation"),
        (503, {"error": "Unavailable"}, RetryableError, ""),
        (401, {"error": "Invalid key"}, AuthError, "unauthorized"),
    ],
)
def test_error_answers_map_to_the_taxonomy(close_emulator, status, body, kind, code):
    with EmulatorServer(Refusing(status, body)) as refusing:
        connector = CloseConnector(ConnectionCredentials("api_x.y", api_base_url=refusing.url))
        with pytest.raises(kind) as caught:
            connector.identity()
    assert type(caught.value) is kind and caught.value.status == status and caught.value.code == code
    assert caught.value.message == (f"name: {body['field-errors']['name']}" if status == 400 else body["error"])


def test_a_host_only_base_url_gets_the_api_path(close_emulator):
    with EmulatorServer(Refusing(404, {"error": "x"})) as stub:
        connector = CloseConnector(ConnectionCredentials("api_x.y", api_base_url=stub.url + "/"))
        assert connector.http.base_url == stub.url + "/api/v1"


# ---------------------------------------------------------------------------------------------
# Inbound webhooks

KEY = "ab" * 32


def signed(body: bytes, key: str = KEY, at: int | None = None) -> dict[str, str]:
    stamp = str(at if at is not None else int(time.time()))
    digest = hmac.new(bytes.fromhex(key), stamp.encode() + body, hashlib.sha256).hexdigest()
    return {"close-sig-hash": digest, "close-sig-timestamp": stamp}


def event(**fields) -> bytes:
    base = {
        "id": "ev_1",
        "action": "updated",
        "object_type": "contact",
        "object_id": "cont_1",
        "lead_id": "lead_1",
        "user_id": "user_1",
        "date_updated": "2025-03-01T10:00:00.000000+00:00",
        "changed_fields": ["title"],
        "data": {"id": "cont_1", "title": "CEO", "emails": []},
        "previous_data": {"title": None},
    }
    return json.dumps({"subscription_id": "whsub_1", "event": {**base, **fields}}).encode()


def test_a_signed_fresh_delivery_is_verified(close_emulator):
    body = event()
    assert CloseConnector.verify_webhook("POST", "https://x/", signed(body), body, KEY)


@pytest.mark.parametrize(
    "headers",
    [
        {"close-sig-hash": "00" * 32, "close-sig-timestamp": str(int(time.time()))},
        {"close-sig-timestamp": str(int(time.time()))},
        {},
    ],
    ids=["wrong-hash", "no-hash", "no-headers"],
)
def test_a_bad_or_missing_signature_is_refused(headers):
    assert not CloseConnector.verify_webhook("POST", "https://x/", headers, event(), KEY)


def test_a_stale_replay_and_a_tampered_body_are_refused():
    body = event()
    assert not CloseConnector.verify_webhook("POST", "https://x/", signed(body, at=int(time.time()) - 301), body, KEY)
    assert not CloseConnector.verify_webhook("POST", "https://x/", signed(body), event(action="deleted"), KEY)
    assert not CloseConnector.verify_webhook("POST", "https://x/", signed(body), body, "not-hex")


def test_a_contact_update_carries_its_changed_fields_by_our_names():
    [change] = CloseConnector.parse_webhook(event())
    assert (change.event_id, change.object_kind, change.crm_id, change.change) == (
        "ev_1",
        "contact",
        "cont_1",
        "updated",
    )
    assert change.properties == {"title": "CEO"} and change.source == "user:user_1"
    assert change.occurred_at == dt.datetime(2025, 3, 1, 10, tzinfo=dt.UTC)
    [custom] = CloseConnector.parse_webhook(event(changed_fields=["custom.cf_x"]))
    assert custom.properties == {}  # the applier reads the record, whose fields carry the names


def test_deal_events_name_their_contact_and_unknown_events_are_skipped():
    body = event(
        object_type="opportunity",
        object_id="oppo_1",
        oauth_client_id="app_1",
        data={"id": "oppo_1", "status_label": "Won", "contact_id": "cont_9", "value": 5000},
    )
    [deal] = CloseConnector.parse_webhook(body)
    assert deal.object_kind == "deal" and deal.properties["associated_people"] == ["cont_9"]
    assert deal.properties["amount"] == 50.0 and deal.source == "oauth_client:app_1"
    assert CloseConnector.parse_webhook(event(object_type="activity.note")) == []
    assert CloseConnector.parse_webhook(event(action="completed")) == []
    with pytest.raises(ValueError):
        CloseConnector.parse_webhook(b"[]")


def test_our_oauth_apps_changes_are_our_own():
    [ours] = CloseConnector.parse_webhook(event(oauth_client_id=CLOSE_CLIENT_ID))
    [theirs] = CloseConnector.parse_webhook(event())
    with override_settings(CRM_ENDPOINTS={"close": {"client_id": CLOSE_CLIENT_ID}}):
        assert CloseConnector.is_own_change(ours, None) and not CloseConnector.is_own_change(theirs, None)


def test_a_registered_subscription_signs_what_the_receiver_verifies(close_emulator, make_close_connection, account):
    connection = make_close_connection(account)
    connection.webhook_secret = "our-secret"
    connection.save()
    connector = connection.connector()
    ref = connector.register_webhooks("https://capsule.example.com/webhooks/crm/close/1/", "our-secret")
    [subscription] = close_emulator.store.webhooks.values()
    assert ref.startswith(subscription["id"] + ":") and subscription["signature_key"] not in ref
    assert len(ref) <= 300  # WebhookRegistration.ref keeps 300 characters
    assert {(e["object_type"], e["action"]) for e in subscription["events"]} >= {("contact", "updated")}
    WebhookRegistration.objects.create(connection=connection, ref=ref, callback_url="https://x/")
    assert CloseConnector.webhook_secret_for(connection) == subscription["signature_key"]
    contact = close_emulator.create_contact("ann@example.com")
    close_emulator.edit_in_ui(contact["id"], title="CEO")
    [(_sid, update)] = [d for d in close_emulator.store.deliveries if d[1]["action"] == "updated"]
    headers, body = close_emulator.webhook_delivery(update)
    assert CloseConnector.verify_webhook(
        "POST", "https://x/", headers, body, CloseConnector.webhook_secret_for(connection)
    )
    connector.unregister_webhooks(ref)
    assert close_emulator.store.webhooks == {}
    connector.unregister_webhooks(ref)  # already gone: nothing to do


# ---------------------------------------------------------------------------------------------
# Connecting: the owner pages' OAuth flow and connect_crm


class _Hidden(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "input" and attributes.get("type") == "hidden":
            self.fields[attributes["name"]] = attributes.get("value") or ""


@pytest.fixture
def admin_client(client, account, make_member):
    client.force_login(make_member(account, Role.ADMIN))
    return client


def _consent(url: str, decision: str = "allow") -> str:
    page = requests.get(url, timeout=10, verify=settings.CRM_CA_BUNDLE)
    form = _Hidden()
    form.feed(page.text)
    parts = urlsplit(url)
    answer = requests.post(
        f"{parts.scheme}://{parts.netloc}{parts.path}",
        data={**form.fields, "decision": decision},
        allow_redirects=False,
        timeout=10,
        verify=settings.CRM_CA_BUNDLE,
    )
    return answer.headers["Location"]


@pytest.fixture
def oauth_connection(admin_client, account, close_emulator) -> Iterator[Connection]:
    start = admin_client.post(
        reverse("integrations:start_oauth", kwargs={"account_slug": account.slug, "provider": "close"})
    )
    url = start["Location"]
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert parts.path == "/oauth2/authorize/" and query["client_id"] == CLOSE_CLIENT_ID
    assert query["scope"] == "all.full_access offline_access" and "code_challenge" not in query
    location = urlsplit(_consent(url))
    answer = admin_client.get(location.path, parse_qs(location.query))
    assert answer.status_code == 302
    assert "Connected to Capsule Sandbox Inc." in admin_client.get(answer["Location"]).content.decode()
    yield Connection.objects.get(account=account, provider="close")


def test_an_oauth_connect_through_the_owner_pages_stores_rotating_tokens(oauth_connection, close_emulator):
    connection = oauth_connection
    assert connection.auth_kind == AuthKind.OAUTH and connection.status == ConnectionStatus.ACTIVE
    assert connection.crm_account_id == close_emulator.store.org_id
    assert connection.scopes == ["all.full_access", "offline_access"]
    assert close_emulator.oauth.token_state(connection.access_token) == "ok"
    old_refresh = connection.refresh_token
    connection.token_expires_at = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)
    connection.save()
    fresh = credentials.fresh_connection(connection)
    assert close_emulator.oauth.refresh_calls == 1 and fresh.refresh_token != old_refresh
    assert old_refresh not in close_emulator.oauth.refresh_tokens  # Close retires a used refresh token
    assert fresh.connector().identity().account_id == close_emulator.store.org_id
    assert disconnect(fresh, actor_label="test")
    assert close_emulator.oauth.token_state(fresh.access_token) == "invalid"


def test_denying_consent_connects_nothing(admin_client, account, close_emulator):
    start = admin_client.post(
        reverse("integrations:start_oauth", kwargs={"account_slug": account.slug, "provider": "close"})
    )
    location = urlsplit(_consent(start["Location"], "deny"))
    answer = admin_client.get(location.path, parse_qs(location.query))
    assert "Close did not grant access" in admin_client.get(answer["Location"]).content.decode()
    assert not Connection.objects.filter(provider="close").exists()


def test_connect_crm_connects_an_api_key(account, close_emulator):
    key = close_emulator.issue_api_key()
    out = StringIO()
    call_command("connect_crm", "--account", account.slug, "--provider", "close", "--token", key, stdout=out)
    connection = Connection.objects.get(account=account, provider="close")
    assert f"CONNECTION_ID={connection.pk}" in out.getvalue() and "Connected to Capsule Sandbox Inc." in out.getvalue()
    assert connection.auth_kind == AuthKind.API_KEY and connection.access_token == key
    assert connection.connector().upsert_people("contact", [person(1)])[0].created
    with pytest.raises(CommandError, match="Close refused the token"):
        call_command("connect_crm", "--account", account.slug, "--provider", "close", "--token", "api_bad.key")


def test_the_sealed_signing_key_does_not_open_with_another_secret():
    ref = webhooks.seal("whsub_1", KEY, "one")
    assert webhooks.signing_key(ref, "one") == KEY and webhooks.signing_key(ref, "two") == ""
    assert webhooks.subscription_id(ref) == "whsub_1"


def test_a_request_log_never_holds_the_key(close_emulator, close_key, caplog):
    import logging

    caplog.set_level(logging.DEBUG)
    CloseConnector(ConnectionCredentials(close_key)).upsert_people("contact", [person(1)])
    assert close_key not in caplog.text and "POST /api/v1/lead/" in caplog.text


def test_a_search_close_refuses_fails_the_batch_records_not_the_call(close_emulator):
    class BadSearch(EmulatorApp):
        def __init__(self) -> None:
            super().__init__()
            self.route("POST", r"/api/v1/data/search/", self.refuse, auth=False)

        def refuse(self, request: Request) -> Response:
            return Response.json({"error": "Invalid query"}, status=400)

    with EmulatorServer(BadSearch()) as stub:
        connector = CloseConnector(ConnectionCredentials("api_x.y", api_base_url=stub.url))
        outcomes = connector.upsert_people("contact", [person(1), person(2)])
    assert [o.error.message for o in outcomes] == ["Invalid query", "Invalid query"]


# ---------------------------------------------------------------------------------------------
# Mapping presets against the sandbox's fields


INDUSTRIES = ["agencies", "b2b_saas", "education", "financial_services", "healthcare", "real_estate"]


@pytest.mark.usefixtures("score_group")
@pytest.mark.parametrize("name", INDUSTRIES)
def test_the_standard_mapping_and_every_template_validate_against_close(
    close_emulator, make_close_connection, account, name
):
    from mapping.provisioning import provision_fields
    from mapping.schema import refresh_schema
    from mapping.service import apply_template, problems_for

    connection = make_close_connection(account)
    report = provision_fields(connection, confirmed=True)
    assert report.supported and report.complete and len(report.created) == 5
    assert {f["name"] for f in close_emulator.custom_fields("contact")} >= {"Capsule score", "Capsule last engaged"}
    refresh_schema(connection, "contact")
    assert apply_template(connection, name).waiting == []
    assert problems_for(connection) == [], [str(p) for p in problems_for(connection)]


@pytest.mark.usefixtures("score_group")
def test_the_standard_mapping_reaches_close_as_a_contact_and_its_lead(close_emulator, make_close_connection, account):
    from crmsync.models import Prospect
    from mapping.apply import build_payload
    from mapping.provisioning import provision_fields
    from mapping.rows import rows_for
    from mapping.schema import schema_for
    from mapping.sources import load_snapshots

    connection = make_close_connection(account)
    provision_fields(connection, confirmed=True)
    prospect = Prospect.objects.create(
        account=account,
        email="Ada@Example.com",
        first_name="Ada",
        last_name="Lovelace",
        company="Engines Ltd",
        phone="+44 20 7946 0018",
    )
    snapshot = load_snapshots(account, [prospect.pk])[prospect.pk]
    payload = build_payload(snapshot, rows_for(connection), schema_for(connection, "contact"))
    [outcome] = connection.connector().upsert_people("contact", [PersonInput("p", prospect.email, payload.fields)])
    contact = close_emulator.contact(outcome.crm_id)
    assert contact["name"] == "Ada Lovelace" and contact["emails"][0]["email"] == "ada@example.com"
    assert close_emulator.lead(contact["lead_id"])["name"] == "Engines Ltd"
    score = next(f for f in close_emulator.custom_fields("contact") if f["name"] == "Capsule time spent (seconds)")
    assert contact[f"custom.{score['id']}"] == 0


# ---------------------------------------------------------------------------------------------
# Inbound: a Close delivery through the receiver, and polling


@pytest.fixture
def inbound(account, make_close_connection, close_emulator):
    """A Close connection that reads CRM changes back, linked to a prospect, with its webhook
    subscription registered the way inbound sync registers it."""
    from crmsync.models import Prospect
    from integrations.inbound.registration import register_webhooks_for
    from integrations.models import Direction, RecordLink
    from mapping.models import FieldMapping

    connection = make_close_connection(account)
    connection.direction = Direction.BOTH
    connection.save()
    contact = close_emulator.create_contact("ann@example.com", name="Ann Lee")
    prospect = Prospect.objects.create(account=account, email="ann@example.com", first_name="Ann", job_title="CTO")
    RecordLink.objects.create(
        connection=connection,
        prospect=prospect,
        crm_object_type="contact",
        crm_id=contact["id"],
        last_sent_fields={"email": "ann@example.com"},
    )
    FieldMapping.objects.create(
        connection=connection,
        source_key="job_title",
        target_field="title",
        direction="both",
        target_object="contact",
        order=99,
    )
    registration = register_webhooks_for(connection)
    assert registration is not None and registration.ref.startswith("whsub_")
    return connection, contact, prospect


def _receive(client, connection, headers, body):
    path = reverse("integrations:crm_webhook", kwargs={"provider": "close", "connection_id": connection.pk})
    return client.post(
        path,
        data=body,
        content_type="application/json",
        headers={k: v for k, v in headers.items() if k != "Content-Type"},
    )


def test_a_close_delivery_is_verified_stored_and_applied(client, inbound, close_emulator):
    from integrations.inbound.jobs import process_pending
    from integrations.models import ProspectCrmData

    connection, contact, prospect = inbound
    close_emulator.edit_in_ui(contact["id"], title="VP Sales")
    [update] = [e for _sid, e in close_emulator.store.deliveries if e["action"] == "updated"]
    headers, body = close_emulator.webhook_delivery(update)
    assert _receive(client, connection, headers, body).json() == {"received": 1, "duplicates": 0}
    assert _receive(client, connection, headers, body).json() == {"received": 0, "duplicates": 1}
    forged = {**headers, "close-sig-hash": "0" * 64}
    assert _receive(client, connection, forged, body).status_code == 401
    stale, stale_body = close_emulator.webhook_delivery(update, timestamp=int(time.time()) - 600)
    assert _receive(client, connection, stale, stale_body).status_code == 401
    note = {**update, "id": "ev_note", "object_type": "activity.note"}
    note_headers, note_body = close_emulator.webhook_delivery(note)
    assert _receive(client, connection, note_headers, note_body).json() == {"ignored": True}
    assert process_pending(connection.pk) == {"processed": 1}
    # Fields from the CRM are kept under the capsule field they map to.
    assert ProspectCrmData.objects.get(prospect=prospect).fields == {"job_title": "VP Sales"}


def test_polling_reads_close_changes_since_the_cursor(inbound, close_emulator):
    from integrations.inbound.polling import poll_connection
    from integrations.models import InboundEvent

    connection, contact, _prospect = inbound
    close_emulator.edit_in_ui(contact["id"], title="COO")
    result = poll_connection(connection.pk)
    assert result.errors == [] and result.stored >= 1
    stored = InboundEvent.objects.filter(connection=connection, crm_id=contact["id"]).first()
    assert stored.properties["title"] == "COO"
    assert poll_connection(connection.pk).stored == 0  # the cursor moved past it


def test_changes_since_reads_leads_too(close_emulator, close_connector):
    contact = close_emulator.create_contact("ann@example.com", name="Ann", lead_name="Northwind")
    [record] = close_connector.changes_since("lead", None).records
    assert record.crm_id == contact["lead_id"] and record.fields["name"] == "Northwind"
    with pytest.raises(LookupError):
        close_connector.changes_since("task", None)


def test_token_answers_are_parsed_and_refusals_raised():
    from integrations.errors import OAuthError

    tokens = CloseConnector.parse_token_response(
        {
            "token_type": "Bearer",
            "access_token": "at",
            "refresh_token": "rt",
            "expires_in": 3600,
            "scope": "all.full_access offline_access",
            "organization_id": "orga_1",
            "user_id": "user_1",
        }
    )
    assert (tokens.access_token, tokens.refresh_token) == ("at", "rt")
    assert tokens.scopes == ("all.full_access", "offline_access") and "organization_id" in tokens.raw_fields
    assert dt.timedelta(minutes=59) < tokens.expires_at - dt.datetime.now(dt.UTC) <= dt.timedelta(hours=1)
    with pytest.raises(OAuthError, match="invalid_grant"):
        CloseConnector.parse_token_response({"error": "invalid_grant", "error_description": "used"})
    with pytest.raises(OAuthError, match="expires_in"):
        CloseConnector.parse_token_response({"access_token": "at", "expires_in": "soon"})


def test_an_activity_type_deleted_in_close_is_made_again(close_emulator, close_connector):
    ann = make_contact(close_emulator, "ann@example.com")
    close_connector.log_activities([activity("k1", ann)])
    with close_emulator.lock:  # an admin deletes our type and its fields in Close
        close_emulator.store.activity_types.clear()
        close_emulator.store.definitions["activity"].clear()
    [outcome] = close_connector.log_activities([activity("k2", ann)])
    assert outcome.ok and outcome.created
    [kind] = close_emulator.store.activity_types.values()
    [made] = [a for a in close_emulator.activities("CustomActivity") if a["id"] == outcome.crm_id]
    assert made["custom_activity_type_id"] == kind["id"]


def test_a_deal_key_field_deleted_in_close_is_made_again(close_emulator, close_connector):
    ann = make_contact(close_emulator, "ann@example.com")
    close_connector.upsert_deal(DealInput("d1", ann, "contact", "X", 10.0, None))
    with close_emulator.lock:  # an admin deletes the field; the connector still has it cached
        close_emulator.store.definitions["opportunity"].clear()
    outcome = close_connector.upsert_deal(DealInput("d2", ann, "contact", "Y", 20.0, None))
    assert outcome.ok and outcome.created
    [key_field] = close_emulator.custom_fields("opportunity")
    assert (
        next(o for o in close_emulator.opportunities() if o["id"] == outcome.crm_id)[f"custom.{key_field['id']}"]
        == "d2"
    )


def test_deleting_a_person_removes_its_contact_and_an_emptied_lead(close_emulator, close_connector):
    alone = close_emulator.create_contact("alone@example.com", name="Alone")
    close_connector.delete_person("contact", alone["id"])
    assert close_emulator.contact(alone["id"]) is None and close_emulator.lead(alone["lead_id"]) is None
    shared = close_emulator.create_contact("ann@example.com", name="Ann", lead_name="Northwind")
    colleague = close_connector.http.json(
        "POST", "contact/", json={"lead_id": shared["lead_id"], "emails": [{"email": "bo@example.com"}]}
    )
    close_connector.delete_person("contact", shared["id"])
    assert close_emulator.lead(shared["lead_id"])["contact_ids"] == [colleague["id"]]
    close_connector.delete_person("contact", shared["id"])  # already gone: nothing to do
