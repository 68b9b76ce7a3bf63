"""Incremental scoring: events that arrive rescore their prospects in the same transaction."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from crmsync.models import Prospect
from scoring.models import ProspectScore, ScoringRule
from tests.scoring.conftest import event


def score_of(account, email: str) -> ProspectScore:
    return ProspectScore.objects.get(prospect__account=account, prospect__email=email)


def rule_id(account, event_type: str) -> str:
    return str(ScoringRule.objects.get(account=account, event_type=event_type).pk)


def test_an_ingested_event_scores_its_prospect(account, ingest):
    ingest(account, event("capsule_viewed"), event("question_asked"), event("question_asked"))

    score = score_of(account, "ann@example.com")
    assert score.score == 25
    assert score.grade == "cold"
    assert score.account_id == account.pk
    assert score.breakdown == {
        rule_id(account, "capsule_viewed"): {"name": "Capsule view", "points": 5, "events": 1},
        rule_id(account, "question_asked"): {"name": "Question asked", "points": 20, "events": 2},
    }
    assert score.top_contributors == "Question asked 20, Capsule view 5"


def test_later_events_add_to_the_score(account, ingest):
    ingest(account, event("cta_clicked"))
    ingest(account, event("content_downloaded"))

    score = score_of(account, "ann@example.com")
    assert score.score == 50
    assert score.grade == "warm"


def test_time_spent_counts_once_its_total_passes_five_minutes(account, ingest):
    ingest(account, event("time_spent", seconds=200))
    assert score_of(account, "ann@example.com").score == 0

    ingest(account, event("time_spent", seconds=101))
    assert score_of(account, "ann@example.com").score == 15

    ingest(account, event("time_spent", seconds=900))
    assert score_of(account, "ann@example.com").score == 15


def test_a_replayed_event_is_not_counted_twice(account, ingest):
    view = event("capsule_viewed")
    ingest(account, view)
    ingest(account, view)

    assert score_of(account, "ann@example.com").score == 5


def test_each_prospect_of_a_batch_gets_its_own_score(account, ingest):
    ingest(account, event("cta_clicked", "ann@example.com"), event("capsule_viewed", "bob@example.com"))

    assert score_of(account, "ann@example.com").score == 30
    assert score_of(account, "bob@example.com").score == 5


def test_anonymous_events_count_once_the_visitor_is_identified(account, ingest):
    anonymous = event("cta_clicked", None)
    anonymous["visitor_id"] = "vis-1"
    ingest(account, anonymous)
    assert not ProspectScore.objects.exists()

    identified = event("capsule_viewed")
    identified["visitor_id"] = "vis-1"
    ingest(account, identified)

    assert score_of(account, "ann@example.com").score == 35


def test_a_disabled_rule_gives_nothing(account, ingest):
    ScoringRule.objects.filter(account=account, event_type="cta_clicked").update(enabled=False)

    ingest(account, event("cta_clicked"), event("capsule_viewed"))

    assert score_of(account, "ann@example.com").score == 5


def test_the_accounts_own_rules_apply(account, make_account, ingest):
    other = make_account("Other Co")
    ScoringRule.objects.filter(account=other, event_type="cta_clicked").update(points=100)

    ingest(account, event("cta_clicked"))
    ingest(other, event("cta_clicked"))

    assert score_of(account, "ann@example.com").score == 30
    assert score_of(other, "ann@example.com").score == 100


def test_keyword_rules_score_matching_questions(account, ingest):
    ScoringRule.objects.create(
        account=account,
        name="Pricing question",
        event_type="question_asked",
        points=25,
        conditions={"pattern": r"pric(e|ing)"},
    )

    ingest(account, event("question_asked", text="What does Pricing look like?"), event("question_asked", text="SSO?"))

    score = score_of(account, "ann@example.com")
    assert score.score == 45  # 2 x 10 for any question, 25 for the pricing one
    assert score.top_contributors == "Pricing question 25, Question asked 20"


def test_decayed_points_are_computed_at_ingest_time(account, ingest):
    ScoringRule.objects.filter(account=account, event_type="cta_clicked").update(decay_half_life_days=30)

    ingest(account, event("cta_clicked", at=timezone.now() - timedelta(days=30, minutes=1)))

    assert score_of(account, "ann@example.com").score == 15


def test_the_hook_uses_a_fixed_number_of_queries(account, ingest):
    ingest(account, *[event("capsule_viewed", f"p{n}@example.com") for n in range(3)])
    baseline_events = [event("question_asked", f"p{n}@example.com") for n in range(3)]
    many_events = [event("question_asked", f"q{n}@example.com") for n in range(60)]

    with CaptureQueriesContext(connection) as few:
        ingest(account, *baseline_events)
    with CaptureQueriesContext(connection) as many:
        ingest(account, *many_events)

    scoring_queries = [q for q in many.captured_queries if "scoring_" in q["sql"]]
    assert len(scoring_queries) <= 5  # rules, bands, previous scores, upsert (+ grade changes)
    assert len(many.captured_queries) <= len(few.captured_queries) + 2  # 20 times the prospects, same cost
    assert ProspectScore.objects.filter(account=account).count() == 63


def test_the_events_api_updates_the_score(client, account, api_key):
    body = {"events": [event("cta_clicked", "Carol@Example.com"), event("content_downloaded", "carol@example.com")]}

    response = client.post(
        "/api/v1/events", json.dumps(body), content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {api_key}"
    )

    assert response.status_code == 200, response.content
    prospect = Prospect.objects.get(account=account, email="carol@example.com")
    assert (prospect.score.score, prospect.score.grade) == (50, "warm")
    assert prospect.score.breakdown[rule_id(account, "cta_clicked")]["points"] == 30


def test_an_ingest_whose_scoring_fails_stores_nothing(account, ingest):
    ScoringRule.objects.filter(account=account, event_type="question_asked").update(conditions={"pattern": "("})

    with pytest.raises(Exception, match="missing"):
        ingest(account, event("question_asked"))

    assert not Prospect.objects.filter(account=account).exists()
    assert not ProspectScore.objects.exists()
