"""Conditions that do not come from one event: a grade band reached (the scoring listener) and
low engagement (the periodic job)."""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from crmsync.models import Prospect
from scoring.models import GradeBand, GradeChange
from scoring.models_triggers import TriggerRule
from scoring.service import score_prospects
from scoring.triggers.jobs import evaluate_low_engagement
from tests.triggers.conftest import evt, firings, trigger_rows


def test_reaching_a_grade_fires_once_per_crossing(account, crm, make_rule, ingest):
    # Default bands: cold from 0, warm from 40, hot from 80; a CTA click gives 30 points.
    hot = make_rule(account, "grade_crossed", {"to_grade": "hot"})
    warm = make_rule(account, "grade_crossed", {"to_grade": "warm"})

    ingest(account, evt("cta_clicked"), evt("cta_clicked"))  # 60: warm
    ingest(account, evt("cta_clicked"))  # 90: hot
    ingest(account, evt("cta_clicked"), evt("capsule_viewed"))  # still hot

    [to_hot] = firings(hot)
    [to_warm] = firings(warm)
    change = GradeChange.objects.get(prospect=to_hot.prospect, to_grade="hot")
    assert to_hot.key == f"rule:{hot.pk}:grade-change:{change.pk}"
    assert to_hot.event is None
    assert to_warm.prospect == to_hot.prospect
    assert [row.dedupe_key for row in trigger_rows(crm)] == [f"trigger:{to_warm.pk}:0", f"trigger:{to_hot.pk}:0"]


def test_grades_moved_by_a_recompute_fire_only_rules_that_ask_for_it(account, make_rule, ingest):
    ingest(account, evt("cta_clicked"), evt("cta_clicked"), evt("cta_clicked"))  # 90: hot
    down = make_rule(account, "grade_crossed", {"to_grade": "warm", "upwards_only": False, "on_recompute": True})
    up_only = make_rule(account, "grade_crossed", {"to_grade": "warm", "on_recompute": True}, name="Up only")
    events_only = make_rule(account, "grade_crossed", {"to_grade": "warm", "upwards_only": False}, name="Events")
    GradeBand.objects.filter(account=account, name="hot").update(min_score=100)
    prospect = Prospect.objects.get(account=account, email="ann@example.com")

    with transaction.atomic():
        score_prospects(account.pk, [prospect.pk], reason=GradeChange.Reason.RECOMPUTE)

    assert [f.prospect for f in firings(down)] == [prospect]
    assert firings(up_only) == []
    assert firings(events_only) == []


def test_a_disabled_grade_rule_does_not_fire(account, make_rule, ingest):
    rule = make_rule(account, "grade_crossed", {"to_grade": "hot"}, enabled=False)

    ingest(account, evt("cta_clicked"), evt("cta_clicked"), evt("cta_clicked"))

    assert firings(rule) == []


def low_engagement_rule(make_rule, account, *, created_days_ago: int = 2) -> TriggerRule:
    rule = make_rule(
        account,
        "low_engagement",
        {"days": 7, "max_score": 40},
        actions=[{"type": "add_to_list", "list_id": "nurture"}],
    )
    TriggerRule.objects.filter(pk=rule.pk).update(created_at=timezone.now() - timedelta(days=created_days_ago))
    rule.refresh_from_db()
    return rule


def test_low_engagement_fires_once_for_prospects_still_cold_days_after_their_first_view(
    account, crm, make_rule, ingest
):
    long_ago = timezone.now() - timedelta(days=8)
    ingest(account, evt("capsule_viewed", "ann@example.com", at=long_ago))  # 5 points: low
    ingest(account, evt("capsule_viewed", "bob@example.com", at=long_ago))
    ingest(account, evt("cta_clicked", "bob@example.com"), evt("cta_clicked", "bob@example.com"))  # 65: engaged
    ingest(account, evt("capsule_viewed", "cy@example.com", at=timezone.now() - timedelta(days=3)))  # too early
    ingest(account, evt("cta_clicked", "di@example.com"))  # never viewed a capsule
    rule = low_engagement_rule(make_rule, account)

    assert evaluate_low_engagement() == 1
    assert evaluate_low_engagement() == 0  # the next hour: already fired

    [firing] = firings(rule)
    assert firing.prospect.email == "ann@example.com"
    assert firing.key == f"rule:{rule.pk}:prospect:{firing.prospect_id}"
    assert firing.event is None
    [row] = trigger_rows(crm)
    assert row.payload["list_id"] == "nurture"

    assert evaluate_low_engagement(now=timezone.now() + timedelta(days=5)) == 1  # cy's seven days are over
    assert sorted(f.prospect.email for f in firings(rule)) == ["ann@example.com", "cy@example.com"]


def test_a_new_low_engagement_rule_leaves_prospects_whose_days_ran_out_earlier_alone(account, make_rule, ingest):
    ingest(account, evt("capsule_viewed", at=timezone.now() - timedelta(days=30)))
    rule = low_engagement_rule(make_rule, account, created_days_ago=0)

    assert evaluate_low_engagement() == 0
    assert firings(rule) == []


def test_a_disabled_low_engagement_rule_does_not_fire(account, make_rule, ingest):
    ingest(account, evt("capsule_viewed", at=timezone.now() - timedelta(days=8)))
    rule = low_engagement_rule(make_rule, account)
    TriggerRule.objects.filter(pk=rule.pk).update(enabled=False)

    assert evaluate_low_engagement() == 0
