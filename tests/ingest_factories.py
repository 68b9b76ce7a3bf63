"""Event payloads for the ingestion tests, as the capsule platform sends them (JSON-ready dicts)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from crmsync.api.schemas import ValidatedEvent, validate_event

_ids = itertools.count(1)
BASE_TIME = datetime(2025, 1, 31, 14, 0, tzinfo=UTC)

# A valid data object for every event type.
DATA = {
    "capsule_viewed": {},
    "question_asked": {"text": "Do you offer SSO?"},
    "time_spent": {"seconds": 120},
    "content_accessed": {"content_id": "doc-1", "content_title": "Whitepaper"},
    "content_downloaded": {"content_id": "doc-1"},
    "cta_clicked": {"cta_id": "book-demo", "label": "Book a demo"},
    "conversion": {"value": 4800, "currency": "EUR"},
    "sentiment": {"score": -0.4, "label": "negative"},
    "capsule_completed": {},
    "lead_captured": {"form": {"role": "CTO"}},
}

_UNSET: Any = object()


def event(
    type: str = "capsule_viewed",
    *,
    event_id: str | None = None,
    email: str | None = _UNSET,
    visitor_id: str | None = None,
    minutes: float = 0,
    prospect: dict[str, Any] | None = None,
    capsule: dict[str, Any] | None = _UNSET,
    data: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """One valid event; ``minutes`` after BASE_TIME. ``email=None`` leaves the prospect out."""
    body: dict[str, Any] = {
        "event_id": event_id or f"evt-{next(_ids)}",
        "type": type,
        "occurred_at": (BASE_TIME + timedelta(minutes=minutes)).isoformat(),
        "data": DATA[type] if data is None else data,
    }
    body["capsule"] = {"id": "cap-1", "title": "Pricing tour"} if capsule is _UNSET else capsule
    if body["capsule"] is None:
        del body["capsule"]
    prospect = dict(prospect or {})
    if email is _UNSET:
        email = "ann@example.com"
    if email is not None:
        prospect["email"] = email
    if prospect:
        body["prospect"] = prospect
    if visitor_id is not None:
        body["visitor_id"] = visitor_id
    body.update(extra)
    return body


def validated(*payloads: dict[str, Any]) -> list[ValidatedEvent]:
    return [validate_event(payload) for payload in payloads]
