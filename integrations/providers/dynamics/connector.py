"""The Microsoft Dynamics 365 (Dataverse Web API v9.2) connector.

Facts are crm-reference.md §5. What each operation costs in calls:

- ``identity``: ``WhoAmI``, the organisation's name, the user's e-mail (3 calls).
- ``describe_fields``: 4 metadata calls (schema.py); ``create_custom_field``: 1 or 2.
- ``find_by_id``, ``set_fields``: 1; ``find_by_email``: 1 per 100 addresses.
- ``upsert_people``: see people.py — ⌈e/100⌉ queries + one ``$batch`` per 1,000 writes, or a single
  ``$batch`` of alternate-key upserts when ``email_alternate_key`` is set on the connection.
- ``log_activities``/``create_tasks``/``add_notes``: one query per 100 keys + one ``$batch`` (keyed.py);
  the first write of a process checks (and if needed creates) our key attribute: +1 to 3 calls.
- ``upsert_deal``: one query + one write (+ the key attribute check once).
- ``changes_since``: one call per page — Dataverse change tracking (see ``changes_since``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import requests

from integrations.connector import (
    CONTACT,
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
from integrations.http import CrmHttp, RateLimitSnapshot, int_header, retry_after_seconds
from integrations.providers.dynamics import keyed, schema, wire
from integrations.providers.dynamics.people import PeopleWriter, find_by_email, to_record
from integrations.providers.dynamics.provider import PROVIDER

DELTA = "delta!"  # ChangeCursor.last_id prefix: the rest is Dataverse's $deltatoken
PERSON_FIELDS = (
    "firstname",
    "lastname",
    "emailaddress1",
    "telephone1",
    "jobtitle",
    "donotemail",
    "donotphone",
    "_ownerid_value",
    "_modifiedby_value",
    "modifiedon",
)
READ_FIELDS = {
    "contact": PERSON_FIELDS,
    "lead": (*PERSON_FIELDS, "companyname", "subject"),
    "opportunity": (
        "name",
        "estimatedvalue",
        "stepname",
        "estimatedclosedate",
        "_parentcontactid_value",
        "_originatingleadid_value",
        "_ownerid_value",
        "_modifiedby_value",
        "modifiedon",
    ),
    "task": ("subject", "description", "scheduledend", "statecode", keyed.EVENT_KEY, "_modifiedby_value", "modifiedon"),
    "annotation": ("subject", "notetext", "_objectid_value", "_modifiedby_value", "modifiedon"),
}
LOOKUP_TARGETS = {"ownerid": "systemusers"}


def _person(object_kind: str) -> tuple[str, str, str]:
    if object_kind not in (CONTACT, LEAD):
        raise ConfigurationError(f"Dynamics 365 people are contacts or leads, not {object_kind}", code="not_a_person")
    return wire.entity(object_kind)


class DynamicsConnector(Connector):
    spec = PROVIDER

    # -- inbound sync (integrations/inbound/extensions.py): changes come from change tracking --------------
    preference_fields: ClassVar[dict[str, str]] = {"donotemail": "unsubscribed", "donotphone": "do_not_contact"}
    owner_fields: ClassVar[dict[str, str]] = {"_ownerid_value": "owner_id"}
    deal_stage_field = "stepname"
    deal_fields: ClassVar[dict[str, str]] = {"name": "name", "estimatedvalue": "amount"}
    echo_fields = ("_modifiedby_value",)

    @classmethod
    def is_own_change(cls, change: InboundChange, connection) -> bool:
        """Our writes are made as the connected user (``WhoAmI`` UserId, stored at connect as crm_user_id)."""
        ours = str((connection.auth_extra or {}).get("crm_user_id") or "").lower()
        return bool(ours) and str(change.properties.get("_modifiedby_value") or "").lower() == ours

    def people_of_deal(self, crm_id: str) -> list[str]:
        record = self.find_by_id("deal", crm_id)
        if record is None:
            return []
        return [
            str(v)
            for v in (record.fields.get("_parentcontactid_value"), record.fields.get("_originatingleadid_value"))
            if v
        ]

    # -- HTTP ----------------------------------------------------------------------------------------
    @classmethod
    def make_http(cls, credentials: ConnectionCredentials, **hooks: Any) -> CrmHttp:
        try:
            cls.spec.api_url(credentials.api_base_url)
        except ValueError:
            raise ConfigurationError(
                "Dynamics 365 needs the organisation URL (https://yourorg.crm.dynamics.com) with the token",
                code="no_org_url",
            ) from None
        return super().make_http(credentials, **hooks)

    @classmethod
    def error_message(cls, response: requests.Response) -> tuple[str, str]:
        return wire.error_parts(response.content, response.reason or "")

    @classmethod
    def classify_error(cls, response: requests.Response) -> CrmError | None:
        return wire.classify(response.status_code, response.headers, response.content, response.reason or "")

    @classmethod
    def parse_rate_limit(cls, headers: requests.structures.CaseInsensitiveDict) -> RateLimitSnapshot | None:
        """``x-ms-ratelimit-burst-remaining-xrm-requests`` (requests left in the 5-minute window) and
        Retry-After; the execution-time header is kept by the seam's caller through the raw headers."""
        names = cls.spec.rate_limit.headers
        remaining = int_header(headers, names["remaining"])
        if remaining is None and not headers.get("Retry-After"):
            return None
        return RateLimitSnapshot(
            limit=cls.spec.rate_limit.requests,
            remaining=remaining,
            window_seconds=cls.spec.rate_limit.window_seconds,
            reset_seconds=retry_after_seconds(headers),
        )

    @property
    def _alternate_key(self) -> bool:
        return bool(self.settings.get("email_alternate_key"))

    # -- tokens ------------------------------------------------------------------------------------------
    @classmethod
    def parse_token_response(cls, payload: Mapping[str, Any]) -> TokenSet:
        """Entra ID's answer: ``access_token``, ``expires_in``, ``refresh_token`` (rotated on every
        refresh) and ``scope`` — whose resource (``https://<org>/.default``) names the org, the API base."""
        if payload.get("error"):
            raise OAuthError(str(payload["error"]), str(payload.get("error_description") or "")[:300])
        token = payload.get("access_token")
        if not isinstance(token, str) or not token:
            raise OAuthError("invalid_response", "the answer has no access_token")
        try:
            lifetime = int(payload.get("expires_in") or 3599)
        except (TypeError, ValueError):
            raise OAuthError("invalid_response", "expires_in is not a number") from None
        scopes = tuple(str(payload.get("scope") or "").split())
        org = next((s for s in scopes if s.startswith("https://") and "/" in s[8:]), "")
        parts = urlsplit(org)
        refresh = payload.get("refresh_token")
        return TokenSet(
            access_token=token,
            refresh_token=refresh if isinstance(refresh, str) and refresh else None,
            expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=lifetime),
            scopes=scopes,
            api_base_url=f"{parts.scheme}://{parts.netloc}" if parts.netloc and "yourorg" not in parts.netloc else None,
            raw_fields=tuple(sorted(str(k) for k in payload)),
        )

    # -- reading -------------------------------------------------------------------------------------------
    def identity(self) -> CrmIdentity:
        who = self.http.json("GET", wire.api("WhoAmI"), headers=wire.HEADERS) or {}
        org_id, user_id = str(who.get("OrganizationId") or ""), str(who.get("UserId") or "")
        if not org_id:
            raise ConfigurationError("Dynamics 365 did not say which organisation this token belongs to", code="no_org")
        name, email = "", ""
        try:
            org = (
                self.http.json(
                    "GET", wire.api(f"organizations({org_id})"), params={"$select": "name"}, headers=wire.HEADERS
                )
                or {}
            )
            name = str(org.get("name") or "")
            user = (
                self.http.json(
                    "GET",
                    wire.api(f"systemusers({user_id})"),
                    params={"$select": "internalemailaddress"},
                    headers=wire.HEADERS,
                )
                or {}
            )
            email = str(user.get("internalemailaddress") or "")
        except (RecordError, ConfigurationError):
            pass  # a user without read access to these tables: the ids still identify the org
        return CrmIdentity(
            account_id=org_id, account_name=name or f"Dynamics 365 org {org_id}", user_email=email, user_id=user_id
        )

    def describe_fields(self, object_kind: str) -> list[FieldSchema]:
        return schema.describe(self.http, wire.entity(object_kind)[0])

    def _select(self, entity_name: str, primary: str, fields: Sequence[str] | None) -> str:
        return ",".join(dict.fromkeys([primary, *(fields or READ_FIELDS.get(entity_name, ())), "modifiedon"]))

    def find_by_id(self, object_kind: str, crm_id: str, *, fields: Sequence[str] | None = None) -> CrmRecord | None:
        entity_name, entity_set, primary = wire.entity(object_kind)
        record_id = wire.guid(crm_id)
        if record_id is None:
            return None
        try:
            raw = self.http.json(
                "GET",
                wire.api(f"{entity_set}({record_id})"),
                params={"$select": self._select(entity_name, primary, fields)},
                headers=wire.HEADERS,
            )
        except NotFound:
            return None
        return to_record(raw or {}, primary)

    def find_by_email(
        self, object_kind: str, emails: Sequence[str], *, fields: Sequence[str] | None = None
    ) -> dict[str, CrmRecord]:
        entity_name, entity_set, primary = _person(object_kind)
        select = [f for f in (fields or READ_FIELDS[entity_name])]
        return find_by_email(self.http, entity_set, primary, emails, select, self.spec.batch_sizes["email_query"])

    def changes_since(
        self, object_kind: str, cursor: ChangeCursor | None, limit: int = 100, *, fields: Sequence[str] | None = None
    ) -> ChangePage:
        """Dataverse change tracking (§5.7). The cursor's ``last_id`` carries the delta token
        (``delta!<token>``; Dataverse tokens are short, e.g. ``919042!08/22/2017 08:10:44``).

        - No token yet: one ``GET <set>`` with ``Prefer: odata.track-changes`` reads the table and
          returns its ``@odata.deltaLink``; rows modified after the cursor's time (id tie-break) are
          the changes. - With a token: the delta link answers only rows changed since it was issued,
          and deletions (``$deletedEntity``, kept on ``self.deleted_ids``).

        Every page Dataverse offers (``@odata.nextLink``) is read in the same call, so ``limit`` is
        the preferred page size, and ``has_more`` is False: the next call continues from the new token."""
        entity_name, entity_set, primary = wire.entity(object_kind)
        params = {"$select": self._select(entity_name, primary, fields)}
        token = cursor.last_id[len(DELTA) :] if cursor and cursor.last_id.startswith(DELTA) else None
        if token:
            params["$deltatoken"] = token
        headers = {**wire.HEADERS, "Prefer": f"odata.track-changes,odata.maxpagesize={max(1, limit)}"}
        url: str | None = wire.api(entity_set)
        rows: list[dict[str, Any]] = []
        self.deleted_ids: list[str] = []
        delta_link = ""
        while url:
            answer = self.http.json("GET", url, params=params, headers=headers) or {}
            for raw in answer.get("value", []):
                if str(raw.get("@odata.context") or "").endswith("$deletedEntity") or raw.get("reason") == "deleted":
                    self.deleted_ids.append(str(raw.get("id") or ""))
                else:
                    rows.append(raw)
            url, params = answer.get("@odata.nextLink"), None
            delta_link = answer.get("@odata.deltaLink") or delta_link
        records = [to_record(raw, primary) for raw in rows]
        if not token and cursor is not None:
            at, last = cursor.modified_at, cursor.last_id if not cursor.last_id.startswith(DELTA) else ""
            records = [
                r
                for r in records
                if r.modified_at and (r.modified_at > at or (r.modified_at == at and r.crm_id > last))
            ]
        epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
        records.sort(key=lambda r: (r.modified_at or epoch, r.crm_id))
        new_token = _delta_token(delta_link)
        newest = max(
            [r.modified_at for r in records if r.modified_at] + ([cursor.modified_at] if cursor else []),
            default=dt.datetime.now(dt.UTC),
        )
        next_cursor = ChangeCursor(modified_at=newest, last_id=f"{DELTA}{new_token}") if new_token else cursor
        return ChangePage(records=records, next_cursor=next_cursor, has_more=False)

    # -- people ------------------------------------------------------------------------------------------
    def upsert_people(self, object_kind: str, inputs: Sequence[PersonInput]) -> list[WriteOutcome]:
        _entity, entity_set, primary = _person(object_kind)
        if not inputs:
            return []
        writer = PeopleWriter(
            self.http,
            entity_set,
            primary,
            email_chunk=self.spec.batch_sizes["email_query"],
            alternate_key=self._alternate_key,
        )
        return writer.upsert(inputs)

    def set_fields(self, object_kind: str, crm_id: str, fields: Mapping[str, Any]) -> None:
        """One PATCH (update only). Lookups given by name and id (``{"ownerid": "<guid>"}``) are
        written as ``ownerid@odata.bind: /systemusers(<guid>)``."""
        _entity, entity_set, _primary = wire.entity(object_kind)
        record_id = wire.guid(crm_id)
        if record_id is None:
            raise NotFound(f"{crm_id!r} is not a Dataverse id", code="0x80040217")
        body = {}
        for name, value in wire.clean_fields(fields).items():
            if name in LOOKUP_TARGETS and value and not str(value).startswith("/"):
                body[f"{name}@odata.bind"] = f"/{LOOKUP_TARGETS[name]}({value})"
            else:
                body[name] = value
        self.http.request(
            "PATCH",
            wire.api(f"{entity_set}({record_id})"),
            json=body,
            headers={**wire.HEADERS, "Content-Type": "application/json", "If-Match": "*"},
        )

    # -- engagement ---------------------------------------------------------------------------------------
    def _person_bind(self, prefix: str, kind: str, person_id: str, activity: str = "") -> dict[str, str]:
        entity_name, entity_set, _primary = _person(kind)
        return keyed.regarding(prefix, entity_set, entity_name, person_id, activity)

    def _tasks(self, items: list[keyed.Keyed]) -> list[WriteOutcome]:
        keyed.ensure_key_attribute(self.http, "task", keyed.EVENT_KEY)
        return keyed.write_keyed(self.http, "tasks", "activityid", keyed.EVENT_KEY, items)

    def log_activities(self, inputs: Sequence[ActivityInput]) -> list[WriteOutcome]:
        """Completed tasks on the person's timeline, keyed by the event id (keyed.py)."""
        items = [
            keyed.Keyed(
                a.key,
                a.key,
                {
                    "subject": a.subject[:200],
                    "description": a.body,
                    "actualend": wire.iso(a.occurred_at),
                    "statecode": 1,
                    "statuscode": 5,
                    keyed.EVENT_KEY: a.key,
                    **self._person_bind("regardingobjectid", a.person_kind, a.person_crm_id, "task"),
                },
            )
            for a in inputs
        ]
        return self._tasks(items) if items else []

    def create_tasks(self, inputs: Sequence[TaskInput]) -> list[WriteOutcome]:
        """Open tasks due at ``due_at``, for ``owner_id`` when given, keyed by the firing id."""
        items = []
        for t in inputs:
            body = {
                "subject": t.subject[:200],
                "description": t.body,
                "scheduledend": wire.iso(t.due_at),
                keyed.EVENT_KEY: t.key,
                **self._person_bind("regardingobjectid", t.person_kind, t.person_crm_id, "task"),
            }
            if t.owner_id:
                body["ownerid@odata.bind"] = f"/systemusers({t.owner_id})"
            items.append(keyed.Keyed(t.key, t.key, body))
        return self._tasks(items) if items else []

    def add_notes(self, inputs: Sequence[NoteInput]) -> list[WriteOutcome]:
        """Annotations on the person, titled ``[<key>] Capsule note`` (the marker a retry finds)."""
        items = []
        for n in inputs:
            title = keyed.NOTE_TITLE.format(key=n.key)
            items.append(
                keyed.Keyed(
                    n.key,
                    title,
                    {
                        "subject": title,
                        "notetext": n.body,
                        **self._person_bind("objectid", n.person_kind, n.person_crm_id),
                    },
                )
            )
        return keyed.write_keyed(self.http, "annotations", "annotationid", "subject", items) if items else []

    def upsert_deal(self, deal: DealInput) -> WriteOutcome:
        """An opportunity keyed by ``new_capsuleconversionid``: the contact as ``parentcontactid`` and
        potential customer, or the lead as ``originatingleadid``. ``stepname`` holds the stage."""
        body: dict[str, Any] = {
            "name": deal.name[:300],
            "estimatedclosedate": (deal.close_date or dt.datetime.now(dt.UTC).date()).isoformat(),
        }
        if deal.amount is not None:
            body["estimatedvalue"] = deal.amount
        if deal.stage:
            body["stepname"] = deal.stage[:200]
        if deal.person_kind == CONTACT:
            body["parentcontactid@odata.bind"] = f"/contacts({deal.person_crm_id})"
            body["customerid_contact@odata.bind"] = f"/contacts({deal.person_crm_id})"
        else:
            body["originatingleadid@odata.bind"] = f"/leads({deal.person_crm_id})"
        try:
            return keyed.upsert_one(
                self.http,
                "opportunities",
                "opportunityid",
                keyed.CONVERSION_KEY,
                deal.key,
                body,
                lambda: keyed.ensure_key_attribute(self.http, "opportunity", keyed.CONVERSION_KEY),
            )
        except RecordError as exc:
            return WriteOutcome(deal.key, error=exc)

    # -- custom fields (mapping.provisioning) -----------------------------------------------------------
    def create_custom_field(self, object_kind: str, field: Any) -> FieldSchema:
        """A custom column for one of the mapping's field definitions (``new_`` prefix required);
        one that already exists is returned as it is."""
        entity_name = wire.entity(object_kind)[0]
        name = str(field.name).lower()
        if "_" not in name:
            name = f"new_{name}"
        extra = dict(getattr(field, "extra", {}) or {})
        definition = schema.attribute_definition(
            name,
            field.label,
            field.type,
            max_length=int(extra.get("max_length") or 100),
            options=tuple(getattr(field, "options", ()) or ()),
            description=getattr(field, "description", ""),
        )
        schema.create(self.http, entity_name, definition)
        made = next((f for f in self.describe_fields(object_kind) if f.name == name), None)
        return made or FieldSchema(name, field.label, field.type, custom=True)


def _delta_token(link: str) -> str:
    values = parse_qs(urlsplit(link).query).get("$deltatoken") if link else None
    return values[0] if values else ""
