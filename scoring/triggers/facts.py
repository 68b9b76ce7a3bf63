"""The aggregates trigger evaluation needs for the events of one ingest, loaded set-based.

A handful of queries per ingest whatever its size, and only those the account's rules need:

- total time spent (for ``high_engagement`` with ``min_seconds``): one grouped SUM;
- lead score (``high_engagement`` with ``min_score``): the stored score (scoring's hook ran just
  before ours) and the score without this ingest's events, from scoring's own pure function;
- first view (``capsule_viewed`` with ``first_view_only``): one EXISTS per new view, in one query.

"Before" means without the events this ingest brought to the prospect: the new events, and the
earlier anonymous events of visitors identified by this ingest (stitching). An anonymous visitor
who spends ten minutes and then leaves their e-mail therefore reaches a time threshold with the
identifying event, instead of "having always had" those ten minutes. Within one ingest, time
accumulates event by event in request order (the stitched time counts with the prospect's first
new event); a score threshold is reached with the prospect's last new event of the ingest.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime

from django.db.models import BigIntegerField, Exists, IntegerField, OuterRef, Q, Sum
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast, Coalesce

from crmsync.lookups import in_account_unindexed
from crmsync.models import Event, Visitor
from scoring.engine import ScoredEvent, compute_score
from scoring.models import ProspectScore
from scoring.service import ScoringInputs
from scoring.triggers.conditions import ConditionType
from scoring.triggers.evaluate import Aggregates, RuleSpec


def load_aggregates(account_id: int, events: Sequence[Event], rules: Sequence[RuleSpec]) -> dict[int, Aggregates]:
    """Aggregates by event id for ``events`` (new, of known prospects, in request order)."""
    engagement = [rule.options for rule in rules if rule.condition_type == ConditionType.HIGH_ENGAGEMENT]
    need_seconds = any("min_seconds" in options for options in engagement)
    need_score = any("min_score" in options for options in engagement)
    need_first_view = any(
        rule.condition_type == ConditionType.CAPSULE_VIEWED and rule.options.get("first_view_only") for rule in rules
    )
    if not events or not (need_seconds or need_score or need_first_view):
        return {}
    by_prospect: dict[int, list[Event]] = defaultdict(list)
    for event in events:
        by_prospect[event.prospect_id].append(event)
    now = events[0].received_at
    new_ids = [event.pk for event in events]
    stitched = _visitors_identified_at(account_id, list(by_prospect), now) if need_seconds or need_score else set()

    old_seconds, stitched_seconds = (
        _seconds(account_id, list(by_prospect), new_ids, stitched) if need_seconds else ({}, {})
    )
    score_before, score_after = (
        _scores(account_id, list(by_prospect), new_ids, stitched, now) if need_score else ({}, {})
    )
    first_views = (
        _first_views(account_id, [e.pk for e in events if e.type == "capsule_viewed"]) if need_first_view else set()
    )

    aggregates: dict[int, Aggregates] = {}
    for prospect_id, prospect_events in by_prospect.items():
        running = old_seconds.get(prospect_id, 0)
        pending_stitched = stitched_seconds.get(prospect_id, 0)
        before_score = score_before.get(prospect_id, 0)
        last = prospect_events[-1].pk
        for event in prospect_events:
            added = pending_stitched + _event_seconds(event)
            pending_stitched = 0
            aggregates[event.pk] = Aggregates(
                seconds_before=running,
                seconds_after=running + added,
                score_before=before_score,
                score_after=score_after.get(prospect_id, 0) if event.pk == last else before_score,
                first_view=event.pk in first_views,
            )
            running += added
    return aggregates


def _event_seconds(event: Event) -> int:
    seconds = event.data.get("seconds") if event.type == "time_spent" and isinstance(event.data, dict) else None
    return seconds if isinstance(seconds, int) and not isinstance(seconds, bool) else 0


def _visitors_identified_at(account_id: int, prospect_ids: list[int], now: datetime) -> set[str]:
    # The ingest stamps a visitor it identifies with the same time as the events it stores.
    visitors = Visitor.objects.filter(prospect_id__in=prospect_ids, identified_at=now)
    return set(in_account_unindexed(visitors, account_id).values_list("visitor_id", flat=True))


def _seconds(
    account_id: int, prospect_ids: list[int], new_ids: list[int], stitched: set[str]
) -> tuple[dict[int, int], dict[int, int]]:
    """Time spent per prospect before this ingest, and in the events stitched to it by this ingest."""
    seconds = Cast(KeyTextTransform("seconds", "data"), IntegerField())
    rows = (
        in_account_unindexed(Event.objects.filter(prospect_id__in=prospect_ids, type="time_spent"), account_id)
        .exclude(pk__in=new_ids)
        .values("prospect_id")
    )
    if not stitched:
        totals = rows.annotate(total=Sum(seconds))
        return {row["prospect_id"]: row["total"] or 0 for row in totals}, {}
    totals = rows.annotate(
        old=Sum(seconds, filter=~Q(visitor_id__in=stitched)), stitched=Sum(seconds, filter=Q(visitor_id__in=stitched))
    )
    old = {row["prospect_id"]: row["old"] or 0 for row in totals}
    return old, {row["prospect_id"]: row["stitched"] or 0 for row in totals}


def _scores(
    account_id: int, prospect_ids: list[int], new_ids: list[int], stitched: set[str], now: datetime
) -> tuple[dict[int, int], dict[int, int]]:
    """Each prospect's score without this ingest's events, and its stored (current) score."""
    inputs = ScoringInputs.load(account_id)
    grouped: dict[int, list[ScoredEvent]] = defaultdict(list)
    if inputs.event_types:
        rows = (
            in_account_unindexed(
                Event.objects.filter(prospect_id__in=prospect_ids, type__in=inputs.event_types), account_id
            )
            .exclude(pk__in=new_ids)
            .exclude(visitor_id__in=stitched)
            .values_list("prospect_id", "type", "occurred_at", "data")
        )
        for prospect_id, type_, occurred_at, data in rows:
            grouped[prospect_id].append(ScoredEvent(type_, occurred_at, data if isinstance(data, dict) else {}))
    before = {pid: compute_score(grouped.get(pid, ()), inputs.rules, inputs.bands, now).score for pid in prospect_ids}
    after = dict(ProspectScore.objects.filter(prospect_id__in=prospect_ids).values_list("prospect_id", "score"))
    return before, after


def _first_views(account_id: int, view_ids: list[int]) -> set[int]:
    """The views among ``view_ids`` that are their prospect's earliest of that capsule (time, then id)."""
    if not view_ids:
        return set()
    capsule = Coalesce("capsule_id", 0, output_field=BigIntegerField())  # views without a capsule group together
    earlier = (
        in_account_unindexed(
            Event.objects.filter(prospect_id=OuterRef("prospect_id"), type="capsule_viewed"), account_id
        )
        .annotate(capsule_key=capsule)
        .filter(capsule_key=OuterRef("capsule_key"))
        .filter(
            Q(occurred_at__lt=OuterRef("occurred_at")) | Q(occurred_at=OuterRef("occurred_at"), pk__lt=OuterRef("pk"))
        )
    )
    return set(
        Event.objects.filter(pk__in=view_ids)
        .annotate(capsule_key=capsule)
        .annotate(has_earlier=Exists(earlier))
        .filter(has_earlier=False)
        .values_list("pk", flat=True)
    )
