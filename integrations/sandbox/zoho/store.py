"""The sandbox org's records: validation against the module's fields, lookups, unique values, times
and who wrote what (``Modified_By``: the integration user for API writes, another user for edits
made "in the UI", which is how inbound sync tells its own echoes apart — crm-reference §11.9).

Ids are 19-digit numeric strings from one rising sequence (crm-reference §11.10), so ordering by id
is ordering by creation. Times have whole seconds, as Zoho's do; many records share one
``Modified_Time``, which is why readers page by (Modified_Time, id).
"""

from __future__ import annotations

import datetime as dt
import itertools
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from integrations.sandbox.zoho.errors import duplicate, invalid_data, mandatory
from integrations.sandbox.zoho.schema import FieldDef, Module, check_value, format_time, standard_modules

ID_BASE = 5_725_767_000_000_000_000
SYSTEM_FIELDS = ("id", "Created_Time", "Modified_Time", "Created_By", "Modified_By", "Full_Name")
NAME_FIELDS = {
    "Accounts": "Account_Name",
    "Deals": "Deal_Name",
    "Tasks": "Subject",
    "Calls": "Subject",
    "Events": "Event_Title",
    "Notes": "Note_Title",
}


@dataclass
class Rec:
    module: str
    id: str
    values: dict[str, Any]
    created: dt.datetime
    modified: dt.datetime
    created_by: dict[str, str]
    modified_by: dict[str, str]
    deleted: bool = False

    def wire(self, names: Iterable[str] | None = None) -> dict[str, Any]:
        """The record as Zoho answers it: every field (or the asked ones), ``id`` always."""
        full = {
            **self.values,
            "Created_Time": format_time(self.created),
            "Modified_Time": format_time(self.modified),
            "Created_By": dict(self.created_by),
            "Modified_By": dict(self.modified_by),
        }
        if self.module == "Notes":  # notes.json requires these on every note, whatever was asked for
            full.update(
                {
                    "$attachments": [],
                    "$editable": True,
                    "$is_shared_to_client": False,
                    "$size": "0",
                    "$state": "save",
                    "$voice_note": False,
                    "$sharing_permission": "full_access",
                }
            )
            names = None
        if names is None:
            return {"id": self.id, **full}
        return {"id": self.id, **{name: full.get(name) for name in names if name != "id"}}


@dataclass
class Change:
    module: str
    id: str
    operation: str  # insert, update, delete (the notification operations)
    fields: tuple[str, ...]
    by: str  # user id
    at: dt.datetime


@dataclass
class Store:
    clock: Callable[[], dt.datetime]
    users: dict[str, dict[str, str]] = field(default_factory=dict)  # id -> {"name", "id", "email"}

    def __post_init__(self) -> None:
        self._sequence = itertools.count(1)
        self.modules: dict[str, Module] = standard_modules(self.next_id)
        self.records: dict[str, dict[str, Rec]] = {name: {} for name in self.modules}
        self.changes: list[Change] = []
        # (module, field, lower-cased value) -> ids that held it (see ``match``).
        self._index: dict[tuple[str, str, str], set[str]] = {}
        self._indexed_changes = 0
        self._indexed_records = 0
        self._index_lock = threading.Lock()

    def next_id(self) -> str:
        return str(ID_BASE + next(self._sequence))

    def now(self) -> dt.datetime:
        return self.clock().astimezone(dt.UTC).replace(microsecond=0)

    # -- reading --------------------------------------------------------------------------------------
    def live(self, module: str) -> list[Rec]:
        return sorted((r for r in self.records[module].values() if not r.deleted), key=lambda r: int(r.id))

    def get(self, module: str, record_id: str) -> Rec | None:
        rec = self.records.get(module, {}).get(str(record_id))
        return rec if rec is not None and not rec.deleted else None

    def find_any(self, record_id: str) -> Rec | None:
        for module in self.records:
            rec = self.get(module, record_id)
            if rec is not None:
                return rec
        return None

    def match(self, module: str, api_name: str, value: Any) -> Rec | None:
        """The oldest live record whose field equals ``value`` (case-insensitive for text).

        Looked up in an index of every value any record has held, then checked against the record
        as it is now, so a stale entry is harmless; a scan of the module made every upsert of 100
        cost 100 scans (seconds at 10,000 records: the emulator's time, not a real CRM's).
        """
        wanted = str(value).strip().lower()
        best: Rec | None = None
        for rec_id in self._candidates(module, api_name, wanted):
            rec = self.records.get(module, {}).get(rec_id)
            if rec is None or rec.deleted:
                continue
            stored = rec.values.get(api_name)
            if stored is not None and str(stored).strip().lower() == wanted:
                if best is None or int(rec.id) < int(best.id):
                    best = rec
        return best

    def _candidates(self, module: str, api_name: str, wanted: str) -> list[str]:
        with self._index_lock:
            count = sum(len(records) for records in self.records.values())
            if len(self.changes) < self._indexed_changes or count != self._indexed_records + sum(
                1 for c in self.changes[self._indexed_changes :] if c.operation == "insert"
            ):
                # Records came or went some other way than insert/update/delete: index them all.
                self._index.clear()
                for records in self.records.values():
                    for rec in records.values():
                        self._index_rec(rec)
            else:
                for change in self.changes[self._indexed_changes :]:
                    rec = self.records.get(change.module, {}).get(change.id)
                    if rec is not None:
                        self._index_rec(rec)
            self._indexed_changes, self._indexed_records = len(self.changes), count
            return list(self._index.get((module, api_name, wanted), ()))

    def _index_rec(self, rec: Rec) -> None:
        for name, stored in rec.values.items():
            if stored is not None:
                self._index.setdefault((rec.module, name, str(stored).strip().lower()), set()).add(rec.id)

    def display_name(self, rec: Rec) -> str:
        if rec.module in ("Leads", "Contacts"):
            return str(rec.values.get("Full_Name") or rec.values.get("Last_Name") or "")
        return str(rec.values.get(NAME_FIELDS.get(rec.module, "id")) or rec.id)

    # -- writing --------------------------------------------------------------------------------------
    def clean(self, module: Module, data: Any, index: int, existing: Rec | None) -> dict[str, Any]:
        """Validated values for an insert (``existing`` None) or an update; raises the record's error."""
        if not isinstance(data, dict):
            raise invalid_data(index, "data")
        values: dict[str, Any] = {}
        for name, raw in data.items():
            definition = module.fields.get(name)
            if definition is None or name in SYSTEM_FIELDS or definition.read_only:
                continue  # Zoho ignores names it does not know and system fields
            value = check_value(definition, raw, index)
            if definition.data_type in ("lookup", "ownerlookup") and value is not None:
                value = self._lookup(module, definition, value, data, index)
            values[name] = value
        merged = {**(existing.values if existing else {}), **values}
        for definition in module.fields.values():
            if definition.mandatory and merged.get(definition.api_name) in (None, ""):
                if existing is None or definition.api_name in values:
                    raise mandatory(index, definition.api_name)
        self._check_unique(module, merged, index, existing)
        return values

    def _lookup(self, module: Module, definition: FieldDef, value: Any, data: dict, index: int) -> dict[str, Any]:
        target_id = value.get("id") if isinstance(value, dict) else value
        if definition.data_type == "ownerlookup":
            user = self.user_lookup(str(target_id))
            if user is None:
                raise invalid_data(index, definition.api_name, expected_data_type="ownerlookup")
            return user
        target_module = definition.lookup_module
        if definition.api_name == "What_Id":
            target_module = data.get("$se_module")
        elif definition.api_name == "Parent_Id" and isinstance(value, dict):
            target_module = (value.get("module") or {}).get("api_name") or data.get("$se_module")
        target = self.get(str(target_module), str(target_id)) if target_module else None
        if target is None:
            raise invalid_data(index, definition.api_name, expected_data_type="lookup")
        linked: dict[str, Any] = {"name": self.display_name(target), "id": target.id}
        if definition.api_name == "Parent_Id":
            linked["module"] = {"api_name": target.module, "id": self.modules[target.module].id}
        return linked

    def user_lookup(self, user_id: str) -> dict[str, str] | None:
        user = self.users.get(user_id)
        return dict(user) if user else None

    def _check_unique(self, module: Module, merged: dict[str, Any], index: int, existing: Rec | None) -> None:
        for definition in module.fields.values():
            value = merged.get(definition.api_name)
            if not definition.unique or value in (None, ""):
                continue
            other = self.match(module.api_name, definition.api_name, value)
            if other is not None and (existing is None or other.id != existing.id):
                owner = other.values.get("Owner") or other.created_by
                raise duplicate(index, definition.api_name, module.api_name, module.id, other.id, owner)

    def _derive(self, rec: Rec) -> None:
        if rec.module in ("Leads", "Contacts"):
            parts = [rec.values.get("First_Name"), rec.values.get("Last_Name")]
            rec.values["Full_Name"] = " ".join(str(p) for p in parts if p)

    def insert(self, module: Module, values: dict[str, Any], user: dict[str, str]) -> Rec:
        now = self.now()
        values.setdefault("Owner", dict(user))
        rec = Rec(module.api_name, self.next_id(), values, now, now, dict(user), dict(user))
        self._derive(rec)
        self.records[module.api_name][rec.id] = rec
        self.changes.append(Change(module.api_name, rec.id, "insert", tuple(values), user["id"], now))
        return rec

    def update(self, rec: Rec, values: dict[str, Any], user: dict[str, str]) -> Rec:
        rec.values.update(values)
        self._derive(rec)
        rec.modified = self.now()
        rec.modified_by = dict(user)
        self.changes.append(Change(rec.module, rec.id, "update", tuple(values), user["id"], rec.modified))
        return rec

    def delete(self, rec: Rec, user: dict[str, str]) -> None:
        rec.deleted = True
        self.changes.append(Change(rec.module, rec.id, "delete", (), user["id"], self.now()))
