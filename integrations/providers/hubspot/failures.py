"""HubSpot's error answers mapped to the taxonomy of integrations.errors (DESIGN.md).

Shapes (crm-reference §2.5, §2.6): the standard error body ``{status, message, correlationId,
category, subCategory, context, errors[], links}``; the 429 body ``{status, message, errorType:
"RATE_LIMIT", policyName, …}``; batch 207 answers with ``errors[]`` of ``StandardError``. Every
field is treated as optional. Messages are HubSpot's own text; none of them carries a token.
"""

from __future__ import annotations

import json
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

# A 429 with policyName DAILY: the budget resets at midnight in the portal's time zone, which we
# do not know without another call. Retrying hourly costs one refused call an hour and resumes
# within the hour of the reset (crm-reference §2.5).
DAILY_RETRY_SECONDS = 3600.0
# HubSpot's rolling window is 10 s (X-HubSpot-RateLimit-Interval-Milliseconds); search's is 1 s.
WINDOW_RETRY_SECONDS = 10.0
SEARCH_RETRY_SECONDS = 1.0

_VALIDATION_PREFIX = "Property values were not valid: "


def _body(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _first(context: Any, *names: str) -> str:
    """The first value of the first of ``names`` in an error ``context`` ({name: [values]})."""
    if not isinstance(context, Mapping):
        return ""
    for name in names:
        values = context.get(name)
        if isinstance(values, list) and values:
            return str(values[0])
        if isinstance(values, str) and values:
            return values
    return ""


def _validation_items(message: str) -> list[dict[str, Any]]:
    """HubSpot packs per-property problems as JSON after "Property values were not valid: "."""
    if not message.startswith(_VALIDATION_PREFIX):
        return []
    try:
        items = json.loads(message[len(_VALIDATION_PREFIX) :])
    except ValueError:
        return []
    return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []


def describe(error: Mapping[str, Any]) -> tuple[str, str, str]:
    """(message, category, property name) of one error body or batch ``StandardError``.

    The readable message is HubSpot's per-property text where it gives one ("x was not one of the
    allowed options: […]"), else its top-level message.
    """
    message = str(error.get("message") or "HubSpot gave no message")
    category = str(error.get("category") or error.get("errorType") or "")
    field = _first(error.get("context"), "propertyName", "invalidPropertyName")
    details = error.get("errors") if isinstance(error.get("errors"), list) else []
    texts = [str(d["message"]) for d in details if isinstance(d, Mapping) and d.get("message")]
    if not field:
        field = next((_first(d.get("context"), "propertyName") for d in details if isinstance(d, Mapping)), "")
    packed = _validation_items(message)
    if packed:
        texts = texts or [str(item.get("message")) for item in packed if item.get("message")]
        field = field or str(packed[0].get("name") or "")
    if texts and category == "VALIDATION_ERROR":
        message = "; ".join(dict.fromkeys(texts))
    return message, category, field


def record_error(error: Mapping[str, Any]) -> CrmError:
    """The outcome error of one record in a batch answer."""
    message, category, field = describe(error)
    if category == "OBJECT_NOT_FOUND":
        return NotFound(message, status=404, code=category, field=field)
    if category in ("RATE_LIMITS", "RATE_LIMIT", "INTERNAL_ERROR", "SERVICE_UNAVAILABLE"):
        return RetryableError(message, code=category)
    status = 409 if category == "CONFLICT" else 400
    return RecordError(message, status=status, code=category, field=field)


def _rate_limited(response: requests.Response, body: Mapping[str, Any], message: str) -> RateLimited:
    policy = str(body.get("policyName") or "")
    retry_after = retry_after_seconds(response.headers)
    if policy == "DAILY":
        retry_after = max(retry_after or 0.0, DAILY_RETRY_SECONDS)
    elif retry_after is None:
        if policy == "SECONDLY":  # the search endpoints' own limit
            retry_after = SEARCH_RETRY_SECONDS
        else:
            interval = response.headers.get("X-HubSpot-RateLimit-Interval-Milliseconds")
            retry_after = int(interval) / 1000 if interval and interval.isdigit() else WINDOW_RETRY_SECONDS
    return RateLimited(message, status=429, code=policy or "RATE_LIMIT", retry_after=retry_after)


def classify(response: requests.Response) -> CrmError | None:
    """HubSpot's non-2xx answers in the taxonomy (DESIGN.md "Error taxonomy")."""
    status = response.status_code
    if status < 400:
        return None
    body = _body(response)
    if body:
        message, category, field = describe(body)
    else:
        message, category, field = (response.text[:300] or response.reason or "no message"), "", ""
    if status == 429:
        return _rate_limited(response, body, message)
    if status == 401:  # EXPIRED_AUTHENTICATION, INVALID_AUTHENTICATION
        return AuthError(message, status=status, code=category)
    if status == 403:  # MISSING_SCOPES: a person must grant the scope
        return ConfigurationError(message, status=status, code=category)
    if status in (404, 410):
        return NotFound(message, status=status, code=category)
    if status == 408 or status >= 500:
        return RetryableError(message, status=status, code=category, retry_after=retry_after_seconds(response.headers))
    return RecordError(message, status=status, code=category, field=field)
