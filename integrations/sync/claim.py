"""Claiming due outbox rows so that two workers never hold the same row, and reaping leases.

A claim is a short transaction: ``SELECT … FOR UPDATE SKIP LOCKED`` picks due rows no other
worker is claiming, and they are marked in flight with a lease. The CRM calls happen outside any
transaction. A worker killed mid-batch leaves rows whose lease runs out; the reaper returns them
to pending, and because every CRM write is idempotent, sending them again duplicates nothing.
(SQLite, the embedded default, has no SKIP LOCKED; it serialises writers instead.)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django.utils import timezone

from integrations.models import CLAIMABLE_STATES, OutboxItem, OutboxKind, OutboxState
from integrations.sync.sql import read_in_index_order

# Longer than one flush step (a batch call within the HTTP timeout and limiter waits), short
# enough that work of a killed worker is picked up again within two minutes (with the sweep).
LEASE = dt.timedelta(seconds=90)


def _due(connection_id: int, kinds: Sequence[str] | None, now: dt.datetime) -> QuerySet[OutboxItem]:
    due = OutboxItem.objects.filter(connection_id=connection_id, state__in=CLAIMABLE_STATES, next_attempt_at__lte=now)
    return due.filter(kind__in=kinds) if kinds else due


def count_due(connection_id: int, kinds: Sequence[str] | None, *, cap: int) -> int:
    """How many rows are due now, counting no further than ``cap`` (so the cost stays bounded)."""
    return _due(connection_id, kinds, timezone.now()).order_by()[:cap].count()


def claim(
    connection_id: int,
    worker_id: str,
    limit: int,
    *,
    kinds: Sequence[str] | None = None,
    lease: dt.timedelta = LEASE,
) -> list[OutboxItem]:
    """Claim up to ``limit`` due rows for ``lease`` (longer for a call that takes longer, such as
    a bulk job: the reaper must not hand its rows to another worker mid-call)."""
    now = timezone.now()
    with transaction.atomic():
        due = _due(connection_id, kinds, now)
        with read_in_index_order():  # along outbox_due_idx, whatever the statistics say
            ids = list(
                due.order_by("next_attempt_at", "id")
                .select_for_update(skip_locked=True)
                .values_list("id", flat=True)[:limit]
            )
        if not ids:
            return []
        OutboxItem.objects.filter(id__any=ids).update(
            state=OutboxState.IN_FLIGHT, claimed_by=worker_id, lease_until=now + lease, updated_at=now
        )
    return list(OutboxItem.objects.filter(id__any=ids, claimed_by=worker_id).order_by("id"))


def still_mine(items: Sequence[OutboxItem], worker_id: str) -> set[int]:
    """Ids of rows this worker still holds (a reaped-and-reclaimed row must not be overwritten)."""
    return set(
        OutboxItem.objects.filter(
            id__any=[i.pk for i in items], state=OutboxState.IN_FLIGHT, claimed_by=worker_id
        ).values_list("id", flat=True)
    )


PERSON_OPEN_STATES = (OutboxState.PENDING, OutboxState.RETRY, OutboxState.HELD)


def supersede_reopened_person_rows(reopening: QuerySet[OutboxItem], now: dt.datetime) -> int:
    """Person rows about to be reopened (pending, retry, held) whose prospect already has a newer
    person row — open, or being reopened too — are retired as "superseded": at most one person
    row per prospect may be open (the outbox's unique constraint), and the newer row carries the
    newer data. Nothing is lost: the newer row syncs the prospect's current state."""
    newer = (
        OutboxItem.objects.filter(
            connection_id=OuterRef("connection_id"),
            prospect_id=OuterRef("prospect_id"),
            kind=OutboxKind.PERSON,
        )
        .filter(Q(state__in=PERSON_OPEN_STATES) | Q(pk__in=reopening.values("pk"), pk__gt=OuterRef("pk")))
        .exclude(pk=OuterRef("pk"))
    )
    return (
        reopening.filter(kind=OutboxKind.PERSON)
        .filter(Exists(newer))
        .update(
            state=OutboxState.SKIPPED,
            result="superseded",
            claimed_by="",
            lease_until=None,
            updated_at=now,
            done_at=now,
        )
    )


def _reopen(rows: QuerySet[OutboxItem], now: dt.datetime, **changes) -> int:
    with transaction.atomic():
        supersede_reopened_person_rows(rows, now)
        return rows.exclude(state=OutboxState.SKIPPED).update(
            state=OutboxState.PENDING,
            claimed_by="",
            lease_until=None,
            next_attempt_at=now,
            updated_at=now,
            **changes,
        )


def reap_expired_leases(now: dt.datetime | None = None) -> int:
    """Return rows whose worker died (lease expired) to pending. Counts as an attempt."""
    now = now or timezone.now()
    expired = OutboxItem.objects.filter(state=OutboxState.IN_FLIGHT, lease_until__lt=now)
    return _reopen(
        expired,
        now,
        attempts=F("attempts") + 1,
        last_error="the worker stopped before finishing; picked up again",
        last_error_kind="retryable",
    )


def hand_back(worker_id: str) -> int:
    """A worker stopping gracefully returns what it still holds, due at once, no attempt counted."""
    now = timezone.now()
    return _reopen(OutboxItem.objects.filter(state=OutboxState.IN_FLIGHT, claimed_by=worker_id), now)


def hand_back_process() -> int:
    """Hand back rows claimed by any flush of this process (worker ids start with host:pid:)."""
    import os
    import socket

    now = timezone.now()
    mine = OutboxItem.objects.filter(
        state=OutboxState.IN_FLIGHT, claimed_by__startswith=f"{socket.gethostname()}:{os.getpid()}:"
    )
    return _reopen(mine, now)
