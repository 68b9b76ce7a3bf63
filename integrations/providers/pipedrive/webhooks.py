"""Pipedrive webhooks v2 in: HTTP Basic verification, parsing, and the subscriptions behind them.

Authenticity (crm-reference §3.7): Pipedrive signs nothing. A webhook is registered with an
``http_auth_user``/``http_auth_password`` pair and every delivery carries them as
``Authorization: Basic``; the password is the connection's webhook secret, compared in constant
time (so is the user name).

Bodies (§3.7): ``{"meta": {action, entity, entity_id, id, user_id, webhook_owner_id,
change_source, timestamp, …}, "data": {current object}, "previous": {old values of the fields
that changed}}``. ``change_source`` is "api" or "app"; with ``user_id`` equal to
``webhook_owner_id`` — the user whose credentials registered the webhook, i.e. ours — an "api"
change is one we made (the echo signal of §11.9). The parsed change's ``source`` is
``"<change_source>:own"`` in that case, else ``"<change_source>:<user_id>"``.

Subscriptions (``POST /v1/webhooks``, version 2.0, scope ``admin``): one for persons and one for
deals, each ``event_action: "*"``. Registering first removes our earlier subscriptions to the same
URL (a crash between creating them and storing their ids leaves none behind twice).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from integrations.connector import CONTACT, DEAL, InboundChange
from integrations.errors import NotFound
from integrations.providers.pipedrive.fields import readable
from integrations.providers.pipedrive.wire import parse_time

if TYPE_CHECKING:
    from integrations.providers.pipedrive.v1 import V1

WEBHOOK_USER = "capsule-sync"
OBJECTS = {"person": CONTACT, "deal": DEAL}
CHANGES = {
    "create": "created",
    "change": "updated",
    "delete": "deleted",
    "added": "created",
    "updated": "updated",
    "deleted": "deleted",
}
OWN = "own"


def verify(headers: Mapping[str, str], secret: str) -> bool:
    lowered = {str(k).lower(): str(v) for k, v in headers.items()}
    auth = lowered.get("authorization", "")
    if not secret or not auth[:6].lower() == "basic ":
        return False
    try:
        decoded = base64.b64decode(auth[6:].strip(), validate=True).decode()
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return False
    user, colon, password = decoded.partition(":")
    if not colon:
        return False
    # Both compared whatever the first gives, in constant time.
    user_ok = hmac.compare_digest(user.encode(), WEBHOOK_USER.encode())
    password_ok = hmac.compare_digest(password.encode(), secret.encode())
    return user_ok and password_ok


def source_of(meta: Mapping[str, Any]) -> str:
    change_source = str(meta.get("change_source") or "")
    user, owner = str(meta.get("user_id") or ""), str(meta.get("webhook_owner_id") or "")
    return f"{change_source}:{OWN if user and user == owner else user}"


def is_own(source: str) -> bool:
    return source == f"api:{OWN}"


def parse(body: bytes) -> list[InboundChange]:
    """The change a v2 delivery carries (one per body); other objects and v1 bodies are skipped.

    Raises ValueError when the body is not a JSON object, so the receiving view answers 400.
    """
    try:
        payload = json.loads(body)
    except ValueError:
        raise ValueError("the body is not JSON") from None
    if not isinstance(payload, Mapping) or not isinstance(payload.get("meta"), Mapping):
        raise ValueError("a Pipedrive webhook body is an object with meta")
    meta = payload["meta"]
    kind, change = OBJECTS.get(str(meta.get("entity") or "")), CHANGES.get(str(meta.get("action") or ""))
    entity_id = meta.get("entity_id")
    if kind is None or change is None or entity_id in (None, "") or str(meta.get("version") or "2.0") != "2.0":
        return []
    data = payload.get("data") if isinstance(payload.get("data"), Mapping) else {}
    previous = payload.get("previous") if isinstance(payload.get("previous"), Mapping) else {}
    properties: dict[str, Any] = {}
    if change == "updated" and previous and "custom_fields" not in previous:
        # Only the fields that changed. A custom field change leaves properties empty: inbound sync
        # then reads the record, whose option ids the connector turns into labels.
        flat = readable(data, {})
        properties = {name: flat.get(name) for name in previous if name in flat}
        if "marketing_status" in previous:
            properties["marketing_unsubscribed"] = flat.get("marketing_unsubscribed")
    if kind == DEAL and data.get("person_id"):
        properties["associated_people"] = [str(data["person_id"])]
    event_id = meta.get("id") or f"{meta.get('entity')}:{entity_id}:{meta.get('timestamp')}"
    return [
        InboundChange(
            event_id=str(event_id),
            object_kind=kind,
            crm_id=str(entity_id),
            change=change,
            occurred_at=parse_time(meta.get("timestamp")),
            properties=properties,
            source=source_of(meta),
        )
    ]


def register(v1: V1, callback_url: str, secret: str) -> str:
    """Subscribe ``callback_url`` to person and deal changes; returns "<id>,<id>"."""
    for existing in v1.webhooks():
        if existing.get("subscription_url") == callback_url and existing.get("id") is not None:
            unregister(v1, str(existing["id"]))
    made = []
    for event_object in OBJECTS:
        webhook = v1.add_webhook(
            {
                "subscription_url": callback_url,
                "event_action": "*",
                "event_object": event_object,
                "name": f"Capsule CRM Sync ({event_object})",
                "http_auth_user": WEBHOOK_USER,
                "http_auth_password": secret,
                "version": "2.0",
            }
        )
        made.append(str(webhook.get("id") or ""))
    return ",".join(made)


def unregister(v1: V1, ref: str) -> None:
    for webhook_id in (part.strip() for part in ref.split(",")):
        if not webhook_id:
            continue
        try:
            v1.delete_webhook(webhook_id)
        except NotFound:  # already gone: nothing left to remove
            continue
