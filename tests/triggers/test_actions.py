"""What a firing does: outbox rows with provider-neutral payloads, round robin owners, e-mails
after commit, outgoing webhooks, each exactly once however often the firing is attempted."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.core import mail
from django.db import transaction
from django.test import override_settings

from crmsync.models import Event
from integrations.models import OutboxKind, SyncMode
from integrations.webhooks_out import catalogue
from scoring.models_triggers import TriggerFiring
from scoring.triggers.evaluate import Firing
from scoring.triggers.firing import record_firings
from tests.triggers.conftest import evt, firings, trigger_rows

EVERY_CRM_ACTION = [
    {
        "type": "create_task",
        "subject": "Call {{ first_name }} about {{ capsule }}",
        "body": "{{ full_name }} ({{ company }}) clicked {{ cta }}; score {{ score }}",
        "due_in_days": 2,
    },
    {"type": "create_task", "subject": "Prepare a quote", "owner_id": "77", "due_in_days": 0},
    {"type": "assign_owner", "owner_ids": ["501"]},
    {"type": "set_field", "field": "capsule_hot_lead", "value": "{{ grade }}"},
    {"type": "add_to_list", "list_id": "nurture-42"},
    {"type": "add_note", "body": "{{ first_name }} clicked “{{ cta }}” in {{ capsule }}"},
]


def test_crm_actions_become_outbox_rows_with_their_payloads(account, make_connection, make_rule, ingest):
    hubspot, salesforce = make_connection(account), make_connection(account, provider="salesforce")
    rule = make_rule(account, "cta_clicked", actions=EVERY_CRM_ACTION, name="Demo request")

    ingest(account, evt("cta_clicked", cta_id="book-demo", label="Book a demo"))

    [firing] = firings(rule)
    fired_at = firing.fired_at
    envelope = {"firing_id": firing.pk, "firing_key": firing.key, "rule_id": rule.pk, "rule_name": "Demo request"}
    expected = [
        (
            OutboxKind.TASK,
            {
                "action": "create_task",
                "action_index": 0,
                **envelope,
                "subject": "Call Ann about Capsule cap-1",
                "body": "Ann Lee (Acme) clicked Book a demo; score 30",
                "due_at": (fired_at + timedelta(days=2)).isoformat(),
                "owner_id": None,
            },
        ),
        (
            OutboxKind.TASK,
            {
                "action": "create_task",
                "action_index": 1,
                **envelope,
                "subject": "Prepare a quote",
                "body": "",
                "due_at": fired_at.isoformat(),
                "owner_id": "77",
            },
        ),
        (OutboxKind.FIELDS, {"action": "assign_owner", "action_index": 2, **envelope, "owner_id": "501"}),
        (
            OutboxKind.FIELDS,
            {"action": "set_field", "action_index": 3, **envelope, "fields": {"capsule_hot_lead": "cold"}},
        ),
        (OutboxKind.FIELDS, {"action": "add_to_list", "action_index": 4, **envelope, "list_id": "nurture-42"}),
        (
            OutboxKind.NOTE,
            {
                "action": "add_note",
                "action_index": 5,
                **envelope,
                "body": "Ann clicked “Book a demo” in Capsule cap-1",
                "occurred_at": fired_at.isoformat(),
            },
        ),
    ]
    for connection in (hubspot, salesforce):
        rows = trigger_rows(connection)
        assert [(row.kind, row.payload) for row in rows] == expected
        assert [row.dedupe_key for row in rows] == [f"trigger:{firing.pk}:{index}" for index in range(6)]
        assert {row.prospect_id for row in rows} == {firing.prospect_id}
        assert {row.event_id for row in rows} == {None}
        assert {row.state for row in rows} == {"pending"}
    assert datetime.fromisoformat(expected[0][1]["due_at"]).tzinfo is not None
    assert [entry["status"] for entry in firing.actions] == ["queued"] * 6
    assert [entry["detail"] for entry in firing.actions] == [
        f"{detail} (for 2 CRM connections)"
        for detail in (
            "task for the record owner",
            "task for CRM user 77",
            "owner: CRM user 501",
            "field capsule_hot_lead",
            "list nurture-42",
            "note",
        )
    ]


def test_without_a_crm_connection_crm_actions_are_skipped_and_say_so(account, make_rule, ingest):
    rule = make_rule(account, "cta_clicked")

    ingest(account, evt("cta_clicked"))

    [firing] = firings(rule)
    assert firing.actions == [{"type": "add_note", "status": "skipped", "detail": "note (no CRM connected)"}]


def test_a_firing_attempted_again_does_nothing_again(account, crm, make_rule, ingest):
    rule = make_rule(account, "cta_clicked", actions=EVERY_CRM_ACTION)
    ingest(account, evt("cta_clicked"))
    [firing] = firings(rule)
    event = Event.objects.get(pk=firing.event_id)

    again = record_firings(account, [Firing(rule.pk, firing.prospect_id, event.pk, firing.key)], {rule.pk: rule})

    assert again == []
    assert firings(rule) == [firing]
    assert len(trigger_rows(crm)) == len(EVERY_CRM_ACTION)


def test_round_robin_cycles_through_the_owners_across_firings(account, crm, make_rule, ingest):
    rule = make_rule(account, "cta_clicked", actions=[{"type": "assign_owner", "owner_ids": ["a1", "b2", "c3"]}])

    ingest(account, evt("cta_clicked"), evt("cta_clicked", "bob@example.com"))  # two turns in one ingest
    ingest(account, evt("cta_clicked", "cy@example.com"))
    ingest(account, evt("cta_clicked", "di@example.com"))
    ingest(account, evt("cta_clicked", "di@example.com"))

    owners = [row.payload["owner_id"] for row in trigger_rows(crm)]
    assert owners == ["a1", "b2", "c3", "a1", "b2"]
    rule.refresh_from_db()
    assert rule.round_robin_next == 5


def test_a_turn_is_not_used_up_by_a_rolled_back_ingest(account, crm, make_rule, ingest):
    rule = make_rule(account, "cta_clicked", actions=[{"type": "assign_owner", "owner_ids": ["a1", "b2"]}])

    with pytest.raises(RuntimeError), transaction.atomic():
        ingest(account, evt("cta_clicked"))
        raise RuntimeError("the request failed after the ingest")
    ingest(account, evt("cta_clicked", "bob@example.com"))

    assert [row.payload["owner_id"] for row in trigger_rows(crm)] == ["a1"]
    rule.refresh_from_db()
    assert rule.round_robin_next == 1


def test_realtime_connections_are_kicked_after_commit(
    account, make_connection, make_rule, ingest, django_capture_on_commit_callbacks
):
    batch = make_connection(account)
    rule = make_rule(account, "cta_clicked")
    ingest(account, evt("cta_clicked"))
    [firing] = firings(rule)
    other_rule = make_rule(account, "cta_clicked", name="Second")
    planned = [
        Firing(other_rule.pk, firing.prospect_id, firing.event_id, f"rule:{other_rule.pk}:event:{firing.event_id}")
    ]

    with django_capture_on_commit_callbacks() as manual_callbacks:
        record_firings(account, planned, {other_rule.pk: other_rule})
    batch.sync_mode = SyncMode.REALTIME
    batch.save(update_fields=["sync_mode"])
    planned = [Firing(other_rule.pk, firing.prospect_id, None, f"rule:{other_rule.pk}:prospect:{firing.prospect_id}")]
    with django_capture_on_commit_callbacks() as realtime_callbacks:
        record_firings(account, planned, {other_rule.pk: other_rule})

    assert manual_callbacks == []
    assert len(realtime_callbacks) == 1


EMAIL = [{"type": "send_email", "to": "manager@example.com", "body": "{{ first_name }} wants a demo."}]


def test_the_email_action_sends_one_mail_after_commit(account, make_rule, ingest, django_capture_on_commit_callbacks):
    rule = make_rule(account, "cta_clicked", actions=EMAIL, name="Demo request")
    click = evt("cta_clicked")

    with django_capture_on_commit_callbacks() as callbacks:
        ingest(account, click)
    assert mail.outbox == []  # nothing is sent before the firing is committed
    for callback in callbacks:
        callback()
    with django_capture_on_commit_callbacks(execute=True):
        ingest(account, dict(click))  # a replay

    [message] = mail.outbox
    assert message.to == ["manager@example.com"]
    assert message.subject == "Capsule trigger: Demo request – Ann Lee"
    assert message.body.startswith("Ann wants a demo.\n\nRule: Demo request\nProspect: Ann Lee <ann@example.com>\n")
    assert f"/a/{account.slug}/triggers/firings/" in message.body
    [firing] = firings(rule)
    assert firing.actions == [{"type": "send_email", "status": "sent", "detail": "e-mail to manager@example.com"}]


@override_settings(EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend", EMAIL_HOST="127.0.0.1", EMAIL_PORT=9)
def test_a_failed_email_shows_in_the_firing_log(account, make_rule, ingest, django_capture_on_commit_callbacks):
    rule = make_rule(account, "cta_clicked", actions=EMAIL)

    with django_capture_on_commit_callbacks(execute=True):
        ingest(account, evt("cta_clicked"))

    [firing] = firings(rule)
    assert firing.actions[0]["status"] == "failed"
    assert firing.actions[0]["detail"].startswith("e-mail to manager@example.com failed: ")


@pytest.fixture
def trigger_fired_in_catalogue(monkeypatch):
    """The catalogue entry outgoing webhooks need for ``trigger.fired`` (kept if it is there already)."""
    spec = catalogue.CATALOGUE.get("trigger.fired") or catalogue.EventSpec(
        "trigger.fired", "Workflow triggers", "A workflow trigger rule fired.", {}, "workflow triggers"
    )
    monkeypatch.setitem(catalogue.CATALOGUE, "trigger.fired", spec)


def subscribe(account, events):
    from integrations.models import WebhookSubscription

    return WebhookSubscription.objects.create(
        account=account, target_url="https://hooks.example.com/x", events=events, secret="whsec_" + "A" * 32
    )


def test_the_webhook_action_emits_one_delivery_per_firing(account, make_rule, ingest, trigger_fired_in_catalogue):
    from integrations.models import WebhookDelivery

    subscription = subscribe(account, ["trigger.fired"])
    subscribe(account, ["cta.clicked"])  # listens to something else
    rule = make_rule(account, "cta_clicked", actions=[{"type": "send_webhook"}], name="Demo request")
    click = evt("cta_clicked")

    ingest(account, click)
    ingest(account, dict(click))

    [firing] = firings(rule)
    [delivery] = WebhookDelivery.objects.filter(event_type="trigger.fired")
    assert delivery.subscription == subscription
    assert delivery.idempotency_key == firing.key
    data = delivery.payload["data"]
    assert data["rule"] == {"id": rule.pk, "name": "Demo request", "condition": "cta_clicked"}
    assert data["firing"] == {"id": firing.pk, "key": firing.key, "fired_at": firing.fired_at.isoformat()}
    assert data["prospect"]["email"] == "ann@example.com"
    assert data["prospect"]["score"] == 30
    assert data["event"]["event_id"] == click["event_id"]
    assert data["event"]["capsule"] == {"id": "cap-1", "title": "Capsule cap-1", "url": ""}
    assert firing.actions == [{"type": "send_webhook", "status": "queued", "detail": "1 webhook delivery"}]


def test_webhook_data_leaves_out_personal_fields_without_consent(
    make_account, make_rule, ingest, trigger_fired_in_catalogue
):
    from integrations.models import WebhookDelivery

    account = make_account("Careful Co", require_consent=True)
    subscribe(account, ["*"])
    make_rule(account, "cta_clicked", actions=[{"type": "send_webhook"}])

    ingest(account, evt("cta_clicked"))

    [delivery] = WebhookDelivery.objects.filter(event_type="trigger.fired")
    assert set(delivery.payload["data"]["prospect"]) == {"id", "score", "grade"}


def test_several_actions_of_one_firing_all_run_in_order(
    account, crm, make_rule, ingest, django_capture_on_commit_callbacks
):
    rule = make_rule(account, "cta_clicked", actions=[*EMAIL, {"type": "add_note", "body": "n"}])

    with django_capture_on_commit_callbacks(execute=True):
        ingest(account, evt("cta_clicked"))

    [firing] = firings(rule)
    assert [entry["type"] for entry in firing.actions] == ["send_email", "add_note"]
    assert len(mail.outbox) == 1
    assert [row.dedupe_key for row in trigger_rows(crm)] == [f"trigger:{firing.pk}:1"]
    assert TriggerFiring.objects.count() == 1
