"""Zoho notification channels: subscribing, renewing, authenticating and reading callbacks
(crm-reference §4.7; spec notifications.json).

- A channel is ours per connection: its ``channel_id`` is derived from the connection's callback
  URL (stable, so re-registering replaces rather than duplicates), its events are the person
  module's and Deals' (``Contacts.all``/``Leads.all``, ``Deals.all``).
- Authenticity: Zoho signs nothing but echoes the channel's ``token`` (≤ 50 characters) in every
  callback body. We never send our webhook secret itself: the token is an HMAC of it, so the
  secret stays with us and the token still proves the sender knew it. Compared in constant time.
- Channels expire (at most a day ahead); we ask for ``CHANNEL_LIFETIME`` and a scheduled job
  renews channels older than ``RENEW_AFTER`` (integrations.providers.zoho.channels).
- A callback names ids, not values ("fetch later"): each id becomes an InboundChange without
  properties, and inbound sync reads the record (one call) before applying it.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

from integrations.connector import InboundChange
from integrations.providers.zoho.wire import KINDS_OF_MODULE

CHANNEL_LIFETIME = dt.timedelta(hours=23)  # under Zoho's one-day maximum, with room for clock skew
RENEW_AFTER = dt.timedelta(hours=12)  # renewed twice before it could expire, so one failed run is harmless
_CHANGES = {"insert": "created", "update": "updated", "delete": "deleted"}


def channel_token(secret: str) -> str:
    """The token set on our channels: 43 characters derived from the connection's webhook secret."""
    digest = hmac.new(secret.encode(), b"zoho-notification-channel-token", hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def channel_id(callback_url: str) -> int:
    """A numeric channel id (Zoho wants a long) that only this callback URL maps to."""
    return int(hashlib.sha256(callback_url.encode()).hexdigest()[:15], 16)


def ref(channel: int, events: list[str]) -> str:
    return f"{channel}:{','.join(events)}"


def parse_ref(value: str) -> tuple[str, list[str]]:
    channel, _, events = value.partition(":")
    if not channel.isdigit():
        raise ValueError(f"not a Zoho channel reference: {value!r}")
    return channel, [e for e in events.split(",") if e]


def watch(channel: int | str, events: list[str], *, expiry: dt.datetime, **extra: Any) -> dict[str, Any]:
    return {
        "watch": [
            {
                "channel_id": int(channel),
                "events": events,
                "channel_expiry": expiry.astimezone(dt.UTC).replace(microsecond=0).isoformat(),
                **extra,
            }
        ]
    }


def _body(body: bytes) -> Mapping[str, Any]:
    try:
        payload = json.loads(body)
    except ValueError:
        raise ValueError("the body is not JSON") from None
    if not isinstance(payload, Mapping):
        raise ValueError("Zoho sends a JSON object")
    return payload


def verify(body: bytes, secret: str) -> bool:
    """Whether a callback carries our channel token (compared in constant time)."""
    if not secret:
        return False
    try:
        token = _body(body).get("token")
    except ValueError:
        return False
    if not isinstance(token, str) or not token:
        return False
    return hmac.compare_digest(token.encode(), channel_token(secret).encode())


def parse(body: bytes) -> list[InboundChange]:
    """One InboundChange per id of a callback; modules and operations we do not sync are skipped.
    Raises ValueError when the body is not a JSON object (the receiving view answers 400)."""
    payload = _body(body)
    kind = KINDS_OF_MODULE.get(str(payload.get("module") or ""))
    change = _CHANGES.get(str(payload.get("operation") or ""))
    ids = payload.get("ids")
    if kind is None or change is None or not isinstance(ids, list):
        return []
    server_time = payload.get("server_time")
    occurred = None
    if isinstance(server_time, int | float) and not isinstance(server_time, bool):
        occurred = dt.datetime.fromtimestamp(server_time / 1000, tz=dt.UTC)
    channel = str(payload.get("channel_id") or "")
    return [
        InboundChange(
            # Zoho retries a delivery with the same body: the same event ids, stored once.
            event_id=f"zoho:{channel}:{server_time}:{payload.get('operation')}:{record_id}",
            object_kind=kind,
            crm_id=str(record_id),
            change=change,
            occurred_at=occurred,
        )
        for record_id in ids
        if record_id not in (None, "")
    ]
