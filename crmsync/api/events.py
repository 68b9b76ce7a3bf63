"""POST /api/v1/events: the capsule platform sends interaction events, one or a batch of up to 500."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest
from ninja import Router
from pydantic import TypeAdapter

from crmsync.api.auth import actor_label
from crmsync.api.errors import ApiError, FieldError
from crmsync.api.schemas import MAX_EVENTS, AnyEvent, ErrorOut, EventBatch, IngestResponse, parse_events
from crmsync.ingest import ingest_events

router = Router(tags=["events"])

# The body is validated by crmsync.api.schemas (to name every bad field of every event in one
# answer), so the operation declares its request body for OpenAPI by hand: these schemas are
# added to components.schemas by the API (crmsync.api.urls).
_REQUEST_SCHEMA = TypeAdapter(EventBatch | AnyEvent).json_schema(ref_template="#/components/schemas/{model}")
REQUEST_COMPONENTS: dict[str, Any] = _REQUEST_SCHEMA.pop("$defs")

_EXAMPLES = {
    "single": {
        "summary": "One identified event",
        "value": {
            "event_id": "evt_01J9Z6Q3",
            "type": "question_asked",
            "occurred_at": "2025-01-31T14:05:00Z",
            "capsule": {"id": "cap_42", "title": "Pricing tour", "url": "https://capsules.example.com/c/42"},
            "visitor_id": "vis_7f3a",
            "prospect": {
                "email": "Ann.Lee@example.com",
                "full_name": "Ann Lee",
                "company": "Northwind",
                "attributes": {"plan_interest": "enterprise", "seats": 40},
                "utm": {"source": "newsletter", "medium": "email", "campaign": "jan-launch"},
                "consent": {"granted": True, "source": "capsule form v2"},
            },
            "data": {"text": "Do you offer SSO?", "answer_summary": "Yes, SAML and OIDC on Enterprise."},
        },
    },
    "batch": {
        "summary": "A batch: an anonymous view, then the same visitor identified",
        "value": {
            "events": [
                {
                    "event_id": "evt_1",
                    "type": "capsule_viewed",
                    "occurred_at": "2025-01-31T14:00:00Z",
                    "capsule": {"id": "cap_42"},
                    "visitor_id": "vis_7f3a",
                },
                {
                    "event_id": "evt_2",
                    "type": "time_spent",
                    "occurred_at": "2025-01-31T14:06:00Z",
                    "capsule": {"id": "cap_42"},
                    "visitor_id": "vis_7f3a",
                    "data": {"seconds": 312},
                },
                {
                    "event_id": "evt_3",
                    "type": "lead_captured",
                    "occurred_at": "2025-01-31T14:07:00Z",
                    "capsule": {"id": "cap_42"},
                    "visitor_id": "vis_7f3a",
                    "prospect": {"email": "ann.lee@example.com", "first_name": "Ann", "last_name": "Lee"},
                    "data": {"form": {"role": "CTO", "team_size": "40"}},
                },
                {
                    "event_id": "evt_4",
                    "type": "conversion",
                    "occurred_at": "2025-01-31T14:09:00Z",
                    "prospect": {"email": "ann.lee@example.com"},
                    "data": {"value": 4800, "currency": "EUR", "name": "Enterprise trial"},
                },
            ]
        },
    },
}

_DESCRIPTION = f"""
Send one event object, or `{{"events": [...]}}` with 1 to {MAX_EVENTS} events. Each event names
who acted with `prospect.email`, `visitor_id`, or both; an event with both links the anonymous
visitor's earlier events to the prospect.

`event_id` is unique per account: sending an event again is safe and changes nothing (it is
reported as `duplicate`). Events of an erased person's e-mail address are not stored
(`suppressed`). The whole request is stored in one transaction.

`data` depends on `type`: `question_asked` needs `text`; `time_spent` needs `seconds`
(0..86400); `content_accessed`/`content_downloaded` need `content_id`; `cta_clicked` needs
`cta_id`; `conversion` needs `value` (>= 0) and `currency` (ISO 4217); `sentiment` needs `score`
(-1..1) and `label`; `lead_captured` needs `form` and `prospect.email`; `capsule_viewed` and
`capsule_completed` take an optional flat object.

Errors: 400 lists every invalid field (`events[3].data.seconds`) and nothing is stored; 401 for a
missing, unknown or revoked key; 413 when the body exceeds {settings.INGEST_MAX_BODY_BYTES} bytes;
429 with `Retry-After` when the key's rate limit is exceeded.
"""


def read_body(request: HttpRequest) -> bytes:
    """The raw body, refusing an oversized one from its Content-Length before reading it."""
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise ApiError.invalid([FieldError("Content-Length", "must be a number of bytes")]) from None
    if length > settings.INGEST_MAX_BODY_BYTES:
        raise ApiError.too_large()
    try:
        return request.body
    except RequestDataTooBig:  # DATA_UPLOAD_MAX_MEMORY_SIZE, should it be set lower than our limit
        raise ApiError.too_large() from None


@router.post(
    "/events",
    response={200: IngestResponse, 400: ErrorOut, 401: ErrorOut, 413: ErrorOut, 429: ErrorOut},
    summary="Ingest capsule interaction events",
    description=_DESCRIPTION,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _REQUEST_SCHEMA, "examples": _EXAMPLES}},
        }
    },
)
def post_events(request: HttpRequest) -> dict[str, Any]:
    events = parse_events(read_body(request))
    return ingest_events(request.auth.account, events, actor_label=actor_label(request.auth)).as_dict()
