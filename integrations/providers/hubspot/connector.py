"""The HubSpot connector: CRM v3 objects, v4 associations, the properties API and OAuth tokens.

Facts are crm-reference.md §2 and the OpenAPI specs in shared/specs/hubspot. What each operation
costs in calls (the rate limit is the floor of every sync, issue 9):

- ``upsert_people``: one ``batch/upsert`` by e-mail per 100 people without a stored id, plus one
  ``batch/update`` by id per 100 people with one (so a changed e-mail updates the same contact).
- ``find_by_email``: one ``batch/read`` with ``idProperty=email`` per 100 (not search, which has
  its own, tighter limit); ``find_by_id`` and ``set_fields``: one call.
- ``log_activities``, ``add_notes``, ``create_tasks``: one ``batch/upsert`` by our key property and
  one v4 association ``batch/create`` per 100 (integrations.providers.hubspot.keyed);
  ``upsert_deal``: the same for one deal.
- ``changes_since``: one search call per page (two when one modification instant fills a page).
- ``identity``: one introspection call for OAuth tokens; private-app tokens add one
  ``/account-info/v3/details`` call. ``describe_fields``: one call.

Which engagement object an activity becomes: a **note**. Capsule views, content opened or
downloaded, CTA clicks and completions are things a prospect did alone on a page: not a call
(HubSpot counts calls in call reports and needs a direction and outcome), not a meeting (it would
show in meeting reports and calendars as a meeting that never happened), and not an e-mail. A note
shows on the contact's timeline with its time (``hs_timestamp``), in every HubSpot tier and with
every token kind (the timeline-events API would need a public app's event templates, which
private-app tokens cannot use). Tasks are used only for ``create_tasks``, deals for conversions.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar
from urllib.parse import quote, urlsplit

import requests

from integrations.connector import (
    ActivityInput,
    ChangeCursor,
    ChangePage,
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
from integrations.providers.hubspot import batches, failures, polling, webhooks, wire
from integrations.providers.hubspot import properties as property_defs
from integrations.providers.hubspot.keyed import KeyedItem, KeyedWriter
from integrations.providers.hubspot.properties import CAPSULE_GROUP, KeyProperty
from integrations.providers.hubspot.provider import PROVIDER

# Our idempotency keys, stored in unique-value custom properties (see keyed.py).
EVENT_KEY = KeyProperty(
    name="capsule_event_id",
    label="Capsule event ID",
    description="The capsule event this record was written for; keeps retries from writing it twice.",
)
CONVERSION_KEY = KeyProperty(
    name="capsule_conversion_id",
    label="Capsule conversion ID",
    description="The capsule conversion this deal was written for; keeps retries from writing it twice.",
)
# HubSpot's default contact properties plus the modification time, for reads that name none.
CONTACT_PROPERTIES = ("email", "firstname", "lastname", "company", "jobtitle", "phone", "lifecyclestage")
# The scope family a type's property writes need (engagements use the contacts scopes, §2.1).
SCHEMA_SCOPE = {"deals": "deals", "companies": "companies"}


class HubSpotConnector(Connector):
    spec = PROVIDER

    # -- inbound sync (integrations/inbound/extensions.py) ------------------------------------------
    # hs_email_optout is HubSpot's "unsubscribed from all e-mail"; HubSpot has no standard
    # do-not-contact property, so a portal-defined capsule_do_not_contact is honoured too.
    preference_fields: ClassVar[dict[str, str]] = {
        "hs_email_optout": "unsubscribed",
        "capsule_do_not_contact": "do_not_contact",
    }
    owner_fields: ClassVar[dict[str, str]] = {"hubspot_owner_id": "owner_id"}
    deal_stage_field = "dealstage"
    deal_fields: ClassVar[dict[str, str]] = {"dealname": "name", "amount": "amount", "deal_currency_code": "currency"}

    @classmethod
    def split_webhook(cls, body: bytes) -> dict[str, list[InboundChange]]:
        """App-wide deliveries mix portals (HubSpot signs them all with the app's secret): each
        event's portalId says whose it is, so one portal's events never reach another's connection."""
        events = json.loads(body)
        if not isinstance(events, list):
            raise ValueError("HubSpot sends a JSON array of events")
        by_portal: dict[str, list[InboundChange]] = {}
        for event in events:
            if isinstance(event, Mapping):
                by_portal.setdefault(str(event.get("portalId")), []).extend(
                    webhooks.parse(json.dumps([event]).encode())
                )
        return by_portal

    def people_of_deal(self, crm_id: str) -> list[str]:
        """The contacts a deal is associated with (v4 associations)."""
        answer = self.http.json("GET", f"/crm/v4/objects/deals/{quote(crm_id, safe='')}/associations/contacts") or {}
        return [str(row["toObjectId"]) for row in answer.get("results") or []]

    # -- HTTP ----------------------------------------------------------------------------------------
    @classmethod
    def classify_error(cls, response: requests.Response) -> CrmError | None:
        return failures.classify(response)

    @classmethod
    def error_message(cls, response: requests.Response) -> tuple[str, str]:
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, Mapping):
            message, category, _field = failures.describe(body)
            return message, category
        return super().error_message(response)

    @classmethod
    def rate_bucket(cls, method: str, url: str) -> str:
        """CRM search has its own per-token limit (crm-reference §2.5), separate from the 10 s window."""
        return "search" if method.upper() == "POST" and urlsplit(url).path.endswith("/search") else "default"

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.http.json(method, path, **kwargs)

    @property
    def _batch_size(self) -> int:
        return self.spec.batch_sizes["upsert"]

    def _keyed(self) -> KeyedWriter:
        return KeyedWriter(self.http, self.credentials.access_token, self.spec.batch_sizes["activities"])

    # -- tokens --------------------------------------------------------------------------------------
    @classmethod
    def parse_token_response(cls, payload: Mapping[str, Any]) -> TokenSet:
        """An OAuth v1/v3 token answer (spec AccessTokenResponse). HubSpot's host is fixed, so no
        api_base_url; access tokens live ``expires_in`` seconds (1800 today, crm-reference §2.1)."""
        token = payload.get("access_token")
        if not isinstance(token, str) or not token:
            error = payload.get("error") or (payload.get("status") if payload.get("status") != "error" else None)
            description = payload.get("error_description") or payload.get("message") or "the answer has no access_token"
            raise OAuthError(str(error or "invalid_response"), str(description)[:300])
        expires_at = None
        if payload.get("expires_in") is not None:
            try:
                seconds = int(payload["expires_in"])
            except (TypeError, ValueError):
                raise OAuthError("invalid_response", "expires_in is not a number of seconds") from None
            expires_at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)
        raw_scopes = payload.get("scopes", payload.get("scope"))
        if isinstance(raw_scopes, str):
            scopes = tuple(raw_scopes.replace(",", " ").split())
        elif isinstance(raw_scopes, list):
            scopes = tuple(str(s) for s in raw_scopes)
        else:
            scopes = ()
        refresh = payload.get("refresh_token")
        return TokenSet(
            access_token=token,
            refresh_token=refresh if isinstance(refresh, str) and refresh else None,
            expires_at=expires_at,
            scopes=scopes,
            raw_fields=tuple(sorted(str(k) for k in payload)),
        )

    # -- reading ---------------------------------------------------------------------------------------
    def _token_info(self) -> Mapping[str, Any] | None:
        """Portal, domain, user and scopes of an OAuth access token, or None for other tokens.

        Asked of the v3 introspection endpoint (``POST /oauth/v3/token/introspect``, token in the
        form body) rather than v1's ``GET /oauth/v1/access-tokens/{token}``: v1 is deprecated
        (crm-reference §2.1) and puts the token in the URL path, which HTTP client libraries log
        at DEBUG level (urllib3 does), breaking DESIGN.md invariant 4. Private-app tokens are
        "inactive" there, and without OAuth client credentials we cannot ask at all.
        """
        url = self.spec.oauth_endpoint("token")
        if not (url and self.spec.client_id and self.spec.client_secret):
            return None
        try:
            info = self._json(
                "POST",
                f"{url}/introspect",
                data={
                    "token": self.credentials.access_token,
                    "token_type_hint": "access_token",
                    "client_id": self.spec.client_id,
                    "client_secret": self.spec.client_secret,
                },
            )
        except (RecordError, ConfigurationError):  # a refused introspection: fall back to account-info
            return None
        return info if isinstance(info, Mapping) and info.get("active") and info.get("hub_id") else None

    def identity(self) -> CrmIdentity:
        info = self._token_info()
        if info is not None:
            hub_id = str(info.get("hub_id") or "")
            return CrmIdentity(
                account_id=hub_id,
                account_name=str(info.get("hub_domain") or f"HubSpot portal {hub_id}"),
                user_email=str(info.get("user") or ""),
                user_id=str(info.get("user_id") or ""),
            )
        # Private-app tokens: the account-info API names the portal (no user behind such a token).
        details = self._json("GET", "/account-info/v3/details") or {}
        portal = str(details.get("portalId") or "")
        if not portal:
            raise ConfigurationError("HubSpot did not say which portal this token belongs to", code="no_portal")
        return CrmIdentity(account_id=portal, account_name=f"HubSpot portal {portal}")

    def describe_fields(self, object_kind: str) -> list[FieldSchema]:
        answer = self._json("GET", f"/crm/v3/properties/{wire.object_type(object_kind)}") or {}
        return property_defs.schemas(answer.get("results") or [])

    def _wanted(self, hubspot_type: str, names: Sequence[str] | None) -> list[str]:
        base = names if names is not None else (CONTACT_PROPERTIES if hubspot_type == "contacts" else ())
        return sorted({*base, wire.modified_property(hubspot_type), "hs_object_id"})

    def _record(self, result: Mapping[str, Any], hubspot_type: str) -> CrmRecord:
        props = dict(result.get("properties") or {})
        modified = wire.parse_time(props.get(wire.modified_property(hubspot_type))) or wire.parse_time(
            result.get("updatedAt")
        )
        return CrmRecord(crm_id=str(result["id"]), fields=props, modified_at=modified)

    def find_by_id(self, object_kind: str, crm_id: str, *, properties: Sequence[str] | None = None) -> CrmRecord | None:
        """The record, or None when it is gone. A merged-away id answers with the surviving record
        (its ``crm_id`` then differs from the one asked for)."""
        hubspot_type = wire.object_type(object_kind)
        try:
            result = self._json(
                "GET",
                f"/crm/v3/objects/{hubspot_type}/{quote(str(crm_id), safe='')}",
                params={"properties": ",".join(self._wanted(hubspot_type, properties))},
            )
        except NotFound:
            return None
        return self._record(result, hubspot_type)

    def find_by_email(
        self, object_kind: str, emails: Sequence[str], *, properties: Sequence[str] | None = None
    ) -> dict[str, CrmRecord]:
        """One ``batch/read`` with ``idProperty=email`` per 100 addresses; missing ones are absent
        (HubSpot answers them in a 207's ``errors``)."""
        hubspot_type = wire.object_type(object_kind)
        if hubspot_type != "contacts":
            raise ConfigurationError(f"HubSpot finds only contacts by e-mail, not {object_kind}", code="no_email_key")
        wanted = sorted({*self._wanted(hubspot_type, properties), "email"})
        unique = list(dict.fromkeys(e.strip().lower() for e in emails if e and e.strip()))
        found: dict[str, CrmRecord] = {}
        for start in range(0, len(unique), self._batch_size):
            chunk = unique[start : start + self._batch_size]
            answer = self._json(
                "POST",
                f"/crm/v3/objects/{hubspot_type}/batch/read",
                json={"idProperty": "email", "properties": wanted, "inputs": [{"id": e} for e in chunk]},
            )
            for result in (answer or {}).get("results") or []:
                record = self._record(result, hubspot_type)
                email = str(record.fields.get("email") or "").lower()
                if email:
                    found[email] = record
        return found

    def changes_since(
        self,
        object_kind: str,
        cursor: ChangeCursor | None,
        limit: int = 100,
        *,
        properties: Sequence[str] | None = None,
    ) -> ChangePage:
        hubspot_type = wire.object_type(object_kind)

        def search(body: dict[str, Any]) -> Mapping[str, Any]:
            return self._json("POST", f"/crm/v3/objects/{hubspot_type}/search", json=body) or {}

        return polling.changes_page(search, hubspot_type, cursor, limit, self._wanted(hubspot_type, properties))

    # -- people ----------------------------------------------------------------------------------------
    def upsert_people(self, object_kind: str, inputs: Sequence[PersonInput]) -> list[WriteOutcome]:
        """Contacts by stored id first (``batch/update``: a changed e-mail updates the same
        contact), else by e-mail (``batch/upsert`` with ``idProperty=email``, HubSpot's own dedupe
        key). One call per 100 of each; no per-record call. A stored id HubSpot no longer knows
        comes back as a NotFound outcome, so the engine can match that person by e-mail again."""
        hubspot_type = wire.object_type(object_kind)
        if hubspot_type != "contacts":
            raise ConfigurationError(f"HubSpot people are contacts, not {object_kind}", code="not_a_person")
        outcomes: dict[int, WriteOutcome] = {}
        by_id: list[int] = []
        by_email: list[int] = []
        for index, person in enumerate(inputs):
            if person.crm_id:
                by_id.append(index)
            elif person.email and person.email.strip():
                by_email.append(index)
            else:
                outcomes[index] = batches.failed(
                    person.key,
                    RecordError("no e-mail address to find or create the contact by", code="no_email", field="email"),
                )
        for chunk in batches.unique_chunks(by_id, lambda i: str(inputs[i].crm_id), self._batch_size):
            outcomes.update(self._update_by_id(hubspot_type, inputs, chunk))
        for chunk in batches.unique_chunks(by_email, lambda i: _email(inputs[i]), self._batch_size):
            outcomes.update(self._upsert_by_email(hubspot_type, inputs, chunk))
        return [outcomes.get(i) or batches.missing(person.key) for i, person in enumerate(inputs)]

    def _update_by_id(self, hubspot_type: str, inputs: Sequence[PersonInput], chunk: list[int]) -> dict:
        body = []
        for i in chunk:
            props = wire.properties(inputs[i].fields)
            if _email(inputs[i]):
                props.setdefault("email", _email(inputs[i]))
            body.append({"id": str(inputs[i].crm_id), "properties": props, "objectWriteTraceId": str(i)})
        answer = self._json("POST", f"/crm/v3/objects/{hubspot_type}/batch/update", json={"inputs": body})
        return batches.read_outcomes(
            answer, chunk, lambda i: inputs[i].key, lambda i: str(inputs[i].crm_id), lambda r: str(r.get("id"))
        )

    def _upsert_by_email(self, hubspot_type: str, inputs: Sequence[PersonInput], chunk: list[int]) -> dict:
        body = [
            {
                "id": _email(inputs[i]),
                "idProperty": "email",
                "properties": wire.properties(inputs[i].fields),
                "objectWriteTraceId": str(i),
            }
            for i in chunk
        ]
        answer = self._json("POST", f"/crm/v3/objects/{hubspot_type}/batch/upsert", json={"inputs": body})
        return batches.read_outcomes(
            answer,
            chunk,
            lambda i: inputs[i].key,
            lambda i: _email(inputs[i]),
            lambda r: str((r.get("properties") or {}).get("email") or "").lower(),
        )

    def set_fields(self, object_kind: str, crm_id: str, fields: Mapping[str, Any]) -> None:
        hubspot_type = wire.object_type(object_kind)
        self._json(
            "PATCH",
            f"/crm/v3/objects/{hubspot_type}/{quote(str(crm_id), safe='')}",
            json={"properties": wire.properties(fields)},
        )

    def delete_person(self, object_kind: str, crm_id: str) -> None:
        """Archive the contact (HubSpot's DELETE moves it to the recycle bin for 90 days)."""
        try:
            self.http.request(
                "DELETE", f"/crm/v3/objects/{wire.object_type(object_kind)}/{quote(str(crm_id), safe='')}"
            )
        except NotFound:
            return

    # -- engagement --------------------------------------------------------------------------------------
    def log_activities(self, inputs: Sequence[ActivityInput]) -> list[WriteOutcome]:
        """Notes on the contact's timeline (see the module docstring for why notes)."""
        items = [
            KeyedItem(
                a.key,
                a.person_crm_id,
                {"hs_timestamp": wire.to_wire(a.occurred_at), "hs_note_body": wire.note_html(a.subject, a.body)},
            )
            for a in inputs
        ]
        return self._keyed().write("notes", EVENT_KEY, items)

    def add_notes(self, inputs: Sequence[NoteInput]) -> list[WriteOutcome]:
        items = [
            KeyedItem(
                n.key,
                n.person_crm_id,
                {"hs_timestamp": wire.to_wire(n.occurred_at), "hs_note_body": wire.text_html(n.body)},
            )
            for n in inputs
        ]
        return self._keyed().write("notes", EVENT_KEY, items)

    def create_tasks(self, inputs: Sequence[TaskInput]) -> list[WriteOutcome]:
        """Tasks due at ``due_at`` (HubSpot's ``hs_timestamp`` is a task's due date). Neither status
        nor type is sent: HubSpot starts a task as a not-started to-do, and a retried upsert must
        not reopen a task the owner has already completed or retype one they changed."""
        items = []
        for t in inputs:
            props = {
                "hs_task_subject": t.subject[:255],
                "hs_task_body": wire.text_html(t.body),
                "hs_timestamp": wire.to_wire(t.due_at),
            }
            if t.owner_id:
                props["hubspot_owner_id"] = str(t.owner_id)
            items.append(KeyedItem(t.key, t.person_crm_id, props))
        return self._keyed().write("tasks", EVENT_KEY, items)

    def upsert_deal(self, deal: DealInput) -> WriteOutcome:
        """A deal keyed by the conversion id, in the default pipeline, closed won unless a stage is
        given, associated with the contact (deal→contact type 3). A currency goes to
        ``deal_currency_code``; a portal without that currency refuses the deal with HubSpot's
        message rather than us booking the amount in the wrong currency."""
        props = {"dealname": deal.name, "pipeline": "default", "dealstage": deal.stage or "closedwon"}
        if deal.amount is not None:
            props["amount"] = wire.to_wire(deal.amount)
        if deal.close_date is not None:
            props["closedate"] = wire.to_wire(deal.close_date)
        if deal.currency:
            props["deal_currency_code"] = deal.currency.upper()
        return self._keyed().write("deals", CONVERSION_KEY, [KeyedItem(deal.key, deal.person_crm_id, props)])[0]

    # -- custom fields (mapping.provisioning) ---------------------------------------------------------
    def create_custom_field(self, object_kind: str, field: property_defs.FieldDefinition) -> FieldSchema:
        """Create a HubSpot property for one of our field definitions (a FieldSchema or mapping's
        CustomFieldSpec); in the group it names (``extra["groupName"]``) or our "capsule" group.
        A property that already exists is returned as it is. Missing scope: ConfigurationError."""
        hubspot_type = wire.object_type(object_kind)
        group = property_defs.group_for(field) or CAPSULE_GROUP
        if group == CAPSULE_GROUP:
            self._keyed().ensure_group(hubspot_type)
        try:
            created = self._json(
                "POST", f"/crm/v3/properties/{hubspot_type}", json=property_defs.property_create(field, group)
            )
        except RecordError as exc:
            if exc.status != 409:
                raise
            created = self._json("GET", f"/crm/v3/properties/{hubspot_type}/{quote(field.name, safe='')}")
        return property_defs.to_schema(created)

    def has_custom_field_permission(self, object_kind: str = "contact") -> bool:
        """Whether this token may create properties on ``object_kind``: an OAuth token's scopes
        say so (one call); a private-app token is asked by re-creating our property group, which
        HubSpot answers 409 when allowed and 403 when not (the group is created if missing)."""
        hubspot_type = wire.object_type(object_kind)
        family = SCHEMA_SCOPE.get(hubspot_type, "contacts")
        info = self._token_info()
        if info is not None and isinstance(info.get("scopes"), list):
            return f"crm.schemas.{family}.write" in info["scopes"]
        try:
            self._keyed().ensure_group(hubspot_type)
        except ConfigurationError:
            return False
        return True

    # -- inbound webhooks ------------------------------------------------------------------------------
    @classmethod
    def verify_webhook(cls, method: str, url: str, headers: Mapping[str, str], body: bytes, secret: str) -> bool:
        """X-HubSpot-Signature-v3 with the app's client secret; stale (> 5 min) deliveries refused."""
        return webhooks.verify(method, url, headers, body, secret)

    @classmethod
    def parse_webhook(cls, body: bytes) -> list[InboundChange]:
        return webhooks.parse(body)


def _email(person: PersonInput) -> str:
    return (person.email or "").strip().lower()
