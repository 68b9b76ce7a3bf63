"""COQL queries the connector sends (crm-reference §4.2; spec coql.json).

One COQL call costs one credit for up to 200 rows (2 up to 1,000, 3 up to 2,000 — Zoho's COQL
docs), so lookups by a list of values use ``in (…)`` and pages stay at 200. Zoho caps the values of
one ``in`` at 50 (**UNVERIFIED**; ``IN_LIMIT`` keeps batches under it). Strings are single-quoted
with ``\\'`` and ``\\\\`` escapes; ids are bare numbers.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence

from integrations.providers.zoho.wire import to_datetime

IN_LIMIT = 50
PAGE_LIMIT = 200
_NAME = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$.]*$")
_ID = re.compile(r"^\d+$")


def name(field: str) -> str:
    """A field name fit for a query (API names are letters, digits and underscores)."""
    if not _NAME.match(field):
        raise ValueError(f"not a Zoho field API name: {field!r}")
    return field


def quote(value: object) -> str:
    text = str(value).replace("\\", "\\\\").replace("'", "\\'")
    return f"'{text}'"


def ident(value: object) -> str:
    text = str(value)
    if not _ID.match(text):
        raise ValueError(f"not a Zoho record id: {text!r}")
    return text


def in_list(values: Iterable[object]) -> str:
    return "(" + ", ".join(quote(v) for v in values) + ")"


def select(fields: Sequence[str], module: str, where: str, *, order: str = "", limit: int = PAGE_LIMIT) -> str:
    names = ", ".join(dict.fromkeys(name(f) for f in fields))
    # Not SQL: COQL sent as JSON to Zoho. Names are checked by name(), values quoted by quote()/ident().
    query = f"select {names} from {name(module)} where {where}"  # noqa: S608
    if order:
        query += f" order by {order}"
    return f"{query} limit {int(limit)}"


def modified_after(cursor_time: dt.datetime, last_id: str) -> str:
    """Records modified after the cursor: later instants, or the same instant with a higher id."""
    at = quote(to_datetime(cursor_time))
    if last_id:
        return f"((Modified_Time > {at}) or (Modified_Time = {at} and id > {ident(last_id)}))"
    return f"(Modified_Time >= {at})"
