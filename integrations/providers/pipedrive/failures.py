"""Pipedrive's error answers and rate-limit headers in the taxonomy of integrations.errors.

Error bodies (crm-reference §3.6): ``{"success": false, "error": "<message>", "error_info": "<hint>",
"data": null}`` with an optional ``code``; the OAuth endpoints answer ``message``/``error``
strings. Status codes (§3.5): 401 invalid token, 402 company account not open, 403 not allowed,
404, 410 gone, 422 (e.g. webhooks limit), 429, 5xx. None of Pipedrive's messages carries a token.

Rate limits (§3.5): ``x-ratelimit-limit``/``-remaining``/``-reset`` describe the 2-second burst
window of the token; the company's daily token budget is in ``x-daily-ratelimit-token-*``. A 429
is retried after ``Retry-After`` when sent (UNVERIFIED), else after ``x-ratelimit-reset``; with the
daily budget spent, at the next UTC midnight (when Pipedrive resets it).
"""

from __future__ import annotations

import datetime as dt
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
from integrations.http import RateLimitSnapshot, int_header, retry_after_seconds

WINDOW_SECONDS = 2.0  # the burst window [crm-reference §3.5]
LIMIT, REMAINING, RESET = "x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"
DAILY, DAILY_REMAINING = "x-daily-ratelimit-token-limit", "x-daily-ratelimit-token-remaining"


def _body(response: requests.Response) -> Mapping[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, Mapping) else {}


def describe(response: requests.Response) -> tuple[str, str]:
    """(message, code): Pipedrive's ``error`` text (or ``message``), and its ``code`` when it sends one."""
    body = _body(response)
    message = body.get("error") or body.get("message") or body.get("error_description")
    if not isinstance(message, str) or not message:
        message = response.text[:300] if not body else ""
        message = message or response.reason or f"HTTP {response.status_code}"
    code = body.get("code") or body.get("errorCode") or ""
    return message[:500], str(code)


def seconds_to_utc_midnight(now: dt.datetime | None = None) -> float:
    now = now or dt.datetime.now(dt.UTC)
    tomorrow = (now + dt.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(1.0, (tomorrow - now).total_seconds())


def retry_after(headers: requests.structures.CaseInsensitiveDict) -> float:
    if int_header(headers, DAILY_REMAINING) == 0:
        return seconds_to_utc_midnight()
    stated = retry_after_seconds(headers)
    if stated is not None:
        return stated
    reset = int_header(headers, RESET)
    return float(reset) if reset is not None and reset > 0 else WINDOW_SECONDS


def classify(response: requests.Response) -> CrmError | None:
    status = response.status_code
    if status < 400:
        return None
    message, code = describe(response)
    if status == 429:
        return RateLimited(message, status=status, code=code or "rate_limit", retry_after=retry_after(response.headers))
    if status == 401:
        return AuthError(message, status=status, code=code)
    if status in (402, 403):  # account not open / not allowed: a person must act
        return ConfigurationError(message, status=status, code=code)
    if status in (404, 410):
        return NotFound(message, status=status, code=code)
    if status == 408 or status >= 500:
        return RetryableError(message, status=status, code=code, retry_after=retry_after_seconds(response.headers))
    return RecordError(message, status=status, code=code)


def snapshot(headers: requests.structures.CaseInsensitiveDict) -> RateLimitSnapshot | None:
    if headers.get(LIMIT) is None and headers.get(REMAINING) is None and headers.get(DAILY_REMAINING) is None:
        return None
    reset = int_header(headers, RESET)
    return RateLimitSnapshot(
        limit=int_header(headers, LIMIT),
        remaining=int_header(headers, REMAINING),
        window_seconds=WINDOW_SECONDS,
        daily_limit=int_header(headers, DAILY),
        daily_remaining=int_header(headers, DAILY_REMAINING),
        reset_seconds=float(reset) if reset is not None else None,
    )
