"""Contacts: find and upsert, one call per person (crm-reference §7.2).

- A stored id → ``PUT /contacts/{id}`` (an e-mail change travels with it); 404 → a ``NotFound``
  outcome, so the engine matches that person by e-mail again.
- No stored id → ``POST /contacts/upsert`` with ``unique_identifier: {"emails": …}``: 201 created,
  200 updated — Freshsales matches the e-mail itself, so a retry after a timeout updates the
  contact the first attempt made.
- ``find_by_email``: one ``GET /lookup?q=…&f=email&entities=contact`` per address.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from integrations.connector import CrmRecord, PersonInput, WriteOutcome
from integrations.errors import NotFound, RecordError
from integrations.http import CrmHttp
from integrations.providers.freshsales import wire

if TYPE_CHECKING:
    from integrations.providers.freshsales.connector import FreshsalesConnector


def upsert(connector: FreshsalesConnector, inputs: Sequence[PersonInput]) -> list[WriteOutcome]:
    def work(http: CrmHttp, person: PersonInput) -> WriteOutcome:
        body = wire.encode(person.fields, person.email or None)
        if person.crm_id:
            if not str(person.crm_id).isdigit():
                return WriteOutcome(person.key, error=NotFound(f"{person.crm_id!r} is not a Freshsales id"))
            answer = http.json("PUT", f"/contacts/{person.crm_id}", json={"contact": body}) or {}
            return WriteOutcome(person.key, crm_id=str((answer.get("contact") or {}).get("id") or person.crm_id))
        if not person.email:
            return WriteOutcome(person.key, error=RecordError("no e-mail to match the contact on", code="no_email"))
        response = http.request(
            "POST", "/contacts/upsert", json={"unique_identifier": {"emails": person.email}, "contact": body}
        )
        contact = (response.json() or {}).get("contact") or {}
        return WriteOutcome(person.key, crm_id=str(contact["id"]), created=response.status_code == 201)

    results = connector.parallel(inputs, work)
    return [
        WriteOutcome(person.key, error=result) if isinstance(result, RecordError) else result
        for person, result in zip(inputs, results, strict=True)
    ]


def find_by_email(connector: FreshsalesConnector, emails: Sequence[str]) -> dict[str, CrmRecord]:
    wanted = sorted({e.strip().lower() for e in emails if e and e.strip()})

    def work(http: CrmHttp, email: str) -> CrmRecord | None:
        answer = http.json("GET", "/lookup", params={"q": email, "f": "email", "entities": "contact"}) or {}
        for contact in (answer.get("contacts") or {}).get("contacts") or []:
            record = wire.flatten(contact)
            addresses = {str(e.get("value") or "").lower() for e in contact.get("emails") or []}
            if email in addresses | {str(record.fields.get("email") or "").lower()}:
                return record
        return None

    found = connector.parallel(wanted, work)
    return {email: record for email, record in zip(wanted, found, strict=True) if isinstance(record, CrmRecord)}
