"""Webhook subscriptions at the CRM: registered on connect, removed on disconnect, where the CRM's
API allows it (per-connection subscriptions: Pipedrive, Dynamics, Copper, Close…).

Through two optional connector instance methods (docs/ADDING_A_CRM.md, "Inbound changes"):

- ``register_webhooks(callback_url, secret) -> str | None``: subscribe ``callback_url`` to the
  changes inbound sync handles, authenticated with ``secret`` the way the CRM does it (signing
  key, basic credentials, echoed token); return the CRM's reference for the subscription.
- ``unregister_webhooks(ref)``: remove it.

A connector without them (HubSpot's app-wide subscriptions, Salesforce's polling) is skipped.
The secret is made here, stored encrypted on the connection (``webhook_secret``) and never logged.

Wiring: :func:`install` connects ``Connection`` signals — after a connection becomes active a job
registers (after commit, never inside the connect transaction); when it is disconnected the
subscription is removed with the credentials the row still holds, before they are wiped.
"""

from __future__ import annotations

import logging
import secrets

from django.conf import settings
from django.db import transaction
from django.db.models.signals import post_save, pre_save
from django.urls import reverse
from django.utils import timezone

from crmsync.jobs import dispatch_now
from integrations.connector import Connector
from integrations.errors import CrmError
from integrations.models import Connection, ConnectionStatus, WebhookRegistration

log = logging.getLogger(__name__)


def callback_url(connection: Connection) -> str:
    path = reverse("integrations:crm_webhook", kwargs={"provider": connection.provider, "connection_id": connection.pk})
    return settings.PUBLIC_BASE_URL + path


def registers_webhooks(connector_class: type[Connector]) -> bool:
    return callable(getattr(connector_class, "register_webhooks", None))


def register_webhooks_for(connection: Connection, connector: Connector | None = None) -> WebhookRegistration | None:
    """Subscribe the connection's callback URL at the CRM (once; again when the URL changed)."""
    from integrations.credentials import connector_for

    connector = connector or connector_for(connection)
    if not registers_webhooks(type(connector)):
        return None
    url = callback_url(connection)
    existing = WebhookRegistration.objects.filter(connection=connection).first()
    if existing is not None and existing.callback_url == url and connection.webhook_secret:
        return existing
    if not connection.webhook_secret:
        connection.webhook_secret = secrets.token_urlsafe(32)
        connection.save(update_fields=["webhook_secret", "updated_at"])
    ref = connector.register_webhooks(url, connection.webhook_secret)
    registration, _ = WebhookRegistration.objects.update_or_create(
        connection=connection,
        defaults={"ref": str(ref or "")[:300], "callback_url": url, "registered_at": timezone.now()},
    )
    return registration


def unregister_webhooks_for(connection: Connection, connector: Connector | None = None) -> bool:
    """Remove the connection's subscription at the CRM; False when there was none or the CRM refused."""
    registration = WebhookRegistration.objects.filter(connection=connection).first()
    if registration is None:
        return False
    connector = connector or connection.connector()
    method = getattr(connector, "unregister_webhooks", None)
    removed = False
    if callable(method):
        try:
            method(registration.ref)
            removed = True
        except CrmError as error:
            log.warning("removing the webhooks of connection %s at the CRM failed: %s", connection.pk, error)
    registration.delete()
    return removed


def register_job(connection_id: int) -> None:
    connection = Connection.objects.filter(pk=connection_id, status=ConnectionStatus.ACTIVE).first()
    if connection is not None:
        register_webhooks_for(connection)


def _after_save(sender, instance: Connection, created: bool, update_fields=None, **kwargs) -> None:
    if instance.status != ConnectionStatus.ACTIVE or (update_fields is not None and "status" not in update_fields):
        return
    if registers_webhooks(instance.spec.connector_class()):
        transaction.on_commit(lambda: dispatch_now(register_job, instance.pk, queue="default"))


def _before_save(sender, instance: Connection, update_fields=None, **kwargs) -> None:
    if instance.pk is None or instance.status != ConnectionStatus.DISCONNECTED:
        return
    stored = Connection.objects.filter(pk=instance.pk).exclude(status=ConnectionStatus.DISCONNECTED).first()
    if stored is None or not registers_webhooks(stored.spec.connector_class()):
        return
    # The row still holds the credentials the in-memory instance has wiped: use them to unsubscribe.
    try:
        unregister_webhooks_for(stored)
    except CrmError as error:
        log.warning("could not reach the CRM to remove the webhooks of connection %s: %s", instance.pk, error)


def install() -> None:
    """Connect the signals (from IntegrationsConfig.ready)."""
    post_save.connect(_after_save, sender=Connection, dispatch_uid="inbound-register-webhooks")
    pre_save.connect(_before_save, sender=Connection, dispatch_uid="inbound-unregister-webhooks")
