"""The pure evaluator: a table of cases per condition type, qualifying and not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from scoring.triggers.conditions import validate_condition
from scoring.triggers.evaluate import (
    Aggregates,
    EventFacts,
    GradeCrossing,
    RuleSpec,
    firings_for_event,
    firings_for_grade_change,
    low_engagement_due,
)

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def rule(condition_type: str, once_per_prospect: bool = False, **options) -> RuleSpec:
    # Options as they are stored: validated, defaults filled in.
    return RuleSpec(7, condition_type, validate_condition(condition_type, options), once_per_prospect)


def event(type_: str, capsule: str | None = "cap-1", **data) -> EventFacts:
    return EventFacts(
        id=101, prospect_id=5, type=type_, capsule_id=3 if capsule else None, capsule_ref=capsule, data=data
    )


VIEW, CTA, COMPLETED = (
    event("capsule_viewed"),
    event("cta_clicked", cta_id="demo", label="Book"),
    event("capsule_completed"),
)

EVENT_CASES = [
    # (case, rule, event, aggregates, fires)
    ("any view", rule("capsule_viewed"), VIEW, Aggregates(), True),
    ("view of the named capsule", rule("capsule_viewed", capsule_id="cap-1"), VIEW, Aggregates(), True),
    ("view of another capsule", rule("capsule_viewed", capsule_id="cap-2"), VIEW, Aggregates(), False),
    (
        "view without a capsule, capsule named",
        rule("capsule_viewed", capsule_id="cap-1"),
        event("capsule_viewed", None),
        Aggregates(),
        False,
    ),
    (
        "first view, first-view rule",
        rule("capsule_viewed", first_view_only=True),
        VIEW,
        Aggregates(first_view=True),
        True,
    ),
    (
        "return visit, first-view rule",
        rule("capsule_viewed", first_view_only=True),
        VIEW,
        Aggregates(first_view=False),
        False,
    ),
    ("return visit, any-view rule", rule("capsule_viewed"), VIEW, Aggregates(first_view=False), True),
    ("not a view", rule("capsule_viewed"), CTA, Aggregates(), False),
    (
        "time reaches the threshold",
        rule("high_engagement", min_seconds=300),
        event("time_spent", seconds=101),
        Aggregates(seconds_before=200, seconds_after=301),
        True,
    ),
    (
        "time lands exactly on it",
        rule("high_engagement", min_seconds=300),
        event("time_spent", seconds=100),
        Aggregates(seconds_before=200, seconds_after=300),
        True,
    ),
    (
        "time still below",
        rule("high_engagement", min_seconds=300),
        event("time_spent", seconds=99),
        Aggregates(seconds_before=200, seconds_after=299),
        False,
    ),
    (
        "time was already over",
        rule("high_engagement", min_seconds=300),
        event("time_spent", seconds=60),
        Aggregates(seconds_before=400, seconds_after=460),
        False,
    ),
    (
        "score reaches the threshold",
        rule("high_engagement", min_score=80),
        CTA,
        Aggregates(score_before=70, score_after=100),
        True,
    ),
    (
        "score was already over",
        rule("high_engagement", min_score=80),
        CTA,
        Aggregates(score_before=85, score_after=115),
        False,
    ),
    (
        "score stays below",
        rule("high_engagement", min_score=80),
        CTA,
        Aggregates(score_before=10, score_after=40),
        False,
    ),
    (
        "time reached while score was already over",
        rule("high_engagement", min_seconds=300, min_score=80),
        event("time_spent", seconds=400),
        Aggregates(seconds_after=400, score_before=90, score_after=90),
        False,
    ),
    (
        "score reached, time below",
        rule("high_engagement", min_seconds=300, min_score=80),
        CTA,
        Aggregates(score_before=50, score_after=80),
        True,
    ),
    (
        "keyword, any case",
        rule("question_asked", keyword="price"),
        event("question_asked", text="What is the PRICE?"),
        Aggregates(),
        True,
    ),
    (
        "keyword missing",
        rule("question_asked", keyword="price"),
        event("question_asked", text="Who are you?"),
        Aggregates(),
        False,
    ),
    (
        "pattern matches",
        rule("question_asked", pattern=r"pric(e|ing)|cost"),
        event("question_asked", text="Pricing for 10 seats?"),
        Aggregates(),
        True,
    ),
    (
        "pattern does not match",
        rule("question_asked", pattern=r"pric(e|ing)|cost"),
        event("question_asked", text="Is there an API?"),
        Aggregates(),
        False,
    ),
    (
        "keyword and pattern both match",
        rule("question_asked", keyword="seats", pattern=r"\d+"),
        event("question_asked", text="Price for 10 seats?"),
        Aggregates(),
        True,
    ),
    (
        "keyword matches, pattern not",
        rule("question_asked", keyword="seats", pattern=r"\d+"),
        event("question_asked", text="Price for many seats?"),
        Aggregates(),
        False,
    ),
    (
        "question text on another event type",
        rule("question_asked", keyword="price"),
        event("capsule_viewed", text="price"),
        Aggregates(),
        False,
    ),
    ("any CTA", rule("cta_clicked"), CTA, Aggregates(), True),
    ("the named CTA", rule("cta_clicked", cta_id="demo"), CTA, Aggregates(), True),
    ("another CTA", rule("cta_clicked", cta_id="pricing"), CTA, Aggregates(), False),
    ("not a CTA", rule("cta_clicked"), VIEW, Aggregates(), False),
    (
        "score below -0.3",
        rule("negative_sentiment"),
        event("sentiment", score=-0.5, label="neutral"),
        Aggregates(),
        True,
    ),
    (
        "score exactly -0.3",
        rule("negative_sentiment"),
        event("sentiment", score=-0.3, label="neutral"),
        Aggregates(),
        True,
    ),
    (
        "mildly negative score",
        rule("negative_sentiment"),
        event("sentiment", score=-0.2, label="neutral"),
        Aggregates(),
        False,
    ),
    (
        "labelled negative",
        rule("negative_sentiment"),
        event("sentiment", score=-0.1, label="negative"),
        Aggregates(),
        True,
    ),
    (
        "labelled negative, label ignored",
        rule("negative_sentiment", negative_label=False),
        event("sentiment", score=-0.1, label="negative"),
        Aggregates(),
        False,
    ),
    (
        "own threshold",
        rule("negative_sentiment", max_score=-0.8),
        event("sentiment", score=-0.5, label="neutral"),
        Aggregates(),
        False,
    ),
    ("positive", rule("negative_sentiment"), event("sentiment", score=0.9, label="positive"), Aggregates(), False),
    ("completed", rule("capsule_completed"), COMPLETED, Aggregates(), True),
    ("completed, named capsule", rule("capsule_completed", capsule_id="cap-1"), COMPLETED, Aggregates(), True),
    ("completed, another capsule", rule("capsule_completed", capsule_id="cap-9"), COMPLETED, Aggregates(), False),
    ("not completed", rule("capsule_completed"), VIEW, Aggregates(), False),
    (
        "grade rules ignore events",
        rule("grade_crossed", to_grade="hot"),
        CTA,
        Aggregates(score_before=0, score_after=100),
        False,
    ),
    ("schedule rules ignore events", rule("low_engagement", days=7, max_score=40), VIEW, Aggregates(), False),
]


@pytest.mark.parametrize(
    ("spec", "facts", "aggregates", "fires"), [case[1:] for case in EVENT_CASES], ids=[case[0] for case in EVENT_CASES]
)
def test_event_conditions(spec, facts, aggregates, fires):
    firings = firings_for_event([spec], facts, aggregates)

    assert [f.rule_id for f in firings] == ([7] if fires else [])
    assert all(f.prospect_id == 5 and f.event_id == 101 for f in firings)


def test_each_firing_key_says_what_may_fire_only_once():
    assert firings_for_event([rule("cta_clicked")], CTA, Aggregates())[0].key == "rule:7:event:101"
    assert (
        firings_for_event([rule("cta_clicked", once_per_prospect=True)], CTA, Aggregates())[0].key
        == "rule:7:prospect:5"
    )
    first = firings_for_event([rule("capsule_viewed", first_view_only=True)], VIEW, Aggregates(first_view=True))
    assert first[0].key == "rule:7:prospect:5:capsule:3"


def test_several_rules_fire_for_one_event_in_their_order():
    rules = [RuleSpec(1, "cta_clicked"), RuleSpec(2, "capsule_viewed"), RuleSpec(3, "cta_clicked", {"cta_id": "demo"})]

    assert [f.rule_id for f in firings_for_event(rules, CTA, Aggregates())] == [1, 3]


BANDS = {"cold": 0, "warm": 40, "hot": 80}

GRADE_CASES = [
    ("up into hot", rule("grade_crossed", to_grade="hot"), GradeCrossing(9, 5, "warm", "hot"), True),
    ("straight from cold", rule("grade_crossed", to_grade="hot"), GradeCrossing(9, 5, "cold", "hot"), True),
    ("into another band", rule("grade_crossed", to_grade="hot"), GradeCrossing(9, 5, "cold", "warm"), False),
    ("down into warm, upwards only", rule("grade_crossed", to_grade="warm"), GradeCrossing(9, 5, "hot", "warm"), False),
    (
        "down into warm, both ways",
        rule("grade_crossed", to_grade="warm", upwards_only=False),
        GradeCrossing(9, 5, "hot", "warm"),
        True,
    ),
    (
        "moved by a recompute",
        rule("grade_crossed", to_grade="hot"),
        GradeCrossing(9, 5, "warm", "hot", by_recompute=True),
        False,
    ),
    (
        "moved by a recompute, allowed",
        rule("grade_crossed", to_grade="hot", on_recompute=True),
        GradeCrossing(9, 5, "warm", "hot", by_recompute=True),
        True,
    ),
    (
        "from a band that no longer exists",
        rule("grade_crossed", to_grade="hot"),
        GradeCrossing(9, 5, "lukewarm", "hot"),
        True,
    ),
    ("event rules ignore grades", rule("cta_clicked"), GradeCrossing(9, 5, "warm", "hot"), False),
]


@pytest.mark.parametrize(
    ("spec", "crossing", "fires"), [case[1:] for case in GRADE_CASES], ids=[case[0] for case in GRADE_CASES]
)
def test_grade_crossed(spec, crossing, fires):
    firings = firings_for_grade_change([spec], crossing, BANDS)

    assert [(f.rule_id, f.prospect_id, f.event_id, f.key) for f in firings] == (
        [(7, 5, None, "rule:7:grade-change:9")] if fires else []
    )


def test_grade_crossed_once_per_prospect_uses_the_prospect_key():
    firings = firings_for_grade_change(
        [rule("grade_crossed", True, to_grade="hot")], GradeCrossing(9, 5, "warm", "hot"), BANDS
    )

    assert [f.key for f in firings] == ["rule:7:prospect:5"]


CREATED = NOW - timedelta(days=30)
LOW_CASES = [
    ("viewed 8 days ago, score 10", NOW - timedelta(days=8), 10, CREATED, True),
    ("exactly 7 days ago", NOW - timedelta(days=7), 10, CREATED, True),
    ("viewed 6 days ago", NOW - timedelta(days=6), 10, CREATED, False),
    ("score at the threshold", NOW - timedelta(days=8), 40, CREATED, False),
    ("never viewed", None, 0, CREATED, False),
    ("days ran out before the rule existed", NOW - timedelta(days=20), 0, NOW - timedelta(days=1), False),
    ("days ran out just after the rule was made", NOW - timedelta(days=8), 0, NOW - timedelta(days=1), True),
]


@pytest.mark.parametrize(
    ("first_view", "score", "created", "due"), [case[1:] for case in LOW_CASES], ids=[case[0] for case in LOW_CASES]
)
def test_low_engagement(first_view, score, created, due):
    options = validate_condition("low_engagement", {"days": 7, "max_score": 40})

    assert low_engagement_due(options, first_view_at=first_view, score=score, now=NOW, rule_created_at=created) is due
