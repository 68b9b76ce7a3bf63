"""Creating or updating People and Leads without duplicates (connector idempotency contract).

Per person (crm-reference §6.2):

1. A stored CRM id: ``PUT /people/{id}`` (a changed e-mail updates the same person); a second
   ``PUT`` only when a list field must change (our e-mail, phone or website not yet first). 404 is
   a ``NotFound`` outcome, so the engine matches that person by e-mail again.
2. Otherwise by e-mail: ``POST /people/fetch_by_email`` (People's unique key), then ``PUT`` the
   person found — or ``POST /people`` when none. Two writers racing to create one address: the
   loser's create is refused (422, e-mail taken), so it fetches again and updates instead.
3. Leads share no unique key: ``POST /leads/search`` by e-mail picks the oldest lead with that
   address, else a lead is created. Two writers racing on a new lead address can make two leads;
   the engine never runs two flushes of one person at once, so that needs a second writer.

Inputs that share a stored id or an e-mail are written one after another, never at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from integrations.connector import CONTACT, LEAD, CrmRecord, PersonInput, WriteOutcome
from integrations.errors import ConfigurationError, NotFound, RecordError
from integrations.http import CrmHttp
from integrations.providers.copper import wire
from integrations.providers.copper.failures import is_duplicate_email
from integrations.providers.copper.records import PersonWrite, create_body, flatten, person_write
from integrations.providers.copper.schema import CustomFields

if TYPE_CHECKING:
    from integrations.providers.copper.connector import CopperConnector


def normal_email(email: str | None) -> str:
    return (email or "").strip().lower()


def record_id(crm_id: str | None) -> int | None:
    """Copper ids are integers; anything else cannot be a record of this account."""
    text = str(crm_id or "").strip()
    return int(text) if text.isdigit() else None


def fetch_by_email(http: CrmHttp, email: str) -> dict[str, Any] | None:
    """The person with this address (any of their e-mails), or None."""
    try:
        return http.json("POST", "/people/fetch_by_email", json={"email": email})
    except NotFound:
        return None


def oldest_lead(http: CrmHttp, email: str) -> dict[str, Any] | None:
    found = http.json(
        "POST",
        "/leads/search",
        json={"emails": [email], "sort_by": "date_created", "sort_direction": "asc", "page_size": 1},
    )
    return found[0] if found else None


def find(http: CrmHttp, object_kind: str, email: str) -> dict[str, Any] | None:
    return fetch_by_email(http, email) if object_kind == CONTACT else oldest_lead(http, email)


class PeopleWriter:
    def __init__(self, connector: CopperConnector, object_kind: str) -> None:
        self.connector = connector
        self.kind = object_kind
        self.resource = wire.resource_for(object_kind)

    def upsert(self, inputs: Sequence[PersonInput]) -> list[WriteOutcome]:
        outcomes: dict[int, WriteOutcome] = {}
        groups: dict[str, list[int]] = {}
        for index, person in enumerate(inputs):
            if person.crm_id:
                groups.setdefault(f"id:{person.crm_id}", []).append(index)
            elif normal_email(person.email):
                groups.setdefault(f"email:{normal_email(person.email)}", []).append(index)
            else:
                error = RecordError("no e-mail address to find or create the person by", code="no_email", field="email")
                outcomes[index] = WriteOutcome(person.key, error=error)
        # The definitions cost a call: read them only when a custom field is written.
        needed = any(_has_custom(p.fields) for p in inputs)
        custom = self.connector.custom_fields() if needed else CustomFields(())

        def work(http: CrmHttp, indexes: list[int]) -> list[tuple[int, WriteOutcome]]:
            return [(i, self._one(http, inputs[i], custom)) for i in indexes]

        ordered = list(groups.values())
        for indexes, result in zip(ordered, self.connector.parallel(ordered, work), strict=True):
            if isinstance(result, RecordError):
                outcomes.update((i, WriteOutcome(inputs[i].key, error=result)) for i in indexes)
            else:
                outcomes.update(result)
        return [outcomes[i] for i in range(len(inputs))]

    def _write(self, person: PersonInput, custom: CustomFields, *, creating: bool) -> PersonWrite:
        return person_write(self.kind, person.fields, normal_email(person.email), custom, creating=creating)

    def _one(self, http: CrmHttp, person: PersonInput, custom: CustomFields) -> WriteOutcome:
        try:
            if person.crm_id:
                return WriteOutcome(person.key, crm_id=self.update_by_id(http, person.crm_id, person, custom))
            return self._by_email(http, person, custom)
        except RecordError as error:  # NotFound included: a stale stored id
            return WriteOutcome(person.key, error=error)

    def update_by_id(self, http: CrmHttp, crm_id: str, person: PersonInput, custom: CustomFields) -> str:
        number = record_id(crm_id)
        if number is None:
            raise NotFound(f"{crm_id!r} is not a Copper id", code="bad_id")
        write = self._write(person, custom, creating=False)
        path = f"/{self.resource}/{number}"
        record = http.json("PUT", path, json=write.body) if write.body else http.json("GET", path)
        lists = write.merged_lists(record or {})
        if lists:
            http.json("PUT", path, json=lists)
        return str(number)

    def _by_email(self, http: CrmHttp, person: PersonInput, custom: CustomFields) -> WriteOutcome:
        email = normal_email(person.email)
        existing = find(http, self.kind, email)
        if existing is not None:
            return WriteOutcome(person.key, crm_id=self._update_found(http, existing, person, custom))
        try:
            created = http.json(
                "POST", f"/{self.resource}", json=create_body(self._write(person, custom, creating=True))
            )
        except RecordError as error:
            if self.kind != CONTACT or not is_duplicate_email(error):
                raise
            existing = fetch_by_email(http, email)  # created meanwhile by another writer
            if existing is None:
                raise
            return WriteOutcome(person.key, crm_id=self._update_found(http, existing, person, custom))
        return WriteOutcome(person.key, crm_id=str(created["id"]), created=True)

    def _update_found(
        self, http: CrmHttp, existing: Mapping[str, Any], person: PersonInput, custom: CustomFields
    ) -> str:
        write = self._write(person, custom, creating=False)
        body = {**write.body, **write.merged_lists(existing)}
        if body:
            http.json("PUT", f"/{self.resource}/{existing['id']}", json=body)
        return str(existing["id"])


def find_by_email(connector: CopperConnector, object_kind: str, emails: Sequence[str]) -> dict[str, CrmRecord]:
    """People by ``fetch_by_email``, one call per address (Copper has no batch lookup), a few at
    once; leads by one ``leads/search`` per 50 addresses, the oldest lead per address."""
    unique = list(dict.fromkeys(normal_email(e) for e in emails if normal_email(e)))
    custom = connector.custom_fields()
    found: dict[str, CrmRecord] = {}
    if object_kind == CONTACT:
        results = connector.parallel(unique, fetch_by_email)
        for email, record in zip(unique, results, strict=True):
            if isinstance(record, Mapping):
                found[email] = flatten(CONTACT, record, custom)
        return found
    if object_kind != LEAD:
        raise ConfigurationError(
            f"Copper finds only people and leads by e-mail, not {object_kind}", code="no_email_key"
        )
    for start in range(0, len(unique), 50):
        chunk = set(unique[start : start + 50])
        for lead in _all_pages(connector.http, "/leads/search", {"emails": sorted(chunk), "sort_by": "date_created"}):
            email = normal_email((lead.get("email") or {}).get("email"))
            if email in chunk and email not in found:
                found[email] = flatten(LEAD, lead, custom)
    return found


def _all_pages(http: CrmHttp, path: str, body: dict[str, Any], page_size: int = 200) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    page = 1
    while True:
        answer = http.json("POST", path, json={**body, "page_size": page_size, "page_number": page}) or []
        rows.extend(answer)
        if len(answer) < page_size:
            return rows
        page += 1


def _has_custom(fields: Mapping[str, Any]) -> bool:
    return any(str(name).startswith("cf_") for name in fields)
