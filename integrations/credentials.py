"""Keeping a connection's access token fresh: refreshed ahead of expiry, one refresh at a time.

Refreshes are serialised per connection with a row lock (``SELECT … FOR UPDATE``): twenty jobs
that find the token expiring all queue on the lock, the first refreshes and commits, the rest
re-read the row, see a fresh token and go on — one refresh call. A refused refresh marks the
connection "needs re-authentication", keeps its work waiting, and tells the owner once.
"""

from __future__ import annotations

import datetime as dt
import logging

from django.db import transaction
from django.utils import timezone

from integrations import oauth
from integrations.connector import Connector, TokenSet
from integrations.errors import AuthError, OAuthError
from integrations.models import AuthKind, Connection, ConnectionStatus

log = logging.getLogger(__name__)

# Refresh this long before the CRM's expiry, so a token never dies mid-batch.
REFRESH_AHEAD = dt.timedelta(minutes=5)


def _expiring(connection: Connection, now: dt.datetime) -> bool:
    return connection.token_expires_at is not None and connection.token_expires_at - REFRESH_AHEAD <= now


def store_tokens(connection: Connection, tokens: TokenSet) -> None:
    """Write a token answer onto the connection (rotated refresh tokens replace the old one)."""
    connection.access_token = tokens.access_token
    if tokens.refresh_token:
        connection.refresh_token = tokens.refresh_token
    connection.token_expires_at = tokens.expires_at
    if tokens.scopes:
        connection.scopes = list(tokens.scopes)
    if tokens.api_base_url:
        connection.api_base_url = tokens.api_base_url


def _refresh_locked(connection_id: int, *, rejected_token: str | None) -> Connection:
    with transaction.atomic():
        locked = Connection.objects.select_for_update().get(pk=connection_id)
        now = timezone.now()
        if rejected_token is None and not _expiring(locked, now):
            return locked  # another job refreshed while we waited for the lock
        if rejected_token is not None and locked.access_token != rejected_token:
            return locked  # the rejected token was already replaced
        if locked.status == ConnectionStatus.NEEDS_REAUTH:
            raise AuthError(f"{locked.spec.label} needs re-authentication", code="needs_reauth")
        if locked.auth_kind != AuthKind.OAUTH or not locked.refresh_token:
            failure = "the CRM rejected the token and there is no refresh token"
        else:
            try:
                tokens = oauth.refresh(locked.spec, locked.refresh_token)
            except OAuthError as exc:
                failure = f"refresh refused: {exc}"
            else:
                store_tokens(locked, tokens)
                locked.save(
                    update_fields=[
                        "access_token",
                        "refresh_token",
                        "token_expires_at",
                        "scopes",
                        "api_base_url",
                        "updated_at",
                    ]
                )
                log.info("refreshed the access token of connection %s", locked.pk)
                return locked
        mark_needs_reauth(locked, failure)
    raise AuthError(f"{locked.spec.label} needs re-authentication: {failure}", code="needs_reauth")


def mark_needs_reauth(connection: Connection, reason: str) -> None:
    """Set the status, keep the work waiting, and tell the owner (once per transition)."""
    from crmsync.audit import record
    from integrations.notify import notify_needs_reauth

    if connection.status == ConnectionStatus.NEEDS_REAUTH:
        return
    connection.status = ConnectionStatus.NEEDS_REAUTH
    connection.status_reason = reason[:500]
    connection.save(update_fields=["status", "status_reason", "updated_at"])
    record("connection.needs_reauth", actor_label="system", obj=connection, changes={"reason": reason[:500]})
    transaction.on_commit(lambda: notify_needs_reauth(connection.pk))


def fresh_connection(connection: Connection) -> Connection:
    """The connection with a token that will not expire within REFRESH_AHEAD."""
    if _expiring(connection, timezone.now()):
        return _refresh_locked(connection.pk, rejected_token=None)
    return connection


def refresh_after_rejection(connection: Connection) -> Connection:
    """The CRM answered 401 to a token we thought valid: refresh once (serialised) or give up."""
    return _refresh_locked(connection.pk, rejected_token=connection.access_token)


def connector_for(connection: Connection, **http_hooks) -> Connector:
    """A connector with a fresh token."""
    return fresh_connection(connection).connector(**http_hooks)
