"""Rows of the Dataverse emulator: validation, lookups (``@odata.bind``), alternate keys and the
change-tracking log (crm-reference §5.2, §5.7). No HTTP here: the app maps ``DataverseError``s to
OData error bodies."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from integrations.sandbox.dynamics import metadata

# Characters Dataverse refuses in alternate-key values (crm-reference §5 preamble).
KEY_FORBIDDEN = set("/<>*%&:\\?+")
BIND = re.compile(r"^/?(?P<set>[A-Za-z_]+)\((?P<id>[0-9a-fA-F-]{36})\)$")


class DataverseError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Change:
    version: int
    entity: str
    record_id: str
    deleted: bool


@dataclass
class Store:
    user_id: str
    entities: dict[str, dict[str, Any]] = field(default_factory=metadata.standard_entities)
    tables: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    # entity → list of alternate keys, each a tuple of attribute names
    alternate_keys: dict[str, list[tuple[str, ...]]] = field(default_factory=dict)
    change_tracking: set[str] = field(default_factory=lambda: {"contact", "lead", "opportunity", "task", "annotation"})
    changes: list[Change] = field(default_factory=list)
    version: int = 1000

    # -- schema ---------------------------------------------------------------------------------
    def entity_for_set(self, entity_set: str) -> str | None:
        return next((name for name, e in self.entities.items() if e["EntitySetName"] == entity_set), None)

    def attributes(self, entity: str) -> dict[str, dict[str, Any]]:
        return self.entities[entity]["attributes"]

    def primary(self, entity: str) -> str:
        return self.entities[entity]["PrimaryIdAttribute"]

    def readable(self, entity: str, name: str) -> bool:
        attrs = self.attributes(entity)
        if name.startswith("_") and name.endswith("_value"):
            return name[1:-6] in attrs
        return name in attrs

    def table(self, entity: str) -> dict[str, dict[str, Any]]:
        return self.tables.setdefault(entity, {})

    # -- change log -----------------------------------------------------------------------------------
    def _log(self, entity: str, record_id: str, deleted: bool = False) -> int:
        self.version += 1
        self.changes.append(Change(self.version, entity, record_id, deleted))
        return self.version

    # -- validation -------------------------------------------------------------------------------------
    def _bind_target(self, entity: str, name: str) -> str:
        lookups = [
            a for a, m in self.attributes(entity).items() if m["AttributeType"] in ("Lookup", "Owner", "Customer")
        ]
        match = max((a for a in lookups if name == a or name.startswith(a + "_")), key=len, default=None)
        if match is None:
            raise DataverseError(
                400,
                "0x80048d19",
                f"An undeclared property '{name}' which only has property annotations in the payload but no "
                f"property value was found in the payload.",
            )
        return match

    def _clean(self, entity: str, body: dict[str, Any], *, creating: bool) -> dict[str, Any]:
        attrs = self.attributes(entity)
        values: dict[str, Any] = {}
        for name, value in body.items():
            if name.endswith("@odata.bind"):
                lookup = self._bind_target(entity, name[: -len("@odata.bind")])
                if value is None:
                    values[f"_{lookup}_value"] = None
                    continue
                match = BIND.match(str(value))
                target = self.entity_for_set(match.group("set")) if match else None
                if not match or target is None:
                    raise DataverseError(400, "0x80048d19", f"'{value}' is not a valid entity reference for {name}")
                if match.group("id").lower() not in self.table(target):
                    raise DataverseError(
                        404, "0x80040217", f"{target} With Id = {match.group('id').lower()} Does Not Exist"
                    )
                values[f"_{lookup}_value"] = match.group("id").lower()
                continue
            if name.startswith("@") or "@" in name:
                continue
            meta = attrs.get(name)
            if meta is None or meta["AttributeType"] in ("Lookup", "Owner", "Customer"):
                raise DataverseError(
                    400,
                    "0x80048d19",
                    "Error identified in Payload provided by the user for Entity :"
                    f"'{self.entities[entity]['EntitySetName']}'"
                    f" ----> InnerException : Microsoft.OData.ODataException: The property '{name}' does not exist on"
                    f" type 'Microsoft.Dynamics.CRM.{entity}'. Make sure to only use property names that are defined"
                    f" by the type or mark the type as open type.",
                )
            if not (meta["IsValidForCreate"] if creating else meta["IsValidForUpdate"]):
                if name == self.primary(entity) and creating:
                    values[name] = str(value).lower()
                    continue
                raise DataverseError(
                    400, "0x80044150", f"Attribute '{name}' cannot be set on {'create' if creating else 'update'}"
                )
            values[name] = self._typed(entity, meta, value)
        return values

    def _typed(self, entity: str, meta: dict[str, Any], value: Any) -> Any:
        kind, name = meta["AttributeType"], meta["LogicalName"]
        if value is None:
            return None
        bad = DataverseError(
            400,
            "0x80048d19",
            f"Cannot convert the literal '{value}' to the expected type 'Edm.{kind}' for '{name}'.",
        )
        if kind in ("String", "Memo"):
            if not isinstance(value, str):
                raise bad
            if len(value) > meta["MaxLength"]:
                raise DataverseError(
                    400,
                    "0x80044331",
                    f"A validation error occurred. The length of the '{name}' attribute of the '{entity}' entity "
                    f"exceeded the maximum allowed length of '{meta['MaxLength']}'.",
                )
            return value
        if kind in ("Integer", "Picklist", "State", "Status"):
            if isinstance(value, bool) or not isinstance(value, int):
                raise bad
            if kind != "Integer":
                allowed = {o["Value"] for o in meta["OptionSet"]["Options"]}
                if value not in allowed:
                    raise DataverseError(
                        400,
                        "0x8004431a",
                        f"A validation error occurred. The value {value} of '{name}' on record of type '{entity}' "
                        f"is outside the valid range. Accepted Values: {','.join(str(v) for v in sorted(allowed))}",
                    )
            return value
        if kind in ("Decimal", "Double", "Money"):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise bad
            return value
        if kind == "Boolean":
            if not isinstance(value, bool):
                raise bad
            return value
        if kind == "DateTime":
            try:
                parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
            except ValueError:
                raise bad from None
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=dt.UTC)
            return iso(parsed)
        return value

    # -- alternate keys ---------------------------------------------------------------------------------
    def key_defined(self, entity: str, names: tuple[str, ...]) -> bool:
        return tuple(sorted(names)) in {tuple(sorted(k)) for k in self.alternate_keys.get(entity, [])}

    def find_by_key(self, entity: str, values: dict[str, str]) -> dict[str, Any] | None:
        if not self.key_defined(entity, tuple(values)):
            raise DataverseError(
                400,
                "0x80060888",
                f"The key in the request URI is not valid for resource 'Microsoft.Dynamics.CRM.{entity}'. "
                f"Ensure that the names and number of key properties match the declared or alternate key "
                f"properties for the resource 'Microsoft.Dynamics.CRM.{entity}'.",
            )
        for value in values.values():
            if KEY_FORBIDDEN & set(value):
                raise DataverseError(
                    400,
                    "0x80060891",
                    "A key value contains one of the invalid characters / < > * % & : \\ ? +",
                )
        return next(
            (
                r
                for r in self.table(entity).values()
                if all(str(r.get(k) or "").lower() == v.lower() for k, v in values.items())
            ),
            None,
        )

    def _check_keys(self, entity: str, record: dict[str, Any], record_id: str) -> None:
        for key in self.alternate_keys.get(entity, []):
            values = [record.get(k) for k in key]
            if any(v in (None, "") for v in values):
                continue
            for other_id, other in self.table(entity).items():
                if other_id != record_id and all(
                    str(other.get(k) or "").lower() == str(v).lower() for k, v in zip(key, values, strict=True)
                ):
                    raise DataverseError(
                        412,
                        "0x80040237",
                        f"A record that has the attribute values {', '.join(map(str, values))} already exists. "
                        f"The entity key {'_'.join(key)} requires that this set of attributes contains unique values.",
                    )

    # -- writes ---------------------------------------------------------------------------------------------
    def create(self, entity: str, body: dict[str, Any], record_id: str | None = None) -> dict[str, Any]:
        values = self._clean(entity, body, creating=True)
        primary = self.primary(entity)
        record_id = (record_id or values.pop(primary, None) or str(uuid.uuid4())).lower()
        if record_id in self.table(entity):
            raise DataverseError(412, "0x80040237", "Cannot insert duplicate key.")
        stamp = iso(now())
        record = {
            primary: record_id,
            "createdon": stamp,
            "modifiedon": stamp,
            "_createdby_value": self.user_id,
            "_modifiedby_value": self.user_id,
            "_ownerid_value": self.user_id,
            **values,
        }
        if entity in ("contact", "lead"):
            record["fullname"] = " ".join(p for p in (record.get("firstname"), record.get("lastname")) if p)
        self._check_keys(entity, record, record_id)
        record["versionnumber"] = self._log(entity, record_id)
        self.table(entity)[record_id] = record
        return record

    def update(self, entity: str, record_id: str, body: dict[str, Any], *, by: str | None = None) -> dict[str, Any]:
        record = self.table(entity).get(record_id)
        if record is None:
            raise DataverseError(404, "0x80040217", f"{entity} With Id = {record_id} Does Not Exist")
        values = self._clean(entity, body, creating=False)
        merged = {**record, **values}
        if entity in ("contact", "lead"):
            merged["fullname"] = " ".join(p for p in (merged.get("firstname"), merged.get("lastname")) if p)
        self._check_keys(entity, merged, record_id)
        merged["modifiedon"] = iso(now())
        merged["_modifiedby_value"] = by or self.user_id
        merged["versionnumber"] = self._log(entity, record_id)
        self.table(entity)[record_id] = merged
        return merged

    def delete(self, entity: str, record_id: str) -> None:
        if self.table(entity).pop(record_id, None) is None:
            raise DataverseError(404, "0x80040217", f"{entity} With Id = {record_id} Does Not Exist")
        self._log(entity, record_id, deleted=True)

    def changed_since(self, entity: str, version: int) -> tuple[list[dict[str, Any]], list[str]]:
        """Rows changed after ``version`` (current state, in change order) and ids deleted since."""
        latest: dict[str, Change] = {}
        for change in self.changes:
            if change.entity == entity and change.version > version:
                latest.pop(change.record_id, None)
                latest[change.record_id] = change
        rows, deleted = [], []
        for record_id, change in latest.items():
            if change.deleted or record_id not in self.table(entity):
                deleted.append(record_id)
            else:
                rows.append(self.table(entity)[record_id])
        return rows, deleted
