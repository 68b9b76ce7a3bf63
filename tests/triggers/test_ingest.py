"""Event conditions through the real ingest: each fires exactly once per qualifying event, never
for a non-qualifying one, never again for a replay."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from crmsync.models import Event
from integrations.models import OutboxKind
from scoring.models_triggers import TriggerFiring
from tests.triggers.conftest import evt, firings, trigger_rows

EVENT_RULES = [
    # (condition type, options, a qualifying event, a non-qualifying event)
    ("capsule_viewed", {"capsule_id": "cap-1"}, evt("capsule_viewed"), evt("capsule_viewed", capsule="cap-2")),
    ("high_engagement", {"min_seconds": 300}, evt("time_spent", seconds=301), evt("time_spent", seconds=299)),
    (
        "question_asked",
        {"pattern": r"pric(e|ing)"},
        evt("question_asked", text="What does pricing look like?"),
        evt("question_asked", text="Who else uses this?"),
    ),
    ("cta_clicked", {"cta_id": "book-demo"}, evt("cta_clicked", cta_id="book-demo"), evt("cta_clicked", cta_id="faq")),
    (
        "negative_sentiment",
        {},
        evt("sentiment", score=-0.6, label="negative"),
        evt("sentiment", score=0.4, label="positive"),
    ),
    ("capsule_completed", {}, evt("capsule_completed"), evt("capsule_viewed")),
]


@pytest.mark.parametrize(
    ("condition_type", "options", "qualifying", "other"), EVENT_RULES, ids=[case[0] for case in EVENT_RULES]
)
def test_each_trigger_type_fires_once_per_qualifying_event(
    account, crm, make_rule, ingest, condition_type, options, qualifying, other
):
    rule = make_rule(account, condition_type, options)

    ingest(account, dict(other))
    assert firings(rule) == []
    assert trigger_rows(crm) == []

    ingest(account, dict(qualifying))
    ingest(account, dict(qualifying))  # the platform retries: the event is a duplicate now

    [firing] = firings(rule)
    stored = Event.objects.get(account=account, external_id=qualifying["event_id"])
    assert firing.event_id == stored.pk
    assert firing.key == f"rule:{rule.pk}:event:{stored.pk}"
    assert firing.prospect.email == "ann@example.com"
    assert [(row.kind, row.dedupe_key) for row in trigger_rows(crm)] == [(OutboxKind.NOTE, f"trigger:{firing.pk}:0")]


def test_every_qualifying_event_of_a_batch_fires(account, make_rule, ingest):
    rule = make_rule(account, "cta_clicked")

    ingest(account, evt("cta_clicked"), evt("capsule_viewed"), evt("cta_clicked", "bob@example.com"))

    assert sorted(f.prospect.email for f in firings(rule)) == ["ann@example.com", "bob@example.com"]


def test_once_per_prospect_fires_for_the_first_qualifying_event_only(account, make_rule, ingest):
    rule = make_rule(account, "cta_clicked", once_per_prospect=True)

    first = evt("cta_clicked")
    ingest(account, first, evt("cta_clicked"))
    ingest(account, evt("cta_clicked"))
    ingest(account, evt("cta_clicked", "bob@example.com"))

    ann, bob = firings(rule)
    assert ann.event.external_id == first["event_id"]
    assert ann.key == f"rule:{rule.pk}:prospect:{ann.prospect_id}"
    assert bob.prospect.email == "bob@example.com"


def test_first_view_only_fires_once_per_capsule(account, make_rule, ingest):
    rule = make_rule(account, "capsule_viewed", {"first_view_only": True})
    earlier = timezone.now() - timedelta(hours=3)

    ingest(account, evt("capsule_viewed"))
    ingest(account, evt("capsule_viewed"))  # a return visit
    ingest(account, evt("capsule_viewed", capsule="cap-2"))
    ingest(account, evt("capsule_viewed", at=earlier))  # an older view delivered late

    assert [f.event.capsule.external_id for f in firings(rule)] == ["cap-1", "cap-2"]


def test_a_time_threshold_fires_when_the_total_reaches_it(account, make_rule, ingest):
    rule = make_rule(account, "high_engagement", {"min_seconds": 300})

    ingest(account, evt("time_spent", seconds=200))
    assert firings(rule) == []
    crossing = evt("time_spent", seconds=120)
    ingest(account, evt("capsule_viewed"), crossing, evt("time_spent", seconds=50))
    ingest(account, evt("time_spent", seconds=600))

    [firing] = firings(rule)
    assert firing.event.external_id == crossing["event_id"]


def test_a_score_threshold_fires_when_the_score_reaches_it(account, make_rule, ingest):
    # Default scoring: a view 5, a question 10, a CTA click 30.
    rule = make_rule(account, "high_engagement", {"min_score": 40})

    ingest(account, evt("cta_clicked"), evt("capsule_viewed"))  # 35
    assert firings(rule) == []
    reaching = evt("question_asked", text="How?")
    ingest(account, reaching)  # 45
    ingest(account, evt("question_asked", text="And then?"))  # 55: still over, nothing new

    [firing] = firings(rule)
    assert firing.event.external_id == reaching["event_id"]


def test_time_an_anonymous_visitor_spent_counts_when_they_are_identified(account, make_rule, ingest):
    rule = make_rule(account, "high_engagement", {"min_seconds": 300})

    ingest(account, evt("time_spent", None, visitor="v-1", seconds=400))
    assert firings(rule) == []  # nobody to act on yet
    identify = evt("lead_captured", visitor="v-1")
    ingest(account, identify)
    ingest(account, evt("time_spent", visitor="v-1", seconds=30))

    [firing] = firings(rule)
    assert firing.event.external_id == identify["event_id"]


def test_anonymous_events_fire_nothing(account, make_rule, ingest):
    rule = make_rule(account, "cta_clicked")

    ingest(account, evt("cta_clicked", None, visitor="v-9"))

    assert firings(rule) == []


def test_disabled_rules_and_other_accounts_rules_do_not_fire(account, make_account, make_rule, ingest):
    disabled = make_rule(account, "cta_clicked", enabled=False)
    elsewhere = make_rule(make_account("Other Co"), "cta_clicked")

    ingest(account, evt("cta_clicked"))

    assert firings(disabled) == []
    assert firings(elsewhere) == []
    assert TriggerFiring.objects.count() == 0
