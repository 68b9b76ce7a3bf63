"""When to try again: exponential backoff with jitter, capped, and Retry-After honoured.

Only retryable errors are retried (DESIGN.md taxonomy); record-level and configuration errors
fail the row at once. A rate limit is not a failure: the attempt is not counted.
"""

from __future__ import annotations

import datetime as dt
import random

from django.conf import settings


def backoff_seconds(attempts: int, retry_after: float | None = None) -> float:
    """Delay before attempt ``attempts + 1``: "equal jitter" (half fixed, half random) under a cap."""
    cap = settings.SYNC_RETRY_MAX_SECONDS
    if retry_after is not None:
        # The CRM said when; add a little spread so workers do not return in lockstep.
        return min(cap, max(0.5, retry_after)) + random.uniform(0, 0.5)
    delay = min(cap, settings.SYNC_RETRY_BASE_SECONDS * (2 ** max(0, attempts - 1)))
    return delay / 2 + random.uniform(0, delay / 2)


def next_attempt_time(now: dt.datetime, attempts: int, retry_after: float | None = None) -> dt.datetime:
    return now + dt.timedelta(seconds=backoff_seconds(attempts, retry_after))


def exhausted(attempts: int) -> bool:
    return attempts >= settings.SYNC_MAX_ATTEMPTS
