"""Salesforce's refusals in the error taxonomy of DESIGN.md (crm-reference §1.5, §1.6).

Whole-call answers carry a JSON array ``[{"message", "errorCode", "fields"}]``:

- 401 ``INVALID_SESSION_ID`` → AuthError (the engine refreshes once, then asks for re-auth);
- 403 ``REQUEST_LIMIT_EXCEEDED`` → RateLimited. Salesforce sends no Retry-After and no 429. The
  same code means two things: the rolling 24-hour allocation is spent ("TotalRequests Limit
  exceeded"), which frees up only as day-old calls age out, so we pause 15 minutes; or too many
  concurrent long-running requests, which clears within seconds, so we pause 60 s;
- other 403 → ConfigurationError (missing permission, API disabled for the org);
- 404 → NotFound; 300 (an external id matched several records) → RecordError;
- 400 → RecordError naming the first field Salesforce names, except codes that mean the set-up
  is wrong (unknown object, feature off) → ConfigurationError;
- 5xx and 408 → RetryableError.

The identity service answers a bad token with 403 and the text ``Bad_OAuth_Token`` (not JSON):
that is an AuthError too, so ``connect_crm`` reports Salesforce's reason for a bad token.

Per-record results of sObject Collections carry ``errors: [{"statusCode", "message", "fields"}]``
and Bulk API 2.0 results ``sf__Error = "CODE:message:Field1,Field2 --"``; ``record_error`` turns
either into a RecordError — or a NotFound when the record we updated by id is gone, which tells
the engine to match that person by e-mail again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import requests

from integrations.errors import (
    AuthError,
    ConfigurationError,
    CrmError,
    NotFound,
    RateLimited,
    RecordError,
    RetryableError,
)
from integrations.http import retry_after_seconds

REQUEST_LIMIT_EXCEEDED = "REQUEST_LIMIT_EXCEEDED"
DAILY_LIMIT_PAUSE = 900.0
CONCURRENCY_LIMIT_PAUSE = 60.0

# Codes that say the record updated by id no longer exists (deleted, merged away, or an id from
# another org): the engine then re-matches by e-mail.
GONE_CODES = frozenset({"ENTITY_IS_DELETED", "NOT_FOUND"})
STALE_ID_CODES = frozenset({"INVALID_CROSS_REFERENCE_KEY", "MALFORMED_ID", "INVALID_ID_FIELD"})
# 400 codes about the set-up rather than one record.
CONFIGURATION_CODES = frozenset(
    {"INVALID_TYPE", "API_DISABLED_FOR_ORG", "FUNCTIONALITY_NOT_ENABLED", "INSUFFICIENT_ACCESS", "NOT_SUPPORTED"}
)


def describe(response: requests.Response) -> tuple[str, str, list[str]]:
    """(message, errorCode, fields) of an error answer, whatever its shape."""
    try:
        body: Any = response.json()
    except ValueError:
        text = (response.text or "").strip()
        return (text[:300] or response.reason or "no message"), "", []
    if response.status_code == 300 and isinstance(body, list):
        return f"several records match this external id: {', '.join(map(str, body[:5]))}", "MULTIPLE_RECORDS", []
    if isinstance(body, list) and body and isinstance(body[0], Mapping):
        body = body[0]
    if isinstance(body, Mapping):
        message = body.get("message") or body.get("error_description") or body.get("error") or str(body)[:300]
        code = body.get("errorCode") or body.get("error") or ""
        fields = [str(f) for f in body.get("fields") or [] if f]
        return str(message), str(code), fields
    return str(body)[:300], "", []


def classify(response: requests.Response) -> CrmError | None:
    status = response.status_code
    message, code, fields = describe(response)
    field = fields[0] if fields else ""
    if status == 403 and code == REQUEST_LIMIT_EXCEEDED:
        pause = DAILY_LIMIT_PAUSE if "totalrequests" in message.lower() else CONCURRENCY_LIMIT_PAUSE
        return RateLimited(message, status=status, code=code, retry_after=pause)
    if status == 429:
        retry = retry_after_seconds(response.headers) or CONCURRENCY_LIMIT_PAUSE
        return RateLimited(message, status=status, code=code or "rate_limited", retry_after=retry)
    if status == 401:
        return AuthError(message, status=status, code=code or "INVALID_SESSION_ID")
    if status == 403 and message.startswith("Bad_OAuth_Token"):
        return AuthError(f"Salesforce refused the access token ({message})", status=status, code="INVALID_SESSION_ID")
    if status == 403:
        return ConfigurationError(message, status=status, code=code)
    if status in (404, 410):
        return NotFound(message, status=status, code=code or "NOT_FOUND")
    if status == 408 or status >= 500:
        return RetryableError(message, status=status, code=code, retry_after=retry_after_seconds(response.headers))
    if status in (300, 409) or (status == 400 and code not in CONFIGURATION_CODES):
        return RecordError(message, status=status, code=code, field=field)
    if status >= 400:
        return ConfigurationError(message, status=status, code=code, field=field)
    return None


def record_error(errors: Sequence[Mapping[str, Any]] | None, *, updated_by_id: bool = False) -> RecordError:
    """The error of one record in a collection or upsert result."""
    first = next((e for e in errors or [] if isinstance(e, Mapping)), {})
    code = str(first.get("statusCode") or first.get("errorCode") or "UNKNOWN_ERROR")
    message = str(first.get("message") or "Salesforce did not save this record")
    fields = [str(f) for f in first.get("fields") or [] if f]
    return _record_error(code, message, fields, updated_by_id)


def bulk_error(text: str, *, updated_by_id: bool = False) -> RecordError:
    """The ``sf__Error`` cell of a Bulk API 2.0 failed-results row: ``CODE:message:Fields --``."""
    body = text.strip().removesuffix("--").strip()
    code, _, rest = body.partition(":")
    message, _, field_text = rest.rpartition(":")
    if not message:  # no field part
        message, field_text = rest, ""
    fields = [f.strip() for f in field_text.split(",") if f.strip()]
    return _record_error(code.strip() or "UNKNOWN_ERROR", message.strip() or body, fields, updated_by_id)


def _record_error(code: str, message: str, fields: list[str], updated_by_id: bool) -> RecordError:
    field = fields[0] if fields else ""
    if updated_by_id and (code in GONE_CODES or (code in STALE_ID_CODES and field in ("", "Id"))):
        return NotFound(message, code=code, field=field)
    return RecordError(message, code=code, field=field)
