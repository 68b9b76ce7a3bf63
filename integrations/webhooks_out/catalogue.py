"""The catalogue of outgoing webhook events: what each one means and what its payload looks like.

This is data, used by the documentation (docs/WEBHOOKS.md), the subscribe form's checkboxes, the
REST Hooks API (unknown names are refused; ``GET /api/v1/hooks/samples/<event>`` falls back to
the sample here) and the tests. Each ``sample`` is the ``data`` object of a message; the body a
receiver gets wraps it in the Standard Webhooks envelope ``{"type", "timestamp", "data"}``
(https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md#payload-structure).

Event names are ``<group>.<what happened>`` in the past tense, as the spec recommends. Adding an
event means adding an entry here and calling ``emit`` where it happens; renaming one breaks
every subscription that names it, so names are never changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ALL_EVENTS = "*"


@dataclass(frozen=True)
class EventSpec:
    """One catalogue entry: the event's name, its group (for forms and docs), and a sample ``data``."""

    name: str
    group: str
    description: str
    sample: dict[str, Any]
    emitted_by: str  # which part of the service calls emit() for it, for the docs


_PROSPECT = {
    "id": 1042,
    "email": "ann.lee@example.com",
    "first_name": "Ann",
    "last_name": "Lee",
    "full_name": "Ann Lee",
    "company": "Northwind",
    "job_title": "CTO",
}
_CAPSULE = {"id": "cap_42", "title": "Pricing tour", "url": "https://capsules.example.com/c/42"}


def _capsule_event(event_id: str, capsule_type: str, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "event_type": capsule_type,
        "occurred_at": "2025-01-31T14:05:00Z",
        "capsule": _CAPSULE,
        "prospect": _PROSPECT,
        "visitor_id": "vis_7f3a",
        "data": data,
    }


_INGEST = "the events API, for every capsule event stored (replays are not sent again)"

EVENTS: tuple[EventSpec, ...] = (
    EventSpec(
        "capsule.viewed",
        "Capsule engagement",
        "A prospect (or an anonymous visitor) opened a capsule.",
        _capsule_event("evt_01J9Z6Q1", "capsule_viewed", {}),
        _INGEST,
    ),
    EventSpec(
        "question.asked",
        "Capsule engagement",
        "A prospect asked the capsule a question.",
        _capsule_event(
            "evt_01J9Z6Q3",
            "question_asked",
            {"text": "Do you offer SSO?", "answer_summary": "Yes, SAML and OIDC on Enterprise."},
        ),
        _INGEST,
    ),
    EventSpec(
        "content.accessed",
        "Capsule engagement",
        "A prospect opened a piece of content inside a capsule.",
        _capsule_event(
            "evt_01J9Z6Q4",
            "content_accessed",
            {"content_id": "case-study-7", "content_title": "Northwind case study"},
        ),
        _INGEST,
    ),
    EventSpec(
        "content.downloaded",
        "Capsule engagement",
        "A prospect downloaded a piece of content.",
        _capsule_event(
            "evt_01J9Z6Q5",
            "content_downloaded",
            {
                "content_id": "whitepaper-2025",
                "content_title": "2025 buyer's guide",
                "content_url": "https://cdn.example.com/guide.pdf",
            },
        ),
        _INGEST,
    ),
    EventSpec(
        "cta.clicked",
        "Capsule engagement",
        "A prospect clicked a call to action.",
        _capsule_event(
            "evt_01J9Z6Q6",
            "cta_clicked",
            {"cta_id": "book-demo", "label": "Book a demo", "url": "https://example.com/demo"},
        ),
        _INGEST,
    ),
    EventSpec(
        "capsule.completed",
        "Capsule engagement",
        "A prospect reached the end of a capsule.",
        _capsule_event("evt_01J9Z6Q7", "capsule_completed", {}),
        _INGEST,
    ),
    EventSpec(
        "conversion.created",
        "Capsule engagement",
        "A prospect converted (a trial, a purchase, a booked meeting…), with its value.",
        _capsule_event("evt_01J9Z6Q8", "conversion", {"value": 4800, "currency": "EUR", "name": "Enterprise trial"}),
        _INGEST,
    ),
    EventSpec(
        "lead.captured",
        "Capsule engagement",
        "A capsule form identified a visitor: the prospect's e-mail address and the form's answers.",
        _capsule_event("evt_01J9Z6Q9", "lead_captured", {"form": {"role": "CTO", "team_size": "40"}}),
        _INGEST,
    ),
    EventSpec(
        "sentiment.negative",
        "Capsule engagement",
        "The capsule judged a prospect's conversation negative (label “negative”).",
        _capsule_event("evt_01J9Z6QA", "sentiment", {"score": -0.72, "label": "negative"}),
        _INGEST + "; only sentiment events labelled negative",
    ),
    EventSpec(
        "lead.score_changed",
        "Lead scoring",
        "A prospect's lead score changed.",
        {
            "prospect": _PROSPECT,
            "score": 65,
            "previous_score": 35,
            "grade": "warm",
            "top_contributors": "CTA clicked 30, Question asked 20, Capsule view 15",
        },
        "lead scoring, when a prospect's score is recomputed and differs",
    ),
    EventSpec(
        "lead.grade_changed",
        "Lead scoring",
        "A prospect crossed a grade band (e.g. cold → warm), in either direction.",
        {
            "prospect": _PROSPECT,
            "previous_grade": "cold",
            "grade": "warm",
            "score": 45,
            "reason": "ingest",
            "changed_at": "2025-01-31T14:06:00Z",
        },
        "lead scoring, once per crossing (new events, or changed rules and bands)",
    ),
    EventSpec(
        "lead.hot",
        "Lead scoring",
        "A prospect entered the account's highest grade band (“hot” by default).",
        {
            "prospect": _PROSPECT,
            "previous_grade": "warm",
            "grade": "hot",
            "score": 85,
            "reason": "ingest",
            "changed_at": "2025-01-31T14:09:00Z",
        },
        "lead scoring, once per entry into the highest band",
    ),
    EventSpec(
        "trigger.fired",
        "Workflow triggers",
        "A workflow trigger rule fired (its “send an outgoing webhook” action).",
        {
            "rule": {"id": 14, "name": "Hot lead", "condition": "grade_crossed"},
            "firing": {"id": 812, "key": "rule:14:grade-change:3301", "fired_at": "2025-01-31T14:05:02+00:00"},
            "prospect": {**_PROSPECT, "score": 95, "grade": "hot"},
            "event": {
                "event_id": "evt_01J9Z6Q8",
                "event_type": "cta_clicked",
                "occurred_at": "2025-01-31T14:05:00+00:00",
                "capsule": {"id": "cap_42", "title": "Pricing tour", "url": "https://capsules.example.com/c/42"},
            },
        },
        "workflow triggers (scoring/triggers), once per firing",
    ),
    EventSpec(
        "crm.contact.updated",
        "CRM changes",
        "Fields of a prospect's CRM record changed in the CRM (fields mapped “from CRM” or “both”).",
        {
            "prospect": _PROSPECT,
            "crm": {"provider": "hubspot", "object_type": "contact", "id": "51"},
            "changed_fields": {"lifecyclestage": {"from": "lead", "to": "opportunity"}},
            "changed_at": "2025-01-31T15:00:00Z",
        },
        "the inbound CRM sync (CRM webhooks and polling)",
    ),
    EventSpec(
        "crm.deal.stage_changed",
        "CRM changes",
        "A deal of a prospect moved to another stage in the CRM.",
        {
            "prospect": _PROSPECT,
            "crm": {"provider": "hubspot", "object_type": "deal", "id": "9007"},
            "deal": {"name": "Northwind – Enterprise", "amount": 48000, "currency": "EUR"},
            "previous_stage": "qualifiedtobuy",
            "stage": "contractsent",
            "changed_at": "2025-01-31T15:02:00Z",
        },
        "the inbound CRM sync (CRM webhooks and polling)",
    ),
    EventSpec(
        "sync.failed",
        "Sync health",
        "A record could not be written to the CRM and needs a person (a permanent error, or retries exhausted).",
        {
            "connection": {"id": 7, "provider": "hubspot"},
            "prospect": {"id": 1042},
            "kind": "person",
            "error": "Property values were not valid: lifecyclestage",
            "error_kind": "record",
            "attempts": 1,
            "failed_at": "2025-01-31T15:10:00Z",
        },
        "the sync engine, when an outbox row becomes failed",
    ),
)

CATALOGUE: dict[str, EventSpec] = {spec.name: spec for spec in EVENTS}


def is_known(name: str) -> bool:
    return name in CATALOGUE


def grouped_choices() -> list[tuple[str, list[tuple[str, str]]]]:
    """Form choices grouped as the docs group them: ``[(group, [(name, label), …]), …]``."""
    groups: dict[str, list[tuple[str, str]]] = {}
    for spec in EVENTS:
        groups.setdefault(spec.group, []).append((spec.name, f"{spec.name} — {spec.description}"))
    return list(groups.items())


def sample_message(name: str) -> dict[str, Any]:
    """The catalogue's sample as a whole message body, as a receiver would get it. Its ``timestamp`` is
    when the event happened, as in real messages."""
    sample = CATALOGUE[name].sample
    when = next((sample[key] for key in ("occurred_at", "changed_at", "failed_at") if key in sample), None)
    return {"type": name, "timestamp": when or "2025-01-31T14:05:00Z", "data": sample}
