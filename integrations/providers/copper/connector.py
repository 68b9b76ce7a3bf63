"""The Copper connector: Developer API v1 with API-key (or partner OAuth) headers.

Facts are crm-reference §6. Copper has no batch endpoints we can rely on, so people cost a call
or two each, run a few at once (``concurrency``, default 4) within the shared rate limiter of
the engine (180 requests a minute). What each operation costs in calls:

- ``upsert_people``: stored id → one ``PUT`` (two when our e-mail, phone or website must become
  the first of its list); no stored id → ``fetch_by_email`` (leads: one ``leads/search``) then one
  ``PUT`` or ``POST``. Plus one ``GET /custom_field_definitions`` per connector when a custom
  field is written.
- ``find_by_email``: one ``fetch_by_email`` per address (leads: one search per 50);
  ``find_by_id``, ``set_fields``: one call (``set_fields`` two when a list moves). Reads add the
  definitions once per connector (custom values are decoded by field).
- ``log_activities`` / ``add_notes``: ``GET /activity_types`` once per connector, one
  ``activities/search`` per batch (more pages only past 200 activities in the batch's time
  range), one ``POST /activities`` per new activity.
- ``create_tasks`` / ``upsert_deal``: per item one search on the key field and one create when
  new; the definitions once, and the key field's creation the first time in an account.
  ``upsert_deal`` with a stage reads ``GET /pipelines`` once.
- ``changes_since``: one search per page (more when one second holds more than 200 records).
- ``identity``: ``GET /account`` and ``GET /users/me``; ``describe_fields``: the definitions;
  ``delete_person``: one ``DELETE``; ``register_webhooks``: six ``POST /webhooks``.

Activities: a capsule view, content opened or downloaded, a CTA click are logged as Copper
activities of the user type "Capsule activity" when an admin has added that type (Settings →
Customize → Activity types), else of the built-in "Note" type — the one user type every account
has; calls and meetings would count as sales interactions that never happened. Questions
(``add_notes``) are always Notes.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import requests

from integrations.concurrency import ThreadSeams, run_bounded
from integrations.connector import (
    CONTACT,
    DEAL,
    LEAD,
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
from integrations.http import CrmHttp
from integrations.providers.copper import failures, keyed, people, polling, schema, webhooks, wire
from integrations.providers.copper.auth import CopperAuth, user_email
from integrations.providers.copper.keys import CONVERSION_KEY_FIELD, EVENT_KEY_FIELD, with_key_line
from integrations.providers.copper.provider import PROVIDER
from integrations.providers.copper.records import flatten

API_PATH = "/developer_api/v1"
NOTE_TYPE = "Note"
CAPSULE_ACTIVITY_TYPE = "Capsule activity"
DEFAULT_CONCURRENCY = 4


class CopperConnector(Connector):
    spec = PROVIDER

    # Inbound extension points (docs/ADDING_A_CRM.md). Copper's notifications and records do not
    # say who made a change, so there is no ``is_own_change``: echoes are caught by comparing with
    # what we last sent. People have no standard opt-out field; accounts that keep checkboxes
    # named "Unsubscribed" or "Do not contact" get them honoured.
    preference_fields: dict[str, str] = {"cf_unsubscribed": "unsubscribed", "cf_do_not_contact": "do_not_contact"}
    owner_fields: dict[str, str] = {"assignee_id": "owner_id"}
    deal_stage_field = "pipeline_stage_id"
    deal_fields: dict[str, str] = {"name": "name", "monetary_value": "amount", "monetary_unit": "currency"}

    def __init__(self, credentials: ConnectionCredentials, **kwargs: Any) -> None:
        super().__init__(credentials, **kwargs)
        self._custom: schema.CustomFields | None = None
        self._activity_types: dict[str, Any] | None = None
        self._pipelines: list[dict[str, Any]] | None = None
        self._lock = threading.Lock()
        self._seams: ThreadSeams | None = None

    # -- HTTP ----------------------------------------------------------------------------------------
    @classmethod
    def auth_for(cls, credentials: ConnectionCredentials) -> requests.auth.AuthBase:
        return CopperAuth(credentials.access_token, user_email(credentials))

    @classmethod
    def make_http(cls, credentials: ConnectionCredentials, **hooks: Any) -> CrmHttp:
        base = cls.spec.api_url(credentials.api_base_url)
        if not base.endswith(API_PATH):
            base += API_PATH  # COPPER_API_URL given as the host only
        api_key_mode = bool(user_email(credentials))
        return CrmHttp(
            cls.spec.label,
            base,
            classify=lambda response: failures.classify(response, api_key_mode=api_key_mode),
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
        return failures.describe(response), ""

    def fork_http(self) -> CrmHttp:
        """A seam for another thread, with this one's credentials, timeout and limiter hooks."""
        return type(self).make_http(
            self.credentials,
            timeout=self.http.timeout,
            before_request=self.http.before_request,
            after_response=self.http.after_response,
        )

    @property
    def workers(self) -> int:
        return max(1, int(self.settings.get("concurrency") or DEFAULT_CONCURRENCY))

    @property
    def seams(self) -> ThreadSeams:
        """Worker threads' seams, copies of the current ``http`` (which a caller may replace)."""
        if self._seams is None or self._seams.main is not self.http:
            self._seams = ThreadSeams(self.http, self.fork_http)
        return self._seams

    def parallel(self, items: Sequence[Any], work: Callable[[CrmHttp, Any], Any]) -> list[Any]:
        """``work(http, item)`` for each item, ``workers`` at once (integrations.concurrency)."""
        return run_bounded(items, work, seams=self.seams, workers=self.workers, thread_name="copper")

    # -- account settings, read once per connector ----------------------------------------------------
    def custom_fields(self) -> schema.CustomFields:
        with self._lock:
            if self._custom is None:
                self._custom = schema.CustomFields(self.http.json("GET", "/custom_field_definitions") or [])
            return self._custom

    def forget_custom_fields(self) -> None:
        with self._lock:
            self._custom = None

    def _activity_type(self, name: str) -> int | None:
        if self._activity_types is None:
            self._activity_types = self.http.json("GET", "/activity_types") or {}
        for kind in self._activity_types.get("user") or []:
            if str(kind.get("name") or "").strip().lower() == name.lower() and not kind.get("is_disabled"):
                return int(kind["id"])
        return None

    def _note_type(self) -> int:
        note = self._activity_type(NOTE_TYPE)
        if note is None:
            raise ConfigurationError("Copper's Note activity type is missing or disabled", code="no_note_type")
        return note

    # -- tokens ----------------------------------------------------------------------------------------
    @classmethod
    def parse_token_response(cls, payload: Mapping[str, Any]) -> TokenSet:
        """``{"access_token", "token_type": "Bearer", "scope": "developer/v1/all"}`` (§6.1); a
        ``refresh_token`` or ``expires_in`` is kept when Copper sends one (UNVERIFIED)."""
        if payload.get("error"):
            raise OAuthError(str(payload["error"]), str(payload.get("error_description") or "")[:300])
        token = payload.get("access_token")
        if not isinstance(token, str) or not token:
            raise OAuthError("invalid_response", "the answer has no access_token")
        expires_at = None
        if payload.get("expires_in") is not None:
            try:
                expires_at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=int(payload["expires_in"]))
            except (TypeError, ValueError):
                raise OAuthError("invalid_response", "expires_in is not a number of seconds") from None
        refresh = payload.get("refresh_token")
        scope = payload.get("scope")
        return TokenSet(
            access_token=token,
            refresh_token=refresh if isinstance(refresh, str) and refresh else None,
            expires_at=expires_at,
            scopes=tuple(scope.split()) if isinstance(scope, str) else (),
            raw_fields=tuple(sorted(str(k) for k in payload)),
        )

    # -- reading ---------------------------------------------------------------------------------------
    def identity(self) -> CrmIdentity:
        """The account (``GET /account``) and the user the key or token acts as (``/users/me``)."""
        account = self.http.json("GET", "/account") or {}
        me = self.http.json("GET", "/users/me") or {}
        if account.get("id") is None:
            raise ConfigurationError("Copper did not say which account this key belongs to", code="no_account")
        return CrmIdentity(
            account_id=str(account["id"]),
            account_name=str(account.get("name") or f"Copper account {account['id']}"),
            user_email=str(me.get("email") or user_email(self.credentials)),
            user_id=str(me.get("id") or ""),
        )

    def describe_fields(self, object_kind: str) -> list[FieldSchema]:
        return schema.describe(object_kind, self.custom_fields())

    def find_by_id(self, object_kind: str, crm_id: str) -> CrmRecord | None:
        number = people.record_id(crm_id)
        if number is None:
            return None
        try:
            record = self.http.json("GET", f"/{wire.resource_for(object_kind)}/{number}")
        except NotFound:
            return None
        return flatten(object_kind, record, self.custom_fields())

    def find_by_email(self, object_kind: str, emails: Sequence[str]) -> dict[str, CrmRecord]:
        return people.find_by_email(self, object_kind, emails)

    def changes_since(self, object_kind: str, cursor: ChangeCursor | None, limit: int = 100) -> ChangePage:
        resource = wire.resource_for(object_kind)
        custom = self.custom_fields()

        def search(body: dict[str, Any]) -> list[Mapping[str, Any]]:
            return self.http.json("POST", f"/{resource}/search", json=body) or []

        return polling.changes_page(search, lambda row: flatten(object_kind, row, custom), cursor, limit)

    def people_of_deal(self, crm_id: str) -> list[str]:
        record = self.find_by_id(DEAL, crm_id)
        contact = record.fields.get("primary_contact_id") if record else None
        return [str(contact)] if contact else []

    # -- people ----------------------------------------------------------------------------------------
    def upsert_people(self, object_kind: str, inputs: Sequence[PersonInput]) -> list[WriteOutcome]:
        if object_kind not in (CONTACT, LEAD):
            raise ConfigurationError(f"Copper people are People or Leads, not {object_kind}", code="not_a_person")
        return people.PeopleWriter(self, object_kind).upsert(inputs)

    def set_fields(self, object_kind: str, crm_id: str, fields: Mapping[str, Any]) -> None:
        if object_kind in (CONTACT, LEAD):
            custom = self.custom_fields() if any(str(n).startswith(schema.CUSTOM_PREFIX) for n in fields) else None
            person = PersonInput(key=str(crm_id), email=str(fields.get("email") or ""), fields=dict(fields))
            writer = people.PeopleWriter(self, object_kind)
            writer.update_by_id(self.http, crm_id, person, custom or schema.CustomFields(()))
            return
        number = people.record_id(crm_id)
        if number is None:
            raise NotFound(f"{crm_id!r} is not a Copper id", code="bad_id")
        entity = wire.entity_for(object_kind)
        custom = self.custom_fields()
        body: dict[str, Any] = {}
        for name, value in fields.items():
            if name.startswith(schema.CUSTOM_PREFIX):
                body.setdefault("custom_fields", []).append(custom.encode(entity, name, value))
            else:
                body[name] = value
        self.http.json("PUT", f"/{wire.resource_for(object_kind)}/{number}", json=body)

    def delete_person(self, object_kind: str, crm_id: str) -> None:
        """``DELETE /people/{id}`` (or ``/leads/{id}``): Copper deletes for good. Gone already is fine."""
        if object_kind not in (CONTACT, LEAD):
            raise ConfigurationError(f"Copper people are People or Leads, not {object_kind}", code="not_a_person")
        number = people.record_id(crm_id)
        if number is None:
            return  # not a Copper id: there is nothing of ours to delete
        try:
            self.http.json("DELETE", f"/{wire.resource_for(object_kind)}/{number}")
        except NotFound:
            return

    # -- engagement ------------------------------------------------------------------------------------
    def _activity_items(self, inputs: Sequence[ActivityInput | NoteInput], type_id: int) -> list[keyed.ActivityItem]:
        items = []
        for item in inputs:
            text = f"{item.subject}\n{item.body}" if isinstance(item, ActivityInput) else item.body
            if isinstance(item, ActivityInput) and item.body.startswith(item.subject):
                text = item.body  # the body already opens with the subject (integrations.sync.render)
            items.append(
                keyed.ActivityItem(
                    key=item.key,
                    parent_type="lead" if item.person_kind == LEAD else "person",
                    parent_id=item.person_crm_id,
                    type_id=type_id,
                    details=with_key_line(text, item.key),
                    activity_date=wire.to_unix(item.occurred_at) or 0,
                )
            )
        return items

    def log_activities(self, inputs: Sequence[ActivityInput]) -> list[WriteOutcome]:
        if not inputs:
            return []
        type_id = self._activity_type(CAPSULE_ACTIVITY_TYPE)
        return keyed.write_activities(
            self, self._activity_items(inputs, self._note_type() if type_id is None else type_id)
        )

    def add_notes(self, inputs: Sequence[NoteInput]) -> list[WriteOutcome]:
        if not inputs:
            return []
        return keyed.write_activities(self, self._activity_items(inputs, self._note_type()))

    def key_definition(self, name: str, entity: str) -> dict[str, Any]:
        """Our key field on ``entity`` (tasks or opportunities), created the first time."""
        existing = self.custom_fields().named(name)
        if existing is None:
            try:
                self.http.json(
                    "POST", "/custom_field_definitions", json=schema.definition_body(name, "string", [entity])
                )
            except ConfigurationError as exc:
                raise keyed.missing_key_field(name, entity, exc.message) from None
            except RecordError as exc:
                if exc.status != 422:  # 422: made meanwhile by another worker; read it below
                    raise
            self.forget_custom_fields()
            existing = self.custom_fields().named(name)
        if existing is None or entity not in (existing.get("available_on") or []):
            raise keyed.missing_key_field(name, entity, f"“{name}” exists but not on {entity}s")
        return existing

    def create_tasks(self, inputs: Sequence[TaskInput]) -> list[WriteOutcome]:
        """Open tasks due at ``due_at`` on the person or lead, for ``owner_id`` when given. Neither
        status nor priority is sent: a retried write must not reopen a task already completed."""
        if not inputs:
            return []
        definition = self.key_definition(EVENT_KEY_FIELD, "task")
        items: list[tuple[int, keyed.KeyedItem]] = []
        outcomes: dict[int, WriteOutcome] = {}
        for index, task in enumerate(inputs):
            person = people.record_id(task.person_crm_id)
            if person is None:
                error = RecordError("there is no Copper person or lead to attach the task to", code="no_parent")
            elif task.owner_id and not str(task.owner_id).isdigit():
                error = RecordError(f"{task.owner_id!r} is not a Copper user id", code="bad_owner", field="owner")
            else:
                error = None
            if error is not None:
                outcomes[index] = WriteOutcome(task.key, error=error)
                continue
            body: dict[str, Any] = {
                "name": task.subject[:255],
                "details": task.body,
                "due_date": wire.to_unix(task.due_at),
                "related_resource": {"type": "lead" if task.person_kind == LEAD else "person", "id": person},
            }
            if task.owner_id:
                body["assignee_id"] = int(task.owner_id)
            items.append((index, keyed.KeyedItem(task.key, body)))
        written = keyed.write_keyed(self, "tasks", definition, [item for _i, item in items])
        outcomes.update({index: outcome for (index, _item), outcome in zip(items, written, strict=True)})
        return [outcomes[i] for i in range(len(inputs))]

    def _stage(self, stage: str) -> tuple[int, int]:
        if self._pipelines is None:
            self._pipelines = self.http.json("GET", "/pipelines") or []
        for pipeline in self._pipelines:
            for candidate in pipeline.get("stages") or []:
                if stage.strip().lower() in (str(candidate.get("name")).lower(), str(candidate.get("id"))):
                    return int(pipeline["id"]), int(candidate["id"])
        raise RecordError(f"Copper has no pipeline stage {stage!r}", code="unknown_stage", field="pipeline_stage_id")

    def upsert_deal(self, deal: DealInput) -> WriteOutcome:
        """An opportunity keyed by the conversion id: Won unless a stage is given (then Open in that
        stage), with the person as primary contact. A lead cannot be a primary contact (only
        People can), so a lead's deal names the lead in its details. Found again on a replay, it
        is not written a second time (a salesperson may have moved it on since)."""
        definition = self.key_definition(CONVERSION_KEY_FIELD, "opportunity")
        body: dict[str, Any] = {"name": deal.name[:255], "status": "Won"}
        if deal.amount is not None:
            body["monetary_value"] = deal.amount
        if deal.currency:
            body["monetary_unit"] = deal.currency.upper()
        body["close_date"] = wire.close_date(deal.close_date or dt.datetime.now(dt.UTC).date())
        try:
            if deal.stage:
                body["pipeline_id"], body["pipeline_stage_id"] = self._stage(deal.stage)
                body["status"] = "Open"
        except RecordError as error:
            return WriteOutcome(deal.key, error=error)
        if deal.person_kind == LEAD:
            body["details"] = f"Capsule conversion of Copper lead {deal.person_crm_id}"
        elif people.record_id(deal.person_crm_id) is not None:
            body["primary_contact_id"] = int(deal.person_crm_id)
        return keyed.write_keyed(self, "opportunities", definition, [keyed.KeyedItem(deal.key, body)])[0]

    # -- custom fields (mapping.provisioning) -----------------------------------------------------------
    def create_custom_field(self, object_kind: str, field: Any) -> FieldSchema:
        """A Copper custom field for one of our field definitions (``cf_<slug>``): named by its label
        when that gives the same API name, else by the name itself. An existing field on the
        object is returned as it is; a key that may not manage fields gets a ConfigurationError."""
        entity = wire.entity_for(object_kind)
        wanted = str(field.name)
        display = str(getattr(field, "label", "") or "")
        if schema.CUSTOM_PREFIX + wire.slug(display) != wanted:
            display = wanted.removeprefix(schema.CUSTOM_PREFIX).replace("_", " ")
        custom = self.custom_fields()
        if wanted not in custom.by_name:
            # A capsule field of people is one of leads too: one definition serves both record types.
            entities = ["person", "lead"] if entity in ("person", "lead") else [entity]
            body = schema.definition_body(display, str(field.type), entities, getattr(field, "options", ()) or ())
            self.http.json("POST", "/custom_field_definitions", json=body)
            self.forget_custom_fields()
            custom = self.custom_fields()
        definition = custom.by_name.get(wanted)
        if definition is None or entity not in (definition.get("available_on") or []):
            raise ConfigurationError(
                f"The Copper custom field “{display}” exists but not on {entity}s; make it available there.",
                code="field_not_on_object",
            )
        return custom.schema(definition)

    # -- inbound webhooks ------------------------------------------------------------------------------
    @classmethod
    def verify_webhook(cls, method: str, url: str, headers: Mapping[str, str], body: bytes, secret: str) -> bool:
        """The connection's registered secret, echoed by Copper in the body or our header (§6.7)."""
        return webhooks.verify(headers, body, secret)

    @classmethod
    def parse_webhook(cls, body: bytes) -> list[InboundChange]:
        return webhooks.parse(body)

    @classmethod
    def webhook_secret_for(cls, connection: Any) -> str:
        """Only the secret registered for this connection: Copper never signs with an app secret."""
        return str(connection.webhook_secret or "")

    def register_webhooks(self, callback_url: str, secret: str) -> str:
        """Subscribe ``callback_url`` to new/update/delete of the connection's people (or leads)
        and of opportunities; returns the subscription ids. A failure removes what was made."""
        entity = "lead" if self.settings.get("record_type") == LEAD else "person"
        made: list[str] = []
        try:
            for body in webhooks.subscriptions(callback_url, secret, entity):
                made.append(str(self.http.json("POST", "/webhooks", json=body)["id"]))
        except CrmError:
            self.unregister_webhooks(",".join(made))
            raise
        return ",".join(made)

    def unregister_webhooks(self, ref: str) -> None:
        for subscription_id in filter(None, (part.strip() for part in (ref or "").split(","))):
            try:
                self.http.json("DELETE", f"/webhooks/{subscription_id}")
            except NotFound:
                continue  # already gone
