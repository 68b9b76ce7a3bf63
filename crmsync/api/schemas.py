"""The ingestion API's shapes: one event (a union over the event types), a batch, and the answers.

The models are strict (no silent coercion of "30" to 30, no unknown fields) because the capsule
platform is a program: a wrong type there is a bug to report, not to guess around. Each event type
carries its own ``data`` model, so the OpenAPI schema documents every type's fields.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)

from crmsync.api.errors import ApiError, FieldError, field_errors
from crmsync.models import EventType, normalise_email

MAX_EVENTS = settings.INGEST_MAX_EVENTS_PER_REQUEST
# Clocks drift; an event stamped a little ahead of ours is fine, one far ahead is a bug.
FUTURE_TOLERANCE = timedelta(minutes=5)


Id = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Text150 = Annotated[str, StringConstraints(strip_whitespace=True, max_length=150)]
Text200 = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)]
Text300 = Annotated[str, StringConstraints(strip_whitespace=True, max_length=300)]
LongText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=10_000)]


def _require_string(value: Any) -> Any:
    # JSON has no date type: accept only the ISO-8601 string, not a bare number of seconds.
    if not isinstance(value, str):
        raise ValueError("must be an ISO-8601 date-time string with a timezone, e.g. 2025-01-31T14:05:00Z")
    return value


Timestamp = Annotated[AwareDatetime, Strict(False), BeforeValidator(_require_string)]


def _not_in_future(value: datetime) -> datetime:
    # datetime.now(UTC) is what timezone.now() returns (USE_TZ is on), without a settings lookup per event.
    if value > datetime.now(UTC) + FUTURE_TOLERANCE:
        raise ValueError("must not be more than 5 minutes in the future")
    return value


@lru_cache(maxsize=8192)  # Django's validator is slow (~75 µs) and a batch repeats the same few people
def _email(value: str) -> str:
    email = normalise_email(value)
    try:
        validate_email(email)
    except DjangoValidationError:
        raise ValueError("must be a valid e-mail address") from None
    return email


Email = Annotated[
    str,
    StringConstraints(max_length=254),
    AfterValidator(_email),
    WithJsonSchema({"type": "string", "format": "email", "maxLength": 254}),
]


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an http:// or https:// URL")
    return value


Url = Annotated[str, StringConstraints(strip_whitespace=True, max_length=1000), AfterValidator(_http_url)]


def _scalar(value: Any) -> Any:
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):  # Python's json accepts NaN and Infinity; JSON (and jsonb) does not
            raise ValueError("must be a finite number")
        return value
    if isinstance(value, str):
        if len(value) > 1000:
            raise ValueError("must be at most 1000 characters")
        return value
    raise ValueError("must be a string, number, boolean or null (attributes are flat)")


Scalar = Annotated[
    Any, AfterValidator(_scalar), WithJsonSchema({"type": ["string", "number", "boolean", "null"], "maxLength": 1000})
]
FlatObject = Annotated[dict[Id, Scalar], Field(max_length=100)]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class CapsuleIn(StrictModel):
    id: Id
    title: Text300 = ""
    url: Url | None = None


class Utm(StrictModel):
    source: Text200 = ""
    medium: Text200 = ""
    campaign: Text200 = ""
    term: Text200 = ""
    content: Text200 = ""


class Consent(StrictModel):
    granted: bool
    source: Annotated[Text200, StringConstraints(min_length=1)] = Field(
        description="Where consent was asked, e.g. 'capsule form v2'."
    )
    at: Timestamp | None = Field(None, description="When it was given or refused; defaults to occurred_at.")


class ProspectIn(StrictModel):
    email: Email | None = None
    first_name: Text150 = ""
    last_name: Text150 = ""
    full_name: Text300 = Field("", description="Split into first and last name when those are absent.")
    phone: Annotated[str, StringConstraints(strip_whitespace=True, max_length=50)] = ""
    company: Text200 = ""
    job_title: Text200 = ""
    attributes: FlatObject = Field(default_factory=dict, description="Custom attributes: a flat object.")
    utm: Utm | None = None
    consent: Consent | None = None


# --- the type-specific data ---------------------------------------------------------------------


class QuestionAskedData(StrictModel):
    text: Annotated[LongText, StringConstraints(min_length=1)]
    answer_summary: LongText = ""


class TimeSpentData(StrictModel):
    seconds: Annotated[int, Field(ge=0, le=86_400)]


class ContentData(StrictModel):
    content_id: Id
    content_title: Text300 = ""
    content_url: Url | None = None


class CtaClickedData(StrictModel):
    cta_id: Id
    label: Text300 = ""
    url: Url | None = None


class ConversionData(StrictModel):
    value: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] = Field(
        description="ISO 4217 code, upper case.", examples=["EUR"]
    )
    name: Text300 = ""


class SentimentData(StrictModel):
    score: Annotated[float, Field(ge=-1, le=1, allow_inf_nan=False)]
    label: Literal["negative", "neutral", "positive"]


class LeadCapturedData(StrictModel):
    form: Annotated[dict[Id, LongText], Field(max_length=100)]


# --- events ----------------------------------------------------------------------------------------


class EventIn(StrictModel):
    """Fields every event has. Either ``prospect.email`` or ``visitor_id`` identifies who acted."""

    requires_email: ClassVar[bool] = False

    event_id: Id = Field(description="The capsule platform's event id; unique per account. Replays are ignored.")
    occurred_at: Annotated[Timestamp, AfterValidator(_not_in_future)]
    capsule: CapsuleIn | None = None
    visitor_id: Id | None = Field(None, description="Anonymous visitor id (cookie).")
    prospect: ProspectIn | None = Field(None, validate_default=True)

    @field_validator("prospect")
    @classmethod
    def _someone_acted(cls, prospect: ProspectIn | None, info: ValidationInfo) -> ProspectIn | None:
        email = prospect.email if prospect is not None else None
        if cls.requires_email and not email:
            raise ValueError("this event type needs prospect.email")
        # A visitor_id that failed its own validation is absent here; that error is already reported.
        if not email and "visitor_id" in info.data and not info.data["visitor_id"]:
            raise ValueError("either prospect.email or visitor_id is required")
        return prospect

    def data_dict(self) -> dict[str, Any]:
        data = getattr(self, "data", None)
        return data.model_dump(exclude_defaults=True) if isinstance(data, BaseModel) else dict(data or {})


class CapsuleViewed(EventIn):
    type: Literal["capsule_viewed"]
    data: FlatObject = Field(default_factory=dict, description="Optional, flat.")


class QuestionAsked(EventIn):
    type: Literal["question_asked"]
    data: QuestionAskedData


class TimeSpent(EventIn):
    type: Literal["time_spent"]
    data: TimeSpentData


class ContentAccessed(EventIn):
    type: Literal["content_accessed"]
    data: ContentData


class ContentDownloaded(EventIn):
    type: Literal["content_downloaded"]
    data: ContentData


class CtaClicked(EventIn):
    type: Literal["cta_clicked"]
    data: CtaClickedData


class Conversion(EventIn):
    type: Literal["conversion"]
    data: ConversionData


class Sentiment(EventIn):
    type: Literal["sentiment"]
    data: SentimentData


class CapsuleCompleted(EventIn):
    type: Literal["capsule_completed"]
    data: FlatObject = Field(default_factory=dict, description="Optional, flat.")


class LeadCaptured(EventIn):
    requires_email = True
    type: Literal["lead_captured"]
    data: LeadCapturedData


EVENT_CLASSES: tuple[type[EventIn], ...] = (
    CapsuleViewed,
    QuestionAsked,
    TimeSpent,
    ContentAccessed,
    ContentDownloaded,
    CtaClicked,
    Conversion,
    Sentiment,
    CapsuleCompleted,
    LeadCaptured,
)
assert {cls.model_fields["type"].annotation.__args__[0] for cls in EVENT_CLASSES} == set(EventType.values)

AnyEvent = Annotated[
    CapsuleViewed
    | QuestionAsked
    | TimeSpent
    | ContentAccessed
    | ContentDownloaded
    | CtaClicked
    | Conversion
    | Sentiment
    | CapsuleCompleted
    | LeadCaptured,
    Field(discriminator="type"),
]
# What crmsync.ingest accepts: an event that passed this module's validation.
ValidatedEvent = EventIn


class EventBatch(StrictModel):
    events: list[AnyEvent] = Field(min_length=1, max_length=MAX_EVENTS)


_single_event = TypeAdapter(AnyEvent)
_batch = TypeAdapter(EventBatch)


def parse_events(body: bytes) -> list[ValidatedEvent]:
    """Validate a request body: one event object, or ``{"events": [...]}``. Raises ApiError (400)."""
    try:
        payload = json.loads(body)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are both ValueErrors
        raise ApiError.invalid([FieldError("body", f"malformed JSON: {exc}")]) from None
    except RecursionError:  # thousands of nested brackets: not an event, and not worth a 500
        raise ApiError.invalid([FieldError("body", "malformed JSON: nested too deeply")]) from None
    if not isinstance(payload, dict):
        raise ApiError.invalid([FieldError("body", 'expected a JSON object: one event, or {"events": [...]}')])
    try:
        if "events" in payload:
            events = payload["events"]
            # Refuse an oversized batch before validating thousands of items only to reject them.
            if isinstance(events, list) and len(events) > MAX_EVENTS:
                message = f"at most {MAX_EVENTS} events per request, got {len(events)}"
                raise ApiError.invalid([FieldError("events", message)])
            return list(_batch.validate_python(payload).events)
        return [_single_event.validate_python(payload)]
    except ValidationError as exc:
        raise ApiError.invalid(field_errors(exc.errors(include_url=False), tags=EventType.values)) from None


def validate_event(payload: dict[str, Any]) -> ValidatedEvent:
    """Validate one event given as a Python dict (for callers other than the HTTP API)."""
    return _single_event.validate_python(payload)


# --- answers ---------------------------------------------------------------------------------------


class EventResult(BaseModel):
    event_id: str
    status: Literal["created", "duplicate", "suppressed"]
    prospect_id: int | None


class IngestResponse(BaseModel):
    accepted: int = Field(description="Events stored by this request.")
    duplicates: int = Field(description="Events whose event_id was already stored (or repeated in this request).")
    suppressed: int = Field(description="Events of an erased (suppressed) e-mail address: nothing was stored.")
    results: list[EventResult] = Field(description="One per event, in request order.")


class ConsentOut(BaseModel):
    granted: bool | None
    source: str
    at: datetime | None


class ProspectOut(BaseModel):
    id: int
    email: str
    first_name: str
    last_name: str
    full_name: str
    phone: str
    company: str
    job_title: str
    attributes: dict[str, Any]
    utm: dict[str, str]
    consent: ConsentOut
    created_at: datetime
    updated_at: datetime
    last_event_at: datetime | None


class ErrorOut(BaseModel):
    errors: list[FieldError]
