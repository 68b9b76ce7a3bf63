"""A per-connection rate limiter shared by every worker, so the CRM never has to say 429.

The limit is the provider's published one (integrations.registry RateLimitSpec) with headroom,
counted in a sliding window that mirrors how the CRMs count (HubSpot's rolling 10 s window):
a Redis sorted set of request times per (connection, bucket), checked and appended atomically by
a short Lua script using Redis's own clock, so workers on different machines agree.

The CRM's own signals adjust it: a 429 or a ``Retry-After`` blocks the connection for every
worker until then; a ``remaining`` of zero waits for the window to roll. A daily counter tracks
the daily budget so batch work can yield to real-time work before the budget runs out.
Without Redis (the embedded default) an in-process limiter with the same rules is used.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings

from integrations.http import RateLimitSnapshot
from integrations.registry import RateLimitSpec

# Sliding-window log: KEYS[1] the window's sorted set, KEYS[2] the "blocked until" key.
# ARGV: window_ms, limit, member. Returns ms to wait (0: the call may go now and was recorded).
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local blocked = tonumber(redis.call('GET', KEYS[2]) or '0')
if blocked > now then return blocked - now end
local window = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], window)
  return 0
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return math.max(1, tonumber(oldest[2]) + window - now)
"""

# KEYS[1] blocked-until key; ARGV[1] ms to block. Keeps the later of the two deadlines.
_BLOCK = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local until_ms = now + tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if until_ms > current then redis.call('SET', KEYS[1], until_ms, 'PX', tonumber(ARGV[1]) + 1000) end
return until_ms
"""


@dataclass(frozen=True)
class Bucket:
    name: str
    limit: int
    window_seconds: float


def buckets_for(spec: RateLimitSpec) -> dict[str, Bucket]:
    """The windows a provider's published limits imply, with headroom."""
    buckets = {"default": Bucket("default", max(1, int(spec.requests * spec.headroom)), spec.window_seconds)}
    if spec.search_per_second:
        buckets["search"] = Bucket("search", max(1, int(spec.search_per_second * spec.headroom)), 1.0)
    return buckets


class RateLimiter(ABC):
    """``acquire(bucket)`` blocks until a call may go; ``observe`` feeds back the CRM's headers."""

    def __init__(self, key: str, spec: RateLimitSpec, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self.key = key
        self.spec = spec
        self.buckets = buckets_for(spec)
        self.sleep = sleep
        self.waited_seconds = 0.0

    def acquire(self, bucket: str = "default", *, max_wait: float = 300.0) -> None:
        chosen = self.buckets.get(bucket) or self.buckets["default"]
        deadline = time.monotonic() + max_wait
        while True:
            wait_ms = self._try(chosen)
            if wait_ms <= 0:
                self._count_daily()
                return
            wait = min(wait_ms / 1000, max(0.0, deadline - time.monotonic()))
            if wait <= 0:
                from integrations.errors import RateLimited

                raise RateLimited("our own rate limiter is saturated", code="local_limit", retry_after=wait_ms / 1000)
            self.waited_seconds += wait
            self.sleep(wait)

    def block_for(self, seconds: float) -> None:
        """Stop every worker calling this connection for ``seconds`` (after a 429 / Retry-After)."""
        self._block(max(0.001, seconds))

    def observe(self, snapshot: RateLimitSnapshot | None) -> None:
        """When the CRM says the window is spent, wait for it to roll rather than earn a 429."""
        if snapshot is None or snapshot.remaining is None:
            return
        if snapshot.remaining <= 0:
            self.block_for(snapshot.reset_seconds or snapshot.window_seconds or self.spec.window_seconds)

    def daily_budget_left(self) -> float:
        """Share of the published daily budget still unused (1.0 when the CRM has none)."""
        if not self.spec.daily:
            return 1.0
        return max(0.0, 1 - self.daily_used() / self.spec.daily)

    @abstractmethod
    def daily_used(self) -> int:
        """Calls made today (UTC) through this limiter."""

    @abstractmethod
    def _try(self, bucket: Bucket) -> int:
        """Record a call if the window allows it and return 0, else the milliseconds to wait."""

    @abstractmethod
    def _block(self, seconds: float) -> None:
        """Refuse every call for ``seconds``."""

    @abstractmethod
    def _count_daily(self) -> None:
        """Count one call against today's budget."""


def _today() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y%m%d")


class RedisRateLimiter(RateLimiter):
    def __init__(self, key: str, spec: RateLimitSpec, redis_client, **kwargs) -> None:
        super().__init__(key, spec, **kwargs)
        self.redis = redis_client
        self._acquire = redis_client.register_script(_ACQUIRE)
        self._block_script = redis_client.register_script(_BLOCK)

    def _try(self, bucket: Bucket) -> int:
        return int(
            self._acquire(
                keys=[f"rl:{self.key}:{bucket.name}", f"rl:{self.key}:blocked"],
                args=[int(bucket.window_seconds * 1000), bucket.limit, uuid.uuid4().hex],
            )
        )

    def _block(self, seconds: float) -> None:
        self._block_script(keys=[f"rl:{self.key}:blocked"], args=[int(seconds * 1000)])

    def _count_daily(self) -> None:
        if self.spec.daily:
            key = f"rl:{self.key}:daily:{_today()}"
            pipe = self.redis.pipeline()
            pipe.incr(key)
            pipe.expire(key, 2 * 86400)
            pipe.execute()

    def daily_used(self) -> int:
        return int(self.redis.get(f"rl:{self.key}:daily:{_today()}") or 0)


class LocalRateLimiter(RateLimiter):
    """The same rules within one process, for the embedded default without Redis."""

    _windows: dict[str, deque[float]] = defaultdict(deque)
    _blocked: dict[str, float] = {}
    _daily: dict[str, int] = defaultdict(int)
    _lock = threading.Lock()

    def _try(self, bucket: Bucket) -> int:
        now = time.monotonic()
        with self._lock:
            until = self._blocked.get(self.key, 0.0)
            if until > now:
                return int((until - now) * 1000) + 1
            window = self._windows[f"{self.key}:{bucket.name}"]
            while window and window[0] <= now - bucket.window_seconds:
                window.popleft()
            if len(window) < bucket.limit:
                window.append(now)
                return 0
            return int((window[0] + bucket.window_seconds - now) * 1000) + 1

    def _block(self, seconds: float) -> None:
        with self._lock:
            self._blocked[self.key] = max(self._blocked.get(self.key, 0.0), time.monotonic() + seconds)

    def _count_daily(self) -> None:
        with self._lock:
            self._daily[f"{self.key}:{_today()}"] += 1

    def daily_used(self) -> int:
        return self._daily.get(f"{self.key}:{_today()}", 0)


def limiter_for(connection_id: int, spec: RateLimitSpec) -> RateLimiter:
    """The shared limiter for a connection: Redis when configured, in-process otherwise."""
    if settings.REDIS_URL:
        from integrations.sync.redis import redis_client

        return RedisRateLimiter(f"conn:{connection_id}", spec, redis_client())
    return LocalRateLimiter(f"conn:{connection_id}", spec)
