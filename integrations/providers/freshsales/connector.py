"""The Freshsales (Freshworks CRM) connector: REST API with ``Authorization: Token token=<API key>``
on the account's own host (crm-reference §7).

Freshsales has no synchronous batch writes, so each item costs a call; a few run at once
(``write_concurrency``, 4) within the engine's shared limiter (400 a minute, and the hourly quota
read from ``x-ratelimit-remaining``). Calls per operation:

- ``identity``: ``GET /selector/owners`` (verifies the key; the account is the API host).
- ``describe_fields``: ``GET /settings/contacts/fields`` (deals: ``/settings/deals/fields``).
- ``find_by_id``: one ``GET``; ``find_by_email``: one ``GET /lookup`` per address.
- ``upsert_people``: one call per person — ``PUT /contacts/{id}`` with a stored id, else
  ``POST /contacts/upsert`` keyed by e-mail (201 created / 200 updated).
- ``log_activities`` / ``add_notes`` / ``create_tasks``: one ``GET /contacts/{id}?include=…`` per
  contact in the batch (finds our keys already written), then one ``POST`` per new item;
  ``log_activities`` reads ``GET /selector/sales_activity_types`` once per connector.
- ``upsert_deal``: ``GET /settings/deals/fields`` once, one ``POST /filtered_search/deal`` on the
  key field, one ``POST /deals`` when new (``GET /selector/deal_stages`` once when a stage is named).
- ``set_fields``: one ``PUT``; ``changes_since``: ``GET /{contacts|deals}/filters`` once, then list
  view pages (usually one).

Activities are **sales activities** of the type "Capsule activity" when an admin has added it
(Admin settings → Sales activities), otherwise **notes**: a capsule view is not a call or a
meeting, and notes exist in every account. Questions (``add_notes``) are always notes.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import requests

from integrations.concurrency import ThreadSeams, run_bounded
from integrations.connector import (
    CONTACT,
    DEAL,
    ActivityInput,
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
from integrations.errors import ConfigurationError, CrmError, NotFound, OAuthError, RecordError
from integrations.http import CrmHttp, RateLimitSnapshot
from integrations.providers.freshsales import failures, keyed, people, polling, webhooks, wire
from integrations.providers.freshsales.auth import FreshsalesAuth
from integrations.providers.freshsales.keys import CONVERSION_KEY_FIELD, CONVERSION_KEY_LABEL
from integrations.providers.freshsales.provider import PROVIDER

CAPSULE_ACTIVITY_TYPE = "Capsule activity"
WON_STAGE = "won"
RESOURCES = {CONTACT: "contacts", DEAL: "deals"}


class FreshsalesConnector(Connector):
    spec = PROVIDER

    # Inbound extension points (docs/ADDING_A_CRM.md). Records carry ``updater_id`` but the API
    # does not say which user a key belongs to, so there is no ``is_own_change``: echoes are
    # caught by comparing with what we last sent.
    preference_fields: dict[str, str] = {"do_not_disturb": "do_not_contact", "cf_unsubscribed": "unsubscribed"}
    owner_fields: dict[str, str] = {"owner_id": "owner_id"}
    deal_stage_field = "deal_stage_id"
    deal_fields: dict[str, str] = {"name": "name", "amount": "amount"}

    def __init__(self, credentials: ConnectionCredentials, **kwargs: Any) -> None:
        super().__init__(credentials, **kwargs)
        self._lock = threading.Lock()
        self._cache: dict[str, Any] = {}
        self._seams: ThreadSeams | None = None

    # -- HTTP ----------------------------------------------------------------------------------------
    @classmethod
    def auth_for(cls, credentials: ConnectionCredentials) -> requests.auth.AuthBase:
        return FreshsalesAuth(credentials.access_token)

    @classmethod
    def make_http(cls, credentials: ConnectionCredentials, **hooks: Any) -> CrmHttp:
        return CrmHttp(
            cls.spec.label,
            wire.api_base(cls.spec.api_url(credentials.api_base_url)),
            classify=cls.classify_error,
            parse_rate_limit=cls.parse_rate_limit,
            auth=cls.auth_for(credentials),
            secrets=[credentials.access_token],
            **hooks,
        )

    @classmethod
    def classify_error(cls, response: requests.Response) -> CrmError | None:
        return failures.classify(response)

    @classmethod
    def error_message(cls, response: requests.Response) -> tuple[str, str]:
        return failures.describe(response), str(response.status_code)

    @classmethod
    def parse_rate_limit(cls, headers: requests.structures.CaseInsensitiveDict) -> RateLimitSnapshot | None:
        return failures.rate_snapshot(headers)

    def fork_http(self) -> CrmHttp:
        return type(self).make_http(
            self.credentials,
            timeout=self.http.timeout,
            before_request=self.http.before_request,
            after_response=self.http.after_response,
        )

    @property
    def seams(self) -> ThreadSeams:
        """Worker threads' seams, copies of the current ``http`` (which a caller may replace)."""
        if self._seams is None or self._seams.main is not self.http:
            self._seams = ThreadSeams(self.http, self.fork_http)
        return self._seams

    def parallel(self, items: Sequence[Any], work: Callable[[CrmHttp, Any], Any]) -> list[Any]:
        workers = int(self.settings.get("concurrency") or self.spec.batch_sizes.get("write_concurrency", 4))
        return run_bounded(items, work, seams=self.seams, workers=max(1, workers), thread_name="freshsales")

    def _once(self, name: str, load: Callable[[], Any]) -> Any:
        with self._lock:
            if name not in self._cache:
                self._cache[name] = load()
            return self._cache[name]

    # -- tokens ----------------------------------------------------------------------------------------
    @classmethod
    def parse_token_response(cls, payload: Mapping[str, Any]) -> TokenSet:
        """Freshsales' CRM API takes API keys only (§7.1): there is no token endpoint to answer."""
        raise OAuthError("unsupported_grant_type", "Freshsales connections use an API key, not OAuth")

    # -- reading ---------------------------------------------------------------------------------------
    def identity(self) -> CrmIdentity:
        """The account is its host (``<alias>.myfreshworks.com``); ``/selector/owners`` proves the key.
        Which user the key belongs to is not in the API, so the user is left empty."""
        users = (self.http.json("GET", "/selector/owners") or {}).get("users")
        if not isinstance(users, list):
            raise ConfigurationError("Freshsales did not list the account's users", code="no_users")
        host = urlsplit(self.http.base_url).netloc
        alias = host.split(".")[0] if host.endswith((".myfreshworks.com", ".freshsales.io")) else host
        return CrmIdentity(account_id=host, account_name=f"Freshsales {alias}")

    def describe_fields(self, object_kind: str) -> list[FieldSchema]:
        if object_kind in wire.ENGAGEMENT_FIELDS:
            return list(wire.ENGAGEMENT_FIELDS[object_kind])
        model = self._model(object_kind)
        fields = (self.http.json("GET", f"/settings/{model}/fields") or {}).get("fields") or []
        return [wire.field_schema(f) for f in fields]

    def _model(self, object_kind: str) -> str:
        if object_kind not in RESOURCES:
            raise ConfigurationError(f"Freshsales has no {object_kind} records we sync", code="unsupported_kind")
        return RESOURCES[object_kind]

    def find_by_id(self, object_kind: str, crm_id: str) -> CrmRecord | None:
        model = self._model(object_kind)
        if not str(crm_id).isdigit():
            return None
        try:
            answer = self.http.json("GET", f"/{model}/{crm_id}") or {}
        except NotFound:
            return None
        record = answer.get(model[:-1])
        return wire.flatten(record) if record else None

    def find_by_email(self, object_kind: str, emails: Sequence[str]) -> dict[str, CrmRecord]:
        self._model(object_kind)
        return people.find_by_email(self, emails)

    def changes_since(self, object_kind: str, cursor: ChangeCursor | None, limit: int = 100) -> ChangePage:
        model = self._model(object_kind)
        view = self._once(f"view:{model}", lambda: self._all_view(model))

        def read(page: int, sort_type: str) -> Mapping[str, Any]:
            params = {"page": page, "per_page": polling.PER_PAGE, "sort": "updated_at", "sort_type": sort_type}
            return self.http.json("GET", f"/{model}/view/{view}", params=params) or {}

        return polling.changes_page(read, model, cursor, limit)

    def _all_view(self, model: str) -> str:
        views = (self.http.json("GET", f"/{model}/filters") or {}).get("filters") or []
        chosen = next(
            (v for v in views if str(v.get("name", "")).lower().startswith("all ")), views[0] if views else None
        )
        if chosen is None:
            raise ConfigurationError(f"Freshsales has no list view of {model} to poll", code="no_view")
        return str(chosen["id"])

    def people_of_deal(self, crm_id: str) -> list[str]:
        record = self.find_by_id(DEAL, crm_id)
        return [str(c) for c in (record.fields.get("contact_ids") or [])] if record else []

    # -- writing ---------------------------------------------------------------------------------------
    def upsert_people(self, object_kind: str, inputs: Sequence[PersonInput]) -> list[WriteOutcome]:
        if object_kind != CONTACT:
            raise ConfigurationError("Freshsales people are contacts (leads are a contact stage)", code="not_a_person")
        return people.upsert(self, inputs)

    def set_fields(self, object_kind: str, crm_id: str, fields: Mapping[str, Any]) -> None:
        model = self._model(object_kind)
        if not str(crm_id).isdigit():
            raise NotFound(f"{crm_id!r} is not a Freshsales id", code="bad_id")
        self.http.json("PUT", f"/{model}/{crm_id}", json={model[:-1]: wire.encode(fields)})

    def _activity_type(self) -> str | None:
        def load() -> str | None:
            types = (self.http.json("GET", "/selector/sales_activity_types") or {}).get("sales_activity_types") or []
            match = next(
                (t for t in types if str(t.get("name", "")).strip().lower() == CAPSULE_ACTIVITY_TYPE.lower()), None
            )
            return str(match["id"]) if match else None

        return self._once("activity_type", load)

    def log_activities(self, inputs: Sequence[ActivityInput]) -> list[WriteOutcome]:
        if not inputs:
            return []
        type_id = self._activity_type()
        items = []
        for item in inputs:
            if type_id is None:
                items.append(keyed.Item(item.key, item.person_crm_id, "notes", {"description": item.body}))
                continue
            when = wire.iso(item.occurred_at)
            body = {
                "title": item.subject[:255],
                "notes": item.body,
                "sales_activity_type_id": int(type_id),
                "start_date": when,
                "end_date": when,
            }
            items.append(keyed.Item(item.key, item.person_crm_id, "sales_activities", body))
        return keyed.write(self, items)

    def add_notes(self, inputs: Sequence[NoteInput]) -> list[WriteOutcome]:
        return keyed.write(self, [keyed.Item(n.key, n.person_crm_id, "notes", {"description": n.body}) for n in inputs])

    def create_tasks(self, inputs: Sequence[TaskInput]) -> list[WriteOutcome]:
        """Open tasks due at ``due_at``, for ``owner_id`` when given (else the key's user)."""
        items, outcomes = [], {}
        for index, task in enumerate(inputs):
            if task.owner_id and not str(task.owner_id).isdigit():
                error = RecordError(
                    f"{task.owner_id!r} is not a Freshsales user id", code="bad_owner", field="owner_id"
                )
                outcomes[index] = WriteOutcome(task.key, error=error)
                continue
            body: dict[str, Any] = {
                "title": task.subject[:255],
                "description": task.body,
                "due_date": wire.iso(task.due_at),
            }
            if task.owner_id:
                body["owner_id"] = int(task.owner_id)
            items.append((index, keyed.Item(task.key, task.person_crm_id, "tasks", body)))
        written = keyed.write(self, [item for _i, item in items])
        outcomes.update({index: outcome for (index, _item), outcome in zip(items, written, strict=True)})
        return [outcomes[i] for i in range(len(inputs))]

    def _stage_id(self, wanted: str | None) -> int | None:
        stages = self._once(
            "stages", lambda: (self.http.json("GET", "/selector/deal_stages") or {}).get("deal_stages") or []
        )
        target = (wanted or WON_STAGE).strip().lower()
        for stage in stages:
            if target in (str(stage.get("name", "")).lower(), str(stage.get("id"))):
                return int(stage["id"])
        if wanted:
            raise RecordError(f"Freshsales has no deal stage {wanted!r}", code="unknown_stage", field="deal_stage_id")
        return None

    def upsert_deal(self, deal: DealInput) -> WriteOutcome:
        """A deal keyed by the conversion id in the custom field ``cf_capsule_conversion_id``, Won
        unless a stage is given, with the contact added. Found again on a replay, it is not written
        a second time (a salesperson may have moved it on since)."""
        fields = self._once("deal_fields", lambda: {f.name for f in self.describe_fields(DEAL)})
        if CONVERSION_KEY_FIELD not in fields:
            raise ConfigurationError(
                f"Add a deal custom field “{CONVERSION_KEY_LABEL}” (text, API name {CONVERSION_KEY_FIELD}) in "
                "Freshsales (Admin settings → Fields → Deals) so conversions are written once.",
                code="missing_key_field",
            )
        rule = [{"attribute": CONVERSION_KEY_FIELD, "operator": "is_in", "value": deal.key}]
        found = (self.http.json("POST", "/filtered_search/deal", json={"filter_rule": rule}) or {}).get("deals") or []
        if found:
            return WriteOutcome(deal.key, crm_id=str(found[0]["id"]))
        try:
            stage = self._stage_id(deal.stage)
        except RecordError as error:
            return WriteOutcome(deal.key, error=error)
        body: dict[str, Any] = {"name": deal.name[:255], "custom_field": {CONVERSION_KEY_FIELD: deal.key}}
        if deal.amount is not None:
            body["amount"] = deal.amount
        if stage is not None:
            body["deal_stage_id"] = stage
        body["expected_close"] = (deal.close_date or dt.datetime.now(dt.UTC).date()).isoformat()
        if str(deal.person_crm_id).isdigit():
            body["contacts_added_list"] = [int(deal.person_crm_id)]
        try:
            made = (self.http.json("POST", "/deals", json={"deal": body}) or {}).get("deal") or {}
        except RecordError as error:
            return WriteOutcome(deal.key, error=error)
        return WriteOutcome(deal.key, crm_id=str(made["id"]), created=True)

    # -- inbound webhooks ------------------------------------------------------------------------------
    @classmethod
    def webhook_secret_for(cls, connection: Any) -> str:
        """Only the connection's own secret: Freshsales has no app secret to sign with."""
        return str(connection.webhook_secret or "")

    @classmethod
    def verify_webhook(cls, method: str, url: str, headers: Mapping[str, str], body: bytes, secret: str) -> bool:
        return webhooks.verify(headers, secret)

    @classmethod
    def parse_webhook(cls, body: bytes) -> list[InboundChange]:
        return webhooks.parse(body)

    def register_webhooks(self, callback_url: str, secret: str) -> str:
        """Freshsales has no subscription API (§7.7): nothing is called. Registering gives the
        connection its secret; the admin pastes the callback URL and the secret header into a
        workflow's Trigger webhook action (docs/crms/freshsales.md). Returns a marker reference."""
        return "workflow:manual"

    def unregister_webhooks(self, ref: str) -> None:
        """Nothing to remove at Freshsales: the admin deletes the workflow; the secret dies with the connection."""
