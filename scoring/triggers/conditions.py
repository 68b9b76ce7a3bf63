"""The condition types a trigger rule can have, with their options.

``CONDITIONS`` is the registry: each entry says what the condition reacts to (``source``: new
events, a grade change, or the periodic job), which options it takes and how they are checked.
``scoring.triggers.evaluate`` gives each type its meaning; docs/TRIGGERS.md describes them for
people. Adding a condition type means an entry here, a matcher in ``evaluate`` and a line in the
docs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models

from scoring.triggers.options import OptionField, validate_options

DEFAULT_NEGATIVE_SENTIMENT = -0.3


class ConditionType(models.TextChoices):
    CAPSULE_VIEWED = "capsule_viewed", "Capsule viewed"
    HIGH_ENGAGEMENT = "high_engagement", "High engagement"
    QUESTION_ASKED = "question_asked", "Question asked"
    CTA_CLICKED = "cta_clicked", "CTA clicked"
    NEGATIVE_SENTIMENT = "negative_sentiment", "Negative sentiment"
    CAPSULE_COMPLETED = "capsule_completed", "Capsule completed"
    GRADE_CROSSED = "grade_crossed", "Grade band reached"
    LOW_ENGAGEMENT = "low_engagement", "Low engagement"


class Source(models.TextChoices):
    EVENT = "event", "each new event"
    GRADE = "grade", "a grade change"
    SCHEDULE = "schedule", "the hourly check"


@dataclass(frozen=True)
class ConditionSpec:
    type: str
    source: str
    description: str
    options: tuple[OptionField, ...] = ()
    # Checks across options (e.g. "at least one of"); raises ValidationError keyed by option.
    check: Callable[[Mapping[str, Any]], None] | None = None

    @property
    def label(self) -> str:
        return ConditionType(self.type).label


def _capsule_filter(what: str) -> OptionField:
    return OptionField(
        "capsule_id",
        "crm_id",
        "Capsule id",
        f"Only {what} this capsule (the capsule platform's id). Empty: any capsule.",
    )


def _one_of(*keys: str, message: str) -> Callable[[Mapping[str, Any]], None]:
    def check(options: Mapping[str, Any]) -> None:
        if not any(key in options for key in keys):
            raise ValidationError({keys[0]: message})

    return check


CONDITIONS: dict[str, ConditionSpec] = {
    spec.type: spec
    for spec in (
        ConditionSpec(
            ConditionType.CAPSULE_VIEWED,
            Source.EVENT,
            "The prospect opens a capsule.",
            (
                _capsule_filter("views of"),
                OptionField(
                    "first_view_only",
                    "bool",
                    "First view only",
                    "Only the prospect's first view of the capsule fires, never a return visit.",
                    default=False,
                ),
            ),
        ),
        ConditionSpec(
            ConditionType.HIGH_ENGAGEMENT,
            Source.EVENT,
            "The prospect's total time in capsules, or their lead score, reaches a threshold. "
            "Fires with the event that reaches it, not again while it stays reached.",
            (
                OptionField(
                    "min_seconds",
                    "integer",
                    "Total time at least (seconds)",
                    "The prospect's time spent over all capsules, e.g. 300 for five minutes.",
                    min_value=1,
                    max_value=10_000_000,
                ),
                OptionField(
                    "min_score",
                    "integer",
                    "Lead score at least",
                    "The prospect's lead score (see Lead scoring). With a time as well, either one counts.",
                    min_value=-1_000_000,
                    max_value=1_000_000,
                ),
            ),
            _one_of("min_seconds", "min_score", message="Give a total time, a lead score, or both."),
        ),
        ConditionSpec(
            ConditionType.QUESTION_ASKED,
            Source.EVENT,
            "The prospect asks a question containing a keyword or matching a pattern (upper and lower case alike).",
            (
                OptionField("keyword", "text", "Question contains", "A word or phrase, e.g. pricing."),
                OptionField(
                    "pattern",
                    "pattern",
                    "Question matches pattern",
                    "A regular expression, e.g. pric(e|ing)|cost. With a keyword as well, both must match.",
                ),
            ),
            _one_of("keyword", "pattern", message="Give a keyword, a pattern, or both."),
        ),
        ConditionSpec(
            ConditionType.CTA_CLICKED,
            Source.EVENT,
            "The prospect clicks a call to action.",
            (OptionField("cta_id", "crm_id", "CTA id", "Only this call to action (its id). Empty: any CTA."),),
        ),
        ConditionSpec(
            ConditionType.NEGATIVE_SENTIMENT,
            Source.EVENT,
            "The capsule detects negative sentiment in the conversation.",
            (
                OptionField(
                    "max_score",
                    "number",
                    "Sentiment score at most",
                    "From -1 (very negative) to 1. Default -0.3.",
                    default=DEFAULT_NEGATIVE_SENTIMENT,
                    min_value=-1,
                    max_value=1,
                ),
                OptionField(
                    "negative_label",
                    "bool",
                    "Also when labelled negative",
                    "Fire for any sentiment the capsule labels “negative”, whatever its score.",
                    default=True,
                ),
            ),
        ),
        ConditionSpec(
            ConditionType.CAPSULE_COMPLETED,
            Source.EVENT,
            "The prospect completes a capsule.",
            (_capsule_filter("completions of"),),
        ),
        ConditionSpec(
            ConditionType.GRADE_CROSSED,
            Source.GRADE,
            "The prospect's lead grade changes to a band, e.g. hot.",
            (
                OptionField("to_grade", "slug", "Grade reached", "The grade band's name, e.g. hot.", required=True),
                OptionField(
                    "upwards_only",
                    "bool",
                    "Upwards only",
                    "Only when coming from a lower band, not when falling back into this one.",
                    default=True,
                ),
                OptionField(
                    "on_recompute",
                    "bool",
                    "Also after rule changes",
                    "Also fire when a change of scoring rules or bands moves the prospect into the band "
                    "(otherwise only new events do).",
                    default=False,
                ),
            ),
        ),
        ConditionSpec(
            ConditionType.LOW_ENGAGEMENT,
            Source.SCHEDULE,
            "Some days after the prospect's first capsule view, their lead score is still below a threshold. "
            "Checked every hour; fires once per prospect.",
            (
                OptionField(
                    "days",
                    "integer",
                    "Days after the first view",
                    "How long to give the prospect, e.g. 7.",
                    required=True,
                    min_value=1,
                    max_value=365,
                ),
                OptionField(
                    "max_score",
                    "integer",
                    "Lead score below",
                    "Prospects whose score is below this are low-engagement, e.g. 40 (the start of warm).",
                    required=True,
                    min_value=-1_000_000,
                    max_value=1_000_000,
                ),
            ),
        ),
    )
}

assert set(CONDITIONS) == set(ConditionType.values)

EVENT_CONDITIONS = tuple(key for key, spec in CONDITIONS.items() if spec.source == Source.EVENT)


def validate_condition(condition_type: str, options: Any) -> dict[str, Any]:
    """The options of a ``condition_type`` rule, cleaned and with defaults, or ValidationError by option."""
    spec = CONDITIONS.get(condition_type)
    if spec is None:
        raise ValidationError({"condition_type": f"“{condition_type}” is not a condition type."})
    cleaned = validate_options(spec.options, options, what=f"{spec.label.lower()} rules")
    if spec.check is not None:
        spec.check(cleaned)
    return cleaned


def describe_condition(condition_type: str, options: Mapping[str, Any]) -> str:
    """The condition in words, for tables: "Question asked: contains “price”"."""
    spec = CONDITIONS.get(condition_type)
    if spec is None:
        return condition_type
    parts = []
    for field in spec.options:
        value = options.get(field.key)
        if value is None or value is False:
            continue
        parts.append(field.label.lower() if value is True else f"{field.label.lower()} {value}")
    return f"{spec.label}: {', '.join(parts)}" if parts else spec.label
