"""Contacts or Leads written in batches, matched without a single per-record call.

Matching (connector idempotency contract; crm-reference §1.2): an input with a stored CRM id is
updated by that id — so a changed e-mail updates the same record. The others are looked up by
e-mail, one SOQL query per 200 addresses (``WHERE Email IN (…)``, converted Leads left out since
Salesforce refuses edits to them), five queries to a Composite call (which counts as one API
call); a match is updated by id, the rest are created. Several Salesforce records with one
address (Salesforce does not enforce unique e-mails) resolve to the oldest, so every run picks
the same one.

Writing: updates go through sObject Collections ``PATCH /composite/sobjects`` and creates through
``POST /composite/sobjects``, 200 records a call, ``allOrNone: false`` so one bad record fails
alone. A write part bigger than the bulk threshold (``bulk_threshold`` in the connection settings,
else ``spec.batch_sizes["bulk_threshold"]``) goes through one Bulk API 2.0 job instead (bulk.py).

``Capsule_Prospect_Id__c``: when the org has it as an External ID field (describe, cached), creates
become upserts on it (``PATCH /composite/sobjects/{Object}/Capsule_Prospect_Id__c``, or a Bulk
upsert job) with the input's key. A create whose answer was lost (a timeout after Salesforce
saved it) and is retried then updates the record it made instead of making a second one, even if
the e-mail lookup misses it (an address edited in Salesforce meanwhile). Updates leave the field
alone: the record we matched may be one a person made, and stamping our key on it could collide
with the same key on another record (the field is unique).

Two inputs that resolve to the same record (the same stored id, or the same new e-mail) are
never written in the same call — Salesforce refuses a duplicate id in one collection — so the
later one waits for a second round, which then updates what the first created.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from integrations.connector import PersonInput, WriteOutcome, chunks
from integrations.errors import NotFound, RecordError, RetryableError
from integrations.providers.salesforce import soql
from integrations.providers.salesforce.api import SalesforceApi
from integrations.providers.salesforce.bulk import BulkIngest, RowResult
from integrations.providers.salesforce.failures import record_error
from integrations.providers.salesforce.wire import email_key, json_fields, normalize_id, to_csv

PROSPECT_KEY_FIELD = "Capsule_Prospect_Id__c"
NO_RESULT = "Salesforce gave no result for this record"


@dataclass(frozen=True)
class Target:
    """Where one input goes: an existing record (``record_id``) or a new one for ``email``."""

    record_id: str | None
    email: str
    matched_by_email: bool = False

    @property
    def identity(self) -> tuple[str, str]:
        return ("id", self.record_id) if self.record_id else ("new", self.email)


def match_by_email(
    api: SalesforceApi, sobject: str, emails: Sequence[str], extra_fields: Sequence[str] = ()
) -> dict[str, dict[str, Any]]:
    """Records by lower-cased e-mail: one SOQL query per ≤ 200 addresses, the oldest record first."""
    unique = list(dict.fromkeys(e for e in (email_key(x) for x in emails) if e))
    found: dict[str, dict[str, Any]] = {}
    wanted = ["Id", "Email", "CreatedDate", "SystemModstamp", *extra_fields]
    converted = " AND IsConverted = false" if sobject == "Lead" else ""
    queries = [
        soql.select(sobject, wanted, f"Email IN {soql.in_list(chunk)}{converted}", order_by=("CreatedDate", "Id"))
        for chunk in soql.in_chunks(unique)
    ]
    # Oldest first within each query; across queries an address occurs in one chunk only.
    for record in api.query_many(queries):
        found.setdefault(email_key(record.get("Email")), record)
    return found


class PeopleWriter:
    def __init__(
        self,
        api: SalesforceApi,
        bulk: BulkIngest,
        sobject: str,
        *,
        batch_size: int,
        bulk_threshold: int,
    ) -> None:
        self.api = api
        self.bulk = bulk
        self.sobject = sobject
        self.batch_size = batch_size
        self.bulk_threshold = bulk_threshold

    # -- upserting -------------------------------------------------------------------------------------
    def upsert(self, inputs: Sequence[PersonInput], key_field: str | None) -> list[WriteOutcome]:
        outcomes: dict[int, WriteOutcome] = {}
        targets: dict[int, Target] = {}
        to_match: list[int] = []
        for index, person in enumerate(inputs):
            stored = normalize_id(person.crm_id) if person.crm_id else None
            if person.crm_id and stored is None:
                outcomes[index] = WriteOutcome(
                    person.key, error=NotFound(f"{person.crm_id!r} is not a Salesforce id", code="MALFORMED_ID")
                )
            elif stored:
                targets[index] = Target(stored, email_key(person.email))
            elif email_key(person.email):
                to_match.append(index)
            else:
                outcomes[index] = WriteOutcome(
                    person.key,
                    error=RecordError("no e-mail address to match or create the record by", code="no_email"),
                )
        matches = match_by_email(self.api, self.sobject, [inputs[i].email for i in to_match]) if to_match else {}
        for index in to_match:
            email = email_key(inputs[index].email)
            found = matches.get(email)
            targets[index] = Target(str(found["Id"]), email, matched_by_email=True) if found else Target(None, email)
        outcomes.update(self._write_in_rounds(inputs, targets, key_field))
        return [outcomes.get(i) or _missing(person.key) for i, person in enumerate(inputs)]

    def _write_in_rounds(
        self, inputs: Sequence[PersonInput], targets: dict[int, Target], key_field: str | None
    ) -> dict[int, WriteOutcome]:
        outcomes: dict[int, WriteOutcome] = {}
        pending = sorted(targets)
        created: dict[str, str] = {}  # e-mail → id made in an earlier round
        while pending:
            this_round: list[int] = []
            later: list[int] = []
            seen: set[tuple[str, str]] = set()
            for index in pending:
                target = targets[index]
                if target.record_id is None and target.email in created:
                    target = targets[index] = Target(created[target.email], target.email, matched_by_email=True)
                if target.identity in seen:
                    later.append(index)
                    continue
                seen.add(target.identity)
                this_round.append(index)
            updates = [i for i in this_round if targets[i].record_id]
            creates = [i for i in this_round if not targets[i].record_id]
            outcomes.update(self._update(inputs, targets, updates))
            made = self._create(inputs, creates, key_field)
            outcomes.update(made)
            for index, outcome in made.items():
                if outcome.ok and outcome.crm_id:
                    created[targets[index].email] = outcome.crm_id
            pending = later
        return outcomes

    # -- the writes ------------------------------------------------------------------------------------
    def _body(self, person: PersonInput) -> dict[str, Any]:
        """The record's fields as JSON values, with the e-mail under ``Email`` (the mapped value wins)."""
        body = json_fields(person.fields)
        spelled = next((k for k in body if k.lower() == "email"), None)
        if spelled is not None:
            body["Email"] = body.pop(spelled)
        elif email_key(person.email):
            body["Email"] = person.email.strip()
        return body

    def _update(
        self, inputs: Sequence[PersonInput], targets: Mapping[int, Target], indices: list[int]
    ) -> dict[int, WriteOutcome]:
        if not indices:
            return {}
        rows = {i: {**self._body(inputs[i]), "Id": targets[i].record_id} for i in indices}
        if len(indices) > self.bulk_threshold:
            results = self.bulk.run(self.sobject, "update", list(rows.values()), "Id")
            raw = {i: results.get(to_csv(targets[i].record_id)) for i in indices}
            outcomes = {i: _from_row(inputs[i].key, raw[i]) for i in indices}
        else:
            outcomes = {}
            for chunk in chunks(indices, self.batch_size):
                records = [{"attributes": {"type": self.sobject}, **rows[i]} for i in chunk]
                answer = self.api.rest("PATCH", "composite/sobjects", json={"allOrNone": False, "records": records})
                outcomes.update(_from_results(inputs, chunk, answer, created_default=False, updated_by_id=True))
        # A record matched by e-mail a moment ago and gone now was deleted in between: look again later.
        for i, outcome in outcomes.items():
            if isinstance(outcome.error, NotFound) and targets[i].matched_by_email:
                outcomes[i] = WriteOutcome(
                    outcome.key, error=RetryableError(f"the matched record went away: {outcome.error}", code="gone")
                )
        return outcomes

    def _create(
        self, inputs: Sequence[PersonInput], indices: list[int], key_field: str | None
    ) -> dict[int, WriteOutcome]:
        if not indices:
            return {}
        rows = {i: self._body(inputs[i]) for i in indices}
        if key_field:
            for i in indices:
                rows[i].setdefault(key_field, inputs[i].key)
        if len(indices) > self.bulk_threshold:
            return self._create_in_bulk(inputs, indices, rows, key_field)
        outcomes: dict[int, WriteOutcome] = {}
        for chunk in chunks(indices, self.batch_size):
            records = [{"attributes": {"type": self.sobject}, **rows[i]} for i in chunk]
            body = {"allOrNone": False, "records": records}
            if key_field:
                answer = self.api.rest("PATCH", f"composite/sobjects/{self.sobject}/{key_field}", json=body)
            else:
                answer = self.api.rest("POST", "composite/sobjects", json=body)
            outcomes.update(_from_results(inputs, chunk, answer, created_default=True, updated_by_id=False))
        return outcomes

    def _create_in_bulk(
        self,
        inputs: Sequence[PersonInput],
        indices: list[int],
        rows: Mapping[int, dict[str, Any]],
        key_field: str | None,
    ) -> dict[int, WriteOutcome]:
        if key_field:
            results = self.bulk.run(
                self.sobject, "upsert", [rows[i] for i in indices], key_field, external_id_field=key_field
            )
            return {i: _from_row(inputs[i].key, results.get(to_csv(rows[i][key_field]))) for i in indices}
        # Without our key field rows are told apart by e-mail, unique among creates by construction.
        results = self.bulk.run(self.sobject, "insert", [rows[i] for i in indices], "Email")
        return {i: _from_row(inputs[i].key, results.get(to_csv(rows[i]["Email"])), created=True) for i in indices}


def _from_results(
    inputs: Sequence[PersonInput],
    chunk: Sequence[int],
    answer: Any,
    *,
    created_default: bool,
    updated_by_id: bool,
) -> dict[int, WriteOutcome]:
    """Outcomes from a collection answer: one result per record, in request order."""
    results = answer if isinstance(answer, list) else []
    outcomes: dict[int, WriteOutcome] = {}
    for position, index in enumerate(chunk):
        key = inputs[index].key
        result = results[position] if position < len(results) and isinstance(results[position], Mapping) else None
        if result is None:
            outcomes[index] = _missing(key)
        elif result.get("success"):
            created = bool(result.get("created", created_default))
            outcomes[index] = WriteOutcome(key, crm_id=str(result.get("id") or ""), created=created)
        else:
            outcomes[index] = WriteOutcome(key, error=record_error(result.get("errors"), updated_by_id=updated_by_id))
    return outcomes


def _from_row(key: str, row: RowResult | None, *, created: bool | None = None) -> WriteOutcome:
    if row is None:
        error = RetryableError("the Bulk API job did not process this record", code="unprocessed")
        return WriteOutcome(key, error=error)
    if row.error is not None:
        return WriteOutcome(key, error=row.error)
    return WriteOutcome(key, crm_id=row.record_id, created=row.created if created is None else created)


def _missing(key: str) -> WriteOutcome:
    return WriteOutcome(key, error=RetryableError(NO_RESULT, code="no_result"))
