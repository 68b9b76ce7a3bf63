"""The one connector interface every CRM implements, and the values it speaks in.

Idempotency contract (DESIGN.md invariant 2) — every write a connector makes can be repeated
after a timeout, a crash or a retry without creating a second object in the CRM:

- ``upsert_people`` matches the stored CRM id first, then the CRM's dedupe key (e-mail), and
  only then creates. Repeating the same inputs updates the same records.
- ``log_activities``, ``add_notes``, ``create_tasks`` and ``upsert_deal`` carry our own key
  (the capsule event id, or a trigger firing id). A connector stores that key in the CRM (an
  external-id / unique property) or finds the object by it before writing, so a second call
  with the same key answers with the object made the first time.
- Batch methods return one outcome per input, in input order. One bad record never fails its
  batch: its outcome carries a ``CrmError`` of kind ``record``. Errors that concern the whole
  call (auth, rate limit, outage) are raised, and the caller retries the whole batch — safe
  because of the rules above.

Connectors do all HTTP through ``self.http`` (integrations.http), never through ``requests``
directly, and raise only ``integrations.errors`` exceptions.
"""

from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import requests

from integrations.errors import (
    AuthError,
    ConfigurationError,
    CrmError,
    NotFound,
    RateLimited,
    RecordError,
    RetryableError,
)
from integrations.http import CrmHttp, RateLimitSnapshot, int_header, retry_after_seconds
from integrations.registry import ProviderSpec

# Kinds of CRM object a connector is asked about; each connector maps them to its own names.
CONTACT, LEAD, DEAL, ACTIVITY, NOTE, TASK = "contact", "lead", "deal", "activity", "note", "task"
OBJECT_KINDS = (CONTACT, LEAD, DEAL, ACTIVITY, NOTE, TASK)


@dataclass(frozen=True)
class TokenSet:
    access_token: str
    refresh_token: str | None = None
    expires_at: dt.datetime | None = None
    scopes: tuple[str, ...] = ()
    # Where this connection's API lives when the CRM says so in the token answer
    # (Salesforce instance_url, Pipedrive/Zoho api_domain).
    api_base_url: str | None = None
    raw_fields: tuple[str, ...] = ()  # names of the fields the answer had, for diagnostics (no values)
    # Non-secret connection values besides the token (ProviderSpec.token_extra_fields).
    extra: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CrmIdentity:
    account_id: str  # portal / org / company id
    account_name: str
    user_email: str = ""
    user_id: str = ""


@dataclass(frozen=True)
class FieldSchema:
    name: str
    label: str
    type: str  # string, text, email, phone, number, boolean, date, datetime, picklist, multipicklist, url, other
    custom: bool = False
    required: bool = False
    read_only: bool = False
    options: tuple[str, ...] = ()  # picklist values
    max_length: int | None = None
    unique: bool = False


@dataclass(frozen=True)
class CrmRecord:
    crm_id: str
    fields: Mapping[str, Any]
    modified_at: dt.datetime | None = None


@dataclass(frozen=True)
class PersonInput:
    """One contact or lead to create or update."""

    key: str  # the caller's key for this input (our prospect id), echoed in the outcome
    email: str
    fields: Mapping[str, Any]
    crm_id: str | None = None  # the stored link, tried first


@dataclass(frozen=True)
class WriteOutcome:
    key: str
    crm_id: str | None = None
    created: bool = False
    error: CrmError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class ActivityInput:
    """A timeline entry on a person: a capsule view, content opened, a CTA click…"""

    key: str  # our event id: the idempotency key
    person_crm_id: str
    person_kind: str  # CONTACT or LEAD
    kind: str  # the capsule event type
    subject: str
    body: str
    occurred_at: dt.datetime


@dataclass(frozen=True)
class NoteInput:
    key: str
    person_crm_id: str
    person_kind: str
    body: str
    occurred_at: dt.datetime


@dataclass(frozen=True)
class TaskInput:
    key: str
    person_crm_id: str
    person_kind: str
    subject: str
    body: str
    due_at: dt.datetime
    owner_id: str | None = None


@dataclass(frozen=True)
class DealInput:
    key: str  # the conversion event id
    person_crm_id: str
    person_kind: str
    name: str
    amount: float | None
    currency: str | None
    stage: str | None = None
    close_date: dt.date | None = None


@dataclass(frozen=True)
class ChangeCursor:
    """A modified-since position with an id tie-break, so no change at a boundary is missed."""

    modified_at: dt.datetime
    last_id: str = ""


@dataclass(frozen=True)
class ChangePage:
    records: Sequence[CrmRecord]
    next_cursor: ChangeCursor | None
    has_more: bool = False


@dataclass(frozen=True)
class InboundChange:
    """One change a CRM told us about by webhook."""

    event_id: str
    object_kind: str
    crm_id: str
    change: str  # created, updated, deleted, merged, property
    occurred_at: dt.datetime | None = None
    properties: Mapping[str, Any] = field(default_factory=dict)
    source: str = ""  # who made the change, for echo suppression
    merged_into: str | None = None


@dataclass(frozen=True)
class BulkPeopleWrite:
    """How a connector with a bulk path wants person rows handed to it (``Connector.bulk_people_write``).

    When more than ``threshold`` person rows are due in a batch or manual run, the engine claims up
    to ``max_rows`` at once and passes them to one ``upsert_people`` call, whose write parts above
    the threshold go through the CRM's bulk API. ``lease_seconds`` covers the longest such call
    (a bulk job is asynchronous and may take minutes), so the rows are not reaped mid-job.
    """

    threshold: int
    max_rows: int
    lease_seconds: float


@dataclass
class ConnectionCredentials:
    """What a connector needs from a Connection, decrypted. Refreshed tokens are written back by
    integrations.credentials, never by the connector."""

    access_token: str
    api_base_url: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Connector(ABC):
    """Talks to one connected CRM account. Subclasses live in ``integrations/providers/<name>/``.

    Class-level methods (token exchange, webhook verification) need no connection; instance
    methods act for one connection with its credentials.
    """

    spec: ClassVar[ProviderSpec]

    def __init__(
        self,
        credentials: ConnectionCredentials,
        *,
        http: CrmHttp | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> None:
        self.credentials = credentials
        self.settings = dict(settings or {})
        self.http = http or self.make_http(credentials)

    # -- HTTP --------------------------------------------------------------------------------------
    @classmethod
    def auth_for(cls, credentials: ConnectionCredentials) -> requests.auth.AuthBase:
        """How the token travels; most CRMs take a Bearer header."""
        return BearerAuth(credentials.access_token)

    @classmethod
    def make_http(cls, credentials: ConnectionCredentials, **hooks: Any) -> CrmHttp:
        return CrmHttp(
            cls.spec.label,
            cls.spec.api_url(credentials.api_base_url),
            classify=cls.classify_error,
            parse_rate_limit=cls.parse_rate_limit,
            auth=cls.auth_for(credentials),
            secrets=[credentials.access_token],
            **hooks,
        )

    @classmethod
    def rate_bucket(cls, method: str, url: str) -> str:
        """Which limiter window a call counts against ("default", or e.g. "search" where the CRM
        limits search separately)."""
        return "default"

    @classmethod
    def error_message(cls, response: requests.Response) -> tuple[str, str]:
        """(message, code) from a CRM error body; providers override for their shapes."""
        try:
            body = response.json()
        except ValueError:
            return (response.text[:300] or response.reason or "no message"), ""
        if isinstance(body, list) and body and isinstance(body[0], dict):
            body = body[0]
        if isinstance(body, dict):
            message = body.get("message") or body.get("error_description") or body.get("error") or str(body)[:300]
            code = body.get("errorCode") or body.get("category") or body.get("code") or ""
            return str(message), str(code)
        return str(body)[:300], ""

    @classmethod
    def classify_error(cls, response: requests.Response) -> CrmError | None:
        """Map a non-2xx answer to the taxonomy. Providers override for their quirks."""
        status = response.status_code
        message, code = cls.error_message(response)
        if status == 429:
            return RateLimited(message, status=status, code=code, retry_after=retry_after_seconds(response.headers))
        if status == 401:
            return AuthError(message, status=status, code=code)
        if status == 403:
            return ConfigurationError(message, status=status, code=code)
        if status in (404, 410):
            return NotFound(message, status=status, code=code)
        if status == 408 or status >= 500:
            return RetryableError(message, status=status, code=code, retry_after=retry_after_seconds(response.headers))
        if status >= 400:
            return RecordError(message, status=status, code=code)
        return None

    @classmethod
    def parse_rate_limit(cls, headers: requests.structures.CaseInsensitiveDict) -> RateLimitSnapshot | None:
        """Read the provider's rate-limit headers named in its spec."""
        names = cls.spec.rate_limit.headers
        if not names or not any(headers.get(n) for n in names.values() if n):
            return None
        window_ms = int_header(headers, names.get("window_ms"))
        return RateLimitSnapshot(
            limit=int_header(headers, names.get("limit")),
            remaining=int_header(headers, names.get("remaining")),
            window_seconds=window_ms / 1000 if window_ms else None,
            daily_limit=int_header(headers, names.get("daily")),
            daily_remaining=int_header(headers, names.get("daily_remaining")),
            reset_seconds=retry_after_seconds(headers),
        )

    # -- tokens ----------------------------------------------------------------------------------
    @classmethod
    @abstractmethod
    def parse_token_response(cls, payload: Mapping[str, Any]) -> TokenSet:
        """Turn the token endpoint's JSON into a TokenSet; raise OAuthError for error answers
        (some CRMs send errors with HTTP 200)."""

    def revoke_token(self, token: str) -> bool:
        """Revoke at the CRM where it has an endpoint; False when it has none. Shared OAuth logic
        lives in integrations.oauth; override only for non-standard revoke calls."""
        from integrations.oauth import revoke_token

        return revoke_token(self.spec, token)

    # -- reading -----------------------------------------------------------------------------------
    @abstractmethod
    def identity(self) -> CrmIdentity:
        """The connected CRM account (and user) the credentials belong to."""

    @abstractmethod
    def describe_fields(self, object_kind: str) -> list[FieldSchema]:
        """Standard and custom fields of contacts, leads, deals or activities."""

    @abstractmethod
    def find_by_id(self, object_kind: str, crm_id: str) -> CrmRecord | None:
        """The record, or None when it was deleted (or merged away)."""

    @abstractmethod
    def find_by_email(self, object_kind: str, emails: Sequence[str]) -> dict[str, CrmRecord]:
        """Records keyed by lower-cased e-mail; e-mails not found are absent."""

    @abstractmethod
    def changes_since(self, object_kind: str, cursor: ChangeCursor | None, limit: int = 100) -> ChangePage:
        """Records modified after ``cursor`` (modified time, then id), oldest first."""

    # -- writing -----------------------------------------------------------------------------------
    @abstractmethod
    def upsert_people(self, object_kind: str, inputs: Sequence[PersonInput]) -> list[WriteOutcome]:
        """Create or update contacts or leads, in batches of ``spec.batch_sizes['upsert']``."""

    def bulk_people_write(self) -> BulkPeopleWrite | None:
        """Extension point: a connector whose CRM has a bulk API for people returns when and how
        to use it (see BulkPeopleWrite); the default None keeps ``spec.batch_sizes['upsert']``."""
        return None

    @abstractmethod
    def set_fields(self, object_kind: str, crm_id: str, fields: Mapping[str, Any]) -> None:
        """Write some fields of one record."""

    @abstractmethod
    def log_activities(self, inputs: Sequence[ActivityInput]) -> list[WriteOutcome]:
        """Timeline activities, each keyed by our event id (written once however often retried)."""

    @abstractmethod
    def add_notes(self, inputs: Sequence[NoteInput]) -> list[WriteOutcome]:
        """Notes on people, each keyed by our event id."""

    @abstractmethod
    def create_tasks(self, inputs: Sequence[TaskInput]) -> list[WriteOutcome]:
        """Tasks for the record's owner, each keyed by the trigger firing id."""

    def delete_person(self, object_kind: str, crm_id: str) -> None:
        """Delete (or archive, where the CRM only archives) one contact or lead: for test records
        and GDPR erasure. A record already gone counts as deleted. CRMs whose API cannot delete
        people keep this default, which says so."""
        raise ConfigurationError(f"{self.spec.label}'s API does not let us delete records", code="unsupported")

    @abstractmethod
    def upsert_deal(self, deal: DealInput) -> WriteOutcome:
        """Create or update the deal/opportunity for a conversion, keyed by its event id."""

    # -- inbound webhooks ----------------------------------------------------------------------------
    @classmethod
    def webhook_secret_for(cls, connection: Any) -> str:
        """The key this connection's inbound webhooks are verified with: a secret registered for the
        connection, else the OAuth app's client secret (HubSpot signs with it)."""
        return connection.webhook_secret or cls.spec.client_secret or ""

    @classmethod
    def verify_webhook(cls, method: str, url: str, headers: Mapping[str, str], body: bytes, secret: str) -> bool:
        """Whether an inbound webhook is authentic (constant-time comparison). Default: refuse."""
        return False

    @classmethod
    def parse_webhook(cls, body: bytes) -> list[InboundChange]:
        """The changes an authentic webhook body carries; unknown event types are skipped."""
        return []


class BearerAuth(requests.auth.AuthBase):
    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def __repr__(self) -> str:  # never show the token in a traceback's locals
        return "BearerAuth([REDACTED])"


def chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]
