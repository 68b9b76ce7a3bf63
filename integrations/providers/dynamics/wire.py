"""Dataverse Web API wire details shared by the connector's modules (crm-reference §5).

- Paths: the connection's org URL plus ``/api/data/v9.2/``; entity sets ``contacts``, ``leads``,
  ``tasks``, ``annotations``, ``opportunities``; ids are GUIDs in ``set(<guid>)`` segments.
- Headers: OData 4.0 on every request; ``Prefer: return=representation`` when we need the row.
- Errors: ``{"error": {"code": "0x…", "message": "…"}}`` — mapped to the taxonomy by ``classify``,
  which works both on a ``requests.Response`` and on one operation's answer inside ``$batch``.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Mapping
from typing import Any

from integrations.connector import CONTACT, DEAL, LEAD, NOTE, TASK
from integrations.errors import (
    AuthError,
    ConfigurationError,
    CrmError,
    NotFound,
    RateLimited,
    RecordError,
    RetryableError,
)

API_PATH = "api/data/v9.2"
HEADERS = {
    "Accept": "application/json",
    "OData-MaxVersion": "4.0",
    "OData-Version": "4.0",
    "If-None-Match": "null",  # bypass the cache (§5.2)
}
# Our object kinds → (entity logical name, entity set, primary id attribute)
ENTITIES: dict[str, tuple[str, str, str]] = {
    CONTACT: ("contact", "contacts", "contactid"),
    LEAD: ("lead", "leads", "leadid"),
    DEAL: ("opportunity", "opportunities", "opportunityid"),
    TASK: ("task", "tasks", "activityid"),
    "activity": ("task", "tasks", "activityid"),
    NOTE: ("annotation", "annotations", "annotationid"),
}
# Service-protection codes (api-limits): request count, execution time, concurrency.
THROTTLE_CODES = {"0x80072322", "0x80072321", "0x80072326"}
DUPLICATE_DETECTED = "0x80040333"  # duplicate detection asked for and triggered: HTTP 500, a record error
KEY_NOT_VALID = "0x80060888"
# Characters Dataverse refuses in alternate-key values (crm-reference §5).
KEY_FORBIDDEN = frozenset("/<>*%&:\\?+")


def entity(object_kind: str) -> tuple[str, str, str]:
    try:
        return ENTITIES[object_kind]
    except KeyError:
        raise LookupError(f"Dynamics 365 has no object kind {object_kind!r}") from None


def api(path: str) -> str:
    return f"{API_PATH}/{path.lstrip('/')}"


def quote(value: str) -> str:
    """An OData string literal."""
    return "'" + str(value).replace("'", "''") + "'"


def guid(value: str | None) -> str | None:
    try:
        return str(uuid.UUID(str(value))) if value else None
    except ValueError:
        return None


def parse_datetime(value: Any) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def clean_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    """A payload as Dataverse takes it: datetimes as ISO strings, dates as yyyy-mm-dd."""
    out: dict[str, Any] = {}
    for name, value in fields.items():
        if isinstance(value, dt.datetime):
            value = iso(value if value.tzinfo else value.replace(tzinfo=dt.UTC))
        elif isinstance(value, dt.date):
            value = value.isoformat()
        out[name] = value
    return out


def record_fields(raw: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in raw.items() if not k.startswith("@")}


# -- errors -------------------------------------------------------------------------------------------


def error_parts(body: bytes | str | None, fallback: str = "") -> tuple[str, str]:
    """(message, code) of an OData error body."""
    try:
        data = json.loads(body) if body else None
    except ValueError:
        text = body.decode(errors="replace") if isinstance(body, bytes) else str(body)
        return (text[:300] or fallback or "no message"), ""
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        return str(error.get("message") or fallback or "no message")[:1000], str(error.get("code") or "")
    if isinstance(data, dict) and data.get("error_description"):
        return str(data["error_description"])[:300], str(data.get("error") or "")
    return (fallback or "no message"), ""


def retry_after(headers: Mapping[str, str]) -> float | None:
    for name, value in headers.items():
        if name.lower() == "retry-after":
            try:
                return max(0.0, float(value))
            except ValueError:
                return None
    return None


def classify(status: int, headers: Mapping[str, str], body: bytes | str | None, reason: str = "") -> CrmError | None:
    """The taxonomy for one Dataverse answer (a whole response or one ``$batch`` operation)."""
    if status < 400:
        return None
    message, code = error_parts(body, reason)
    if status == 429 or code in THROTTLE_CODES:
        return RateLimited(message, status=status, code=code, retry_after=retry_after(headers))
    if status == 401:
        return AuthError(
            message if body else "the access token is missing, invalid or expired",
            status=status,
            code=code or "invalid_token",
        )
    if status == 403:
        return ConfigurationError(message, status=status, code=code)
    if status in (404, 410):
        return NotFound(message, status=status, code=code)
    if code == DUPLICATE_DETECTED:
        return RecordError(message, status=status, code=code)
    if status == 408 or status >= 500:
        return RetryableError(message, status=status, code=code, retry_after=retry_after(headers))
    return RecordError(message, status=status, code=code)
