"""Contacts and leads: matched by stored id, then e-mail, then created — writes through ``$batch``.

Calls for n inputs (m of them without a stored id, e of those with an address):

- with the ``email_alternate_key`` connection setting (an alternate key on ``emailaddress1`` is
  configured in the org): no query; one ``PATCH <set>(emailaddress1='…')`` upsert per input, all in
  one ``$batch``. Addresses holding a character Dataverse refuses in key values (``+ / % & …``)
  fall back to search-then-write.
- otherwise: ⌈e/100⌉ ``GET <set>?$filter=emailaddress1 eq '…' or …`` queries, then one ``$batch``
  (per 1,000 operations) of ``PATCH <set>(<id>)`` with ``If-Match: *`` for matches and ``POST <set>``
  for the rest.

Stored ids are written with ``If-Match: *`` (update only — a plain PATCH would create a row with
that id), so a record deleted in Dynamics answers 404 and the outcome is ``NotFound``. Inputs that
share an address without a stored id are written once and share the outcome.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote as url_quote

from integrations.connector import CrmRecord, PersonInput, WriteOutcome
from integrations.errors import NotFound
from integrations.http import CrmHttp
from integrations.providers.dynamics import batch, wire

EMAIL = "emailaddress1"


def find_by_email(
    http: CrmHttp, entity_set: str, primary: str, emails: Sequence[str], select: Sequence[str], chunk: int
) -> dict[str, CrmRecord]:
    wanted = list(dict.fromkeys(e.strip().lower() for e in emails if e and e.strip()))
    found: dict[str, CrmRecord] = {}
    columns = ",".join(dict.fromkeys([primary, EMAIL, "modifiedon", *select]))
    for start in range(0, len(wanted), chunk):
        part = wanted[start : start + chunk]
        query = " or ".join(f"{EMAIL} eq {wire.quote(e)}" for e in part)
        url: str | None = wire.api(entity_set)
        params: dict[str, str] | None = {"$select": columns, "$filter": query, "$orderby": "createdon asc"}
        while url:
            answer = http.json("GET", url, params=params, headers={**wire.HEADERS, "Prefer": "odata.maxpagesize=5000"})
            for raw in (answer or {}).get("value", []):
                email = str(raw.get(EMAIL) or "").lower()
                if email and email not in found:  # the oldest wins when the org holds duplicates
                    found[email] = to_record(raw, primary)
            url, params = (answer or {}).get("@odata.nextLink"), None
    return found


def to_record(raw: Mapping[str, Any], primary: str) -> CrmRecord:
    fields = wire.record_fields(raw)
    return CrmRecord(
        crm_id=str(fields.get(primary) or ""), fields=fields, modified_at=wire.parse_datetime(fields.get("modifiedon"))
    )


def key_safe(email: str) -> bool:
    return bool(email) and not (wire.KEY_FORBIDDEN & set(email))


class PeopleWriter:
    def __init__(self, http: CrmHttp, entity_set: str, primary: str, *, email_chunk: int, alternate_key: bool):
        self.http, self.entity_set, self.primary = http, entity_set, primary
        self.email_chunk, self.alternate_key = email_chunk, alternate_key

    def _payload(self, item: PersonInput, *, with_email: bool) -> dict[str, Any]:
        payload = wire.clean_fields(item.fields)
        if with_email and item.email and not payload.get(EMAIL):
            payload[EMAIL] = item.email.strip().lower()
        return payload

    def upsert(self, inputs: Sequence[PersonInput]) -> list[WriteOutcome]:
        outcomes: dict[int, WriteOutcome] = {}
        operations: list[batch.Operation] = []
        owners: list[tuple[list[int], bool]] = []  # input positions an operation answers for; created?
        by_email: dict[str, list[int]] = {}
        for position, item in enumerate(inputs):
            if item.crm_id:
                record_id = wire.guid(item.crm_id)
                if record_id is None:
                    outcomes[position] = WriteOutcome(
                        item.key, error=NotFound(f"{item.crm_id!r} is not a Dataverse id")
                    )
                    continue
                operations.append(
                    batch.Operation(
                        "PATCH",
                        f"{self.entity_set}({record_id})",
                        self._payload(item, with_email=False),
                        {"If-Match": "*"},
                    )
                )
                owners.append(([position], False))
            else:
                by_email.setdefault(item.email.strip().lower(), []).append(position)
        searched = [e for e in by_email if e and not (self.alternate_key and key_safe(e))]
        matches = (
            find_by_email(self.http, self.entity_set, self.primary, searched, (), self.email_chunk) if searched else {}
        )
        for email, positions in by_email.items():
            last = inputs[positions[-1]]  # the newest values of an address win
            if email and self.alternate_key and key_safe(email):
                key = url_quote(f"{EMAIL}={wire.quote(email)}", safe="=@'")
                operations.append(
                    batch.Operation(
                        "PATCH",
                        f"{self.entity_set}({key})?$select={self.primary}",
                        self._payload(last, with_email=False),
                        {"Prefer": "return=representation"},
                    )
                )
                owners.append((positions, True))
            elif email in matches:
                operations.append(
                    batch.Operation(
                        "PATCH",
                        f"{self.entity_set}({matches[email].crm_id})",
                        self._payload(last, with_email=False),
                        {"If-Match": "*"},
                    )
                )
                owners.append((positions, False))
            else:
                operations.append(batch.Operation("POST", self.entity_set, self._payload(last, with_email=True)))
                owners.append((positions, True))
        answers = batch.run(self.http, operations) if operations else []
        for operation, (positions, may_create), answer in zip(operations, owners, answers, strict=True):
            for position in positions:
                item = inputs[position]
                if answer.error is not None:
                    outcomes[position] = WriteOutcome(item.key, error=answer.error)
                    continue
                record_id = answer.entity_id() or str(answer.json().get(self.primary) or "") or None
                if (
                    record_id is None
                    and operation.method == "PATCH"
                    and "(" in operation.path
                    and "=" not in operation.path
                ):
                    record_id = operation.path.split("(", 1)[1].split(")", 1)[0]
                created = may_create and (operation.method == "POST" or answer.status == 201)
                outcomes[position] = WriteOutcome(
                    item.key, crm_id=record_id, created=created and position == positions[0]
                )
        return [outcomes[i] for i in range(len(inputs))]
