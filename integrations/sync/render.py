"""What each capsule event looks like in a CRM: activity subject and body, note text, deal.

Connectors get plain inputs (integrations.connector); the wording lives here, once, for all CRMs.
The idempotency key of each item is our event's id, stable across retries and replays.
"""

from __future__ import annotations

import datetime as dt

from crmsync.models import Event, Prospect
from integrations.connector import ActivityInput, DealInput, NoteInput


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
