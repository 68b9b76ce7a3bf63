"""Capsule activity reaches each CRM quickly, exactly once, and every failure is visible.

Every test here runs against every provider's sandbox (``crm`` is parametrised), through the
public API, the outbox, Redis kicks, the real worker class and real HTTP.
"""

from __future__ import annotations

import threading

import pytest
from django.db import close_old_connections

from crmsync.models import Prospect
from crmsync.privacy import erase_prospect
from integrations.models import OutboxItem, OutboxKind, OutboxState, RecordLink, SyncRun
from integrations.sandbox.probes import duplicates
from integrations.sync.engine import Flusher
from integrations.sync.jobs import sync_now
from integrations.sync.outbox import insert_rows
from mapping.models import FieldMapping
from mapping.schema import refresh_schema
from tests.e2e.conftest import drain, event

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_event_creates_the_person_and_its_activity(crm, account, post_events):
    connection = crm.connect(account)
    post_events(
        event("e1", "ann@example.com"),
        event("e2", "ann@example.com", "question_asked", data={"text": "Do you offer SSO?"}),
    )
    drain()
    assert crm.emails() == ["ann@example.com"]
    link = RecordLink.objects.get(connection=connection)
    assert link.crm_id == crm.people()[0][0]
    assert sorted(crm.engagement_keys()) == sorted(
        f"capsule-evt-{pk}"
        for pk in OutboxItem.objects.filter(
            connection=connection, kind__in=[OutboxKind.ACTIVITY, OutboxKind.NOTE]
        ).values_list("event_id", flat=True)
    )
    assert len(crm.engagement_keys()) == 2
    assert not OutboxItem.objects.exclude(state=OutboxState.DONE).exists()


def test_a_later_change_updates_the_same_record(crm, account, post_events):
    crm.connect(account)
    post_events(event("e1", "ann@example.com", first_name="Ann"))
    drain()
    first_id = crm.people()[0][0]
    post_events(event("e2", "ann@example.com", first_name="Annie"))
    drain()
    assert crm.people() == [(first_id, "ann@example.com")]
    assert crm.probe.first_name(crm.app, first_id) == "Annie"


def test_a_replayed_event_duplicates_nothing(crm, account, post_events):
    crm.connect(account)
    body = event("e1", "ann@example.com", "cta_clicked", data={"cta_id": "demo", "label": "Book a demo"})
    post_events(body)
    drain()
    assert post_events(body)["duplicates"] == 1
    drain()
    assert crm.emails() == ["ann@example.com"]
    assert len(crm.engagement_keys()) == 1


def test_two_workers_at_once_write_each_person_once(crm, account, post_events):
    crm.connect(account)
    for batch in range(3):
        post_events(*[event(f"b{batch}-{i}", f"p{i}@example.com") for i in range(batch * 80, batch * 80 + 80)])

    def work(name: str) -> None:
        try:
            Flusher(crm.connections[0].pk, worker_id=f"test:{name}").flush()
        finally:
            close_old_connections()

    # Two flushes of the same connection at the same moment, each claiming with SKIP LOCKED.
    threads = [threading.Thread(target=work, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    drain()
    emails = [email for _id, email in crm.people()]
    assert len(emails) == 240
    assert duplicates(emails) == 0
    assert duplicates(crm.engagement_keys()) == 0
    assert len(crm.engagement_keys()) == 240


def test_unchanged_records_are_not_sent_again(crm, account, post_events):
    connection = crm.connect(account)
    post_events(*[event(f"e{i}", f"p{i}@example.com") for i in range(10)])
    drain()
    calls_before = crm.probe.api_calls(crm.app)
    run = SyncRun.objects.get(pk=sync_now(connection.pk))
    assert (run.unchanged, run.created, run.updated, run.failed) == (10, 0, 0, 0)
    assert crm.probe.api_calls(crm.app) == calls_before  # not one call: every hash matched


def test_a_429_storm_is_survived_without_failures(crm, account, post_events):
    crm.connect(account)
    crm.app.faults.inject("rate_limit", count=6)
    post_events(*[event(f"e{i}", f"p{i}@example.com") for i in range(30)])
    drain(rounds=40)
    assert len(crm.emails()) == 30 and duplicates(crm.emails()) == 0
    assert not OutboxItem.objects.filter(state=OutboxState.FAILED).exists()
    # A rate limit is not an attempt: nothing was charged for it.
    assert (
        not OutboxItem.objects.filter(attempts__gt=0, last_error_kind="retryable")
        .exclude(last_error__icontains="timeout")
        .filter(state=OutboxState.FAILED)
        .exists()
    )


def test_server_errors_and_dropped_connections_are_retried(crm, account, post_events):
    crm.connect(account)
    crm.app.faults.inject("server_error", count=2)
    crm.app.faults.inject("drop", count=2)
    post_events(*[event(f"e{i}", f"p{i}@example.com") for i in range(5)])
    drain(rounds=40)
    assert crm.emails() == sorted(f"p{i}@example.com" for i in range(5))
    assert duplicates(crm.engagement_keys()) == 0
    assert len(crm.engagement_keys()) == 5


def test_a_token_expiring_mid_batch_is_refreshed_once(oauth_crm, account, post_events):
    crm = oauth_crm
    crm.connect(account, oauth=True)
    crm.app.faults.inject("expire_token", count=1)
    post_events(*[event(f"e{i}", f"p{i}@example.com") for i in range(5)])
    drain()
    assert len(crm.emails()) == 5
    assert crm.app.oauth.refresh_calls == 1
    assert not OutboxItem.objects.filter(state=OutboxState.FAILED).exists()


def test_a_record_the_crm_refuses_fails_alone_with_the_crms_reason(crm, account, post_events):
    connection = crm.connect(account)
    target = crm.probe.add_unique_field(crm.app)
    refresh_schema(connection, connection.record_type)
    FieldMapping.objects.create(
        connection=connection,
        order=99,
        source_key="attr.ref",
        target_field=target,
        target_object=connection.record_type,
    )
    post_events(event("e1", "first@example.com", attributes={"ref": "R-1"}))
    drain()
    post_events(
        event("e2", "clash@example.com", attributes={"ref": "R-1"}),
        event("e3", "fine@example.com", attributes={"ref": "R-3"}),
    )
    drain()
    assert crm.emails() == ["fine@example.com", "first@example.com"]
    failed = OutboxItem.objects.get(state=OutboxState.FAILED)
    assert failed.prospect.email == "clash@example.com"
    assert failed.kind == OutboxKind.PERSON and failed.last_error_kind == "record"
    assert failed.last_error  # the CRM's own message
    # Its activity waits for the person instead of failing blindly.
    assert OutboxItem.objects.filter(
        prospect=failed.prospect, kind=OutboxKind.ACTIVITY, state=OutboxState.HELD
    ).exists()


def test_consent_is_required_where_the_account_requires_it(crm, account, post_events):
    account.require_consent = True
    account.save()
    crm.connect(account)
    post_events(event("e1", "quiet@example.com"))
    drain()
    assert crm.emails() == []
    assert OutboxItem.objects.filter(
        kind=OutboxKind.PERSON, state=OutboxState.HELD, hold_reason__icontains="consent"
    ).exists()
    post_events(event("e2", "quiet@example.com", consent={"granted": True, "source": "form"}))
    drain()
    assert crm.emails() == ["quiet@example.com"]
    assert len(crm.engagement_keys()) == 2  # the earlier view was back-filled, once


def test_an_erased_person_is_never_recreated(crm, account, post_events):
    crm.connect(account)
    post_events(event("e1", "gone@example.com"))
    erase_prospect(Prospect.objects.get(email="gone@example.com"), actor_label="test")
    drain()
    assert crm.emails() == []
    result = post_events(event("e2", "gone@example.com"))
    assert result["suppressed"] == 1
    drain()
    assert crm.emails() == []


def test_workflow_trigger_actions_reach_the_crm_exactly_once(crm, account, post_events):
    connection = crm.connect(account)
    post_events(event("e1", "ann@example.com"))
    drain()
    prospect = Prospect.objects.get(email="ann@example.com")
    due = "2030-01-02T09:00:00+00:00"

    def rows() -> list[OutboxItem]:
        base = {"firing_id": 1, "firing_key": "rule:1:event:1", "rule_id": 1, "rule_name": "Hot lead"}
        return [
            OutboxItem(
                connection=connection,
                prospect=prospect,
                kind=OutboxKind.TASK,
                dedupe_key="trigger:1:0",
                payload={
                    **base,
                    "action": "create_task",
                    "action_index": 0,
                    "subject": "Call Ann",
                    "body": "She asked about SSO",
                    "due_at": due,
                    "owner_id": None,
                },
            ),
            OutboxItem(
                connection=connection,
                prospect=prospect,
                kind=OutboxKind.NOTE,
                dedupe_key="trigger:1:1",
                payload={**base, "action": "add_note", "action_index": 1, "body": "Hot lead", "occurred_at": due},
            ),
            OutboxItem(
                connection=connection,
                prospect=prospect,
                kind=OutboxKind.FIELDS,
                dedupe_key="trigger:1:2",
                payload={**base, "action": "add_to_list", "action_index": 2, "list_id": "nurture"},
            ),
        ]

    insert_rows(rows())
    drain()
    insert_rows(rows())  # a retried firing writes the same rows: absorbed by their dedupe keys
    drain()
    keys = crm.engagement_keys()
    assert keys.count("trigger:1:0") == 1 and keys.count("trigger:1:1") == 1
    unsupported = OutboxItem.objects.get(dedupe_key="trigger:1:2")
    assert unsupported.state == OutboxState.FAILED and "lists" in unsupported.last_error


def test_erasure_deletes_the_person_in_the_crm_or_says_what_to_delete_by_hand(crm, account, post_events):
    connection = crm.connect(account)
    post_events(event("e1", "forget@example.com"))
    drain()
    [(crm_id, _email)] = crm.people()
    erase_prospect(Prospect.objects.get(email="forget@example.com"), actor_label="test")
    drain()
    erase = OutboxItem.objects.get(connection=connection, kind=OutboxKind.ERASE)
    if erase.state == OutboxState.DONE:
        assert crm.people() == []
        assert RecordLink.objects.get(connection=connection).state == "erased"
    else:  # a CRM whose API cannot delete people: visible to the owner, with the record to delete
        assert erase.state == OutboxState.FAILED and crm_id in erase.last_error and "by hand" in erase.last_error
    post_events(event("e2", "forget@example.com"))
    drain()
    assert crm.people() == ([] if erase.state == OutboxState.DONE else [(crm_id, "forget@example.com")])
