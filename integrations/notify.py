"""Telling account owners about connection problems: an e-mail, and a banner on their pages."""

from __future__ import annotations

from django.conf import settings
from django.core.mail import send_mail
from django.urls import reverse

from crmsync.models import Membership, Role
from integrations.models import Connection


def owner_addresses(connection: Connection) -> list[str]:
    account = connection.account
    if account.notification_email:
        return [account.notification_email]
    return list(
        Membership.objects.filter(account=account, role=Role.OWNER)
        .exclude(user__email="")
        .values_list("user__email", flat=True)
    )


def notify_needs_reauth(connection_id: int) -> None:
    connection = Connection.objects.select_related("account").get(pk=connection_id)
    recipients = owner_addresses(connection)
    if not recipients:
        return
    url = settings.PUBLIC_BASE_URL + reverse(
        "integrations:connections", kwargs={"account_slug": connection.account.slug}
    )
    send_mail(
        subject=f"Reconnect {connection.spec.label}: CRM sync is paused",
        message=(
            f"Capsule CRM Sync can no longer sign in to {connection.spec.label} for "
            f"{connection.account.name}: {connection.status_reason}\n\n"
            f"Sync is waiting and nothing is lost. Reconnect here: {url}\n"
        ),
        from_email=None,
        recipient_list=recipients,
    )
