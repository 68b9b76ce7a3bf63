"""The Pipedrive connector against the Pipedrive sandbox, over real HTTPS.

Every test here runs twice: with the deprecated v1 routes (persons, deals, activities,
organizations, fields, search) answering, and with them gone (410), as Pipedrive may make them at
any time. After every test the emulator's own log must show zero calls to those routes — so the
whole set proves the connector never uses them, whatever they answer.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import threading
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.conf import settings
from django.test import override_settings
from django.urls import reverse

from crmsync.models import Role
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
from integrations.models import AuthKind, Connection, ConnectionStatus
from integrations.providers.pipedrive import webhooks
from integrations.providers.pipedrive.connector import PipedriveConnector, forget_process_caches
from integrations.sandbox.core import EmulatorServer
from integrations.sandbox.pipedrive import UI_USER_ID, PipedriveEmulator
from mapping import presets
from mapping.models import FieldMapping
from mapping.provisioning import provision_fields
from mapping.schema import refresh_schema
from mapping.service import apply_standard_mapping, apply_template, problems_for
from tests.integrations.pipedrive_fixtures import *  # noqa: F403
from tests.integrations.pipedrive_fixtures import PIPEDRIVE_CLIENT_ID, PIPEDRIVE_CLIENT_SECRET

AT = dt.datetime(2026, 3, 4, 10, 30, tzinfo=dt.UTC)


@pytest.fixture(params=["v1-answering", "v1-gone"], autouse=True)
def v1_gone(request, pipedrive_emulator) -> bool:
    gone = request.param == "v1-gone"
    pipedrive_emulator.v1_deprecated_gone = gone
    yield gone
    assert pipedrive_emulator.v1_calls == 0, pipedrive_emulator.calls_by_route


def calls(app: PipedriveEmulator, route: str) -> int:
    return app.calls_by_route[route]


def ann(key: str = "k1", email: str = "ann@example.com", crm_id: str | None = None, **fields) -> PersonInput:
    return PersonInput(key, email, {"name": "Ann Lee", "emails": email, **fields}, crm_id=crm_id)


# ---------------------------------------------------------------------------------------------
# People


def test_a_person_is_created_then_updated_in_place(pipedrive_emulator, pipedrive_connector):
    [created] = pipedrive_connector.upsert_people("contact", [ann(phones="+3725551234")])
    assert created.ok and created.created
    person = pipedrive_emulator.find_person("ann@example.com")
    assert str(person["id"]) == created.crm_id and person["name"] == "Ann Lee"
    assert person["emails"] == [{"value": "ann@example.com", "primary": True, "label": "work"}]
    assert person["phones"][0]["value"] == "+3725551234"
    assert (
        calls(pipedrive_emulator, "GET /api/v2/persons/search"),
        calls(pipedrive_emulator, "POST /api/v2/persons"),
    ) == (1, 1)
    [updated] = pipedrive_connector.upsert_people("contact", [ann(name="Annie Lee", phones="+3725551234")])
    assert (updated.crm_id, updated.created) == (created.crm_id, False)
    assert [p["name"] for p in pipedrive_emulator.persons()] == ["Annie Lee"]
    assert calls(pipedrive_emulator, "PATCH /api/v2/persons/{id}") == 1  # the phone was already there


def test_a_replay_creates_no_duplicate(pipedrive_emulator, pipedrive_connector):
    first = pipedrive_connector.upsert_people("contact", [ann(), ann("k2", "bo@example.com", name="Bo")])
    again = pipedrive_connector.upsert_people("contact", [ann(), ann("k2", "bo@example.com", name="Bo")])
    assert [o.crm_id for o in again] == [o.crm_id for o in first] and not any(o.created for o in again)
    assert len(pipedrive_emulator.persons()) == 2


def test_an_existing_person_is_found_by_email_whatever_its_case(pipedrive_emulator, pipedrive_connector):
    theirs = pipedrive_emulator.create_record("person", {"name": "Ann", "emails": [{"value": "Ann@Example.com"}]})
    pipedrive_emulator.create_record("person", {"name": "Ann again", "emails": [{"value": "ann@example.com"}]})
    [outcome] = pipedrive_connector.upsert_people("contact", [ann()])
    assert outcome.crm_id == str(theirs["id"]) and not outcome.created  # the oldest of two holding it
    assert len(pipedrive_emulator.persons()) == 2


def test_an_email_changed_in_the_capsule_updates_the_stored_person(pipedrive_emulator, pipedrive_connector):
    [made] = pipedrive_connector.upsert_people("contact", [ann()])
    [moved] = pipedrive_connector.upsert_people(
        "contact", [PersonInput("k1", "ann.lee@newco.example", {"name": "Ann Lee"}, crm_id=made.crm_id)]
    )
    assert moved.crm_id == made.crm_id and not moved.created
    person = pipedrive_emulator.persons()[0]
    assert [(e["value"], e["primary"]) for e in person["emails"]] == [
        ("ann.lee@newco.example", True),
        ("ann@example.com", False),
    ]
    assert calls(pipedrive_emulator, "GET /api/v2/persons/search") == 1  # only the first, unlinked write searched


def test_a_stale_stored_id_is_a_not_found_outcome(pipedrive_emulator, pipedrive_connector):
    [made] = pipedrive_connector.upsert_people("contact", [ann()])
    pipedrive_emulator.delete_in_ui("person", int(made.crm_id))
    outcomes = pipedrive_connector.upsert_people("contact", [ann(crm_id=made.crm_id), ann("k2", crm_id="not-an-id")])
    assert all(isinstance(o.error, NotFound) for o in outcomes)
    assert pipedrive_emulator.persons() == []


def test_a_person_without_an_email_fails_alone_without_a_call(pipedrive_emulator, pipedrive_connector):
    outcomes = pipedrive_connector.upsert_people("contact", [PersonInput("k0", " ", {"name": "Nobody"}), ann()])
    assert outcomes[0].error.code == "no_email" and outcomes[1].created
    assert calls(pipedrive_emulator, "GET /api/v2/persons/search") == 1


def test_one_refused_person_keeps_pipedrives_message_and_spares_the_rest(pipedrive_emulator, pipedrive_connector):
    ref = pipedrive_emulator.add_custom_field("person", "External ref", unique=True)["field_code"]
    pipedrive_connector.upsert_people("contact", [ann(**{ref: "R-1"})])
    outcomes = pipedrive_connector.upsert_people(
        "contact", [ann("k2", "clash@example.com", **{ref: "R-1"}), ann("k3", "fine@example.com", **{ref: "R-3"})]
    )
    assert isinstance(outcomes[0].error, RecordError) and "must be unique" in outcomes[0].error.message
    assert outcomes[1].created and pipedrive_emulator.find_person("clash@example.com") is None


def test_custom_fields_go_by_hash_with_option_ids_numbers_and_dates(pipedrive_emulator, pipedrive_connector):
    tier = pipedrive_emulator.add_custom_field("person", "Tier", "enum", ["Gold", "Silver"])
    topics = pipedrive_emulator.add_custom_field("person", "Topics", "set", ["pricing", "security", "api"])
    score = pipedrive_emulator.add_custom_field("person", "Capsule score", "double")["field_code"]
    seen = pipedrive_emulator.add_custom_field("person", "First seen", "date")["field_code"]
    [outcome] = pipedrive_connector.upsert_people(
        "contact", [ann(**{tier["field_code"]: "gold", topics["field_code"]: "pricing;api", score: "42.5", seen: AT})]
    )
    custom = pipedrive_emulator.persons()[0]["custom_fields"]
    ids = {o["label"]: o["id"] for o in tier["options"] + topics["options"]}
    assert custom[tier["field_code"]] == ids["Gold"] and custom[topics["field_code"]] == [ids["pricing"], ids["api"]]
    assert (custom[score], custom[seen]) == (42.5, "2026-03-04")
    record = pipedrive_connector.find_by_id("contact", outcome.crm_id)
    assert record.fields[tier["field_code"]] == "Gold" and record.fields[topics["field_code"]] == ["pricing", "api"]
    [bad] = pipedrive_connector.upsert_people("contact", [ann(**{tier["field_code"]: "Platinum"})])
    assert bad.error.code == "bad_option" and "Gold, Silver" in bad.error.message


def test_the_same_email_twice_in_one_call_is_written_to_one_person(pipedrive_emulator, pipedrive_connector):
    outcomes = pipedrive_connector.upsert_people("contact", [ann("a"), ann("b", "ANN@example.com", name="Ann B")])
    assert outcomes[0].crm_id == outcomes[1].crm_id and [o.created for o in outcomes] == [True, False]
    assert [p["name"] for p in pipedrive_emulator.persons()] == ["Ann B"]


def test_an_organization_name_is_found_or_created_once(pipedrive_emulator, pipedrive_connector):
    acme = pipedrive_emulator.create_record("organization", {"name": "Acme"})
    pipedrive_connector.upsert_people(
        "contact",
        [
            ann("a", org_name="ACME"),
            ann("b", "bo@example.com", org_name="Northwind"),
            ann("c", "cy@example.com", org_name="Northwind"),
        ],
    )
    orgs = {o["name"]: o["id"] for o in pipedrive_emulator.organizations()}
    assert set(orgs) == {"Acme", "Northwind"} and orgs["Acme"] == acme["id"]
    by_email = {p["emails"][0]["value"]: p["org_id"] for p in pipedrive_emulator.persons()}
    assert by_email == {
        "ann@example.com": acme["id"],
        "bo@example.com": orgs["Northwind"],
        "cy@example.com": orgs["Northwind"],
    }
    assert calls(pipedrive_emulator, "GET /api/v2/organizations/search") == 2


def test_a_lead_connection_files_one_lead_per_new_person(pipedrive_emulator, make_pipedrive_connector):
    connector = make_pipedrive_connector(record_type="lead")
    [made] = connector.upsert_people("lead", [ann()])
    connector.upsert_people("lead", [ann(crm_id=made.crm_id)])  # a stored link never files again
    found = pipedrive_emulator.create_record("person", {"name": "Bo", "emails": [{"value": "bo@example.com"}]})
    connector.upsert_people("lead", [ann("k2", "bo@example.com", name="Bo")])
    connector.upsert_people("lead", [ann("k2", "bo@example.com", name="Bo")])  # found again: it has its lead
    leads = pipedrive_emulator.leads()
    assert sorted(lead["person_id"] for lead in leads) == sorted([int(made.crm_id), found["id"]])
    assert {lead["title"] for lead in leads} == {"Ann Lee", "Bo"}


class InFlight:
    """Counts the calls on the wire at once, through the seam's hooks (as the engine's limiter plugs in)."""

    def __init__(self) -> None:
        self.now, self.most, self.lock = 0, 0, threading.Lock()

    def before(self, method: str, url: str) -> None:
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)

    def after(self, response, snapshot) -> None:
        with self.lock:
            self.now -= 1


def test_300_people_are_written_concurrently_without_one_429(sandbox_ca, v1_gone):
    app = PipedriveEmulator(api_token_limit=160, v1_deprecated_gone=v1_gone)
    gauge = InFlight()
    with (
        EmulatorServer(app, tls=sandbox_ca) as server,
        override_settings(CRM_ENDPOINTS={"pipedrive": {"api_url": server.url}}, CRM_CA_BUNDLE=str(sandbox_ca.ca_path)),
    ):
        forget_process_caches()
        credentials = ConnectionCredentials(access_token=app.issue_api_token())
        http = PipedriveConnector.make_http(credentials, before_request=gauge.before, after_response=gauge.after)
        connector = PipedriveConnector(credentials, http=http)
        inputs = [PersonInput(f"k{i}", f"p{i}@example.com", {"name": f"P {i}"}) for i in range(300)]
        outcomes = connector.upsert_people("contact", inputs)
    assert all(o.ok and o.created for o in outcomes) and len(app.persons()) == 300
    assert app.rate_limited_count == 0 and app.api_calls == 601  # the fields once, then a search and a create each
    assert 1 < gauge.most <= 4 and app.v1_calls == 0


# ---------------------------------------------------------------------------------------------
# Reading


def test_find_by_email_is_one_exact_search_per_address(pipedrive_emulator, pipedrive_connector):
    pipedrive_connector.upsert_people("contact", [ann(), ann("k2", "bo@example.com", name="Bo")])
    found = pipedrive_connector.find_by_email("contact", ["ANN@example.com", "bo@example.com", "nobody@example.com"])
    assert set(found) == {"ann@example.com", "bo@example.com"} and found["bo@example.com"].fields["name"] == "Bo"
    assert calls(pipedrive_emulator, "GET /api/v2/persons/search") == 2 + 3
    with pytest.raises(ConfigurationError):
        pipedrive_connector.find_by_email("deal", ["x@example.com"])


def test_find_by_id_reads_one_person_or_none(pipedrive_emulator, pipedrive_connector):
    [made] = pipedrive_connector.upsert_people("contact", [ann(phones="+3725551234")])
    record = pipedrive_connector.find_by_id("contact", made.crm_id, properties=["name"])
    assert record.crm_id == made.crm_id and record.fields["emails"] == "ann@example.com"
    assert record.fields["phones"] == "+3725551234" and record.modified_at is not None
    assert record.fields["marketing_unsubscribed"] is False
    assert pipedrive_connector.find_by_id("contact", "99999") is None


def test_set_fields_patches_one_person(pipedrive_emulator, pipedrive_connector):
    [made] = pipedrive_connector.upsert_people("contact", [ann()])
    owner = PipedriveConnector.spec.owner_field
    pipedrive_connector.set_fields(
        "contact", made.crm_id, {"name": "Dr Ann Lee", "marketing_status": "subscribed", owner: str(UI_USER_ID)}
    )
    person = pipedrive_emulator.persons()[0]
    assert (person["name"], person["marketing_status"], person[owner]) == ("Dr Ann Lee", "subscribed", UI_USER_ID)
    with pytest.raises(RecordError, match="no writable person field"):
        pipedrive_connector.set_fields("contact", made.crm_id, {"first_name": "Ann"})


def test_identity_names_the_company_and_user(pipedrive_emulator, make_pipedrive_connector):
    for token in (pipedrive_emulator.issue_api_token(), pipedrive_emulator.issue_oauth_token().access_token):
        identity = make_pipedrive_connector(token).identity()
        assert identity.account_id == str(pipedrive_emulator.company_id)
        assert (identity.account_name, identity.user_email) == (
            pipedrive_emulator.company_name,
            pipedrive_emulator.user_email,
        )
    assert calls(pipedrive_emulator, "GET /v1/users/me") == 2  # v1 is users' supported API


def test_api_tokens_travel_in_a_header_and_oauth_tokens_as_bearer(pipedrive_emulator, make_pipedrive_connector):
    api_token, oauth = pipedrive_emulator.issue_api_token(), pipedrive_emulator.issue_oauth_token().access_token
    for token, header in ((api_token, "x-api-token"), (oauth, "Authorization")):
        response = make_pipedrive_connector(token).http.request("GET", "/api/v2/persons")
        assert token in response.request.headers[header] and token not in response.request.url


def test_describe_fields_maps_types_options_hashes_and_read_only(pipedrive_emulator, pipedrive_connector):
    tier = pipedrive_emulator.add_custom_field("person", "Tier", "enum", ["Gold", "Silver"])
    fields = {f.name: f for f in pipedrive_connector.describe_fields("contact")}
    assert fields[tier["field_code"]].custom and fields[tier["field_code"]].label == "Tier"
    assert (fields[tier["field_code"]].type, fields[tier["field_code"]].options) == ("picklist", ("Gold", "Silver"))
    assert fields["emails"].type == "email" and fields["phones"].type == "phone" and not fields["emails"].read_only
    assert fields["name"].max_length == 255 and not fields["name"].required
    assert fields["first_name"].read_only and fields["update_time"].read_only
    assert fields["marketing_status"].options == ("no_consent", "unsubscribed", "subscribed", "archived")
    assert fields["org_name"].type == "string" and "id" not in fields
    deal = {f.name: f for f in pipedrive_connector.describe_fields("deal")}
    assert deal["value"].type == "number" and deal["stage_id"].type == "other"
    pipedrive_emulator.add_custom_field("activity", "Made in the UI")
    activity = {f.label: f for f in pipedrive_connector.describe_fields("activity")}
    assert activity["Made in the UI"].custom and activity["Done"].type == "boolean"
    assert [f.name for f in pipedrive_connector.describe_fields("note")] == ["content"]
    with pytest.raises(ConfigurationError):
        pipedrive_connector.describe_fields("campaign")


def test_create_custom_field_finds_by_name_before_creating(pipedrive_emulator, pipedrive_connector):
    grade = presets.CustomFieldSpec(name="capsule_grade", label="Capsule grade", type="picklist", options=("A", "B"))
    made = pipedrive_connector.create_custom_field("contact", grade)
    assert made == pipedrive_connector.create_custom_field("contact", grade)
    assert (made.name, made.custom, made.options) == ("capsule_grade", True, ("A", "B"))  # our field: its alias
    tier = pipedrive_connector.create_custom_field("contact", presets.CustomFieldSpec("tier", "Tier", "string"))
    assert len(tier.name) == 40 and tier.label == "Tier"  # anyone else's: its hash
    odd = pipedrive_connector.create_custom_field("contact", presets.CustomFieldSpec("capsule_url", "Link", "url"))
    assert odd.name == "capsule_url" and odd.label == "Capsule url"
    codes = {f["field_name"]: f["field_code"] for f in pipedrive_emulator.records.fields.fields["person"]}
    assert all(len(codes[name]) == 40 for name in ("Capsule grade", "Tier", "Capsule url"))
    assert calls(pipedrive_emulator, "POST /api/v2/personFields") == 3
    with pytest.raises(ConfigurationError):
        pipedrive_connector.create_custom_field("activity", grade)


def test_our_capsule_fields_are_named_by_alias_and_written_by_hash(pipedrive_emulator, pipedrive_connector):
    score = pipedrive_emulator.add_custom_field("person", "Capsule score", "double")["field_code"]
    names = {f.name for f in pipedrive_connector.describe_fields("contact")}
    assert "capsule_score" in names and score not in names
    [made] = pipedrive_connector.upsert_people("contact", [ann(capsule_score=42)])
    assert pipedrive_emulator.persons()[0]["custom_fields"][score] == 42
    assert pipedrive_connector.find_by_id("contact", made.crm_id).fields["capsule_score"] == 42


@pytest.mark.django_db
def test_provisioning_creates_the_capsule_fields_once_and_switches_their_rows_on(
    account, pipedrive_emulator, make_pipedrive_connection
):
    connection = make_pipedrive_connection(account, "token")
    report = provision_fields(connection, confirmed=True)
    assert sorted(spec.name for spec in report.created) == sorted(
        spec.name for spec in presets.object_preset("pipedrive", "contact").custom_fields
    )
    assert report.complete and "capsule_score" in report.enabled_rows
    created = {f["field_name"]: f for f in pipedrive_emulator.records.fields.fields["person"] if f["is_custom_field"]}
    assert set(created) == {spec.label for spec in report.created}
    assert (
        created["Capsule last engaged"]["field_type"] == "date" and created["Capsule score"]["field_type"] == "double"
    )
    again = provision_fields(connection, confirmed=True)
    assert again.created == [] and len(again.existing) == 5
    assert calls(pipedrive_emulator, "POST /api/v2/personFields") == 5


def test_changes_since_pages_through_a_shared_update_time_without_gaps_or_repeats(
    pipedrive_emulator, pipedrive_connector
):
    outcomes = pipedrive_connector.upsert_people(
        "contact", [ann(f"k{i}", f"p{i}@example.com", name=f"P {i}") for i in range(7)]
    )
    ids = sorted(int(o.crm_id) for o in outcomes)
    pipedrive_emulator.set_update_time("person", ids[:2], "2026-05-01T09:00:00Z")
    pipedrive_emulator.set_update_time("person", ids[2:6], "2026-05-01T09:00:01Z")  # one second, four records
    pipedrive_emulator.set_update_time("person", ids[6:], "2026-05-01T09:00:02Z")
    cursor, seen = ChangeCursor(dt.datetime(2026, 5, 1, 8, 59, tzinfo=dt.UTC)), []
    while True:
        page = pipedrive_connector.changes_since("contact", cursor, limit=3)
        seen += [int(r.crm_id) for r in page.records]
        cursor = page.next_cursor
        if not page.has_more:
            break
    assert seen == ids
    assert pipedrive_connector.changes_since("contact", cursor, limit=3).records == []
    inside = pipedrive_connector.changes_since(
        "contact", ChangeCursor(dt.datetime(2026, 5, 1, 9, 0, 1, tzinfo=dt.UTC), str(ids[3])), limit=10
    )
    assert [int(r.crm_id) for r in inside.records] == ids[4:]
    with pytest.raises(ConfigurationError):
        pipedrive_connector.changes_since("activity", None)


# ---------------------------------------------------------------------------------------------
# Engagement: activities, tasks, notes, deals


def activity(key: str, person: str, subject: str = "Viewed capsule “Pricing tour”") -> ActivityInput:
    return ActivityInput(key, person, "contact", "capsule_viewed", subject, f"{subject}\nWhen: 2026-03-04", AT)


def test_activities_are_written_once_however_often_replayed(pipedrive_emulator, pipedrive_connector):
    [person] = pipedrive_connector.upsert_people("contact", [ann()])
    first = pipedrive_connector.log_activities(
        [activity("capsule-evt-1", person.crm_id), activity("capsule-evt-2", person.crm_id, "Clicked “Demo”")]
    )
    again = pipedrive_connector.log_activities(
        [activity("capsule-evt-1", person.crm_id), activity("capsule-evt-2", person.crm_id, "Clicked “Demo”")]
    )
    assert all(o.created for o in first) and not any(o.created for o in again)
    assert [o.crm_id for o in again] == [o.crm_id for o in first]
    made = pipedrive_emulator.activities()
    assert len(made) == 2 and {a["type"] for a in made} == {"capsule"} and all(a["done"] for a in made)
    assert made[0]["due_date"] == "2026-03-04" and made[0]["due_time"] == "10:30"
    assert made[0]["note"].endswith("[capsule:capsule-evt-1]") and "&lt;" not in made[0]["subject"]
    assert calls(pipedrive_emulator, "GET /api/v2/activities") == 2  # one list per person per batch
    assert calls(pipedrive_emulator, "POST /v1/activityTypes") == 1


def test_without_admin_rights_activities_are_done_tasks(pipedrive_emulator, pipedrive_connector):
    pipedrive_emulator.records.users[1]["is_admin"] = 0
    [person] = pipedrive_connector.upsert_people("contact", [ann()])
    [outcome] = pipedrive_connector.log_activities([activity("capsule-evt-1", person.crm_id)])
    assert outcome.created and pipedrive_emulator.activities()[0]["type"] == "task"


def test_an_activity_for_a_missing_person_fails_alone(pipedrive_emulator, pipedrive_connector):
    [person] = pipedrive_connector.upsert_people("contact", [ann()])
    outcomes = pipedrive_connector.log_activities(
        [activity("e1", "99999"), activity("e2", ""), activity("e3", person.crm_id)]
    )
    assert isinstance(outcomes[0].error, RecordError) and "not found" in outcomes[0].error.message
    assert outcomes[1].error.code == "no_person" and outcomes[2].created


def test_tasks_are_open_task_activities_for_their_owner(pipedrive_emulator, pipedrive_connector):
    [person] = pipedrive_connector.upsert_people("contact", [ann()])
    task = TaskInput("trigger:1:0", person.crm_id, "contact", "Call Ann", "Hot lead", AT, owner_id=str(UI_USER_ID))
    assert pipedrive_connector.create_tasks([task])[0].created
    assert not pipedrive_connector.create_tasks([task])[0].created
    [made] = pipedrive_emulator.activities()
    assert (made["type"], made["done"], made["owner_id"], made["subject"]) == ("task", False, UI_USER_ID, "Call Ann")


def test_notes_go_through_the_v1_library_once_per_key(pipedrive_emulator, pipedrive_connector, monkeypatch):
    import pipedrive.client

    def no_module_level_requests(*args, **kwargs):
        raise AssertionError("pipedrive-python-lib sent a request outside the seam")

    monkeypatch.setattr(pipedrive.client.requests, "request", no_module_level_requests)
    [person] = pipedrive_connector.upsert_people("contact", [ann()])
    note = NoteInput("capsule-evt-7", person.crm_id, "contact", "Asked: <SSO>?\nAnswered: yes", AT)
    assert pipedrive_connector.add_notes([note])[0].created
    assert not pipedrive_connector.add_notes([note])[0].created
    [made] = pipedrive_emulator.notes()
    assert made["content"] == "Asked: &lt;SSO&gt;?<br>Answered: yes<br>[capsule:capsule-evt-7]"
    assert made["add_time"] == "2026-03-04 10:30:00" and made["person_id"] == int(person.crm_id)
    assert calls(pipedrive_emulator, "GET /v1/notes") == 2 and calls(pipedrive_emulator, "POST /v1/notes") == 1


def test_the_v1_library_keeps_the_seams_timeout(pipedrive_emulator, pipedrive_token):
    credentials = ConnectionCredentials(access_token=pipedrive_token)
    connector = PipedriveConnector(credentials, http=PipedriveConnector.make_http(credentials, timeout=0.3))
    pipedrive_emulator.faults.inject("slow", path_prefix="/v1/users", seconds=1.0)
    with pytest.raises(RetryableError, match="timeout") as error:
        connector.identity()
    assert error.value.code == "timeout"


def test_a_deal_is_keyed_by_the_conversion_in_a_custom_field(pipedrive_emulator, pipedrive_connector):
    [person] = pipedrive_connector.upsert_people("contact", [ann()])
    deal = DealInput(
        "capsule-evt-9", person.crm_id, "contact", "Pricing tour — Acme", 1200.0, "usd", close_date=AT.date()
    )
    made = pipedrive_connector.upsert_deal(deal)
    same = pipedrive_connector.upsert_deal(deal)
    changed = pipedrive_connector.upsert_deal(DealInput(**{**deal.__dict__, "amount": 1500.0}))
    assert made.created and (same.crm_id, changed.crm_id) == (made.crm_id, made.crm_id) and not same.created
    [stored] = pipedrive_emulator.deals()
    field = next(
        f for f in pipedrive_emulator.records.fields.fields["deal"] if f["field_name"] == "Capsule conversion id"
    )
    assert stored["custom_fields"][field["field_code"]] == "capsule-evt-9" and len(field["field_code"]) == 40
    assert (stored["value"], stored["currency"], stored["status"]) == (1500.0, "USD", "won")
    assert calls(pipedrive_emulator, "PATCH /api/v2/deals/{id}") == 1  # the unchanged replay wrote nothing
    assert calls(pipedrive_emulator, "POST /api/v2/dealFields") == 1


def test_a_deal_without_its_key_field_and_rights_is_a_configuration_error(pipedrive_emulator, pipedrive_connector):
    [person] = pipedrive_connector.upsert_people("contact", [ann()])
    pipedrive_emulator.records.users[1]["is_admin"] = 0
    with pytest.raises(ConfigurationError, match="Capsule conversion id"):
        pipedrive_connector.upsert_deal(DealInput("e9", person.crm_id, "contact", "Deal", None, None))


# ---------------------------------------------------------------------------------------------
# Errors and rate limits


def test_a_429_is_rate_limited_after_pipedrives_reset(pipedrive_emulator, pipedrive_connector):
    pipedrive_emulator.faults.inject("rate_limit")
    with pytest.raises(RateLimited) as error:
        pipedrive_connector.describe_fields("contact")
    assert error.value.retry_after == 2.0 and error.value.status == 429
    assert pipedrive_connector.http.rate_limit.remaining == 0


def test_a_429_in_the_middle_of_a_batch_is_raised_for_the_whole_batch(pipedrive_emulator, pipedrive_connector):
    pipedrive_emulator.faults.inject("rate_limit", path_prefix="/api/v2/persons/search")
    with pytest.raises(RateLimited):
        pipedrive_connector.upsert_people("contact", [ann()])


def test_a_spent_daily_budget_waits_for_utc_midnight(sandbox_ca):
    app = PipedriveEmulator(daily_token_budget=5)
    with (
        EmulatorServer(app, tls=sandbox_ca) as server,
        override_settings(CRM_ENDPOINTS={"pipedrive": {"api_url": server.url}}, CRM_CA_BUNDLE=str(sandbox_ca.ca_path)),
    ):
        connector = PipedriveConnector(ConnectionCredentials(access_token=app.issue_api_token()))
        with pytest.raises(RateLimited) as error:
            connector.describe_fields("contact")
    assert error.value.retry_after > 2.0 and "budget" in error.value.message


def test_rate_limit_headers_are_read_after_every_call(pipedrive_emulator, pipedrive_connector):
    pipedrive_connector.describe_fields("contact")
    snapshot = pipedrive_connector.http.rate_limit
    assert (snapshot.limit, snapshot.remaining, snapshot.window_seconds) == (1000, 999, 2.0)
    assert snapshot.daily_limit == pipedrive_emulator.daily_token_budget and snapshot.daily_remaining > 0
    assert snapshot.reset_seconds >= 1


def test_a_bad_token_is_an_auth_error_with_pipedrives_reason(pipedrive_emulator, make_pipedrive_connector):
    with pytest.raises(AuthError, match="unauthorized access"):
        make_pipedrive_connector("0" * 40).identity()
    issued = pipedrive_emulator.issue_oauth_token()
    pipedrive_emulator.oauth.expire(issued.access_token)
    with pytest.raises(AuthError, match="expired"):
        make_pipedrive_connector(issued.access_token).identity()


def test_server_errors_and_dropped_connections_are_retryable(pipedrive_emulator, pipedrive_connector):
    pipedrive_emulator.faults.inject("server_error")
    with pytest.raises(RetryableError) as error:
        pipedrive_connector.identity()
    assert error.value.status == 500 and not isinstance(error.value, RateLimited)
    pipedrive_emulator.faults.inject("drop")
    with pytest.raises(RetryableError, match="could not connect"):
        pipedrive_connector.identity()


def test_a_server_error_on_one_persons_call_is_that_persons_retryable_outcome(pipedrive_emulator, pipedrive_connector):
    pipedrive_connector.describe_fields("contact")  # the field definitions are read before the people
    pipedrive_emulator.faults.inject("server_error", path_prefix="/api/v2/persons/search")
    outcomes = pipedrive_connector.upsert_people("contact", [ann()])
    assert outcomes[0].error.retryable and outcomes[0].error.status == 500
    assert pipedrive_connector.upsert_people("contact", [ann()])[0].created


def test_a_refusal_is_a_record_error_with_pipedrives_text(pipedrive_connector):
    with pytest.raises(RecordError, match="must be between 1 and 500"):
        pipedrive_connector.http.json("GET", "/api/v2/persons", params={"limit": 9999})


def test_webhooks_need_admin_rights_which_is_a_configuration_error(pipedrive_emulator, pipedrive_connector):
    pipedrive_emulator.records.users[1]["is_admin"] = 0
    with pytest.raises(ConfigurationError, match="permission"):
        pipedrive_connector.register_webhooks("https://sync.example.com/webhooks/crm/pipedrive/1/", "s3cret")


def test_no_token_reaches_a_log_line_or_an_error_text(pipedrive_emulator, make_pipedrive_connector, caplog):
    for name in [None, *logging.root.manager.loggerDict]:
        caplog.set_level(logging.DEBUG, logger=name)
    token = pipedrive_emulator.issue_api_token()
    connector = make_pipedrive_connector(token)
    connector.upsert_people("contact", [ann()])
    connector.add_notes(
        [
            NoteInput(
                "n1",
                connector.find_by_email("contact", ["ann@example.com"])["ann@example.com"].crm_id,
                "contact",
                "hi",
                AT,
            )
        ]
    )
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert "/api/v2/persons" in text and token not in text
    with pytest.raises(AuthError) as error:
        make_pipedrive_connector("f" * 40).identity()
    assert "f" * 40 not in str(error.value)


# ---------------------------------------------------------------------------------------------
# Webhooks in


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.mark.parametrize(
    ("headers", "ok"),
    [
        (basic(webhooks.WEBHOOK_USER, "s3cret"), True),
        (basic(webhooks.WEBHOOK_USER, "wrong"), False),
        (basic("someone", "s3cret"), False),
        ({"Authorization": "Basic !!not-base64!!"}, False),
        ({"Authorization": "Bearer s3cret"}, False),
        ({}, False),
    ],
)
def test_webhook_basic_credentials_are_checked(headers, ok):
    assert PipedriveConnector.verify_webhook("POST", "https://x/", headers, b"{}", "s3cret") is ok
    assert PipedriveConnector.verify_webhook("POST", "https://x/", headers, b"{}", "") is False


def test_webhook_bodies_become_inbound_changes_with_their_source(pipedrive_emulator, pipedrive_connector):
    [person] = pipedrive_connector.upsert_people("contact", [ann()])
    pipedrive_connector.upsert_people("contact", [ann(name="Annie", crm_id=person.crm_id)])
    pipedrive_emulator.edit_in_ui("person", int(person.crm_id), {"marketing_status": "unsubscribed"})
    pipedrive_emulator.create_record("deal", {"title": "Big", "person_id": int(person.crm_id)})
    pipedrive_emulator.delete_in_ui("person", int(person.crm_id))
    events = [json.dumps(e).encode() for e in pipedrive_emulator.events_for_changes()]
    created, ours, theirs, deal, deleted = (PipedriveConnector.parse_webhook(e)[0] for e in events)
    assert (created.change, created.object_kind, created.crm_id) == ("created", "contact", person.crm_id)
    assert ours.properties == {"name": "Annie"} and ours.source == "api:own"
    assert PipedriveConnector.is_own_change(ours, None) and not PipedriveConnector.is_own_change(theirs, None)
    assert theirs.properties == {"marketing_status": "unsubscribed", "marketing_unsubscribed": True}
    assert theirs.source == f"app:{UI_USER_ID}" and theirs.occurred_at is not None
    assert (deal.object_kind, deal.properties["associated_people"]) == ("deal", [person.crm_id])
    assert deleted.change == "deleted" and deleted.event_id != created.event_id
    assert PipedriveConnector.preference_fields == {"marketing_unsubscribed": "unsubscribed"}


@pytest.mark.parametrize(
    ("body", "parsed"),
    [
        (b'{"meta": {"action": "change", "entity": "product", "entity_id": "1", "version": "2.0"}}', []),
        (b'{"meta": {"action": "updated", "object": "person", "v": 1}, "current": {}}', []),
        (b'{"meta": {"action": "change", "entity": "person", "entity_id": "7", "version": "1.0"}}', []),
    ],
)
def test_other_objects_and_v1_bodies_are_skipped(body, parsed):
    assert PipedriveConnector.parse_webhook(body) == parsed


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"data": {}}'])
def test_a_body_that_is_not_a_v2_webhook_is_refused(body):
    with pytest.raises(ValueError):
        PipedriveConnector.parse_webhook(body)


def test_webhooks_are_registered_for_persons_and_deals_and_removed(pipedrive_emulator, pipedrive_connector):
    url = "https://sync.example.com/webhooks/crm/pipedrive/1/"
    first = pipedrive_connector.register_webhooks(url, "s3cret")
    ref = pipedrive_connector.register_webhooks(url, "n3w")  # again: the earlier ones are replaced
    hooks = pipedrive_emulator.webhooks()
    assert sorted(h["event_object"] for h in hooks) == ["deal", "person"] and ref != first
    assert {(h["http_auth_user"], h["http_auth_password"], h["version"], h["event_action"]) for h in hooks} == {
        (webhooks.WEBHOOK_USER, "n3w", "2.0", "*")
    }
    pipedrive_connector.unregister_webhooks(ref)
    pipedrive_connector.unregister_webhooks(ref)  # already gone: no error
    assert pipedrive_emulator.webhooks() == []


# ---------------------------------------------------------------------------------------------
# Tokens, OAuth through the owner pages, mapping templates


def test_a_token_answer_becomes_a_token_set_with_the_api_domain():
    tokens = PipedriveConnector.parse_token_response(
        {
            "access_token": "v1u:abc",
            "refresh_token": "r1",
            "expires_in": 3600,
            "token_type": "Bearer",
            "scope": "base,deals:full",
            "api_domain": "https://acme.pipedrive.com/",
        }
    )
    assert tokens.api_base_url == "https://acme.pipedrive.com" and tokens.scopes == ("base", "deals:full")
    assert tokens.refresh_token == "r1" and tokens.expires_at > dt.datetime.now(dt.UTC)


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        ({"success": False, "message": "Invalid grant", "error": "invalid_grant"}, "invalid_grant"),
        ({"access_token": "x", "expires_in": "soon"}, "invalid_response"),
        ({"access_token": "x", "api_domain": "ftp://nowhere"}, "invalid_response"),
    ],
)
def test_a_token_answer_without_a_usable_token_is_an_oauth_error(payload, error):
    from integrations.errors import OAuthError

    with pytest.raises(OAuthError) as raised:
        PipedriveConnector.parse_token_response(payload)
    assert raised.value.error == error


@pytest.fixture
def admin_client(client, account, make_member):
    client.force_login(make_member(account, Role.ADMIN))
    return client


@pytest.mark.django_db
def test_connecting_through_the_owner_pages_uses_basic_client_auth_and_keeps_the_api_domain(
    admin_client, account, pipedrive_emulator, caplog
):
    for name in [None, *logging.root.manager.loggerDict]:
        caplog.set_level(logging.DEBUG, logger=name)
    start = admin_client.post(
        reverse("integrations:start_oauth", kwargs={"account_slug": account.slug, "provider": "pipedrive"})
    )
    authorize = start["Location"]
    assert urlsplit(authorize).path == "/oauth/authorize" and authorize.startswith(pipedrive_emulator.base_url)
    query = {k: v[0] for k, v in parse_qs(urlsplit(authorize).query).items()}
    form = {**query, "decision": "allow"}
    back = requests.post(
        pipedrive_emulator.base_url + "/oauth/authorize",
        data=form,
        allow_redirects=False,
        timeout=10,
        verify=settings.CRM_CA_BUNDLE,
    )
    location = urlsplit(back.headers["Location"])
    response = admin_client.get(location.path, parse_qs(location.query))
    assert response.status_code == 302
    page = admin_client.get(response["Location"]).content.decode()
    assert f"Connected to {pipedrive_emulator.company_name}" in page
    connection = Connection.objects.get(account=account, provider="pipedrive")
    assert connection.auth_kind == AuthKind.OAUTH and connection.status == ConnectionStatus.ACTIVE
    assert connection.api_base_url == pipedrive_emulator.base_url
    assert connection.crm_account_id == str(pipedrive_emulator.company_id)
    assert connection.refresh_token in pipedrive_emulator.oauth.refresh_tokens
    [token_call] = pipedrive_emulator.requests_to("POST", r"^/oauth/token$")
    assert token_call.status == 200  # the emulator refuses any other client authentication than Basic
    secrets = [*pipedrive_emulator.secrets_issued, PIPEDRIVE_CLIENT_SECRET]
    assert not [r for r in caplog.records if any(s in r.getMessage() for s in secrets)]
    assert PIPEDRIVE_CLIENT_ID in authorize


@pytest.mark.django_db
def test_a_refresh_stores_the_rotated_refresh_token_and_disconnect_revokes(
    admin_client, account, pipedrive_emulator, make_pipedrive_connection
):
    from integrations import credentials

    connection = make_pipedrive_connection(account, "oauth")
    old = connection.refresh_token
    refreshed = credentials.refresh_after_rejection(connection)
    assert refreshed.refresh_token != old and refreshed.api_base_url == pipedrive_emulator.base_url
    assert old not in pipedrive_emulator.oauth.refresh_tokens and pipedrive_emulator.oauth.refresh_calls == 1
    url = reverse("integrations:disconnect", kwargs={"account_slug": account.slug, "connection_id": connection.pk})
    text = admin_client.get(admin_client.post(url)["Location"]).content.decode()
    assert "the CRM revoked our access" in text
    [revoke] = pipedrive_emulator.requests_to("POST", r"^/oauth/revoke$")
    assert revoke.status == 200 and pipedrive_emulator.oauth.token_state(refreshed.access_token) == "invalid"


@pytest.mark.django_db
def test_the_token_form_connects_with_an_api_token(admin_client, account, pipedrive_emulator):
    token = pipedrive_emulator.issue_api_token()
    url = reverse("integrations:connect_token", kwargs={"account_slug": account.slug, "provider": "pipedrive"})
    text = admin_client.get(admin_client.post(url, {"pipedrive-token": token})["Location"]).content.decode()
    assert f"Connected to {pipedrive_emulator.company_name}" in text
    connection = Connection.objects.get(account=account)
    assert connection.auth_kind == AuthKind.API_KEY and connection.access_token == token
    assert connection.connector().identity().user_email == pipedrive_emulator.user_email


@pytest.mark.django_db
@pytest.mark.parametrize("record_type", ["contact", "lead"])
def test_the_standard_mapping_and_every_template_validate_against_the_sandbox(
    account, pipedrive_emulator, make_pipedrive_connection, record_type
):
    connection = make_pipedrive_connection(account, "token", record_type=record_type)
    FieldMapping.objects.filter(connection=connection).delete()  # made for contacts when it connected
    refresh_schema(connection, record_type)
    assert apply_standard_mapping(connection).rows and problems_for(connection) == []
    for name in presets.industry_templates():
        assert presets.template_rows("pipedrive", record_type, presets.industry_template(name))
        apply_template(connection, name)
        assert problems_for(connection) == [], (name, [str(p) for p in problems_for(connection)])


@pytest.mark.django_db
def test_a_delivery_to_our_webhook_url_is_taken_only_with_the_registered_credentials(
    client, account, pipedrive_emulator, make_pipedrive_connection
):
    from integrations.inbound.registration import register_webhooks_for
    from integrations.models import InboundEvent

    connection = make_pipedrive_connection(account, "token")
    registration = register_webhooks_for(connection)
    connection.refresh_from_db()
    [hook] = [h for h in pipedrive_emulator.webhooks() if h["event_object"] == "person"]
    assert hook["subscription_url"] == registration.callback_url
    assert hook["http_auth_password"] == connection.webhook_secret
    person = pipedrive_emulator.create_record("person", {"name": "Ann", "emails": [{"value": "ann@example.com"}]})
    pipedrive_emulator.edit_in_ui("person", person["id"], {"name": "Ann Lee"})
    body = json.dumps(pipedrive_emulator.events_for_changes()[-1])
    path = urlsplit(registration.callback_url).path

    def deliver(password: str):
        auth = pipedrive_emulator.basic_header(hook["http_auth_user"], password)
        return client.post(path, body, content_type="application/json", HTTP_AUTHORIZATION=auth)

    assert deliver("wrong").status_code == 401
    taken = deliver(connection.webhook_secret)
    assert taken.status_code == 200 and taken.json() == {"received": 1, "duplicates": 0}
    assert deliver(connection.webhook_secret).json() == {"received": 0, "duplicates": 1}
    event = InboundEvent.objects.get(connection=connection)
    assert (event.crm_id, event.change, event.source) == (str(person["id"]), "updated", f"app:{UI_USER_ID}")
