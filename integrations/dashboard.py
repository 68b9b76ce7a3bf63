"""The sync status dashboard's numbers, for all of an account's connections at once.

Every function takes the connections (or their ids) and answers for all of them in one query,
so the status page costs the same handful of queries with one connection or five, a hundred
outbox rows or ten million. Each query is served by an index of ``integrations.models.sync``:

- counts per state: ``outbox_state_idx`` (connection, state, -updated_at), each count capped
  (``COUNT_CAP``) so a million failed rows never means counting a million index entries;
- last successful sync and the volume charts: the same index, read by ``updated_at``. A row's
  ``updated_at`` is set to its ``done_at`` when it reaches done (or to the failure time when it
  fails) and nothing writes a finished row again, so the newest done row by ``updated_at`` is
  the newest by ``done_at``;
- latest and running runs: ``run_recent_idx`` (connection, -started_at);
- reliability: rows by (connection, created_at).

Numbers of the past that can no longer change (done rows of an hour or day that is over, the
reliability of a day whose every deadline has passed) are counted once and kept in Django's
cache, so a month of ten million rows is not recounted on every page view: a page counts only
the current hour and whatever has not been cached yet.

The reliability figure (issue 10 item 4) is defined in :func:`reliability`.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, Decimal
from functools import reduce

from django.contrib.humanize.templatetags.humanize import intcomma
from django.core.cache import cache
from django.db import connection as db
from django.db.models import Case, Count, DurationField, F, OuterRef, Q, Subquery, Value, When
from django.db.models.expressions import RawSQL
from django.db.models.functions import Trunc
from django.utils import timezone

from crmsync import navigation
from integrations.errors import AuthError, ConfigurationError, RecordError, RetryableError
from integrations.models import (
    BatchSchedule,
    Connection,
    LinkState,
    OutboxItem,
    OutboxKind,
    OutboxState,
    RecordLink,
    RunMode,
    RunState,
    SyncMode,
    SyncRun,
)

navigation.register("Sync status", "integrations:sync_status", order=40)

UTC = dt.UTC
# Counts on the page stop at this many ("100,000+"): the page never walks more index entries.
COUNT_CAP = 100_000
# States shown as counts, in the order the page shows them.
COUNTED_STATES: tuple[str, ...] = (
    OutboxState.PENDING,
    OutboxState.IN_FLIGHT,
    OutboxState.RETRY,
    OutboxState.HELD,
    OutboxState.FAILED,
)
# The reasons rows wait are read from at most this many waiting rows per connection.
HELD_SAMPLE = 10_000
LATEST_RUNS = 10
# A run still "running" after this long was abandoned by a dead worker; it gets no progress bar.
RUNNING_RUN_HORIZON = dt.timedelta(days=2)

# What each error kind means for the person reading it (integrations.errors decides the kind).
ERROR_KINDS: dict[str, str] = {
    RecordError.kind: "The CRM refused the record",
    ConfigurationError.kind: "Set-up problem (mapping or CRM settings)",
    AuthError.kind: "Sign-in to the CRM",
    RetryableError.kind: "Temporary errors, retries used up",
}

# -- the reliability figure -------------------------------------------------------------------------

RELIABILITY_REQUIREMENT = Decimal("0.995")
RELIABILITY_DAYS = 7
# Which rows the figure is about: a person reaching the CRM, and their activity on its timeline.
RELIABILITY_KINDS = (OutboxKind.PERSON, OutboxKind.ACTIVITY)
REALTIME_TARGET = dt.timedelta(minutes=5)
MANUAL_TARGET = dt.timedelta(hours=1)
BATCH_GRACE = dt.timedelta(hours=1)
BATCH_INTERVALS = {BatchSchedule.HOURLY: dt.timedelta(hours=1), BatchSchedule.DAILY: dt.timedelta(days=1)}

log = logging.getLogger(__name__)


def target_for(mode: str, batch_schedule: str = BatchSchedule.HOURLY) -> dt.timedelta:
    """How long a record may take to reach the CRM in a sync mode (see :func:`reliability`)."""
    if mode == SyncMode.REALTIME:
        return REALTIME_TARGET
    if mode == SyncMode.BATCH:
        return BATCH_INTERVALS[batch_schedule] + BATCH_GRACE
    return MANUAL_TARGET


def describe_duration(duration: dt.timedelta) -> str:
    """A target time in words: "5 minutes", "25 hours"."""
    minutes = int(duration.total_seconds() // 60)
    if minutes < 60:
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    hours = minutes // 60
    return f"{hours} hour{'s' if hours != 1 else ''}"


@dataclass(frozen=True)
class BoundedCount:
    """A count that stopped at a cap: shown as "100,000+" rather than paid for in full."""

    value: int
    capped: bool = False

    def __str__(self) -> str:
        return f"{intcomma(self.value)}+" if self.capped else intcomma(self.value)

    def __bool__(self) -> bool:
        return self.value > 0


def bounded_count(queryset, cap: int) -> BoundedCount:
    """COUNT over at most ``cap + 1`` rows of ``queryset``: ``SELECT count(*) FROM (… LIMIT cap+1)``."""
    value = queryset.order_by().values("pk")[: cap + 1].count()
    return BoundedCount(min(value, cap), value > cap)


@dataclass(frozen=True)
class Reliability:
    """On-time rows out of decided rows, for one connection over one day (or several)."""

    on_time: int = 0
    decided: int = 0

    @property
    def share(self) -> Decimal | None:
        return Decimal(self.on_time) / Decimal(self.decided) if self.decided else None

    @property
    def meets_requirement(self) -> bool | None:
        return None if self.share is None else self.share >= RELIABILITY_REQUIREMENT

    @property
    def percent(self) -> str:
        """Rounded down, so 99.49…% never reads as a passing 99.5%."""
        if self.share is None:
            return "—"
        return f"{(self.share * 100).quantize(Decimal('0.01'), rounding=ROUND_FLOOR)}%"

    def __add__(self, other: Reliability) -> Reliability:
        return Reliability(self.on_time + other.on_time, self.decided + other.decided)


@dataclass(frozen=True)
class DayReliability:
    day: dt.date
    figure: Reliability


# -- the queries ----------------------------------------------------------------------------------


def _ids(connections: Iterable[Connection | int]) -> list[int]:
    return [c if isinstance(c, int) else c.pk for c in connections]


def state_counts(connection_ids: Sequence[int], cap: int = COUNT_CAP) -> dict[int, dict[str, BoundedCount]]:
    """Pending, in-flight, retry-scheduled, waiting (held) and failed rows per connection.

    One query: for every (connection, state) pair a ``count(*)`` over a ``LIMIT cap + 1``
    index range of ``outbox_state_idx``.
    """
    result: dict[int, dict[str, BoundedCount]] = {
        cid: {state: BoundedCount(0) for state in COUNTED_STATES} for cid in connection_ids
    }
    if not connection_ids:
        return result
    table = OutboxItem._meta.db_table
    sql = f"""
        SELECT c.id, s.state,
               (SELECT count(*) FROM (
                    SELECT 1 FROM {table} o WHERE o.connection_id = c.id AND o.state = s.state LIMIT %s
               ) AS capped)
        FROM unnest(%s::bigint[]) AS c(id) CROSS JOIN unnest(%s::text[]) AS s(state)
    """  # noqa: S608 - the table name is our own model's; every value is a parameter
    with db.cursor() as cursor:
        cursor.execute(sql, [cap + 1, list(connection_ids), [str(s) for s in COUNTED_STATES]])
        for cid, state, value in cursor.fetchall():
            result[cid][state] = BoundedCount(min(value, cap), value > cap)
    return result


def held_reasons(connection_ids: Sequence[int], cap: int = HELD_SAMPLE) -> dict[int, list[tuple[str, int]]]:
    """Why rows wait, per connection: (hold reason, rows), most common first.

    Read from at most ``cap`` held rows per connection (a LATERAL ``LIMIT``; the reason is not
    in an index, so each row is a heap read), so the split is exact below the cap and a sample
    above it.
    """
    result: dict[int, list[tuple[str, int]]] = {cid: [] for cid in connection_ids}
    if not connection_ids:
        return result
    table = OutboxItem._meta.db_table
    sql = f"""
        SELECT c.id, h.hold_reason, count(*)
        FROM unnest(%s::bigint[]) AS c(id)
        CROSS JOIN LATERAL (
            SELECT o.hold_reason FROM {table} o WHERE o.connection_id = c.id AND o.state = %s LIMIT %s
        ) AS h
        GROUP BY c.id, h.hold_reason
        ORDER BY c.id, count(*) DESC, h.hold_reason
    """  # noqa: S608 - the table name is our own model's; every value is a parameter
    with db.cursor() as cursor:
        cursor.execute(sql, [list(connection_ids), str(OutboxState.HELD), cap])
        for cid, reason, value in cursor.fetchall():
            result[cid].append((reason or "waiting", value))
    return result


def last_synced_expression() -> Subquery:
    """The newest ``done_at`` of a connection's rows, as an annotation on a Connection queryset."""
    newest_done = (
        OutboxItem.objects.filter(connection=OuterRef("pk"), state=OutboxState.DONE)
        .order_by("-updated_at")
        .values("done_at")[:1]
    )
    return Subquery(newest_done)


def bounded_state_count_sql(state: str, cap: int = COUNT_CAP) -> RawSQL:
    """Rows of a connection in ``state``, counted up to ``cap + 1``, as an annotation on a
    Connection queryset (the ops admin's change list: one query for the whole page)."""
    table, outer = OutboxItem._meta.db_table, Connection._meta.db_table
    return RawSQL(  # noqa: S611 - table names are our models'; the values are parameters
        f"(SELECT count(*) FROM (SELECT 1 FROM {table} o WHERE o.connection_id = {outer}.id "  # noqa: S608
        f"AND o.state = %s LIMIT %s) AS capped)",
        (str(state), cap + 1),
    )


def last_synced(connection_ids: Sequence[int]) -> dict[int, dt.datetime | None]:
    """When each connection last got a record into the CRM: the newest ``done_at`` of its rows."""
    rows = Connection.objects.filter(pk__in=connection_ids).annotate(last=last_synced_expression())
    return {cid: last for cid, last in rows.values_list("pk", "last")}


@dataclass(frozen=True)
class Volume:
    """Rows that reached done (synced) and rows that failed, per time bucket, oldest first."""

    buckets: tuple[dt.datetime, ...]
    synced: tuple[int, ...]
    failed: tuple[int, ...]


HOUR, DAY = dt.timedelta(hours=1), dt.timedelta(days=1)
STEPS = {"hour": HOUR, "day": DAY}
# A bucket that ended more than SETTLE ago is final: a row is stamped a moment before its batch
# commits, so the last writes of an hour land just after it. Final numbers are cached.
SETTLE = dt.timedelta(minutes=10)
FINAL_CACHE_SECONDS = 8 * 24 * 3600


def _cached(keys: list[str]) -> dict[str, object]:
    """Settled figures from the cache; a cache that is down (Redis restarting) only costs a recount."""
    try:
        return cache.get_many(keys)
    except Exception:  # any cache failure: count from the database instead
        log.warning("status figures cache unavailable; counting from the database", exc_info=True)
        return {}


def _remember(values: dict[str, object]) -> None:
    try:
        cache.set_many(values, FINAL_CACHE_SECONDS)
    except Exception:  # the figures are shown anyway; the next view counts again
        log.warning("status figures cache unavailable; not caching", exc_info=True)


def _cache_key(kind: str, connection: Connection, start: dt.datetime | dt.date) -> str:
    # The connection's creation time is part of the key, so a reused id (a restored database, a
    # test run against a shared cache) never reads another connection's numbers.
    stamp = start.isoformat()
    return f"sync-dashboard:{kind}:{connection.pk}:{connection.connected_at.timestamp():.6f}:{stamp}"


def bucket_starts(now: dt.datetime, unit: str, count: int) -> tuple[dt.datetime, ...]:
    """The starts of the last ``count`` hours or days (UTC) up to and including the current one."""
    now = now.astimezone(UTC)
    if unit == "hour":
        current = now.replace(minute=0, second=0, microsecond=0)
    elif unit == "day":
        current = now.replace(hour=0, minute=0, second=0, microsecond=0)
    else:
        raise ValueError(f"unit must be 'hour' or 'day', not {unit!r}")
    return tuple(current - STEPS[unit] * (count - 1 - i) for i in range(count))


def _count_by_bucket(
    connection_ids: Sequence[int], state: str, unit: str, since: dt.datetime, until: dt.datetime | None = None
) -> dict[tuple[int, dt.datetime], int]:
    """Rows in ``state`` per (connection, bucket of ``updated_at``): an index-only range scan of
    ``outbox_state_idx`` (``COUNT(*)`` reads no other column)."""
    rows = OutboxItem.objects.filter(connection_id__in=connection_ids, state=state, updated_at__gte=since)
    if until is not None:
        rows = rows.filter(updated_at__lt=until)
    rows = (
        rows.annotate(bucket=Trunc("updated_at", unit, tzinfo=UTC))
        .values("connection_id", "bucket")
        .annotate(n=Count("*"))
        .order_by()
    )
    return {(row["connection_id"], row["bucket"].astimezone(UTC)): row["n"] for row in rows}


def synced_counts(
    connections: Sequence[Connection],
    *,
    unit: str,
    starts: Sequence[dt.datetime],
    now: dt.datetime,
    known: dict[tuple[int, dt.datetime], int] | None = None,
) -> dict[int, list[int]]:
    """Rows that reached done, per connection and bucket (``starts``).

    A done row never changes again, so a final bucket is counted once and then read from the
    cache; only buckets still open (and any final bucket not cached yet) are counted, in one
    query over the range they span. ``known`` supplies counts of open buckets worked out
    elsewhere (a day from its hours).
    """
    step = STEPS[unit]
    final = {
        (c.pk, s): _cache_key(f"done-{unit}", c, s) for c in connections for s in starts if s + step <= now - SETTLE
    }
    cached = _cached(list(final.values())) if final else {}
    values = {bucket: cached[key] for bucket, key in final.items() if key in cached}
    values.update(known or {})
    needed = sorted({s for c in connections for s in starts if (c.pk, s) not in values})
    if needed:
        counted = _count_by_bucket([c.pk for c in connections], OutboxState.DONE, unit, needed[0], needed[-1] + step)
        fresh = {}
        for connection in connections:
            for start in needed:
                bucket = (connection.pk, start)
                if bucket not in values:
                    values[bucket] = counted.get(bucket, 0)
                    if bucket in final:
                        fresh[final[bucket]] = values[bucket]
        _remember(fresh)
    return {c.pk: [values.get((c.pk, s), 0) for s in starts] for c in connections}


def volumes(connections: Sequence[Connection], *, now: dt.datetime) -> tuple[dict[int, Volume], dict[int, Volume]]:
    """Synced and failed rows per hour over the last 24 hours and per day over the last 30 days.

    "Synced": rows that reached done, at the time they did (served mostly from the cache, see
    :func:`synced_counts`; today is the sum of its hours). "Failed": rows failed now (they need
    a person), at the time they failed: counted live, one query, since a retry or skip takes
    rows out of past buckets.
    """
    hours, days = bucket_starts(now, "hour", 24), bucket_starts(now, "day", 30)
    ids = [c.pk for c in connections]
    synced_hourly = synced_counts(connections, unit="hour", starts=hours, now=now)
    # Days still open that the 24 hours cover (today, always): the sum of their hours.
    known = {
        (cid, day): sum(n for hour, n in zip(hours, synced_hourly[cid], strict=True) if day <= hour < day + DAY)
        for cid in ids
        for day in days
        if day + DAY > now - SETTLE and day >= hours[0]
    }
    synced_daily = synced_counts(connections, unit="day", starts=days, now=now, known=known)
    failed_by_hour = _count_by_bucket(ids, OutboxState.FAILED, "hour", days[0]) if ids else {}
    failed_hourly = {cid: [failed_by_hour.get((cid, hour), 0) for hour in hours] for cid in ids}
    failed_daily = {cid: [0] * len(days) for cid in ids}
    day_index = {day: i for i, day in enumerate(days)}
    for (cid, hour), n in failed_by_hour.items():
        position = day_index.get(hour.replace(hour=0))
        if position is not None:
            failed_daily[cid][position] += n
    hourly = {cid: Volume(hours, tuple(synced_hourly[cid]), tuple(failed_hourly[cid])) for cid in ids}
    daily = {cid: Volume(days, tuple(synced_daily[cid]), tuple(failed_daily[cid])) for cid in ids}
    return hourly, daily


def latest_runs(connection_ids: Sequence[int], limit: int = LATEST_RUNS) -> dict[int, list[SyncRun]]:
    """Each connection's newest ``limit`` runs, newest first.

    One ``UNION ALL`` of a ``LIMIT`` slice per connection, each slice an index range of
    ``run_recent_idx``: real-time connections gather many thousands of runs, and a window
    function over all of them would read every one.
    """
    result: dict[int, list[SyncRun]] = {cid: [] for cid in connection_ids}
    slices = [
        SyncRun.objects.filter(connection_id=cid).order_by("-started_at", "-pk")[:limit] for cid in connection_ids
    ]
    if not slices:
        return result
    combined = slices[0] if len(slices) == 1 else reduce(lambda a, b: a.union(b, all=True), slices)
    for run in combined:
        result[run.connection_id].append(run)
    for runs in result.values():
        runs.sort(key=lambda run: (run.started_at, run.pk), reverse=True)
    return result


def running_runs(connection_ids: Sequence[int], *, now: dt.datetime) -> dict[int, SyncRun]:
    """The batch or manual run in progress on each connection (the newest, if several)."""
    runs = SyncRun.objects.filter(
        connection_id__in=connection_ids,
        state=RunState.RUNNING,
        mode__in=[RunMode.BATCH, RunMode.MANUAL],
        started_at__gte=now - RUNNING_RUN_HORIZON,
    ).order_by("started_at", "pk")
    # Oldest first, so the newest run of a connection is the one left in the dict.
    return {run.connection_id: run for run in runs}


def _reliability_rows(
    connection_ids: Sequence[int], *, since: dt.datetime, now: dt.datetime
) -> dict[tuple[int, dt.datetime], Reliability]:
    """The figure per (connection, hour the clock started in) for rows whose clock started at or
    after ``since`` (see :func:`reliability` for the definition)."""
    # A manual run's rows may have been created long before it: they come in by their run. The
    # run ids are read first (a handful) so that the row filter is two index ranges, not a scan.
    manual_runs = list(
        SyncRun.objects.filter(
            connection_id__in=connection_ids, mode=RunMode.MANUAL, started_at__gte=since
        ).values_list("pk", flat=True)
    )
    in_window = Q(created_at__gte=since) | Q(run_id__in=manual_runs) if manual_runs else Q(created_at__gte=since)
    duration = DurationField()
    rows = (
        OutboxItem.objects.filter(connection_id__in=connection_ids, kind__in=RELIABILITY_KINDS)
        .filter(in_window)
        .exclude(run__isnull=True, connection__sync_mode=SyncMode.MANUAL)
        .annotate(
            clock=Case(When(run__mode=RunMode.MANUAL, then=F("run__started_at")), default=F("created_at")),
            target=Case(
                When(
                    Q(run__mode=RunMode.REALTIME) | Q(run__isnull=True, connection__sync_mode=SyncMode.REALTIME),
                    then=Value(REALTIME_TARGET, output_field=duration),
                ),
                When(
                    Q(run__mode=RunMode.MANUAL) | Q(run__isnull=True, connection__sync_mode=SyncMode.MANUAL),
                    then=Value(MANUAL_TARGET, output_field=duration),
                ),
                When(
                    connection__batch_schedule=BatchSchedule.DAILY,
                    then=Value(target_for(SyncMode.BATCH, BatchSchedule.DAILY), output_field=duration),
                ),
                default=Value(target_for(SyncMode.BATCH, BatchSchedule.HOURLY), output_field=duration),
                output_field=duration,
            ),
        )
        .annotate(deadline=F("clock") + F("target"))
        .filter(clock__gte=since)
        .annotate(hour=Trunc("clock", "hour", tzinfo=UTC))
        .values("connection_id", "hour")
        .annotate(
            on_time=Count("pk", filter=Q(state=OutboxState.DONE, done_at__lte=F("deadline"))),
            decided=Count(
                "pk",
                filter=Q(state=OutboxState.DONE, done_at__lte=F("deadline"))
                | Q(state=OutboxState.FAILED)
                | (Q(deadline__lte=now) & ~Q(state__in=[OutboxState.SKIPPED, OutboxState.HELD])),
            ),
        )
        .order_by()
    )
    return {
        (row["connection_id"], row["hour"].astimezone(UTC)): Reliability(row["on_time"], row["decided"]) for row in rows
    }


def reliability(
    connections: Sequence[Connection], *, now: dt.datetime, days: int = RELIABILITY_DAYS
) -> dict[int, list[DayReliability]]:
    """The reliability figure (issue 10 item 4): per connection and per day (UTC), the share of
    records synced successfully within the sync mode's target time. The requirement is 99.5%.

    Definition, as the status page states it:

    - **Which rows**: contact/lead upserts and activities (outbox kinds ``person`` and
      ``activity``) of the connection.
    - **The clock** starts when the row was created (the event arrived, or the record changed);
      for a row taken up by a manual run, when that run started. The row counts on the UTC day
      its clock started.
    - **The target** follows the mode of the run that took the row up (the connection's current
      mode for a row no run has taken up yet): real time 5 minutes; batch the schedule's interval
      plus one hour (hourly: 2 hours, daily: 25 hours); manual 1 hour from the run's start.
    - **On time**: the row is done and its ``done_at`` is at most clock + target (a row done at
      4:59 counts; at 5:01 it does not).
    - **Decided**: on time, failed, or past its deadline (clock + target) without being done.
      Rows still inside their deadline are not counted yet; nor are rows a person or the rules
      skipped (erased, suppressed, skipped) or rows held by the connection's own settings
      (waiting for consent, a score threshold or the lead), nor manual-mode rows nobody has
      asked to sync yet.
    - **Figure** = on time ÷ decided; a day with nothing decided has no figure.

    The figure is worked out per hour and summed per day. An hour's figure is final once the
    deadline of its last row has passed (the connection's target, at least the manual one, after
    the hour ends): final hours are counted once and cached; the rest in one grouped query whose
    clock and deadline are SQL expressions, so no row is loaded. (A cached hour does not see a
    later change of mind: a failed row skipped afterwards, a held row released afterwards.)
    Returns, per connection, one entry per day from ``days - 1`` days ago to today, oldest first.
    """
    today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    day_starts = [today - DAY * (days - 1 - i) for i in range(days)]
    hours = [day_starts[0] + HOUR * i for i in range(days * 24) if day_starts[0] + HOUR * i <= now]
    final = {}
    for connection in connections:
        settled = max(target_for(connection.sync_mode, connection.batch_schedule), MANUAL_TARGET) + SETTLE
        for hour in hours:
            if hour + HOUR + settled <= now:
                final[(connection.pk, hour)] = _cache_key("reliability", connection, hour)
    cached = _cached(list(final.values())) if final else {}
    figures = {bucket: Reliability(*cached[key]) for bucket, key in final.items() if key in cached}
    needed = [hour for hour in hours if any((c.pk, hour) not in figures for c in connections)]
    if needed:
        counted = _reliability_rows([c.pk for c in connections], since=needed[0], now=now)
        fresh = {}
        for connection in connections:
            for hour in needed:
                bucket = (connection.pk, hour)
                if bucket not in figures:
                    figures[bucket] = counted.get(bucket, Reliability())
                    if bucket in final:
                        fresh[final[bucket]] = (figures[bucket].on_time, figures[bucket].decided)
        _remember(fresh)
    result = {}
    for connection in connections:
        per_day = {start.date(): Reliability() for start in day_starts}
        for hour in hours:
            per_day[hour.date()] += figures.get((connection.pk, hour), Reliability())
        result[connection.pk] = [DayReliability(day, figure) for day, figure in per_day.items()]
    return result


# -- all of it, per connection --------------------------------------------------------------------


@dataclass
class ConnectionDashboard:
    """Everything the status page shows about one connection."""

    connection: Connection
    counts: dict[str, BoundedCount]
    held: list[tuple[str, int]]
    last_synced_at: dt.datetime | None
    hourly: Volume
    daily: Volume
    runs: list[SyncRun]
    running: SyncRun | None
    days: list[DayReliability] = field(default_factory=list)
    # Records whose CRM side changed under us: re-linked (deleted or merged there, matched again
    # or re-created — docs/SYNC.md), deleted in the CRM, erased on request.
    link_states: dict[str, int] = field(default_factory=dict)

    @property
    def target(self) -> dt.timedelta:
        return target_for(self.connection.sync_mode, self.connection.batch_schedule)

    @property
    def held_sampled(self) -> bool:
        """Whether the reasons were read from a sample of the waiting rows (there are more)."""
        return sum(count for _reason, count in self.held) < self.counts[OutboxState.HELD].value

    @property
    def today(self) -> Reliability:
        return self.days[-1].figure if self.days else Reliability()

    @property
    def week(self) -> Reliability:
        return sum((day.figure for day in self.days), Reliability())


def unusual_links(connection_ids: Sequence[int]) -> dict[int, dict[str, int]]:
    """Per connection, how many record links are not plainly "linked" (one indexed query)."""
    result: dict[int, dict[str, int]] = {cid: {} for cid in connection_ids}
    rows = (
        RecordLink.objects.filter(connection_id__in=connection_ids)
        .exclude(state=LinkState.LINKED)
        .values_list("connection_id", "state")
        .annotate(n=Count("id"))
    )
    for cid, state, n in rows:
        result[cid][state] = n
    return result


def build(connections: Sequence[Connection], *, now: dt.datetime | None = None) -> list[ConnectionDashboard]:
    """The dashboards of ``connections``, in their order: at most ten queries whatever their number
    (fewer once the past is cached)."""
    now = now or timezone.now()
    ids = _ids(connections)
    counts = state_counts(ids)
    held = held_reasons(ids)
    last = last_synced(ids)
    hourly, daily = volumes(connections, now=now)
    runs = latest_runs(ids)
    running = running_runs(ids, now=now)
    days = reliability(connections, now=now)
    links = unusual_links(ids)
    result = []
    for connection in connections:
        cid = connection.pk
        result.append(
            ConnectionDashboard(
                connection=connection,
                counts=counts[cid],
                held=held[cid],
                last_synced_at=last.get(cid),
                hourly=hourly[cid],
                daily=daily[cid],
                runs=runs[cid],
                running=running.get(cid),
                days=days[cid],
                link_states=links[cid],
            )
        )
    return result


WARM_CHUNK = 100


def warm_figures(*, now: dt.datetime | None = None) -> int:
    """Count the settled past of every live connection's charts and reliability into the cache
    (scheduler, every few minutes), so no owner's page view is the one that counts a month of
    rows. Cheap once warm: only the hours that settled since the last run are counted. Returns
    the number of connections warmed."""
    now = now or timezone.now()
    live = list(Connection.objects.live().filter(activated_at__isnull=False).order_by("pk"))
    for start in range(0, len(live), WARM_CHUNK):
        chunk = live[start : start + WARM_CHUNK]
        volumes(chunk, now=now)
        reliability(chunk, now=now)
    return len(live)
