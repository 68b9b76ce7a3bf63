"""The Close connector: REST API v1 over HTTP Basic (API key) or Bearer (OAuth) (crm-reference §8).

What each operation costs in calls (the rate limit is the floor of every sync, issue 9):

- ``upsert_people``: one ``/data/search/`` per 100 e-mails, then one write per person
  (``PUT /contact/{id}/`` or, for a new person, ``POST /lead/`` with the contact inline), four at
  a time; a stored id whose e-mail changed adds one ``GET``. Custom field ids: one
  ``GET /custom_field/contact/`` per five minutes, only when a custom field is written.
- ``find_by_email``: one search per 100; ``find_by_id``, ``set_fields``: one call (two when
  ``set_fields`` changes an e-mail, phone or URL, which are merged with the contact's own).
- ``log_activities`` / ``add_notes``: one search for the contacts' leads, one
  ``GET /activity/?lead_id__in=`` per 50 leads, one create per new item. The Custom Activity Type
  is looked up once per process (and made the first time). ``create_tasks``: the lead search,
  one ``GET /task/`` per lead, one create per new task. ``upsert_deal``: the lead search, one
  ``GET /opportunity/``, then one create or (only when something changed) one update.
- ``changes_since``: usually one call per page. ``identity``, ``describe_fields``: one call each.
- ``delete_person``: read the contact's lead, delete the contact, and delete the lead when it has
  no contact left (four calls at most).

How each write is made once: see people.py (contacts) and keyed.py (activities, notes, tasks,
deals). Close's lead is the company: people are Close contacts, each new one in a new lead.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
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
from integrations.http import CrmHttp, RateLimitSnapshot
from integrations.providers.close import failures, keyed, polling, schema, webhooks, wire
from integrations.providers.close.engagement import Engagement
from integrations.providers.close.people import MATCH_FIELDS, People, check_kind, no_email, search
from integrations.providers.close.provider import PROVIDER

PATHS = {CONTACT: "contact", LEAD: "lead", DEAL: "opportunity"}


class BasicKeyAuth(requests.auth.HTTPBasicAuth):
    """Close API keys travel as the Basic username with an empty password (crm-reference §8.1)."""

    def __init__(self, key: str) -> None:
        super().__init__(key, "")

    def __repr__(self) -> str:  # never show the key in a traceback's locals
        return "BasicKeyAuth([REDACTED])"


class CloseConnector(Connector):
    spec = PROVIDER

    # Inbound sync's optional extension points (docs/ADDING_A_CRM.md, "Inbound changes").
    preference_fields = {"email_unsubscribed": "unsubscribed"}
    deal_stage_field = "status_label"
    deal_fields = {"note": "name", "amount": "amount", "value_currency": "currency"}

    def __init__(
        self,
        credentials: ConnectionCredentials,
        *,
        http: CrmHttp | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(credentials, http=http, settings=settings)
        sizes = self.spec.batch_sizes
        self.fields = schema.CustomFields(self.http, credentials.access_token, sizes["list_page"])
        self.people = People(self.http, self.fields, sizes["search_page"], sizes["upsert"])
        self.concurrency = int(self.settings.get("write_concurrency") or sizes["write_concurrency"])
        self.seams = ThreadSeams(self.http, self._thread_http)
        self.engagement = Engagement(
            self.http,
            self.people,
            self.fields,
            keyed.ActivityTypes(self.http, self.fields, credentials.access_token),
            page_size=sizes["list_page"],
            concurrency=self.concurrency,
            seams=self.seams,
        )

    # -- HTTP ------------------------------------------------------------------------------------------
    @classmethod
    def auth_for(cls, credentials: ConnectionCredentials) -> requests.auth.AuthBase:
        """API keys (they start with ``api_``) go as HTTP Basic; OAuth access tokens as Bearer."""
        if credentials.access_token.startswith("api_"):
            return BasicKeyAuth(credentials.access_token)
        return super().auth_for(credentials)

    @classmethod
    def make_http(cls, credentials: ConnectionCredentials, **hooks: Any) -> CrmHttp:
        base = wire.api_base(cls.spec.api_url(credentials.api_base_url))
        return CrmHttp(
            cls.spec.label,
            base,
            classify=cls.classify_error,
            parse_rate_limit=cls.parse_rate_limit,
            auth=cls.auth_for(credentials),
            secrets=[credentials.access_token],
            **hooks,
        )

    def _thread_http(self) -> CrmHttp:
        """A seam for a writer thread, on the same limiter hooks as ``self.http``."""
        return type(self).make_http(
            self.credentials, before_request=self.http.before_request, after_response=self.http.after_response
        )

    @classmethod
    def classify_error(cls, response: requests.Response) -> CrmError | None:
        return failures.classify(response)

    @classmethod
    def error_message(cls, response: requests.Response) -> tuple[str, str]:
        try:
            message, code, _field = failures.describe(response.json())
        except ValueError:
            return super().error_message(response)
        return (message or response.reason or "no message"), code

    @classmethod
    def parse_rate_limit(cls, headers: requests.structures.CaseInsensitiveDict) -> RateLimitSnapshot | None:
        return failures.parse_rate_limit(headers)

    # -- tokens ------------------------------------------------------------------------------------------
    @classmethod
    def parse_token_response(cls, payload: Mapping[str, Any]) -> TokenSet:
        """``POST /oauth2/token/``: access token, rotating refresh token, ``expires_in`` (3600 s),
        ``scope`` and the ``organization_id`` / ``user_id`` it was granted for (crm-reference §8.1)."""
        token = payload.get("access_token")
        if not isinstance(token, str) or not token:
            error = payload.get("error") or "invalid_response"
            description = payload.get("error_description") or "the answer has no access_token"
            raise OAuthError(str(error), str(description)[:300])
        expires_at = None
        if payload.get("expires_in") is not None:
            try:
                expires_at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=int(payload["expires_in"]))
            except (TypeError, ValueError):
                raise OAuthError("invalid_response", "expires_in is not a number of seconds") from None
        refresh = payload.get("refresh_token")
        return TokenSet(
            access_token=token,
            refresh_token=refresh if isinstance(refresh, str) and refresh else None,
            expires_at=expires_at,
            scopes=tuple(str(payload.get("scope") or "").split()),
            raw_fields=tuple(sorted(str(k) for k in payload)),
        )

    # -- reading -------------------------------------------------------------------------------------------
    def identity(self) -> CrmIdentity:
        """``GET /me/``: the user behind the key or token and the organisation it acts in (the
        ``organization_id`` /me/ names when it does, else the user's first organisation)."""
        me = self.http.json("GET", "me/") or {}
        organizations = [o for o in me.get("organizations") or [] if isinstance(o, Mapping) and o.get("id")]
        if not organizations:
            raise ConfigurationError("Close did not say which organization this key belongs to", code="no_org")
        org = next((o for o in organizations if o["id"] == me.get("organization_id")), organizations[0])
        return CrmIdentity(
            account_id=str(org["id"]),
            account_name=str(org.get("name") or org["id"]),
            user_email=str(me.get("email") or ""),
            user_id=str(me.get("id") or ""),
        )

    def describe_fields(self, object_kind: str) -> list[FieldSchema]:
        custom_type = schema.CUSTOM_TYPE.get(object_kind)
        custom = self.fields.definitions(custom_type, fresh=True) if custom_type else []
        fields = schema.describe(object_kind, custom)
        if object_kind == DEAL:
            labels = tuple(str(s.get("label")) for s in self.engagement.statuses())
            fields = [
                f if f.name != "status_label" else FieldSchema(**{**f.__dict__, "options": labels}) for f in fields
            ]
        return fields

    def find_by_id(self, object_kind: str, crm_id: str, *, fields: Sequence[str] | None = None) -> CrmRecord | None:
        path = PATHS.get(object_kind)
        if path is None:
            raise ConfigurationError(f"Close has no {object_kind} records to read", code="unknown_kind")
        try:
            answer = self.http.json("GET", f"{path}/{crm_id}/")
        except NotFound:
            return None
        return self._record(object_kind, answer or {})

    def _record(self, object_kind: str, row: Mapping[str, Any]) -> CrmRecord:
        if object_kind == CONTACT:
            return self.people.record(row)
        if object_kind == DEAL:
            flat = webhooks.deal_fields(row)
        else:
            flat = {k: v for k, v in row.items() if k not in ("contacts", "opportunities", "tasks")}
        return CrmRecord(crm_id=str(row["id"]), fields=flat, modified_at=wire.parse_time(row.get("date_updated")))

    def find_by_email(self, object_kind: str, emails: Sequence[str]) -> dict[str, CrmRecord]:
        check_kind(object_kind)
        found = self.people.by_email(emails, extra_fields=["title", "display_name", *self.people.custom_keys()])
        return {email: self.people.record(contact) for email, contact in found.items()}

    def changes_since(
        self, object_kind: str, cursor: ChangeCursor | None, limit: int = 100, *, fields: Sequence[str] | None = None
    ) -> ChangePage:
        since = cursor.modified_at if cursor else polling.EPOCH
        if object_kind == DEAL:
            params = {"date_updated__gte": polling._utc(since).isoformat(), "_order_by": "date_updated"}
            rows = keyed.list_pages(self.http, "opportunity/", params, self.spec.batch_sizes["list_page"])
        elif object_kind in (CONTACT, LEAD):
            wanted = (
                {"contact": [*MATCH_FIELDS, "title", "display_name", *self.people.custom_keys()]}
                if object_kind == CONTACT
                else {"lead": ["id", "name", "description", "url", "status_id", "status_label", "date_updated"]}
            )
            rows = search(
                self.http,
                polling.search_query(object_kind, since),
                wanted,
                self.spec.batch_sizes["search_page"],
                polling.oldest_first(object_kind),
            )
        else:
            raise LookupError(f"Close has no {object_kind} records to poll")
        return polling.page((self._record(object_kind, row) for row in rows), cursor, limit)

    def people_of_deal(self, crm_id: str) -> list[str]:
        record = self.find_by_id(DEAL, crm_id)
        return list((record.fields.get("associated_people") or []) if record else [])

    # -- writing ---------------------------------------------------------------------------------------------
    def upsert_people(self, object_kind: str, inputs: Sequence[PersonInput]) -> list[WriteOutcome]:
        check_kind(object_kind)
        outcomes: dict[int, WriteOutcome] = {}
        groups: dict[str, list[int]] = {}
        for index, person in enumerate(inputs):
            email = (person.email or "").strip().lower()
            if not email and not person.crm_id:
                outcomes[index] = no_email(person)
            else:
                groups.setdefault(email or f"id:{person.crm_id}", []).append(index)
        if groups:
            try:
                custom_ids = self.people.custom_ids(inputs)
                found = self.people.by_email([e for e in groups if not e.startswith("id:")])
            except RecordError as error:  # a search Close refused: every person of the batch shares it
                return [outcomes.get(i) or WriteOutcome(p.key, error=error) for i, p in enumerate(inputs)]
            write = failures.patient(lambda http, index: self.people.write(http, inputs[index], found, custom_ids))

            def write_group(http: CrmHttp, indices: list[int]) -> list[tuple[int, WriteOutcome]]:
                # One person's rows (the same e-mail twice in a batch) in order, on one thread.
                done = []
                for index in indices:
                    try:
                        done.append((index, write(http, index)))
                    except RecordError as error:
                        done.append((index, self.people.failed(inputs[index], error)))
                return done

            for pairs in run_bounded(
                list(groups.values()), write_group, seams=self.seams, workers=self.concurrency, thread_name="close"
            ):
                outcomes.update(pairs)  # type: ignore[arg-type]  # write_group returns no RecordError
        return [outcomes[i] for i in range(len(inputs))]

    def set_fields(self, object_kind: str, crm_id: str, fields: Mapping[str, Any]) -> None:
        check_kind(object_kind)
        custom_ids = self.people.custom_ids([PersonInput(key="set", email="", fields=fields)])
        contact, lists, lead = wire.split_fields(fields, custom_ids)
        current = None
        if lists or lead:
            current = self.http.json("GET", f"contact/{crm_id}/", params={"_fields": ",".join(MATCH_FIELDS)})
        body = wire.contact_body(fields, custom_ids, "", current) if current is not None else contact
        self.http.json(
            "PUT", f"contact/{crm_id}/", json={k: v for k, v in body.items() if k != "name" or "name" in fields}
        )
        if lead and current is not None and current.get("lead_id"):
            # A trigger that sets a company field means it: the contact's lead is updated too.
            lead_body = wire.lead_body(lead, {}, "")
            lead_body.pop("contacts", None)
            if "lead_name" not in lead:
                lead_body.pop("name", None)
            self.http.json("PUT", f"lead/{current['lead_id']}/", json=lead_body)

    def delete_person(self, object_kind: str, crm_id: str) -> None:
        """Delete the contact, and its lead when no other contact is left on it: the lead was named
        after the company or the person, and an empty one would keep the name (test records,
        erasure). A contact already gone counts as deleted. Up to four calls."""
        check_kind(object_kind)
        try:
            contact = self.http.json("GET", f"contact/{crm_id}/", params={"_fields": "id,lead_id"}) or {}
            self.http.json("DELETE", f"contact/{crm_id}/")
        except NotFound:
            return
        lead_id = contact.get("lead_id")
        if not lead_id:
            return
        try:
            lead = self.http.json("GET", f"lead/{lead_id}/", params={"_fields": "id,contact_ids"}) or {}
            if not lead.get("contact_ids"):
                self.http.json("DELETE", f"lead/{lead_id}/")
        except NotFound:
            return

    def log_activities(self, inputs: Sequence[ActivityInput]) -> list[WriteOutcome]:
        """Custom Activities of our "Capsule engagement" type (keyed.py says why not notes or calls)."""
        return self.engagement.activities(inputs)

    def add_notes(self, inputs: Sequence[NoteInput]) -> list[WriteOutcome]:
        return self.engagement.notes(inputs)

    def create_tasks(self, inputs: Sequence[TaskInput]) -> list[WriteOutcome]:
        return self.engagement.tasks(inputs)

    def upsert_deal(self, deal: DealInput) -> WriteOutcome:
        """An opportunity keyed by our "Capsule conversion ID" field; when Close refuses that field
        (deleted in Close since it was cached), it is looked up or made again and the write retried."""
        try:
            return self.engagement.deal(deal)
        except RecordError as error:
            if not error.field.startswith("custom."):
                return WriteOutcome(deal.key, error=error)
            self.fields.forget("opportunity")
        try:
            return self.engagement.deal(deal)
        except RecordError as error:
            return WriteOutcome(deal.key, error=error)

    # -- custom fields (mapping.provisioning) ----------------------------------------------------------------
    def create_custom_field(self, object_kind: str, field: Any) -> FieldSchema:
        """A Close custom field for one of our field definitions (named by its ``name``), or the
        existing one of that name."""
        custom_type = schema.CUSTOM_TYPE.get(object_kind)
        if custom_type is None or custom_type == "activity":
            raise ConfigurationError(f"Close custom fields for {object_kind}s are not made here", code="unsupported")
        kind = str(getattr(field, "type", "string"))
        extra: dict[str, Any] = {}
        options = tuple(getattr(field, "options", ()) or ())
        if kind in ("picklist", "multipicklist"):
            extra = {"choices": list(options), "accepts_multiple_values": kind == "multipicklist"}
        if getattr(field, "description", ""):
            extra["description"] = field.description
        created = self.fields.ensure(custom_type, str(field.name), schema.TO_CLOSE.get(kind, "text"), **extra)
        return schema.to_schema(created)

    # -- inbound webhooks ------------------------------------------------------------------------------------------
    @classmethod
    def verify_webhook(cls, method: str, url: str, headers: Mapping[str, str], body: bytes, secret: str) -> bool:
        """``close-sig-hash`` with the subscription's signature key; stale (> 5 min) deliveries refused."""
        return webhooks.verify(headers, body, secret)

    @classmethod
    def parse_webhook(cls, body: bytes) -> list[InboundChange]:
        return webhooks.parse(body)

    @classmethod
    def webhook_secret_for(cls, connection: Any) -> str:
        """The subscription's signature key, sealed in the registration reference (webhooks.py)."""
        from integrations.models import WebhookRegistration

        registration = WebhookRegistration.objects.filter(connection=connection).first()
        if registration is None:
            return ""
        return webhooks.signing_key(registration.ref, connection.webhook_secret)

    @classmethod
    def is_own_change(cls, change: InboundChange, connection: Any) -> bool:
        """Changes made through our OAuth app (the event's ``oauth_client_id``). API-key writes carry
        the key's id, which Close does not tell us for our own key: those are caught by comparing
        with what we last sent."""
        client_id = cls.spec.client_id
        return bool(client_id) and change.source == f"oauth_client:{client_id}"

    def register_webhooks(self, callback_url: str, secret: str) -> str:
        answer = (
            self.http.json(
                "POST", "webhook/", json={"url": callback_url, "events": webhooks.SUBSCRIBED, "verify_ssl": True}
            )
            or {}
        )
        if not answer.get("id") or not answer.get("signature_key"):
            raise ConfigurationError("Close created the webhook without a signature key", code="no_signature_key")
        return webhooks.seal(str(answer["id"]), str(answer["signature_key"]), secret)

    def unregister_webhooks(self, ref: str) -> None:
        try:
            self.http.json("DELETE", f"webhook/{webhooks.subscription_id(ref)}/")
        except NotFound:
            return  # already gone
