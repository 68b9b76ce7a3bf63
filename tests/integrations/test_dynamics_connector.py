"""The Dynamics 365 connector against the Dataverse sandbox over real HTTPS: every operation, its
call count, its idempotency, the error taxonomy, change tracking, OAuth and connect_crm."""

from __future__ import annotations

import datetime as dt
import io
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.core.management import CommandError, call_command
from django.urls import reverse

from crmsync.models import Role
from integrations import credentials, oauth
from integrations.connector import (
    ActivityInput,
    ChangeCursor,
    DealInput,
    InboundChange,
    NoteInput,
    PersonInput,
    TaskInput,
)
from integrations.errors import AuthError, ConfigurationError, NotFound, OAuthError, RateLimited, RetryableError
from integrations.models import AuthKind, Connection
from integrations.providers.dynamics.connector import DynamicsConnector
from integrations.registry import get_provider
from mapping.presets import CustomFieldSpec
from tests.integrations.dynamics_fixtures import *  # noqa: F403
from tests.integrations.dynamics_fixtures import DYNAMICS_CLIENT_ID

WHEN = dt.datetime(2025, 3, 4, 10, 30, tzinfo=dt.UTC)


def person(key: str, email: str, crm_id: str | None = None, **fields) -> PersonInput:
    return PersonInput(
        key=key,
        email=email,
        fields={"firstname": fields.pop("first", "Ann"), "lastname": "Lee", **fields},
        crm_id=crm_id,
    )


def calls(app, method: str, pattern: str) -> int:
    return len(app.requests_to(method, pattern))


# -- people -------------------------------------------------------------------------------------------------


def test_upsert_creates_then_updates_the_same_record(dynamics_emulator, dynamics_connector):
    [first] = dynamics_connector.upsert_people("contact", [person("p1", "Ann@Example.com")])
    assert first.ok and first.created and first.crm_id
    [second] = dynamics_connector.upsert_people("contact", [person("p1", "ann@example.com", first="Annie")])
    assert second.ok and not second.created and second.crm_id == first.crm_id
    [record] = dynamics_emulator.records("contact")
    assert record["firstname"] == "Annie" and record["emailaddress1"] == "ann@example.com"


def test_a_batch_costs_one_query_and_one_batch_call(dynamics_emulator, dynamics_connector):
    dynamics_emulator.create("contact", {"emailaddress1": "old@example.com", "lastname": "Old"})
    inputs = [person(f"p{i}", f"p{i}@example.com") for i in range(60)] + [person("old", "old@example.com")]
    outcomes = dynamics_connector.upsert_people("contact", inputs)
    assert all(o.ok for o in outcomes) and sum(o.created for o in outcomes) == 60
    assert calls(dynamics_emulator, "GET", r"/contacts$") == 1
    assert calls(dynamics_emulator, "POST", r"/\$batch$") == 1
    assert dynamics_emulator.batch_operations == 61
    assert len(dynamics_emulator.records("contact")) == 61


def test_a_replay_duplicates_nothing(dynamics_emulator, dynamics_connector):
    inputs = [person("a", "a@example.com"), person("b", "b@example.com")]
    first = dynamics_connector.upsert_people("contact", inputs)
    again = dynamics_connector.upsert_people("contact", inputs)
    assert [o.crm_id for o in first] == [o.crm_id for o in again]
    assert not any(o.created for o in again)
    assert len(dynamics_emulator.records("contact")) == 2


def test_the_same_address_twice_in_a_batch_is_written_once(dynamics_emulator, dynamics_connector):
    outcomes = dynamics_connector.upsert_people("contact", [person("a", "x@example.com"), person("b", "X@example.com")])
    assert outcomes[0].crm_id == outcomes[1].crm_id and outcomes[0].created and not outcomes[1].created
    assert len(dynamics_emulator.records("contact")) == 1


def test_an_email_change_with_a_stored_id_updates_that_record(dynamics_emulator, dynamics_connector):
    [made] = dynamics_connector.upsert_people("contact", [person("p", "before@example.com")])
    [moved] = dynamics_connector.upsert_people(
        "contact", [person("p", "after@example.com", crm_id=made.crm_id, emailaddress1="after@example.com")]
    )
    assert moved.ok and moved.crm_id == made.crm_id and not moved.created
    assert calls(dynamics_emulator, "GET", r"/contacts$") == 1  # the stored id needs no search
    assert [r["emailaddress1"] for r in dynamics_emulator.records("contact")] == ["after@example.com"]


def test_a_stale_stored_id_is_not_found_and_creates_nothing(dynamics_emulator, dynamics_connector):
    [made] = dynamics_connector.upsert_people("contact", [person("p", "gone@example.com")])
    dynamics_emulator.remove("contact", made.crm_id)
    [outcome] = dynamics_connector.upsert_people("contact", [person("p", "gone@example.com", crm_id=made.crm_id)])
    assert isinstance(outcome.error, NotFound) and outcome.error.code == "0x80040217"
    assert dynamics_emulator.records("contact") == []
    [bad] = dynamics_connector.upsert_people("contact", [person("q", "q@example.com", crm_id="not-a-guid")])
    assert isinstance(bad.error, NotFound)


def test_one_refused_record_fails_alone_in_the_batch(dynamics_emulator, dynamics_connector):
    outcomes = dynamics_connector.upsert_people(
        "contact",
        [
            person("ok1", "ok1@example.com"),
            person("long", "long@example.com", first="x" * 51),
            person("bad", "bad@example.com", no_such_column="1"),
            person("ok2", "ok2@example.com"),
        ],
    )
    assert [o.ok for o in outcomes] == [True, False, False, True]
    assert outcomes[1].error.kind == "record" and "maximum allowed length" in outcomes[1].error.message
    assert outcomes[2].error.code == "0x80048d19" and "no_such_column" in outcomes[2].error.message
    assert sorted(r["emailaddress1"] for r in dynamics_emulator.records("contact")) == [
        "ok1@example.com",
        "ok2@example.com",
    ]


def test_alternate_key_upserts_need_no_search(dynamics_emulator, make_dynamics_connector):
    dynamics_emulator.add_alternate_key("contact", "emailaddress1")
    connector = make_dynamics_connector(email_alternate_key=True)
    [first] = connector.upsert_people("contact", [person("p", "key@example.com")])
    [second] = connector.upsert_people("contact", [person("p", "key@example.com", first="Kay")])
    [plus] = connector.upsert_people("contact", [person("q", "a+b@example.com")])  # '+' cannot be a key value
    assert first.created and not second.created and second.crm_id == first.crm_id and plus.ok and plus.created
    assert calls(dynamics_emulator, "GET", r"/contacts$") == 1  # only for the '+' address
    assert len(dynamics_emulator.records("contact")) == 2


def test_alternate_key_urls_fail_without_the_key(dynamics_emulator, make_dynamics_connector):
    connector = make_dynamics_connector(email_alternate_key=True)
    [outcome] = connector.upsert_people("contact", [person("p", "nokey@example.com")])
    assert outcome.error is not None and outcome.error.code == "0x80060888"


def test_leads_are_their_own_table(dynamics_emulator, dynamics_connector):
    [lead] = dynamics_connector.upsert_people("lead", [person("l", "lead@example.com", companyname="Northwind")])
    assert dynamics_emulator.get("lead", lead.crm_id)["companyname"] == "Northwind"
    found = dynamics_connector.find_by_email("lead", ["LEAD@example.com", "none@example.com"])
    assert list(found) == ["lead@example.com"] and found["lead@example.com"].crm_id == lead.crm_id
    with pytest.raises(ConfigurationError):
        dynamics_connector.upsert_people("deal", [person("x", "x@example.com")])


def test_find_by_id_and_set_fields(dynamics_emulator, dynamics_connector):
    [made] = dynamics_connector.upsert_people("contact", [person("p", "p@example.com")])
    owner = dynamics_emulator.user_id
    dynamics_connector.set_fields("contact", made.crm_id, {"jobtitle": "CTO", "ownerid": owner})
    record = dynamics_connector.find_by_id("contact", made.crm_id)
    assert record.fields["jobtitle"] == "CTO" and record.fields["_ownerid_value"] == owner
    assert record.modified_at is not None
    dynamics_emulator.remove("contact", made.crm_id)
    assert dynamics_connector.find_by_id("contact", made.crm_id) is None
    with pytest.raises(NotFound):
        dynamics_connector.set_fields("contact", made.crm_id, {"jobtitle": "CEO"})


# -- engagement ----------------------------------------------------------------------------------------------


def test_activities_are_completed_tasks_written_once(dynamics_emulator, dynamics_connector):
    [p] = dynamics_connector.upsert_people("contact", [person("p", "p@example.com")])
    inputs = [
        ActivityInput(f"capsule-evt-{i}", p.crm_id, "contact", "capsule_viewed", f"Viewed {i}", "body", WHEN)
        for i in range(3)
    ]
    first = dynamics_connector.log_activities(inputs)
    again = dynamics_connector.log_activities(inputs)
    assert all(o.ok and o.created for o in first) and not any(o.created for o in again)
    assert [o.crm_id for o in first] == [o.crm_id for o in again]
    tasks = dynamics_emulator.records("task")
    assert len(tasks) == 3 and {t["statecode"] for t in tasks} == {1}
    assert {t["_regardingobjectid_value"] for t in tasks} == {p.crm_id}
    assert tasks[0]["actualend"] == "2025-03-04T10:30:00Z"


def test_an_activity_for_a_deleted_person_fails_alone(dynamics_emulator, dynamics_connector):
    [p] = dynamics_connector.upsert_people("contact", [person("p", "p@example.com")])
    missing = "00000000-0000-0000-0000-000000000001"
    outcomes = dynamics_connector.log_activities(
        [
            ActivityInput("e1", p.crm_id, "contact", "capsule_viewed", "Viewed", "b", WHEN),
            ActivityInput("e2", missing, "contact", "capsule_viewed", "Viewed", "b", WHEN),
        ]
    )
    assert outcomes[0].ok and isinstance(outcomes[1].error, NotFound)


def test_tasks_are_open_and_keyed_by_the_firing(dynamics_emulator, dynamics_connector):
    [p] = dynamics_connector.upsert_people("lead", [person("p", "p@example.com")])
    task = TaskInput("trigger:1:0", p.crm_id, "lead", "Call Ann", "SSO", WHEN, owner_id=dynamics_emulator.user_id)
    [first] = dynamics_connector.create_tasks([task])
    [again] = dynamics_connector.create_tasks([task])
    assert first.created and again.crm_id == first.crm_id and not again.created
    [row] = dynamics_emulator.records("task")
    assert row.get("statecode") is None and row["scheduledend"] == "2025-03-04T10:30:00Z"
    assert row["_regardingobjectid_value"] == p.crm_id


def test_notes_are_annotations_found_by_their_marker(dynamics_emulator, dynamics_connector):
    [p] = dynamics_connector.upsert_people("contact", [person("p", "p@example.com")])
    note = NoteInput("capsule-evt-9", p.crm_id, "contact", "Asked about SSO", WHEN)
    [first] = dynamics_connector.add_notes([note])
    [again] = dynamics_connector.add_notes([note])
    assert first.created and again.crm_id == first.crm_id
    [row] = dynamics_emulator.records("annotation")
    assert row["subject"] == "[capsule-evt-9] Capsule note" and row["_objectid_value"] == p.crm_id


def test_deals_are_opportunities_keyed_by_the_conversion(dynamics_emulator, dynamics_connector):
    [p] = dynamics_connector.upsert_people("contact", [person("p", "p@example.com")])
    deal = DealInput("conv-1", p.crm_id, "contact", "Pro plan", 1200.0, "EUR", stage="Won")
    first = dynamics_connector.upsert_deal(deal)
    again = dynamics_connector.upsert_deal(DealInput("conv-1", p.crm_id, "contact", "Pro plan", 1500.0, "EUR"))
    assert first.created and again.crm_id == first.crm_id and not again.created
    [row] = dynamics_emulator.records("opportunity")
    assert row["estimatedvalue"] == 1500.0 and row["_parentcontactid_value"] == p.crm_id and row["stepname"] == "Won"
    assert dynamics_connector.people_of_deal(first.crm_id) == [p.crm_id]


# -- metadata ------------------------------------------------------------------------------------------------


def test_describe_fields_reads_types_lengths_and_option_sets(dynamics_emulator, dynamics_connector):
    dynamics_emulator.add_custom_attribute(
        "contact", "new_tier", "Picklist", display="Tier", options={100000000: "Gold", 100000001: "Silver"}
    )
    fields = {f.name: f for f in dynamics_connector.describe_fields("contact")}
    assert fields["emailaddress1"].type == "email" and fields["firstname"].max_length == 50
    assert fields["lastname"].required and fields["createdon"].read_only
    assert fields["leadsourcecode"].options[:2] == ("Advertisement", "Employee Referral")
    assert fields["new_tier"].custom and fields["new_tier"].options == ("Gold", "Silver")
    assert fields["donotemail"].type == "boolean" and "parentcustomerid" not in fields
    assert calls(dynamics_emulator, "GET", r"/Attributes") == 4


def test_create_custom_field_adds_a_column(dynamics_emulator, dynamics_connector):
    spec = CustomFieldSpec(name="new_capsulescore", label="Capsule score", type="number")
    made = dynamics_connector.create_custom_field("contact", spec)
    again = dynamics_connector.create_custom_field("contact", spec)
    assert made.name == again.name == "new_capsulescore" and made.custom and made.type == "number"
    [outcome] = dynamics_connector.upsert_people("contact", [person("p", "p@example.com", new_capsulescore=7)])
    assert dynamics_emulator.get("contact", outcome.crm_id)["new_capsulescore"] == 7


# -- change tracking -----------------------------------------------------------------------------------------


def test_change_tracking_reads_each_change_once_across_the_boundary(dynamics_emulator, dynamics_connector):
    [a, b] = dynamics_connector.upsert_people("contact", [person("a", "a@example.com"), person("b", "b@example.com")])
    start = ChangeCursor(dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5))
    first = dynamics_connector.changes_since("contact", start)
    assert sorted(r.crm_id for r in first.records) == sorted([a.crm_id, b.crm_id])
    assert first.next_cursor.last_id.startswith("delta!") and len(first.next_cursor.last_id) <= 100
    nothing = dynamics_connector.changes_since("contact", first.next_cursor)
    assert nothing.records == []
    dynamics_emulator.edit("contact", a.crm_id, {"jobtitle": "CEO"})
    dynamics_emulator.remove("contact", b.crm_id)
    second = dynamics_connector.changes_since("contact", nothing.next_cursor)
    assert [r.crm_id for r in second.records] == [a.crm_id] and second.records[0].fields["jobtitle"] == "CEO"
    assert dynamics_connector.deleted_ids == [b.crm_id]
    assert dynamics_connector.changes_since("contact", second.next_cursor).records == []


def test_an_old_change_is_left_out_of_the_first_read(dynamics_emulator, dynamics_connector):
    dynamics_connector.upsert_people("contact", [person("a", "a@example.com")])
    later = ChangeCursor(dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1))
    page = dynamics_connector.changes_since("contact", later)
    assert page.records == [] and page.next_cursor.last_id.startswith("delta!")


def test_echo_suppression_reads_modifiedby(dynamics_emulator, dynamics_connector):
    class Conn:
        auth_extra = {"crm_user_id": dynamics_emulator.user_id}

    ours = InboundChange("e", "contact", "x", "updated", properties={"_modifiedby_value": dynamics_emulator.user_id})
    theirs = InboundChange(
        "e", "contact", "x", "updated", properties={"_modifiedby_value": dynamics_emulator.other_user_id}
    )
    assert DynamicsConnector.is_own_change(ours, Conn()) and not DynamicsConnector.is_own_change(theirs, Conn())


# -- errors --------------------------------------------------------------------------------------------------


def test_429_is_a_rate_limit_with_retry_after_and_headers_are_read(dynamics_emulator, dynamics_connector):
    dynamics_emulator.limiter.limit = 2
    dynamics_connector.find_by_email("contact", ["a@example.com"])
    assert dynamics_connector.http.rate_limit.remaining == 1 and dynamics_connector.http.rate_limit.limit == 6000
    dynamics_connector.find_by_email("contact", ["a@example.com"])
    with pytest.raises(RateLimited) as caught:
        dynamics_connector.find_by_email("contact", ["a@example.com"])
    assert caught.value.code == "0x80072322" and caught.value.retry_after >= 1
    assert dynamics_emulator.rate_limited_count == 1


def test_faults_map_to_the_taxonomy(dynamics_emulator, dynamics_connector):
    dynamics_emulator.faults.inject("server_error")
    with pytest.raises(RetryableError) as server:
        dynamics_connector.identity()
    assert server.value.status == 500 and server.value.kind == "retryable"
    dynamics_emulator.faults.inject("drop")
    with pytest.raises(RetryableError) as dropped:
        dynamics_connector.identity()
    assert dropped.value.code == "connection_error"
    dynamics_emulator.faults.inject("expire_token")
    with pytest.raises(AuthError):
        dynamics_connector.identity()


def test_a_batch_wide_throttle_is_raised_for_a_retry(dynamics_emulator, dynamics_connector):
    dynamics_emulator.faults.inject("rate_limit", path_prefix="/api/data/v9.2/$batch")
    with pytest.raises(RateLimited):
        dynamics_connector.upsert_people("contact", [person("p", "p@example.com")])
    [outcome] = dynamics_connector.upsert_people("contact", [person("p", "p@example.com")])
    assert outcome.ok and len(dynamics_emulator.records("contact")) == 1


def test_403_is_configuration_and_duplicate_detection_is_a_record_error():
    def response(status: int, body: bytes) -> requests.Response:
        r = requests.Response()
        r.status_code, r._content, r.headers["Content-Type"] = status, body, "application/json"
        return r

    forbidden = DynamicsConnector.classify_error(response(403, b'{"error":{"code":"0x80040220","message":"no"}}'))
    duplicate = DynamicsConnector.classify_error(response(500, b'{"error":{"code":"0x80040333","message":"dup"}}'))
    precondition = DynamicsConnector.classify_error(response(412, b'{"error":{"code":"0x80040237","message":"k"}}'))
    assert isinstance(forbidden, ConfigurationError) and forbidden.code == "0x80040220"
    assert duplicate.kind == "record" and precondition.kind == "record"


def test_no_org_url_is_a_configuration_error(settings):
    from integrations.connector import ConnectionCredentials

    settings.CRM_ENDPOINTS = {**settings.CRM_ENDPOINTS, "dynamics": {"api_url": None}}
    with pytest.raises(ConfigurationError, match="organisation URL"):
        DynamicsConnector(ConnectionCredentials("t", None))


# -- identity, tokens, connecting ------------------------------------------------------------------------------


def test_identity_names_the_org_and_user(dynamics_emulator, dynamics_connector):
    identity = dynamics_connector.identity()
    assert identity.account_id == dynamics_emulator.organization_id
    assert identity.account_name == "Contoso Sandbox" and identity.user_id == dynamics_emulator.user_id
    assert identity.user_email == dynamics_emulator.user_email


def test_token_answers_are_parsed_and_errors_refused():
    tokens = DynamicsConnector.parse_token_response(
        {
            "token_type": "Bearer",
            "access_token": "a",
            "refresh_token": "r",
            "expires_in": 3599,
            "scope": "https://contoso.crm4.dynamics.com/user_impersonation https://contoso.crm4.dynamics.com/.default",
        }
    )
    assert tokens.api_base_url == "https://contoso.crm4.dynamics.com" and tokens.refresh_token == "r"
    assert tokens.expires_at > dt.datetime.now(dt.UTC) + dt.timedelta(minutes=50)
    with pytest.raises(OAuthError):
        DynamicsConnector.parse_token_response({"error": "invalid_grant", "error_description": "AADSTS70008"})
    with pytest.raises(OAuthError):
        DynamicsConnector.parse_token_response({"token_type": "Bearer"})


@pytest.mark.django_db
def test_connect_crm_with_a_token(dynamics_emulator, dynamics_server, account):
    out = io.StringIO()
    call_command(
        "connect_crm",
        "--account",
        account.slug,
        "--provider",
        "dynamics",
        "--token",
        dynamics_emulator.issue_token().access_token,
        "--api-url",
        dynamics_server.url,
        stdout=out,
    )
    connection = Connection.objects.get(pk=int(out.getvalue().split("CONNECTION_ID=")[1].split()[0]))
    assert connection.crm_account_name == "Contoso Sandbox"
    assert connection.auth_extra["crm_user_id"] == dynamics_emulator.user_id
    with pytest.raises(CommandError, match="refused the token: 401"):
        call_command(
            "connect_crm",
            "--account",
            account.slug,
            "--provider",
            "dynamics",
            "--token",
            "bogus",
            "--api-url",
            dynamics_server.url,
            stderr=io.StringIO(),
        )


@pytest.mark.django_db
def test_oauth_connect_refresh_rotation_and_denial(dynamics_emulator, dynamics_server, client, account, make_member):
    user = make_member(account, Role.ADMIN)
    client.force_login(user)
    start = client.post(
        reverse("integrations:start_oauth", kwargs={"account_slug": account.slug, "provider": "dynamics"})
    )
    authorize = start["Location"]
    assert authorize.startswith(dynamics_server.url + "/organizations/oauth2/v2.0/authorize")
    query = {k: v[0] for k, v in parse_qs(urlsplit(authorize).query).items()}
    assert query["code_challenge_method"] == "S256" and "offline_access" in query["scope"]
    assert query["scope"].split()[0].endswith("/.default")  # the org's resource (DYNAMICS_API_URL at start-up)
    ca = dynamics_server.tls.ca_path
    page = requests.get(authorize, verify=str(ca), timeout=10)
    assert 'id="allow"' in page.text and 'id="deny"' in page.text
    back = requests.post(
        authorize.split("?")[0], data={**query, "decision": "allow"}, verify=str(ca), allow_redirects=False, timeout=10
    )
    callback = urlsplit(back.headers["Location"])
    done = client.get(callback.path + "?" + callback.query)
    assert done.status_code == 302
    connection = Connection.objects.get(account=account, provider="dynamics")
    assert connection.auth_kind == AuthKind.OAUTH and connection.crm_account_name == "Contoso Sandbox"
    assert connection.connector().identity().account_id == dynamics_emulator.organization_id
    old_refresh = connection.refresh_token
    connection.token_expires_at = dt.datetime.now(dt.UTC)
    connection.save()
    fresh = credentials.fresh_connection(connection)
    assert fresh.refresh_token != old_refresh and dynamics_emulator.oauth.refresh_calls == 1
    with pytest.raises(OAuthError):
        oauth.refresh(get_provider("dynamics"), old_refresh)  # rotated: the old one is spent
    start = client.post(
        reverse("integrations:start_oauth", kwargs={"account_slug": account.slug, "provider": "dynamics"})
    )
    query = {k: v[0] for k, v in parse_qs(urlsplit(start["Location"]).query).items()}
    denied = requests.post(
        start["Location"].split("?")[0],
        data={**query, "decision": "deny"},
        verify=str(ca),
        allow_redirects=False,
        timeout=10,
    )
    assert "error=access_denied" in denied.headers["Location"]
    assert query["client_id"] == DYNAMICS_CLIENT_ID
