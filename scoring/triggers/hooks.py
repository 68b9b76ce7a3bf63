"""Where trigger evaluation plugs in: the ingest hook (event conditions) and the grade listener.

``install()`` is called from ``ScoringConfig.ready()`` right after scoring registers its own
ingest hook, so that by the time ``fire_for_ingest`` runs the prospects' scores and grades
include the events of this ingest. Both registrations ignore a second call.
"""

from __future__ import annotations

from crmsync import navigation
from crmsync.ingest import register_ingest_hook
from crmsync.models import Account, Capsule, Event, Prospect
from scoring.models import GradeBand, GradeChange
from scoring.models_triggers import TriggerRule
from scoring.signals import on_grade_changed
from scoring.triggers.conditions import EVENT_CONDITIONS, ConditionType
from scoring.triggers.evaluate import (
    Aggregates,
    EventFacts,
    Firing,
    GradeCrossing,
    RuleSpec,
    firings_for_event,
    firings_for_grade_change,
)
from scoring.triggers.facts import load_aggregates
from scoring.triggers.firing import record_firings


def install() -> None:
    """Register the ingest hook, the grade listener and the "Workflow triggers" page (idempotent)."""
    register_ingest_hook(fire_for_ingest)
    on_grade_changed(fire_for_grade_change)
    navigation.register("Workflow triggers", "triggers:rules", order=35)


def spec_of(rule: TriggerRule) -> RuleSpec:
    return RuleSpec(rule.pk, rule.condition_type, rule.condition_options or {}, rule.once_per_prospect)


def fire_for_ingest(account: Account, created_events: list[Event], prospects: dict[int, Prospect]) -> None:
    """Ingest hook: evaluate the account's enabled event rules against every new event of a known
    prospect, and record what fires. Anonymous events fire nothing: there is no one to act on (their
    time and points still count once the visitor is identified)."""
    events = [event for event in created_events if event.prospect_id is not None]
    if not events:
        return
    rules = {
        rule.pk: rule
        for rule in TriggerRule.objects.filter(
            account=account, enabled=True, condition_type__in=EVENT_CONDITIONS
        ).order_by("pk")
    }
    if not rules:
        return
    specs = [spec_of(rule) for rule in rules.values()]
    aggregates = load_aggregates(account.pk, events, specs)
    capsule_refs = _capsule_refs(events)
    planned: list[Firing] = []
    for event in events:
        facts = EventFacts(
            id=event.pk,
            prospect_id=event.prospect_id,
            type=event.type,
            capsule_id=event.capsule_id,
            capsule_ref=capsule_refs.get(event.capsule_id) if event.capsule_id else None,
            data=event.data if isinstance(event.data, dict) else {},
        )
        planned += firings_for_event(specs, facts, aggregates.get(event.pk, Aggregates()))
    if planned:
        record_firings(account, planned, rules, prospects=prospects, events={event.pk: event for event in events})


def _capsule_refs(events: list[Event]) -> dict[int, str]:
    ids = {event.capsule_id for event in events if event.capsule_id}
    return dict(Capsule.objects.filter(pk__in=ids).values_list("pk", "external_id")) if ids else {}


def fire_for_grade_change(prospect_id: int, old: str, new: str) -> None:
    """Grade listener: ``grade_crossed`` rules, inside the transaction that stored the new grade."""
    # One query when the account has no such rule, which is the common case in a big recompute.
    rules = {
        rule.pk: rule
        for rule in TriggerRule.objects.filter(
            account__prospects=prospect_id, enabled=True, condition_type=ConditionType.GRADE_CROSSED
        ).order_by("pk")
    }
    if not rules:
        return
    prospect = Prospect.objects.select_related("account").get(pk=prospect_id)
    # scoring.service wrote this change's row just before telling us; it is the prospect's latest.
    change = (
        GradeChange.objects.filter(prospect_id=prospect_id, from_grade=old, to_grade=new)
        .order_by("-id")
        .values_list("pk", "reason")
        .first()
    )
    if change is None:
        return
    crossing = GradeCrossing(
        change_id=change[0],
        prospect_id=prospect_id,
        old=old,
        new=new,
        by_recompute=change[1] == GradeChange.Reason.RECOMPUTE,
    )
    minimums = dict(GradeBand.objects.filter(account_id=prospect.account_id).values_list("name", "min_score"))
    planned = firings_for_grade_change([spec_of(rule) for rule in rules.values()], crossing, minimums)
    if planned:
        record_firings(prospect.account, planned, rules, prospects={prospect.pk: prospect})


def fire_for_grade_changes(account_id: int, changes: list[tuple[int, str, str]]) -> None:
    """``fire_for_grade_change`` for a scoring pass's crossings: one query when the account has no such rule."""
    rules = TriggerRule.objects.filter(account_id=account_id, enabled=True, condition_type=ConditionType.GRADE_CROSSED)
    if not rules.exists():
        return
    for prospect_id, old, new in changes:
        fire_for_grade_change(prospect_id, old, new)


fire_for_grade_change.for_many = fire_for_grade_changes  # type: ignore[attr-defined]  # see scoring.signals
