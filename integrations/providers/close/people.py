"""Contacts: find by e-mail, then create or update (crm-reference §8.2).

Close has no contact upsert and no batch write, so a batch of people costs:

- one Advanced Filtering search (``POST /data/search/``) for every e-mail of the batch (per 100
  addresses; a ``has_related`` contact_email ``term`` query), answering each match's id, lead and
  e-mails, phones and URLs (so updates can merge them without reading each contact);
- then one call per person, a few at a time: ``PUT /contact/{id}/`` for a stored id or an e-mail
  match, or ``POST /lead/`` with the contact inline for a new person (the lead is the company:
  named after ``lead_name``, else the person, else the address). A stored id whose e-mail the
  search did not find on it (the e-mail changed) is read first (``GET /contact/{id}/``) so its
  addresses can be merged; a stored id Close no longer knows is a NotFound outcome.

The stored id always wins over the e-mail. Several inputs for one address are written in order by
one worker, so the first creates and the rest update. Advanced Filtering is an index: a contact
created a moment ago may not be found yet (Close does not say how long that takes), so a retry
within that moment could create a second contact; the engine's backoff makes that unlikely.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from integrations.connector import CONTACT, CrmRecord, PersonInput, WriteOutcome
from integrations.errors import ConfigurationError, RecordError
from integrations.http import CrmHttp
from integrations.providers.close import wire
from integrations.providers.close.schema import CustomFields

MATCH_FIELDS = ["id", "lead_id", "name", "emails", "phones", "urls", "date_created", "date_updated"]


def email_query(emails: Sequence[str]) -> dict[str, Any]:
    return {
        "type": "and",
        "queries": [
            {"type": "object_type", "object_type": "contact"},
            {
                "type": "has_related",
                "this_object_type": "contact",
                "related_object_type": "contact_email",
                "related_query": {
                    "type": "field_condition",
                    "field": {"type": "regular_field", "object_type": "contact_email", "field_name": "email"},
                    "condition": {"type": "term", "values": list(emails)},
                },
            },
        ],
    }


def id_query(object_type: str, ids: Sequence[str]) -> dict[str, Any]:
    return {
        "type": "and",
        "queries": [
            {"type": "object_type", "object_type": object_type},
            {
                "type": "field_condition",
                "field": {"type": "regular_field", "object_type": object_type, "field_name": "id"},
                "condition": {"type": "term", "values": list(ids)},
            },
        ],
    }


def search(
    http: CrmHttp,
    query: dict[str, Any],
    fields: dict[str, list[str]],
    page_size: int,
    sort: list[dict[str, Any]] | None = None,
):
    """Every hit of an Advanced Filtering query, following the cursor."""
    cursor = None
    while True:
        body: dict[str, Any] = {"query": query, "_fields": fields, "_limit": page_size}
        if sort:
            body["sort"] = sort
        if cursor:
            body["cursor"] = cursor
        answer = http.json("POST", "data/search/", json=body) or {}
        yield from (row for row in answer.get("data") or [] if isinstance(row, Mapping) and row.get("id"))
        cursor = answer.get("cursor")
        if not cursor:
            return


def _email(person: PersonInput) -> str:
    return (person.email or "").strip().lower()


class People:
    def __init__(self, http: CrmHttp, fields: CustomFields, page_size: int, batch_size: int) -> None:
        self.http = http
        self.fields = fields
        self.page_size = page_size
        self.batch_size = batch_size

    # -- reading ----------------------------------------------------------------------------------------
    def by_email(self, emails: Sequence[str], extra_fields: Sequence[str] = ()) -> dict[str, dict[str, Any]]:
        """Contacts by lower-cased e-mail (the oldest when several share one), one search per 100."""
        unique = list(dict.fromkeys(e.strip().lower() for e in emails if e and e.strip()))
        found: dict[str, dict[str, Any]] = {}
        oldest_first = [
            {
                "direction": "asc",
                "field": {"type": "regular_field", "object_type": "contact", "field_name": "date_created"},
            }
        ]
        for start in range(0, len(unique), self.batch_size):
            chunk = unique[start : start + self.batch_size]
            wanted = {"contact": [*MATCH_FIELDS, *extra_fields]}
            for contact in search(self.http, email_query(chunk), wanted, self.page_size, oldest_first):
                for entry in contact.get("emails") or []:
                    address = str(entry.get("email") or "").strip().lower()
                    if address in chunk and address not in found:
                        found[address] = dict(contact)
        return found

    def leads_of(self, contact_ids: Sequence[str]) -> dict[str, str]:
        """The lead of each contact (one search per 100 ids); gone contacts are absent."""
        unique = list(dict.fromkeys(i for i in contact_ids if i))
        leads: dict[str, str] = {}
        for start in range(0, len(unique), self.batch_size):
            chunk = unique[start : start + self.batch_size]
            for contact in search(
                self.http, id_query("contact", chunk), {"contact": ["id", "lead_id"]}, self.page_size
            ):
                leads[str(contact["id"])] = str(contact.get("lead_id") or "")
        return leads

    def record(self, contact: Mapping[str, Any]) -> CrmRecord:
        flat = wire.flatten(contact, self.fields.names_by_id("contact") if self._has_custom(contact) else {})
        return CrmRecord(
            crm_id=str(contact["id"]), fields=flat, modified_at=wire.parse_time(contact.get("date_updated"))
        )

    @staticmethod
    def _has_custom(contact: Mapping[str, Any]) -> bool:
        return any(key.startswith("custom.") for key in contact)

    def custom_keys(self) -> list[str]:
        return [f"custom.{i}" for i in self.fields.names_by_id("contact")]

    # -- writing ----------------------------------------------------------------------------------------
    def custom_ids(self, inputs: Sequence[PersonInput]) -> dict[str, str]:
        """Custom field ids by name, read only when some input writes a field that is not standard."""
        standard = {
            *wire.CONTACT_SCALARS,
            "email",
            "url",
            *wire.PHONE_TYPES,
            *wire.LEAD_SCALARS,
            *wire.LEAD_ADDRESS,
            *wire.READ_ONLY,
        }
        if all(name in standard or name.startswith("custom.") for p in inputs for name in p.fields):
            return {}
        return self.fields.ids_by_name("contact")

    def write(
        self,
        http: CrmHttp,
        person: PersonInput,
        found: dict[str, dict[str, Any]],
        custom_ids: Mapping[str, str],
    ) -> WriteOutcome:
        """Write one person (see the module docstring); ``found`` is shared by the person's group."""
        email = _email(person)
        current = found.get(email) if email else None
        try:
            if person.crm_id:
                if current is None or current.get("id") != person.crm_id:
                    current = http.json("GET", f"contact/{person.crm_id}/", params={"_fields": ",".join(MATCH_FIELDS)})
                body = wire.contact_body(person.fields, custom_ids, email, current)
                answer = http.json("PUT", f"contact/{person.crm_id}/", json=body)
                return self._written(person, answer, found, email, created=False)
            if current is not None:
                body = wire.contact_body(person.fields, custom_ids, email, current)
                answer = http.json("PUT", f"contact/{current['id']}/", json=body)
                return self._written(person, answer, found, email, created=False)
            contact = wire.contact_body(person.fields, custom_ids, email, None)
            lead = http.json("POST", "lead/", json=wire.lead_body(person.fields, contact, email)) or {}
            made = next(
                (
                    c
                    for c in lead.get("contacts") or []
                    if any(str(e.get("email") or "").lower() == email for e in c.get("emails") or [])
                ),
                (lead.get("contacts") or [None])[0],
            )
            if not made:
                raise RecordError("Close created the lead but answered without its contact", code="no_contact")
            return self._written(person, made, found, email, created=True)
        except RecordError as error:
            if error.field.startswith("custom."):
                self.fields.forget("contact")  # the field may be gone or changed in Close
            raise

    @staticmethod
    def _written(person: PersonInput, answer: Any, found: dict, email: str, *, created: bool) -> WriteOutcome:
        contact = dict(answer or {})
        if email and contact.get("id"):
            found[email] = contact  # the next input of this address updates it
        return WriteOutcome(person.key, crm_id=str(contact.get("id") or person.crm_id or ""), created=created)

    @staticmethod
    def failed(person: PersonInput, error: RecordError) -> WriteOutcome:
        return WriteOutcome(person.key, crm_id=None, error=error)


def check_kind(object_kind: str) -> None:
    if object_kind != CONTACT:
        raise ConfigurationError(
            f"Close people are contacts (a Close lead is the company), not {object_kind}s", code="not_a_person"
        )


def no_email(person: PersonInput) -> WriteOutcome:
    return WriteOutcome(
        person.key,
        error=RecordError("no e-mail address to find or create the contact by", code="no_email", field="email"),
    )
