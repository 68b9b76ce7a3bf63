"""What people do to sync work: retry, skip and "sync now", each written to the audit log.

The owner pages and the ops admin both come through here, so an action means the same thing and
leaves the same trail wherever it was taken. The row updates themselves are the sync engine's
(``integrations.sync.jobs``); this module bounds them, and records who asked.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from django.db.models import QuerySet
from django.http import HttpRequest

from crmsync import audit
from crmsync.models import Account
from integrations.models import Connection, ConnectionStatus, Direction, OutboxItem, OutboxState
from integrations.sync import jobs

# A retry of "everything failed" updates rows in chunks, and at most RETRY_LIMIT per request, so
# a configuration error that failed a million rows does not become one minute-long request.
RETRY_CHUNK = 5_000
RETRY_LIMIT = 50_000
# States a person may send back to the queue. (retry_rows also takes pending rows, but queueing a
# pending row again changes nothing, and the chunked loop below relies on every chunk leaving.)
RETRYABLE_STATES = (OutboxState.FAILED, OutboxState.RETRY, OutboxState.HELD, OutboxState.SKIPPED)
SKIPPABLE_STATES = (OutboxState.PENDING, OutboxState.RETRY, OutboxState.HELD, OutboxState.FAILED)
# An audit entry names at most this many rows; the count is always exact.
AUDITED_IDS = 100


@dataclass(frozen=True)
class Outcome:
    count: int
    more_left: bool = False  # the limit stopped the action before every row was done


def _audit_rows(
    action: str, rows: Sequence[tuple[int, int]], *, request: HttpRequest, via: str, extra: dict | None = None
) -> None:
    """One entry per account the rows belong to, so each owner's log shows what was done to theirs.
    Rows are named by id only: the audit log outlives an erasure and holds no e-mail address."""
    by_account: dict[int, list[int]] = defaultdict(list)
    for pk, account_id in rows:
        by_account[account_id].append(pk)
    accounts = Account.objects.in_bulk(list(by_account))
    for account_id, ids in by_account.items():
        single = OutboxItem.objects.filter(pk=ids[0]).first() if len(ids) == 1 else None
        audit.record(
            action,
            request=request,
            account=accounts.get(account_id),
            obj=single,
            changes={"count": len(ids), "item_ids": ids[:AUDITED_IDS], "via": via, **(extra or {})},
        )


def retry(
    queryset: QuerySet[OutboxItem],
    *,
    request: HttpRequest,
    via: str,
    extra: dict | None = None,
    limit: int | None = None,
) -> Outcome:
    """Put the failed, waiting, retry-scheduled or skipped rows of ``queryset`` back in the queue
    now, with their attempts reset (real-time connections are kicked). At most ``limit`` rows
    (``RETRY_LIMIT`` unless given)."""
    limit = RETRY_LIMIT if limit is None else limit
    candidates = queryset.filter(state__in=RETRYABLE_STATES).order_by()
    retried: list[tuple[int, int]] = []
    while len(retried) < limit:
        chunk = list(candidates.values_list("pk", "connection__account_id")[: min(RETRY_CHUNK, limit - len(retried))])
        if not chunk:
            break
        jobs.retry_rows(OutboxItem.objects.filter(pk__in=[pk for pk, _ in chunk]))
        retried.extend(chunk)
    more_left = len(retried) >= limit and candidates.exists()
    if retried:
        _audit_rows("sync.retried", retried, request=request, via=via, extra=extra)
    return Outcome(len(retried), more_left)


def skip(queryset: QuerySet[OutboxItem], *, request: HttpRequest, via: str, limit: int) -> Outcome:
    """Mark open or failed rows of ``queryset`` skipped: they will not be sent. At most ``limit``."""
    rows = list(
        queryset.filter(state__in=SKIPPABLE_STATES).order_by().values_list("pk", "connection__account_id")[:limit]
    )
    if rows:
        jobs.skip_rows(OutboxItem.objects.filter(pk__in=[pk for pk, _ in rows]))
        _audit_rows("sync.skipped", rows, request=request, via=via)
    return Outcome(len(rows), queryset.filter(state__in=SKIPPABLE_STATES).exists())


def sync_now_refusal(connection: Connection) -> str | None:
    """Why "sync now" cannot run on this connection, or None when it can."""
    if connection.status != ConnectionStatus.ACTIVE:
        reason = f": {connection.status_reason}" if connection.status_reason else ""
        return f"The connection is {connection.get_status_display().lower()}{reason}. Fix that first."
    if connection.activated_at is None:
        return "Sync is not switched on for this connection yet."
    if connection.direction == Direction.FROM_CRM:
        return "This connection only reads from the CRM; there is nothing to send."
    return None


def sync_now(connection: Connection, prospect_ids: list[int] | None, *, request: HttpRequest, via: str) -> None:
    """Start a manual run for all records (``None``) or the given prospects, after this
    transaction commits. The audit entry counts the prospects; it does not name them."""
    jobs.start_sync_now(connection, prospect_ids, request.user)
    audit.record(
        "sync.sync_now",
        request=request,
        obj=connection,
        changes={"records": "all" if prospect_ids is None else len(prospect_ids), "via": via},
    )
