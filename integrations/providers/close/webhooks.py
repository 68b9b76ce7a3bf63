"""Inbound Close webhooks: subscriptions, ``close-sig-hash`` verification, event parsing (crm-reference §8.7).

- Subscribing: ``POST /webhook/`` with our URL and the events we handle; Close answers with the
  subscription's ``signature_key`` (hex). Close chooses that key, we cannot, so it is kept sealed
  (Fernet under a key derived from the connection's encrypted ``webhook_secret``) inside the
  registration's reference, ``<subscription id>:<sealed key>``; ``signing_key`` opens it again.
- Verifying: ``close-sig-hash`` = hex(HMAC-SHA256(key=bytes.fromhex(signature_key),
  msg=close-sig-timestamp + body)), compared in constant time; deliveries whose timestamp is more
  than five minutes away from now are refused (replays).
- Parsing: ``{"subscription_id", "event": {id, action, object_type, object_id, lead_id, user_id,
  request_id, api_key_id?, oauth_client_id?, changed_fields, previous_data, data, meta}}`` → one
  InboundChange. Contacts, leads and opportunities; created / updated / deleted / merged. Other
  object types and actions are skipped (the receiver answers 200 "ignored").
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from integrations.connector import CONTACT, DEAL, LEAD, InboundChange
from integrations.providers.close import wire

MAX_AGE_SECONDS = 5 * 60
OBJECTS = {"contact": CONTACT, "lead": LEAD, "opportunity": DEAL}
ACTIONS = {"created": "created", "updated": "updated", "deleted": "deleted", "merged": "merged"}
SUBSCRIBED = [
    {"object_type": object_type, "action": action}
    for object_type in ("contact", "opportunity")
    for action in ("created", "updated", "deleted")
]
# Changed fields whose flat names we know without reading the record (wire.flatten).
FLAT_NAMES = {
    "name": ("name",),
    "title": ("title",),
    "emails": ("email", "email_unsubscribed"),
    "phones": ("phone", "mobile_phone"),
    "urls": ("url",),
}


def _fernet(secret: str) -> Fernet:
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(f"close-webhook:{secret}".encode()).digest()))


def seal(subscription_id: str, signature_key: str, secret: str) -> str:
    """The registration reference: the subscription id and its signing key, sealed with ``secret``."""
    return f"{subscription_id}:{_fernet(secret).encrypt(signature_key.encode()).decode()}"


def subscription_id(ref: str) -> str:
    return ref.partition(":")[0]


def signing_key(ref: str, secret: str) -> str:
    """The signature key sealed in ``ref`` ("" when it cannot be opened with ``secret``)."""
    sealed = ref.partition(":")[2]
    if not sealed or not secret:
        return ""
    try:
        return _fernet(secret).decrypt(sealed.encode()).decode()
    except InvalidToken:
        return ""


def signature(signature_key: str, timestamp: str, body: bytes) -> str:
    return hmac.new(bytes.fromhex(signature_key), timestamp.encode() + body, hashlib.sha256).hexdigest()


def verify(headers: Mapping[str, str], body: bytes, secret: str, *, now: float | None = None) -> bool:
    lowered = {str(k).lower(): str(v) for k, v in headers.items()}
    given = lowered.get("close-sig-hash", "").strip().lower()
    timestamp = lowered.get("close-sig-timestamp", "").strip()
    if not secret or not given or not timestamp.isdigit():
        return False
    current = time.time() if now is None else now
    if abs(current - int(timestamp)) > MAX_AGE_SECONDS:
        return False
    try:
        expected = signature(secret, timestamp, body)
    except ValueError:  # a key that is not hex: nothing can match it
        return False
    return hmac.compare_digest(expected.encode(), given.encode())


def source_of(event: Mapping[str, Any]) -> str:
    """Who made the change, for echo suppression: our OAuth app, an API key, or a user in the app."""
    if event.get("oauth_client_id"):
        return f"oauth_client:{event['oauth_client_id']}"
    if event.get("api_key_id"):
        return f"api_key:{event['api_key_id']}"
    return f"user:{event.get('user_id') or ''}"


def _properties(kind: str, event: Mapping[str, Any]) -> dict[str, Any]:
    data = event.get("data") if isinstance(event.get("data"), Mapping) else {}
    if kind == DEAL:
        return deal_fields(data) if data else {}
    if kind != CONTACT or event.get("action") != "updated":
        return {}
    changed = [str(name) for name in event.get("changed_fields") or []]
    if not changed or any(name not in FLAT_NAMES for name in changed):
        return {}  # a custom field changed (its name needs a lookup) or nothing was said: read the record
    flat = wire.flatten(data, {})
    return {name: flat.get(name) for field in changed for name in FLAT_NAMES[field]}


def deal_fields(opportunity: Mapping[str, Any]) -> dict[str, Any]:
    """An opportunity as flat fields; ``associated_people`` is its contact (inbound deal changes)."""
    flat = {
        key: opportunity.get(key)
        for key in (
            "id",
            "lead_id",
            "contact_id",
            "note",
            "value",
            "value_period",
            "value_currency",
            "confidence",
            "status_id",
            "status_label",
            "status_type",
            "date_won",
            "date_updated",
        )
        if key in opportunity
    }
    value = opportunity.get("value")
    flat["amount"] = value / 100 if isinstance(value, int | float) else None
    flat.update({k: v for k, v in opportunity.items() if str(k).startswith("custom.")})
    if opportunity.get("contact_id"):
        flat["associated_people"] = [str(opportunity["contact_id"])]
    return flat


def parse(body: bytes) -> list[InboundChange]:
    """The change one delivery carries; raises ValueError for a body that is not Close's shape."""
    try:
        payload = json.loads(body)
    except ValueError:
        raise ValueError("the body is not JSON") from None
    event = payload.get("event") if isinstance(payload, Mapping) else None
    if not isinstance(event, Mapping):
        raise ValueError("Close sends an object with an event")
    kind, change = OBJECTS.get(str(event.get("object_type"))), ACTIONS.get(str(event.get("action")))
    if kind is None or change is None or not event.get("object_id"):
        return []
    data = event.get("data") if isinstance(event.get("data"), Mapping) else {}
    merged_into = None
    if change == "merged":
        merged_into = str(data.get("destination_id") or data.get("id") or "") or None
    return [
        InboundChange(
            event_id=str(event.get("id") or ""),
            object_kind=kind,
            crm_id=str(event["object_id"]),
            change=change,
            occurred_at=wire.parse_time(event.get("date_updated") or event.get("date_created")),
            properties=_properties(kind, event),
            source=source_of(event),
            merged_into=merged_into,
        )
    ]
