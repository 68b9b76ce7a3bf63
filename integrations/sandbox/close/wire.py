"""Close's wire conventions: prefixed ids, timestamps, paging arguments (crm-reference §8, §11.8).

- Ids are prefixed strings (``lead_…``, ``cont_…``, ``acti_…``, ``oppo_…``, ``task_…``, ``cf_…``);
  the prefixes follow Close's documented examples, the random tail is ours.
- Timestamps are ISO 8601 with microseconds and an explicit UTC offset, as Close writes them
  (``2013-02-01T00:54:51.331000+00:00``); dates are ``YYYY-MM-DD``.
- Lists answer ``{"data": [...], "has_more": bool}`` and page with ``_skip`` / ``_limit``.
"""

from __future__ import annotations

import datetime as dt
import secrets
import string
from typing import Any

from integrations.sandbox.close.errors import CloseError
from integrations.sandbox.core import Request

_ALPHABET = string.ascii_letters + string.digits
MAX_LIMIT = 100  # Close caps most list pages; larger ``_limit`` values are refused with a 400


def new_id(prefix: str, length: int = 43) -> str:
    return f"{prefix}_" + "".join(secrets.choice(_ALPHABET) for _ in range(length))


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def iso(moment: dt.datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(dt.UTC).isoformat(timespec="microseconds")


def parse_time(value: Any) -> dt.datetime | None:
    """An ISO 8601 instant (``Z`` or an offset; a bare date is midnight UTC), or None."""
    if value in (None, ""):
        return None
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    text = str(value).strip().replace("Z", "+00:00")
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def parse_date(value: Any) -> dt.date | None:
    if value in (None, ""):
        return None
    try:
        return dt.date.fromisoformat(str(value)[:10])
    except ValueError:
        return None


def page_args(request: Request, default_limit: int = MAX_LIMIT) -> tuple[int, int]:
    """``_skip`` and ``_limit`` of a list call; out-of-range values are a 400 as in Close."""
    try:
        skip = int(request.arg("_skip", "0") or 0)
        limit = int(request.arg("_limit", str(default_limit)) or default_limit)
    except ValueError:
        raise CloseError(400, "_skip and _limit must be integers") from None
    if skip < 0 or limit < 1:
        raise CloseError(400, "_skip must be >= 0 and _limit >= 1")
    if limit > MAX_LIMIT:
        raise CloseError(400, f"_limit must be at most {MAX_LIMIT}")
    return skip, limit


def page(rows: list[dict[str, Any]], skip: int, limit: int) -> dict[str, Any]:
    return {"data": rows[skip : skip + limit], "has_more": len(rows) > skip + limit}


def fields_arg(request: Request) -> list[str] | None:
    """``_fields=id,name``: the keys an answer is cut down to (None: all)."""
    raw = request.arg("_fields")
    return [name.strip() for name in raw.split(",") if name.strip()] if raw else None


def only(record: dict[str, Any], fields: list[str] | None) -> dict[str, Any]:
    return record if fields is None else {name: record[name] for name in fields if name in record}


def csv_arg(request: Request, name: str) -> list[str] | None:
    raw = request.arg(name)
    return [part for part in raw.split(",") if part] if raw else None
