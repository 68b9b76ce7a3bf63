"""API request accounting: the org's rolling 24-hour allocation and an optional per-second ceiling.

Salesforce counts every REST call against a rolling 24-hour allocation per org (100,000 plus
per-licence additions), reports it in ``Sforce-Limit-Info: api-usage=N/M`` on every answer and
refuses the excess with HTTP 403 ``REQUEST_LIMIT_EXCEEDED`` — never 429 (crm-reference §1.5).
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque

DAY = 86_400.0


class RollingAllocation:
    """Requests in the last 24 hours, kept as per-second buckets so a day of traffic stays small."""

    def __init__(self, limit: int, window: float = DAY) -> None:
        self.limit, self.window = limit, window
        self._buckets: deque[list[float]] = deque()  # [second, count]
        self._used = 0
        self._lock = threading.Lock()

    def _expire(self, now: float) -> None:
        while self._buckets and self._buckets[0][0] <= now - self.window:
            self._used -= int(self._buckets.popleft()[1])

    def used(self) -> int:
        with self._lock:
            self._expire(time.monotonic())
            return self._used

    def take(self) -> tuple[bool, int]:
        """Count one request if the allocation allows it. Returns (allowed, used including this one)."""
        now = time.monotonic()
        with self._lock:
            self._expire(now)
            if self._used >= self.limit:
                return False, self._used
            second = float(int(now))
            if self._buckets and self._buckets[-1][0] == second:
                self._buckets[-1][1] += 1
            else:
                self._buckets.append([second, 1])
            self._used += 1
            return True, self._used

    def reset(self) -> None:
        with self._lock:
            self._buckets.clear()
            self._used = 0


def route_kind(path: str) -> str:
    """The family a request belongs to (the key of ``calls_by_kind``)."""
    if path.startswith("/services/oauth2/"):
        return "userinfo" if path.endswith("/userinfo") else "oauth"
    if path.startswith("/id/"):
        return "identity"
    parts = path.split("/")
    if len(parts) < 5 or parts[:3] != ["", "services", "data"]:
        return "other"
    head = parts[4]
    if head == "sobjects":
        rest = [p for p in parts[5:] if p]
        if not rest or rest[1:2] == ["describe"]:
            return "describe"
        return "replication" if rest[1:2] in (["updated"], ["deleted"]) else "sobject"
    if head == "composite":
        return "collections" if len(parts) > 5 and parts[5] == "sobjects" else "composite"
    if head == "jobs":
        return "bulk"
    return {
        "query": "query",
        "queryAll": "query",
        "search": "search",
        "parameterizedSearch": "search",
        "tooling": "tooling",
        "limits": "limits",
    }.get(head, "resources")


class Counters:
    """What tests and benchmarks read: calls per kind, Bulk records, refusals."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.calls_by_kind: Counter[str] = Counter()
            self.api_calls = 0
            self.bulk_records = 0
            self.limit_refusals = 0

    def call(self, kind: str, data_api: bool) -> None:
        with self._lock:
            self.calls_by_kind[kind] += 1
            self.api_calls += int(data_api)

    def refused(self) -> None:
        with self._lock:
            self.limit_refusals += 1

    def bulk(self, records: int) -> None:
        with self._lock:
            self.bulk_records += records
