"""The org's records: typed storage, Salesforce's validation on save, deletes, upserts and a change log.

Every write replaces the stored dict (never mutates it), so an undo journal of the previous versions
is enough to roll back an all-or-none batch or a composite request (crm-reference §1.2 ``allOrNone``).
Deleted rows stay with ``IsDeleted = true`` (the recycle bin), which ``queryAll`` and
``/deleted/`` read (§1.7). The change log records who wrote what, for echo suppression (§11.9).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from integrations.sandbox.salesforce import rules
from integrations.sandbox.salesforce.errors import SfError, entity_is_deleted, json_error, not_found
from integrations.sandbox.salesforce.ids import IdFactory, normalize_id
from integrations.sandbox.salesforce.schema import MERGEABLE, NUMBER_TYPES, SOAP_TYPES, TEXT_TYPES, Field, SObject
from integrations.sandbox.salesforce.wire import parse_date, parse_datetime, to_wire

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_NUMBER = re.compile(r"^\s*-?\d+(?:\.\d+)?\s*$")
MIRRORS = {"ContentNote": "ContentDocument", "ContentDocument": "ContentNote"}  # one record, two object names


@dataclass(frozen=True)
class Actor:
    """Who is writing: a user, and the OAuth client of the token when the write came through the API."""

    user_id: str
    client_id: str | None = None
    api_version: str = "59.0"

    @property
    def origin(self) -> str:
        # Change Data Capture's changeOrigin for API writes; empty for edits made in the UI (§1.7).
        return f"com/salesforce/api/rest/{self.api_version};client={self.client_id}" if self.client_id else ""


@dataclass(frozen=True)
class Change:
    sequence: int
    sobject: str
    record_id: str
    change_type: str  # CREATE, UPDATE, DELETE
    fields: tuple[str, ...]
    user_id: str
    client_id: str | None
    origin: str
    at: datetime


class MultipleMatches(SfError):
    """An external id matched more than one record: REST answers 300 with the records' URLs."""

    def __init__(self, sobject: str, field_name: str, ids: list[str]) -> None:
        super().__init__(
            300, "DUPLICATE_EXTERNAL_ID", f"{field_name}: more than one record found for external id field: {ids}", []
        )
        self.sobject, self.ids = sobject, ids


class Store:
    """Records of every sObject, keyed by 18-character id. Callers hold the emulator's lock."""

    def __init__(self, schema: dict[str, SObject], ids: IdFactory, clock: Callable[[], datetime] | None = None) -> None:
        self.schema = schema
        self.ids = ids
        self._clock = clock or (lambda: datetime.now(UTC))
        self._last = datetime(2000, 1, 1, tzinfo=UTC)
        self.records: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in schema}
        self._index: dict[tuple[str, str], dict[Any, set[str]]] = {}
        self.changes: list[Change] = []
        self._journal: list[tuple[str, str, dict[str, Any] | None]] = []
        self._depth = 0

    # -- schema ------------------------------------------------------------------------------------
    def sobject(self, name: str) -> SObject | None:
        lowered = name.lower()
        return next((o for o in self.schema.values() if o.name.lower() == lowered), None)

    def add_sobject(self, sobject: SObject) -> None:
        self.schema[sobject.name] = sobject
        self.records.setdefault(sobject.name, {})

    def now(self) -> datetime:
        """Millisecond clock that never repeats, so SystemModstamp orders every write."""
        now = self._clock().astimezone(UTC)
        now = now.replace(microsecond=now.microsecond // 1000 * 1000)
        if now <= self._last:
            now = self._last + timedelta(milliseconds=1)
        self._last = now
        return now

    # -- reading -----------------------------------------------------------------------------------
    def locate(self, record_id: str) -> tuple[SObject, dict[str, Any]] | None:
        """The record with this id in whichever object its key prefix names (deleted rows included)."""
        full = normalize_id(record_id)
        if full is None:
            return None
        for sobject in self.schema.values():
            if sobject.key_prefix == full[:3] and full in self.records[sobject.name]:
                return sobject, self.records[sobject.name][full]
        return None

    def live(self, sobject: SObject, raw_id: str, *, reading: bool = False) -> dict[str, Any]:
        full = normalize_id(raw_id)
        if full is None or full[:3] != sobject.key_prefix:
            raise SfError(400, "MALFORMED_ID", f"{sobject.name} ID: id value of incorrect type: {raw_id}", ["Id"])
        record = self.records[sobject.name].get(full)
        if record is None:
            raise not_found()
        if record["IsDeleted"]:
            raise not_found() if reading else entity_is_deleted()
        return record

    def adopt(self, sobject: SObject, record: dict[str, Any]) -> None:
        """Put a record back exactly as it was (set-up data, such as users, that survives a reset)."""
        self._put(sobject, record["Id"], dict(record), journal=False)

    def rows(self, sobject: str, include_deleted: bool = False) -> list[dict[str, Any]]:
        return [r for r in self.records[sobject].values() if include_deleted or not r["IsDeleted"]]

    def as_json(self, sobject: SObject, record: dict[str, Any], base: str, only: list[str] | None = None) -> dict:
        """A record as the REST API writes it: ``attributes`` first, then every field (or ``only``)."""
        url = f"{base}/sobjects/{sobject.name}/{record['Id']}"
        out: dict[str, Any] = {"attributes": {"type": sobject.name, "url": url}}
        fields = [sobject.field(n) for n in only] if only else list(sobject.fields.values())
        for f in fields:
            if f is None:
                continue
            value = record.get(f.name)
            if f.type == "base64":
                out[f.name] = f"{url}/{f.name}" if value else None
            else:
                out[f.name] = to_wire(value, f.type)
        return out

    # -- external ids ------------------------------------------------------------------------------
    def external_field(self, sobject: SObject, name: str) -> Field:
        f = sobject.field(name)
        if f is None or not (f.external_id or f.type == "id"):
            raise not_found(f"Provided external ID field does not exist or is not accessible: {name}")
        return f

    def _key(self, f: Field, value: Any) -> Any:
        return value.casefold() if isinstance(value, str) and not f.case_sensitive else value

    def match_external(self, sobject: SObject, f: Field, raw: Any) -> list[dict[str, Any]]:
        if f.type == "id":
            full = normalize_id(raw)
            record = self.records[sobject.name].get(full or "")
            return [record] if record is not None and not record["IsDeleted"] else []
        value = self._coerce(f, raw)
        ids = self._index.get((sobject.name, f.name), {}).get(self._key(f, value), set())
        return sorted((self.records[sobject.name][i] for i in ids), key=lambda r: r["CreatedDate"])

    def _reindex(self, sobject: SObject, record: dict[str, Any], add: bool) -> None:
        for f in sobject.fields.values():
            if not (f.external_id or f.unique) or record.get(f.name) is None:
                continue
            bucket = self._index.setdefault((sobject.name, f.name), {}).setdefault(self._key(f, record[f.name]), set())
            (bucket.add if add else bucket.discard)(record["Id"])

    # -- the journal ---------------------------------------------------------------------------------
    def _put(self, sobject: SObject, record_id: str, record: dict[str, Any] | None, journal: bool = True) -> None:
        old = self.records[sobject.name].get(record_id)
        if journal and self._depth:
            self._journal.append((sobject.name, record_id, old))
        if old is not None and not old["IsDeleted"]:
            self._reindex(sobject, old, add=False)
        if record is None:
            self.records[sobject.name].pop(record_id, None)
        else:
            self.records[sobject.name][record_id] = record
            if not record["IsDeleted"]:
                self._reindex(sobject, record, add=True)

    def savepoint(self) -> tuple[int, int]:
        return len(self._journal), len(self.changes)

    def rollback_to(self, mark: tuple[int, int]) -> None:
        journal_at, changes_at = mark
        while len(self._journal) > journal_at:
            name, record_id, old = self._journal.pop()
            self._put(self.schema[name], record_id, old, journal=False)
        del self.changes[changes_at:]

    @contextmanager
    def atomic(self) -> Iterator[tuple[int, int]]:
        """Undo every write made inside the block when it raises (or when ``rollback_to`` is called)."""
        self._depth += 1
        mark = self.savepoint()
        try:
            yield mark
        except BaseException:
            self.rollback_to(mark)
            raise
        finally:
            self._depth -= 1
            if not self._depth:
                self._journal.clear()

    def _log(self, sobject: str, record_id: str, kind: str, fields: list[str], actor: Actor, at: datetime) -> None:
        self.changes.append(
            Change(
                len(self.changes) + 1,
                sobject,
                record_id,
                kind,
                tuple(fields),
                actor.user_id,
                actor.client_id,
                actor.origin,
                at,
            )
        )

    # -- validation ----------------------------------------------------------------------------------
    def _type_error(self, f: Field, raw: Any) -> SfError:
        token = {bool: "VALUE_TRUE" if raw else "VALUE_FALSE", int: "VALUE_NUMBER_INT", float: "VALUE_NUMBER_FLOAT"}
        kind = token.get(type(raw), "START_OBJECT" if isinstance(raw, dict | list) else "VALUE_STRING")
        soap = SOAP_TYPES.get(f.type, "xsd:string").split(":")[1]
        return json_error(
            f"Cannot deserialize instance of {soap} from {kind} value {raw} or request may be missing a required "
            f"field at [line:1, column:1]"
        )

    def _coerce(self, f: Field, raw: Any) -> Any:
        """A JSON (or CSV) value converted to the field's type, or the error Salesforce sends for it."""
        kind = f.type
        if kind == "boolean":
            if isinstance(raw, bool):
                return raw
            if raw is None:
                return False
            if isinstance(raw, str) and raw.strip().lower() in ("true", "false", "1", "0"):
                return raw.strip().lower() in ("true", "1")
            raise self._type_error(f, raw)
        if raw is None or raw == "":
            return None
        if isinstance(raw, dict | list):
            raise self._type_error(f, raw)
        if kind in TEXT_TYPES:
            return self._text(f, raw)
        if kind in NUMBER_TYPES:
            return self._number(f, raw)
        if kind in ("date", "datetime"):
            parsed = (parse_date if kind == "date" else parse_datetime)(raw) if isinstance(raw, str) else None
            if parsed is None:
                raise self._type_error(f, raw)
            return parsed
        if kind in ("reference", "id"):
            return self._reference(f, raw)
        if kind == "base64":
            try:
                return base64.b64decode(str(raw), validate=True)
            except (binascii.Error, ValueError):
                raise json_error(f"Illegal base64 content for field {f.name}") from None
        return raw

    def _text(self, f: Field, raw: Any) -> str:
        if isinstance(raw, bool):
            raise self._type_error(f, raw)
        value = str(raw)
        if f.type == "multipicklist":
            parts = [p.strip() for p in value.split(";") if p.strip()]
            value = ";".join(self._picklist(f, p) for p in parts)
        elif f.type == "picklist":
            value = self._picklist(f, value)
        if len(value) > f.length:
            raise SfError(
                400, "STRING_TOO_LONG", f"{f.label}: data value too large: {value} (max length={f.length})", [f.name]
            )
        if f.type == "email" and not _EMAIL.match(value):
            raise SfError(400, "INVALID_EMAIL_ADDRESS", f"{f.label}: invalid email address: {value}", [f.name])
        return value

    def _picklist(self, f: Field, value: str) -> str:
        for option in f.picklist:
            if option.lower() == value.lower():
                return option
        if f.restricted:
            raise SfError(
                400,
                "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                f"{f.label}: bad value for restricted picklist field: {value}",
                [f.name],
            )
        return value

    def _number(self, f: Field, raw: Any) -> int | float:
        if isinstance(raw, bool) or not (isinstance(raw, int | float) or (isinstance(raw, str) and _NUMBER.match(raw))):
            raise self._type_error(f, raw)
        number = float(raw)
        if f.type == "int":
            if number != int(number):
                raise self._type_error(f, raw)
            value: int | float = int(number)
        else:
            # Salesforce rounds half up to the field's scale (Python's round() would go to even).
            exact = Decimal(str(raw).strip()) if isinstance(raw, str) else Decimal(repr(float(raw)))
            value = float(exact.quantize(Decimal(1).scaleb(-f.scale), rounding=ROUND_HALF_UP))
        if f.precision and abs(value) >= 10 ** (f.precision - f.scale):
            raise SfError(
                400,
                "NUMBER_OUTSIDE_VALID_RANGE",
                f"{f.label}: value outside of valid range on numeric field: {raw}",
                [f.name],
            )
        return value

    def _reference(self, f: Field, raw: Any) -> str:
        full = normalize_id(raw)
        if full is None:
            raise SfError(400, "MALFORMED_ID", f"{f.label}: id value of incorrect type: {raw}", [f.name])
        prefixes = {self.schema[t].key_prefix for t in f.reference_to if t in self.schema}
        if prefixes and full[:3] not in prefixes:
            raise SfError(400, "FIELD_INTEGRITY_EXCEPTION", f"{f.label}: id value of incorrect type: {raw}", [f.name])
        found = self.locate(full)
        if found is None:
            raise SfError(400, "INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", [f.name])
        if found[1]["IsDeleted"]:
            raise SfError(400, "ENTITY_IS_DELETED", "entity is deleted", [f.name])
        return full

    def _foreign_key(self, f: Field, raw: dict[str, Any]) -> str:
        """``"Account": {"Capsule_Id__c": "x"}`` sets AccountId to the Account with that external id."""
        keys = [k for k in raw if k != "attributes"]
        target = self.schema.get((raw.get("attributes") or {}).get("type") or f.reference_to[0])
        if target is None or len(keys) != 1:
            raise json_error(f"Invalid foreign key reference for field {f.relationship_name}")
        ext = target.field(keys[0])
        if ext is None or not ext.external_id:
            raise SfError(400, "INVALID_FIELD", f"Field {keys[0]} is not an external id field on {target.name}")
        matches = self.match_external(target, ext, raw[keys[0]])
        if len(matches) != 1:
            raise SfError(
                400,
                "INVALID_FIELD",
                f"Foreign key external ID: {raw[keys[0]]} not found for field {ext.name} in entity {target.name}",
            )
        return matches[0]["Id"]

    def prepare(
        self, sobject: SObject, values: Any, existing: dict[str, Any] | None, actor: Actor
    ) -> tuple[dict[str, Any], list[str]]:
        """Validate a write. Returns the record as it would be saved and the fields the caller set."""
        creating = existing is None
        if not isinstance(values, dict):
            raise json_error("Cannot deserialize the request body: an sObject must be a JSON object")
        given: dict[str, Any] = {}
        locked: list[str] = []
        for key, raw in values.items():
            if key == "attributes":
                continue
            f = sobject.field(key)
            if f is None:
                relation = sobject.relationship(key)
                if relation is not None and isinstance(raw, dict):
                    given[relation.name] = self._foreign_key(relation, raw)
                    continue
                raise SfError(400, "INVALID_FIELD", f"No such column '{key}' on sobject of type {sobject.name}")
            if f.type == "id":
                if creating:
                    raise SfError(400, "INVALID_FIELD", "Record ID: cannot specify Id in an insert call", ["Id"])
                if normalize_id(raw) != existing["Id"]:
                    raise SfError(400, "INVALID_FIELD", f"Record ID: the Id in the body does not match: {raw}", ["Id"])
                continue
            if not (f.createable if creating else f.updateable):
                locked.append(f.name)
                continue
            given[f.name] = raw
        if locked:
            raise SfError(
                400,
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                f"Unable to create/update fields: {', '.join(locked)}. Please check the security settings of this "
                "field and verify that it is read/write for your profile or permission set.",
                locked,
            )
        typed = {name: self._coerce(sobject.fields[name.lower()], raw) for name, raw in given.items()}
        record = dict(existing) if existing else self._defaults(sobject, actor)
        record.update(typed)
        rules.derive(sobject.name, record, set(typed), creating)
        writable = [f for f in sobject.fields.values() if (f.createable if creating else f.name in typed)]
        missing = [f.name for f in writable if not f.nillable and f.type != "boolean" and record.get(f.name) is None]
        missing += [m for m in rules.missing_for(sobject.name, record) if m not in missing]
        if missing:
            raise SfError(
                400, "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(missing)}]", missing
            )
        if rules.end_before_start(sobject.name, record):
            raise SfError(400, "FIELD_INTEGRITY_EXCEPTION", "End Date Time: End must be after start", ["EndDateTime"])
        self._check_unique(sobject, record, typed, existing)
        return record, list(typed)

    def _defaults(self, sobject: SObject, actor: Actor) -> dict[str, Any]:
        record: dict[str, Any] = {}
        for f in sobject.fields.values():
            if f.default is not None:
                record[f.name] = f.default
            elif f.type == "boolean":
                record[f.name] = False
        if sobject.field("OwnerId") is not None:
            record["OwnerId"] = actor.user_id
        return record

    def _check_unique(
        self, sobject: SObject, record: dict[str, Any], typed: dict[str, Any], existing: dict[str, Any] | None
    ) -> None:
        own = existing["Id"] if existing else None
        for name in typed:
            f = sobject.fields[name.lower()]
            if not f.unique or record.get(name) is None:
                continue
            holders = self._index.get((sobject.name, f.name), {}).get(self._key(f, record[name]), set()) - {own}
            if holders:
                raise SfError(
                    400,
                    "DUPLICATE_VALUE",
                    f"duplicate value found: {f.name} duplicates value on record with id: {min(holders)}",
                    [],
                )

    # -- writing -------------------------------------------------------------------------------------
    def insert(self, sobject: SObject, values: Any, actor: Actor, *, system: bool = False) -> dict[str, Any]:
        """Create a record. ``system`` lets set-up code create what the API may not (users)."""
        if not sobject.createable and not system:
            raise SfError(400, "INVALID_TYPE", f"entity type {sobject.name} does not support insert", [])
        record, given = self.prepare(sobject, values, None, actor)
        now = self.now()
        record_id = self.ids.new(sobject.key_prefix)
        record.update(
            Id=record_id,
            IsDeleted=False,
            CreatedDate=now,
            CreatedById=actor.user_id,
            LastModifiedDate=now,
            LastModifiedById=actor.user_id,
            SystemModstamp=now,
        )
        self._put(sobject, record_id, record)
        self._log(sobject.name, record_id, "CREATE", given, actor, now)
        self._mirror(sobject, record)
        return record

    def update(self, sobject: SObject, raw_id: str, values: Any, actor: Actor) -> dict[str, Any]:
        existing = self.live(sobject, raw_id)
        if not sobject.updateable:
            raise SfError(400, "INVALID_TYPE", f"entity type {sobject.name} does not support update", [])
        record, given = self.prepare(sobject, values, existing, actor)
        changed = [name for name in given if existing.get(name) != record.get(name)]
        self._save(sobject, record, changed, actor)
        return record

    def _save(self, sobject: SObject, record: dict[str, Any], changed: list[str], actor: Actor) -> None:
        now = self.now()
        record.update(LastModifiedDate=now, LastModifiedById=actor.user_id, SystemModstamp=now)
        self._put(sobject, record["Id"], record)
        self._log(sobject.name, record["Id"], "UPDATE", changed, actor, now)
        self._mirror(sobject, record)

    def upsert(
        self, sobject: SObject, field_name: str, value: Any, values: Any, actor: Actor, update_only: bool = False
    ) -> tuple[dict[str, Any], bool]:
        """Update the one record whose external id is ``value``, or create it. Returns (record, created)."""
        f = self.external_field(sobject, field_name)
        matches = self.match_external(sobject, f, value)
        if len(matches) > 1:
            raise MultipleMatches(sobject.name, f.name, [m["Id"] for m in matches])
        body = dict(values) if isinstance(values, dict) else values
        if isinstance(body, dict):
            for key in [k for k in body if k.lower() == f.name.lower()]:
                if self._key(f, self._coerce(f, body.pop(key))) != self._key(f, self._coerce(f, value)):
                    raise SfError(400, "INVALID_FIELD", f"{f.name} in the body does not match the URL value", [f.name])
        if matches:
            return self.update(sobject, matches[0]["Id"], body, actor), False
        if update_only or f.type == "id":
            raise not_found()
        if isinstance(body, dict):
            body[f.name] = value
        return self.insert(sobject, body, actor), True

    def delete(self, sobject: SObject, raw_id: str, actor: Actor, master_id: str | None = None) -> None:
        if not sobject.deletable:
            raise SfError(400, "INVALID_TYPE", f"entity type {sobject.name} does not support delete", [])
        record = self.live(sobject, raw_id)
        self._delete(sobject, record, actor, master_id)

    def _delete(self, sobject: SObject, record: dict[str, Any], actor: Actor, master_id: str | None = None) -> None:
        # Children go first: Salesforce deletes an account's contacts, a contact's activities and links.
        twin = MIRRORS.get(sobject.name)
        for target in (sobject, *([self.schema[twin]] if twin else [])):
            for child, f in self._references_to(target):
                for row in self.rows(child.name):
                    if row.get(f.name) == record["Id"] and f.cascade_delete:
                        self._delete(child, row, actor)
        now = self.now()
        gone = dict(record, IsDeleted=True, LastModifiedById=actor.user_id, SystemModstamp=now)
        if master_id is not None:
            gone["MasterRecordId"] = master_id
        self._put(sobject, record["Id"], gone)
        self._log(sobject.name, record["Id"], "DELETE", [], actor, now)
        if twin and record["Id"] in self.records[twin] and not self.records[twin][record["Id"]]["IsDeleted"]:
            self._put(self.schema[twin], record["Id"], dict(self.records[twin][record["Id"]], IsDeleted=True))

    def _references_to(self, sobject: SObject) -> list[tuple[SObject, Field]]:
        return [
            (other, f)
            for other in self.schema.values()
            for f in other.fields.values()
            if f.type == "reference" and sobject.name in f.reference_to and f.name != "MasterRecordId"
        ]

    def _mirror(self, sobject: SObject, record: dict[str, Any]) -> None:
        """A ContentNote is also a ContentDocument with the same id (what ContentDocumentLink points at)."""
        if sobject.name != "ContentNote":
            return
        twin = self.schema["ContentDocument"]
        keep = {"Id", "IsDeleted", "CreatedDate", "CreatedById", "LastModifiedDate", "LastModifiedById"}
        keep |= {"SystemModstamp", "Title", "FileType", "ContentSize", "OwnerId"}
        self._put(twin, record["Id"], {k: v for k, v in record.items() if k in keep})

    def merge(self, sobject: SObject, master_id: str, duplicate_ids: list[str], actor: Actor) -> None:
        """Merge duplicates into the master: children move to the master, duplicates are deleted."""
        if sobject.name not in MERGEABLE:
            raise SfError(400, "INVALID_TYPE", f"{sobject.name} records can not be merged", [])
        master = self.live(sobject, master_id)
        for raw in duplicate_ids:
            duplicate = self.live(sobject, raw)
            for child, f in self._references_to(sobject):
                for row in self.rows(child.name):
                    if row.get(f.name) == duplicate["Id"]:
                        self._save(child, dict(row, **{f.name: master["Id"]}), [f.name], actor)
            now = self.now()
            gone = dict(duplicate, IsDeleted=True, MasterRecordId=master["Id"], SystemModstamp=now)
            self._put(sobject, duplicate["Id"], gone)
            self._log(sobject.name, duplicate["Id"], "DELETE", [], actor, now)
        self._save(sobject, dict(master), [], actor)
