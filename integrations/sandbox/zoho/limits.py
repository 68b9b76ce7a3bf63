"""Zoho CRM's API limits: a rolling 24-hour credit budget per org and a concurrency cap per org and app
(crm-reference §4.5).

- Credits: Free 5,000; Standard 50,000 + 250 per user (max 100,000); Professional 50,000 + 500 per
  user; Enterprise 50,000 + 1,000 per user; Ultimate 50,000 + 2,000 per user. Credits used more
  than 24 hours ago are free again (a rolling window, not a calendar day). Most calls cost one
  credit; the costs below differ (Zoho's API-limits page; per-call costs other than these are
  **UNVERIFIED** and configurable through ``credit_costs``).
- Concurrency: Free 5, Standard 10, Professional 15, Enterprise 20, Ultimate 25 requests in flight
  (the upper two **UNVERIFIED**), and a sub-concurrency of 10 for heavy calls: COQL, search, and
  insert/update/upsert of more than 10 records.
- The excess is refused with HTTP 429: ``TOO_MANY_REQUESTS`` for concurrency, ``LIMIT_EXCEEDED``
  for a spent credit budget (the reference's pairing; the brief named TOO_MANY_REQUESTS for both).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque

DAY = 86_400.0

# Route kinds and their costs in credits. COQL costs by the LIMIT it asks for (COQL docs:
# 1-200 rows 1 credit, 201-1000 2, 1001-2000 3); lead conversion 5; bulk-write initialise 500.
DEFAULT_CREDIT_COSTS: dict[str, int] = {
    "records": 1,
    "write": 1,
    "upsert": 1,
    "search": 1,
    "coql": 1,
    "fields": 1,
    "users": 1,
    "org": 1,
    "notifications": 1,
    "convert": 5,
    "bulk_write": 500,
}


def coql_credits(limit: int) -> int:
    """Credits of one COQL query by the number of rows its LIMIT asks for."""
    if limit <= 200:
        return 1
    if limit <= 1000:
        return 2
    return 3


class CreditLedger:
    """Credits spent in the last 24 hours, kept per second so a day of traffic stays small."""

    def __init__(self, budget: int, window: float = DAY) -> None:
        self.budget, self.window = budget, window
        self._spent: deque[list[float]] = deque()  # [second, credits]
        self._used = 0
        self._lock = threading.Lock()

    def _expire(self, now: float) -> None:
        while self._spent and self._spent[0][0] <= now - self.window:
            self._used -= int(self._spent.popleft()[1])

    def used(self) -> int:
        with self._lock:
            self._expire(time.monotonic())
            return self._used

    def remaining(self) -> int:
        return max(0, self.budget - self.used())

    def seconds_until_free(self) -> int:
        """When the oldest spent credits come back (what a caller should wait after a refusal)."""
        with self._lock:
            if not self._spent:
                return 0
            return max(1, math.ceil(self._spent[0][0] + self.window - time.monotonic()))

    def spend(self, credits: int) -> bool:
        """Charge ``credits`` if the budget allows the whole call; False (nothing charged) otherwise."""
        now = time.monotonic()
        with self._lock:
            self._expire(now)
            if self._used + credits > self.budget:
                return False
            second = float(int(now))
            if self._spent and self._spent[-1][0] == second:
                self._spent[-1][1] += credits
            else:
                self._spent.append([second, credits])
            self._used += credits
            return True

    def reset(self) -> None:
        with self._lock:
            self._spent.clear()
            self._used = 0


class ConcurrencyGate:
    """Requests in flight for the org, and the heavy ones among them."""

    def __init__(self, limit: int, heavy_limit: int) -> None:
        self.limit, self.heavy_limit = limit, heavy_limit
        self.in_flight = 0
        self.heavy_in_flight = 0
        self._lock = threading.Lock()

    def enter(self, heavy: bool) -> bool:
        with self._lock:
            if self.in_flight >= self.limit or (heavy and self.heavy_in_flight >= self.heavy_limit):
                return False
            self.in_flight += 1
            if heavy:
                self.heavy_in_flight += 1
            return True

    def leave(self, heavy: bool) -> None:
        with self._lock:
            self.in_flight -= 1
            if heavy:
                self.heavy_in_flight -= 1
