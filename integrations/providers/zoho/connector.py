"""The Zoho CRM connector: records API v8, COQL, the fields API, notification channels and OAuth tokens.

Facts are crm-reference.md §4 and the OpenAPI specs in shared/specs/zoho. What each operation costs
in calls and credits (one credit per call unless said; the credit budget and the concurrency cap
are the floor of every sync, issue 9):

- ``upsert_people``: one ``POST /{module}/upsert`` with ``duplicate_check_fields: ["Email"]`` per 100
  people without a stored id, plus one ``PUT /{module}`` (update by id) per 100 with one — so a
  changed e-mail updates the same record. A stale id comes back as a NotFound outcome.
- ``find_by_email``: one COQL ``where Email in (…)`` per 50 addresses (1 credit for up to 200 rows).
  The search API would cost one call and one credit per address; COQL is ~50 times fewer.
- ``find_by_id``, ``set_fields``: one call. ``identity``: two (``/org``, ``/users?type=CurrentUser``).
  ``describe_fields``: one. ``changes_since``: one COQL call per page of up to 200. A COQL read
  naming a field the org does not have is sent once more without it.
- ``log_activities``, ``create_tasks``, ``upsert_deal``: one upsert per 100 on our unique key field
  (keyed.py); the first write of a process and token adds one fields read (and, once per org, the
  field's creation: two more). ``add_notes``: one COQL lookup per 50 titles plus one insert per 100.
- ``register_webhooks``/``renew_webhooks``/``unregister_webhooks``: one call each.

Which activity an event becomes: a **completed Task**. Capsule views, opened content and CTA clicks
are things a prospect did alone on a page. A Call would need a type, a start time and a duration
and would count in call reports; an Event would show in calendars as a meeting that never
happened. A Task with status Completed and the event's date lists under the record's Closed
Activities and on its timeline, counts in no report of calls or meetings, and adds nothing to
anyone's open to-dos. Contacts are linked through ``Who_Id``; Leads, which ``Who_Id`` cannot hold,
through ``What_Id`` with ``$se_module: "Leads"``.

Deals: Zoho links a deal to a Contact (``Contact_Name``); a Lead cannot be on a deal until it is
converted, so deals for leads carry no person link.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar
from urllib.parse import quote

import requests

from integrations.connector import (
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
from integrations.errors import ConfigurationError, CrmError, NotFound, RecordError
from integrations.providers.zoho import batches, coql, failures, keyed, notifications, tokens, wire
from integrations.providers.zoho import fields as field_defs
from integrations.providers.zoho.keyed import KeyedItem, KeyedWriter, KeyField, NoteItem
from integrations.providers.zoho.provider import PROVIDER

API = "/crm/v8"
EVENT_KEY = KeyField("Capsule_Event_Id", "Capsule Event Id")
CONVERSION_KEY = KeyField("Capsule_Conversion_Id", "Capsule Conversion Id")
# What a read that names no fields asks for (Zoho v8 wants a field list on COQL and list calls).
PERSON_FIELDS = ("Email", "First_Name", "Last_Name", "Phone", "Owner", "Email_Opt_Out", "Modified_By")
DEAL_FIELDS = ("Deal_Name", "Stage", "Amount", "Closing_Date", "Contact_Name", "Owner", "Modified_By")
DEFAULT_DEAL_STAGE = "Closed Won"
REQUIRED_COLUMNS = ("Email", "Modified_Time")  # what find_by_email and changes_since cannot do without


class ZohoConnector(Connector):
    spec = PROVIDER

    # Inbound extension points (integrations.inbound.extensions).
    echo_fields: ClassVar[tuple[str, ...]] = ("Modified_By",)
    preference_fields: ClassVar[dict[str, str]] = {"Email_Opt_Out": "unsubscribed"}
    owner_fields: ClassVar[dict[str, str]] = {"Owner.id": "owner_id", "Owner.name": "owner_name"}
    deal_stage_field: ClassVar[str] = "Stage"
    deal_fields: ClassVar[dict[str, str]] = {"Deal_Name": "name", "Amount": "amount", "Currency": "currency"}
    # Channels expire (at most a day): renew_webhooks is due this long after the last (re)registration.
    webhook_renew_after: ClassVar[dt.timedelta] = notifications.RENEW_AFTER

    # -- HTTP ----------------------------------------------------------------------------------------------
    @classmethod
    def auth_for(cls, credentials: ConnectionCredentials) -> requests.auth.AuthBase:
        return wire.ZohoAuth(credentials.access_token)

    @classmethod
    def classify_error(cls, response: requests.Response) -> CrmError | None:
        return failures.classify(response)

    @classmethod
    def error_message(cls, response: requests.Response) -> tuple[str, str]:
        body = failures.body_of(response)
        if body:
            message, code, _field = failures.describe(body)
            return message, code
        return super().error_message(response)

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.http.json(method, f"{API}/{path}", **kwargs)

    @property
    def _batch_size(self) -> int:
        return self.spec.batch_sizes["upsert"]

    def _keyed(self) -> KeyedWriter:
        return KeyedWriter(self.http, self.credentials.access_token, self.spec.batch_sizes["activities"])

    @property
    def person_module(self) -> str:
        return wire.person_module(str(self.settings.get("record_type") or "contact"))

    # -- tokens --------------------------------------------------------------------------------------------
    @classmethod
    def parse_token_response(cls, payload: Mapping[str, Any]) -> TokenSet:
        return tokens.parse(payload)

    # -- reading -------------------------------------------------------------------------------------------
    def identity(self) -> CrmIdentity:
        org = ((self._json("GET", "org") or {}).get("org") or [{}])[0]
        users = (self._json("GET", "users", params={"type": "CurrentUser"}) or {}).get("users") or [{}]
        org_id = str(org.get("id") or org.get("zgid") or "")
        if not org_id:
            raise ConfigurationError("Zoho CRM did not say which organisation this token belongs to", code="no_org")
        return CrmIdentity(
            account_id=org_id,
            account_name=str(org.get("company_name") or f"Zoho CRM org {org_id}"),
            user_email=str(users[0].get("email") or ""),
            user_id=str(users[0].get("id") or ""),
        )

    def describe_fields(self, object_kind: str) -> list[FieldSchema]:
        answer = self._json("GET", "settings/fields", params={"module": wire.module(object_kind)}) or {}
        return field_defs.schemas(answer.get("fields") or [])

    def _default_fields(self, module: str) -> tuple[str, ...]:
        return DEAL_FIELDS if module == "Deals" else PERSON_FIELDS

    def find_by_id(self, object_kind: str, crm_id: str, *, fields: Sequence[str] | None = None) -> CrmRecord | None:
        """The record (None when deleted or unknown: Zoho answers 204). ``fields`` may name lookup
        parts such as ``Owner.id``; the whole lookup is read."""
        params = {"fields": ",".join(wire.select([*fields, "Modified_Time"]))} if fields else None
        try:
            answer = self._json("GET", f"{wire.module(object_kind)}/{quote(str(crm_id), safe='')}", params=params)
        except NotFound:
            return None
        data = (answer or {}).get("data") or []
        return wire.record(data[0]) if data else None

    def _coql(self, fields: Sequence[str], module: str, where: str, *, order: str, limit: int) -> Mapping[str, Any]:
        """One COQL page. A field Zoho says it does not have (a mapped field deleted or never made)
        is dropped and the query sent again, so one stale mapping row cannot stop reads."""
        wanted = list(fields)
        while True:
            query = coql.select(wanted, module, where, order=order, limit=limit)
            try:
                return self._json("POST", "coql", json={"select_query": query}) or {}
            except RecordError as error:
                if error.code != "INVALID_QUERY" or error.field not in wanted or error.field in REQUIRED_COLUMNS:
                    raise
                wanted.remove(error.field)

    def find_by_email(
        self, object_kind: str, emails: Sequence[str], *, fields: Sequence[str] | None = None
    ) -> dict[str, CrmRecord]:
        module = wire.person_module(object_kind)
        wanted = wire.select([*(fields or self._default_fields(module)), "Email", "Modified_Time"])
        unique = list(dict.fromkeys(e.strip().lower() for e in emails if e and e.strip()))
        found: dict[str, CrmRecord] = {}
        for start in range(0, len(unique), coql.IN_LIMIT):
            part = unique[start : start + coql.IN_LIMIT]
            answer = self._coql(wanted, module, f"Email in {coql.in_list(part)}", order="id asc", limit=coql.PAGE_LIMIT)
            for row in answer.get("data") or []:
                email = str(row.get("Email") or "").lower()
                if email and email not in found:  # the oldest record of an address, as upsert would match it
                    found[email] = wire.record(row)
        return found

    def changes_since(
        self, object_kind: str, cursor: ChangeCursor | None, limit: int = 100, *, fields: Sequence[str] | None = None
    ) -> ChangePage:
        """COQL on ``Modified_Time`` then ``id``, both ascending: records after the cursor's instant,
        or at that instant with a higher id — no record at a page boundary is missed or repeated."""
        module = wire.module(object_kind)
        wanted = wire.select([*(fields or self._default_fields(module)), "Modified_Time"])
        start = cursor.modified_at if cursor else dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
        where = coql.modified_after(start, cursor.last_id if cursor else "")
        answer = self._coql(
            wanted, module, where, order="Modified_Time asc, id asc", limit=max(1, min(limit, coql.PAGE_LIMIT))
        )
        records = [wire.record(row) for row in answer.get("data") or []]
        if not records:
            return ChangePage(records=[], next_cursor=cursor, has_more=False)
        last = records[-1]
        more = bool((answer.get("info") or {}).get("more_records"))
        return ChangePage(
            records=records, next_cursor=ChangeCursor(last.modified_at or start, last.crm_id), has_more=more
        )

    # -- people --------------------------------------------------------------------------------------------
    def upsert_people(self, object_kind: str, inputs: Sequence[PersonInput]) -> list[WriteOutcome]:
        """By stored id first (``PUT`` with ``id``: a changed e-mail updates the same record), else
        ``/upsert`` matched on Email, Zoho's own duplicate check. One call per 100 of each."""
        module = wire.person_module(object_kind)
        outcomes: dict[int, WriteOutcome] = {}
        by_id, by_email = [], []
        for index, person in enumerate(inputs):
            if person.crm_id:
                by_id.append(index)
            elif _email(person):
                by_email.append(index)
            else:
                outcomes[index] = batches.failed(
                    person.key,
                    RecordError("no e-mail address to find or create the record by", code="no_email", field="Email"),
                )
        for chunk in batches.unique_chunks(by_id, lambda i: str(inputs[i].crm_id), self._batch_size):
            body = {"data": [{**self._person_values(inputs[i]), "id": str(inputs[i].crm_id)} for i in chunk]}
            outcomes.update(batches.read_outcomes(self._json("PUT", module, json=body), chunk, lambda i: inputs[i].key))
        for chunk in batches.unique_chunks(by_email, lambda i: _email(inputs[i]), self._batch_size):
            body = {"data": [self._person_values(inputs[i]) for i in chunk], "duplicate_check_fields": ["Email"]}
            answer = self._json("POST", f"{module}/upsert", json=body)
            outcomes.update(batches.read_outcomes(answer, chunk, lambda i: inputs[i].key))
        return [outcomes.get(i) or batches.missing(person.key) for i, person in enumerate(inputs)]

    @staticmethod
    def _person_values(person: PersonInput) -> dict[str, Any]:
        values = wire.values(person.fields)
        if _email(person):
            values["Email"] = _email(person)
        return values

    def set_fields(self, object_kind: str, crm_id: str, fields: Mapping[str, Any]) -> None:
        path = f"{wire.module(object_kind)}/{quote(str(crm_id), safe='')}"
        answer = self._json("PUT", path, json={"data": [wire.values(fields)]})
        error = keyed.single_error(answer)
        if error is not None:
            raise error

    # -- engagement ----------------------------------------------------------------------------------------
    def _keyed_write(self, module: str, key: KeyField, items: list[tuple[str, str, dict[str, Any]]]):
        """Write (key, person id, values) items; those without a person fail alone."""
        outcomes: dict[int, WriteOutcome] = {}
        todo: list[KeyedItem] = []
        positions: list[int] = []
        for index, (item_key, person_id, values) in enumerate(items):
            if not person_id and module != "Deals":
                outcomes[index] = batches.failed(
                    item_key, RecordError("there is no Zoho record to attach this to", code="no_person")
                )
                continue
            todo.append(KeyedItem(item_key, values))
            positions.append(index)
        for position, outcome in zip(positions, self._keyed().write(module, key, todo), strict=True):
            outcomes[position] = outcome
        return [outcomes[i] for i in range(len(items))]

    def log_activities(self, inputs: Sequence[ActivityInput]) -> list[WriteOutcome]:
        """Completed Tasks on the person's timeline (see the module docstring for why Tasks)."""
        items = []
        for a in inputs:
            values = {
                "Subject": a.subject[:255],
                "Description": a.body,
                "Status": "Completed",
                "Due_Date": wire.to_date(a.occurred_at),
                **(wire.person_link(a.person_kind, a.person_crm_id) if a.person_crm_id else {}),
            }
            items.append((a.key, a.person_crm_id, values))
        return self._keyed_write("Tasks", EVENT_KEY, items)

    def create_tasks(self, inputs: Sequence[TaskInput]) -> list[WriteOutcome]:
        """Open Tasks due on ``due_at``. No status is sent: Zoho starts a task as Not Started, and a
        retried upsert must not reopen a task its owner has completed."""
        items = []
        for t in inputs:
            values: dict[str, Any] = {
                "Subject": t.subject[:255],
                "Description": t.body,
                "Due_Date": wire.to_date(t.due_at),
                **(wire.person_link(t.person_kind, t.person_crm_id) if t.person_crm_id else {}),
            }
            if t.owner_id:
                values["Owner"] = {"id": str(t.owner_id)}
            items.append((t.key, t.person_crm_id, values))
        return self._keyed_write("Tasks", EVENT_KEY, items)

    def add_notes(self, inputs: Sequence[NoteInput]) -> list[WriteOutcome]:
        items = [NoteItem(n.key, wire.person_module(n.person_kind), str(n.person_crm_id or ""), n.body) for n in inputs]
        return keyed.write_notes(self.http, items, self.spec.batch_sizes["activities"])

    def upsert_deal(self, deal: DealInput) -> WriteOutcome:
        """A deal keyed by the conversion id, "Closed Won" unless a stage is given. A currency goes to
        ``Currency`` (multi-currency orgs); an org without it refuses the deal with Zoho's message
        rather than us booking the amount in the wrong currency."""
        values: dict[str, Any] = {"Deal_Name": deal.name[:120], "Stage": deal.stage or DEFAULT_DEAL_STAGE}
        values["Closing_Date"] = wire.to_date(deal.close_date or dt.datetime.now(dt.UTC))
        if deal.amount is not None:
            values["Amount"] = deal.amount
        if deal.currency:
            values["Currency"] = deal.currency.upper()
        if deal.person_crm_id and wire.person_module(deal.person_kind) == "Contacts":
            values["Contact_Name"] = {"id": str(deal.person_crm_id)}
        return self._keyed_write("Deals", CONVERSION_KEY, [(deal.key, deal.person_crm_id, values)])[0]

    def people_of_deal(self, crm_id: str) -> list[str]:
        record = self.find_by_id(DEAL, crm_id, fields=["Contact_Name"])
        person = record.fields.get("Contact_Name.id") if record else None
        return [str(person)] if person else []

    # -- custom fields (mapping.provisioning) ------------------------------------------------------------
    def create_custom_field(self, object_kind: str, field: field_defs.FieldDefinition) -> FieldSchema:
        """Create a Zoho field for one of our definitions (``extra`` may set ``data_type`` and
        ``length``); one that already exists is returned as it is. Missing permission: ConfigurationError."""
        module = wire.module(object_kind)
        existing = {f.name: f for f in self.describe_fields(module)}
        if field.name in existing:
            return existing[field.name]
        answer = self._json(
            "POST", "settings/fields", params={"module": module}, json={"fields": [field_defs.field_create(field)]}
        )
        error = keyed.single_error(answer)
        created = {f.name: f for f in self.describe_fields(module)}
        if field.name in created:
            return created[field.name]
        raise error or RecordError(f"Zoho CRM did not create {field.name} on {module}", code="not_created")

    # -- notification channels (integrations.inbound.registration) ---------------------------------------
    def _events(self) -> list[str]:
        return [f"{self.person_module}.all", "Deals.all"]

    def register_webhooks(self, callback_url: str, secret: str) -> str:
        """Subscribe a channel for the person module and Deals; returns ``<channel_id>:<events>``."""
        channel, events = notifications.channel_id(callback_url), self._events()
        body = notifications.watch(
            channel,
            events,
            expiry=dt.datetime.now(dt.UTC) + notifications.CHANNEL_LIFETIME,
            notify_url=callback_url,
            token=notifications.channel_token(secret),
            return_affected_field_values=True,
        )
        error = keyed.single_error(self._json("POST", "actions/watch", json=body))
        if error is not None:
            raise error
        return notifications.ref(channel, events)

    def renew_webhooks(self, ref: str) -> dt.datetime:
        """Push the channel's expiry out by another ``CHANNEL_LIFETIME`` (PATCH keeps its URL and
        token). A channel Zoho no longer knows raises NotFound: register it again."""
        channel, events = notifications.parse_ref(ref)
        expiry = dt.datetime.now(dt.UTC) + notifications.CHANNEL_LIFETIME
        answer = self._json("PATCH", "actions/watch", json=notifications.watch(channel, events, expiry=expiry))
        error = keyed.single_error(answer)
        if error is not None:
            if error.code == "NOT_SUBSCRIBED":
                raise NotFound(error.message, code=error.code)
            raise error
        return expiry

    def unregister_webhooks(self, ref: str) -> None:
        channel, _events = notifications.parse_ref(ref)
        answer = self._json("DELETE", "actions/watch", params={"channel_ids": channel})
        error = keyed.single_error(answer)
        if error is not None and error.code != "NOT_SUBSCRIBED":
            raise error

    @classmethod
    def verify_webhook(cls, method: str, url: str, headers: Mapping[str, str], body: bytes, secret: str) -> bool:
        """The channel token in the body, compared in constant time with the one we set."""
        return method.upper() == "POST" and notifications.verify(body, secret)

    @classmethod
    def parse_webhook(cls, body: bytes) -> list[InboundChange]:
        return notifications.parse(body)

    @classmethod
    def is_own_change(cls, change: InboundChange, connection: Any) -> bool:
        """Written by the connection's own Zoho user (``Modified_By``, crm-reference §11.9): only
        when the change carries the modifier's e-mail (a record read by id does; COQL pages and
        callbacks do not, and fall back to the provider-neutral comparison)."""
        modifier = change.properties.get("Modified_By")
        email = modifier.get("email") if isinstance(modifier, Mapping) else change.properties.get("Modified_By.email")
        own = str(getattr(connection, "crm_user_email", "") or "").lower()
        return bool(email and own and str(email).lower() == own)


def _email(person: PersonInput) -> str:
    return (person.email or "").strip().lower()
