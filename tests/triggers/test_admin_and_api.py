"""The ops admin (rules audited and checked, firings read-only) and the events API end to end."""

from __future__ import annotations

import json

from django.urls import reverse

from crmsync.models import AuditEntry
from scoring.models_triggers import TriggerFiring, TriggerRule
from tests.triggers.conftest import evt, firings, trigger_rows


def admin_data(rule: TriggerRule, **changes) -> dict:
    data = {
        "account": rule.account_id,
        "name": rule.name,
        "enabled": "on",
        "condition_type": rule.condition_type,
        "condition_options": json.dumps(rule.condition_options),
        "actions": json.dumps(rule.actions),
        "_save": "Save",
    }
    data.update(changes)
    return data


def test_ops_change_a_rule_in_the_admin_and_it_is_audited(account, make_rule, admin_client):
    rule = make_rule(account, "cta_clicked", {"cta_id": "demo"})

    response = admin_client.post(
        reverse("admin:scoring_triggerrule_change", args=[rule.pk]),
        admin_data(rule, condition_options=json.dumps({"cta_id": "pricing"})),
    )

    assert response.status_code == 302
    rule.refresh_from_db()
    assert rule.condition_options == {"cta_id": "pricing"}
    entry = AuditEntry.objects.get(action="admin.triggerrule.changed")
    assert entry.changes["condition_options"]["after"] == {"cta_id": "pricing"}


def test_the_admin_refuses_invalid_options_and_actions(account, make_rule, admin_client):
    rule = make_rule(account, "question_asked", {"keyword": "price"})

    response = admin_client.post(
        reverse("admin:scoring_triggerrule_change", args=[rule.pk]),
        admin_data(
            rule,
            condition_options=json.dumps({"pattern": "(("}),
            actions=json.dumps([{"type": "send_email", "to": "nobody"}]),
        ),
    )

    page = response.content.decode()
    assert response.status_code == 200
    assert "pattern: This is not a valid regular expression" in page
    assert "Action 1, to: Enter a valid e-mail address." in page
    rule.refresh_from_db()
    assert rule.condition_options == {"keyword": "price"}
    assert not AuditEntry.objects.filter(action="admin.triggerrule.changed").exists()


def test_firings_are_read_only_in_the_admin(account, make_rule, ingest, admin_client):
    make_rule(account, "cta_clicked")
    ingest(account, evt("cta_clicked"))
    firing = TriggerFiring.objects.get()

    listing = admin_client.get(reverse("admin:scoring_triggerfiring_changelist"))
    detail = admin_client.get(reverse("admin:scoring_triggerfiring_change", args=[firing.pk]))
    delete = admin_client.post(reverse("admin:scoring_triggerfiring_delete", args=[firing.pk]), {"post": "yes"})

    assert listing.status_code == 200
    assert "ann@example.com" not in listing.content.decode()
    assert detail.status_code == 200
    assert 'name="_save"' not in detail.content.decode()  # shown, not editable
    assert admin_client.get(reverse("admin:scoring_triggerfiring_add")).status_code == 403
    assert delete.status_code == 403
    assert TriggerFiring.objects.filter(pk=firing.pk).exists()


def post_events(client, key: str, *events: dict):
    return client.post(
        "/api/v1/events",
        json.dumps({"events": list(events)}),
        content_type="application/json",
        headers={"Authorization": f"Bearer {key}"},
    )


def test_an_event_posted_to_the_api_fires_once_however_often_it_is_sent(account, api_key, crm, make_rule, client):
    rule = make_rule(account, "question_asked", {"keyword": "price"})
    question = evt("question_asked", text="What's the price for 20 seats?")

    first = post_events(client, api_key, question, evt("question_asked", text="Do you have an API?"))
    again = post_events(client, api_key, question)

    assert first.status_code == 200, first.content
    assert again.json()["duplicates"] == 1
    [firing] = firings(rule)
    assert firing.event.external_id == question["event_id"]
    assert [row.dedupe_key for row in trigger_rows(crm)] == [f"trigger:{firing.pk}:0"]
