"""The lead score of one prospect, as one pure function: events, rules and bands in; score out.

Nothing here touches the database or the clock: callers load the inputs (``scoring.service``)
and pass ``now``. That keeps the rules exactly testable (tests/scoring/test_engine.py is a
table of cases) and lets the ingest hook and the full recompute share one definition of a score.

How a rule scores
-----------------
- A rule looks only at events of its ``event_type`` that satisfy its ``conditions``:

  ===================  ===============  =====================================================
  event type           condition        an event counts when
  ===================  ===============  =====================================================
  question_asked       ``keyword``      ``data.text`` contains it (case-insensitive)
  question_asked       ``pattern``      the regular expression finds a match in ``data.text``
                                        (case-insensitive); with a keyword, both must hold
  conversion           ``min_value``    ``data.value`` >= min_value
  sentiment            ``max_score``    ``data.score`` <= max_score (negative sentiment)
  time_spent           ``min_seconds``  see below: a threshold over the total, not per event
  ===================  ===============  =====================================================

- Each counting event gives ``points``; with ``decay_half_life_days`` its points halve for every
  that many days of the event's age at ``now``.
- ``time_spent`` with ``min_seconds`` is a threshold on the prospect's *total* time: the rule
  gives its points once, when the running total (events in time order) first exceeds
  ``min_seconds``; decay then counts from the event that crossed the threshold.
- ``cap`` bounds what the rule gives one prospect in total: at most ``cap`` points for a positive
  rule, at least ``-cap`` for a negative one. It applies after decay.
- Each rule's total is rounded half away from zero to a whole number, and the score is the sum
  of those whole numbers, so the breakdown always adds up to the score.

Grades: the band with the highest ``min_score`` not above the score; a score below every band
(possible with negative points) gets the lowest band. No bands, no grade ("").
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

# How many contributors ``ScoreResult.top_contributors`` names.
TOP_CONTRIBUTORS = 3
SECONDS_PER_DAY = 86_400


@dataclass(frozen=True)
class ScoredEvent:
    """One interaction of the prospect being scored: its type, when it happened, its data."""

    type: str
    occurred_at: datetime
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RuleSpec:
    """An enabled scoring rule, as plain data (``ScoringRule.spec()`` builds one)."""

    id: int
    name: str
    event_type: str
    points: int
    conditions: Mapping[str, Any] = field(default_factory=dict)
    cap: int | None = None
    decay_half_life_days: float | None = None


@dataclass(frozen=True)
class BandSpec:
    name: str
    min_score: int


@dataclass(frozen=True)
class Contributor:
    name: str
    points: int


@dataclass(frozen=True)
class ScoreResult:
    score: int
    grade: str
    # {str(rule_id): {"name": rule name, "points": whole points given, "events": events counted}}
    breakdown: dict[str, dict[str, Any]]
    # The rules that moved the score most (largest absolute points first), at most TOP_CONTRIBUTORS.
    top_contributors: list[Contributor]


def compute_score(
    events: Iterable[ScoredEvent],
    rules: Sequence[RuleSpec],
    bands: Sequence[BandSpec],
    now: datetime,
) -> ScoreResult:
    """Score one prospect's ``events`` under ``rules``, grade it with ``bands``, as of ``now``.

    Pure and deterministic: the same inputs always give the same result. ``now`` must be
    timezone-aware like the events' ``occurred_at``. See the module docstring for the rules.
    """
    by_type: dict[str, list[ScoredEvent]] = {}
    for event in events:
        by_type.setdefault(event.type, []).append(event)

    breakdown: dict[str, dict[str, Any]] = {}
    for rule in rules:
        raw, counted = _rule_points(rule, by_type.get(rule.event_type, ()), now)
        if counted == 0:
            continue
        breakdown[str(rule.id)] = {"name": rule.name, "points": _round(_apply_cap(raw, rule)), "events": counted}

    score = sum(entry["points"] for entry in breakdown.values())
    return ScoreResult(
        score=score,
        grade=grade_for(score, bands),
        breakdown=breakdown,
        top_contributors=top_contributors(breakdown),
    )


def grade_for(score: int, bands: Sequence[BandSpec]) -> str:
    """The name of the band ``score`` falls in; the lowest band for a score below all of them."""
    if not bands:
        return ""
    ordered = sorted(bands, key=lambda band: band.min_score)
    grade = ordered[0].name
    for band in ordered:
        if score >= band.min_score:
            grade = band.name
    return grade


def top_contributors(breakdown: Mapping[str, Mapping[str, Any]], limit: int = TOP_CONTRIBUTORS) -> list[Contributor]:
    contributors = [Contributor(entry["name"], entry["points"]) for entry in breakdown.values() if entry["points"]]
    contributors.sort(key=lambda item: (-abs(item.points), item.name))
    return contributors[:limit]


def format_contributors(contributors: Iterable[Contributor]) -> str:
    """``"CTA clicked 30, Questions 20"``: the text that goes to the CRM."""
    return ", ".join(f"{item.name} {item.points}" for item in contributors)


# --- one rule --------------------------------------------------------------------------------------


def _rule_points(rule: RuleSpec, events: Sequence[ScoredEvent], now: datetime) -> tuple[float, int]:
    """The rule's points before cap and rounding, and how many events it counted."""
    if not events:
        return 0.0, 0
    if rule.event_type == "time_spent" and rule.conditions.get("min_seconds") is not None:
        return _time_threshold_points(rule, events, now)
    matches = _MATCHERS.get(rule.event_type, _always)
    counted = [event for event in events if matches(rule.conditions, event.data)]
    return sum(_decayed(rule, event, now) for event in counted), len(counted)


def _time_threshold_points(rule: RuleSpec, events: Sequence[ScoredEvent], now: datetime) -> tuple[float, int]:
    threshold = rule.conditions["min_seconds"]
    total = 0.0
    for counted, event in enumerate(sorted(events, key=lambda item: item.occurred_at), start=1):
        total += _number(event.data.get("seconds")) or 0
        if total > threshold:
            return _decayed(rule, event, now), counted
    return 0.0, 0


def _decayed(rule: RuleSpec, event: ScoredEvent, now: datetime) -> float:
    if not rule.decay_half_life_days:
        return float(rule.points)
    age_days = max((now - event.occurred_at).total_seconds(), 0) / SECONDS_PER_DAY
    return rule.points * 0.5 ** (age_days / rule.decay_half_life_days)


def _apply_cap(points: float, rule: RuleSpec) -> float:
    if rule.cap is None:
        return points
    return max(min(points, rule.cap), -rule.cap)


def _round(points: float) -> int:
    # Half away from zero, so +2.5 and -2.5 round to the same magnitude (round() would give 2 and -2).
    return int(math.copysign(math.floor(abs(points) + 0.5), points))


# --- matching one event ----------------------------------------------------------------------------


def _number(value: Any) -> float | None:
    # bool is an int in Python, but never a meaningful amount of seconds or money.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


@lru_cache(maxsize=256)
def compiled_pattern(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


def _question_matches(conditions: Mapping[str, Any], data: Mapping[str, Any]) -> bool:
    text = data.get("text")
    if not isinstance(text, str):
        return False
    keyword = conditions.get("keyword")
    if keyword and keyword.casefold() not in text.casefold():
        return False
    pattern = conditions.get("pattern")
    return not pattern or compiled_pattern(pattern).search(text) is not None


def _conversion_matches(conditions: Mapping[str, Any], data: Mapping[str, Any]) -> bool:
    minimum = conditions.get("min_value")
    if minimum is None:
        return True
    value = _number(data.get("value"))
    return value is not None and value >= minimum


def _sentiment_matches(conditions: Mapping[str, Any], data: Mapping[str, Any]) -> bool:
    maximum = conditions.get("max_score")
    if maximum is None:
        return True
    score = _number(data.get("score"))
    return score is not None and score <= maximum


def _always(conditions: Mapping[str, Any], data: Mapping[str, Any]) -> bool:
    return True


Matcher = Callable[[Mapping[str, Any], Mapping[str, Any]], bool]
_MATCHERS: dict[str, Matcher] = {
    "question_asked": _question_matches,
    "conversion": _conversion_matches,
    "sentiment": _sentiment_matches,
}
