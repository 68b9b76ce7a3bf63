"""Which trigger rules fire: pure functions of a rule, an event (or a grade change, or a schedule
tick) and the prospect's aggregates. No database, no clock: tests/triggers/test_evaluate.py is a
table of cases, and the ingest hook, the grade listener and the periodic job share one meaning.

Firing keys
-----------
Every firing has a key; ``TriggerFiring.key`` is unique, so the key *is* the "exactly once":

===========================================  ==================================================
``rule:<id>:event:<event id>``               once per qualifying event (the default)
``rule:<id>:prospect:<id>``                  ``once_per_prospect`` rules, and low engagement
``rule:<id>:prospect:<id>:capsule:<id>``     capsule views with "first view only": once per
                                             prospect and capsule, even if an older view
                                             arrives late
``rule:<id>:grade-change:<grade change id>``  grade band reached, once per crossing
===========================================  ==================================================
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from scoring.triggers.conditions import ConditionType


@dataclass(frozen=True)
class RuleSpec:
    id: int
    condition_type: str
    options: Mapping[str, Any] = field(default_factory=dict)
    once_per_prospect: bool = False


@dataclass(frozen=True)
class EventFacts:
    """A new event of a known prospect."""

    id: int
    prospect_id: int
    type: str
    capsule_id: int | None = None  # our Capsule row
    capsule_ref: str | None = None  # the capsule platform's id, which rules name
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Aggregates:
    """The prospect just before and just after the event (``facts.load_aggregates`` explains "just")."""

    seconds_before: int = 0
    seconds_after: int = 0
    score_before: int = 0
    score_after: int = 0
    first_view: bool = False  # the event is the prospect's earliest view of its capsule


@dataclass(frozen=True)
class GradeCrossing:
    change_id: int
    prospect_id: int
    old: str
    new: str
    by_recompute: bool = False  # moved by changed rules or bands rather than by new events


@dataclass(frozen=True)
class Firing:
    rule_id: int
    prospect_id: int
    event_id: int | None
    key: str


# --- events ---------------------------------------------------------------------------------------


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


@lru_cache(maxsize=256)
def compiled_pattern(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


def _capsule_matches(options: Mapping[str, Any], event: EventFacts) -> bool:
    wanted = options.get("capsule_id")
    return not wanted or wanted == event.capsule_ref


def _capsule_viewed(options: Mapping[str, Any], event: EventFacts, agg: Aggregates) -> bool:
    if event.type != "capsule_viewed" or not _capsule_matches(options, event):
        return False
    return agg.first_view or not options.get("first_view_only")


def _engaged(options: Mapping[str, Any], seconds: int, score: int) -> bool:
    min_seconds, min_score = options.get("min_seconds"), options.get("min_score")
    return (min_seconds is not None and seconds >= min_seconds) or (min_score is not None and score >= min_score)


def _high_engagement(options: Mapping[str, Any], event: EventFacts, agg: Aggregates) -> bool:
    # A threshold fires when it is reached, not for every later event while it stays reached.
    return _engaged(options, agg.seconds_after, agg.score_after) and not _engaged(
        options, agg.seconds_before, agg.score_before
    )


def _question_asked(options: Mapping[str, Any], event: EventFacts, agg: Aggregates) -> bool:
    text = event.data.get("text")
    if event.type != "question_asked" or not isinstance(text, str):
        return False
    keyword = options.get("keyword")
    if keyword and keyword.casefold() not in text.casefold():
        return False
    pattern = options.get("pattern")
    return not pattern or compiled_pattern(pattern).search(text) is not None


def _cta_clicked(options: Mapping[str, Any], event: EventFacts, agg: Aggregates) -> bool:
    wanted = options.get("cta_id")
    return event.type == "cta_clicked" and (not wanted or event.data.get("cta_id") == wanted)


def _negative_sentiment(options: Mapping[str, Any], event: EventFacts, agg: Aggregates) -> bool:
    if event.type != "sentiment":
        return False
    if options.get("negative_label", True) and event.data.get("label") == "negative":
        return True
    score = _number(event.data.get("score"))
    maximum = options.get("max_score")
    return score is not None and maximum is not None and score <= maximum


def _capsule_completed(options: Mapping[str, Any], event: EventFacts, agg: Aggregates) -> bool:
    return event.type == "capsule_completed" and _capsule_matches(options, event)


EventMatcher = Callable[[Mapping[str, Any], EventFacts, Aggregates], bool]

# What each event-driven condition means. Grade and schedule conditions have their own functions below.
EVENT_MATCHERS: dict[str, EventMatcher] = {
    ConditionType.CAPSULE_VIEWED: _capsule_viewed,
    ConditionType.HIGH_ENGAGEMENT: _high_engagement,
    ConditionType.QUESTION_ASKED: _question_asked,
    ConditionType.CTA_CLICKED: _cta_clicked,
    ConditionType.NEGATIVE_SENTIMENT: _negative_sentiment,
    ConditionType.CAPSULE_COMPLETED: _capsule_completed,
}


def prospect_key(rule_id: int, prospect_id: int) -> str:
    return f"rule:{rule_id}:prospect:{prospect_id}"


def _event_key(rule: RuleSpec, event: EventFacts) -> str:
    if rule.once_per_prospect:
        return prospect_key(rule.id, event.prospect_id)
    if rule.condition_type == ConditionType.CAPSULE_VIEWED and rule.options.get("first_view_only"):
        return f"{prospect_key(rule.id, event.prospect_id)}:capsule:{event.capsule_id or 0}"
    return f"rule:{rule.id}:event:{event.id}"


def firings_for_event(rules: Iterable[RuleSpec], event: EventFacts, aggregates: Aggregates) -> list[Firing]:
    """The firings ``event`` causes, one per rule whose condition it meets, in the rules' order."""
    firings = []
    for rule in rules:
        matcher = EVENT_MATCHERS.get(rule.condition_type)
        if matcher is not None and matcher(rule.options, event, aggregates):
            firings.append(Firing(rule.id, event.prospect_id, event.id, _event_key(rule, event)))
    return firings


# --- grade changes --------------------------------------------------------------------------------


def firings_for_grade_change(
    rules: Iterable[RuleSpec], crossing: GradeCrossing, band_minimums: Mapping[str, int]
) -> list[Firing]:
    """The firings of ``grade_crossed`` rules for one crossing. ``band_minimums`` gives each band's
    lowest score, which orders the bands for "upwards only"; an unknown old grade counts as lowest."""
    firings = []
    for rule in rules:
        if rule.condition_type != ConditionType.GRADE_CROSSED or rule.options.get("to_grade") != crossing.new:
            continue
        if crossing.by_recompute and not rule.options.get("on_recompute"):
            continue
        if rule.options.get("upwards_only", True):
            old_minimum = band_minimums.get(crossing.old)
            new_minimum = band_minimums.get(crossing.new)
            if new_minimum is None or (old_minimum is not None and old_minimum >= new_minimum):
                continue
        key = (
            prospect_key(rule.id, crossing.prospect_id)
            if rule.once_per_prospect
            else f"rule:{rule.id}:grade-change:{crossing.change_id}"
        )
        firings.append(Firing(rule.id, crossing.prospect_id, None, key))
    return firings


# --- the periodic check ---------------------------------------------------------------------------


def low_engagement_window(
    options: Mapping[str, Any], now: datetime, rule_created_at: datetime
) -> tuple[datetime, datetime]:
    """First views in [earliest, latest] are due: their N days are over, and were not over before the
    rule existed (a new rule does not fire for every old prospect at once)."""
    days = timedelta(days=options["days"])
    return rule_created_at - days, now - days


def low_engagement_due(
    options: Mapping[str, Any], *, first_view_at: datetime | None, score: int, now: datetime, rule_created_at: datetime
) -> bool:
    """Whether a ``low_engagement`` rule fires for a prospect (at most once: key ``rule:…:prospect:…``)."""
    if first_view_at is None or score >= options["max_score"]:
        return False
    earliest, latest = low_engagement_window(options, now, rule_created_at)
    return earliest <= first_view_at <= latest
