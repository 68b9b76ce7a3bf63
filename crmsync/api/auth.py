"""API-key authentication (``Authorization: Bearer csk_…``) and the per-key rate limit."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.http import HttpRequest
from django.utils import timezone
from ninja.security import HttpBearer

from crmsync import ratelimit
from crmsync.api.errors import ApiError
from crmsync.models import ApiKey

# last_used_at is for people ("is this key still in use?"): minute precision spares a write per request.
LAST_USED_PRECISION = timedelta(minutes=1)


def actor_label(key: ApiKey) -> str:
    """How a key appears in logs and audit entries: its public prefix, never the secret."""
    return f"api-key {key.prefix}…"


def _touch(key: ApiKey) -> None:
    now = timezone.now()
    if key.last_used_at is not None and now - key.last_used_at < LAST_USED_PRECISION:
        return
    stale = Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - LAST_USED_PRECISION)
    ApiKey.objects.filter(stale, pk=key.pk).update(last_used_at=now)
    key.last_used_at = now


class ApiKeyAuth(HttpBearer):
    """Resolves the request's API key (request.auth) and counts the request against the key's limit.

    Missing, unknown and revoked keys all get the same 401, so the answer tells nothing about
    which keys exist. Over the limit: 429 with Retry-After.
    """

    def __call__(self, request: HttpRequest) -> ApiKey | None:
        # ninja's HttpBearer logs a malformed header in DEBUG; that header may hold a key, so we parse it here.
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        return self.authenticate(request, token.strip())

    def authenticate(self, request: HttpRequest, token: str) -> ApiKey | None:
        key = ApiKey.authenticate(token)
        if key is None:
            return None
        verdict = ratelimit.hit("api-key", settings.API_KEY_RATE_LIMIT, key.key_hash)
        if not verdict.allowed:
            raise ApiError.rate_limited(verdict.retry_after)
        _touch(key)
        return key
