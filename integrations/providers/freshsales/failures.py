"""Freshsales' answers mapped to the error taxonomy, and its quota headers (crm-reference §7.5, §7.6).

Error bodies: ``{"errors": {"code": 400, "message": ["Email already exists"]}}``; older answers
(and, from third-party clients, 401s) are ``{"login": "failed", "message": "…"}`` or
``{"message": "…"}`` — all three are read.

- 429 → RateLimited, retried after ``Retry-After`` (UNVERIFIED in the docs), else 60 s;
- 401 → AuthError (a regenerated or wrong key: there is no refresh, so re-authentication);
- 403 → ConfigurationError (the key's user may not do this);
- 404/410 → NotFound; 400/422 and other 4xx → RecordError (this record, with Freshsales' reason);
- 408, 5xx → RetryableError.

Quota headers (names from third-party clients, UNVERIFIED): ``x-ratelimit-limit`` and
``x-ratelimit-remaining`` for the hourly quota, ``per-min-x-ratelimit-limit``/``-remaining`` for
the per-minute cap. The snapshot reports whichever is spent (or the hourly one), so the engine's
limiter waits instead of earning a 429.
"""

from __future__ import annotations

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
from integrations.http import RateLimitSnapshot, int_header, retry_after_seconds

DEFAULT_RETRY_SECONDS = 60.0


def describe(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return (response.text or response.reason or f"HTTP {response.status_code}")[:300]
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, dict):
            messages = errors.get("message")
            if isinstance(messages, list):
                return "; ".join(str(m) for m in messages)[:500] or f"HTTP {response.status_code}"
            if messages:
                return str(messages)[:500]
        if isinstance(errors, list) and errors:
            return "; ".join(str(e) for e in errors)[:500]
        if body.get("message"):
            return str(body["message"])[:500]
    return str(body)[:300]


def classify(response: requests.Response) -> CrmError | None:
    status = response.status_code
    if status < 400:
        return None
    message, code = describe(response), str(status)
    if status == 429:
        retry = retry_after_seconds(response.headers)
        return RateLimited(message, status=status, code="rate_limited", retry_after=retry or DEFAULT_RETRY_SECONDS)
    if status == 401:
        return AuthError(message, status=status, code="unauthorized")
    if status == 403:
        return ConfigurationError(message, status=status, code="forbidden")
    if status in (404, 410):
        return NotFound(message, status=status, code="not_found")
    if status == 408 or status >= 500:
        return RetryableError(message, status=status, code=code, retry_after=retry_after_seconds(response.headers))
    return RecordError(message, status=status, code=code)


def rate_snapshot(headers: requests.structures.CaseInsensitiveDict) -> RateLimitSnapshot | None:
    hour_limit, hour_left = int_header(headers, "x-ratelimit-limit"), int_header(headers, "x-ratelimit-remaining")
    minute_limit = int_header(headers, "per-min-x-ratelimit-limit")
    minute_left = int_header(headers, "per-min-x-ratelimit-remaining")
    retry = retry_after_seconds(headers)
    if minute_left is not None and minute_left <= 0:
        return RateLimitSnapshot(limit=minute_limit, remaining=0, window_seconds=60, reset_seconds=retry or 60)
    if hour_left is None and minute_left is None:
        return None
    if hour_left is None:
        return RateLimitSnapshot(limit=minute_limit, remaining=minute_left, window_seconds=60, reset_seconds=retry)
    # The hour's reset time is not sent: when it is spent, look again in a minute (a 429 then
    # carries Retry-After).
    reset = retry or (DEFAULT_RETRY_SECONDS if hour_left <= 0 else None)
    return RateLimitSnapshot(limit=hour_limit, remaining=hour_left, window_seconds=3600, reset_seconds=reset)
