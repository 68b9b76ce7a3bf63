"""Zoho CRM's errors in the taxonomy of DESIGN.md (crm-reference §4.6; spec ``API_Exception``).

A refusal is ``{"code", "details", "message", "status": "error"}``: for the whole request at the
top of the body, or per record inside ``data[]`` (and ``fields[]``/``watch[]`` on settings and
notification calls). The code decides, not the HTTP status, whose pairings are **UNVERIFIED**:

- ``INVALID_TOKEN``, ``AUTHENTICATION_FAILURE`` → AuthError (refresh once, then re-authenticate);
- ``OAUTH_SCOPE_MISMATCH``, ``NO_PERMISSION``, ``INVALID_MODULE``, ``INVALID_URL_PATTERN``,
  ``FEATURE_NOT_SUPPORTED`` → ConfigurationError (a person must grant or fix something);
- ``TOO_MANY_REQUESTS`` (concurrency) and ``LIMIT_EXCEEDED``/``LIMIT_REACHED`` with HTTP 429 (the
  credit budget) → RateLimited; a spent credit budget frees up over a rolling day, so it is retried
  in ``CREDIT_RETRY_SECONDS`` unless the answer says sooner;
- ``INVALID_DATA``, ``MANDATORY_NOT_FOUND``, ``DUPLICATE_DATA`` … → RecordError with ``field`` from
  ``details.api_name``; ``INVALID_DATA`` on ``id`` ("the id given seems to be invalid") → NotFound;
- ``INTERNAL_ERROR`` and any 5xx → RetryableError.
"""

from __future__ import annotations

from collections.abc import Mapping
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

AUTH_CODES = frozenset({"INVALID_TOKEN", "AUTHENTICATION_FAILURE"})
CONFIGURATION_CODES = frozenset(
    {"OAUTH_SCOPE_MISMATCH", "NO_PERMISSION", "INVALID_MODULE", "INVALID_URL_PATTERN", "FEATURE_NOT_SUPPORTED"}
)
RATE_CODES = frozenset({"TOO_MANY_REQUESTS", "LIMIT_EXCEEDED", "LIMIT_REACHED"})
CONCURRENCY_RETRY_SECONDS = 2.0  # a slot frees when one of our calls in flight ends
CREDIT_RETRY_SECONDS = 900.0  # credits come back as the rolling 24-hour window moves on
ENVELOPES = ("data", "fields", "watch")


def body_of(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def describe(error: Mapping[str, Any]) -> tuple[str, str, str]:
    """(message, code, field) of one error object."""
    details = error.get("details") if isinstance(error.get("details"), Mapping) else {}
    code = str(error.get("code") or "")
    field = str(details.get("api_name") or details.get("param_name") or details.get("column_name") or "")
    message = str(error.get("message") or code or "Zoho CRM gave no message")
    if field and field not in message:
        message = f"{message} ({field})"
    return message, code, field


def record_error(error: Mapping[str, Any]) -> CrmError:
    """The outcome error of one record of a batch answer."""
    message, code, field = describe(error)
    if code == "INVALID_DATA" and field == "id":
        return NotFound(message, status=404, code=code, field=field)
    if code in ("INTERNAL_ERROR", *RATE_CODES):
        return RetryableError(message, code=code)
    if code in CONFIGURATION_CODES:
        return ConfigurationError(message, code=code, field=field)
    return RecordError(message, status=400, code=code, field=field)


def per_record(body: Mapping[str, Any]) -> bool:
    """Whether an answer carries per-record results (which the connector reads) rather than one error."""
    return any(isinstance(body.get(name), list) for name in ENVELOPES)


def _rate_limited(response: requests.Response, message: str, code: str, details: Mapping[str, Any]) -> RateLimited:
    retry_after = retry_after_seconds(response.headers)
    if retry_after is None:
        hinted = details.get("retry_after_seconds")
        if code == "TOO_MANY_REQUESTS":
            retry_after = CONCURRENCY_RETRY_SECONDS
        elif isinstance(hinted, int | float) and hinted > 0:
            retry_after = min(float(hinted), CREDIT_RETRY_SECONDS)
        else:
            retry_after = CREDIT_RETRY_SECONDS
    return RateLimited(message, status=429, code=code or "TOO_MANY_REQUESTS", retry_after=retry_after)


def classify(response: requests.Response) -> CrmError | None:
    status = response.status_code
    if status < 400:
        return None
    body = body_of(response)
    if status < 500 and status != 429 and per_record(body):
        return None  # a batch whose every record failed: the connector reads the outcomes
    if body:
        message, code, field = describe(body)
    else:
        message, code, field = (response.text[:300] or response.reason or "no message"), "", ""
    details = body.get("details") if isinstance(body.get("details"), Mapping) else {}
    if status == 429 or (code in RATE_CODES and status != 400):
        return _rate_limited(response, message, code, details)
    if code in AUTH_CODES or (status == 401 and code not in CONFIGURATION_CODES):
        return AuthError(message, status=status, code=code)
    if code in CONFIGURATION_CODES or status == 403:
        return ConfigurationError(message, status=status, code=code, field=field)
    if status == 408 or status >= 500 or code == "INTERNAL_ERROR":
        return RetryableError(message, status=status, code=code, retry_after=retry_after_seconds(response.headers))
    if status in (404, 410) or (code == "INVALID_DATA" and field == "id"):
        return NotFound(message, status=status, code=code, field=field)
    return RecordError(message, status=status, code=code, field=field)
