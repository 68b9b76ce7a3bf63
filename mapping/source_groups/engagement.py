"""Engagement aggregates computed from a batch of prospects' events, in four queries whatever
the batch size: grouped counts and sums, the latest question and capsule (correlated subqueries
on event_prospect_time_idx), the capsules' titles, and the distinct content opened."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from django.db.models import BigIntegerField, Count, FloatField, Max, OuterRef, Q, Subquery, Sum
from django.db.models.fields.json import KT
from django.db.models.functions import Cast

from crmsync.lookups import in_account_unindexed
from crmsync.models import Account, Capsule, Event, EventType, Prospect
from mapping.sources import SourceField, register_source_group

GROUP = "engagement"

FIELDS = [
    SourceField("views", "Capsule views", "integer", GROUP),
    SourceField("questions_asked", "Questions asked", "integer", GROUP),
    SourceField("last_question", "Last question", "text", GROUP),
    SourceField("total_time_seconds", "Total time spent (seconds)", "integer", GROUP),
    SourceField("content_accessed", "Content accessed", "list", GROUP),
    SourceField("downloads", "Downloads", "integer", GROUP),
    SourceField("cta_clicks", "CTA clicks", "integer", GROUP),
    SourceField("last_capsule", "Last capsule (title)", "string", GROUP),
    SourceField("last_capsule_url", "Last capsule link", "url", GROUP),
    SourceField("last_engaged_at", "Last engaged at", "datetime", GROUP),
    SourceField("converted", "Converted", "boolean", GROUP),
    SourceField("conversion_value", "Conversion value", "number", GROUP),
]

_COUNTS = {
    "views": EventType.CAPSULE_VIEWED,
    "questions_asked": EventType.QUESTION_ASKED,
    "downloads": EventType.CONTENT_DOWNLOADED,
    "cta_clicks": EventType.CTA_CLICKED,
    "conversions": EventType.CONVERSION,
}


def _empty() -> dict[str, Any]:
    return {
        "views": 0,
        "questions_asked": 0,
        "last_question": None,
        "total_time_seconds": 0,
        "content_accessed": [],
        "downloads": 0,
        "cta_clicks": 0,
        "last_capsule": None,
        "last_capsule_url": None,
        "last_engaged_at": None,
        "converted": False,
        "conversion_value": None,
    }


def load(account: Account, prospect_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    snapshots = {prospect_id: _empty() for prospect_id in prospect_ids}
    events = in_account_unindexed(Event.objects.filter(prospect_id__any=list(prospect_ids)), account.pk).order_by()

    # 1. Counts, sums and the latest activity, grouped by prospect.
    aggregates = events.values("prospect_id").annotate(
        **{name: Count("id", filter=Q(type=event_type)) for name, event_type in _COUNTS.items()},
        total_time=Sum(Cast(KT("data__seconds"), BigIntegerField()), filter=Q(type=EventType.TIME_SPENT)),
        value=Sum(Cast(KT("data__value"), FloatField()), filter=Q(type=EventType.CONVERSION)),
        last_engaged_at=Max("occurred_at"),
    )
    for row in aggregates:
        snapshot = snapshots[row["prospect_id"]]
        for name in ("views", "questions_asked", "downloads", "cta_clicks"):
            snapshot[name] = row[name]
        snapshot["total_time_seconds"] = int(row["total_time"] or 0)
        snapshot["converted"] = row["conversions"] > 0
        snapshot["conversion_value"] = row["value"] if row["conversions"] else None
        snapshot["last_engaged_at"] = row["last_engaged_at"]

    # 2. The latest question and the latest capsule, one correlated subquery each.
    latest = Event.objects.filter(prospect=OuterRef("pk")).order_by("-occurred_at", "-id")
    last_items = (
        in_account_unindexed(Prospect.objects.filter(pk__any=list(prospect_ids)), account.pk)
        .order_by()
        .annotate(
            last_question=Subquery(
                latest.filter(type=EventType.QUESTION_ASKED).annotate(text=KT("data__text")).values("text")[:1]
            ),
            last_capsule_id=Subquery(latest.filter(capsule__isnull=False).values("capsule_id")[:1]),
        )
        .values_list("pk", "last_question", "last_capsule_id")
    )
    capsule_of: dict[int, int] = {}
    for prospect_id, question, capsule_id in last_items:
        snapshots[prospect_id]["last_question"] = question
        if capsule_id is not None:
            capsule_of[prospect_id] = capsule_id

    # 3. The titles and links of those capsules.
    if capsule_of:
        capsules = {
            pk: (title or external_id, url or None)
            for pk, title, external_id, url in Capsule.objects.filter(pk__in=set(capsule_of.values())).values_list(
                "pk", "title", "external_id", "url"
            )
        }
        for prospect_id, capsule_id in capsule_of.items():
            snapshots[prospect_id]["last_capsule"], snapshots[prospect_id]["last_capsule_url"] = capsules[capsule_id]

    # 4. The distinct content each prospect opened, by title (its id when untitled), sorted so
    # the payload (and its hash) does not change with the order events arrived in.
    opened: dict[int, set[str]] = defaultdict(set)
    content_rows = (
        events.filter(type=EventType.CONTENT_ACCESSED)
        .annotate(title=KT("data__content_title"), content=KT("data__content_id"))
        .values_list("prospect_id", "title", "content")
        .distinct()
    )
    for prospect_id, title, content in content_rows:
        opened[prospect_id].add(title or content)
    for prospect_id, names in opened.items():
        snapshots[prospect_id]["content_accessed"] = sorted(name for name in names if name)

    return snapshots


def register() -> None:
    register_source_group(GROUP, FIELDS, load, label="Engagement")
