"""The periodic check of ``low_engagement`` rules (crmsync/cron.py runs it every hour).

For each enabled rule: the account's prospects whose first capsule view is ``days`` old and whose
lead score is still below ``max_score``, that the rule has not fired for. Each fires once per
prospect (key ``rule:<id>:prospect:<id>``), so two schedulers at once, or a run repeated after a
crash, fire nothing twice. A rule only looks at prospects whose ``days`` ran out after it was
created: switching one on does not flood the CRM with every old prospect.
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.db import transaction
from django.db.models import Exists, Min, OuterRef, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from crmsync.models import Prospect
from scoring.models_triggers import TriggerFiring, TriggerRule
from scoring.triggers.conditions import ConditionType
from scoring.triggers.evaluate import Firing, low_engagement_due, low_engagement_window, prospect_key
from scoring.triggers.firing import record_firings

log = logging.getLogger(__name__)

# Prospects per transaction: bounded work per commit, so a big account does not hold one long transaction.
CHUNK = 200


def evaluate_low_engagement(now: datetime | None = None) -> int:
    """Fire every due ``low_engagement`` rule; return how many firings were recorded."""
    now = now or timezone.now()
    fired = 0
    rules = TriggerRule.objects.filter(enabled=True, condition_type=ConditionType.LOW_ENGAGEMENT).select_related(
        "account"
    )
    for rule in rules.order_by("pk"):
        fired += _evaluate_rule(rule, now)
    if fired:
        log.info("low engagement: %d firing(s)", fired)
    return fired


def _candidates(rule: TriggerRule, now: datetime) -> list[tuple[int, datetime, int]]:
    earliest, latest = low_engagement_window(rule.condition_options, now, rule.created_at)
    rows = (
        Prospect.objects.filter(account_id=rule.account_id, erased=False, email__isnull=False)
        .annotate(first_view=Min("events__occurred_at", filter=Q(events__type="capsule_viewed")))
        .filter(first_view__gte=earliest, first_view__lte=latest)
        .annotate(current_score=Coalesce("score__score", 0))
        .filter(current_score__lt=rule.condition_options["max_score"])
        .exclude(Exists(TriggerFiring.objects.filter(rule=rule, prospect=OuterRef("pk"))))
        .order_by("pk")
        .values_list("pk", "first_view", "current_score")
    )
    return list(rows)


def _evaluate_rule(rule: TriggerRule, now: datetime) -> int:
    due = [
        prospect_id
        for prospect_id, first_view, score in _candidates(rule, now)
        if low_engagement_due(
            rule.condition_options, first_view_at=first_view, score=score, now=now, rule_created_at=rule.created_at
        )
    ]
    fired = 0
    for start in range(0, len(due), CHUNK):
        chunk = due[start : start + CHUNK]
        with transaction.atomic():
            # Locked, and read again: a rule switched off or deleted since the query fires no more.
            current = TriggerRule.objects.select_for_update().filter(pk=rule.pk, enabled=True).first()
            if current is None or current.condition_options != rule.condition_options:
                break
            planned = [Firing(rule.pk, prospect_id, None, prospect_key(rule.pk, prospect_id)) for prospect_id in chunk]
            fired += len(record_firings(rule.account, planned, {rule.pk: current}, now=now))
    return fired
