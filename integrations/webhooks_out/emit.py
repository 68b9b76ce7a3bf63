"""``emit``: the one way to send an outgoing webhook event. Call it inside your own transaction.

::

    from integrations.webhooks_out.emit import emit

    with transaction.atomic():
        ...  # your own writes
        emit(account, "crm.deal.stage_changed", {...}, idempotency_key=f"deal-stage:{change.pk}")

It writes one delivery row per active subscription of the account that listens to the event,
in your transaction (so the message exists exactly when your change does), and dispatches the
sending after commit. Emitting again with the same key writes nothing: retries of your own work
never send a message twice.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.utils import timezone

from crmsync.jobs import enqueue
from crmsync.models import Account
from integrations.models import WebhookDelivery, WebhookSubscription
from integrations.webhooks_out import catalogue, jobs

MAX_KEY_LENGTH = 200


@dataclass(frozen=True)
class Message:
    """One event to emit: its catalogue name, its ``data`` object, its idempotency key, when it happened."""

    event_type: str
    data: Mapping[str, Any]
    idempotency_key: str
    occurred_at: dt.datetime | None = field(default=None)


def _check(message: Message) -> None:
    if not catalogue.is_known(message.event_type):
        raise ValueError(f"unknown webhook event {message.event_type!r}: add it to webhooks_out.catalogue first")
    if not message.idempotency_key or len(message.idempotency_key) > MAX_KEY_LENGTH:
        raise ValueError(f"idempotency_key must be 1 to {MAX_KEY_LENGTH} characters")


def envelope(message: Message, now: dt.datetime) -> dict[str, Any]:
    """The message body, per the Standard Webhooks payload structure: ``{"type", "timestamp", "data"}``.

    ``timestamp`` is when the event happened, not when it is sent (the spec's definition); the
    data go through JSON once here so dates, decimals and UUIDs are stored as they will be sent.
    """
    when = (message.occurred_at or now).astimezone(dt.UTC)
    return json.loads(
        json.dumps(
            {"type": message.event_type, "timestamp": when.isoformat().replace("+00:00", "Z"), "data": message.data},
            cls=DjangoJSONEncoder,
        )
    )


def emit_many(account: Account, messages: Sequence[Message]) -> int:
    """Emit several events in one go (one query for the subscriptions, one INSERT). Returns the
    number of deliveries created; see ``emit``."""
    for message in messages:
        _check(message)
    if not messages:
        return 0
    subscriptions = list(WebhookSubscription.objects.filter(account=account, active=True).only("id", "events"))
    if not subscriptions:
        return 0
    now = timezone.now()
    rows = [
        WebhookDelivery(
            subscription_id=subscription.pk,
            account_id=account.pk,
            event_type=message.event_type,
            idempotency_key=message.idempotency_key,
            payload=envelope(message, now),
            next_attempt_at=now,
            created_at=now,
            updated_at=now,
        )
        for message in messages
        for subscription in subscriptions
        if subscription.listens_to(message.event_type)
    ]
    if not rows:
        return 0
    # ON CONFLICT DO NOTHING against webhook_delivery_once: a key seen before inserts nothing. The
    # fresh message ids then tell exactly which rows this call created, whatever ran concurrently.
    WebhookDelivery.objects.bulk_create(rows, ignore_conflicts=True)
    created = list(
        WebhookDelivery.objects.filter(message_id__in=[row.message_id for row in rows])
        .order_by("id")
        .values_list("id", flat=True)
    )
    for start in range(0, len(created), jobs.CHUNK):
        enqueue(jobs.deliver, created[start : start + jobs.CHUNK], queue=jobs.QUEUE)
    return len(created)


def emit(
    account: Account,
    event_type: str,
    data: Mapping[str, Any],
    *,
    idempotency_key: str,
    occurred_at: dt.datetime | None = None,
) -> int:
    """Send ``event_type`` with ``data`` to every active subscription of ``account`` that listens to it.

    - ``event_type``: a name from ``integrations.webhooks_out.catalogue`` (ValueError otherwise).
    - ``data``: the message's ``data`` object, JSON-serialisable (dates, decimals and UUIDs are
      converted); keep to the shape of the catalogue's sample, which is what receivers are told.
    - ``idempotency_key``: unique for this event within the account, 1 to 200 characters, e.g.
      ``f"deal-stage:{change.pk}"``. A subscription gets at most one delivery per key, ever: a
      retried emit (your job ran twice, your transaction was replayed) sends nothing new.
    - ``occurred_at``: when it happened (the message's ``timestamp``); now when omitted.

    Call it inside the transaction that records the change: the delivery rows commit or roll
    back with it, and sending starts after commit (``crmsync.jobs.enqueue``). It never calls the
    network itself. Returns the number of deliveries created (0 when nobody listens, or when
    this key was emitted before).
    """
    return emit_many(account, [Message(event_type, data, idempotency_key, occurred_at)])
