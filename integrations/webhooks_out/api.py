"""REST Hooks for Zapier and Make, mounted at /api/v1/hooks, authenticated by the account's API key.

The shape follows Zapier's REST Hook contract (https://docs.zapier.com/platform/build/hook-trigger):
subscribe with a target URL and an event, get back an id to unsubscribe with, and list sample
payloads so the app can show fields before the first real event. Make's "instant triggers"
(https://developers.make.com/custom-apps-documentation/app-components/webhooks) use the same calls.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

from django.http import HttpRequest
from ninja import Router
from ninja.responses import Status
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError

from crmsync.api.auth import actor_label
from crmsync.api.errors import ApiError, FieldError, field_errors
from crmsync.api.events import read_body
from crmsync.api.schemas import ErrorOut
from integrations.models import WebhookDelivery, WebhookSubscription
from integrations.webhooks_out import catalogue, subscriptions

router = Router(tags=["webhooks"])

SAMPLE_COUNT = 3
EventName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=60)]


class HookIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    target_url: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)] = Field(
        description="Where to POST the events: an http(s) URL on a public address."
    )
    event: EventName | None = Field(None, description='One catalogue event, or "*" for all. Give this or `events`.')
    events: list[EventName] | None = Field(None, min_length=1, max_length=50, description="Several events.")


class HookOut(BaseModel):
    id: int
    target_url: str
    events: list[str]
    active: bool
    disabled_reason: str
    source: str
    created_at: datetime


class HookCreated(BaseModel):
    id: int
    target_url: str
    events: list[str]
    secret: str = Field(description="The signing secret (whsec_…). Shown only in this answer: store it now.")


class EventOut(BaseModel):
    name: str
    group: str
    description: str


_hook_in = TypeAdapter(HookIn)

_SUBSCRIBE_DESCRIPTION = """
Subscribe a URL to one event (`event`, as Zapier's REST Hooks send it) or to several (`events`).
`"*"` subscribes to every event, including ones added later.

The answer's `secret` signs every message (Standard Webhooks: `webhook-id`, `webhook-timestamp`,
`webhook-signature` headers); it is shown only here. Messages are JSON
`{"type": "<event>", "timestamp": "…", "data": {…}}`; see `GET /api/v1/hooks/samples/{event}`.

Errors: 400 naming `event` (or `events[i]`) for an event not in the catalogue, and `target_url`
for a URL we will not call: not http(s), with credentials in it, or resolving to a private,
loopback, link-local or metadata address. A receiver answering 410 Gone unsubscribes itself.
"""

_SUBSCRIBE_EXAMPLES = {
    "zapier": {
        "summary": "Zapier REST Hook subscribe",
        "value": {"target_url": "https://hooks.zapier.com/hooks/standard/123456/abcdef/", "event": "lead.hot"},
    },
    "several": {
        "summary": "Several events",
        "value": {"target_url": "https://example.com/capsule-hooks", "events": ["cta.clicked", "conversion.created"]},
    },
}
_CREATED_EXAMPLE = {
    "id": 17,
    "target_url": "https://hooks.zapier.com/hooks/standard/123456/abcdef/",
    "events": ["lead.hot"],
    "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
}


def _hook_out(subscription: WebhookSubscription) -> dict[str, Any]:
    return {
        "id": subscription.pk,
        "target_url": subscription.target_url,
        "events": subscription.events,
        "active": subscription.active,
        "disabled_reason": subscription.disabled_reason,
        "source": subscription.source,
        "created_at": subscription.created_at,
    }


def _parse(body: bytes) -> HookIn:
    try:
        payload = json.loads(body)
    except ValueError as exc:
        raise ApiError.invalid([FieldError("body", f"malformed JSON: {exc}")]) from None
    if not isinstance(payload, dict):
        raise ApiError.invalid([FieldError("body", 'expected a JSON object: {"target_url": …, "event": …}')])
    try:
        hook = _hook_in.validate_python(payload)
    except ValidationError as exc:
        raise ApiError.invalid(field_errors(exc.errors(include_url=False))) from None
    if hook.event is None and hook.events is None:
        raise ApiError.invalid([FieldError("event", 'give "event" (one name) or "events" (a list)')])
    if hook.event is not None and hook.events is not None:
        raise ApiError.invalid([FieldError("event", 'give "event" or "events", not both')])
    return hook


@router.post(
    "",
    response={201: HookCreated, 400: ErrorOut, 401: ErrorOut, 413: ErrorOut, 429: ErrorOut},
    summary="Subscribe a URL to events (Zapier REST Hooks / Make)",
    description=_SUBSCRIBE_DESCRIPTION,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": _hook_in.json_schema(), "examples": _SUBSCRIBE_EXAMPLES},
            },
        },
        "responses": {"201": {"content": {"application/json": {"example": _CREATED_EXAMPLE}}}},
    },
)
def subscribe(request: HttpRequest) -> Status:
    hook = _parse(read_body(request))
    events, field = ([hook.event], "event") if hook.event is not None else (hook.events or [], "events")
    try:
        subscription, secret = subscriptions.subscribe(
            request.auth.account,
            hook.target_url,
            events,
            source=subscriptions.source_for(hook.target_url),
            actor_label=actor_label(request.auth),
            events_field=field,
        )
    except subscriptions.SubscriptionError as exc:
        raise ApiError.invalid([FieldError(exc.field, exc.message)]) from None
    return Status(
        201,
        {"id": subscription.pk, "target_url": subscription.target_url, "events": subscription.events, "secret": secret},
    )


@router.get(
    "",
    response={200: list[HookOut], 401: ErrorOut, 429: ErrorOut},
    summary="List the account's webhook subscriptions (without secrets)",
)
def list_hooks(request: HttpRequest) -> list[dict[str, Any]]:
    rows = WebhookSubscription.objects.filter(account_id=request.auth.account_id).order_by("-created_at", "-id")
    return [_hook_out(subscription) for subscription in rows]


@router.get(
    "/events",
    response={200: list[EventOut], 401: ErrorOut, 429: ErrorOut},
    summary="The event catalogue (for a Zapier or Make event dropdown)",
)
def list_events(request: HttpRequest) -> list[dict[str, str]]:
    return [{"name": spec.name, "group": spec.group, "description": spec.description} for spec in catalogue.EVENTS]


@router.get(
    "/samples/{event}",
    response={200: list[dict[str, Any]], 401: ErrorOut, 404: ErrorOut, 429: ErrorOut},
    summary="Recent payloads of an event, or the catalogue's sample",
    description=f"Up to {SAMPLE_COUNT} of the account's most recent messages of this event, newest first, as "
    "receivers got them; when there are none yet, the catalogue's sample. Zapier's performList and Make's "
    "sample data use this.",
    openapi_extra={
        "responses": {
            "200": {"content": {"application/json": {"example": [catalogue.sample_message("capsule.viewed")]}}}
        }
    },
)
def samples(request: HttpRequest, event: str) -> list[dict[str, Any]]:
    if not catalogue.is_known(event):
        raise ApiError.not_found("event", f"unknown event {event!r}; see GET /api/v1/hooks/events")
    recent = (
        WebhookDelivery.objects.filter(account_id=request.auth.account_id, event_type=event)
        .order_by("-created_at", "-id")
        .values_list("idempotency_key", "payload")
    )
    # One event sent to several subscriptions is one sample.
    seen: dict[str, dict[str, Any]] = {}
    for key, payload in recent[: SAMPLE_COUNT * 10]:
        seen.setdefault(key, payload)
        if len(seen) == SAMPLE_COUNT:
            break
    return list(seen.values()) or [catalogue.sample_message(event)]


@router.delete(
    "/{hook_id}",
    response={204: None, 401: ErrorOut, 404: ErrorOut, 429: ErrorOut},
    summary="Unsubscribe (Zapier REST Hooks / Make)",
)
def unsubscribe(request: HttpRequest, hook_id: int) -> Status:
    subscription = WebhookSubscription.objects.filter(account_id=request.auth.account_id, pk=hook_id).first()
    if subscription is None:
        raise ApiError.not_found("hook_id", "no webhook subscription with this id in this account")
    subscriptions.unsubscribe(subscription, actor_label=actor_label(request.auth))
    return Status(204, None)
