"""The personalisation cache: one JSON answer per prospect, short-lived, dropped when CRM data changes.

Changes are applied by workers and read by web processes, so with Redis configured the cache is
Redis itself (every process sees a deletion at once); without it (the embedded single-process
set-up) Django's default cache is used. A Redis that is down only costs speed: reads fall
through to the database.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

from django.conf import settings
from django.core.cache import cache as django_cache
from django.db import connection

log = logging.getLogger(__name__)

TTL_SECONDS = 60


def _key(prospect_id: int) -> str:
    # Prefixed by the database, so two deployments (or test databases) sharing a Redis never mix ids.
    database = hashlib.sha256(str(connection.settings_dict.get("NAME")).encode()).hexdigest()[:8]
    return f"inbound:personalization:v1:{database}:{prospect_id}"


def _redis():
    from integrations.sync.redis import redis_client

    return redis_client()


def get(prospect_id: int) -> dict[str, Any] | None:
    if settings.REDIS_URL:
        try:
            raw = _redis().get(_key(prospect_id))
        except Exception:
            log.warning("personalisation cache unavailable; reading from the database")
            return None
        return json.loads(raw) if raw else None
    return django_cache.get(_key(prospect_id))


def put(prospect_id: int, value: dict[str, Any]) -> None:
    if settings.REDIS_URL:
        try:
            _redis().set(_key(prospect_id), json.dumps(value, default=str), ex=TTL_SECONDS)
        except Exception:
            log.warning("personalisation cache unavailable; answer not cached")
        return
    django_cache.set(_key(prospect_id), value, TTL_SECONDS)


def invalidate(prospect_id: int) -> None:
    if settings.REDIS_URL:
        try:
            _redis().delete(_key(prospect_id))
        except Exception:
            # The entry expires within TTL_SECONDS anyway; say so rather than fail the change.
            log.warning("could not drop the cached personalisation of prospect %s", prospect_id)
        return
    django_cache.delete(_key(prospect_id))
