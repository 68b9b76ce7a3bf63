"""Helpers of the trigger tests: rules, CRM connections and events through the real ingest."""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from crmsync.api.schemas import validate_event
from crmsync.ingest import ingest_events
from crmsync.models import Account
from integrations.models import Connection, OutboxItem, SyncMode
from scoring.models_triggers import TriggerFiring, TriggerRule
from tests.scoring.conftest import DEFAULT_DATA

NOTE = [{"type": "add_note", "body": "Rule fired for {{ email }}"}]


@pytest.fixture
def ingest():
    def send(account: Account, *payloads: dict):
        return ingest_events(account, [validate_event(payload) for payload in payloads], actor_label="test")

    return send


@pytest.fixture
def make_rule():
    def make(
        account: Account,
        condition_type: str,
        options: dict[str, Any] | None = None,
        actions: list[dict[str, Any]] | None = None,
        **fields: Any,
    ) -> TriggerRule:
        rule = TriggerRule(
            account=account,
            name=fields.pop("name", f"{condition_type} rule"),
            condition_type=condition_type,
            condition_options=options or {},
            actions=actions if actions is not None else NOTE,
            **fields,
        )
        rule.full_clean()  # the stored shape is the validated one, exactly as the forms save it
        rule.save()
        return rule

    return make


@pytest.fixture
def make_connection(db):
    def make(account: Account, *, sync_mode: str = SyncMode.MANUAL, provider: str = "hubspot") -> Connection:
        # Manual mode by default: no kick job after commit, so tests look only at the outbox rows.
        return Connection.objects.create(
            account=account, provider=provider, access_token="x", activated_at=timezone.now(), sync_mode=sync_mode
        )

    return make


@pytest.fixture
def crm(account, make_connection) -> Connection:
    return make_connection(account)


def firings(rule: TriggerRule) -> list[TriggerFiring]:
    return list(TriggerFiring.objects.filter(rule=rule).order_by("pk"))


def trigger_rows(connection: Connection) -> list[OutboxItem]:
    return list(OutboxItem.objects.filter(connection=connection, dedupe_key__startswith="trigger:").order_by("pk"))


_ids = itertools.count(1)


def evt(
    type_: str,
    email: str | None = "ann@example.com",
    *,
    capsule: str | None = "cap-1",
    visitor: str | None = None,
    at=None,
    **data: Any,
) -> dict:
    """One event payload as the capsule platform sends it (see tests.scoring.conftest.DEFAULT_DATA)."""
    payload: dict[str, Any] = {
        "event_id": f"trg-{next(_ids)}",
        "type": type_,
        "occurred_at": (at or timezone.now() - timedelta(minutes=1)).isoformat(),
        "data": data or DEFAULT_DATA.get(type_, {}),
    }
    if capsule is not None:
        payload["capsule"] = {"id": capsule, "title": f"Capsule {capsule}"}
    if email is not None:
        payload["prospect"] = {"email": email, "first_name": "Ann", "last_name": "Lee", "company": "Acme"}
    if visitor is not None:
        payload["visitor_id"] = visitor
    return payload
