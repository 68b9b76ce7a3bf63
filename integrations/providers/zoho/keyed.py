"""Idempotent writes keyed by our own id (connector idempotency contract; crm-reference §4.2-§4.4).

Tasks and Deals carry our key in a custom field that takes no duplicates (``Capsule_Event_Id`` on
Tasks, ``Capsule_Conversion_Id`` on Deals, created through the fields API when missing). Zoho's
upsert accepts user-defined unique fields in ``duplicate_check_fields``, so
``POST /{module}/upsert`` with ``duplicate_check_fields: [key]`` writes each object once however
often it is retried: one call per 100. Whether Zoho allows upsert and unique fields on Tasks is
**UNVERIFIED** (its v2 upsert docs list no activity modules), hence the fallback below.

Fallback, when the key field exists but takes duplicates (made by hand), or Zoho refuses upsert on
the module (``NOT_SUPPORTED``…):
one COQL ``where key in (…)`` per 50 keys finds what exists, and only the rest is inserted. That is
idempotent across retries but not across two writers racing on one key.

Notes have no custom fields: their ``Note_Title`` carries the key (``[capsule-evt-12] …``), found by
one COQL query per 50 titles before the missing ones are inserted (``write_notes``).

Per connection and token, the first write of a process reads the module's fields once (and creates
the key field the first time in an org); the answer is cached until the token changes (hourly).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from integrations.connector import WriteOutcome
from integrations.errors import ConfigurationError, CrmError, RecordError
from integrations.http import CrmHttp
from integrations.providers.zoho import batches, coql
from integrations.providers.zoho.failures import record_error

API = "/crm/v8"
UPSERT, QUERY = "upsert", "query"
# Codes with which Zoho may refuse an upsert on a module that does not take one (activities).
UPSERT_REFUSED = frozenset({"NOT_SUPPORTED", "FEATURE_NOT_SUPPORTED", "NOT_ALLOWED"})
KEY_LENGTH = 100

_modes: dict[tuple[str, str, str, str], str] = {}
_modes_lock = threading.Lock()


def forget_key_fields() -> None:
    """Drop what this process knows about key fields (tests that reset an org)."""
    with _modes_lock:
        _modes.clear()


@dataclass(frozen=True)
class KeyField:
    name: str  # API name
    label: str


@dataclass(frozen=True)
class KeyedItem:
    key: str  # our id: the value of the key field
    values: Mapping[str, Any]  # wire values, without the key field


class KeyedWriter:
    def __init__(self, http: CrmHttp, token: str, batch_size: int) -> None:
        self.http = http
        self.batch_size = batch_size
        self._fingerprint = hashlib.sha256(token.encode()).hexdigest()[:16]  # never the token itself

    # -- the key field ----------------------------------------------------------------------------------
    def _cache_key(self, module: str, key: KeyField) -> tuple[str, str, str, str]:
        return (self.http.base_url, self._fingerprint, module, key.name)

    def _read(self, module: str, name: str) -> Mapping[str, Any] | None:
        answer = self.http.json("GET", f"{API}/settings/fields", params={"module": module}) or {}
        return next((f for f in answer.get("fields") or [] if f.get("api_name") == name), None)

    def mode(self, module: str, key: KeyField) -> str:
        cache_key = self._cache_key(module, key)
        with _modes_lock:
            known = _modes.get(cache_key)
        if known:
            return known
        definition = self._read(module, key.name)
        if definition is None:
            definition = self._create(module, key)
        mode = UPSERT if definition.get("unique") else QUERY
        with _modes_lock:
            _modes[cache_key] = mode
        return mode

    def _create(self, module: str, key: KeyField) -> Mapping[str, Any]:
        body = {
            "fields": [
                {
                    "api_name": key.name,
                    "field_label": key.label,
                    "data_type": "text",
                    "length": KEY_LENGTH,
                    "unique": {"casesensitive": False},
                }
            ]
        }
        try:
            self.http.json("POST", f"{API}/settings/fields", params={"module": module}, json=body)
        except ConfigurationError as exc:
            raise ConfigurationError(
                f"Zoho CRM has no {key.name} field on {module} and this connection may not create it "
                f"({exc.message}). Grant the ZohoCRM.settings.fields.ALL scope to a user who may customise "
                f"Zoho CRM, or create a single-line field “{key.label}” on {module} with “Do not allow "
                f"duplicate values” on.",
                status=exc.status,
                code="missing_key_field",
            ) from None
        definition = self._read(module, key.name)  # created now, or meanwhile by another worker
        if definition is None:
            raise ConfigurationError(
                f"Zoho CRM did not create the {key.name} field on {module}; create it by hand (single line, "
                "no duplicate values).",
                code="missing_key_field",
            )
        return definition

    def _remember(self, module: str, key: KeyField, mode: str) -> None:
        with _modes_lock:
            _modes[self._cache_key(module, key)] = mode

    def _forget(self, module: str, key: KeyField) -> None:
        with _modes_lock:
            _modes.pop(self._cache_key(module, key), None)

    # -- writing ------------------------------------------------------------------------------------------
    def write(self, module: str, key: KeyField, items: Sequence[KeyedItem]) -> list[WriteOutcome]:
        outcomes: dict[int, WriteOutcome] = {}
        for chunk in batches.unique_chunks(range(len(items)), lambda i: items[i].key, self.batch_size):
            outcomes.update(self._write_chunk(module, key, items, chunk))
        return [outcomes.get(i) or batches.missing(items[i].key) for i in range(len(items))]

    def _write_chunk(self, module: str, key: KeyField, items: Sequence[KeyedItem], chunk: list[int]) -> dict:
        try:
            return self._write_once(module, key, items, chunk)
        except CrmError as exc:
            if exc.code in UPSERT_REFUSED:  # this org does not upsert this module: look up, then insert
                self._remember(module, key, QUERY)
            elif exc.kind == "record" and exc.field == key.name:
                self._forget(module, key)  # our key field was deleted or changed since we looked
            else:
                raise
        return self._write_once(module, key, items, chunk)

    def _write_once(self, module: str, key: KeyField, items: Sequence[KeyedItem], chunk: list[int]) -> dict:
        if self.mode(module, key) == UPSERT:
            body = {
                "data": [{**items[i].values, key.name: items[i].key} for i in chunk],
                "duplicate_check_fields": [key.name],
            }
            answer = self.http.json("POST", f"{API}/{module}/upsert", json=body)
            return batches.read_outcomes(answer, chunk, lambda i: items[i].key)
        return self._query_then_insert(module, key, items, chunk)

    def _query_then_insert(self, module: str, key: KeyField, items: Sequence[KeyedItem], chunk: list[int]) -> dict:
        found = existing(self.http, module, key.name, [items[i].key for i in chunk])
        outcomes = {i: WriteOutcome(items[i].key, crm_id=found[items[i].key]) for i in chunk if items[i].key in found}
        to_create = [i for i in chunk if items[i].key not in found]
        if to_create:
            body = {"data": [{**items[i].values, key.name: items[i].key} for i in to_create]}
            answer = self.http.json("POST", f"{API}/{module}", json=body)
            outcomes.update(batches.read_outcomes(answer, to_create, lambda i: items[i].key))
        return outcomes


def existing(http: CrmHttp, module: str, field: str, values: list[str]) -> dict[str, str]:
    """Value of ``field`` -> record id, for the records that hold one of ``values`` (COQL, 50 a query)."""
    found: dict[str, str] = {}
    for start in range(0, len(values), coql.IN_LIMIT):
        part = values[start : start + coql.IN_LIMIT]
        query = coql.select([field], module, f"{coql.name(field)} in {coql.in_list(part)}")
        answer = http.json("POST", f"{API}/coql", json={"select_query": query}) or {}
        for row in answer.get("data") or []:
            if row.get(field) is not None:
                found.setdefault(str(row[field]), str(row["id"]))
    return found


# -- notes ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NoteItem:
    key: str
    parent_module: str
    parent_id: str
    content: str

    @property
    def title(self) -> str:
        return note_title(self.key)


def note_title(key: str) -> str:
    """The title that carries a note's key (found again by exact match, so it depends on the key only)."""
    return f"[{key}] Capsule note"


def write_notes(http: CrmHttp, items: Sequence[NoteItem], batch_size: int) -> list[WriteOutcome]:
    outcomes: dict[int, WriteOutcome] = {}
    todo = [i for i, item in enumerate(items) if item.parent_id]
    for index, item in enumerate(items):
        if not item.parent_id:
            outcomes[index] = batches.failed(
                item.key, RecordError("there is no Zoho record to attach this note to", code="no_parent")
            )
    for chunk in batches.unique_chunks(todo, lambda i: items[i].key, batch_size):
        found = existing(http, "Notes", "Note_Title", [items[i].title for i in chunk])
        for i in chunk:
            if items[i].title in found:
                outcomes[i] = WriteOutcome(items[i].key, crm_id=found[items[i].title])
        to_create = [i for i in chunk if items[i].title not in found]
        if not to_create:
            continue
        body = {
            "data": [
                {
                    "Note_Title": items[i].title,
                    "Note_Content": items[i].content,
                    "Parent_Id": {"module": {"api_name": items[i].parent_module}, "id": items[i].parent_id},
                }
                for i in to_create
            ]
        }
        answer = http.json("POST", f"{API}/Notes", json=body)
        outcomes.update(batches.read_outcomes(answer, to_create, lambda i: items[i].key))
    return [outcomes.get(i) or batches.missing(items[i].key) for i in range(len(items))]


def single_error(answer: Any) -> CrmError | None:
    """The error of a one-item settings answer (``fields[0]``/``watch[0]``), if it is one."""
    for envelope in ("fields", "watch", "data"):
        items = answer.get(envelope) if isinstance(answer, Mapping) else None
        if isinstance(items, list) and items and isinstance(items[0], Mapping):
            first = items[0]
            return record_error(first) if first.get("status") == "error" else None
    return None
