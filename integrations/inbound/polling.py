"""Polling: CRM changes read by modification time, for CRMs without webhooks and as a safety net.

Every live connection whose direction is "from CRM" or "both" is polled, whichever CRM it is
(webhooks can be lost or lag). The scheduler's minute tick claims each due connection's window
in the database (``PollSchedule``: a conditional UPDATE, like the batch windows of the outbound
engine), so two schedulers never poll one connection at once; a lease lets a crashed poll's
connection be polled again.

Each object kind is read with the connector's ``changes_since(kind, cursor)`` page by page. The
cursor (modified time + last id, ``PollCursor``) is saved in the same transaction as the page's
events, so a crash loses at most the page in flight, and the next poll reads it again from the
stored cursor; event ids derived from the record id and its modification time store a record
read twice only once.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from crmsync.jobs import dispatch_now
from integrations.connector import ChangeCursor, ChangePage, InboundChange
from integrations.errors import CrmError
from integrations.inbound import extensions
from integrations.inbound.apply import INBOUND_DIRECTIONS, Applier
from integrations.inbound.store import poll_event_id, store_changes
from integrations.models import (
    Connection,
    ConnectionStatus,
    InboundVia,
    LinkState,
    PollCursor,
    PollSchedule,
    RecordLink,
)

log = logging.getLogger(__name__)

PAGE_SIZE = 100
# A first poll reads changes since the connection was made (less a margin for the CRM's clock
# running behind ours), but never more than this far back.
INITIAL_LOOKBACK = dt.timedelta(days=1)
CLOCK_MARGIN = dt.timedelta(minutes=5)
# Longer than a poll takes; a poll that crashed is retried once this runs out.
LEASE = dt.timedelta(minutes=10)


@dataclass
class PollResult:
    pages: int = 0
    records: int = 0
    stored: int = 0
    errors: list[str] = field(default_factory=list)


def pollable() -> QuerySet[Connection]:
    return Connection.objects.filter(status=ConnectionStatus.ACTIVE, direction__in=INBOUND_DIRECTIONS)


def claim_poll_window(schedule: PollSchedule, now: dt.datetime | None = None) -> bool:
    """Atomically take the connection's due poll: one winner among racing schedulers."""
    now = now or timezone.now()
    return bool(
        PollSchedule.objects.filter(pk=schedule.pk, next_poll_at__lte=now)
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        .update(lease_until=now + LEASE, next_poll_at=now + dt.timedelta(seconds=schedule.interval_seconds))
    )


def dispatch_due_polls() -> int:
    """Start a poll job for each connection whose interval elapsed (the schedule row made on first sight)."""
    connections = pollable()
    PollSchedule.objects.bulk_create(
        [
            PollSchedule(connection_id=pk)
            for pk in connections.filter(poll_schedule__isnull=True).values_list("pk", flat=True)
        ],
        ignore_conflicts=True,
    )
    now = timezone.now()
    started = 0
    due = PollSchedule.objects.filter(connection__in=connections, next_poll_at__lte=now).filter(
        Q(lease_until__isnull=True) | Q(lease_until__lt=now)
    )
    for schedule in due:
        if claim_poll_window(schedule, now):
            dispatch_now(run_poll, schedule.pk, queue="default")
            started += 1
    return started


def run_poll(connection_id: int) -> dict[str, int]:
    """The poll job: poll, then record the outcome and release the lease."""
    result = PollResult()
    try:
        result = poll_connection(connection_id)
    finally:
        PollSchedule.objects.filter(pk=connection_id).update(
            lease_until=None, last_polled_at=timezone.now(), last_error="; ".join(result.errors)[:2000]
        )
    return {"pages": result.pages, "records": result.records, "stored": result.stored}


def _initial_cursor(connection: Connection) -> ChangeCursor:
    return ChangeCursor(max(connection.connected_at - CLOCK_MARGIN, timezone.now() - INITIAL_LOOKBACK))


def _cursor(connection: Connection, object_kind: str) -> ChangeCursor:
    row = PollCursor.objects.filter(connection=connection, object_kind=object_kind).first()
    return ChangeCursor(row.modified_at, row.last_id) if row else _initial_cursor(connection)


def _save_cursor(connection: Connection, object_kind: str, cursor: ChangeCursor) -> None:
    PollCursor.objects.update_or_create(
        connection=connection,
        object_kind=object_kind,
        defaults={"modified_at": cursor.modified_at, "last_id": cursor.last_id[:100], "updated_at": timezone.now()},
    )


def _changes(connection: Connection, object_kind: str, page: ChangePage) -> list[InboundChange]:
    records = list(page.records)
    if object_kind in extensions.PERSON_KINDS:
        # Only people we know are worth a row; a deal's people are found when it is applied.
        linked = set(
            RecordLink.objects.filter(connection=connection, crm_id__in=[r.crm_id for r in records])
            .exclude(state=LinkState.ERASED)
            .values_list("crm_id", flat=True)
        )
        records = [r for r in records if r.crm_id in linked]
    return [
        InboundChange(
            event_id=poll_event_id(object_kind, r.crm_id, r.modified_at),
            object_kind=object_kind,
            crm_id=r.crm_id,
            change="updated",
            occurred_at=r.modified_at,
            properties=dict(r.fields),
        )
        for r in records
    ]


def poll_kind(
    applier: Applier, object_kind: str, *, page_size: int = PAGE_SIZE, max_pages: int | None = None
) -> PollResult:
    """Read one kind's changes since its stored cursor until the CRM has no more (or ``max_pages``)."""
    from integrations.inbound.jobs import kick

    connection, result = applier.connection, PollResult()
    wanted = sorted(applier.read_fields(object_kind))
    cursor = _cursor(connection, object_kind)
    while True:
        page: ChangePage = applier.crm.call(
            lambda c, cursor=cursor: c.changes_since(
                object_kind, cursor, limit=page_size, **extensions.field_kwargs(c.changes_since, wanted)
            )
        )
        with transaction.atomic():
            stored = store_changes(connection, _changes(connection, object_kind, page), via=InboundVia.POLL)
            if page.next_cursor is not None:
                _save_cursor(connection, object_kind, page.next_cursor)
            if stored.received:
                transaction.on_commit(lambda: kick(connection.pk))
        result.pages += 1
        result.records += len(page.records)
        result.stored += stored.received
        advanced = page.next_cursor is not None and page.next_cursor != cursor
        cursor = page.next_cursor or cursor
        if not page.has_more or not advanced or (max_pages is not None and result.pages >= max_pages):
            return result


def poll_connection(connection_id: int, *, page_size: int = PAGE_SIZE, max_pages: int | None = None) -> PollResult:
    """Poll every kind the connector polls for this connection; a kind that fails does not stop the others."""
    connection = Connection.objects.select_related("account").get(pk=connection_id)
    total = PollResult()
    if connection.status != ConnectionStatus.ACTIVE:
        return total
    applier = Applier(connection)
    for object_kind in extensions.polled_kinds(applier.connector_class, connection):
        try:
            result = poll_kind(applier, object_kind, page_size=page_size, max_pages=max_pages)
        except (CrmError, LookupError) as error:  # LookupError: a kind this CRM does not have
            log.warning("polling %s of connection %s failed: %s", object_kind, connection_id, error)
            total.errors.append(f"{object_kind}: {error}")
            continue
        total.pages += result.pages
        total.records += result.records
        total.stored += result.stored
    return total
