"""Creating, rotating, pausing and removing webhook subscriptions: shared by the API and the owner pages.

Every change is audited. Audit entries and log lines name the target's host only: the path of a
Zapier or Make hook URL works as a password.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from urllib.parse import urlsplit

from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from crmsync import audit
from crmsync.jobs import enqueue
from crmsync.models import Account
from integrations.models import WebhookSource, WebhookSubscription
from integrations.webhooks_out import catalogue, notify, ssrf
from integrations.webhooks_out.signing import new_secret

# An API key could otherwise fan one event out to thousands of URLs.
MAX_SUBSCRIPTIONS_PER_ACCOUNT = 100
# How long the old secret keeps signing after a rotation, so receivers can switch without a gap.
ROTATION_OVERLAP = dt.timedelta(hours=24)


class SubscriptionError(ValueError):
    """A subscription cannot be made as asked; ``field`` names the input at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def source_for(url: str) -> str:
    """Zapier's and Make's hook hosts, recognised so the owner pages can say where a subscription came from."""
    host = (urlsplit(url).hostname or "").lower()
    if host == "hooks.zapier.com" or host.endswith(".zapier.com"):
        return WebhookSource.ZAPIER
    if host.endswith((".make.com", ".integromat.com")):
        return WebhookSource.MAKE
    return WebhookSource.API


def check_target(url: str, field: str = "target_url") -> str:
    """The URL, stripped, if outgoing webhooks may call it; SubscriptionError naming ``field`` otherwise."""
    try:
        return ssrf.check_url(url).url
    except ssrf.TargetRefused as exc:
        raise SubscriptionError(field, f"refused: {exc}") from None
    except ssrf.TargetUnresolvable as exc:
        raise SubscriptionError(field, f"{exc}; check the address") from None


def check_events(events: Sequence[str], field: str = "events") -> list[str]:
    """Catalogue names (or "*") without repeats, in the given order; SubscriptionError for unknown ones."""
    if not events:
        raise SubscriptionError(field, "choose at least one event")
    chosen: list[str] = []
    for index, name in enumerate(events):
        if name != catalogue.ALL_EVENTS and not catalogue.is_known(name):
            where = field if field == "event" else f"{field}[{index}]"
            raise SubscriptionError(where, f"unknown event {name!r}; see GET /api/v1/hooks/events for the catalogue")
        if name not in chosen:
            chosen.append(name)
    return [catalogue.ALL_EVENTS] if catalogue.ALL_EVENTS in chosen else chosen


def subscribe(
    account: Account,
    target_url: str,
    events: Sequence[str],
    *,
    source: str,
    request: HttpRequest | None = None,
    actor_label: str | None = None,
    events_field: str = "events",
) -> tuple[WebhookSubscription, str]:
    """Check and create a subscription. Returns it with its signing secret, to be shown once."""
    chosen = check_events(events, events_field)
    url = check_target(target_url)
    with transaction.atomic():
        # Locks the account row so two concurrent requests cannot both pass the limit.
        Account.objects.select_for_update().filter(pk=account.pk).first()
        if WebhookSubscription.objects.filter(account=account).count() >= MAX_SUBSCRIPTIONS_PER_ACCOUNT:
            raise SubscriptionError(
                "target_url",
                f"this account already has {MAX_SUBSCRIPTIONS_PER_ACCOUNT} subscriptions; delete one first",
            )
        secret = new_secret()
        user = getattr(request, "user", None)
        subscription = WebhookSubscription.objects.create(
            account=account,
            target_url=url,
            events=chosen,
            secret=secret,
            source=source,
            created_by=user if user is not None and user.is_authenticated else None,
            created_by_label=(actor_label or (user.get_username() if user else ""))[:200],
        )
        audit.record(
            "webhook.subscribed",
            request=request,
            actor_label=actor_label,
            obj=subscription,
            changes={"host": subscription.host, "events": chosen, "source": source},
        )
    return subscription, secret


def rotate_secret(subscription: WebhookSubscription, *, request: HttpRequest) -> str:
    """A new signing secret; the current one keeps signing too for ``ROTATION_OVERLAP``. Returns the new one."""
    now = timezone.now()
    secret = new_secret()
    subscription.previous_secret = subscription.secret
    subscription.previous_secret_expires_at = now + ROTATION_OVERLAP
    subscription.secret = secret
    subscription.updated_at = now
    subscription.save(update_fields=["secret", "previous_secret", "previous_secret_expires_at", "updated_at"])
    audit.record(
        "webhook.secret_rotated",
        request=request,
        obj=subscription,
        changes={"previous_secret_signs_until": subscription.previous_secret_expires_at.isoformat()},
    )
    return secret


def disable(subscription: WebhookSubscription, *, reason: str, request: HttpRequest | None = None) -> bool:
    """Turn a subscription off: by a person (``request``), or by the system when the receiver
    answered 410, in which case the owners are e-mailed. Audited. Returns False when it was already off.
    Deliveries already written stay in the log; nothing more is sent until it is turned on again."""
    now = timezone.now()
    reason = reason[:300]
    changed = WebhookSubscription.objects.filter(pk=subscription.pk, active=True).update(
        active=False, disabled_reason=reason, disabled_at=now, updated_at=now
    )
    if not changed:
        return False
    subscription.active, subscription.disabled_reason, subscription.disabled_at = False, reason, now
    audit.record(
        "webhook.disabled",
        request=request,
        actor_label=None if request is not None else "system",
        obj=subscription,
        changes={"reason": reason},
    )
    if request is None:
        enqueue(notify.subscription_disabled, subscription.pk)
    return True


def enable(subscription: WebhookSubscription, *, request: HttpRequest) -> bool:
    """Turn a subscription back on (checking its URL again). Returns False when it was already on."""
    if subscription.active:
        return False
    check_target(subscription.target_url)
    subscription.active, subscription.disabled_reason, subscription.disabled_at = True, "", None
    subscription.updated_at = timezone.now()
    subscription.save(update_fields=["active", "disabled_reason", "disabled_at", "updated_at"])
    audit.record("webhook.enabled", request=request, obj=subscription)
    return True


def unsubscribe(
    subscription: WebhookSubscription, *, request: HttpRequest | None = None, actor_label: str | None = None
):
    """Delete a subscription and its delivery log (nothing more is sent)."""
    audit.record(
        "webhook.deleted",
        request=request,
        actor_label=actor_label,
        obj=subscription,
        changes={"host": subscription.host, "events": subscription.events},
    )
    subscription.delete()
