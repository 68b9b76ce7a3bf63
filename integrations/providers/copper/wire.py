"""Copper's wire values (crm-reference §6.2 to §6.4): Unix-second times, ``MM/DD/YYYY`` close
dates, categorised ``[{email|number|url, category}]`` lists, and the names we give things."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from typing import Any

from integrations.connector import CONTACT, DEAL, LEAD, TASK
from integrations.errors import ConfigurationError

# Our object kinds → Copper's resource path and its entity name (parent/related_resource/webhooks).
RESOURCES = {CONTACT: "people", LEAD: "leads", DEAL: "opportunities", TASK: "tasks"}
ENTITIES = {CONTACT: "person", LEAD: "lead", DEAL: "opportunity", TASK: "task"}

# Epoch values above this are milliseconds (year 5138 in seconds), as HubSpot-style sources send.
_MS_THRESHOLD = 100_000_000_000
_SLUG = re.compile(r"[^a-z0-9]+")


def resource_for(object_kind: str) -> str:
    try:
        return RESOURCES[object_kind]
    except KeyError:
        raise ConfigurationError(f"Copper has no {object_kind} records", code="unknown_object") from None


def entity_for(object_kind: str) -> str:
    try:
        return ENTITIES[object_kind]
    except KeyError:
        raise ConfigurationError(f"Copper has no {object_kind} records", code="unknown_object") from None


def to_unix(value: Any) -> int | None:
    """Unix seconds from a datetime, a date (midnight UTC), ISO text or epoch seconds/ms."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError("a boolean is not a time")
    if isinstance(value, dt.datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return int(moment.timestamp())
    if isinstance(value, dt.date):
        return int(dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC).timestamp())
    if isinstance(value, int | float):
        return int(value / 1000) if abs(value) >= _MS_THRESHOLD else int(value)
    text = str(value).strip()
    if re.fullmatch(r"-?\d+(\.\d+)?", text):
        return to_unix(float(text))
    parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return to_unix(parsed if "T" in text or " " in text else parsed.date())


def from_unix(value: Any) -> dt.datetime | None:
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return dt.datetime.fromtimestamp(value, tz=dt.UTC)


def close_date(day: dt.date) -> str:
    """Opportunities take close dates as ``MM/DD/YYYY`` text (§6.4)."""
    return day.strftime("%m/%d/%Y")


def slug(text: str) -> str:
    return _SLUG.sub("_", text.lower()).strip("_")


def as_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, list | tuple | set):
        return "; ".join(str(v) for v in value)
    return value if isinstance(value, str) else str(value)


def as_list(value: Any) -> list[str]:
    """A multi-value as a list (``;``-separated text, as the mapping's join transform writes it)."""
    if value is None or value == "":
        return []
    if isinstance(value, list | tuple | set):
        return [str(v).strip() for v in value if str(v).strip()]
    return [part.strip() for part in str(value).split(";") if part.strip()]


def as_int(value: Any) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError("a boolean is not an id")
    return int(value)


def as_number(value: Any) -> int | float | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError("a boolean is not a number")
    if isinstance(value, int | float):
        return value
    number = float(str(value).strip())
    return int(number) if number.is_integer() else number


def as_bool(value: Any) -> bool | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise ValueError(f"{value!r} is not true or false")


def first_entry(entries: Any, inner: str) -> str | None:
    """The first ``inner`` value of a categorised list (the primary e-mail, phone, website)."""
    for entry in entries or []:
        if isinstance(entry, Mapping) and entry.get(inner):
            return str(entry[inner])
    return None


def with_first(entries: Sequence[Mapping[str, Any]], inner: str, value: str, category: str) -> list[dict] | None:
    """``entries`` with ``value`` first, the others kept; None when it already comes first.

    Copper replaces a list field as a whole on update, so we send the merged list: the address a
    person had before stays (as a secondary one) rather than being lost.
    """

    def same(entry: Mapping[str, Any]) -> bool:
        return str(entry.get(inner) or "").strip().lower() == value.strip().lower()

    current = [dict(e) for e in entries or [] if isinstance(e, Mapping) and e.get(inner)]
    if current and same(current[0]):
        return None
    kept = [{inner: e[inner], "category": e.get("category") or category} for e in current if not same(e)]
    return [{inner: value, "category": category}, *kept]
