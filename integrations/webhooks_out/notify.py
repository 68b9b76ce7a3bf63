"""Telling an account's owners that a webhook subscription was turned off by its receiver."""

from __future__ import annotations

from django.conf import settings
from django.core.mail import send_mail
from django.urls import reverse

from crmsync.models import Account, Membership, Role
from integrations.models import WebhookSubscription


def owner_addresses(account: Account) -> list[str]:
    if account.notification_email:
        return [account.notification_email]
    return list(
        Membership.objects.filter(account=account, role=Role.OWNER)
        .exclude(user__email="")
        .values_list("user__email", flat=True)
    )


def subscription_disabled(subscription_id: int) -> None:
    """E-mail the owners (a job, run after the commit that disabled the subscription)."""
    subscription = WebhookSubscription.objects.select_related("account").filter(pk=subscription_id).first()
    if subscription is None or subscription.active:
        return
    recipients = owner_addresses(subscription.account)
    if not recipients:
        return
    url = settings.PUBLIC_BASE_URL + reverse(
        "integrations:webhooks", kwargs={"account_slug": subscription.account.slug}
    )
    # The host only: the URL's path of a Zapier or Make hook is itself a secret.
    send_mail(
        subject=f"A webhook to {subscription.host} was turned off",
        message=(
            f"The webhook subscription #{subscription.pk} of {subscription.account.name}, which sends "
            f"to {subscription.host}, was turned off: {subscription.disabled_reason}\n\n"
            "The receiver no longer wants these messages (a Zap turned off, or an endpoint removed). "
            "Nothing more is sent to it. If that was a mistake, turn it back on here, and replay "
            f"from its delivery log what it missed: {url}\n"
        ),
        from_email=None,
        recipient_list=recipients,
    )
