"""Inbound jobs: processing stored changes, and the scheduler's minute tick (polling, sweeping).

Kicks are light, as in the outbound engine: a Redis ``SET NX`` flag per connection turns a burst
of webhooks into one processing job. An event is claimed in a short transaction (``SELECT … FOR
UPDATE SKIP LOCKED``, then its next attempt moved a lease ahead), so two workers never apply the
same event; the CRM calls of applying it run outside any transaction, and each prospect's data
is written in a transaction of its own. A worker killed mid-event leaves it pending: it is due
again when the lease runs out, and applying it again changes and emits nothing twice (values
already seen are no change; outgoing messages are keyed by the event). A lost kick only delays
work: the tick re-kicks connections with pending events.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections import Counter

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from crmsync.jobs import dispatch_now
from integrations.errors import CrmError
from integrations.inbound.apply import Applier
from integrations.models import Connection, InboundEvent, InboundState
from integrations.sync.retry import exhausted, next_attempt_time

log = logging.getLogger(__name__)

KICK_FLAG_SECONDS = 30
# Longer than applying one event takes (a CRM read within the HTTP timeout and limiter waits).
LEASE = dt.timedelta(seconds=120)
# Events per job; a longer backlog is handed to a fresh job so one connection cannot hog a worker.
EVENTS_PER_JOB = 1000
# Pending events older than this are re-kicked by the tick (their kick was lost).
STALE_PENDING = dt.timedelta(minutes=1)
# Handled events are kept this long: the de-duplication window (HubSpot retries for up to 3 days).
RETENTION = dt.timedelta(days=30)
FORGET_PER_TICK = 10_000  # bounded, so one tick never holds a long delete

_local_kicks: set[int] = set()
_local_lock = threading.Lock()


def _flag(connection_id: int) -> str:
    return f"inbound-kick:{connection_id}"


def kick(connection_id: int) -> None:
    """Ask for the connection's pending events to be processed, unless that is already queued."""
    if settings.REDIS_URL:
        from integrations.sync.redis import redis_client

        try:
            if not redis_client().set(_flag(connection_id), "1", nx=True, ex=KICK_FLAG_SECONDS):
                return
        except Exception:
            log.warning("Redis unavailable for the inbound kick of connection %s; the tick will find it", connection_id)
            return
    else:
        with _local_lock:
            if connection_id in _local_kicks:
                return
            _local_kicks.add(connection_id)
    dispatch_now(process_pending, connection_id, queue="default")


def _clear_kick(connection_id: int) -> None:
    if settings.REDIS_URL:
        from integrations.sync.redis import redis_client

        try:
            redis_client().delete(_flag(connection_id))
        except Exception:
            log.warning("could not clear the inbound kick flag of connection %s", connection_id)
    else:
        with _local_lock:
            _local_kicks.discard(connection_id)


def process_pending(connection_id: int, limit: int = EVENTS_PER_JOB) -> dict[str, int]:
    """Apply the connection's due events, oldest first; answers counts by resulting state."""
    _clear_kick(connection_id)  # events stored from now on kick another job
    connection = Connection.objects.select_related("account").filter(pk=connection_id).first()
    if connection is None:
        return {}
    applier = Applier(connection)
    counts: Counter[str] = Counter()
    for _ in range(limit):
        state = process_next(applier)
        if state is None:
            break
        counts[state] += 1
    else:
        kick(connection_id)  # more may be waiting
    return dict(counts)


def _claim(connection_id: int) -> InboundEvent | None:
    """Take the connection's next due event: a short transaction that moves it out of reach of
    other workers for LEASE (no CRM call ever runs inside a transaction)."""
    now = timezone.now()
    with transaction.atomic():
        event = (
            InboundEvent.objects.select_for_update(skip_locked=True)
            .filter(connection_id=connection_id, state=InboundState.PENDING, next_attempt_at__lte=now)
            .order_by("next_attempt_at", "id")
            .first()
        )
        if event is None:
            return None
        event.attempts += 1
        event.next_attempt_at = now + LEASE
        event.save(update_fields=["attempts", "next_attempt_at"])
    return event


def process_next(applier: Applier) -> str | None:
    """Apply one due event of the applier's connection; None when there is none."""
    event = _claim(applier.connection.pk)
    if event is None:
        return None
    try:
        outcome = applier.apply(event)
    except CrmError as error:
        return _failed_attempt(event, error, retry=error.kind in ("retryable", "auth"), retry_after=error.retry_after)
    except Exception as error:  # a bug must not stop the connection's other events; it is logged and kept
        log.exception("applying inbound event %s failed", event.pk)
        return _failed_attempt(event, error, retry=False, retry_after=None)
    InboundEvent.objects.filter(pk=event.pk).update(
        state=outcome.state, reason=outcome.reason, error="", processed_at=timezone.now()
    )
    return outcome.state


def _failed_attempt(event: InboundEvent, error: Exception, *, retry: bool, retry_after: float | None) -> str:
    now = timezone.now()
    message = f"{type(error).__name__}: {error}"[:2000]
    if retry and not exhausted(event.attempts):
        InboundEvent.objects.filter(pk=event.pk).update(
            error=message, next_attempt_at=next_attempt_time(now, event.attempts, retry_after)
        )
        return "retry"
    InboundEvent.objects.filter(pk=event.pk).update(
        error=message, state=InboundState.FAILED, reason="error", processed_at=now
    )
    return InboundState.FAILED


def tick() -> dict[str, int]:
    """Scheduler job (every minute): poll connections whose interval elapsed, re-kick connections
    whose pending events were not picked up, and forget handled events past the retention."""
    from integrations.inbound import polling

    polled = polling.dispatch_due_polls()
    now = timezone.now()
    waiting = (
        InboundEvent.objects.filter(
            state=InboundState.PENDING, next_attempt_at__lte=now, received_at__lte=now - STALE_PENDING
        )
        .values_list("connection_id", flat=True)
        .distinct()
    )
    kicked = 0
    for connection_id in waiting:
        kick(connection_id)
        kicked += 1
    old = InboundEvent.objects.filter(
        state__in=[InboundState.PROCESSED, InboundState.IGNORED], received_at__lt=now - RETENTION
    ).values_list("id", flat=True)[:FORGET_PER_TICK]
    forgotten, _ = InboundEvent.objects.filter(pk__in=list(old)).delete()
    return {"polled": polled, "kicked": kicked, "forgotten": forgotten}
