"""Pipedrive fields: the v2 field endpoints as FieldSchema, and values to and from the wire.

Field objects (crm-reference §3.3; client-nodejs v2 ``GetPersonFields200ResponseDataInner``):
``field_code`` (custom fields: a 40-character hash, different in every company), ``field_name``,
``field_type``, ``is_custom_field`` and ``options`` ``[{id, label}]`` for ``enum``/``set``. Our
FieldSchema names a custom field by its hash and offers its option *labels*; on the wire an
``enum`` value is its option id and a ``set`` value a list of ids, so labels are translated here.

Which system fields a write may carry is Pipedrive's create/patch schema (``AddPersonRequest``,
``AddDealRequest``, ``AddActivityRequest``); every other system field is read-only to us.

Our own fields: a standard mapping has to name the capsule fields it writes (score, grade…) before
they exist, and a Pipedrive hash is only known once a field is made, differently in every company.
So custom fields whose name begins with "Capsule" are named by a stable **alias**, the slug of
their Pipedrive name ("Capsule score" → ``capsule_score``), everywhere we name fields (describe,
records, writes); the connector turns the alias into the field's hash on the wire. Every other
custom field is named by its hash.

Definitions are read once per process, API host, token and entity, and kept ten minutes (a value
naming an option that is not in the cached list re-reads them once before it is refused).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from integrations.connector import FieldSchema
from integrations.errors import RecordError
from integrations.http import CrmHttp
from integrations.providers.pipedrive.wire import FIELD_ROUTES, V2, data_of, next_cursor, primary

CACHE_SECONDS = 600.0
VARCHAR_LIMIT = 255

WRITABLE: dict[str, frozenset[str]] = {
    "person": frozenset(
        {"name", "owner_id", "org_id", "emails", "phones", "visible_to", "label_ids", "marketing_status"}
    ),
    "organization": frozenset({"name", "owner_id", "address", "visible_to", "label_ids"}),
    "deal": frozenset(
        {
            "title",
            "owner_id",
            "person_id",
            "org_id",
            "pipeline_id",
            "stage_id",
            "value",
            "currency",
            "status",
            "probability",
            "lost_reason",
            "visible_to",
            "expected_close_date",
            "label_ids",
        }
    ),
    "activity": frozenset(
        {
            "subject",
            "type",
            "owner_id",
            "deal_id",
            "lead_id",
            "person_id",
            "org_id",
            "due_date",
            "due_time",
            "duration",
            "busy",
            "done",
            "public_description",
            "priority",
            "note",
        }
    ),
}
INTEGER_FIELDS = frozenset({"owner_id", "org_id", "person_id", "deal_id", "pipeline_id", "stage_id", "visible_to"})
# Pipedrive field_type -> our FieldSchema type.
TYPES = {
    "varchar": "string",
    "varchar_auto": "string",
    "varchar_options": "picklist",
    "text": "text",
    "double": "number",
    "int": "number",
    "monetary": "number",
    "phone": "phone",
    "date": "date",
    "enum": "picklist",
    "set": "multipicklist",
    "boolean": "boolean",
    "status": "picklist",
}
# Our FieldSchema type -> the Pipedrive field_type a new custom field gets. Pipedrive has no
# date-and-time or yes/no field type: those values are kept as text.
CREATE_TYPES = {
    "string": "varchar",
    "email": "varchar",
    "url": "varchar",
    "text": "text",
    "phone": "phone",
    "number": "double",
    "date": "date",
    "datetime": "varchar",
    "boolean": "varchar",
    "picklist": "enum",
    "multipicklist": "set",
}
SPECIAL = {"emails": ("email", "Email"), "phones": ("phone", "Phone")}
# A person's organization by name: not a Pipedrive field but ours (the connector finds or creates the
# organization and sends its id as org_id), so a mapping can write the company.
ORG_NAME = "org_name"


ALIAS_PREFIX = "capsule_"


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.strip().lower()).strip("_")


@dataclass(frozen=True)
class FieldDef:
    code: str
    name: str
    type: str
    custom: bool
    options: Mapping[int, str] = field(default_factory=dict)  # option id -> label

    @property
    def key(self) -> str:
        """The name we give the field: its alias (our own "Capsule …" fields) or its code."""
        alias = slug(self.name)
        return alias if self.custom and alias.startswith(ALIAS_PREFIX) else self.code

    def option_id(self, label: Any) -> int | None:
        if isinstance(label, int) and not isinstance(label, bool) and label in self.options:
            return label
        text = str(label).strip()
        if text.isdigit() and int(text) in self.options:
            return int(text)
        folded = text.casefold()
        return next((i for i, lab in self.options.items() if lab.strip().casefold() == folded), None)


def parse_defs(items: Sequence[Any]) -> dict[str, FieldDef]:
    defs = {}
    for item in items:
        if not isinstance(item, Mapping) or not item.get("field_code"):
            continue
        options = {
            int(o["id"]): str(o.get("label") or "")
            for o in item.get("options") or []
            if isinstance(o, Mapping) and isinstance(o.get("id"), int)
        }
        defs[str(item["field_code"])] = FieldDef(
            code=str(item["field_code"]),
            name=str(item.get("field_name") or item["field_code"]),
            type=str(item.get("field_type") or ""),
            custom=bool(item.get("is_custom_field")),
            options=options,
        )
    return defs


def to_schema(entity: str, definition: FieldDef) -> FieldSchema:
    kind, label = SPECIAL.get(definition.code, (TYPES.get(definition.type, "other"), definition.name))
    writable = definition.custom or definition.code in WRITABLE.get(entity, ())
    return FieldSchema(
        name=definition.key,
        label=label if definition.code in SPECIAL else definition.name,
        type=kind,
        custom=definition.custom,
        # Pipedrive requires a person's name and a deal's title on create; the connector fills them
        # (the e-mail, the conversion name) rather than failing a prospect that has none.
        required=False,
        read_only=not writable,
        options=tuple(definition.options.values()),
        max_length=VARCHAR_LIMIT if definition.type in ("varchar", "varchar_auto") else None,
    )


def schemas(entity: str, defs: Mapping[str, FieldDef]) -> list[FieldSchema]:
    found = [to_schema(entity, d) for d in defs.values() if d.code != "id"]
    if entity == "person":
        found.append(FieldSchema(ORG_NAME, "Organization (by name)", "string", max_length=VARCHAR_LIMIT))
    return found


# -- values --------------------------------------------------------------------------------------------


def _number(value: Any, definition: FieldDef) -> int | float:
    if isinstance(value, bool):
        raise RecordError(f"“{definition.name}” takes a number, not {value!r}", code="bad_value", field=definition.code)
    if isinstance(value, int | float):
        return value
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise RecordError(
            f"“{definition.name}” takes a number, not {value!r}", code="bad_value", field=definition.code
        ) from None
    return int(number) if number == number.to_integral_value() else float(number)


def _date(value: Any, definition: FieldDef) -> str:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).date().isoformat() if value.tzinfo else value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    text = str(value).strip()
    try:
        return dt.date.fromisoformat(text[:10]).isoformat()
    except ValueError:
        raise RecordError(
            f"“{definition.name}” takes a date, not {value!r}", code="bad_value", field=definition.code
        ) from None


def _split(value: Any) -> list[Any]:
    if isinstance(value, list | tuple | set):
        return list(value)
    return [part.strip() for part in str(value).split(";") if part.strip()]


def wire_value(definition: FieldDef, value: Any) -> Any:
    """One value as Pipedrive takes it for this field (option ids, numbers, dates, text)."""
    if value is None:
        return None
    kind = definition.type
    if kind in ("enum", "set"):
        chosen = _split(value) if kind == "set" else [value]
        ids = [definition.option_id(v) for v in chosen]
        missing = [str(v) for v, i in zip(chosen, ids, strict=True) if i is None]
        if missing:
            raise RecordError(
                f"“{definition.name}” has no option {', '.join(repr(m) for m in missing)} "
                f"(it has: {', '.join(definition.options.values())})",
                code="bad_option",
                field=definition.code,
            )
        return ids if kind == "set" else ids[0]
    if kind in ("double", "monetary", "int"):
        return _number(value, definition)
    if kind == "date":
        return _date(value, definition)
    if kind in ("org", "people", "user") or definition.code in INTEGER_FIELDS:
        return int(_number(value, definition))
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else str(value)


def system_value(name: str, value: Any) -> Any:
    """A system field's value: ids as integers, dates as YYYY-MM-DD, amounts as numbers, the rest as given."""
    if value is None:
        return None
    definition = FieldDef(name, name, "varchar", False)
    if name in INTEGER_FIELDS:
        return int(_number(value, definition))
    if name in ("value", "probability"):
        return _number(value, definition)
    if name in ("expected_close_date", "due_date"):
        return _date(value, definition)
    return value


def readable(record: Mapping[str, Any], defs: Mapping[str, FieldDef]) -> dict[str, Any]:
    """A v2 object as flat fields named like our FieldSchemas: custom values by hash (option labels,
    not ids), e-mails and phones as their primary value, and ``marketing_unsubscribed`` for the
    inbound preference tables."""
    flat = {k: v for k, v in record.items() if k != "custom_fields"}
    for code, value in (record.get("custom_fields") or {}).items():
        definition = defs.get(code)
        if definition and definition.type == "enum" and isinstance(value, int):
            value = definition.options.get(value, value)
        elif definition and definition.type == "set" and isinstance(value, list):
            value = [definition.options.get(v, v) for v in value]
        flat[definition.key if definition else code] = value
    for kind in ("emails", "phones"):
        if kind in flat:
            flat[kind] = primary(flat[kind])
    if "marketing_status" in flat:
        flat["marketing_unsubscribed"] = flat["marketing_status"] == "unsubscribed"
    return flat


# -- the per-process cache of definitions ----------------------------------------------------------------

_cache: dict[tuple[str, str, str], tuple[float, dict[str, FieldDef]]] = {}
_cache_lock = threading.Lock()
# One reader at a time per key, so the pool's first tasks do not all fetch the same definitions.
_load_locks: dict[tuple[str, str, str], threading.Lock] = {}


def forget_fields() -> None:
    with _cache_lock:
        _cache.clear()


class Catalog:
    """The field definitions of one entity, read through ``http`` and cached per process."""

    def __init__(self, http: CrmHttp, token: str, entity: str) -> None:
        self.http, self.entity = http, entity
        self._key = (http.base_url, hashlib.sha256(token.encode()).hexdigest()[:16], entity)

    def _cached(self) -> dict[str, FieldDef] | None:
        with _cache_lock:
            cached = _cache.get(self._key)
        return cached[1] if cached and time.monotonic() - cached[0] < CACHE_SECONDS else None

    def defs(self, *, fresh: bool = False) -> dict[str, FieldDef]:
        if not fresh and (cached := self._cached()) is not None:
            return cached
        with _cache_lock:
            lock = _load_locks.setdefault(self._key, threading.Lock())
        with lock:
            if not fresh and (cached := self._cached()) is not None:
                return cached  # read by another thread while this one waited
            return self._load()

    def _load(self) -> dict[str, FieldDef]:
        items: list[Any] = []
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": 500}
            if cursor:
                params["cursor"] = cursor
            answer = self.http.json("GET", f"{V2}/{FIELD_ROUTES[self.entity]}", params=params)
            items += data_of(answer) or []
            cursor = next_cursor(answer)
            if not cursor:
                break
        defs = parse_defs(items)
        with _cache_lock:
            _cache[self._key] = (time.monotonic(), defs)
        return defs

    def forget(self) -> None:
        with _cache_lock:
            _cache.pop(self._key, None)

    def custom_named(self, name: str) -> FieldDef | None:
        """The oldest custom field with this name (Pipedrive allows two with one name)."""
        folded = name.strip().casefold()
        return next((d for d in self.defs().values() if d.custom and d.name.strip().casefold() == folded), None)

    def resolve(self, name: str, *, fresh: bool = False) -> FieldDef | None:
        """The definition a field name of ours means: a code, or the alias of one of our fields."""
        defs = self.defs(fresh=fresh)
        if name in defs:
            return defs[name]
        return next((d for d in defs.values() if d.custom and d.key == name), None)

    def body(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        """A v2 create/patch body from our flat fields; unknown or read-only names are record errors."""
        body: dict[str, Any] = {}
        custom: dict[str, Any] = {}
        for name, value in fields.items():
            definition = self.resolve(name)
            if definition is not None and definition.custom:
                try:
                    custom[definition.code] = wire_value(definition, value)
                except RecordError:
                    definition = self.resolve(name, fresh=True) or definition  # an option added since
                    custom[definition.code] = wire_value(definition, value)
            elif name in WRITABLE[self.entity]:
                body[name] = system_value(name, value)
            else:
                raise RecordError(
                    f"Pipedrive has no writable {self.entity} field “{name}”", code="unknown_field", field=name
                )
        if custom:
            body["custom_fields"] = custom
        return body
