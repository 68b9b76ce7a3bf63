"""The score function, as tables: each rule kind, caps, decay, thresholds, negative points, bands."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from scoring.engine import (
    BandSpec,
    Contributor,
    RuleSpec,
    ScoredEvent,
    compute_score,
    format_contributors,
    grade_for,
)

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
BANDS = [BandSpec("cold", 0), BandSpec("warm", 40), BandSpec("hot", 80)]


def ev(type_: str, days_ago: float = 0, **data) -> ScoredEvent:
    return ScoredEvent(type_, NOW - timedelta(days=days_ago), data)


def rule(rule_id: int, event_type: str, points: int, **options) -> RuleSpec:
    conditions = options.pop("conditions", {})
    return RuleSpec(
        id=rule_id,
        name=options.pop("name", f"rule {rule_id}"),
        event_type=event_type,
        points=points,
        conditions=conditions,
        **options,
    )


VIEW = rule(1, "capsule_viewed", 5, name="Capsule view")
QUESTION = rule(2, "question_asked", 10, name="Question asked")
TIME_5_MIN = rule(3, "time_spent", 15, name="Time spent over 5 minutes", conditions={"min_seconds": 300})
DOWNLOAD = rule(4, "content_downloaded", 20, name="Content downloaded")
CTA = rule(5, "cta_clicked", 30, name="CTA clicked")
DEFAULTS = [VIEW, QUESTION, TIME_5_MIN, DOWNLOAD, CTA]


SCORE_CASES = [
    # (id, events, rules, expected score, expected breakdown {rule_id: (points, events)})
    ("no events", [], DEFAULTS, 0, {}),
    ("no rules", [ev("capsule_viewed")], [], 0, {}),
    ("one view", [ev("capsule_viewed")], DEFAULTS, 5, {"1": (5, 1)}),
    ("each view counts", [ev("capsule_viewed")] * 3, DEFAULTS, 15, {"1": (15, 3)}),
    (
        "each question counts",
        [ev("question_asked", text="a?"), ev("question_asked", text="b?")],
        DEFAULTS,
        20,
        {"2": (20, 2)},
    ),
    ("download", [ev("content_downloaded", content_id="c1")], DEFAULTS, 20, {"4": (20, 1)}),
    ("cta", [ev("cta_clicked", cta_id="x")], DEFAULTS, 30, {"5": (30, 1)}),
    ("events of types without a rule are ignored", [ev("content_accessed"), ev("lead_captured")], DEFAULTS, 0, {}),
    (
        "time: total exactly 300 s is not over 5 minutes",
        [ev("time_spent", 1, seconds=200), ev("time_spent", seconds=100)],
        DEFAULTS,
        0,
        {},
    ),
    (
        "time: total 301 s passes the threshold once",
        [ev("time_spent", 1, seconds=200), ev("time_spent", seconds=101)],
        DEFAULTS,
        15,
        {"3": (15, 2)},
    ),
    (
        "time: far past the threshold still gives the points once",
        [ev("time_spent", 3, seconds=400), ev("time_spent", 2, seconds=400), ev("time_spent", 1, seconds=400)],
        DEFAULTS,
        15,
        {"3": (15, 1)},
    ),
    ("time: events without seconds add nothing", [ev("time_spent"), ev("time_spent", seconds="999")], DEFAULTS, 0, {}),
    (
        "time without a threshold counts every event",
        [ev("time_spent", seconds=5)] * 2,
        [rule(9, "time_spent", 1)],
        2,
        {"9": (2, 2)},
    ),
    (
        "all defaults together",
        [
            ev("capsule_viewed"),
            ev("question_asked", text="q"),
            ev("time_spent", seconds=301),
            ev("content_downloaded"),
            ev("cta_clicked"),
        ],
        DEFAULTS,
        80,
        {"1": (5, 1), "2": (10, 1), "3": (15, 1), "4": (20, 1), "5": (30, 1)},
    ),
]

KEYWORD_CASES = [
    # (id, conditions, question text, counts)
    ("keyword found", {"keyword": "price"}, "What is the price?", True),
    ("keyword ignores case", {"keyword": "PRICE"}, "what's the Price for 10 seats", True),
    ("keyword missing", {"keyword": "price"}, "Do you offer SSO?", False),
    ("pattern found", {"pattern": r"pric(e|ing)|cost"}, "How much does it cost?", True),
    ("pattern ignores case", {"pattern": r"^do you"}, "DO YOU integrate with Slack?", True),
    ("pattern missing", {"pattern": r"\bsso\b"}, "What about SSOs?", False),
    (
        "keyword and pattern both hold",
        {"keyword": "enterprise", "pattern": r"\d+ seats"},
        "Enterprise plan for 40 seats?",
        True,
    ),
    (
        "keyword and pattern: one fails",
        {"keyword": "enterprise", "pattern": r"\d+ seats"},
        "Enterprise plan for a team?",
        False,
    ),
    ("no text never matches", {"keyword": "price"}, None, False),
]

THRESHOLD_CASES = [
    # (id, rule, event, counts)
    (
        "conversion at the minimum",
        rule(1, "conversion", 50, conditions={"min_value": 1000}),
        ev("conversion", value=1000, currency="EUR"),
        True,
    ),
    (
        "conversion below the minimum",
        rule(1, "conversion", 50, conditions={"min_value": 1000}),
        ev("conversion", value=999.99, currency="EUR"),
        False,
    ),
    ("conversion without minimum", rule(1, "conversion", 50), ev("conversion", value=0, currency="EUR"), True),
    (
        "negative sentiment at the maximum",
        rule(1, "sentiment", -10, conditions={"max_score": -0.3}),
        ev("sentiment", score=-0.3, label="negative"),
        True,
    ),
    (
        "sentiment above the maximum",
        rule(1, "sentiment", -10, conditions={"max_score": -0.3}),
        ev("sentiment", score=0.2, label="positive"),
        False,
    ),
    (
        "sentiment with a non-numeric score",
        rule(1, "sentiment", -10, conditions={"max_score": -0.3}),
        ev("sentiment", score=True, label="negative"),
        False,
    ),
]

CAP_CASES = [
    # (id, rule, number of events, expected points)
    ("under the cap", rule(1, "question_asked", 10, cap=30), 2, 20),
    ("at the cap", rule(1, "question_asked", 10, cap=30), 3, 30),
    ("over the cap", rule(1, "question_asked", 10, cap=30), 7, 30),
    ("negative points capped from below", rule(1, "sentiment", -10, cap=25), 4, -25),
    ("cap of zero gives nothing", rule(1, "question_asked", 10, cap=0), 2, 0),
]

DECAY_CASES = [
    # (id, rule, event ages in days, expected points)
    ("a fresh event is worth its points", rule(1, "cta_clicked", 30, decay_half_life_days=10), [0], 30),
    ("one half-life halves it", rule(1, "cta_clicked", 30, decay_half_life_days=10), [10], 15),
    ("two half-lives quarter it", rule(1, "cta_clicked", 40, decay_half_life_days=7), [14], 10),
    ("decay sums before rounding", rule(1, "cta_clicked", 5, decay_half_life_days=1), [1, 1, 1], 8),  # 7.5 -> 8
    ("an event from the future does not grow", rule(1, "cta_clicked", 30, decay_half_life_days=10), [-2], 30),
    ("decay applies before the cap", rule(1, "cta_clicked", 30, decay_half_life_days=10, cap=40), [10, 10, 10], 40),
    ("negative points decay too", rule(1, "sentiment", -20, decay_half_life_days=5), [5], -10),
    ("half rounds away from zero", rule(1, "sentiment", -5, decay_half_life_days=1), [1], -3),  # -2.5 -> -3
    ("very old events round to 0 but are still listed", rule(1, "cta_clicked", 30, decay_half_life_days=1), [60], 0),
]

BAND_CASES = [
    # (score, grade)
    (-15, "cold"),
    (0, "cold"),
    (39, "cold"),
    (40, "warm"),
    (79, "warm"),
    (80, "hot"),
    (1000, "hot"),
]


@pytest.mark.parametrize(
    ("events", "rules", "score", "breakdown"), [case[1:] for case in SCORE_CASES], ids=[case[0] for case in SCORE_CASES]
)
def test_score_and_breakdown(events, rules, score, breakdown):
    result = compute_score(events, rules, BANDS, NOW)

    assert result.score == score
    assert {key: (entry["points"], entry["events"]) for key, entry in result.breakdown.items()} == breakdown
    assert sum(entry["points"] for entry in result.breakdown.values()) == result.score


@pytest.mark.parametrize(
    ("conditions", "text", "counts"), [case[1:] for case in KEYWORD_CASES], ids=[case[0] for case in KEYWORD_CASES]
)
def test_question_keyword_and_pattern(conditions, text, counts):
    data = {} if text is None else {"text": text}
    result = compute_score(
        [ScoredEvent("question_asked", NOW, data)], [rule(7, "question_asked", 10, conditions=conditions)], BANDS, NOW
    )

    assert result.score == (10 if counts else 0)


@pytest.mark.parametrize(
    ("the_rule", "event", "counts"), [case[1:] for case in THRESHOLD_CASES], ids=[case[0] for case in THRESHOLD_CASES]
)
def test_value_thresholds(the_rule, event, counts):
    result = compute_score([event], [the_rule], BANDS, NOW)

    assert result.score == (the_rule.points if counts else 0)
    assert (str(the_rule.id) in result.breakdown) is counts


@pytest.mark.parametrize(
    ("the_rule", "count", "points"), [case[1:] for case in CAP_CASES], ids=[case[0] for case in CAP_CASES]
)
def test_caps(the_rule, count, points):
    events = [ev(the_rule.event_type, text="q?", score=-0.9, label="negative")] * count

    result = compute_score(events, [the_rule], BANDS, NOW)

    assert result.breakdown["1"] == {"name": the_rule.name, "points": points, "events": count}
    assert result.score == points


@pytest.mark.parametrize(
    ("the_rule", "ages", "points"), [case[1:] for case in DECAY_CASES], ids=[case[0] for case in DECAY_CASES]
)
def test_decay(the_rule, ages, points):
    events = [ev(the_rule.event_type, age, score=-0.9, label="negative") for age in ages]

    result = compute_score(events, [the_rule], BANDS, NOW)

    assert result.breakdown["1"]["points"] == points
    assert result.breakdown["1"]["events"] == len(ages)


def test_the_time_threshold_decays_from_the_event_that_crossed_it():
    timed = rule(3, "time_spent", 16, conditions={"min_seconds": 300}, decay_half_life_days=10)
    events = [ev("time_spent", 30, seconds=100), ev("time_spent", 20, seconds=250), ev("time_spent", 0, seconds=50)]

    result = compute_score(events, [timed], BANDS, NOW)

    assert result.breakdown["3"] == {"name": "rule 3", "points": 4, "events": 2}  # crossed 20 days ago: 16 / 4


def test_the_time_threshold_adds_up_in_time_order_whatever_order_events_come_in():
    events = [ev("time_spent", 0, seconds=250), ev("time_spent", 10, seconds=100)]
    timed = rule(3, "time_spent", 16, conditions={"min_seconds": 300}, decay_half_life_days=10)

    result = compute_score(events, [timed], BANDS, NOW)

    assert result.breakdown["3"]["points"] == 16  # crossed by today's event, not the 10-day-old one


@pytest.mark.parametrize(("score", "grade"), BAND_CASES)
def test_band_edges(score, grade):
    assert grade_for(score, BANDS) == grade


def test_bands_need_not_come_sorted():
    assert grade_for(50, list(reversed(BANDS))) == "warm"


def test_without_bands_there_is_no_grade():
    assert compute_score([ev("cta_clicked")], DEFAULTS, [], NOW).grade == ""


def test_grade_follows_the_summed_score():
    result = compute_score([ev("cta_clicked"), ev("cta_clicked"), ev("content_downloaded")], DEFAULTS, BANDS, NOW)

    assert (result.score, result.grade) == (80, "hot")


def test_negative_points_can_take_the_score_below_zero():
    unhappy = rule(6, "sentiment", -15, name="Negative sentiment", conditions={"max_score": -0.5})
    events = [ev("capsule_viewed"), ev("sentiment", score=-0.8, label="negative")]

    result = compute_score(events, [*DEFAULTS, unhappy], BANDS, NOW)

    assert result.score == -10
    assert result.grade == "cold"
    assert result.breakdown["6"] == {"name": "Negative sentiment", "points": -15, "events": 1}


def test_two_rules_can_count_the_same_event():
    pricing = rule(8, "question_asked", 5, name="Pricing question", conditions={"keyword": "price"})

    result = compute_score([ev("question_asked", text="What's the price?")], [QUESTION, pricing], BANDS, NOW)

    assert result.score == 15
    assert set(result.breakdown) == {"2", "8"}


def test_top_contributors_are_the_largest_by_size_then_name():
    unhappy = rule(6, "sentiment", -40, name="Negative sentiment")
    events = [
        ev("cta_clicked"),
        ev("question_asked", text="q"),
        ev("question_asked", text="q"),
        ev("capsule_viewed"),
        ev("sentiment", score=-1, label="negative"),
    ]

    result = compute_score(events, [*DEFAULTS, unhappy], BANDS, NOW)

    assert result.top_contributors == [
        Contributor("Negative sentiment", -40),
        Contributor("CTA clicked", 30),
        Contributor("Question asked", 20),
    ]
    assert format_contributors(result.top_contributors) == "Negative sentiment -40, CTA clicked 30, Question asked 20"


def test_a_rule_that_gives_zero_is_no_contributor():
    stale = rule(1, "cta_clicked", 30, name="Old click", decay_half_life_days=1)

    result = compute_score([ev("cta_clicked", 60)], [stale], BANDS, NOW)

    assert result.top_contributors == []
    assert format_contributors(result.top_contributors) == ""


def test_the_same_inputs_give_the_same_result():
    events = [ev("question_asked", 3, text="price?"), ev("cta_clicked", 1), ev("time_spent", 2, seconds=400)]
    rules = [*DEFAULTS, rule(9, "cta_clicked", 7, decay_half_life_days=3)]

    assert compute_score(events, rules, BANDS, NOW) == compute_score(list(reversed(events)), rules, BANDS, NOW)
