"""Where outgoing webhook events come from inside this service: stored capsule events and grade changes.

``install()`` is called once from ``IntegrationsConfig.ready()``; calling it again changes
nothing (both registries ignore a listener they already have).

- The ingest hook runs inside the ingest transaction (crmsync.ingest): each capsule event it
  stored becomes its catalogue event, keyed by our event id, so a replayed request (whose events
  are duplicates and not passed to hooks) or a retried ingest sends nothing twice.
- The grade listener runs inside the transaction that wrote the score (scoring.signals): every
  crossing is ``lead.grade_changed``, and entering the account's highest band is also
  ``lead.hot``, keyed by the ``GradeChange`` row.

Other events are emitted where they happen, by their owners, through ``emit``:
``lead.score_changed`` (scoring), ``crm.contact.updated`` and ``crm.deal.stage_changed``
(inbound CRM sync), ``sync.failed`` (the sync engine).
"""

from __future__ import annotations

from crmsync.models import Account, Capsule, Event, EventType, Prospect
from integrations.models import WebhookSubscription
from integrations.webhooks_out.emit import Message, emit_many
from integrations.webhooks_out.payloads import capsule_event_data, prospect_data

# Capsule event type -> catalogue event. time_spent is a running total the platform reports many
# times per visit; it reaches receivers through lead.score_changed and the scores, not one by one.
CAPSULE_EVENTS: dict[str, str] = {
    EventType.CAPSULE_VIEWED: "capsule.viewed",
    EventType.QUESTION_ASKED: "question.asked",
    EventType.CONTENT_ACCESSED: "content.accessed",
    EventType.CONTENT_DOWNLOADED: "content.downloaded",
    EventType.CTA_CLICKED: "cta.clicked",
    EventType.CAPSULE_COMPLETED: "capsule.completed",
    EventType.CONVERSION: "conversion.created",
    EventType.LEAD_CAPTURED: "lead.captured",
}


def webhook_event_for(event: Event) -> str | None:
    """The catalogue event a stored capsule event becomes, or None when it sends nothing."""
    if event.type == EventType.SENTIMENT:
        return "sentiment.negative" if (event.data or {}).get("label") == "negative" else None
    return CAPSULE_EVENTS.get(event.type)


def emit_capsule_events(account: Account, created_events: list[Event], prospects: dict[int, Prospect]) -> None:
    """Ingest hook: one message per stored capsule event that maps to a catalogue event."""
    wanted = [(event, name) for event in created_events if (name := webhook_event_for(event))]
    if not wanted or not WebhookSubscription.objects.filter(account=account, active=True).exists():
        return
    capsule_ids = {event.capsule_id for event, _name in wanted if event.capsule_id}
    capsules = {capsule.pk: capsule for capsule in Capsule.objects.filter(pk__in=capsule_ids)}
    # Events stitched onto a prospect are in ``prospects``; an anonymous event has none.
    missing = {event.prospect_id for event, _name in wanted if event.prospect_id and event.prospect_id not in prospects}
    people = {**prospects, **Prospect.objects.in_bulk(missing)} if missing else prospects
    messages = [
        Message(
            name,
            capsule_event_data(account, event, capsules.get(event.capsule_id), people.get(event.prospect_id)),
            idempotency_key=f"event:{event.pk}",
            occurred_at=event.occurred_at,
        )
        for event, name in wanted
    ]
    emit_many(account, messages)


def emit_grade_change(prospect_id: int, old: str, new: str) -> None:
    """Grade listener: ``lead.grade_changed`` for every crossing, ``lead.hot`` on entering the top band."""
    from scoring.models import GradeBand, GradeChange

    prospect = Prospect.objects.select_related("account").get(pk=prospect_id)
    account = prospect.account
    if not WebhookSubscription.objects.filter(account=account, active=True).exists():
        return
    # Written just before the listeners are called, in this transaction: the newest is this one.
    change = GradeChange.objects.filter(prospect_id=prospect_id, to_grade=new).order_by("-id").first()
    if change is None:
        return
    data = {
        "prospect": prospect_data(account, prospect),
        "previous_grade": old or None,
        "grade": new,
        "score": change.score,
        "reason": change.reason,
        "changed_at": change.at,
    }
    messages = [Message("lead.grade_changed", data, f"grade-change:{change.pk}", change.at)]
    top = GradeBand.objects.filter(account=account).order_by("-min_score").values_list("name", flat=True).first()
    if new == top and old != top:
        messages.append(Message("lead.hot", data, f"lead-hot:{change.pk}", change.at))
    emit_many(account, messages)


def emit_grade_changes(account_id: int, changes: list[tuple[int, str, str]]) -> None:
    """``emit_grade_change`` for a scoring pass's crossings: one query when nobody subscribed."""
    if not WebhookSubscription.objects.filter(account_id=account_id, active=True).exists():
        return
    for prospect_id, old, new in changes:
        emit_grade_change(prospect_id, old, new)


emit_grade_change.for_many = emit_grade_changes  # type: ignore[attr-defined]  # see scoring.signals


def emit_score_changes(account_id: int, changes: list) -> None:
    """Score listener: ``lead.score_changed`` for each prospect whose score changed (one pass)."""
    from crmsync.models import Account

    if not WebhookSubscription.objects.filter(account_id=account_id, active=True).exists():
        return
    account = Account.objects.get(pk=account_id)
    prospects = Prospect.objects.in_bulk([change.prospect_id for change in changes])
    messages = []
    for change in changes:
        prospect = prospects.get(change.prospect_id)
        if prospect is None:
            continue
        prospect.account = account
        data = {
            "prospect": prospect_data(account, prospect),
            "score": change.score,
            "previous_score": change.previous_score,
            "grade": change.grade,
            "top_contributors": change.top_contributors,
        }
        key = f"score:{change.prospect_id}:{change.computed_at.isoformat()}:{change.score}"
        messages.append(Message("lead.score_changed", data, key, change.computed_at))
    emit_many(account, messages)


def install() -> None:
    """Register the ingest hook and the grade and score listeners (idempotent)."""
    from crmsync.ingest import register_ingest_hook
    from scoring.signals import on_grade_changed, on_score_changed

    register_ingest_hook(emit_capsule_events)
    on_grade_changed(emit_grade_change)
    on_score_changed(emit_score_changes)
