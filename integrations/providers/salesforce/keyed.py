"""Idempotent writes of Tasks, Opportunities and Notes, keyed by our own id (connector contract).

Tasks and Opportunities carry our key in an External ID field — ``Capsule_Event_Id__c`` on Task,
``Capsule_Conversion_Id__c`` on Opportunity — and are written with sObject Collections upsert,
``PATCH /composite/sobjects/{Object}/{Field}`` (200 a call, API v46+, crm-reference §1.2): a
replay updates the object the first call made, by construction, with no lookup call at all.

When the org lacks the field (describe, cached per token):

1. it is created through the Tooling API as a unique External ID text field, when the user may
   customise the org ("Customize Application"); then writes upsert as above;
2. when Salesforce refuses that (403), the refusal is remembered and each batch first looks for
   its keys with one SOQL query per 200 — by a marker line ``Capsule ref: <key>`` that we put at
   the end of ``Description``, among the records of the same people (Task ``WhoId``) or deals of
   the same name (Opportunity ``Name``), because long text areas cannot be filtered in SOQL —
   and creates only those not found (``POST /composite/sobjects``). That is idempotent across
   retries, not across two writers racing on one key; the field closes that gap.

A key field made by hand without "External ID" cannot take an upsert; it is then looked up
(``WHERE field IN (…)``) and set on creates.

Notes are the legacy ``Note`` (ParentId, Title, Body), not ``ContentNote``: a ContentNote needs a
second object (ContentDocumentLink) to appear on the person, so a crash between the two calls
would leave an orphan that a replay cannot see from the person's side, and neither object has
room for an external id. A Note is one record on its parent. Its Title starts with the key in
brackets — ``[capsule-evt-12] Question asked in …`` — and each batch looks for its keys with one
SOQL query (``Title LIKE '[key]%'`` per key, split only when the query would outgrow a URL), then
creates the missing ones.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from integrations.connector import WriteOutcome, chunks
from integrations.errors import RecordError, RetryableError
from integrations.providers.salesforce import soql
from integrations.providers.salesforce.api import SalesforceApi
from integrations.providers.salesforce.failures import record_error

UPSERT, LOOKUP, MARKER = "upsert", "lookup", "marker"
MARKER_PREFIX = "Capsule ref: "
_MARKER = re.compile(r"^Capsule ref: (\S+)\s*$", re.MULTILINE)
DESCRIPTION_MAX = 32_000
NOTE_TITLE_MAX = 80
NO_RESULT = "Salesforce gave no result for this record"


@dataclass(frozen=True)
class KeyedRecord:
    key: str  # our id, the value of the key field
    fields: Mapping[str, Any]  # JSON values, without the key field
    scope: str | None = None  # the value of the lookup field in marker mode (WhoId, Name)


class KeyedWriter:
    def __init__(
        self,
        api: SalesforceApi,
        batch_size: int,
        create_key_field: Callable[[str, str], bool],
    ) -> None:
        self.api = api
        self.batch_size = batch_size
        self.create_key_field = create_key_field  # (sObject, field) → made (or already there), False if refused

    # -- which way this org can be written ---------------------------------------------------------------
    def mode(self, sobject: str, key_field: str) -> str:
        found = self.api.fields(sobject).get(key_field.lower())
        if found is not None:
            return UPSERT if found.get("externalId") else LOOKUP
        refused = f"refused:{sobject}.{key_field}"
        if self.api.recall(refused):
            return MARKER
        if self.create_key_field(sobject, key_field):  # it re-reads the describe
            found = self.api.fields(sobject).get(key_field.lower())
            if found is not None:
                return UPSERT if found.get("externalId") else LOOKUP
        self.api.remember(refused, True)
        return MARKER

    # -- writing ----------------------------------------------------------------------------------------
    def write(
        self, sobject: str, key_field: str, records: Sequence[KeyedRecord], *, scope_field: str
    ) -> list[WriteOutcome]:
        """One outcome per record, in order; records sharing a key share the first one's outcome."""
        first: dict[str, KeyedRecord] = {}
        for record in records:
            first.setdefault(record.key, record)
        unique = list(first.values())
        if not unique:
            return []
        mode = self.mode(sobject, key_field)
        if mode == UPSERT:
            by_key = self._upsert(sobject, key_field, unique)
        else:
            by_key = self._find_then_create(sobject, key_field, unique, mode, scope_field)
        return in_input_order([r.key for r in records], by_key)

    def _upsert(self, sobject: str, key_field: str, records: Sequence[KeyedRecord]) -> dict[str, WriteOutcome]:
        outcomes: dict[str, WriteOutcome] = {}
        for chunk in chunks(records, self.batch_size):
            body = {
                "allOrNone": False,
                "records": [{"attributes": {"type": sobject}, **r.fields, key_field: r.key} for r in chunk],
            }
            try:
                answer = self.api.rest("PATCH", f"composite/sobjects/{sobject}/{key_field}", json=body)
            except RecordError as exc:
                if exc.code in ("INVALID_FIELD", "NOT_FOUND"):
                    self.api.forget(sobject)  # the field went away: check again next time
                raise
            outcomes.update(read_results([r.key for r in chunk], answer, created_default=False))
        return outcomes

    def _find_then_create(
        self, sobject: str, key_field: str, records: Sequence[KeyedRecord], mode: str, scope_field: str
    ) -> dict[str, WriteOutcome]:
        existing = self._find(sobject, key_field, records, mode, scope_field)
        outcomes = {key: WriteOutcome(key, crm_id=record_id) for key, record_id in existing.items()}
        missing = [r for r in records if r.key not in existing]
        for chunk in chunks(missing, self.batch_size):
            rows = []
            for r in chunk:
                row: dict[str, Any] = {"attributes": {"type": sobject}, **r.fields}
                if mode == LOOKUP:
                    row[key_field] = r.key
                else:
                    row["Description"] = with_marker(str(r.fields.get("Description") or ""), r.key)
                rows.append(row)
            answer = self.api.rest("POST", "composite/sobjects", json={"allOrNone": False, "records": rows})
            outcomes.update(read_results([r.key for r in chunk], answer, created_default=True))
        return outcomes

    def _find(
        self, sobject: str, key_field: str, records: Sequence[KeyedRecord], mode: str, scope_field: str
    ) -> dict[str, str]:
        found: dict[str, str] = {}
        keys = {r.key for r in records}
        if mode == LOOKUP:
            for chunk in soql.in_chunks([r.key for r in records]):
                query = soql.select(sobject, ["Id", key_field], f"{soql.name(key_field)} IN {soql.in_list(chunk)}")
                for row in self.api.query(query):
                    found.setdefault(str(row.get(key_field)), str(row["Id"]))
            return found
        scopes = list(dict.fromkeys(r.scope for r in records if r.scope))
        for chunk in soql.in_chunks(scopes):
            query = soql.select(sobject, ["Id", "Description"], f"{soql.name(scope_field)} IN {soql.in_list(chunk)}")
            for row in self.api.query(query):
                for key in _MARKER.findall(str(row.get("Description") or "")):
                    if key in keys:
                        found.setdefault(key, str(row["Id"]))
        return found


def with_marker(description: str, key: str) -> str:
    marker = f"{MARKER_PREFIX}{key}"
    room = DESCRIPTION_MAX - len(marker) - 2
    return f"{description[:room]}\n\n{marker}" if description else marker


def in_input_order(keys: Sequence[str], by_key: Mapping[str, WriteOutcome]) -> list[WriteOutcome]:
    """One outcome per input; a repeated key shares the first one's record (made once, by the first)."""
    outcomes = []
    seen: set[str] = set()
    for key in keys:
        outcome = by_key.get(key) or WriteOutcome(key, error=RetryableError(NO_RESULT, code="no_result"))
        if key in seen and outcome.created:
            outcome = WriteOutcome(outcome.key, crm_id=outcome.crm_id)
        seen.add(key)
        outcomes.append(outcome)
    return outcomes


def read_results(keys: Sequence[str], answer: Any, *, created_default: bool) -> dict[str, WriteOutcome]:
    """Outcomes of a collection answer (one result per record, in request order) by key."""
    results = answer if isinstance(answer, list) else []
    outcomes: dict[str, WriteOutcome] = {}
    for position, key in enumerate(keys):
        result = results[position] if position < len(results) and isinstance(results[position], Mapping) else None
        if result is None:
            outcomes[key] = WriteOutcome(key, error=RetryableError(NO_RESULT, code="no_result"))
        elif result.get("success"):
            created = bool(result.get("created", created_default))
            outcomes[key] = WriteOutcome(key, crm_id=str(result.get("id") or ""), created=created)
        else:
            outcomes[key] = WriteOutcome(key, error=record_error(result.get("errors")))
    return outcomes


# -- notes ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NoteRecord:
    key: str
    parent_id: str
    body: str


def note_token(key: str) -> str:
    """The key as it goes in a Note title: itself, or a digest when it would crowd out the title."""
    return key if len(key) <= 40 else "h-" + hashlib.sha256(key.encode()).hexdigest()[:24]


def note_title(key: str, body: str) -> str:
    summary = " ".join(body.split())
    return f"[{note_token(key)}] {summary}"[:NOTE_TITLE_MAX].rstrip()


def _title_clause(token: str) -> str:
    return f"Title LIKE {soql.quote_like(f'[{token}]', suffix='%')}"


def write_notes(api: SalesforceApi, notes: Sequence[NoteRecord], batch_size: int) -> list[WriteOutcome]:
    first: dict[str, NoteRecord] = {}
    for note in notes:
        first.setdefault(note.key, note)
    unique = list(first.values())
    by_token = {note_token(n.key): n.key for n in unique}
    existing: dict[str, str] = {}
    for chunk in soql.in_chunks(list(by_token), render=_title_clause):
        for row in api.query(soql.select("Note", ["Id", "Title"], " OR ".join(_title_clause(t) for t in chunk))):
            title = str(row.get("Title") or "")
            token = title[1 : title.index("]")] if title.startswith("[") and "]" in title else ""
            if token in by_token:
                existing.setdefault(by_token[token], str(row["Id"]))
    outcomes = {key: WriteOutcome(key, crm_id=record_id) for key, record_id in existing.items()}
    missing = [n for n in unique if n.key not in existing]
    for chunk in chunks(missing, batch_size):
        rows = [
            {
                "attributes": {"type": "Note"},
                "ParentId": n.parent_id,
                "Title": note_title(n.key, n.body),
                "Body": n.body[:DESCRIPTION_MAX],
            }
            for n in chunk
        ]
        answer = api.rest("POST", "composite/sobjects", json={"allOrNone": False, "records": rows})
        outcomes.update(read_results([n.key for n in chunk], answer, created_default=True))
    return in_input_order([n.key for n in notes], outcomes)
