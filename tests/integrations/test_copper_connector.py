"""The Copper connector against the Copper sandbox emulator, over real HTTPS.

Assertions are on what the emulator stored and on how many calls reached it (by route), since
every call counts against Copper's 180 requests a minute.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
import uuid

import pytest
import requests
from django.core.management import CommandError, call_command

from integrations.connector import (
    ActivityInput,
    ChangeCursor,
    ConnectionCredentials,
    DealInput,
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
from integrations.models import Connection
from integrations.providers.copper.connector import CopperConnector
from integrations.providers.copper.keys import key_in
from integrations.providers.copper.provider import PROVIDER
from integrations.sandbox.core import Response
from integrations.sync.ratelimit import LocalRateLimiter
from tests.integrations.copper_fixtures import *  # noqa: F403

WHEN = dt.datetime(2025, 3, 1, 10, 30, tzinfo=dt.UTC)
WHEN_S = 1740825000


def person(n: int | str, **fields) -> PersonInput:
    email = f"person{n}@example.com"
    return PersonInput(key=f"p{n}", email=email, fields={"email": email, **fields})


def calls(app, route: str) -> int:
    return app.calls_by_route[route]


def make_person(app, email: str, name: str = "Known Person", **body) -> int:
    return app.create_record("people", {"name": name, "emails": [{"email": email, "category": "work"}], **body})


# ---------------------------------------------------------------------------------------------
# People


def test_upsert_creates_then_updates_the_same_person(copper_emulator, copper_connector):
    [first] = copper_connector.upsert_people("contact", [person(1, first_name="Ada", last_name="Byron")])
    assert first.ok and first.created and first.key == "p1"
    assert (calls(copper_emulator, "POST people/fetch_by_email"), calls(copper_emulator, "POST people")) == (1, 1)
    [second] = copper_connector.upsert_people("contact", [person(1, first_name="Ada", last_name="Lovelace")])
    assert second.ok and not second.created and second.crm_id == first.crm_id
    stored = copper_emulator.find_person("person1@example.com")
    assert stored["id"] == int(first.crm_id)
    assert (stored["name"], stored["last_name"]) == ("Ada Lovelace", "Lovelace")
    assert stored["emails"] == [{"email": "person1@example.com", "category": "work"}]
    assert calls(copper_emulator, "PUT people/{id}") == 1
    assert len(copper_emulator.records("people")) == 1


def test_an_existing_person_is_matched_by_email_whatever_its_case(copper_emulator, copper_connector):
    existing = make_person(copper_emulator, "known@example.com")
    [outcome] = copper_connector.upsert_people(
        "contact", [PersonInput(key="k", email=" Known@Example.com ", fields={"title": "CTO"})]
    )
    assert outcome.crm_id == str(existing) and not outcome.created
    assert copper_emulator.get("people", existing)["title"] == "CTO"
    assert calls(copper_emulator, "POST people") == 0
    assert len(copper_emulator.records("people")) == 1


def test_a_person_found_by_a_secondary_email_keeps_it_and_gets_ours_first(copper_emulator, copper_connector):
    existing = copper_emulator.create_record(
        "people",
        {"name": "Two Mails", "emails": [{"email": "main@example.com"}, {"email": "side@example.com"}]},
    )
    [outcome] = copper_connector.upsert_people("contact", [PersonInput("k", "side@example.com", {})])
    assert outcome.crm_id == str(existing)
    emails = [e["email"] for e in copper_emulator.get("people", existing)["emails"]]
    assert emails == ["side@example.com", "main@example.com"]


def test_a_replay_creates_no_duplicate(copper_emulator, copper_connector):
    batch = [person(n, first_name="Same", last_name=f"No{n}") for n in range(5)]
    first = copper_connector.upsert_people("contact", batch)
    again = copper_connector.upsert_people("contact", batch)
    assert [o.crm_id for o in again] == [o.crm_id for o in first]
    assert all(o.created for o in first) and not any(o.created for o in again)
    assert len(copper_emulator.records("people")) == 5


def test_an_email_changed_in_the_capsule_updates_the_stored_record(copper_emulator, copper_connector):
    [created] = copper_connector.upsert_people("contact", [person("old", first_name="Grace", last_name="Hopper")])
    moved = PersonInput("pold", "grace@new.example.com", {"first_name": "Grace"}, crm_id=created.crm_id)
    before = copper_emulator.api_calls
    [outcome] = copper_connector.upsert_people("contact", [moved])
    assert outcome.ok and outcome.crm_id == created.crm_id and not outcome.created
    # One PUT for the fields, one for the e-mail list; no lookup by e-mail.
    assert copper_emulator.api_calls - before == 2
    assert calls(copper_emulator, "POST people/fetch_by_email") == 1
    emails = [e["email"] for e in copper_emulator.get("people", created.crm_id)["emails"]]
    assert emails == ["grace@new.example.com", "personold@example.com"]
    assert len(copper_emulator.records("people")) == 1


def test_a_stored_id_costs_one_put_when_no_list_moves(copper_emulator, copper_connector):
    [created] = copper_connector.upsert_people("contact", [person(7, title="CEO")])
    before = copper_emulator.api_calls
    [outcome] = copper_connector.upsert_people(
        "contact", [dataclasses.replace(person(7, title="CFO"), crm_id=created.crm_id)]
    )
    assert outcome.ok and copper_emulator.api_calls - before == 1
    assert copper_emulator.get("people", created.crm_id)["title"] == "CFO"


def test_a_stale_stored_id_is_a_not_found_outcome(copper_emulator, copper_connector):
    gone = make_person(copper_emulator, "gone@example.com")
    copper_emulator.delete_in_ui("people", gone)
    [outcome, bad_id] = copper_connector.upsert_people(
        "contact",
        [
            PersonInput("k", "gone@example.com", {"title": "x"}, crm_id=str(gone)),
            PersonInput("j", "j@example.com", {}, crm_id="003-not-copper"),
        ],
    )
    assert isinstance(outcome.error, NotFound) and outcome.crm_id is None
    assert isinstance(bad_id.error, NotFound)
    assert copper_emulator.records("people") == []


def test_a_person_without_email_or_id_fails_alone_without_a_call(copper_emulator, copper_connector):
    [missing, fine] = copper_connector.upsert_people("contact", [PersonInput("x", " ", {}), person(2)])
    assert isinstance(missing.error, RecordError) and missing.error.field == "email"
    assert fine.ok and fine.created
    assert calls(copper_emulator, "POST people/fetch_by_email") == 1


def test_the_same_email_twice_in_one_call_is_written_once(copper_emulator, copper_connector):
    outcomes = copper_connector.upsert_people("contact", [person(3, title="A"), person(3, title="B")])
    assert outcomes[0].crm_id == outcomes[1].crm_id
    assert [o.created for o in outcomes] == [True, False]
    assert copper_emulator.find_person("person3@example.com")["title"] == "B"
    assert len(copper_emulator.records("people")) == 1


def test_a_create_refused_because_another_writer_made_the_person_updates_it(copper_emulator, copper_connector):
    """Between our lookup and our create another writer made the person: Copper refuses the second
    address (422), and the connector updates the person it then finds."""
    original = copper_emulator.routes[:]
    lookups = []

    def lagging_lookup(request):
        lookups.append(1)
        if len(lookups) == 1:
            make_person(copper_emulator, "race@example.com", "Other Writer")
            return Response.json({"success": False, "status": 404, "message": "Resource not found"}, status=404)
        return next(h for m, p, h, _a in original if m == "POST" and p.match(request.path))(request)

    copper_emulator.route("POST", r"/developer_api/v1/people/fetch_by_email", lagging_lookup)
    copper_emulator.routes.insert(0, copper_emulator.routes.pop())
    try:
        [outcome] = copper_connector.upsert_people("contact", [PersonInput("r", "race@example.com", {"title": "Won"})])
    finally:
        copper_emulator.routes[:] = original
    assert outcome.ok and not outcome.created
    assert len(copper_emulator.records("people")) == 1
    assert copper_emulator.find_person("race@example.com")["title"] == "Won"


def test_values_travel_in_coppers_shapes(copper_emulator, copper_connector):
    tier = copper_emulator.add_custom_field("Tier", "Dropdown", ["person"], options=["Gold", "Silver"])
    copper_emulator.add_custom_field("Capsule score", "Float", ["person"])
    copper_emulator.add_custom_field("Last engaged", "Date", ["person"])
    copper_emulator.add_custom_field("Opted in", "Checkbox", ["person"])
    fields = {
        "first_name": "Ann",
        "last_name": "Lee",
        "phone": "+441234567890",
        "website": "https://ann.example.com",
        "address_city": "Leeds",
        "tags": "vip; capsule",
        "cf_tier": "gold",
        "cf_capsule_score": "42",
        "cf_last_engaged": "2025-03-01",
        "cf_opted_in": "true",
    }
    [outcome] = copper_connector.upsert_people("contact", [PersonInput("a", "ann@example.com", fields)])
    assert outcome.ok, outcome.error
    stored = copper_emulator.get("people", outcome.crm_id)
    assert stored["name"] == "Ann Lee"
    assert stored["phone_numbers"] == [{"number": "+441234567890", "category": "work"}]
    assert stored["websites"] == [{"url": "https://ann.example.com", "category": "work"}]
    assert stored["address"]["city"] == "Leeds" and stored["tags"] == ["vip", "capsule"]
    values = {c["custom_field_definition_id"]: c["value"] for c in stored["custom_fields"]}
    gold = next(o["id"] for o in tier["options"] if o["name"] == "Gold")
    assert sorted(values.values(), key=str) == sorted([gold, 42, 1740787200, True], key=str)
    record = copper_connector.find_by_id("contact", outcome.crm_id)
    assert record.fields["cf_tier"] == "Gold" and record.fields["cf_last_engaged"] == "2025-03-01"
    assert record.fields["email"] == "ann@example.com" and record.fields["address_city"] == "Leeds"


def test_a_value_or_field_copper_refuses_fails_that_person_only(copper_emulator, copper_connector):
    copper_emulator.add_custom_field("Tier", "Dropdown", ["person"], options=["Gold"])
    outcomes = copper_connector.upsert_people(
        "contact",
        [
            PersonInput("a", "a@example.com", {"cf_tier": "Platinum"}),
            PersonInput("b", "b@example.com", {"no_such_field": "x"}),
            PersonInput("c", "not-an-address", {}),
            person(4),
        ],
    )
    assert [type(o.error) for o in outcomes] == [RecordError, RecordError, RecordError, type(None)]
    assert outcomes[0].error.field == "cf_tier" and "Platinum" in outcomes[0].error.message
    assert outcomes[1].error.field == "no_such_field"
    assert outcomes[2].error.status == 422 and "Invalid input" in outcomes[2].error.message
    assert [p["emails"][0]["email"] for p in copper_emulator.records("people")] == ["person4@example.com"]


def test_300_people_are_upserted_without_one_429(copper_emulator, make_copper_connector):
    """Bounded concurrency within the shared limiter: 600 calls at Copper's 180 per window, with
    the window shortened to 2 s on both sides so the test does not wait minutes."""
    copper_emulator.rate_window = 2.0
    copper_emulator.reset()
    spec = dataclasses.replace(PROVIDER.rate_limit, window_seconds=2.0)
    limiter = LocalRateLimiter(f"copper-test-{uuid.uuid4().hex}", spec)
    connector = make_copper_connector(concurrency=6)
    connector.http = connector.make_http(
        connector.credentials, before_request=lambda method, url: limiter.acquire(), after_response=None
    )
    outcomes = connector.upsert_people("contact", [person(n, first_name=f"P{n}") for n in range(300)])
    assert all(o.ok and o.created for o in outcomes)
    assert copper_emulator.rate_limited_count == 0
    assert len(copper_emulator.records("people")) == 300
    assert copper_emulator.api_calls == 600 == connector.http.calls  # thread seams' calls folded in
    assert limiter.waited_seconds > 0  # the limiter, not Copper, set the pace


def test_set_fields_updates_one_record(copper_emulator, copper_connector):
    crm_id = make_person(copper_emulator, "s@example.com", title="Old")
    copper_connector.set_fields("contact", str(crm_id), {"title": "New", "first_name": "S"})
    assert copper_emulator.get("people", crm_id)["title"] == "New"
    with pytest.raises(NotFound):
        copper_connector.set_fields("contact", "99", {"title": "x"})


def test_find_by_email_is_one_fetch_per_address(copper_emulator, copper_connector):
    known = make_person(copper_emulator, "one@example.com")
    found = copper_connector.find_by_email("contact", ["ONE@example.com", "two@example.com", "one@example.com"])
    assert list(found) == ["one@example.com"] and found["one@example.com"].crm_id == str(known)
    assert calls(copper_emulator, "POST people/fetch_by_email") == 2


def test_find_by_id_reads_one_record_or_none(copper_emulator, copper_connector):
    crm_id = make_person(copper_emulator, "f@example.com", "Fay Doe")
    record = copper_connector.find_by_id("contact", str(crm_id))
    assert record.fields["first_name"] == "Fay" and record.modified_at is not None
    assert copper_connector.find_by_id("contact", "12345") is None
    assert copper_connector.find_by_id("contact", "not-an-id") is None


def test_leads_are_matched_by_email_and_created_once(copper_emulator, make_copper_connector):
    connector = make_copper_connector(record_type="lead")
    older = copper_emulator.create_record("leads", {"name": "Old Lead", "email": {"email": "l@example.com"}})
    copper_emulator.create_record("leads", {"name": "Newer Lead", "email": {"email": "l@example.com"}})
    [matched, new] = connector.upsert_people(
        "lead", [PersonInput("l", "L@example.com", {"status": "Contacted"}), PersonInput("m", "m@example.com", {})]
    )
    assert matched.crm_id == str(older) and not matched.created
    assert copper_emulator.get("leads", older)["status"] == "Contacted"
    assert new.created and copper_emulator.get("leads", new.crm_id)["email"]["email"] == "m@example.com"
    found = connector.find_by_email("lead", ["l@example.com", "m@example.com", "x@example.com"])
    assert {e: r.crm_id for e, r in found.items()} == {"l@example.com": str(older), "m@example.com": new.crm_id}


# ---------------------------------------------------------------------------------------------
# Identity, fields, tokens


def test_identity_names_the_account_and_the_keys_user(copper_emulator, copper_connector):
    identity = copper_connector.identity()
    assert identity.account_id == str(copper_emulator.account_id)
    assert identity.account_name == copper_emulator.account_name
    assert identity.user_email == copper_emulator.admin.email and identity.user_id == str(copper_emulator.admin.id)


def test_every_request_carries_the_three_x_pw_headers(copper_emulator, copper_key):
    key, email = copper_key
    connector = CopperConnector(ConnectionCredentials(access_token=key, extra={"user_email": email}))
    prepared = connector.http.session.prepare_request(requests.Request("GET", connector.http.url("/account")))
    assert prepared.headers["X-PW-AccessToken"] == key and prepared.headers["X-PW-UserEmail"] == email
    assert prepared.headers["X-PW-Application"] == "developer_api"
    assert prepared.headers["Content-Type"] == "application/json" and "Authorization" not in prepared.headers
    assert prepared.url.endswith("/developer_api/v1/account")


def test_an_oauth_token_travels_as_bearer_without_an_email(copper_emulator):
    token = copper_emulator.issue_oauth_token().access_token
    connector = CopperConnector(ConnectionCredentials(access_token=token))
    assert connector.identity().account_id == str(copper_emulator.account_id)


def test_a_key_with_the_wrong_email_is_an_auth_error_that_says_what_to_check(copper_emulator, copper_key):
    key, _email = copper_key
    connector = CopperConnector(ConnectionCredentials(access_token=key, extra={"user_email": "someone@else.com"}))
    with pytest.raises(AuthError) as error:
        connector.identity()
    assert error.value.status == 401 and "e-mail" in error.value.message
    assert key not in str(error.value)


def test_describe_fields_lists_standard_and_custom_fields_with_options(copper_emulator, copper_connector):
    copper_emulator.add_custom_field("Industry Segment", "Dropdown", ["person", "lead"], options=["SaaS", "Retail"])
    copper_emulator.add_custom_field("Deal source", "String", ["opportunity"])
    fields = {f.name: f for f in copper_connector.describe_fields("contact")}
    assert {"email", "first_name", "last_name", "phone", "title", "company_name"} <= set(fields)
    assert fields["email"].unique and fields["email"].required and fields["id"].read_only
    segment = fields["cf_industry_segment"]
    assert segment.custom and segment.type == "picklist" and segment.options == ("SaaS", "Retail")
    assert segment.label == "Industry Segment"
    assert "cf_deal_source" not in fields
    assert "cf_deal_source" in {f.name for f in copper_connector.describe_fields("deal")}
    assert "status" in {f.name for f in copper_connector.describe_fields("lead")}
    with pytest.raises(ConfigurationError):
        copper_connector.describe_fields("company")


def test_create_custom_field_makes_a_definition_that_describe_then_lists(copper_emulator, copper_connector):
    from mapping.presets import CustomFieldSpec

    spec = CustomFieldSpec(name="cf_capsule_score", label="Capsule score", type="number")
    made = copper_connector.create_custom_field("contact", spec)
    assert (made.name, made.label, made.type, made.custom) == ("cf_capsule_score", "Capsule score", "number", True)
    again = copper_connector.create_custom_field("contact", spec)
    assert again.name == made.name
    assert [d["name"] for d in copper_emulator.store.definitions.values()] == ["Capsule score"]
    assert "cf_capsule_score" in {f.name for f in copper_connector.describe_fields("contact")}


def test_a_user_who_may_not_manage_fields_gets_a_configuration_error(copper_emulator, make_copper_connector):
    from mapping.presets import CustomFieldSpec

    key, email = copper_emulator.issue_api_key("rep@copper-sandbox.example.com", admin=False)
    connector = make_copper_connector(key, email)
    with pytest.raises(ConfigurationError) as error:
        connector.create_custom_field("contact", CustomFieldSpec(name="cf_x", label="X", type="string"))
    assert error.value.status == 403


def test_a_token_answer_becomes_a_token_set():
    tokens = CopperConnector.parse_token_response(
        {"access_token": "abc", "token_type": "Bearer", "scope": "developer/v1/all"}
    )
    assert (tokens.access_token, tokens.refresh_token, tokens.expires_at) == ("abc", None, None)
    assert tokens.scopes == ("developer/v1/all",)
    with pytest.raises(OAuthError, match="invalid_grant"):
        CopperConnector.parse_token_response({"error": "invalid_grant", "error_description": "used"})
    with pytest.raises(OAuthError, match="invalid_response"):
        CopperConnector.parse_token_response({"token_type": "Bearer"})


# ---------------------------------------------------------------------------------------------
# Changes since a cursor


def test_changes_since_pages_through_a_shared_second_without_gaps_or_repeats(copper_emulator, copper_connector):
    ids = [make_person(copper_emulator, f"c{n}@example.com", f"C {n}") for n in range(7)]
    copper_emulator.set_modified("people", ids[:5], WHEN_S)
    copper_emulator.set_modified("people", ids[5:], WHEN_S + 60)
    seen, cursor, pages = [], None, 0
    while True:
        page = copper_connector.changes_since("contact", cursor, limit=2)
        seen += [r.crm_id for r in page.records]
        cursor, pages = page.next_cursor, pages + 1
        if not page.has_more:
            break
    assert seen == [str(i) for i in ids]
    assert pages == 4
    assert cursor.modified_at == dt.datetime.fromtimestamp(WHEN_S + 60, tz=dt.UTC) and cursor.last_id == str(ids[-1])
    # Nothing new: an empty page that keeps the cursor.
    empty = copper_connector.changes_since("contact", cursor)
    assert list(empty.records) == [] and empty.next_cursor == cursor and not empty.has_more


def test_a_cursor_inside_a_second_skips_the_ids_it_has_seen(copper_emulator, copper_connector):
    ids = [make_person(copper_emulator, f"s{n}@example.com") for n in range(3)]
    copper_emulator.set_modified("people", ids, WHEN_S)
    cursor = ChangeCursor(dt.datetime.fromtimestamp(WHEN_S, tz=dt.UTC), str(ids[0]))
    page = copper_connector.changes_since("contact", cursor)
    assert [r.crm_id for r in page.records] == [str(ids[1]), str(ids[2])]
    search = copper_emulator.requests_to("POST", r"/people/search$")
    assert len(search) == 1


def test_a_second_with_more_records_than_a_page_is_read_whole(copper_emulator, copper_connector):
    ids = [make_person(copper_emulator, f"bulk{n}@example.com") for n in range(205)]
    copper_emulator.set_modified("people", ids, WHEN_S)
    page = copper_connector.changes_since("contact", None, limit=300)
    assert [r.crm_id for r in page.records] == [str(i) for i in ids] and not page.has_more
    assert calls(copper_emulator, "POST people/search") == 2


def test_deals_are_polled_too(copper_emulator, copper_connector):
    crm_id = copper_emulator.create_record("opportunities", {"name": "Big one", "monetary_value": 500})
    page = copper_connector.changes_since("deal", None)
    assert [(r.crm_id, r.fields["name"]) for r in page.records] == [(str(crm_id), "Big one")]
    assert page.records[0].fields["pipeline_stage_id"]


# ---------------------------------------------------------------------------------------------
# Activities, notes, tasks, deals


def activity(key: str, crm_id: int | str, when: dt.datetime = WHEN, kind: str = "contact") -> ActivityInput:
    return ActivityInput(
        key=key,
        person_crm_id=str(crm_id),
        person_kind=kind,
        kind="capsule_viewed",
        subject="Viewed capsule “Pricing”",
        body="Viewed capsule “Pricing”\nWhen: 2025-03-01 10:30 UTC",
        occurred_at=when,
    )


def test_activities_are_logged_once_however_often_replayed(copper_emulator, copper_connector):
    a, b = make_person(copper_emulator, "a@example.com"), make_person(copper_emulator, "b@example.com")
    batch = [activity("capsule-evt-1", a), activity("capsule-evt-2", b, WHEN + dt.timedelta(hours=1))]
    first = copper_connector.log_activities(batch)
    assert all(o.ok and o.created for o in first)
    again = copper_connector.log_activities(batch)
    assert [o.crm_id for o in again] == [o.crm_id for o in first] and not any(o.created for o in again)
    assert len(copper_emulator.records("activities")) == 2
    stored = copper_emulator.get("activities", first[0].crm_id)  # created in parallel: found by id, not order
    assert stored["type"] == {"category": "user", "id": 0}  # Note: no "Capsule activity" type here
    assert stored["activity_date"] == WHEN_S and stored["parent"] == {"type": "person", "id": a}
    assert stored["details"] == "Viewed capsule “Pricing”\nWhen: 2025-03-01 10:30 UTC\n\nCapsule key: capsule-evt-1"
    # Types read once per connector; one search per batch; one create per new activity.
    assert calls(copper_emulator, "GET activity_types") == 1
    assert calls(copper_emulator, "POST activities/search") == 2
    assert calls(copper_emulator, "POST activities") == 2


def test_a_capsule_activity_type_is_used_when_the_account_has_one(copper_emulator, copper_connector):
    type_id = copper_emulator.add_activity_type("Capsule activity")
    crm_id = make_person(copper_emulator, "t@example.com")
    [outcome] = copper_connector.log_activities([activity("capsule-evt-9", crm_id)])
    assert copper_emulator.get("activities", outcome.crm_id)["type"]["id"] == type_id


def test_an_activity_on_another_person_with_our_key_does_not_count(copper_emulator, copper_connector):
    a, b = make_person(copper_emulator, "a@example.com"), make_person(copper_emulator, "b@example.com")
    copper_connector.log_activities([activity("capsule-evt-5", a)])
    [outcome] = copper_connector.log_activities([activity("capsule-evt-5", b)])
    assert outcome.created
    assert [key_in(x["details"]) for x in copper_emulator.activities_of("person", b)] == ["capsule-evt-5"]


def test_an_activity_for_a_missing_person_fails_alone(copper_emulator, copper_connector):
    crm_id = make_person(copper_emulator, "here@example.com")
    gone, bad, fine = copper_connector.log_activities(
        [activity("capsule-evt-1", 11_999_999), activity("capsule-evt-2", ""), activity("capsule-evt-3", crm_id)]
    )
    assert gone.error.status == 422 and not gone.ok
    assert bad.error.code == "no_parent"
    assert fine.ok and len(copper_emulator.records("activities")) == 1


def test_notes_are_note_activities_once_and_keep_line_breaks(copper_emulator, copper_connector):
    crm_id = make_person(copper_emulator, "n@example.com")
    note = NoteInput("capsule-evt-7", str(crm_id), "contact", "Question asked:\nDo you offer SSO?", WHEN)
    [first] = copper_connector.add_notes([note])
    [second] = copper_connector.add_notes([note])
    assert first.created and not second.created and first.crm_id == second.crm_id
    [stored] = copper_emulator.activities_of("person", crm_id)
    assert stored["details"].startswith("Question asked:\nDo you offer SSO?\n") and stored["type"]["id"] == 0


def test_a_lead_gets_its_activities_on_the_lead(copper_emulator, copper_connector):
    lead = copper_emulator.create_record("leads", {"name": "Lee Lead", "email": {"email": "lee@example.com"}})
    [outcome] = copper_connector.log_activities([activity("capsule-evt-8", lead, kind="lead")])
    assert outcome.ok and copper_emulator.get("activities", outcome.crm_id)["parent"] == {"type": "lead", "id": lead}


def test_tasks_are_idempotent_and_keyed_by_a_custom_field(copper_emulator, copper_connector):
    crm_id = make_person(copper_emulator, "task@example.com")
    owner = copper_emulator.add_user("Rep", "rep@copper-sandbox.example.com")
    task = TaskInput("trigger-1", str(crm_id), "contact", "Call back", "They clicked Book a demo", WHEN, str(owner))
    [first] = copper_connector.create_tasks([task])
    [second] = copper_connector.create_tasks([task])
    assert first.created and not second.created and first.crm_id == second.crm_id
    [stored] = copper_emulator.records("tasks")
    assert stored["related_resource"] == {"type": "person", "id": crm_id} and stored["assignee_id"] == owner
    assert stored["due_date"] == WHEN_S and stored["status"] == "Open"
    [definition] = [d for d in copper_emulator.store.definitions.values() if d["name"] == "Capsule event ID"]
    assert definition["available_on"] == ["task"]
    assert {"custom_field_definition_id": definition["id"], "value": "trigger-1"} in stored["custom_fields"]


def test_a_key_that_only_resembles_ours_is_not_taken_for_it(copper_emulator, copper_connector):
    crm_id = make_person(copper_emulator, "k@example.com")
    copper_connector.create_tasks([TaskInput("trigger-12", str(crm_id), "contact", "A", "", WHEN)])
    [outcome] = copper_connector.create_tasks([TaskInput("trigger-1", str(crm_id), "contact", "B", "", WHEN)])
    assert outcome.created and len(copper_emulator.records("tasks")) == 2


def test_without_permission_to_create_the_key_field_tasks_are_a_configuration_error(
    copper_emulator, make_copper_connector
):
    key, email = copper_emulator.issue_api_key("rep2@copper-sandbox.example.com", admin=False)
    connector = make_copper_connector(key, email)
    with pytest.raises(ConfigurationError, match="Capsule event ID"):
        connector.create_tasks([TaskInput("t", "1", "contact", "x", "", WHEN)])
    assert copper_emulator.records("tasks") == []


def test_a_deal_is_an_opportunity_once_per_conversion(copper_emulator, copper_connector):
    crm_id = make_person(copper_emulator, "buyer@example.com")
    deal = DealInput("capsule-evt-30", str(crm_id), "contact", "Pricing — Northwind", 1200.0, "eur", None, WHEN.date())
    first = copper_connector.upsert_deal(deal)
    second = copper_connector.upsert_deal(deal)
    assert first.created and not second.created and first.crm_id == second.crm_id
    [stored] = copper_emulator.records("opportunities")
    assert (stored["status"], stored["monetary_value"], stored["monetary_unit"]) == ("Won", 1200.0, "EUR")
    assert stored["close_date"] == "03/01/2025" and stored["primary_contact_id"] == crm_id
    assert copper_connector.people_of_deal(first.crm_id) == [str(crm_id)]


def test_a_deal_stage_is_found_by_name_and_an_unknown_one_fails_the_deal(copper_emulator, copper_connector):
    crm_id = make_person(copper_emulator, "stage@example.com")
    deal = DealInput("capsule-evt-31", str(crm_id), "contact", "Staged", None, None, "Negotiation")
    outcome = copper_connector.upsert_deal(deal)
    stored = copper_emulator.get("opportunities", outcome.crm_id)
    assert (stored["status"], stored["pipeline_stage_id"]) == ("Open", 987_794)
    failed = copper_connector.upsert_deal(dataclasses.replace(deal, key="capsule-evt-32", stage="Nowhere"))
    assert failed.error.code == "unknown_stage" and len(copper_emulator.records("opportunities")) == 1


def test_a_leads_deal_names_the_lead(copper_emulator, copper_connector):
    lead = copper_emulator.create_record("leads", {"name": "Lead Buyer"})
    outcome = copper_connector.upsert_deal(DealInput("capsule-evt-33", str(lead), "lead", "Lead deal", 10, None))
    stored = copper_emulator.get("opportunities", outcome.crm_id)
    assert stored["primary_contact_id"] is None and str(lead) in stored["details"]


# ---------------------------------------------------------------------------------------------
# Error mapping


def test_an_injected_429_is_rate_limited_with_the_whole_window_as_retry_after(copper_emulator, copper_connector):
    copper_emulator.faults.inject("rate_limit")
    with pytest.raises(RateLimited) as error:
        copper_connector.identity()
    assert error.value.retry_after == 60.0 and error.value.status == 429
    assert copper_emulator.rate_limited_count == 1


def test_going_over_180_a_minute_is_a_429(copper_emulator, copper_connector):
    copper_emulator.rate_limit = 3
    copper_emulator.reset()
    for _ in range(3):
        copper_connector.http.json("GET", "/account")
    with pytest.raises(RateLimited):
        copper_connector.http.json("GET", "/account")
    assert copper_emulator.rate_limited_count == 1


def test_a_rate_limit_inside_a_batch_stops_it_and_is_raised(copper_emulator, copper_connector):
    copper_emulator.faults.inject("rate_limit", path_prefix="/developer_api/v1/people/fetch_by_email")
    with pytest.raises(RateLimited):
        copper_connector.upsert_people("contact", [person(n) for n in range(3)])


@pytest.mark.parametrize("fault", ["server_error", "drop"])
def test_outages_are_retryable(copper_emulator, copper_connector, fault):
    copper_emulator.faults.inject(fault)
    with pytest.raises(RetryableError) as error:
        copper_connector.identity()
    assert not isinstance(error.value, RateLimited)


def test_an_expired_oauth_token_is_an_auth_error(copper_emulator):
    token = copper_emulator.issue_oauth_token().access_token
    connector = CopperConnector(ConnectionCredentials(access_token=token))
    copper_emulator.faults.inject("expire_token")
    with pytest.raises(AuthError, match="expired"):
        connector.identity()
    with pytest.raises(AuthError):  # it stays expired
        connector.identity()


def test_statuses_map_to_the_taxonomy():
    def answer(status: int, body: dict | None = None) -> requests.Response:
        response = requests.Response()
        response.status_code = status
        response._content = json.dumps(body or {"success": False, "status": status, "message": "m"}).encode()
        return response

    kinds = {s: type(CopperConnector.classify_error(answer(s))) for s in (401, 403, 404, 422, 429, 500, 503)}
    assert kinds == {
        401: AuthError,
        403: ConfigurationError,
        404: NotFound,
        422: RecordError,
        429: RateLimited,
        500: RetryableError,
        503: RetryableError,
    }
    assert CopperConnector.classify_error(answer(200)) is None
    assert CopperConnector.error_message(answer(422, {"message": "Invalid input: x"}))[0] == "Invalid input: x"


# ---------------------------------------------------------------------------------------------
# Webhooks


def test_register_webhooks_subscribes_people_and_deals_and_unregister_removes_them(copper_emulator, copper_connector):
    ref = copper_connector.register_webhooks("https://capsule.example.com/webhooks/crm/copper/7/", "s3cret")
    subscriptions = copper_emulator.subscriptions()
    assert ref == ",".join(str(s["id"]) for s in subscriptions)
    assert {(s["type"], s["event"]) for s in subscriptions} == {
        (t, e) for t in ("person", "opportunity") for e in ("new", "update", "delete")
    }
    assert all(s["secret"] == {"capsule_secret": "s3cret"} for s in subscriptions)
    assert all(s["headers"] == {"X-Capsule-Webhook-Secret": "s3cret"} for s in subscriptions)
    copper_connector.unregister_webhooks(ref)
    assert copper_emulator.subscriptions() == []
    copper_connector.unregister_webhooks(ref)  # already gone: no error


def test_a_failed_registration_removes_what_it_made(copper_emulator, copper_connector):
    for n in range(97):  # Copper keeps at most 100 subscriptions: the 4th of ours is refused
        copper_connector.http.json(
            "POST", "/webhooks", json={"target": f"https://o.example.com/{n}", "type": "task", "event": "new"}
        )
    with pytest.raises(RecordError, match="at most 100"):
        copper_connector.register_webhooks("https://capsule.example.com/hook/", "s")
    assert len(copper_emulator.subscriptions()) == 97
    assert {s["type"] for s in copper_emulator.subscriptions()} == {"task"}


def test_webhook_targets_must_be_https(copper_emulator, copper_connector):
    copper_emulator.allow_http_targets = False
    try:
        with pytest.raises(RecordError, match="HTTPS"):
            copper_connector.register_webhooks("http://capsule.example.com/hook/", "s")
    finally:
        copper_emulator.allow_http_targets = True
    assert copper_emulator.subscriptions() == []


def test_a_notification_with_the_registered_secret_is_authentic(copper_emulator, copper_connector):
    copper_connector.register_webhooks("https://capsule.example.com/hook/", "s3cret")
    [subscription] = [s for s in copper_emulator.subscriptions() if (s["type"], s["event"]) == ("person", "update")]
    headers, body = copper_emulator.make_webhook_request(subscription["id"], [11_000_001])
    assert CopperConnector.verify_webhook("POST", "https://x/", headers, body, "s3cret")
    # The echoed body secret alone is enough; the header alone too.
    assert CopperConnector.verify_webhook("POST", "https://x/", {}, body, "s3cret")
    assert CopperConnector.verify_webhook("POST", "https://x/", headers, b"{}", "s3cret")


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        ({"X-Capsule-Webhook-Secret": "wrong"}, b'{"capsule_secret": "wrong", "ids": [1]}'),
        ({}, b'{"ids": [1], "type": "person", "event": "update"}'),
        ({}, b"not json"),
        ({"X-Capsule-Webhook-Secret": "s3cre"}, b'{"capsule_secret": "s3cret-and-more"}'),
    ],
)
def test_a_notification_without_the_secret_is_refused(headers, body):
    assert not CopperConnector.verify_webhook("POST", "https://x/", headers, body, "s3cret")


def test_no_registered_secret_means_no_notification_is_authentic():
    body = b'{"capsule_secret": ""}'
    assert not CopperConnector.verify_webhook("POST", "https://x/", {"X-Capsule-Webhook-Secret": ""}, body, "")


def test_notifications_become_inbound_changes(copper_emulator, copper_connector):
    copper_connector.register_webhooks("https://capsule.example.com/hook/", "s")
    by_kind = {(s["type"], s["event"]): s["id"] for s in copper_emulator.subscriptions()}
    _h, updated = copper_emulator.make_webhook_request(by_kind["person", "update"], [5, 6], {"title": ["a", "b"]})
    changes = CopperConnector.parse_webhook(updated)
    assert [(c.object_kind, c.crm_id, c.change) for c in changes] == [
        ("contact", "5", "updated"),
        ("contact", "6", "updated"),
    ]
    assert len({c.event_id for c in changes}) == 2
    assert [c.event_id for c in CopperConnector.parse_webhook(updated)] == [c.event_id for c in changes]  # replay
    _h, won = copper_emulator.make_webhook_request(by_kind["opportunity", "new"], [9])
    assert [(c.object_kind, c.change) for c in CopperConnector.parse_webhook(won)] == [("deal", "created")]
    _h, gone = copper_emulator.make_webhook_request(by_kind["person", "delete"], [5])
    assert CopperConnector.parse_webhook(gone)[0].change == "deleted"
    assert CopperConnector.parse_webhook(b'{"type": "project", "event": "new", "ids": [1]}') == []
    with pytest.raises(ValueError):
        CopperConnector.parse_webhook(b"[1, 2]")


def test_the_webhook_secret_is_the_connections_own():
    connection = Connection(webhook_secret="per-connection")
    assert CopperConnector.webhook_secret_for(connection) == "per-connection"
    assert CopperConnector.webhook_secret_for(Connection()) == ""


# ---------------------------------------------------------------------------------------------
# Connecting with a token


def test_connect_crm_with_an_api_key_and_its_users_email(account, copper_emulator):
    key, email = copper_emulator.issue_api_key()
    out = io.StringIO()
    call_command(
        "connect_crm",
        "--account",
        account.slug,
        "--provider",
        "copper",
        "--token",
        key,
        "--extra",
        f"user_email={email}",
        stdout=out,
    )
    connection_id = int(out.getvalue().split("CONNECTION_ID=")[1])
    connection = Connection.objects.get(pk=connection_id)
    assert connection.auth_kind == "api_key" and connection.auth_extra["user_email"] == email
    assert connection.crm_account_id == str(copper_emulator.account_id) and connection.crm_user_email == email
    [outcome] = connection.connector().upsert_people("contact", [person("cli")])
    assert outcome.created


def test_connect_crm_refuses_a_bad_key_with_coppers_reason_and_asks_for_the_email(account, copper_emulator):
    with pytest.raises(CommandError, match="invalid API key or user e-mail"):
        call_command(
            "connect_crm",
            "--account",
            account.slug,
            "--provider",
            "copper",
            "--token",
            "0" * 32,
            "--extra",
            "user_email=nobody@example.com",
        )
    with pytest.raises(CommandError, match="user_email=VALUE"):
        call_command("connect_crm", "--account", account.slug, "--provider", "copper", "--token", "0" * 32)
    assert not Connection.objects.filter(provider="copper").exists()


# ---------------------------------------------------------------------------------------------
# Mapping: the standard mapping, industry templates and field provisioning on the sandbox


@pytest.fixture
def copper_connection(account, copper_emulator):
    from integrations.connecting import connect
    from integrations.connector import TokenSet

    key, email = copper_emulator.issue_api_key()
    tokens = TokenSet(access_token=key, extra={"user_email": email})
    return connect(account, "copper", tokens, auth_kind="api_key", actor_label="test")


@pytest.mark.parametrize("record_type", ["contact", "lead"])
@pytest.mark.parametrize(
    "name", ["agencies", "b2b_saas", "education", "financial_services", "healthcare", "real_estate"]
)
def test_every_template_validates_against_the_copper_sandbox(copper_connection, record_type, name):
    from mapping.schema import refresh_schema
    from mapping.service import apply_template, problems_for

    copper_connection.record_type = record_type
    copper_connection.save(update_fields=["record_type", "updated_at"])
    refresh_schema(copper_connection, record_type)
    apply_template(copper_connection, name)
    assert problems_for(copper_connection) == [], [str(p) for p in problems_for(copper_connection)]


def test_capsule_fields_are_created_in_copper_and_a_person_then_carries_them(copper_emulator, copper_connection):
    from crmsync.models import Prospect
    from mapping.apply import build_payload
    from mapping.provisioning import provision_fields
    from mapping.rows import rows_for
    from mapping.schema import schema_for
    from mapping.sources import load_snapshots

    report = provision_fields(copper_connection, confirmed=True)
    assert {spec.name for spec in report.created} == {
        "cf_capsule_score",
        "cf_capsule_grade",
        "cf_capsule_last_engaged",
        "cf_capsule_time_spent_seconds",
        "cf_last_capsule_link",
    }
    assert report.complete and not report.failed
    names = {d["name"]: d for d in copper_emulator.store.definitions.values()}
    assert names["Capsule last engaged"]["data_type"] == "Date"
    assert names["Capsule score"]["available_on"] == ["person", "lead"]
    assert provision_fields(copper_connection, confirmed=True).created == []  # nothing twice
    prospect = Prospect.objects.create(
        account=copper_connection.account, email="ada@example.com", first_name="Ada", last_name="L"
    )
    snapshot = load_snapshots(copper_connection.account, [prospect.pk])[prospect.pk]
    payload = build_payload(snapshot, rows_for(copper_connection), schema_for(copper_connection, "contact"))
    [outcome] = copper_connection.connector().upsert_people(
        "contact", [PersonInput("p", prospect.email, payload.fields)]
    )
    assert payload.fields["cf_capsule_time_spent_seconds"] == 0
    stored = copper_emulator.get("people", outcome.crm_id)
    assert stored["name"] == "Ada L" and stored["emails"][0]["email"] == "ada@example.com"
    spent = names["Capsule time spent (seconds)"]["id"]
    assert {"custom_field_definition_id": spent, "value": 0} in stored["custom_fields"]


# ---------------------------------------------------------------------------------------------
# Inbound: Copper's notifications through the real receiver, and polling as the safety net


def test_a_notification_reaches_the_receiver_once_and_a_forged_one_is_refused(
    client, copper_emulator, copper_connection
):
    from urllib.parse import urlsplit

    from integrations.inbound.registration import callback_url, register_webhooks_for
    from integrations.models import InboundEvent

    register_webhooks_for(copper_connection)
    copper_connection.refresh_from_db()
    [update] = [s for s in copper_emulator.subscriptions() if (s["type"], s["event"]) == ("person", "update")]
    assert update["target"] == callback_url(copper_connection)
    headers, body = copper_emulator.make_webhook_request(update["id"], [11_000_001], {"title": ["a", "b"]})
    path = urlsplit(update["target"]).path
    secret_header = {"HTTP_X_CAPSULE_WEBHOOK_SECRET": headers["X-Capsule-Webhook-Secret"]}
    first = client.post(path, data=body, content_type="application/json", **secret_header)
    assert first.status_code == 200 and first.json() == {"received": 1, "duplicates": 0}
    replay = client.post(path, data=body, content_type="application/json", **secret_header)
    assert replay.json() == {"received": 0, "duplicates": 1}
    forged = json.dumps({**json.loads(body), "capsule_secret": "guess"}).encode()
    assert client.post(path, data=forged, content_type="application/json").status_code == 401
    assert InboundEvent.objects.filter(connection=copper_connection, crm_id="11000001", change="updated").count() == 1


def test_polling_finds_a_change_copper_never_notified(copper_emulator, copper_connection):
    from crmsync.models import Prospect
    from integrations.inbound.polling import poll_connection
    from integrations.models import InboundEvent, RecordLink

    crm_id = make_person(copper_emulator, "polled@example.com", "Polly Poll")
    prospect = Prospect.objects.create(account=copper_connection.account, email="polled@example.com")
    RecordLink.objects.create(connection=copper_connection, prospect=prospect, crm_object_type="contact", crm_id=crm_id)
    copper_emulator.edit_in_ui("people", crm_id, {"title": "Head of Sales"})  # no webhook is sent
    result = poll_connection(copper_connection.pk)
    assert result.stored == 1 and not result.errors
    event = InboundEvent.objects.get(connection=copper_connection, crm_id=str(crm_id))
    assert event.via == "poll" and event.properties["title"] == "Head of Sales"
    assert poll_connection(copper_connection.pk).stored == 0  # the cursor moved past it


def test_delete_person_deletes_people_and_leads_and_a_gone_one_is_fine(copper_emulator, copper_connector):
    person_id = make_person(copper_emulator, "del@example.com")
    lead_id = copper_emulator.create_record("leads", {"name": "Del Lead"})
    copper_connector.delete_person("contact", str(person_id))
    copper_connector.delete_person("lead", str(lead_id))
    copper_connector.delete_person("contact", str(person_id))  # already gone: no error
    assert copper_emulator.records("people") == [] and copper_emulator.records("leads") == []
    assert calls(copper_emulator, "DELETE people/{id}") == 2
    with pytest.raises(ConfigurationError):
        copper_connector.delete_person("deal", "1")
