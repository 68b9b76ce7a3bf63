"""Pacing calls below Pipedrive's burst limit, learned from its own headers.

Pipedrive has no person batch endpoint (crm-reference §3.2), so ``upsert_people`` makes one or two
calls per person from a small thread pool. The sync engine's shared limiter (integrations.sync.
ratelimit) paces by the published limit of the provider spec; a Pipedrive token's real limit
depends on the plan and the credential kind (20 to 120 requests per 2 s for API tokens, 80 to 480
for OAuth apps, §3.5) and every answer states it in ``x-ratelimit-limit``. This pacer keeps a
sliding window of our own calls per token at that stated limit (with the spec's headroom), and
stops every caller until ``x-ratelimit-reset`` when ``x-ratelimit-remaining`` reaches zero (another
client sharing the token). So the pool never earns a 429, with or without the engine around it.

Search endpoints have a lower burst limit of their own (10 per 2 s, §3.5) on top of the token's
window; ``search_pacer_for`` keeps that one (``SEARCH_LIMIT``), and the connector's seam
passes a search through both. It does not learn from headers: Pipedrive does not say which
headers a search answer carries, and ours state the token's window.

One pacer per API host and token in a process (the token itself is never kept: a digest is).
"""

from __future__ import annotations

import bisect
import hashlib
import threading
import time
from collections import deque
from collections.abc import Callable
from urllib.parse import urlsplit

from integrations.http import RateLimitSnapshot
from integrations.registry import RateLimitSpec


class Pacer:
    def __init__(self, spec: RateLimitSpec, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self.limit = spec.requests  # until Pipedrive states the token's own
        self.window = float(spec.window_seconds)
        self.headroom = spec.headroom
        self.sleep = sleep
        self.waited_seconds = 0.0
        self._sends: deque[float] = deque()
        self._blocked_until = 0.0
        self._lock = threading.Lock()
        self._local = threading.local()

    @property
    def allowed(self) -> int:
        return max(1, int(self.limit * self.headroom))

    def acquire(self) -> None:
        """Wait until one more call fits in the window, then count it."""
        while True:
            with self._lock:
                now = time.monotonic()
                while self._sends and self._sends[0] <= now - self.window:
                    self._sends.popleft()
                if self._blocked_until > now:
                    wait = self._blocked_until - now
                elif len(self._sends) < self.allowed:
                    self._sends.append(now)
                    self._local.sent = now
                    return
                else:
                    wait = self._sends[0] + self.window - now
            wait = max(wait, 0.001)
            self.waited_seconds += wait
            self.sleep(wait)

    def answered(self) -> None:
        """Move this thread's last call to the time its answer came.

        Pipedrive counts a call when it arrives, somewhere between our send and its answer; a
        window kept by send times alone lets a call go when the CRM still counts one sent just
        before a slow arrival (seen as the odd 429 on the 10-per-2-s search window). Counting each
        call from its answer keeps our window at or behind Pipedrive's.
        """
        sent = getattr(self._local, "sent", None)
        if sent is None:
            return
        self._local.sent = None
        with self._lock:
            try:
                self._sends.remove(sent)
            except ValueError:
                return  # already out of the window
            bisect.insort(self._sends, time.monotonic())

    def observe(self, snapshot: RateLimitSnapshot | None) -> None:
        """Learn the token's limit; when the window is spent, hold every caller until it resets."""
        if snapshot is None:
            return
        with self._lock:
            if snapshot.limit and snapshot.limit > 0:
                self.limit = snapshot.limit
            if snapshot.remaining is not None and snapshot.remaining <= 0:
                until = time.monotonic() + (snapshot.reset_seconds or self.window)
                self._blocked_until = max(self._blocked_until, until)


# Pipedrive's published burst limit for search endpoints (crm-reference §3.5), used in full: a
# search counts in our window from its answer (``answered``), later than Pipedrive counts it, so
# the round trip is the margin; 10% headroom on top would cost every first load 10% (the search
# limit sets its pace). The token is a dedicated integration user's (docs/crms/pipedrive.md).
SEARCH_LIMIT = RateLimitSpec(requests=10, window_seconds=2, headroom=1.0)

_pacers: dict[tuple[str, str], Pacer] = {}
_pacers_lock = threading.Lock()


def pacer_for(base_url: str, token: str, spec: RateLimitSpec, kind: str = "") -> Pacer:
    key = (base_url.rstrip("/") + kind, hashlib.sha256(token.encode()).hexdigest()[:16])
    with _pacers_lock:
        pacer = _pacers.get(key)
        if pacer is None:
            pacer = _pacers[key] = Pacer(spec)
        return pacer


def search_pacer_for(base_url: str, token: str) -> Pacer:
    """The pacer of the token's search calls (``SEARCH_LIMIT``)."""
    return pacer_for(base_url, token, SEARCH_LIMIT, kind="#search")


def is_search(url: str) -> bool:
    """Whether a call goes to a search endpoint (``/persons/search``, ``/itemSearch``…)."""
    path = urlsplit(url).path.rstrip("/")
    return path.endswith("/search") or "/itemSearch" in path


def forget_pacers() -> None:
    """Drop every pacer of this process (tests that restart an emulator on the same address)."""
    with _pacers_lock:
        _pacers.clear()
