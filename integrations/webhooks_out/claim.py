"""Claiming due deliveries so that two workers never send the same one, and reaping dead workers' leases.

As in the sync engine (integrations/sync/claim.py): a short transaction picks due rows with
``SELECT … FOR UPDATE SKIP LOCKED`` and marks them in flight under a lease and a claim token;
the HTTP calls happen outside any transaction. A worker killed mid-send leaves a row whose lease
runs out; the reaper schedules it again. It may then reach the receiver twice, which is why the
``webhook-id`` stays the same: receivers dedupe on it (Standard Webhooks, "idempotency").
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from integrations.models import DUE_STATES, DeliveryState, WebhookDelivery

# Longer than one delivery can take: four hops (three redirects) within the timeout each.
LEASE = dt.timedelta(minutes=2)


def claim(limit: int, *, ids: Sequence[int] | None = None) -> tuple[str, list[WebhookDelivery]]:
    """Claim up to ``limit`` due deliveries (only among ``ids`` when given). Returns the claim token and rows."""
    token = uuid.uuid4().hex
    now = timezone.now()
    with transaction.atomic():
        due = WebhookDelivery.objects.filter(state__in=DUE_STATES, next_attempt_at__lte=now)
        if ids is not None:
            due = due.filter(id__in=list(ids))
        claimed = list(
            due.order_by("next_attempt_at", "id")
            .select_for_update(skip_locked=True)
            .values_list("id", flat=True)[:limit]
        )
        if not claimed:
            return token, []
        WebhookDelivery.objects.filter(id__in=claimed).update(
            state=DeliveryState.IN_FLIGHT, claimed_by=token, lease_until=now + LEASE, updated_at=now
        )
    rows = WebhookDelivery.objects.filter(id__in=claimed, claimed_by=token).select_related("subscription__account")
    return token, list(rows.order_by("next_attempt_at", "id"))


def reap_expired_leases(now: dt.datetime | None = None) -> int:
    """Schedule again the deliveries whose worker died mid-send. Counts as an attempt."""
    now = now or timezone.now()
    return WebhookDelivery.objects.filter(state=DeliveryState.IN_FLIGHT, lease_until__lt=now).update(
        state=DeliveryState.RETRY,
        claimed_by="",
        lease_until=None,
        next_attempt_at=now,
        updated_at=now,
        attempts=F("attempts") + 1,
        last_error="the sending worker stopped before it finished; sending again",
    )
