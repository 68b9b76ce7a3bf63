"""The product brief's example workflows, written as trigger rules (docs/TRIGGERS.md shows them
the same way), each firing through the real ingest, the grade listener or the periodic job."""

from __future__ import annotations

from datetime import timedelta

from django.core import mail
from django.utils import timezone

from integrations.models import OutboxKind
from scoring.models_triggers import TriggerRule
from scoring.triggers.jobs import evaluate_low_engagement
from tests.triggers.conftest import evt, firings, trigger_rows


def payloads(crm, rule) -> list[tuple[str, dict]]:
    fired = {firing.pk for firing in firings(rule)}
    return [(row.kind, row.payload) for row in trigger_rows(crm) if row.payload["firing_id"] in fired]


def test_follow_up_after_a_capsule_view(account, crm, make_rule, ingest):
    # The CRM sends the e-mail (it holds the prospect's consent and unsubscribe state): the rule
    # sets the field its follow-up workflow starts from, and gives the owner a task to check on it.
    rule = make_rule(
        account,
        "capsule_viewed",
        {"first_view_only": True},
        [
            {"type": "set_field", "field": "capsule_follow_up", "value": "{{ capsule }}"},
            {"type": "create_task", "subject": "Follow up with {{ first_name }} on {{ capsule }}", "due_in_days": 1},
        ],
        name="Follow-up after a view",
    )

    ingest(account, evt("capsule_viewed"))
    ingest(account, evt("capsule_viewed"))  # a return visit: no second follow-up

    [(kind_1, field), (kind_2, task)] = payloads(crm, rule)
    assert (kind_1, field["fields"]) == (OutboxKind.FIELDS, {"capsule_follow_up": "Capsule cap-1"})
    assert (kind_2, task["subject"]) == (OutboxKind.TASK, "Follow up with Ann on Capsule cap-1")


def test_assign_to_a_sales_rep_after_high_engagement(account, crm, make_rule, ingest):
    rule = make_rule(
        account,
        "high_engagement",
        {"min_seconds": 300, "min_score": 80},
        [{"type": "assign_owner", "owner_ids": ["rep-1", "rep-2"]}],
        name="Assign engaged leads",
    )

    ingest(account, evt("time_spent", seconds=320))
    ingest(account, evt("time_spent", "bob@example.com", seconds=30), evt("cta_clicked", "bob@example.com"))
    ingest(account, evt("cta_clicked", "bob@example.com"), evt("cta_clicked", "bob@example.com"))  # 90 points

    assert [payload["owner_id"] for _kind, payload in payloads(crm, rule)] == ["rep-1", "rep-2"]


def test_task_for_the_sales_rep_after_a_cta_click(account, crm, make_rule, ingest):
    rule = make_rule(
        account,
        "cta_clicked",
        {"cta_id": "book-demo"},
        [{"type": "create_task", "subject": "{{ full_name }} asked for a demo", "due_in_days": 0}],
        name="Demo requested",
    )

    ingest(account, evt("cta_clicked", cta_id="pricing"), evt("cta_clicked", cta_id="book-demo"))

    [(kind, task)] = payloads(crm, rule)
    assert kind == OutboxKind.TASK
    assert task["subject"] == "Ann Lee asked for a demo"
    assert task["owner_id"] is None  # the record's owner in the CRM: the sales rep


def test_notify_a_manager_of_a_hot_lead(account, make_rule, ingest, django_capture_on_commit_callbacks):
    rule = make_rule(
        account,
        "grade_crossed",
        {"to_grade": "hot"},
        [{"type": "send_email", "to": "sales-manager@example.com", "subject": "Hot lead: {{ full_name }}"}],
        name="Hot lead",
    )

    with django_capture_on_commit_callbacks(execute=True):
        ingest(account, evt("cta_clicked"), evt("cta_clicked"), evt("cta_clicked"))

    assert len(firings(rule)) == 1
    [message] = mail.outbox
    assert (message.to, message.subject) == (["sales-manager@example.com"], "Hot lead: Ann Lee")
    assert "Lead score: 90 (hot)" in message.body


def test_add_to_a_nurture_campaign_when_engagement_is_low(account, crm, make_rule, ingest):
    rule = make_rule(
        account,
        "low_engagement",
        {"days": 7, "max_score": 40},
        [{"type": "add_to_list", "list_id": "nurture-campaign-7"}],
        name="Nurture",
    )
    TriggerRule.objects.filter(pk=rule.pk).update(created_at=timezone.now() - timedelta(days=3))
    ingest(account, evt("capsule_viewed", at=timezone.now() - timedelta(days=8)))

    evaluate_low_engagement()

    [(kind, payload)] = payloads(crm, rule)
    assert (kind, payload["list_id"]) == (OutboxKind.FIELDS, "nurture-campaign-7")
