"""What each capsule event looks like in a CRM: activity subject and body, note text, deal.

Connectors get plain inputs (integrations.connector); the wording lives here, once, for all CRMs.
The idempotency key of each item is our event's id, stable across retries and replays.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from crmsync.models import Event, Prospect
from integrations.connector import ActivityInput, DealInput, NoteInput, TaskInput
from integrations.models import OutboxItem, OutboxKind


def event_key(event: Event) -> str:
    return f"capsule-evt-{event.pk}"


def _capsule(event: Event) -> str:
    if event.capsule is not None:
        return event.capsule.title or event.capsule.external_id
    return "a capsule"


def _capsule_link(event: Event) -> str:
    return f"\nCapsule: {event.capsule.url}" if event.capsule is not None and event.capsule.url else ""


def activity_text(event: Event) -> tuple[str, str]:
    data = event.data or {}
    capsule = _capsule(event)
    content = data.get("content_title") or data.get("content_id") or "content"
    subjects = {
        "capsule_viewed": f"Viewed capsule “{capsule}”",
        "content_accessed": f"Opened “{content}” in “{capsule}”",
        "content_downloaded": f"Downloaded “{content}” from “{capsule}”",
        "cta_clicked": f"Clicked “{data.get('label') or data.get('cta_id') or 'call to action'}” in “{capsule}”",
        "capsule_completed": f"Completed capsule “{capsule}”",
    }
    subject = subjects.get(event.type, f"{event.get_type_display()} in “{capsule}”")
    lines = [subject, f"When: {event.occurred_at:%Y-%m-%d %H:%M} UTC"]
    if data.get("content_url"):
        lines.append(f"Content: {data['content_url']}")
    if data.get("url"):
        lines.append(f"Link: {data['url']}")
    return subject[:255], "\n".join(lines) + _capsule_link(event)


def activity_input(event: Event, person_crm_id: str, person_kind: str) -> ActivityInput:
    subject, body = activity_text(event)
    return ActivityInput(
        key=event_key(event),
        person_crm_id=person_crm_id,
        person_kind=person_kind,
        kind=event.type,
        subject=subject,
        body=body,
        occurred_at=event.occurred_at,
    )


def note_input(event: Event, person_crm_id: str, person_kind: str) -> NoteInput:
    data = event.data or {}
    body = f"Question asked in “{_capsule(event)}”:\n{data.get('text', '')}"
    if data.get("answer_summary"):
        body += f"\n\nConversation summary:\n{data['answer_summary']}"
    return NoteInput(
        key=event_key(event),
        person_crm_id=person_crm_id,
        person_kind=person_kind,
        body=body + _capsule_link(event),
        occurred_at=event.occurred_at,
    )


def deal_input(event: Event, prospect: Prospect, person_crm_id: str, person_kind: str) -> DealInput:
    data = event.data or {}
    who = prospect.company or prospect.full_name or prospect.email or "prospect"
    name = data.get("name") or f"{_capsule(event)} — {who}"
    value = data.get("value")
    return DealInput(
        key=event_key(event),
        person_crm_id=person_crm_id,
        person_kind=person_kind,
        name=str(name)[:120],
        amount=float(value) if value is not None else None,
        currency=data.get("currency"),
        close_date=(event.occurred_at or dt.datetime.now(dt.UTC)).date(),
    )


# Which connector call each kind of engagement work goes through.
GROUP_OF_KIND = {
    OutboxKind.ACTIVITY: "activity",
    OutboxKind.NOTE: "note",
    OutboxKind.DEAL: "deal",
    OutboxKind.TASK: "task",
}


def work_input(item: OutboxItem, event: Event | None, prospect: Prospect, person_crm_id: str, person_kind: str):
    """The connector input for one outbox row: rendered from its event, or from the payload a
    workflow trigger wrote (task, note, fields). The key is the row's dedupe key, so a retry of
    the same firing writes the same CRM object."""
    payload = item.payload or {}
    if item.kind == OutboxKind.ACTIVITY and event is not None:
        return activity_input(event, person_crm_id, person_kind)
    if item.kind == OutboxKind.NOTE and event is not None and "body" not in payload:
        return note_input(event, person_crm_id, person_kind)
    if item.kind == OutboxKind.DEAL and event is not None:
        return deal_input(event, prospect, person_crm_id, person_kind)
    if item.kind == OutboxKind.NOTE:
        return NoteInput(
            key=item.dedupe_key,
            person_crm_id=person_crm_id,
            person_kind=person_kind,
            body=str(payload["body"]),
            occurred_at=item.created_at,
        )
    if item.kind == OutboxKind.TASK:
        due = payload.get("due_at")
        return TaskInput(
            key=item.dedupe_key,
            person_crm_id=person_crm_id,
            person_kind=person_kind,
            subject=str(payload["subject"])[:255],
            body=str(payload.get("body", "")),
            due_at=dt.datetime.fromisoformat(due) if due else item.created_at,
            owner_id=payload.get("owner_id") or None,
        )
    if item.kind == OutboxKind.FIELDS:
        return field_work(payload)
    raise ValueError(f"{item.kind} work needs an event or a payload")


class UnsupportedWork(Exception):
    """The CRM cannot do this kind of work (e.g. lists, owner assignment): a permanent failure."""


@dataclass(frozen=True)
class FieldWork:
    """What a FIELDS row asks for: fields to set, an owner to assign, or a list to join."""

    fields: dict
    owner_id: str | None = None
    list_id: str | None = None


def field_work(payload: dict) -> FieldWork:
    if "fields" in payload:
        fields = payload["fields"]
        if not isinstance(fields, dict) or not fields:
            raise ValueError("fields must be a non-empty object")
        return FieldWork(fields=dict(fields))
    if payload.get("owner_id"):
        return FieldWork(fields={}, owner_id=str(payload["owner_id"]))
    if payload.get("list_id"):
        return FieldWork(fields={}, list_id=str(payload["list_id"]))
    raise ValueError("a fields row needs fields, owner_id or list_id")
