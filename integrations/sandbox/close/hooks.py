"""Webhook subscriptions, the Event Log, and signed deliveries (crm-reference §8.7).

- ``POST /webhook/`` (``url`` and ``events`` required; at most 40 per organisation) answers 201
  (spec ``webhooks_create_Response_201``) with the subscription and its ``signature_key`` (hex);
  ``GET|PUT|DELETE /webhook/{id}/``; ``GET /webhook/``.
- ``GET /event/`` (``object_type``, ``object_id``, ``action``, ``lead_id``, ``user_id``,
  ``date_updated__gt|gte|lt|lte``; newest first, ``_cursor`` / ``_limit``) and ``/event/{id}/``.
- Deliveries: ``{"subscription_id": …, "event": {…}}`` signed with ``close-sig-hash`` =
  hex(HMAC-SHA256(key=bytes.fromhex(signature_key), msg=timestamp + body)) and
  ``close-sig-timestamp`` (Unix seconds).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from integrations.sandbox.close import wire
from integrations.sandbox.close.engagement import _range_filters
from integrations.sandbox.close.errors import CloseError, invalid, not_found
from integrations.sandbox.close.people import _body
from integrations.sandbox.close.store import Actor, Store
from integrations.sandbox.core import Request, Response

ID = r"(?P<object_id>[^/]+)"
MAX_SUBSCRIPTIONS = 40


def sign(signature_key: str, timestamp: str, body: bytes) -> str:
    """Close's webhook signature over the timestamp and the raw body."""
    return hmac.new(bytes.fromhex(signature_key), timestamp.encode() + body, hashlib.sha256).hexdigest()


class Hooks:
    def __init__(self, store: Store, actor: Callable[[Request], Actor]) -> None:
        self.store = store
        self.actor = actor

    def routes(self) -> list[tuple[str, str, Callable[[Request], Response]]]:
        return [
            ("GET", r"/api/v1/webhook/", self.list_webhooks),
            ("POST", r"/api/v1/webhook/", self.create_webhook),
            ("GET", rf"/api/v1/webhook/{ID}/", self.get_webhook),
            ("PUT", rf"/api/v1/webhook/{ID}/", self.update_webhook),
            ("DELETE", rf"/api/v1/webhook/{ID}/", self.delete_webhook),
            ("GET", r"/api/v1/event/", self.list_events),
            ("GET", rf"/api/v1/event/{ID}/", self.get_event),
        ]

    # -- subscriptions ---------------------------------------------------------------------------------
    @staticmethod
    def _events(value: Any, problems: dict[str, str]) -> list[dict[str, Any]]:
        if (
            not isinstance(value, list)
            or not value
            or not all(isinstance(e, dict) and e.get("object_type") and e.get("action") for e in value)
        ):
            problems["events"] = "A list of {object_type, action} objects is required."
            return []
        return [{"object_type": str(e["object_type"]), "action": str(e["action"])} for e in value]

    def _public(self, subscription: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in subscription.items() if k != "signature_key"}

    def create_webhook(self, request: Request) -> Response:
        body, actor = _body(request), self.actor(request)
        problems: dict[str, str] = {}
        url = body.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            problems["url"] = "A valid URL is required."
        events = self._events(body.get("events"), problems)
        if problems:
            raise invalid(problems)
        if len(self.store.webhooks) >= MAX_SUBSCRIPTIONS:
            raise CloseError(400, f"An organization can have at most {MAX_SUBSCRIPTIONS} webhook subscriptions")
        stamp = self.store.stamp()
        subscription = {
            "id": wire.new_id("whsub", 22),
            "url": url,
            "events": events,
            "verify_ssl": bool(body.get("verify_ssl", True)),
            "event_filter": body.get("event_filter"),
            "status": "active",
            "signature_key": secrets.token_hex(32),
            "organization_id": self.store.org_id,
            "created_by": actor.user_id,
            "updated_by": actor.user_id,
            "date_created": stamp,
            "date_updated": stamp,
        }
        self.store.webhooks[subscription["id"]] = subscription
        return Response.json(subscription, status=201)

    def _subscription(self, object_id: str) -> dict[str, Any]:
        subscription = self.store.webhooks.get(object_id)
        if subscription is None:
            raise not_found("WebhookSubscription", object_id)
        return subscription

    def get_webhook(self, request: Request) -> Response:
        return Response.json(self._public(self._subscription(request.params["object_id"])))

    def update_webhook(self, request: Request) -> Response:
        subscription = self._subscription(request.params["object_id"])
        body = _body(request)
        problems: dict[str, str] = {}
        if "events" in body:
            subscription["events"] = self._events(body["events"], problems)
        if "status" in body and body["status"] not in ("active", "paused"):
            problems["status"] = "Must be active or paused."
        if problems:
            raise invalid(problems)
        for key in ("url", "verify_ssl", "status", "event_filter"):
            if key in body:
                subscription[key] = body[key]
        subscription["date_updated"] = self.store.stamp()
        return Response.json(self._public(subscription))

    def delete_webhook(self, request: Request) -> Response:
        self._subscription(request.params["object_id"])
        del self.store.webhooks[request.params["object_id"]]
        return Response.json({})

    def list_webhooks(self, request: Request) -> Response:
        return Response.json({"data": [self._public(s) for s in self.store.webhooks.values()], "has_more": False})

    # -- the event log --------------------------------------------------------------------------------------
    def list_events(self, request: Request) -> Response:
        tests = _range_filters(request, "date_updated")
        wanted = {k: request.arg(k) for k in ("object_type", "object_id", "action", "lead_id", "user_id")}
        rows = [
            e
            for e in reversed(self.store.events)
            if all(v is None or e.get(k) == v for k, v in wanted.items()) and all(t(e) for t in tests)
        ]
        try:
            limit = min(int(request.arg("_limit", "50") or 50), 100)
            offset = int(base64.urlsafe_b64decode((request.arg("_cursor") or "MA==").encode()))
        except ValueError:
            raise CloseError(400, "Invalid _limit or _cursor") from None
        more = offset + limit < len(rows)
        next_cursor = base64.urlsafe_b64encode(str(offset + limit).encode()).decode() if more else None
        return Response.json(
            {"data": rows[offset : offset + limit], "cursor_next": next_cursor, "cursor_previous": None}
        )

    def get_event(self, request: Request) -> Response:
        event = next((e for e in self.store.events if e["id"] == request.params["object_id"]), None)
        if event is None:
            raise not_found("Event", request.params["object_id"])
        return Response.json(event)


# -- deliveries (test helpers) ---------------------------------------------------------------------------


def delivery(
    subscription: dict[str, Any], event: dict[str, Any], *, timestamp: int | None = None, key: str | None = None
) -> tuple[dict[str, str], bytes]:
    """The headers and body Close would POST for one event (``key`` overrides the signing key)."""
    body = json.dumps({"subscription_id": subscription["id"], "event": event}, separators=(",", ":")).encode()
    stamp = str(timestamp if timestamp is not None else int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Close Webhooks",
        "close-sig-timestamp": stamp,
        "close-sig-hash": sign(key or subscription["signature_key"], stamp, body),
    }
    return headers, body


def post(url: str, headers: dict[str, str], body: bytes, *, timeout: float = 5.0) -> tuple[int, bytes]:
    """POST a delivery; (status, body) whatever the answer (HTTP errors do not raise)."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
