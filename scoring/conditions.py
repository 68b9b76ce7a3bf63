"""Which conditions a scoring rule may carry for each event type, and checking them.

The engine (scoring.engine) gives the meaning; this module keeps the stored JSON to the shapes
the engine understands, so a rule that was saved can always be evaluated.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError

from crmsync.models import EventType

MAX_KEYWORD_LENGTH = 200
# Patterns run against question texts of up to 10,000 characters on every ingest; a short
# pattern keeps the room for pathological backtracking small.
MAX_PATTERN_LENGTH = 200


@dataclass(frozen=True)
class ConditionField:
    key: str
    kind: str  # "integer", "number" or "text"
    label: str
    help_text: str
    min_value: float | None = None
    max_value: float | None = None


CONDITION_FIELDS: dict[str, tuple[ConditionField, ...]] = {
    EventType.TIME_SPENT: (
        ConditionField(
            "min_seconds",
            "integer",
            "Total time over (seconds)",
            "Points are given once, when the prospect's total time passes this many seconds. "
            "Leave empty to give points for every time-spent event.",
            min_value=0,
        ),
    ),
    EventType.QUESTION_ASKED: (
        ConditionField(
            "keyword",
            "text",
            "Question contains",
            "Only questions containing this word or phrase count (upper and lower case alike).",
        ),
        ConditionField(
            "pattern",
            "text",
            "Question matches pattern",
            "A regular expression, matched regardless of case, e.g. pricing|price|cost.",
        ),
    ),
    EventType.CONVERSION: (
        ConditionField(
            "min_value",
            "number",
            "Minimum conversion value",
            "Only conversions of at least this value count.",
            min_value=0,
        ),
    ),
    EventType.SENTIMENT: (
        ConditionField(
            "max_score",
            "number",
            "Sentiment at most",
            "Only sentiment scores at or below this count (from -1, very negative, to 1), e.g. -0.3.",
            min_value=-1,
            max_value=1,
        ),
    ),
}

ALL_CONDITION_FIELDS: dict[str, ConditionField] = {
    item.key: item for fields in CONDITION_FIELDS.values() for item in fields
}


def condition_keys(event_type: str) -> tuple[str, ...]:
    return tuple(item.key for item in CONDITION_FIELDS.get(event_type, ()))


def validate_conditions(event_type: str, conditions: Any) -> dict[str, Any]:
    """The conditions, cleaned (empty values dropped), or ValidationError keyed by condition name."""
    if not isinstance(conditions, dict):
        raise ValidationError({"conditions": "Conditions must be an object."})
    allowed = {item.key: item for item in CONDITION_FIELDS.get(event_type, ())}
    errors: dict[str, str] = {}
    cleaned: dict[str, Any] = {}
    for key, value in conditions.items():
        spec = allowed.get(key)
        if spec is None:
            label = EventType(event_type).label.lower() if event_type in EventType.values else event_type
            errors[key if key in ALL_CONDITION_FIELDS else "conditions"] = (
                f"“{key}” is not a condition of {label} rules."
            )
            continue
        if value is None or value == "":
            continue
        try:
            value = _clean_value(spec, value)
        except ValueError as exc:
            errors[key] = str(exc)
            continue
        if value != "":
            cleaned[key] = value
    if errors:
        raise ValidationError(errors)
    return cleaned


def _clean_value(spec: ConditionField, value: Any) -> Any:
    if spec.kind == "text":
        return _clean_text(spec.key, value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("Enter a number.")
    if spec.kind == "integer" and value != int(value):
        raise ValueError("Enter a whole number.")
    if spec.min_value is not None and value < spec.min_value:
        raise ValueError(f"Enter a value of at least {spec.min_value:g}.")
    if spec.max_value is not None and value > spec.max_value:
        raise ValueError(f"Enter a value of at most {spec.max_value:g}.")
    return int(value) if spec.kind == "integer" else float(value)


def _clean_text(key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("Enter text.")
    value = value.strip()
    limit = MAX_PATTERN_LENGTH if key == "pattern" else MAX_KEYWORD_LENGTH
    if len(value) > limit:
        raise ValueError(f"Use at most {limit} characters.")
    if key == "pattern":
        try:
            re.compile(value, re.IGNORECASE)
        except re.error as exc:
            raise ValueError(f"This is not a valid regular expression: {exc}.") from None
    return value
