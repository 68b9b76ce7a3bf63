"""Webhook subscriptions and notifications (crm-reference §6.7).

``POST /webhooks`` ``{"target", "type", "event", "secret": {k: v}, "headers": {k: v},
"custom_field_computed_values"}``; ``GET /webhooks``; ``GET|PUT|DELETE /webhooks/{id}``. Targets
must be HTTPS (the sandbox also takes http on loopback); an account holds at most 100
subscriptions.

A notification is a JSON object with the subscription id, ``event``, ``type``, ``ids`` (at most 30
per notification) and, for updates, ``updated_attributes``; the subscription's ``secret`` pairs
are echoed as top-level keys of the body and its ``headers`` sent as HTTP headers. Nothing is
signed, and nothing is retried: a delivery that fails is lost (so the app must also poll).
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from integrations.sandbox.copper.errors import invalid, not_found
from integrations.sandbox.core import Request, Response

if TYPE_CHECKING:
    from integrations.sandbox.copper.app import CopperEmulator

TYPES = ("lead", "person", "company", "opportunity", "project", "task", "activity_log")
EVENTS = ("new", "update", "delete")
MAX_SUBSCRIPTIONS = 100
MAX_IDS = 30


@dataclass
class Delivery:
    """One notification as sent: what went where and what the target answered (0: no answer)."""

    subscription_id: int
    target: str
    ids: list[int]
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    answer: bytes = b""


def _pairs(name: str, value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise invalid(f"{name} must be an object of text keys and values")
    return dict(value)


class WebhookRoutes:
    def __init__(self, app: CopperEmulator) -> None:
        self.app = app

    def register(self, api: Any) -> None:
        api("POST", "webhooks", self.create)
        api("GET", "webhooks", self.list)
        api("GET", r"webhooks/(?P<id>[^/]+)", self.read)
        api("PUT", r"webhooks/(?P<id>[^/]+)", self.update)
        api("DELETE", r"webhooks/(?P<id>[^/]+)", self.delete)

    @property
    def subscriptions(self) -> dict[int, dict[str, Any]]:
        return self.app.store.webhooks

    def _checked(self, body: Any, current: Mapping[str, Any] | None = None) -> dict[str, Any]:
        if not isinstance(body, Mapping):
            raise invalid("the body must be a JSON object")
        merged = {**(current or {}), **{k: v for k, v in body.items() if k != "id"}}
        target = merged.get("target")
        if not isinstance(target, str) or not target.startswith(("https://", "http://")):
            raise invalid("target must be a URL")
        # Copper takes HTTPS targets only. The sandbox also takes http on loopback (a real Copper
        # could not reach such a target at all), so `make run` can receive its notifications.
        loopback = urlsplit(target).hostname in ("127.0.0.1", "localhost", "::1")
        if not target.startswith("https://") and not (loopback or self.app.allow_http_targets):
            raise invalid("target must be an HTTPS URL")
        if merged.get("type") not in TYPES:
            raise invalid(f"type must be one of {', '.join(TYPES)}")
        if merged.get("event") not in EVENTS:
            raise invalid(f"event must be one of {', '.join(EVENTS)}")
        return {
            "target": target,
            "type": merged["type"],
            "event": merged["event"],
            "secret": _pairs("secret", merged.get("secret")),
            "headers": _pairs("headers", merged.get("headers")),
            "custom_field_computed_values": bool(merged.get("custom_field_computed_values")),
        }

    def _existing(self, request: Request) -> dict[str, Any]:
        try:
            subscription = self.subscriptions.get(int(request.params["id"]))
        except ValueError:
            subscription = None
        if subscription is None:
            raise not_found()
        return subscription

    def create(self, request: Request) -> Response:
        if len(self.subscriptions) >= MAX_SUBSCRIPTIONS:
            raise invalid(f"an account may have at most {MAX_SUBSCRIPTIONS} webhook subscriptions")
        subscription = {"id": self.app.store.new_id("webhooks"), **self._checked(request.json())}
        subscription["created_at"] = self.app.store.now()
        self.subscriptions[subscription["id"]] = subscription
        return Response.json(dict(subscription))

    def list(self, request: Request) -> Response:
        return Response.json([dict(s) for _id, s in sorted(self.subscriptions.items())])

    def read(self, request: Request) -> Response:
        return Response.json(dict(self._existing(request)))

    def update(self, request: Request) -> Response:
        subscription = self._existing(request)
        subscription.update(self._checked(request.json(), subscription))
        return Response.json(dict(subscription))

    def delete(self, request: Request) -> Response:
        subscription = self._existing(request)
        del self.subscriptions[subscription["id"]]
        return Response.json({"id": subscription["id"]})


def notification(
    subscription: Mapping[str, Any], ids: list[int], updated_attributes: Mapping[str, Any] | None = None
) -> tuple[dict[str, str], bytes]:
    """The headers and body Copper sends for ``ids`` (at most 30) on one subscription."""
    body: dict[str, Any] = {
        "subscription_id": subscription["id"],
        "event": subscription["event"],
        "type": subscription["type"],
        "ids": list(ids)[:MAX_IDS],
    }
    if subscription["event"] == "update":
        body["updated_attributes"] = dict(updated_attributes or {})
    body.update(subscription.get("secret") or {})
    headers = {"Content-Type": "application/json", **(subscription.get("headers") or {})}
    return headers, json.dumps(body, separators=(",", ":")).encode()


def deliver(
    subscription: Mapping[str, Any],
    ids: list[int],
    updated_attributes: Mapping[str, Any] | None = None,
    *,
    timeout: float = 5.0,
    cafile: str | None = None,
) -> Delivery:
    """POST one notification, once. A refusal or an unreachable target is recorded, not retried."""
    headers, body = notification(subscription, ids, updated_attributes)
    delivery = Delivery(subscription["id"], subscription["target"], list(ids)[:MAX_IDS], 0, headers, body)
    request = urllib.request.Request(subscription["target"], data=body, headers=headers, method="POST")
    context = ssl.create_default_context(cafile=cafile) if cafile else None
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as answer:
            delivery.status, delivery.answer = answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        delivery.status, delivery.answer = exc.code, exc.read()
    except (urllib.error.URLError, OSError):
        delivery.status = 0
    return delivery
