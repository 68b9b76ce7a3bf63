"""Values on the wire: Salesforce's datetime format, and typed values to and from JSON."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any

# Salesforce writes datetimes with milliseconds and a +0000 offset: 2024-01-01T10:00:00.000+0000.
_DATETIME_IN = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?)\s*(Z|[+-]\d{2}:?\d{2})?$", re.IGNORECASE
)


def format_datetime(value: datetime) -> str:
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}+0000"


def parse_datetime(text: str) -> datetime | None:
    """Parse the datetime forms Salesforce accepts in JSON, CSV and URL parameters (UTC when no offset)."""
    match = _DATETIME_IN.match(text.strip())
    if match is None:
        return None
    day, clock, offset = match.groups()
    if clock.count(":") == 1:
        clock += ":00"
    offset = (offset or "+00:00").upper().replace("Z", "+00:00")
    if len(offset) == 5:  # +0000 → +00:00
        offset = offset[:3] + ":" + offset[3:]
    try:
        return datetime.fromisoformat(f"{day}T{clock}{offset}").astimezone(UTC)
    except ValueError:
        return None


def parse_date(text: str) -> date | None:
    try:
        return date.fromisoformat(text.strip()) if re.match(r"^\d{4}-\d{2}-\d{2}$", text.strip()) else None
    except ValueError:
        return None


def to_wire(value: Any, field_type: str) -> Any:
    """A stored Python value as Salesforce's JSON writes it."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return format_datetime(value)
    if isinstance(value, date):
        return value.isoformat()
    if field_type in ("double", "currency", "percent") and isinstance(value, int | float):
        return float(value)
    return value


def to_csv(value: Any, field_type: str) -> str:
    """A stored value in a Bulk API 2.0 result CSV cell."""
    wired = to_wire(value, field_type)
    if wired is None:
        return ""
    if isinstance(wired, bool):
        return "true" if wired else "false"
    return str(wired)
