"""Persons: matched by stored id, then by e-mail with v2 search, then created (crm-reference §3.2).

Pipedrive has no upsert and no batch endpoint for persons, so each person is:

- with a stored id: ``PATCH /api/v2/persons/{id}`` (1 call; a 404 is a NotFound outcome, so the
  engine matches by e-mail again);
- else ``GET /api/v2/persons/search?term=<e-mail>&fields=email&exact_match=true`` and then
  ``PATCH`` the match (2 calls) or ``POST /api/v2/persons`` (2 calls). Several persons can share an
  e-mail in Pipedrive; the oldest (lowest id) is the one we keep writing to.

E-mails and phones are arrays on a person, and a PATCH replaces the whole array: ours is added as
the primary value only when the person lacks it (one more PATCH, only when the e-mail or phone
changed), so what a salesperson added stays. A person's name is required on create: without a
mapped name the e-mail is the name.

A Lead connection files each person it creates (or first finds by e-mail) in the Leads Inbox: a
v1 lead attached to the person (``GET /v1/leads?person_id=`` then ``POST /v1/leads``). The link we
keep is the person's id — activities, notes and deals attach to persons — and a stored link never
makes a lead again, so a lead a salesperson converted or archived is not re-filed.

Inputs that name the same person (stored id or e-mail) run one after another; different people
run at once, ``WRITE_CONCURRENCY`` at a time (integrations.concurrency).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from integrations.concurrency import run_tasks
from integrations.connector import CrmRecord, PersonInput, WriteOutcome
from integrations.errors import NotFound, RateLimited, RecordError, RetryableError
from integrations.providers.pipedrive.fields import ORG_NAME, Catalog, readable
from integrations.providers.pipedrive.provider import PROVIDER
from integrations.providers.pipedrive.wire import V2, data_of, merged_contacts, parse_time, primary, values_of

WRITE_CONCURRENCY = PROVIDER.batch_sizes["write_concurrency"]

if TYPE_CHECKING:
    from integrations.http import CrmHttp
    from integrations.providers.pipedrive.v1 import V1


def normal_email(value: Any) -> str:
    return str(value or "").strip().lower()


def person_id(crm_id: str) -> int:
    try:
        return int(str(crm_id).strip())
    except ValueError:
        raise NotFound(f"“{crm_id}” is not a Pipedrive person id", code="bad_id") from None


class People:
    def __init__(self, http: CrmHttp, catalog: Catalog, v1: V1, token: str, *, leads: bool) -> None:
        self.http, self.catalog, self.v1, self.leads = http, catalog, v1, leads
        self.orgs = Organizations(http, token)

    # -- reading -----------------------------------------------------------------------------------
    def search(self, email: str) -> list[Mapping[str, Any]]:
        """Search items of the persons holding exactly this e-mail, oldest first."""
        answer = self.http.json(
            "GET",
            f"{V2}/persons/search",
            params={"term": email, "fields": "email", "exact_match": "true", "limit": 500},
        )
        items = [
            entry.get("item") for entry in (data_of(answer) or {}).get("items") or [] if isinstance(entry, Mapping)
        ]
        wanted = normal_email(email)
        exact = [
            i
            for i in items
            if isinstance(i, Mapping) and any(normal_email(e) == wanted for e in values_of(i.get("emails")))
        ]
        return sorted(exact, key=lambda i: int(i.get("id") or 0))

    def record_of_item(self, item: Mapping[str, Any]) -> CrmRecord:
        fields = {
            "id": item.get("id"),
            "name": item.get("name"),
            "emails": primary(item.get("emails")),
            "phones": primary(item.get("phones")),
            "owner_id": (item.get("owner") or {}).get("id"),
        }
        return CrmRecord(crm_id=str(item["id"]), fields=fields)

    def get(self, ident: int) -> dict[str, Any]:
        record = data_of(self.http.json("GET", f"{V2}/persons/{ident}")) or {}
        if record.get("is_deleted"):
            raise NotFound(f"Pipedrive person {ident} was deleted", status=404, code="deleted")
        return record

    def record(self, ident: int) -> CrmRecord:
        raw = self.get(ident)
        return CrmRecord(str(raw["id"]), readable(raw, self.catalog.defs()), parse_time(raw.get("update_time")))

    # -- writing ---------------------------------------------------------------------------------------
    def upsert(self, inputs: Sequence[PersonInput]) -> list[WriteOutcome]:
        groups: dict[tuple[str, str], list[int]] = {}
        for index, person in enumerate(inputs):
            ident = ("id", str(person.crm_id)) if person.crm_id else ("email", normal_email(person.email))
            groups.setdefault(ident, []).append(index)

        def task(indices: list[int]):
            return lambda: [(i, self._one(inputs[i])) for i in indices]

        outcomes: dict[int, WriteOutcome] = {}
        tasks = [task(indices) for indices in groups.values()]
        for done in run_tasks(tasks, main=self.http, workers=WRITE_CONCURRENCY, thread_name="pipedrive"):
            outcomes.update(done or [])
        return [outcomes[i] for i in range(len(inputs))]

    def _one(self, person: PersonInput) -> WriteOutcome:
        try:
            return self._write(person)
        except RateLimited:
            raise
        except (RecordError, RetryableError) as exc:  # this person's failure; the batch goes on
            return WriteOutcome(person.key, error=exc)

    def _write(self, person: PersonInput) -> WriteOutcome:
        fields = dict(person.fields)
        org_name = fields.pop(ORG_NAME, None)
        phone = str(fields.pop("phones", "") or "").strip()
        mapped_email = fields.pop("emails", None)
        email = normal_email(person.email) or normal_email(mapped_email)
        body = self.catalog.body(fields)
        if org_name and str(org_name).strip():
            body["org_id"] = self.orgs.resolve(str(org_name))
        if person.crm_id:
            ident = person_id(person.crm_id)
            self._update(ident, body, email, phone)
            return WriteOutcome(person.key, crm_id=str(ident))
        if not email:
            return WriteOutcome(
                person.key,
                error=RecordError("no e-mail address to find or create the person by", code="no_email", field="emails"),
            )
        found = self.search(email)
        if found:
            ident = int(found[0]["id"])
            record = self._update(ident, body, email, phone)
            if self.leads:
                self._file_lead(ident, str(record.get("name") or email), check=True)
            return WriteOutcome(person.key, crm_id=str(ident))
        if not str(body.get("name") or "").strip():
            body["name"] = email
        body["emails"] = [{"value": email, "primary": True, "label": "work"}]
        if phone:
            body["phones"] = [{"value": phone, "primary": True, "label": "work"}]
        created = data_of(self.http.json("POST", f"{V2}/persons", json=body)) or {}
        if not created.get("id"):
            raise RetryableError("Pipedrive answered the new person without its id", code="no_result")
        if self.leads:
            self._file_lead(int(created["id"]), str(body["name"]), check=False)
        return WriteOutcome(person.key, crm_id=str(created["id"]), created=True)

    def _update(self, ident: int, body: dict[str, Any], email: str, phone: str) -> dict[str, Any]:
        if body:
            record = data_of(self.http.json("PATCH", f"{V2}/persons/{ident}", json=body)) or {}
        else:
            record = self.get(ident)
        extra = {}
        for kind, ours in (("emails", email), ("phones", phone)):
            merged = merged_contacts(kind, record.get(kind), ours) if ours else None
            if merged is not None:
                extra[kind] = merged
        if extra:
            record = data_of(self.http.json("PATCH", f"{V2}/persons/{ident}", json=extra)) or record
        return record

    def _file_lead(self, ident: int, title: str, *, check: bool) -> None:
        if check and self.v1.leads_of_person(ident):
            return
        self.v1.add_lead({"title": title[:255], "person_id": ident})

    def set_fields(self, crm_id: str, fields: Mapping[str, Any]) -> None:
        fields = dict(fields)
        org_name = fields.pop(ORG_NAME, None)
        phone = str(fields.pop("phones", "") or "").strip()
        email = normal_email(fields.pop("emails", None))
        body = self.catalog.body(fields)
        if org_name and str(org_name).strip():
            body["org_id"] = self.orgs.resolve(str(org_name))
        self._update(person_id(crm_id), body, email, phone)


# Organizations found or created by name, per process, API host and token (names fold case).
_orgs: dict[tuple[str, str, str], int] = {}
_org_locks: dict[tuple[str, str, str], threading.Lock] = {}
_orgs_lock = threading.Lock()


def forget_organizations() -> None:
    with _orgs_lock:
        _orgs.clear()
        _org_locks.clear()


class Organizations:
    """``org_name`` → an organization id: v2 search by exact name (oldest match), else create.

    Names are resolved once per process and serialised per name, so a batch of people at one
    company makes one search (and at most one create). Two processes meeting a new company at the
    same moment can each create it — Pipedrive has no unique key on organization names; the next
    search settles on the oldest.
    """

    def __init__(self, http: CrmHttp, token: str) -> None:
        self.http = http
        self._prefix = (http.base_url, hashlib.sha256(token.encode()).hexdigest()[:16])

    def resolve(self, name: str) -> int:
        key = (*self._prefix, name.strip().casefold())
        with _orgs_lock:
            if key in _orgs:
                return _orgs[key]
            lock = _org_locks.setdefault(key, threading.Lock())
        with lock:
            with _orgs_lock:
                if key in _orgs:
                    return _orgs[key]
            answer = self.http.json(
                "GET",
                f"{V2}/organizations/search",
                params={"term": name.strip(), "fields": "name", "exact_match": "true", "limit": 100},
            )
            items = [e.get("item") or {} for e in (data_of(answer) or {}).get("items") or [] if isinstance(e, Mapping)]
            same = sorted(
                int(i["id"]) for i in items if i.get("id") and str(i.get("name") or "").strip().casefold() == key[2]
            )
            if same:
                ident = same[0]
            else:
                created = data_of(self.http.json("POST", f"{V2}/organizations", json={"name": name.strip()})) or {}
                ident = int(created["id"])
            with _orgs_lock:
                _orgs[key] = ident
            return ident
