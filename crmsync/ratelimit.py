"""Rate limits shared by every web process: Redis when REDIS_URL is set, process memory otherwise.

    verdict = ratelimit.hit("api-key", settings.API_KEY_RATE_LIMIT, key.key_hash)
    if not verdict.allowed: answer 429 with Retry-After: verdict.retry_after

``scope`` separates limits (API keys, sign-in, inbound webhooks) that use the same identifiers;
``rate`` is in the notation of the ``limits`` library ("60000/minute", "10/second;100/hour").
Identifiers must not be secrets (use a key's id or hash): they end up in Redis key names.

The sliding-window counter costs one Redis round trip per hit and is exact enough for abuse
protection. When Redis cannot be reached we let the request through and log it: the limiter
protects the service, and an outage of Redis must not stop ingestion (DESIGN.md invariant 1).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass
from functools import lru_cache

from django.conf import settings
from limits import RateLimitItem, parse_many
from limits.storage import Storage, storage_from_string
from limits.strategies import SlidingWindowCounterRateLimiter

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    retry_after: float = 0.0  # seconds until a retry can succeed, when not allowed


@lru_cache(maxsize=64)
def _items(rate: str) -> tuple[RateLimitItem, ...]:
    return tuple(parse_many(rate))


_storages: dict[str, Storage] = {}
_storages_lock = threading.Lock()


def _storage_uri(redis_url: str | None) -> str:
    if not redis_url:
        return "memory://"
    # limits spells Redis over a Unix socket redis+unix://; our settings accept unix:// as redis-py does.
    return "redis+unix://" + redis_url.removeprefix("unix://") if redis_url.startswith("unix://") else redis_url


def storage_for(redis_url: str | None) -> Storage:
    uri = _storage_uri(redis_url)
    with _storages_lock:
        if uri not in _storages:
            options = {} if uri == "memory://" else {"socket_timeout": 1, "socket_connect_timeout": 1}
            _storages[uri] = storage_from_string(uri, **options)
        return _storages[uri]


class RateLimiter:
    """A named limit checked against one storage; ``hit`` counts a request and says whether it may pass."""

    def __init__(self, scope: str, rate: str, storage: Storage) -> None:
        self.scope = scope
        self.items = _items(rate)
        self.storage = storage
        self.strategy = SlidingWindowCounterRateLimiter(storage)

    def hit(self, identifier: str) -> Verdict:
        try:
            for item in self.items:
                if not self.strategy.hit(item, self.scope, identifier):
                    reset_at, _remaining = self.strategy.get_window_stats(item, self.scope, identifier)
                    return Verdict(False, max(1.0, math.ceil(reset_at - time.time())))
        except self.storage.base_exceptions as exc:
            # One line, no traceback: during an outage this fires on every request.
            log.warning("rate limiter storage unavailable (%s); letting a %s request through", exc, self.scope)
        return Verdict(True)


def hit(scope: str, rate: str, identifier: str) -> Verdict:
    """Count one request of ``identifier`` against ``rate`` in the shared storage of this deployment."""
    return RateLimiter(scope, rate, storage_for(settings.REDIS_URL)).hit(identifier)
