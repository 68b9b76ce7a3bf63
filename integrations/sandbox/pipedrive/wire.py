"""Pipedrive's wire conventions as the sandbox speaks them (crm-reference.md §3).

- Every answer is an envelope: ``{"success": true, "data": …, "additional_data": {…}}``; errors are
  ``{"success": false, "error": "<message>", "error_info": "<hint>", "data": null,
  "additional_data": null}`` (§3.6), with the newer ``code`` where Pipedrive sends one.
- v2 times are RFC 3339 with seconds (``2025-04-14T10:11:12Z``); v1 notes and leads use
  ``2025-04-14 10:11:12`` (UTC).
- Custom fields are keyed by 40-character hex hashes (§3.3); leads have UUID ids (§11.10).
- Token costs of the daily budget (§3.5): v2 endpoints cost about half the tokens of their v1
  equivalents. Pipedrive publishes a cost per endpoint; the sandbox uses one cost per kind of call
  (single read, list, write, search) with v1 at twice v2. The exact numbers are the sandbox's.
"""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

from integrations.sandbox.core import Response

ERROR_INFO = "Please check developers.pipedrive.com for more information about Pipedrive API."

# Tokens a call costs against the company's daily budget, by API version and kind of call.
TOKEN_COSTS: dict[str, dict[str, int]] = {
    "v2": {"read": 1, "list": 10, "write": 5, "search": 20},
    "v1": {"read": 2, "list": 20, "write": 10, "search": 40},
}


class ApiError(Exception):
    """An error answer in Pipedrive's shape."""

    def __init__(self, status: int, message: str, *, code: str | None = None, info: str = ERROR_INFO) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.info = status, message, code, info

    def response(self, headers: dict[str, str] | None = None) -> Response:
        return error(self.status, self.message, code=self.code, info=self.info, headers=headers)


def ok(
    data: Any, additional_data: dict[str, Any] | None = None, status: int = 200, *, extra: dict[str, Any] | None = None
) -> Response:
    body: dict[str, Any] = {"success": True, "data": data}
    if additional_data is not None:
        body["additional_data"] = additional_data
    body.update(extra or {})
    return Response.json(body, status=status)


def error(
    status: int,
    message: str,
    *,
    code: str | None = None,
    info: str = ERROR_INFO,
    headers: dict[str, str] | None = None,
) -> Response:
    body: dict[str, Any] = {
        "success": False,
        "error": message,
        "error_info": info,
        "data": None,
        "additional_data": None,
    }
    if code:
        body["code"] = code
    return Response.json(body, status=status, headers=headers)


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def v2_time(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def v1_time(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def parse_time(text: Any) -> dt.datetime | None:
    """RFC 3339 (``Z`` or an offset) or v1's ``YYYY-MM-DD HH:MM:SS``; naive values are UTC."""
    if not isinstance(text, str) or not text.strip():
        return None
    value = text.strip().replace("Z", "+00:00")
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def field_hash() -> str:
    """A custom field key: 40 hex characters, as Pipedrive generates them."""
    return secrets.token_hex(20)


def int_arg(value: str | None, default: int, low: int, high: int, name: str) -> int:
    if value in (None, ""):
        return default
    try:
        number = int(value)
    except ValueError:
        raise ApiError(400, f"Parameter '{name}' must be an integer", code="ERR_SCHEMA_VALIDATION_FAILED") from None
    if not low <= number <= high:
        raise ApiError(400, f"Parameter '{name}' must be between {low} and {high}", code="ERR_SCHEMA_VALIDATION_FAILED")
    return number


def bool_arg(value: str | None) -> bool | None:
    if value in (None, ""):
        return None
    return str(value).lower() in ("1", "true", "yes")


def page(items: list[Any], cursor: str | None, limit: int) -> tuple[list[Any], str | None]:
    """A v2 page: ``cursor`` is the opaque offset the previous page handed out."""
    start = 0
    if cursor:
        try:
            start = int(cursor.removeprefix("c"))
        except ValueError:
            raise ApiError(400, "Invalid cursor", code="ERR_SCHEMA_VALIDATION_FAILED") from None
    chunk = items[start : start + limit]
    more = start + limit < len(items)
    return chunk, (f"c{start + limit}" if more else None)


def v1_page(items: list[Any], start: int, limit: int) -> tuple[list[Any], dict[str, Any]]:
    chunk = items[start : start + limit]
    more = start + limit < len(items)
    pagination: dict[str, Any] = {"start": start, "limit": limit, "more_items_in_collection": more}
    if more:
        pagination["next_start"] = start + limit
    return chunk, {"pagination": pagination}


def contact_values(raw: Any, kind: str) -> list[dict[str, Any]]:
    """Emails or phones as Pipedrive keeps them: ``[{value, primary, label}]``, one primary.

    Accepts the v2 array shape; a bare string (the v1 shortcut) becomes one primary entry.
    """
    if raw is None:
        return []
    if isinstance(raw, str):
        raw = [{"value": raw, "primary": True}]
    if not isinstance(raw, list):
        raise ApiError(400, f"'{kind}' must be an array", code="ERR_SCHEMA_VALIDATION_FAILED")
    values: list[dict[str, Any]] = []
    for entry in raw:
        if isinstance(entry, str):
            entry = {"value": entry}
        if not isinstance(entry, dict) or not isinstance(entry.get("value"), str):
            raise ApiError(400, f"Each of '{kind}' needs a string 'value'", code="ERR_SCHEMA_VALIDATION_FAILED")
        value = entry["value"].strip()
        if not value:
            continue
        if kind == "emails" and ("@" not in value or " " in value):
            raise ApiError(400, f"Invalid email address: {value}", code="ERR_SCHEMA_VALIDATION_FAILED")
        values.append(
            {"value": value, "primary": bool(entry.get("primary")), "label": str(entry.get("label") or "work")}
        )
    if values and not any(v["primary"] for v in values):
        values[0]["primary"] = True
    seen_primary = False
    for entry in values:  # exactly one primary: the first one flagged
        entry["primary"] = entry["primary"] and not seen_primary
        seen_primary = seen_primary or entry["primary"]
    return values


def primary_value(values: list[dict[str, Any]]) -> str:
    for entry in values:
        if entry.get("primary"):
            return str(entry.get("value") or "")
    return str(values[0].get("value") or "") if values else ""
