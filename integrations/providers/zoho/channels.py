"""Keeping Zoho notification channels alive: a scheduled job renews each before it expires.

Zoho channels live at most a day (crm-reference §4.7) and an expired channel sends nothing, so
every Zoho connection with a registered channel is renewed once its registration is older than
``RENEW_AFTER`` (12 h of a 23 h lifetime: one failed run still leaves a whole renewal to spare).
``WebhookRegistration.registered_at`` is moved on each renewal. A channel Zoho no longer knows is
registered again with the connection's secret. Safe to run twice at once: renewing is idempotent.

Scheduler line (crmsync/cron.py)::

    cron.register(zoho_channels.renew_due_channels, "default", interval=3600)
"""

from __future__ import annotations

import logging

from django.utils import timezone

from integrations.credentials import connector_for
from integrations.errors import CrmError, NotFound
from integrations.models import ConnectionStatus, WebhookRegistration
from integrations.providers.zoho.notifications import RENEW_AFTER
from integrations.providers.zoho.provider import PROVIDER

log = logging.getLogger(__name__)


def renew_due_channels() -> int:
    """Renew every due channel of a live Zoho connection; returns how many were renewed."""
    now = timezone.now()
    due = WebhookRegistration.objects.select_related("connection").filter(
        connection__provider=PROVIDER.name,
        connection__status=ConnectionStatus.ACTIVE,
        registered_at__lte=now - RENEW_AFTER,
    )
    renewed = 0
    for registration in due:
        connection = registration.connection
        try:
            connector = connector_for(connection)
            try:
                connector.renew_webhooks(registration.ref)
            except NotFound:
                registration.ref = connector.register_webhooks(registration.callback_url, connection.webhook_secret)
        except CrmError as error:
            log.warning("renewing the Zoho channel of connection %s failed: %s", connection.pk, error)
            continue
        registration.registered_at = timezone.now()
        registration.save(update_fields=["ref", "registered_at"])
        renewed += 1
    return renewed
