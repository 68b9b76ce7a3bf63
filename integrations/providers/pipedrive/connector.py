"""The Pipedrive connector: API v2 through the HTTP seam, v1 only where v1 is the supported API.

Facts are crm-reference.md §3 (Pipedrive has no public spec: the official SDK's models are the
reference, §3.8). **API v2** for persons, organizations, deals, activities, search and fields —
their v1 routes are deprecated and out of support (2026-08-01), and v2 calls cost half the rate
tokens. **v1** for notes, leads, webhooks, the current user and activity types, through
pipedrive-python-lib wrapped so its calls go through the seam (integrations.providers.pipedrive.v1).

Credentials: an OAuth access token travels as ``Authorization: Bearer``; an API token (40 hex
characters, one per user and company) in the ``x-api-token`` header, as Pipedrive's guide and
SDKs send it — never in the URL, where HTTP libraries log it. Both are known to the seam as
secrets, so no log line or error text can carry them.

Calls per operation (the rate limit is the floor of every sync, issue 9):

- ``upsert_people``: per person, 1 (stored id: PATCH) or 2 (search by e-mail, then PATCH or POST);
  +1 PATCH when the e-mail or phone is new on the person; Lead connections +1 or 2 v1 calls for a
  person first created or found by e-mail. ``org_name`` adds one search (and at most one create)
  per company per process. Up to 4 people at once, paced below the token's stated limit and
  searches below Pipedrive's search limit (10 per 2 s, pacing.py): that limit sets the pace of a
  first load, about 4.5 new persons a second (docs/SCALING.md).
- ``log_activities`` / ``create_tasks``: 1 list per person of the batch + 1 POST per new key;
  the first call of a process also reads (and once per company creates) the activity type.
- ``add_notes``: 1 v1 list per person of the batch + 1 v1 POST per new key.
- ``upsert_deal``: 1 list of the person's deals + 1 POST (new), 1 PATCH (changed) or nothing; the
  key field is read once per process (created once per company).
- ``find_by_email``: 1 search per address; ``find_by_id``, ``set_fields``: 1 call (+1 for a new
  e-mail or phone); ``describe_fields``: 1 call per 500 fields, cached ten minutes;
  ``changes_since``: 1 call per 500 records; ``identity``: 1 v1 call (``/v1/users/me``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import requests

from integrations.concurrency import run_tasks
from integrations.connector import (
    LEAD,
    NOTE,
    ActivityInput,
    BearerAuth,
    ChangeCursor,
    ChangePage,
    ConnectionCredentials,
    Connector,
    CrmIdentity,
    CrmRecord,
    DealInput,
    FieldSchema,
    InboundChange,
    NoteInput,
    PersonInput,
    TaskInput,
    TokenSet,
    WriteOutcome,
)
from integrations.errors import ConfigurationError, CrmError, NotFound, OAuthError, RetryableError
from integrations.http import CrmHttp, RateLimitSnapshot
from integrations.providers.pipedrive import failures, fields, pacing, polling, webhooks, wire
from integrations.providers.pipedrive.engagement import Engagement, Keyed, forget_cached, note_body
from integrations.providers.pipedrive.people import (
    WRITE_CONCURRENCY,
    People,
    forget_organizations,
    normal_email,
    person_id,
)
from integrations.providers.pipedrive.provider import PROVIDER
from integrations.providers.pipedrive.v1 import V1


class ApiTokenAuth(requests.auth.AuthBase):
    """A Pipedrive API token in the ``x-api-token`` header (crm-reference §3.1)."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["x-api-token"] = self._token
        return request

    def __repr__(self) -> str:  # never show the token in a traceback's locals
        return "ApiTokenAuth([REDACTED])"


class PipedriveConnector(Connector):
    spec = PROVIDER

    # Inbound sync's optional tables (integrations.inbound.extensions).
    preference_fields: ClassVar[dict[str, str]] = {"marketing_unsubscribed": "unsubscribed"}
    owner_fields: ClassVar[dict[str, str]] = {"owner_id": "owner_id"}
    deal_stage_field: ClassVar[str] = "stage_id"
    deal_fields: ClassVar[dict[str, str]] = {"title": "name", "value": "amount", "currency": "currency"}

    def __init__(
        self,
        credentials: ConnectionCredentials,
        *,
        http: CrmHttp | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(credentials, http=http, settings=settings)
        self.v1 = V1(self.http)
        token = credentials.access_token
        self.people = People(
            self.http, self.catalog("person"), self.v1, token, leads=self.settings.get("record_type") == LEAD
        )
        self.engagement = Engagement(self.http, self.v1, self.catalog("deal"), token)

    # -- HTTP ------------------------------------------------------------------------------------------
    @classmethod
    def auth_for(cls, credentials: ConnectionCredentials) -> requests.auth.AuthBase:
        """Bearer for OAuth access tokens, ``x-api-token`` for API tokens.

        Which one a credential is: ``credentials.extra["auth_kind"]`` when the caller says so;
        otherwise its shape — a Pipedrive API token is 40 hex characters (crm-reference §3.1 and
        the example in Pipedrive's authentication guide), an OAuth access token never is.
        ``Connection.credentials()`` passes no auth kind today, so the shape decides.
        """
        kind = credentials.extra.get("auth_kind")
        if kind == "oauth" or (kind is None and not wire.is_api_token(credentials.access_token)):
            return BearerAuth(credentials.access_token)
        return ApiTokenAuth(credentials.access_token)

    @classmethod
    def make_http(cls, credentials: ConnectionCredentials, **hooks: Any) -> CrmHttp:
        """The seam, with the pacer (integrations.providers.pipedrive.pacing) after the engine's hooks."""
        base = cls.spec.api_url(credentials.api_base_url)
        pacer = pacing.pacer_for(base, credentials.access_token, cls.spec.rate_limit)
        search_pacer = pacing.search_pacer_for(base, credentials.access_token)
        before, after = hooks.pop("before_request", None), hooks.pop("after_response", None)

        def paced(method: str, url: str) -> None:
            if before is not None:
                before(method, url)
            if pacing.is_search(url):
                search_pacer.acquire()
            pacer.acquire()

        def observed(response: requests.Response, snapshot: RateLimitSnapshot | None) -> None:
            pacer.answered()
            if pacing.is_search(response.request.url or ""):
                search_pacer.answered()
            pacer.observe(snapshot)
            if after is not None:
                after(response, snapshot)

        return CrmHttp(
            cls.spec.label,
            base,
            classify=cls.classify_error,
            parse_rate_limit=cls.parse_rate_limit,
            auth=cls.auth_for(credentials),
            secrets=[credentials.access_token],
            before_request=paced,
            after_response=observed,
            **hooks,
        )

    @classmethod
    def classify_error(cls, response: requests.Response) -> CrmError | None:
        return failures.classify(response)

    @classmethod
    def error_message(cls, response: requests.Response) -> tuple[str, str]:
        return failures.describe(response)

    @classmethod
    def parse_rate_limit(cls, headers: requests.structures.CaseInsensitiveDict) -> RateLimitSnapshot | None:
        return failures.snapshot(headers)

    def catalog(self, entity: str) -> fields.Catalog:
        return fields.Catalog(self.http, self.credentials.access_token, entity)

    # -- tokens ------------------------------------------------------------------------------------------
    @classmethod
    def parse_token_response(cls, payload: Mapping[str, Any]) -> TokenSet:
        """A token answer (§3.1): ``api_domain`` is where this company's API lives; ``scope`` is
        comma-separated; refresh tokens are single-use, so the new one always replaces the old."""
        token = payload.get("access_token")
        if not isinstance(token, str) or not token:
            error = payload.get("error") if isinstance(payload.get("error"), str) else None
            description = payload.get("error_description") or payload.get("message") or "the answer has no access_token"
            raise OAuthError(error or "invalid_response", str(description)[:300])
        expires_at = None
        if payload.get("expires_in") is not None:
            try:
                expires_at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=int(payload["expires_in"]))
            except (TypeError, ValueError):
                raise OAuthError("invalid_response", "expires_in is not a number of seconds") from None
        domain = payload.get("api_domain")
        if domain is not None and (not isinstance(domain, str) or not domain.startswith(("https://", "http://"))):
            raise OAuthError("invalid_response", "api_domain is not a URL")
        scope = payload.get("scope")
        refresh = payload.get("refresh_token")
        return TokenSet(
            access_token=token,
            refresh_token=refresh if isinstance(refresh, str) and refresh else None,
            expires_at=expires_at,
            scopes=tuple(s.strip() for s in scope.split(",") if s.strip()) if isinstance(scope, str) else (),
            api_base_url=domain.rstrip("/") if domain else None,
            raw_fields=tuple(sorted(str(k) for k in payload)),
        )

    def revoke_token(self, token: str) -> bool:
        """``POST /oauth/revoke`` with the token and HTTP Basic client credentials (§3.1).

        Overridden because integrations.oauth.revoke_token sends no client credentials for
        ``client_auth="basic"`` providers. A token Pipedrive no longer knows counts as revoked.
        """
        url = self.spec.oauth_endpoint("revoke")
        if not url or not token or not self.spec.oauth_configured:
            return False

        def refusal(response: requests.Response) -> CrmError | None:
            if response.status_code == 429 or response.status_code >= 500:
                return RetryableError(
                    f"the revoke endpoint answered {response.status_code}", status=response.status_code
                )
            return None

        http = CrmHttp(
            f"{self.spec.label} OAuth", url, classify=refusal, secrets=[token, self.spec.client_secret or ""]
        )
        hint = "access_token" if token == self.credentials.access_token else "refresh_token"
        response = http.request(
            "POST",
            url,
            data={"token": token, "token_type_hint": hint},
            auth=requests.auth.HTTPBasicAuth(self.spec.client_id or "", self.spec.client_secret or ""),
        )
        return response.ok or response.status_code == 400

    # -- reading -------------------------------------------------------------------------------------------
    def identity(self) -> CrmIdentity:
        me = self.v1.me()
        company = me.get("company_id")
        if not company:
            raise ConfigurationError("Pipedrive did not say which company this token belongs to", code="no_company")
        return CrmIdentity(
            account_id=str(company),
            account_name=str(me.get("company_name") or f"Pipedrive company {company}"),
            user_email=str(me.get("email") or ""),
            user_id=str(me.get("id") or ""),
        )

    def describe_fields(self, object_kind: str) -> list[FieldSchema]:
        if object_kind == NOTE:
            return [FieldSchema("content", "Content", "text", required=True)]
        entity = wire.entity(object_kind)
        return fields.schemas(entity, self.catalog(entity).defs(fresh=True))

    def _read(self, entity: str, crm_id: str) -> CrmRecord | None:
        try:
            ident = person_id(crm_id)
            raw = wire.data_of(self.http.json("GET", f"{wire.V2}/{wire.COLLECTIONS[entity]}/{ident}")) or {}
        except NotFound:
            return None
        if raw.get("is_deleted"):
            return None
        defs = self.catalog(entity).defs() if entity in ("person", "deal", "organization") else {}
        return CrmRecord(str(raw["id"]), fields.readable(raw, defs), wire.parse_time(raw.get("update_time")))

    def find_by_id(self, object_kind: str, crm_id: str, *, properties: Sequence[str] | None = None) -> CrmRecord | None:
        """The record (v2 answers every field; ``properties`` is accepted for inbound sync and not needed)."""
        return self._read(wire.entity(object_kind), crm_id)

    def find_by_email(self, object_kind: str, emails: Sequence[str]) -> dict[str, CrmRecord]:
        """One v2 exact-match search per address; the oldest person holding it when several do."""
        if wire.entity(object_kind) != "person":
            raise ConfigurationError(f"Pipedrive finds only persons by e-mail, not {object_kind}", code="no_email_key")
        unique = list(dict.fromkeys(normal_email(e) for e in emails if normal_email(e)))
        searches = [lambda e=e: (e, self.people.search(e)) for e in unique]
        results = run_tasks(searches, main=self.http, workers=WRITE_CONCURRENCY, thread_name="pipedrive")
        return {email: self.people.record_of_item(items[0]) for email, items in (r for r in results if r) if items}

    def changes_since(
        self,
        object_kind: str,
        cursor: ChangeCursor | None,
        limit: int = 100,
        *,
        properties: Sequence[str] | None = None,
    ) -> ChangePage:
        entity = wire.entity(object_kind)
        if entity not in ("person", "deal"):
            raise ConfigurationError(
                f"Pipedrive changes are polled for persons and deals, not {object_kind}", code="not_polled"
            )
        defs = self.catalog(entity).defs()

        def to_record(raw: Mapping[str, Any]) -> CrmRecord:
            return CrmRecord(str(raw["id"]), fields.readable(raw, defs), polling.record_time(raw))

        def fetch(params: dict[str, Any]) -> Mapping[str, Any]:
            return self.http.json("GET", f"{wire.V2}/{wire.COLLECTIONS[entity]}", params=params) or {}

        return polling.changes_page(fetch, to_record, cursor, limit)

    def people_of_deal(self, crm_id: str) -> list[str]:
        record = self._read("deal", crm_id)
        return [str(record.fields["person_id"])] if record and record.fields.get("person_id") else []

    # -- writing ----------------------------------------------------------------------------------------------
    def upsert_people(self, object_kind: str, inputs: Sequence[PersonInput]) -> list[WriteOutcome]:
        """Persons by stored id, then e-mail, then created (integrations.providers.pipedrive.people)."""
        if wire.entity(object_kind) != "person":
            raise ConfigurationError(f"Pipedrive people are persons, not {object_kind}", code="not_a_person")
        return self.people.upsert(inputs)

    def set_fields(self, object_kind: str, crm_id: str, values: Mapping[str, Any]) -> None:
        entity = wire.entity(object_kind)
        if entity == "person":
            self.people.set_fields(crm_id, values)
            return
        body = self.catalog(entity).body(values)
        self.http.json("PATCH", f"{wire.V2}/{wire.COLLECTIONS[entity]}/{person_id(crm_id)}", json=body)

    def log_activities(self, inputs: Sequence[ActivityInput]) -> list[WriteOutcome]:
        """Done activities of our "Capsule" type on the person, dated when the prospect acted."""
        kind = self.engagement.activity_type() if inputs else ""
        items = []
        for a in inputs:
            at = a.occurred_at.astimezone(dt.UTC)
            body = {
                "subject": a.subject[:255],
                "type": kind,
                "done": True,
                "due_date": at.date().isoformat(),
                "due_time": at.strftime("%H:%M"),
                "note": wire.html_text(a.subject, a.body, a.key),
            }
            items.append(Keyed(a.key, a.person_crm_id, body))
        return self.engagement.activities(items)

    def create_tasks(self, inputs: Sequence[TaskInput]) -> list[WriteOutcome]:
        """Open activities of type "task", due at ``due_at``, for ``owner_id`` when it is a Pipedrive user id."""
        items = []
        for t in inputs:
            due = t.due_at.astimezone(dt.UTC)
            body: dict[str, Any] = {
                "subject": t.subject[:255],
                "type": "task",
                "done": False,
                "due_date": due.date().isoformat(),
                "due_time": due.strftime("%H:%M"),
                "note": wire.html_text("", t.body, t.key),
            }
            if t.owner_id and str(t.owner_id).isdigit():
                body["owner_id"] = int(t.owner_id)
            items.append(Keyed(t.key, t.person_crm_id, body))
        return self.engagement.activities(items)

    def add_notes(self, inputs: Sequence[NoteInput]) -> list[WriteOutcome]:
        items = [
            Keyed(n.key, n.person_crm_id, note_body(wire.html_text("", n.body, n.key), n.occurred_at)) for n in inputs
        ]
        return self.engagement.notes(items)

    def upsert_deal(self, deal: DealInput) -> WriteOutcome:
        return self.engagement.upsert_deal(deal)

    # -- custom fields (mapping.provisioning) ---------------------------------------------------------------
    def create_custom_field(self, object_kind: str, field: Any) -> FieldSchema:
        """A custom person or deal field for one of our definitions (mapping.provisioning), found by
        alias or label first: an existing one is returned as it is. Pipedrive gives the new field a
        hash; a "capsule_…" definition is created under a name whose slug is that alias, so the
        mapping's rows find it (see integrations.providers.pipedrive.fields)."""
        entity = wire.entity(object_kind)
        if entity not in ("person", "deal", "organization"):
            raise ConfigurationError(
                f"Pipedrive cannot create {object_kind} fields through its API", code="no_field_api"
            )
        catalog = self.catalog(entity)
        found = catalog.resolve(field.name) or catalog.custom_named(field.label)
        if found is None:
            name = field.label
            if field.name.startswith(fields.ALIAS_PREFIX) and fields.slug(name) != field.name:
                name = field.name.replace("_", " ").capitalize()  # so that its alias is the name asked for
            body: dict[str, Any] = {
                "field_name": name,
                "field_type": fields.CREATE_TYPES.get(field.type, "varchar"),
            }
            if field.type in ("picklist", "multipicklist"):
                body["options"] = [{"label": option} for option in field.options]
            made = wire.data_of(self.http.json("POST", f"{wire.V2}/{wire.FIELD_ROUTES[entity]}", json=body)) or {}
            catalog.forget()
            found = fields.parse_defs([made]).get(str(made.get("field_code")))
            if found is None:
                raise RetryableError("Pipedrive answered the new field without its field_code", code="no_result")
        return fields.to_schema(entity, found)

    # -- inbound webhooks -----------------------------------------------------------------------------------
    @classmethod
    def verify_webhook(cls, method: str, url: str, headers: Mapping[str, str], body: bytes, secret: str) -> bool:
        """HTTP Basic credentials of the delivery against the connection's webhook secret (constant time)."""
        return webhooks.verify(headers, secret)

    @classmethod
    def parse_webhook(cls, body: bytes) -> list[InboundChange]:
        return webhooks.parse(body)

    @classmethod
    def is_own_change(cls, change: InboundChange, connection: Any) -> bool:
        """Made through the API by the user whose credentials registered the webhook: us (§11.9)."""
        return webhooks.is_own(change.source)

    def register_webhooks(self, callback_url: str, secret: str) -> str:
        self.http.add_secret(secret)
        return webhooks.register(self.v1, callback_url, secret)

    def unregister_webhooks(self, ref: str) -> None:
        webhooks.unregister(self.v1, ref)


def forget_process_caches() -> None:
    """Drop what this process remembers about Pipedrive companies: field definitions, the activity
    type and deal key field, organizations by name, and pacers (for tests that reset a sandbox)."""
    fields.forget_fields()
    forget_cached()
    forget_organizations()
    pacing.forget_pacers()
