"""Writing sync work into the outbox, atomically with whatever caused it.

Rows are inserted with ``ON CONFLICT DO NOTHING`` against the outbox's unique constraints, so a
replayed event, a second worker or a repeated "sync now" never doubles work:

- a "person" row (create/update the contact or lead) is open at most once per prospect and
  connection; more events for the same prospect coalesce into it;
- an event's own work (activity, note, deal) exists once per connection, ever.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

from django.db import connection as db
from django.db import transaction
from django.utils import timezone

from crmsync.models import Account, Event, Prospect
from integrations.models import (
    Connection,
    ConnectionStatus,
    Direction,
    OutboxItem,
    OutboxKind,
    OutboxState,
    SyncMode,
)
from integrations.sync.sql import analyze_after_bulk_write

log = logging.getLogger(__name__)

# Which capsule events become their own CRM object besides updating the person's fields.
# Time spent, sentiment and lead capture reach the CRM as fields through the mapping only.
EVENT_WORK: dict[str, str] = {
    "capsule_viewed": OutboxKind.ACTIVITY,
    "content_accessed": OutboxKind.ACTIVITY,
    "content_downloaded": OutboxKind.ACTIVITY,
    "cta_clicked": OutboxKind.ACTIVITY,
    "capsule_completed": OutboxKind.ACTIVITY,
    "question_asked": OutboxKind.NOTE,
    "conversion": OutboxKind.DEAL,
}


def event_dedupe_key(kind: str, event_id: int) -> str:
    return f"{kind}:{event_id}"


def syncing_connections(account: Account) -> list[Connection]:
    """Connections that take capsule → CRM work: activated, not disconnected, direction outwards.

    Paused or re-authenticating connections still collect work; it waits for them."""
    return list(
        Connection.objects.filter(
            account=account, activated_at__isnull=False, direction__in=[Direction.TO_CRM, Direction.BOTH]
        ).exclude(status=ConnectionStatus.DISCONNECTED)
    )


def _person_rows(connection: Connection, prospect_ids: Iterable[int]) -> list[OutboxItem]:
    now = timezone.now()
    return [
        OutboxItem(
            connection=connection,
            prospect_id=pid,
            kind=OutboxKind.PERSON,
            dedupe_key=f"person:{pid}",
            next_attempt_at=now,
            created_at=now,
            updated_at=now,
        )
        for pid in prospect_ids
    ]


def _event_rows(connection: Connection, events: Iterable[Event]) -> list[OutboxItem]:
    now = timezone.now()
    rows = []
    for event in events:
        kind = EVENT_WORK.get(event.type)
        if kind is None or event.prospect_id is None:
            continue
        rows.append(
            OutboxItem(
                connection=connection,
                prospect_id=event.prospect_id,
                event_id=event.pk,
                kind=kind,
                dedupe_key=event_dedupe_key(kind, event.pk),
                next_attempt_at=now,
                created_at=now,
                updated_at=now,
            )
        )
    return rows


def insert_rows(rows: Sequence[OutboxItem]) -> None:
    if rows:
        OutboxItem.objects.bulk_create(rows, ignore_conflicts=True, batch_size=1000)


def enqueue_for_events(account: Account, events: Sequence[Event], prospects: dict[int, Prospect]) -> None:
    """Ingest hook: outbox rows for new events, in the ingest transaction; kicks after commit."""
    connections = syncing_connections(account)
    if not connections:
        return
    prospect_ids = sorted({e.prospect_id for e in events if e.prospect_id is not None} | set(prospects))
    now = timezone.now()
    for connection in connections:
        # A held person row (consent, score threshold) is looked at again: this event may change that.
        OutboxItem.objects.filter(
            connection=connection, kind=OutboxKind.PERSON, state=OutboxState.HELD, prospect_id__any=list(prospect_ids)
        ).update(state=OutboxState.PENDING, next_attempt_at=now, updated_at=now)
        insert_rows(_person_rows(connection, prospect_ids) + _event_rows(connection, events))
    kick_after_commit(c for c in connections if c.sync_mode == SyncMode.REALTIME)


def enqueue_prospects(
    connection: Connection, prospect_ids: Sequence[int] | None = None, *, analyze: bool = True
) -> int:
    """Person rows (plus any event work not yet queued) for some or all of a connection's prospects.

    Used by "sync now" and batch runs. Set-based: one INSERT … SELECT per kind, so it scales to
    an account's whole prospect table. Returns how many person rows are open afterwards.
    ``analyze``: refresh the planner's statistics after a large insert (a caller queueing in
    chunks passes False and does it once at the end).
    """
    params: list = [connection.pk, timezone.now(), connection.account_id]
    only = ""
    if prospect_ids is not None:
        if not prospect_ids:
            return 0
        only = "AND p.id IN (" + ",".join(["%s"] * len(prospect_ids)) + ")"
        params.extend(prospect_ids)
    with transaction.atomic(), db.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO integrations_outboxitem
                (connection_id, prospect_id, kind, dedupe_key, payload, state, attempts, next_attempt_at,
                 last_error, last_error_kind, hold_reason, claimed_by, created_at, updated_at, result)
            SELECT %s, p.id, 'person', 'person:' || p.id, '{{}}', 'pending', 0, %s, '', '', '', '',
                   CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, ''
            FROM crmsync_prospect p
            WHERE p.account_id = %s AND p.erased = FALSE AND p.email IS NOT NULL {only}
            ON CONFLICT DO NOTHING
            """,  # noqa: S608 - only placeholders are interpolated
            params,
        )
        queued = max(cursor.rowcount, 0) + backfill_event_work(connection, prospect_ids)
    if analyze:
        analyze_after_bulk_write(OutboxItem, queued)
    return OutboxItem.objects.filter(
        connection=connection,
        kind=OutboxKind.PERSON,
        state__in=[OutboxState.PENDING, OutboxState.RETRY, OutboxState.HELD],
    ).count()


def backfill_event_work(connection: Connection, prospect_ids: Sequence[int] | None) -> int:
    """Queue activity/note/deal work for events that have none yet (anonymous visits stitched
    later, activity from before the lead existed). Safe to repeat: the unique key absorbs it.
    Returns how many rows were queued."""
    cases = " ".join(f"WHEN '{etype}' THEN '{kind}'" for etype, kind in EVENT_WORK.items())
    types = ",".join(f"'{etype}'" for etype in EVENT_WORK)
    params: list = [connection.pk, timezone.now(), connection.account_id]
    only = ""
    if prospect_ids is not None:
        only = "AND e.prospect_id IN (" + ",".join(["%s"] * len(prospect_ids)) + ")"
        params.extend(prospect_ids)
    with db.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO integrations_outboxitem
                (connection_id, prospect_id, event_id, kind, dedupe_key, payload, state, attempts, next_attempt_at,
                 last_error, last_error_kind, hold_reason, claimed_by, created_at, updated_at, result)
            SELECT %s, e.prospect_id, e.id, CASE e.type {cases} END, (CASE e.type {cases} END) || ':' || e.id,
                   '{{}}', 'pending', 0, %s, '', '', '', '', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, ''
            FROM crmsync_event e
            WHERE e.account_id = %s AND e.prospect_id IS NOT NULL AND e.type IN ({types}) {only}
            ON CONFLICT DO NOTHING
            """,  # noqa: S608 - the CASE/IN lists come from our own constant table, not input
            params,
        )
        return max(cursor.rowcount, 0)


def kick_after_commit(connections: Iterable[Connection]) -> None:
    from integrations.sync.jobs import kick

    for connection in connections:
        transaction.on_commit(lambda cid=connection.pk: kick(cid))


def enqueue_crm_erasure(prospect: Prospect) -> None:
    """Erasure hook: delete the person in every CRM it was synced to (GDPR). The work goes through
    the outbox like any other, so it is retried, visible, and reported where a CRM cannot delete."""
    from integrations.models import RecordLink

    now = timezone.now()
    rows = [
        OutboxItem(
            connection_id=link.connection_id,
            prospect_id=prospect.pk,
            kind=OutboxKind.ERASE,
            dedupe_key=f"erase:{prospect.pk}",
            payload={"crm_id": link.crm_id, "object_type": link.crm_object_type},
            next_attempt_at=now,
            created_at=now,
            updated_at=now,
        )
        for link in RecordLink.objects.filter(prospect=prospect).exclude(
            connection__status=ConnectionStatus.DISCONNECTED
        )
    ]
    insert_rows(rows)
    kick_after_commit(
        Connection.objects.filter(pk__in=[row.connection_id for row in rows], sync_mode=SyncMode.REALTIME)
    )
