"""SOQL text built from our values, always escaped: no input is ever formatted into a query raw.

Quoted-string escapes are Salesforce's (SOQL and SOSL Reference, "Quoted String Escape
Sequences"): ``\\n \\r \\t \\b \\f \\" \\' \\\\``, plus ``\\_`` and ``\\%`` inside LIKE patterns.
Field and object names are never quoted in SOQL, so they are checked against the API-name shape
instead. Datetime literals are unquoted ISO 8601 in UTC; we keep milliseconds because
SystemModstamp has them, and a cursor rounded to the second would re-read or skip rows.

An ``IN (…)`` list is bounded twice: by count (200, the sObject Collections size, so one query
matches one write batch) and by its URL-encoded length, since a query travels in the URL of a GET
and Salesforce refuses request URIs over 16,384 bytes (REST API Developer Guide, "Limits").
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar
from urllib.parse import quote_plus

from integrations.errors import ConfigurationError

T = TypeVar("T")

_ESCAPES = {
    "\\": "\\\\",
    "'": "\\'",
    '"': '\\"',
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\b": "\\b",
    "\f": "\\f",
}
_LIKE_ESCAPES = {**_ESCAPES, "%": "\\%", "_": "\\_"}
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*(?:\.[A-Za-z][A-Za-z0-9_]*)*$")

IN_LIST_MAX_ITEMS = 200
# Encoded bytes of one IN list: leaves room under 16,384 for the rest of the query and the URL.
IN_LIST_MAX_ENCODED = 12_000


def quote(value: object) -> str:
    """A quoted SOQL string literal."""
    return "'" + "".join(_ESCAPES.get(char, char) for char in str(value)) + "'"


def quote_like(fragment: str, *, prefix: str = "", suffix: str = "%") -> str:
    """A quoted LIKE pattern matching ``fragment`` literally, with wildcards only where we put them."""
    escaped = "".join(_LIKE_ESCAPES.get(char, char) for char in fragment)
    return f"'{prefix}{escaped}{suffix}'"


def name(value: str) -> str:
    """An object or field API name (``Contact``, ``Capsule_Score__c``, ``Owner.Email``), checked."""
    if not _NAME.match(value or ""):
        raise ConfigurationError(f"not a Salesforce API name: {value!r}", code="invalid_name")
    return value


def names(values: Iterable[str]) -> str:
    return ", ".join(name(v) for v in dict.fromkeys(values))


def select(
    sobject: str,
    fields: Iterable[str],
    where: str = "",
    *,
    order_by: Sequence[str] = (),
    limit: int | None = None,
) -> str:
    """The one place a query is assembled. Names are checked here; ``where`` is built only from
    this module's literal helpers (``quote``, ``in_list``, ``quote_like``, ``datetime_literal``)."""
    text = f"SELECT {names(fields)} FROM {name(sobject)}"  # noqa: S608 - names checked, literals quoted
    if where:
        text += f" WHERE {where}"
    if order_by:
        text += f" ORDER BY {names(order_by)}"
    if limit is not None:
        text += f" LIMIT {int(limit)}"
    return text


def in_list(values: Iterable[object]) -> str:
    return "(" + ", ".join(quote(v) for v in values) + ")"


def datetime_literal(value: dt.datetime) -> str:
    """``2024-05-01T10:00:00.123Z``: UTC with milliseconds (naive values are taken as UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    value = value.astimezone(dt.UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def in_chunks(
    values: Sequence[T],
    max_items: int = IN_LIST_MAX_ITEMS,
    max_encoded: int = IN_LIST_MAX_ENCODED,
    render: Callable[[T], str] = quote,
) -> list[list[T]]:
    """``values`` split so each chunk fits one query within both bounds, in order. ``render`` is
    the text one value adds to the query (a quoted literal by default, or a whole LIKE clause)."""
    chunks: list[list[T]] = []
    current: list[T] = []
    size = 0
    for value in values:
        cost = len(quote_plus(render(value))) + 8  # the separator (", " or " OR "), encoded
        if current and (len(current) >= max_items or size + cost > max_encoded):
            chunks.append(current)
            current, size = [], 0
        current.append(value)
        size += cost
    if current:
        chunks.append(current)
    return chunks
