"""The Salesforce connector: REST API v59.0 through simple-salesforce on our HTTP seam.

Facts are crm-reference.md §1 and §10.1. What each operation costs in calls (the org's rolling
24-hour allocation is the floor of every sync, issue 9):

- ``upsert_people``: ⌈m/200⌉ SOQL queries to match the m inputs that have no stored id by e-mail,
  then ⌈u/200⌉ sObject Collections updates and ⌈c/200⌉ creates (or upserts on
  ``Capsule_Prospect_Id__c``); a part bigger than the bulk threshold is one Bulk API 2.0 job
  (five calls plus polls) instead. The first call of a process per token adds one describe.
- ``find_by_email``: one SOQL query per 200 addresses; ``find_by_id``, ``set_fields``: one call.
- ``changes_since``: one SOQL query per page (``SystemModstamp`` with an ``Id`` tie-break).
- ``log_activities``, ``create_tasks``: one Collections upsert on ``Capsule_Event_Id__c`` per 200;
  ``add_notes``: one SOQL query and one Collections create per 200; ``upsert_deal``: one upsert
  on ``Capsule_Conversion_Id__c`` plus one contact-role create (and a lookup when the deal was
  already there). See keyed.py for the idempotency keys and the fallbacks without them.
- ``identity``: userinfo plus one query for the org's name; ``describe_fields``: one call.

Salesforce has no signed HTTP webhooks (Change Data Capture is a streaming API we would have to
hold a connection to, §1.7), so ``verify_webhook``/``parse_webhook`` accept nothing and CRM
changes are polled with ``changes_since``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar
from urllib.parse import quote, urlsplit

import requests

from integrations.connector import (
    CONTACT,
    ActivityInput,
    BulkPeopleWrite,
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
from integrations.providers.salesforce import failures, soql
from integrations.providers.salesforce.api import SalesforceApi
from integrations.providers.salesforce.bulk import BulkIngest
from integrations.providers.salesforce.keyed import KeyedRecord, KeyedWriter, NoteRecord, write_notes
from integrations.providers.salesforce.people import PROSPECT_KEY_FIELD, PeopleWriter, match_by_email
from integrations.providers.salesforce.provider import PROVIDER
from integrations.providers.salesforce.schema import (
    FieldDefinition,
    custom_api_name,
    custom_field_metadata,
    field_schemas,
    full_names,
)
from integrations.providers.salesforce.wire import (
    json_fields,
    normalize_id,
    parse_datetime,
    record_fields,
    sobject_for,
)

EVENT_KEY_FIELD = "Capsule_Event_Id__c"
CONVERSION_KEY_FIELD = "Capsule_Conversion_Id__c"
KEY_FIELD_LABELS = {
    PROSPECT_KEY_FIELD: "Capsule Prospect Id",
    EVENT_KEY_FIELD: "Capsule Event Id",
    CONVERSION_KEY_FIELD: "Capsule Conversion Id",
}
# What reads return when the caller names no fields: enough to recognise the person, see who
# changed it last (echo suppression) and when.
PERSON_FIELDS = ("Id", "FirstName", "LastName", "Email", "Phone", "Title", "OwnerId", "LastModifiedById")
READ_FIELDS = {
    "Contact": (*PERSON_FIELDS, "AccountId"),
    "Lead": (*PERSON_FIELDS, "Company", "Status", "IsConverted"),
    "Opportunity": ("Id", "Name", "StageName", "CloseDate", "Amount", "OwnerId", "LastModifiedById"),
    "Task": ("Id", "Subject", "Status", "ActivityDate", "WhoId", "OwnerId", "LastModifiedById"),
    "Note": ("Id", "Title", "ParentId", "OwnerId", "LastModifiedById"),
}
MODIFIED = "SystemModstamp"  # changes by automation too, unlike LastModifiedDate (§1.7)
DEFAULT_STAGE = "Closed Won"
# Bulk API 2.0 defaults (connection settings override them; see provider.py).
DEFAULT_BULK_JOB_ROWS = 100_000
DEFAULT_BULK_MAX_WAIT = 900.0


@dataclass(frozen=True)
class ApiUsage:
    """The org's rolling 24-hour API allocation as the last answer's ``Sforce-Limit-Info`` told it."""

    used: int
    limit: int

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)


class SalesforceConnector(Connector):
    spec = PROVIDER

    # -- inbound sync (integrations/inbound/extensions.py): changes are polled by SystemModstamp --
    preference_fields: ClassVar[dict[str, str]] = {"HasOptedOutOfEmail": "unsubscribed", "DoNotCall": "do_not_contact"}
    owner_fields: ClassVar[dict[str, str]] = {"OwnerId": "owner_id"}
    deal_stage_field = "StageName"
    echo_fields = ("LastModifiedById",)

    @classmethod
    def is_own_change(cls, change: InboundChange, connection) -> bool:
        """Our writes are made as the connection's API user (stored at connect as crm_user_id)."""
        ours = (connection.auth_extra or {}).get("crm_user_id")
        return bool(ours) and str(change.properties.get("LastModifiedById") or "")[:15] == str(ours)[:15]

    # -- HTTP ------------------------------------------------------------------------------------------
    @classmethod
    def make_http(cls, credentials: ConnectionCredentials, **hooks: Any) -> CrmHttp:
        try:
            cls.spec.api_url(credentials.api_base_url)
        except ValueError:
            raise ConfigurationError(
                "Salesforce needs the org's instance URL (https://yourorg.my.salesforce.com) with the token",
                code="no_instance_url",
            ) from None
        http = super().make_http(credentials, **hooks)
        http.extra_error_statuses.add(300)  # an external id matching several records is an error
        return http

    @classmethod
    def classify_error(cls, response: requests.Response) -> CrmError | None:
        return failures.classify(response)

    @classmethod
    def error_message(cls, response: requests.Response) -> tuple[str, str]:
        message, code, _fields = failures.describe(response)
        return message, code

    @classmethod
    def parse_rate_limit(cls, headers: requests.structures.CaseInsensitiveDict) -> RateLimitSnapshot | None:
        """``Sforce-Limit-Info: api-usage=18/15000`` (optionally ``; per-app-api-usage=…``), §1.5."""
        usage = _api_usage(headers.get("Sforce-Limit-Info"))
        if usage is None:
            return None
        return RateLimitSnapshot(daily_limit=usage.limit, daily_remaining=usage.remaining)

    @cached_property
    def api(self) -> SalesforceApi:
        return SalesforceApi(self.http, self.credentials.access_token)

    @property
    def api_usage(self) -> ApiUsage | None:
        """The last ``Sforce-Limit-Info`` this connector saw (kept by the seam), for the dashboard."""
        snapshot = self.http.rate_limit
        if snapshot is None or snapshot.daily_limit is None or snapshot.daily_remaining is None:
            return None
        return ApiUsage(used=snapshot.daily_limit - snapshot.daily_remaining, limit=snapshot.daily_limit)

    @property
    def _batch_size(self) -> int:
        return self.spec.batch_sizes["upsert"]

    @property
    def bulk_threshold(self) -> int:
        """Records in one write part above which Bulk API 2.0 is used (connection setting first)."""
        configured = self.settings.get("bulk_threshold")
        return int(configured) if configured else self.spec.batch_sizes["bulk_threshold"]

    @property
    def bulk_max_wait(self) -> float:
        return float(self.settings.get("bulk_max_wait_seconds") or DEFAULT_BULK_MAX_WAIT)

    def _bulk(self) -> BulkIngest:
        return BulkIngest(self.http, self.api.data_url, max_wait=self.bulk_max_wait)

    def bulk_people_write(self) -> BulkPeopleWrite:
        """Bulk API 2.0 above the threshold (crm-reference §1.2): one job of up to ``bulk_job_rows``
        records replaces ⌈n/200⌉ collection calls. Salesforce splits a job into 10,000-record
        internal batches itself, so a big job costs no more of the daily batch allocation than
        several small ones. The lease covers the job's time limit, the e-mail matching queries
        before it (one per 200 addresses) and the result downloads after it."""
        rows = int(self.settings.get("bulk_job_rows") or DEFAULT_BULK_JOB_ROWS)
        return BulkPeopleWrite(
            threshold=self.bulk_threshold,
            max_rows=max(rows, self.bulk_threshold + 1),
            lease_seconds=self.bulk_max_wait + 300.0,
        )

    def _keyed(self) -> KeyedWriter:
        return KeyedWriter(self.api, self.spec.batch_sizes["activities"], self._create_key_field)

    # -- tokens ----------------------------------------------------------------------------------------
    @classmethod
    def parse_token_response(cls, payload: Mapping[str, Any]) -> TokenSet:
        """A token answer (§1.1): ``access_token``, ``refresh_token`` (code exchange, or a rotated
        one), ``instance_url`` (the org's API host, on every answer) and ``scope``; no
        ``expires_in`` — the session lives as long as the org's session timeout, so the engine
        refreshes when Salesforce answers 401 INVALID_SESSION_ID."""
        if payload.get("error"):
            raise OAuthError(str(payload["error"]), str(payload.get("error_description") or "")[:300])
        token = payload.get("access_token")
        if not isinstance(token, str) or not token:
            raise OAuthError("invalid_response", "the answer has no access_token")
        instance = payload.get("instance_url")
        if not isinstance(instance, str) or urlsplit(instance).scheme != "https" or not urlsplit(instance).netloc:
            raise OAuthError("invalid_response", "the answer has no https instance_url")
        refresh = payload.get("refresh_token")
        scope = payload.get("scope")
        return TokenSet(
            access_token=token,
            refresh_token=refresh if isinstance(refresh, str) and refresh else None,
            expires_at=None,
            scopes=tuple(scope.split()) if isinstance(scope, str) else (),
            api_base_url=instance.rstrip("/"),
            raw_fields=tuple(sorted(str(k) for k in payload)),
        )

    # -- reading ---------------------------------------------------------------------------------------
    def identity(self) -> CrmIdentity:
        """The org and user of the token: the OpenID userinfo endpoint on the instance (the ``id``
        scope), then the org's name from ``Organization`` when the user may read it."""
        info = self.http.json("GET", f"{self.api.oauth_url}userinfo") or {}
        org_id = str(info.get("organization_id") or "")
        if not org_id:
            raise ConfigurationError("Salesforce did not say which org this token belongs to", code="no_org")
        name = ""
        try:
            org = next(self.api.query(soql.select("Organization", ["Id", "Name"], limit=1)), None)
            name = str((org or {}).get("Name") or "")
        except (RecordError, ConfigurationError):
            pass  # no access to Organization (or an org that does not expose it): use the id
        return CrmIdentity(
            account_id=org_id,
            account_name=name or f"Salesforce org {org_id}",
            user_email=str(info.get("email") or ""),
            user_id=str(info.get("user_id") or ""),
        )

    def describe_fields(self, object_kind: str) -> list[FieldSchema]:
        return field_schemas(self.api.describe(sobject_for(object_kind), fresh=True))

    def _select(self, sobject: str, fields: Sequence[str] | None) -> list[str]:
        return list(dict.fromkeys(["Id", *(fields or READ_FIELDS.get(sobject, ())), MODIFIED]))

    def _record(self, raw: Mapping[str, Any]) -> CrmRecord:
        fields = record_fields(raw)
        return CrmRecord(
            crm_id=str(fields.get("Id") or ""),
            fields=fields,
            modified_at=parse_datetime(fields.get(MODIFIED)) or parse_datetime(fields.get("LastModifiedDate")),
        )

    def find_by_id(self, object_kind: str, crm_id: str, *, fields: Sequence[str] | None = None) -> CrmRecord | None:
        """The record, or None when it is deleted (merged-away records are deleted in Salesforce)."""
        record_id = normalize_id(crm_id)
        if record_id is None:
            return None
        sobject = sobject_for(object_kind)
        try:
            raw = self.api.get(sobject, record_id, [soql.name(f) for f in fields] if fields else None)
        except NotFound:
            return None
        return self._record(raw)

    def find_by_email(
        self, object_kind: str, emails: Sequence[str], *, fields: Sequence[str] | None = None
    ) -> dict[str, CrmRecord]:
        """One SOQL query per 200 addresses; converted Leads are not returned."""
        sobject = sobject_for(object_kind)
        extra = [f for f in self._select(sobject, fields) if f not in ("Id", "Email", "CreatedDate", MODIFIED)]
        return {email: self._record(raw) for email, raw in match_by_email(self.api, sobject, emails, extra).items()}

    def changes_since(
        self, object_kind: str, cursor: ChangeCursor | None, limit: int = 100, *, fields: Sequence[str] | None = None
    ) -> ChangePage:
        """Records modified after the cursor, oldest first: ``SystemModstamp > t OR (SystemModstamp
        = t AND Id > last)`` ordered by both, so rows sharing one instant are split across pages
        without a miss or a repeat. One row past ``limit`` is read to know whether more wait."""
        sobject = sobject_for(object_kind)
        where = ""
        if cursor is not None:
            at = soql.datetime_literal(cursor.modified_at)
            where = f"{MODIFIED} > {at}"
            if cursor.last_id:
                where += f" OR ({MODIFIED} = {at} AND Id > {soql.quote(cursor.last_id)})"
        query = soql.select(sobject, self._select(sobject, fields), where, order_by=(MODIFIED, "Id"), limit=limit + 1)
        rows = [self._record(raw) for raw in self.api.query(query)]
        page, more = rows[:limit], len(rows) > limit
        last = page[-1] if page else None
        next_cursor = cursor
        if last is not None and last.modified_at is not None:
            next_cursor = ChangeCursor(modified_at=last.modified_at, last_id=last.crm_id)
        return ChangePage(records=page, next_cursor=next_cursor, has_more=more)

    # -- people ----------------------------------------------------------------------------------------
    def upsert_people(self, object_kind: str, inputs: Sequence[PersonInput]) -> list[WriteOutcome]:
        sobject = sobject_for(object_kind)
        if sobject not in ("Contact", "Lead"):
            raise ConfigurationError(f"Salesforce people are Contacts or Leads, not {object_kind}", code="not_a_person")
        if not inputs:
            return []
        field = self.api.fields(sobject).get(PROSPECT_KEY_FIELD.lower())
        key_field = PROSPECT_KEY_FIELD if field is not None and field.get("externalId") else None
        writer = PeopleWriter(
            self.api, self._bulk(), sobject, batch_size=self._batch_size, bulk_threshold=self.bulk_threshold
        )
        return writer.upsert(inputs, key_field)

    def set_fields(self, object_kind: str, crm_id: str, fields: Mapping[str, Any]) -> None:
        record_id = normalize_id(crm_id)
        if record_id is None:
            raise NotFound(f"{crm_id!r} is not a Salesforce id", code="MALFORMED_ID")
        self.api.update(sobject_for(object_kind), record_id, json_fields(fields))

    def delete_person(self, object_kind: str, crm_id: str) -> None:
        """Delete the Contact or Lead (it goes to the org's recycle bin)."""
        record_id = normalize_id(crm_id)
        if record_id is None:
            return
        try:
            self.api.rest("DELETE", f"sobjects/{sobject_for(object_kind)}/{quote(record_id, safe='')}")
        except NotFound:
            return

    # -- engagement ------------------------------------------------------------------------------------
    def log_activities(self, inputs: Sequence[ActivityInput]) -> list[WriteOutcome]:
        """Completed Tasks on the person's activity timeline, upserted on Capsule_Event_Id__c.

        ``TaskSubtype`` is not sent: it can be set only on insert, so an upsert that updates on a
        replay would be refused; Salesforce makes API-created tasks subtype Task."""
        records = [
            KeyedRecord(
                a.key,
                {
                    "Subject": a.subject[:255],
                    "Description": a.body,
                    "ActivityDate": a.occurred_at.astimezone(dt.UTC).date().isoformat(),
                    "Status": "Completed",
                    "WhoId": a.person_crm_id,
                },
                scope=a.person_crm_id,
            )
            for a in inputs
        ]
        return self._keyed().write("Task", EVENT_KEY_FIELD, records, scope_field="WhoId")

    def create_tasks(self, inputs: Sequence[TaskInput]) -> list[WriteOutcome]:
        """Open Tasks due on ``due_at``, for ``owner_id`` when given, upserted on the trigger key.

        ``Status`` is left to the org's default for new tasks ("Not Started"): sent on every
        upsert, a retried write would reopen a task its owner had already completed."""
        records = []
        for t in inputs:
            fields: dict[str, Any] = {
                "Subject": t.subject[:255],
                "Description": t.body,
                "ActivityDate": t.due_at.astimezone(dt.UTC).date().isoformat(),
                "WhoId": t.person_crm_id,
            }
            if t.owner_id:
                fields["OwnerId"] = t.owner_id
            records.append(KeyedRecord(t.key, fields, scope=t.person_crm_id))
        return self._keyed().write("Task", EVENT_KEY_FIELD, records, scope_field="WhoId")

    def add_notes(self, inputs: Sequence[NoteInput]) -> list[WriteOutcome]:
        notes = [NoteRecord(n.key, n.person_crm_id, n.body) for n in inputs]
        return write_notes(self.api, notes, self.spec.batch_sizes["activities"])

    def upsert_deal(self, deal: DealInput) -> WriteOutcome:
        """An Opportunity upserted on Capsule_Conversion_Id__c — Closed Won unless a stage is
        given — and, for a Contact, an OpportunityContactRole. A Lead gets no role:
        OpportunityContactRole takes Contacts only, and a Lead joins its deals when it is converted.
        A currency is written only in a multi-currency org (``CurrencyIsoCode`` exists); otherwise
        the amount is in the org's currency."""
        fields: dict[str, Any] = {
            "Name": deal.name[:120],
            "StageName": deal.stage or DEFAULT_STAGE,
            "CloseDate": (deal.close_date or dt.datetime.now(dt.UTC).date()).isoformat(),
        }
        if deal.amount is not None:
            fields["Amount"] = deal.amount
        if deal.currency and "currencyisocode" in self.api.fields("Opportunity"):
            fields["CurrencyIsoCode"] = deal.currency.upper()
        record = KeyedRecord(deal.key, fields, scope=fields["Name"])
        outcome = self._keyed().write("Opportunity", CONVERSION_KEY_FIELD, [record], scope_field="Name")[0]
        if not outcome.ok or not outcome.crm_id or deal.person_kind != CONTACT:
            return outcome
        try:
            self._ensure_contact_role(outcome.crm_id, deal.person_crm_id, known_new=outcome.created)
        except RecordError as exc:
            return WriteOutcome(outcome.key, crm_id=outcome.crm_id, created=outcome.created, error=exc)
        return outcome

    def _ensure_contact_role(self, opportunity_id: str, contact_id: str, *, known_new: bool) -> None:
        if not known_new:
            where = f"OpportunityId = {soql.quote(opportunity_id)} AND ContactId = {soql.quote(contact_id)}"
            query = soql.select("OpportunityContactRole", ["Id"], where)
            if next(self.api.query(query), None) is not None:
                return
        self.api.rest(
            "POST",
            "sobjects/OpportunityContactRole/",
            json={"OpportunityId": opportunity_id, "ContactId": contact_id, "IsPrimary": True},
        )

    # -- custom fields (mapping.provisioning) ----------------------------------------------------------
    def create_custom_field(self, object_kind: str, field: FieldDefinition) -> FieldSchema:
        """A custom field for one of our field definitions, through the Tooling API ``CustomField``.

        A field that already exists is returned as it is. A user without "Customize Application"
        gets a ConfigurationError carrying Salesforce's message."""
        return self._create_field(sobject_for(object_kind), field)

    def _create_field(
        self, sobject: str, field: FieldDefinition, *, external_id: bool = False, unique: bool = False
    ) -> FieldSchema:
        api_name = custom_api_name(field.name)
        metadata = custom_field_metadata(field, external_id=external_id, unique=unique)
        names = full_names(sobject, api_name)
        for position, full_name in enumerate(names):
            try:
                self.api.tooling("POST", "sobjects/CustomField/", {"FullName": full_name, "Metadata": metadata})
                break
            except RecordError as exc:
                if exc.code == "DUPLICATE_DEVELOPER_NAME":
                    break  # it is there already
                if position == len(names) - 1:
                    raise
        self.api.forget(sobject)
        made = next((f for f in field_schemas(self.api.describe(sobject)) if f.name.lower() == api_name.lower()), None)
        if made is None:
            # Created, but not visible to this user yet (field-level security): describe what we asked for.
            made = FieldSchema(api_name, metadata["label"], field.type, custom=True, options=tuple(field.options))
        return made

    def _create_key_field(self, sobject: str, field_name: str) -> bool:
        """Make one of our key fields (unique External ID text); False when the org refuses."""
        definition = FieldSchema(field_name, KEY_FIELD_LABELS.get(field_name, field_name), "string")
        try:
            self._create_field(sobject, definition, external_id=True, unique=True)
        except ConfigurationError:
            return False
        return True

    # -- inbound webhooks ------------------------------------------------------------------------------
    @classmethod
    def verify_webhook(cls, method: str, url: str, headers: Mapping[str, str], body: bytes, secret: str) -> bool:
        """Salesforce sends no signed HTTP webhooks (CDC is streaming); changes are polled."""
        return False

    @classmethod
    def parse_webhook(cls, body: bytes) -> list[InboundChange]:
        return []


def _api_usage(value: str | None) -> ApiUsage | None:
    """``api-usage=18/15000`` out of ``Sforce-Limit-Info`` (other parts are ignored)."""
    for part in (value or "").split(";"):
        name, _, numbers = part.strip().partition("=")
        if name.strip().lower() != "api-usage":
            continue
        used, _, limit = numbers.partition("/")
        try:
            return ApiUsage(used=int(used), limit=int(limit))
        except ValueError:
            return None
    return None
