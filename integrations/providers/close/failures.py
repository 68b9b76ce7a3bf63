"""Close's error answers and rate-limit headers, mapped to the taxonomy (crm-reference §8.5, §8.6).

- 400 validation: ``{"errors": [...], "field-errors": {"<field>": "<message>"}}`` (the official
  client's ValidationError) → RecordError naming the first field; other bodies ``{"error": …}``,
  where a 429's ``error`` is an object with ``message`` and ``rate_reset``.
- 401 → AuthError (refresh once, else re-authenticate); 402 (plan limit) and 403 →
  ConfigurationError; 404/410 → NotFound; 408, 429 and 5xx → retryable.
- ``RateLimit: limit=100, remaining=50, reset=5`` (reset in seconds) on every answer; a 429 has
  ``Retry-After`` too. The official client sleeps for ``reset``, else ``Retry-After``; so do we.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

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
from integrations.http import CrmHttp, RateLimitSnapshot, retry_after_seconds

T = TypeVar("T")
R = TypeVar("R")

_RATE = re.compile(r"limit\s*=\s*(\d+)\s*,\s*remaining\s*=\s*(\d+)\s*,\s*reset\s*=\s*(\d+(?:\.\d+)?)")


def _body(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def describe(body: Any) -> tuple[str, str, str]:
    """(message, code, first field) of a Close error body."""
    if not isinstance(body, Mapping):
        return "", "", ""
    field_errors = body.get("field-errors")
    if isinstance(field_errors, Mapping) and field_errors:
        parts = [f"{name}: {message}" for name, message in field_errors.items()]
        return "; ".join(parts), "validation", str(next(iter(field_errors)))
    errors = body.get("errors")
    if isinstance(errors, list) and errors:
        return "; ".join(str(e) for e in errors), "validation", ""
    error = body.get("error")
    if isinstance(error, Mapping):
        return str(error.get("message") or error), "", ""
    return (str(error), "", "") if error else ("", "", "")


def rate_reset(response: requests.Response) -> float | None:
    """Seconds until the spent bucket refills: ``RateLimit`` reset, else Retry-After, else the body."""
    match = _RATE.search(response.headers.get("RateLimit") or "")
    if match and response.status_code == 429:
        return float(match.group(3))
    after = retry_after_seconds(response.headers)
    if after is not None:
        return after
    body = _body(response)
    error = body.get("error") if isinstance(body, Mapping) else None
    reset = (error.get("rate_reset") if isinstance(error, Mapping) else None) or (
        body.get("rate_reset") if isinstance(body, Mapping) else None
    )
    return float(reset) if isinstance(reset, int | float) else None


def classify(response: requests.Response) -> CrmError | None:
    status = response.status_code
    message, code, field = describe(_body(response))
    message = message or response.reason or f"HTTP {status}"
    if status == 429:
        return RateLimited(message, status=status, code="rate_limited", retry_after=rate_reset(response))
    if status == 401:
        return AuthError(message, status=status, code=code or "unauthorized")
    if status in (402, 403):
        return ConfigurationError(message, status=status, code=code or ("plan_limit" if status == 402 else "forbidden"))
    if status in (404, 410):
        return NotFound(message, status=status, code=code or "not_found")
    if status == 408 or status >= 500:
        return RetryableError(message, status=status, code=code, retry_after=retry_after_seconds(response.headers))
    if status >= 400:
        return RecordError(message, status=status, code=code, field=field)
    return None


def parse_rate_limit(headers: requests.structures.CaseInsensitiveDict) -> RateLimitSnapshot | None:
    match = _RATE.search(headers.get("RateLimit") or "")
    after = retry_after_seconds(headers)
    if match is None:
        return RateLimitSnapshot(reset_seconds=after) if after is not None else None
    limit, remaining, reset = int(match.group(1)), int(match.group(2)), float(match.group(3))
    return RateLimitSnapshot(limit=limit, remaining=remaining, reset_seconds=max(reset, after or 0.0))


# The longest reset waited out inline; a longer one is the engine's to schedule.
INLINE_WAIT_SECONDS = 5.0


def patient(work: Callable[[CrmHttp, T], R]) -> Callable[[CrmHttp, T], R]:
    """``work`` that waits out a short 429 and tries its record once more, as Close's own client
    does (it sleeps for the ``RateLimit`` reset): the refused call wrote nothing, and giving up the
    batch would cost its finished records a second search and write. A longer wait, or a second
    429, is raised to the caller (integrations.concurrency stops the batch; the engine schedules)."""

    def attempt(http: CrmHttp, item: T) -> R:
        try:
            return work(http, item)
        except RateLimited as error:
            wait = error.retry_after if error.retry_after is not None else 1.0
            if wait > INLINE_WAIT_SECONDS:
                raise
            time.sleep(wait)  # the shared limiter, told by the 429's headers, holds the other calls too
        return work(http, item)

    return attempt
