"""The sync engine's jobs: real-time kicks, the safety-net sweep, batch and manual runs.

Kicks are light: a Redis ``SET NX`` flag per connection means a burst of events enqueues one
flush, and events that land while it runs enqueue the next. A lost kick only delays work: the
sweep (every few seconds, from the scheduler) reaps expired leases and kicks every real-time
connection that has due rows.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid

from django.conf import settings
from django.db import close_old_connections, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from crmsync.jobs import dispatch_now
from integrations.models import (
    BatchSchedule,
    Connection,
    ConnectionStatus,
    LinkState,
    OutboxItem,
    OutboxState,
    RecordLink,
    RunMode,
    RunState,
    SyncMode,
    SyncRun,
)
from integrations.sync import claim
from integrations.sync.changes import changed_prospect_ids
from integrations.sync.engine import ENGAGEMENT_KINDS, Flusher, FlushStats
from integrations.sync.outbox import enqueue_prospects
from integrations.sync.sql import analyze_after_bulk_write

log = logging.getLogger(__name__)

KICK_FLAG_SECONDS = 30
# Set when the process is asked to stop (SIGTERM): flushes finish their batch and return.
STOP_REQUESTED = threading.Event()
_local_kicks: set[int] = set()
_local_lock = threading.Lock()


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def kick(connection_id: int) -> None:
    """Ask for a real-time flush of one connection, unless one is already queued."""
    if settings.REDIS_URL:
        from integrations.sync.redis import redis_client

        try:
            if not redis_client().set(f"kick:{connection_id}", "1", nx=True, ex=KICK_FLAG_SECONDS):
                return
        except Exception:
            log.warning("Redis unavailable for kick of connection %s; the sweep will find the work", connection_id)
            return
    else:
        with _local_lock:
            if connection_id in _local_kicks:
                return
            _local_kicks.add(connection_id)
    dispatch_now(flush_realtime, connection_id, queue="realtime")


def _clear_kick(connection_id: int) -> None:
    if settings.REDIS_URL:
        from integrations.sync.redis import redis_client

        try:
            redis_client().delete(f"kick:{connection_id}")
        except Exception:
            log.warning("could not clear the kick flag of connection %s", connection_id)
    else:
        with _local_lock:
            _local_kicks.discard(connection_id)


def flush_realtime(connection_id: int) -> dict:
    """Flush a real-time connection's due rows until none are left."""
    _clear_kick(connection_id)  # events from now on enqueue another kick
    time.sleep(settings.SYNC_COALESCE_SECONDS)  # let the rest of a burst land: one write for it
    stats = _flush_with_run(connection_id, RunMode.REALTIME, record_empty=False, drain=False)
    return _as_dict(stats)


def _flush_with_run(connection_id: int, mode: str, *, record_empty: bool = True, drain: bool = True) -> FlushStats:
    run = SyncRun.objects.create(connection_id=connection_id, mode=mode)
    flusher = Flusher(connection_id, worker_id=worker_id(), run=run, stop=STOP_REQUESTED.is_set)
    stats = _finish_run(run, flusher, drain=drain)
    if not record_empty and stats.processed == 0:
        run.delete()  # a kick that found nothing due is not worth a line on the dashboard
    return stats


def _as_dict(stats: FlushStats) -> dict:
    return {
        "processed": stats.processed,
        "created": stats.created,
        "updated": stats.updated,
        "unchanged": stats.unchanged,
        "failed": stats.failed,
        "api_calls": stats.api_calls,
    }


def sweep() -> dict:
    """Safety net: reap dead workers' rows, release held rows that can go, kick due connections."""
    try:
        reaped = claim.reap_expired_leases()
    except Exception:  # one bad row must not stop the kicks below (the real-time safety net)
        log.exception("reaping expired leases failed; kicking anyway")
        reaped = 0
    released = release_linked_held_rows()
    due = (
        OutboxItem.objects.filter(
            state__in=[OutboxState.PENDING, OutboxState.RETRY],
            next_attempt_at__lte=timezone.now(),
            connection__status=ConnectionStatus.ACTIVE,
            connection__sync_mode=SyncMode.REALTIME,
        )
        .values_list("connection_id", flat=True)
        .distinct()
    )
    kicked = 0
    for connection_id in due:
        kick(connection_id)
        kicked += 1
    return {"reaped": reaped, "released": released, "kicked": kicked}


def release_linked_held_rows() -> int:
    """Engagement rows held for a contact that exists by now (a race a flush may have lost)."""
    linked = RecordLink.objects.filter(
        connection_id=OuterRef("connection_id"), prospect_id=OuterRef("prospect_id")
    ).exclude(state=LinkState.DELETED)
    now = timezone.now()
    return (
        OutboxItem.objects.filter(state=OutboxState.HELD, kind__in=ENGAGEMENT_KINDS)
        .filter(Exists(linked))
        .update(state=OutboxState.PENDING, hold_reason="", next_attempt_at=now, updated_at=now)
    )


# -- batch mode ------------------------------------------------------------------------------------

# Batch work stops while less than this share of the CRM's daily budget is left, so real-time
# work always has room.
BATCH_DAILY_RESERVE = 0.1


def _window_start(schedule: str, now) -> object:
    if schedule == BatchSchedule.DAILY:
        return now.replace(hour=0, minute=0, second=0, microsecond=0)
    return now.replace(minute=0, second=0, microsecond=0)


def claim_batch_window(connection: Connection, now=None) -> bool:
    """Atomically take this hour's (or day's) batch for a connection: two schedulers racing for
    the same window get one winner, so a batch never runs twice."""
    now = now or timezone.now()
    start = _window_start(connection.batch_schedule, now)
    return bool(
        Connection.objects.filter(pk=connection.pk)
        .filter(Q(last_batch_at__isnull=True) | Q(last_batch_at__lt=start))
        .update(last_batch_at=now)
    )


def dispatch_due_batches() -> int:
    """Scheduler job (every minute): start the batch run of each connection whose window opened."""
    started = 0
    for connection in Connection.objects.filter(
        status=ConnectionStatus.ACTIVE, sync_mode=SyncMode.BATCH, activated_at__isnull=False
    ):
        if claim_batch_window(connection):
            dispatch_now(run_batch, connection.pk, queue="batch")
            started += 1
    return started


def run_batch(connection_id: int) -> dict:
    """Flush everything a batch connection collected since its last run, through batch endpoints."""
    connection = Connection.objects.get(pk=connection_id)
    # Safety net: prospects changed since their last sync but with no queued work (e.g. work
    # skipped while the connection was paused) are queued too; streamed, a chunk at a time.
    for chunk in changed_prospect_ids(connection):
        enqueue_prospects(connection, chunk, analyze=False)
    total = OutboxItem.objects.filter(connection=connection, state__in=[OutboxState.PENDING, OutboxState.RETRY]).count()
    # Rows gathered over the hour (or just queued) may be unknown to the planner's statistics.
    analyze_after_bulk_write(OutboxItem, total)
    limiter = None

    def stop() -> bool:
        nonlocal limiter
        if STOP_REQUESTED.is_set():
            return True
        if limiter is None:
            from integrations.sync.ratelimit import limiter_for

            limiter = limiter_for(connection_id, connection.spec.rate_limit)
        return limiter.daily_budget_left() < BATCH_DAILY_RESERVE

    run = SyncRun.objects.create(connection=connection, mode=RunMode.BATCH, total=total)
    flusher = Flusher(connection_id, worker_id=worker_id(), run=run, stop=stop)
    return _as_dict(_finish_run(run, flusher, threads=settings.SYNC_FLUSH_THREADS))


def _finish_run(run: SyncRun, flusher: Flusher, *, threads: int = 1, drain: bool = True) -> FlushStats:
    """Flush with ``threads`` flushers of the same connection (each claims its own rows with
    SKIP LOCKED; all share the connection's rate limiter), then close the run. The flushers add
    their counts to the run as they go."""
    try:
        stats = flusher.flush(drain=False) if not drain else _parallel(flusher, threads)
    except Exception as exc:
        SyncRun.objects.filter(pk=run.pk).update(
            state=RunState.FAILED, finished_at=timezone.now(), error=f"{type(exc).__name__}: {exc}"[:2000]
        )
        raise
    SyncRun.objects.filter(pk=run.pk).update(state=RunState.DONE, finished_at=timezone.now())
    return stats


def _parallel(flusher: Flusher, threads: int) -> FlushStats:
    if threads <= 1:
        return flusher.flush()
    helpers = [
        Flusher(flusher.connection_id, worker_id=worker_id(), run=flusher.run, stop=flusher.stop)
        for _ in range(threads - 1)
    ]
    errors: list[BaseException] = []

    def run_helper(helper: Flusher) -> None:
        try:
            helper.flush()
        except BaseException as exc:  # surfaced below, after every thread has stopped
            errors.append(exc)
        finally:
            close_old_connections()

    started = [threading.Thread(target=run_helper, args=(helper,), name="flush-helper") for helper in helpers]
    for thread in started:
        thread.start()
    stats = flusher.flush()
    for thread in started:
        thread.join()
    if errors:
        raise errors[0]
    for helper in helpers:
        for name in (
            "processed",
            "created",
            "updated",
            "unchanged",
            "failed",
            "skipped",
            "held",
            "retried",
            "activities",
            "relinked",
            "rate_limited",
            "api_calls",
        ):
            setattr(stats, name, getattr(stats, name) + getattr(helper.stats, name))
    return stats


# -- manual mode -----------------------------------------------------------------------------------


def sync_now(connection_id: int, prospect_ids: list[int] | None = None, started_by_id: int | None = None) -> int:
    """Queue all (or the selected) prospects of a connection and flush them in one manual run.

    Unchanged records cost no API call (their payload hash matches the last one synced).
    Returns the SyncRun id.
    """
    connection = Connection.objects.get(pk=connection_id)
    total = enqueue_prospects(connection, prospect_ids)
    run = SyncRun.objects.create(connection=connection, mode=RunMode.MANUAL, started_by_id=started_by_id, total=total)
    flusher = Flusher(connection_id, worker_id=worker_id(), run=run, stop=STOP_REQUESTED.is_set)
    _finish_run(run, flusher, threads=settings.SYNC_FLUSH_THREADS)
    return run.pk


def start_sync_now(connection: Connection, prospect_ids: list[int] | None, user=None) -> None:
    """From a page or an admin action: run ``sync_now`` as a job after the current transaction."""
    transaction.on_commit(
        lambda: dispatch_now(sync_now, connection.pk, prospect_ids, getattr(user, "pk", None), queue="batch")
    )


def retry_rows(queryset) -> int:
    """Put failed (or held, or retry-scheduled) rows back in the queue now; kick real-time ones."""
    now = timezone.now()
    connection_ids = set(queryset.values_list("connection_id", flat=True).distinct())
    count = queryset.exclude(state__in=[OutboxState.DONE, OutboxState.IN_FLIGHT]).update(
        state=OutboxState.PENDING, next_attempt_at=now, attempts=0, hold_reason="", updated_at=now
    )
    for connection in Connection.objects.filter(pk__in=connection_ids, sync_mode=SyncMode.REALTIME):
        transaction.on_commit(lambda cid=connection.pk: kick(cid))
    return count


def skip_rows(queryset) -> int:
    now = timezone.now()
    return queryset.exclude(state__in=[OutboxState.DONE, OutboxState.IN_FLIGHT]).update(
        state=OutboxState.SKIPPED, result="skipped by a person", updated_at=now
    )
