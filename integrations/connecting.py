"""Making and ending connections: shared by the OAuth callback, the token form and connect_crm."""

from __future__ import annotations

import logging

from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from crmsync.audit import record
from crmsync.models import Account
from integrations.connector import ConnectionCredentials, TokenSet
from integrations.credentials import store_tokens
from integrations.errors import CrmError
from integrations.models import AuthKind, Connection, ConnectionStatus
from integrations.registry import get_provider

log = logging.getLogger(__name__)


def connect(
    account: Account,
    provider: str,
    tokens: TokenSet,
    *,
    auth_kind: str,
    request: HttpRequest | None = None,
    actor_label: str | None = None,
) -> Connection:
    """Verify the tokens by reading the CRM account's identity, then store the connection.

    Raises CrmError (with the CRM's reason) when the CRM refuses the credentials; nothing is stored.
    Reconnecting a provider that already has a live connection updates that connection, keeping
    its mapping and links.
    """
    spec = get_provider(provider)
    connector = spec.connector_class()(
        ConnectionCredentials(tokens.access_token, tokens.api_base_url, extra={"auth_kind": auth_kind, **tokens.extra})
    )
    identity = connector.identity()
    with transaction.atomic():
        connection = Connection.objects.select_for_update().filter(
            account=account, provider=provider
        ).live().first() or Connection(account=account, provider=provider)
        is_new = connection.pk is None
        store_tokens(connection, tokens)
        if auth_kind != AuthKind.OAUTH:
            connection.refresh_token = ""
        connection.auth_kind = auth_kind
        if tokens.extra:
            connection.auth_extra = dict(tokens.extra)
        connection.status = ConnectionStatus.ACTIVE
        connection.status_reason = ""
        connection.crm_account_id = identity.account_id
        connection.crm_account_name = identity.account_name
        connection.crm_user_email = identity.user_email
        if identity.user_id:
            # Who our writes appear as in the CRM (echo suppression of inbound changes).
            connection.auth_extra = {**(connection.auth_extra or {}), "crm_user_id": identity.user_id}
        connection.connected_at = timezone.now()
        user = getattr(request, "user", None)
        if is_new and user is not None and user.is_authenticated:
            connection.created_by = user
        connection.save()
        record(
            "connection.connected" if is_new else "connection.reconnected",
            request=request,
            actor_label=actor_label,
            obj=connection,
            changes={"provider": provider, "auth_kind": auth_kind, "crm_account": identity.account_name},
        )
    return connection


def disconnect(connection: Connection, *, request: HttpRequest | None = None, actor_label: str | None = None) -> bool:
    """Revoke the token at the CRM where it can be, wipe the credentials, mark disconnected.

    Returns whether the CRM confirmed the revocation. A CRM that cannot be reached does not stop
    the disconnection: the credentials are wiped here either way.
    """
    revoked = False
    if connection.auth_kind == AuthKind.OAUTH and (connection.refresh_token or connection.access_token):
        try:
            revoked = connection.connector().revoke_token(connection.refresh_token or connection.access_token)
        except CrmError as exc:
            log.warning("revoking the token of connection %s failed: %s", connection.pk, exc)
    with transaction.atomic():
        connection.wipe_credentials()
        connection.status = ConnectionStatus.DISCONNECTED
        connection.disconnected_at = timezone.now()
        connection.activated_at = None
        connection.save()
        record(
            "connection.disconnected",
            request=request,
            actor_label=actor_label,
            obj=connection,
            changes={"revoked_at_crm": revoked},
        )
    return revoked
