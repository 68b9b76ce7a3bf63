"""Salesforce on the wire: object names, values in JSON and CSV, datetimes and record ids.

- Our object kinds map to sObjects (crm-reference §1.2, §1.4): people are Contact or Lead (a
  connection setting), deals Opportunity, activities and tasks Task, notes the legacy Note (see
  ``keyed.py`` for why not ContentNote).
- JSON values keep their JSON types (booleans, numbers); dates and datetimes are ISO 8601, which is
  what the REST API parses; ``None`` clears a field.
- Bulk API 2.0 CSV cells are text: an empty cell leaves a field alone and ``#N/A`` clears it
  (Bulk API 2.0 Developer Guide, "Prepare CSV Files"), so ``None`` and ``""`` become ``#N/A``.
- Ids are 15 case-sensitive characters or 18 with a case-safe suffix; both name the same record,
  so comparisons use the 18-character form.
"""

from __future__ import annotations

import datetime as dt
import decimal
import re
from collections.abc import Mapping
from typing import Any

from integrations.connector import ACTIVITY, CONTACT, DEAL, LEAD, NOTE, TASK
from integrations.errors import ConfigurationError

# simple-salesforce's default; sObject Collections upsert needs v46+, composite/sobjects v42+.
API_VERSION = "59.0"

SOBJECTS = {
    CONTACT: "Contact",
    LEAD: "Lead",
    DEAL: "Opportunity",
    ACTIVITY: "Task",
    TASK: "Task",
    NOTE: "Note",
}
CSV_NULL = "#N/A"

_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_ID_SHAPE = re.compile(r"^[A-Za-z0-9]{15}(?:[A-Za-z0-5]{3})?$")
# 2024-05-01T10:00:00.000+0000 (REST) or …Z / +00:00 (Bulk results, SOQL literals)
_DATETIME = re.compile(r"^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?)(Z|[+-]\d{2}:?\d{2})?$")


def sobject_for(object_kind: str) -> str:
    try:
        return SOBJECTS[object_kind]
    except KeyError:
        raise ConfigurationError(
            f"Salesforce has no object for {object_kind!r}; known: {', '.join(SOBJECTS)}", code="unknown_object"
        ) from None


def to_json(value: Any) -> Any:
    """A Python value as the REST API takes it."""
    if isinstance(value, bool) or value is None or isinstance(value, int | float | str):
        return value
    if isinstance(value, dt.datetime):
        return format_datetime(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, list | tuple | set | frozenset):
        return ";".join(str(v) for v in value)  # multi-select picklists are ";"-separated
    return str(value)


def json_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    return {str(k): to_json(v) for k, v in fields.items()}


def to_csv(value: Any) -> str:
    """A Python value as a Bulk API 2.0 CSV cell."""
    wired = to_json(value)
    if wired is None or wired == "":
        return CSV_NULL
    if isinstance(wired, bool):
        return "true" if wired else "false"
    if isinstance(wired, float):
        return format(decimal.Decimal(repr(wired)), "f")  # no exponent notation
    return str(wired)


def format_datetime(value: dt.datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    value = value.astimezone(dt.UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def parse_datetime(text: Any) -> dt.datetime | None:
    if not isinstance(text, str):
        return None
    match = _DATETIME.match(text.strip())
    if match is None:
        return None
    day, clock, offset = match.groups()
    offset = (offset or "Z").replace("Z", "+00:00")
    if len(offset) == 5:  # +0000 → +00:00
        offset = f"{offset[:3]}:{offset[3:]}"
    try:
        return dt.datetime.fromisoformat(f"{day}T{clock}{offset}").astimezone(dt.UTC)
    except ValueError:
        return None


def record_fields(record: Mapping[str, Any]) -> dict[str, Any]:
    """A REST/SOQL record without its ``attributes`` envelope."""
    return {k: v for k, v in record.items() if k != "attributes"}


def normalize_id(value: Any) -> str | None:
    """The 18-character form of a record id, or None when ``value`` is not id-shaped."""
    if not isinstance(value, str) or not _ID_SHAPE.match(value):
        return None
    base = value[:15]
    suffix = "".join(
        _SUFFIX[sum(1 << i for i, char in enumerate(base[chunk : chunk + 5]) if "A" <= char <= "Z")]
        for chunk in (0, 5, 10)
    )
    if len(value) == 18 and value[15:].upper() != suffix:
        return None
    return base + suffix


def email_key(email: str | None) -> str:
    return (email or "").strip().lower()
