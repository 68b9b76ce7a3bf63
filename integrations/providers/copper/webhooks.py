"""Copper webhooks: subscriptions, authenticity and parsing (crm-reference §6.7).

Copper signs nothing. A subscription carries ``secret`` key/values, echoed as top-level keys of
every notification body, and custom ``headers``, sent with every notification. We register one
per-connection secret both ways — ``capsule_secret`` in the body, ``X-Capsule-Webhook-Secret`` as
a header — and accept a delivery when either holds it (compared in constant time).

A notification names ``type`` (person, lead, opportunity…), ``event`` (new, update, delete) and
up to 30 ``ids``, with ``updated_attributes`` on updates; it carries no event id and no time.
Inbound sync reads each record afresh (``find_by_id``), so the parsed changes carry no values.
The event id is built from the subscription, the record id and a digest of the body: the same
delivery replayed is a duplicate, a later change is new. Unknown types and events are skipped.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

from integrations.connector import CONTACT, DEAL, LEAD, InboundChange

SECRET_KEY = "capsule_secret"
SECRET_HEADER = "X-Capsule-Webhook-Secret"
ENTITY_KINDS = {"person": CONTACT, "lead": LEAD, "opportunity": DEAL}
CHANGES = {"new": "created", "update": "updated", "delete": "deleted"}
EVENTS = tuple(CHANGES)


def _same(candidate: Any, secret: str) -> bool:
    return isinstance(candidate, str) and hmac.compare_digest(candidate.encode(), secret.encode())


def verify(headers: Mapping[str, str], body: bytes, secret: str) -> bool:
    if not secret:
        return False
    lowered = {str(k).lower(): str(v) for k, v in headers.items()}
    if _same(lowered.get(SECRET_HEADER.lower()), secret):
        return True
    try:
        payload = json.loads(body)
    except ValueError:
        return False
    return isinstance(payload, Mapping) and _same(payload.get(SECRET_KEY), secret)


def parse(body: bytes) -> list[InboundChange]:
    """The changes of one notification; raises ValueError for a body that is not a JSON object."""
    try:
        payload = json.loads(body)
    except ValueError:
        raise ValueError("the body is not JSON") from None
    if not isinstance(payload, Mapping):
        raise ValueError("Copper sends one JSON object per notification")
    kind, change = ENTITY_KINDS.get(str(payload.get("type"))), CHANGES.get(str(payload.get("event")))
    ids = payload.get("ids")
    if kind is None or change is None or not isinstance(ids, list):
        return []
    digest = hashlib.sha256(body).hexdigest()[:16]
    subscription = str(payload.get("subscription_id") or "")
    return [
        InboundChange(
            event_id=f"copper:{subscription}:{payload['event']}:{record_id}:{digest}",
            object_kind=kind,
            crm_id=str(record_id),
            change=change,
        )
        for record_id in ids
        if isinstance(record_id, int | str) and str(record_id).strip()
    ]


def subscriptions(callback_url: str, secret: str, entity: str) -> list[dict[str, Any]]:
    """The ``POST /webhooks`` bodies of one connection: its person kind and opportunities."""
    return [
        {
            "target": callback_url,
            "type": kind,
            "event": event,
            "secret": {SECRET_KEY: secret},
            "headers": {SECRET_HEADER: secret},
        }
        for kind in (entity, "opportunity")
        for event in EVENTS
    ]
