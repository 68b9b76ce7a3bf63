"""Workflow "Trigger webhook" deliveries: authenticity and parsing (crm-reference §7.7).

Freshsales has no webhook subscription API and signs nothing. The admin builds workflows
("Contact is created/updated", "Deal is updated") whose Trigger webhook action POSTs to the
connection's callback URL with a custom header ``X-Capsule-Webhook-Secret: <the connection's
secret>`` and this JSON body (placeholders inserted from the workflow editor)::

    {"entity": "contact", "event": "updated", "id": "{{contact.id}}",
     "updated_at": "{{contact.updated_at}}", "updater_id": "{{contact.updater.id}}"}

A delivery is authentic when the header equals the secret (constant time). The body may be one
such object or a list of them. Inbound sync reads each record afresh, so a change carries only
its id; its event id is the entity, id and ``updated_at`` (a body digest when absent): the same
delivery replayed is a duplicate, a later change is new.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

from integrations.connector import CONTACT, DEAL, InboundChange
from integrations.providers.freshsales.wire import parse_time

SECRET_HEADER = "X-Capsule-Webhook-Secret"
ENTITIES = {"contact": CONTACT, "deal": DEAL}
EVENTS = {
    "created": "created",
    "create": "created",
    "updated": "updated",
    "update": "updated",
    "deleted": "deleted",
    "delete": "deleted",
}


def verify(headers: Mapping[str, str], secret: str) -> bool:
    if not secret:
        return False
    lowered = {str(k).lower(): str(v) for k, v in headers.items()}
    candidate = lowered.get(SECRET_HEADER.lower())
    return candidate is not None and hmac.compare_digest(candidate.encode(), secret.encode())


def parse(body: bytes) -> list[InboundChange]:
    """The changes of one delivery; raises ValueError for a body that is not JSON."""
    try:
        payload = json.loads(body)
    except ValueError:
        raise ValueError("the body is not JSON") from None
    items = payload if isinstance(payload, list) else [payload]
    digest = hashlib.sha256(body).hexdigest()[:16]
    changes = []
    for item in items:
        change = _change(item, digest)
        if change is not None:
            changes.append(change)
    return changes


def _change(item: Any, digest: str) -> InboundChange | None:
    if not isinstance(item, Mapping):
        return None
    kind, event = ENTITIES.get(str(item.get("entity"))), EVENTS.get(str(item.get("event")))
    record_id = str(item.get("id") or "").strip()
    if kind is None or event is None or not record_id.isdigit():
        return None
    stamp = str(item.get("updated_at") or "") or digest
    return InboundChange(
        event_id=f"freshsales:{item['entity']}:{event}:{record_id}:{stamp}",
        object_kind=kind,
        crm_id=record_id,
        change=event,
        occurred_at=parse_time(item.get("updated_at")),
        source=str(item.get("updater_id") or ""),
    )
