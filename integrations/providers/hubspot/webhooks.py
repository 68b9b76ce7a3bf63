"""Inbound HubSpot webhooks: signature v3 verification and event parsing (crm-reference §2.7).

Signature v3: ``X-HubSpot-Signature-v3`` is base64(HMAC-SHA256(client secret, METHOD + URI + body
+ timestamp)), with ``X-HubSpot-Request-Timestamp`` in epoch ms; requests older than five minutes
are refused. HubSpot decodes a fixed set of percent-escapes in the URI before signing
(https://developers.hubspot.com/docs/api/webhooks/validating-requests), so we do the same.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

from integrations.connector import CONTACT, DEAL, InboundChange
from integrations.providers.hubspot.wire import from_epoch_ms

MAX_AGE_MS = 5 * 60 * 1000

# HubSpot's list of escapes it decodes in the URI before computing the v3 signature.
_URI_DECODES = {
    "%3A": ":",
    "%2F": "/",
    "%3F": "?",
    "%40": "@",
    "%21": "!",
    "%24": "$",
    "%27": "'",
    "%28": "(",
    "%29": ")",
    "%2A": "*",
    "%2C": ",",
    "%3B": ";",
}

# subscriptionType "<object>.<event>": the objects we sync, and what each event means for us.
_OBJECTS = {"contact": CONTACT, "deal": DEAL}
_CHANGES = {
    "creation": "created",
    "propertyChange": "property",
    "deletion": "deleted",
    "privacyDeletion": "deleted",
    "merge": "merged",
    "restore": "created",
}


def _decoded_uri(uri: str) -> str:
    for escaped, char in _URI_DECODES.items():
        uri = uri.replace(escaped, char).replace(escaped.lower(), char)
    return uri


def signature_v3(secret: str, method: str, uri: str, body: bytes, timestamp: str) -> str:
    message = f"{method.upper()}{_decoded_uri(uri)}".encode() + body + timestamp.encode()
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


def verify(
    method: str, url: str, headers: Mapping[str, str], body: bytes, secret: str, *, now_ms: int | None = None
) -> bool:
    """Whether a delivery is HubSpot's: a fresh timestamp and a matching v3 signature (constant time)."""
    lowered = {str(k).lower(): str(v) for k, v in headers.items()}
    signature = lowered.get("x-hubspot-signature-v3", "")
    timestamp = lowered.get("x-hubspot-request-timestamp", "")
    if not secret or not signature or not timestamp.isdigit():
        return False
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    if abs(now - int(timestamp)) > MAX_AGE_MS:  # stale (replayed) or from a clock far ahead
        return False
    expected = signature_v3(secret, method, url, body, timestamp)
    return hmac.compare_digest(expected.encode(), signature.encode())


def _change(event: Mapping[str, Any]) -> list[InboundChange]:
    object_name, _, event_name = str(event.get("subscriptionType") or "").partition(".")
    kind, change = _OBJECTS.get(object_name), _CHANGES.get(event_name)
    if kind is None or change is None or event.get("objectId") is None:
        return []
    occurred = event.get("occurredAt")
    source = str(event.get("changeSource") or "")
    if event.get("sourceId"):
        source = f"{source}:{event['sourceId']}" if source else str(event["sourceId"])
    common: dict[str, Any] = {
        "event_id": str(event.get("eventId") or ""),
        "object_kind": kind,
        "change": change,
        "occurred_at": from_epoch_ms(int(occurred)) if isinstance(occurred, int | float) else None,
        "source": source,
    }
    if change == "property" and event.get("propertyName"):
        common["properties"] = {str(event["propertyName"]): event.get("propertyValue")}
    if change == "merged":
        # A merge names the surviving record (primaryObjectId / newObjectId) and those merged into it.
        survivor = str(event.get("newObjectId") or event.get("primaryObjectId") or event["objectId"])
        merged = [str(i) for i in event.get("mergedObjectIds") or [] if str(i) != survivor]
        if not merged:  # no losing ids given: report the survivor as changed by a merge
            return [InboundChange(crm_id=survivor, **common)]
        return [InboundChange(crm_id=m, merged_into=survivor, **common) for m in merged]
    return [InboundChange(crm_id=str(event["objectId"]), **common)]


def parse(body: bytes) -> list[InboundChange]:
    """The changes in a delivery (a JSON array of events); unknown event types are skipped.

    Raises ValueError when the body is not a JSON array, so the receiving view answers 400.
    """
    try:
        events = json.loads(body)
    except ValueError:
        raise ValueError("the body is not JSON") from None
    if not isinstance(events, list):
        raise ValueError("HubSpot sends a JSON array of events")
    changes: list[InboundChange] = []
    for event in events:
        if isinstance(event, Mapping):
            changes.extend(_change(event))
    return changes
