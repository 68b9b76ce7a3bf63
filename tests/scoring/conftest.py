"""Helpers of the scoring tests: events through the real ingest, listeners that record calls."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone

from crmsync.api.schemas import validate_event
from crmsync.ingest import ingest_events
from crmsync.models import Account
from scoring.signals import on_grade_changed, remove_grade_listener

_event_ids = itertools.count(1)

DEFAULT_DATA: dict[str, dict[str, Any]] = {
    "question_asked": {"text": "How much is it?"},
    "time_spent": {"seconds": 60},
    "content_accessed": {"content_id": "c1"},
    "content_downloaded": {"content_id": "c1"},
    "cta_clicked": {"cta_id": "book-demo"},
    "conversion": {"value": 100, "currency": "EUR"},
    "sentiment": {"score": -0.8, "label": "negative"},
    "lead_captured": {"form": {"role": "CTO"}},
}


def event(type_: str, email: str | None = "ann@example.com", *, at: datetime | None = None, **data: Any) -> dict:
    """One event payload as the capsule platform sends it."""
    payload: dict[str, Any] = {
        "event_id": f"evt-{next(_event_ids)}",
        "type": type_,
        "occurred_at": (at or timezone.now() - timedelta(minutes=1)).isoformat(),
        "capsule": {"id": "cap-1"},
        "data": data or DEFAULT_DATA.get(type_, {}),
    }
    if email is not None:
        payload["prospect"] = {"email": email}
    return payload


@pytest.fixture
def ingest():
    def send(account: Account, *payloads: dict):
        return ingest_events(account, [validate_event(payload) for payload in payloads], actor_label="test")

    return send


@pytest.fixture
def grade_calls():
    """Every (prospect_id, old, new) reported to scoring.signals listeners during the test."""
    calls: list[tuple[int, str, str]] = []

    def listener(prospect_id: int, old: str, new: str) -> None:
        calls.append((prospect_id, old, new))

    on_grade_changed(listener)
    yield calls
    remove_grade_listener(listener)
