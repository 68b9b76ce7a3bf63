"""People and leads: create, read, partial update, delete, lookup by e-mail and search
(crm-reference §6.2).

- ``POST /people`` needs ``name``; ``PUT /people/{id}`` changes only the fields sent (``null``
  clears); ``DELETE`` answers ``{"id", "is_deleted": true}``; all answer 200 with the record.
- E-mail is unique on People: a create or update that would give a second person an address
  already in use is refused with 422. ``POST /people/fetch_by_email`` answers the person, or 404.
- Leads carry one ``email`` object (not a list) and may share addresses; they are found with
  ``POST /leads/search`` and its ``emails`` filter.

When only ``name`` is sent it is split into ``first_name``/``last_name``; when only the parts
are sent on an update, ``name`` is rebuilt from them (Copper's UI behaves so; the API's exact
rule is UNVERIFIED).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from integrations.sandbox.copper import fields as custom
from integrations.sandbox.copper.errors import invalid, not_found
from integrations.sandbox.copper.search import SearchSpec, search
from integrations.sandbox.copper.store import ENTITY_OF, Store
from integrations.sandbox.core import Request, Response

if TYPE_CHECKING:
    from integrations.sandbox.copper.app import CopperEmulator

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
EMAIL_CATEGORIES = ("work", "personal", "other")
PHONE_CATEGORIES = ("work", "mobile", "home", "other")
URL_CATEGORIES = ("work", "personal", "other")
ADDRESS_KEYS = ("street", "city", "state", "postal_code", "country")
LEAD_STATUSES = {"New": 208_231, "Unqualified": 208_232, "Contacted": 208_233, "Qualified": 208_234}
TEXT_KEYS = ("name", "first_name", "last_name", "prefix", "middle_name", "suffix", "title", "company_name", "details")
PERSON_KEYS = (*TEXT_KEYS, "company_id", "contact_type_id", "assignee_id", "address", "tags", "emails")
PERSON_KEYS += ("phone_numbers", "socials", "websites")
LEAD_KEYS = (*TEXT_KEYS, "assignee_id", "address", "tags", "email", "phone_numbers", "socials", "websites")
LEAD_KEYS += ("status", "customer_source_id", "monetary_value", "monetary_unit")


def _modified(record: Mapping[str, Any]) -> Any:
    return record.get("date_modified")


PEOPLE_SEARCH = SearchSpec(
    sort_keys={
        "name": lambda r: r.get("name"),
        "first_name": lambda r: r.get("first_name"),
        "last_name": lambda r: r.get("last_name"),
        "title": lambda r: r.get("title"),
        "email": lambda r: (Store.emails_of(r) or [None])[0],
        "phone": lambda r: ((r.get("phone_numbers") or [{}])[0]).get("number"),
        "date_modified": _modified,
        "date_created": lambda r: r.get("date_created"),
        "city": lambda r: (r.get("address") or {}).get("city"),
        "state": lambda r: (r.get("address") or {}).get("state"),
        "country": lambda r: (r.get("address") or {}).get("country"),
        "zip": lambda r: (r.get("address") or {}).get("postal_code"),
    },
    default_sort="name",
    filters={
        "emails": lambda r, w: bool(set(Store.emails_of(r)) & {str(e).strip().lower() for e in _listed(w)}),
        "phone_number": lambda r, w: any(str(w) in (p.get("number") or "") for p in r.get("phone_numbers") or []),
        "company_ids": lambda r, w: r.get("company_id") in _listed(w),
        "contact_type_ids": lambda r, w: r.get("contact_type_id") in _listed(w),
    },
)
LEAD_SEARCH = SearchSpec(
    sort_keys={
        "name": lambda r: r.get("name"),
        "email": lambda r: (r.get("email") or {}).get("email"),
        "date_modified": _modified,
        "date_created": lambda r: r.get("date_created"),
        "status": lambda r: r.get("status"),
    },
    default_sort="name",
    filters={
        "emails": lambda r, w: (
            str((r.get("email") or {}).get("email") or "").lower() in {str(e).strip().lower() for e in _listed(w)}
        ),
        "status_ids": lambda r, w: r.get("status_id") in _listed(w),
    },
)


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def render(store: Store, resource: str, record: Mapping[str, Any]) -> dict[str, Any]:
    """A record as the API answers it: internal keys dropped, custom fields listed."""
    answer = {k: store.copy(v) if isinstance(v, dict | list) else v for k, v in record.items() if k[0] != "_"}
    if resource in ENTITY_OF:
        answer["custom_fields"] = custom.render(store, ENTITY_OF[resource], record.get("_custom") or {})
    return answer


# -- validation ------------------------------------------------------------------------------------
def _text(key: str, value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise invalid(f"{key} must be text")


def _entries(key: str, value: Any, inner: str, categories: tuple[str, ...]) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise invalid(f"{key} must be a list of {{{inner}, category}} objects")
    entries = []
    for item in value:
        if not isinstance(item, Mapping) or not isinstance(item.get(inner), str) or not item[inner].strip():
            raise invalid(f"each of {key} needs a {inner}")
        category = item.get("category") or categories[0]
        if category not in categories:
            raise invalid(f"{key} category must be one of {', '.join(categories)}")
        text = item[inner].strip()
        if inner == "email" and not EMAIL.match(text):
            raise invalid(f"{text!r} is not a valid email address")
        entries.append({inner: text, "category": category})
    return entries


def _address(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping) or set(value) - set(ADDRESS_KEYS):
        raise invalid(f"address takes only {', '.join(ADDRESS_KEYS)}")
    return {key: _text(f"address.{key}", value.get(key)) for key in ADDRESS_KEYS}


def _set(store: Store, record: dict[str, Any], key: str, value: Any) -> None:
    if key in TEXT_KEYS:
        record[key] = _text(key, value)
    elif key == "emails":
        record[key] = _entries(key, value, "email", EMAIL_CATEGORIES)
    elif key == "email":
        entries = _entries(key, [value] if value is not None else None, "email", EMAIL_CATEGORIES)
        record[key] = entries[0] if entries else None
    elif key == "phone_numbers":
        record[key] = _entries(key, value, "number", PHONE_CATEGORIES)
    elif key in ("websites", "socials"):
        record[key] = _entries(key, value, "url", URL_CATEGORIES)
    elif key == "address":
        record[key] = _address(value)
    elif key == "tags":
        if value is not None and (not isinstance(value, list) or not all(isinstance(t, str) for t in value)):
            raise invalid("tags must be a list of text")
        record[key] = list(dict.fromkeys(value or []))
    elif key == "assignee_id":
        if value is not None and value not in store.users:
            raise invalid(f"assignee_id {value!r} is not a user of this account")
        record[key] = value
    elif key == "status":
        if value not in LEAD_STATUSES:
            raise invalid(f"status must be one of {', '.join(LEAD_STATUSES)}")
        record[key], record["status_id"] = value, LEAD_STATUSES[value]
    elif key == "monetary_value":
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise invalid("monetary_value must be a number")
        record[key] = value
    else:
        record[key] = value


def _names(record: dict[str, Any], body: Mapping[str, Any]) -> None:
    parts_sent = "first_name" in body or "last_name" in body
    if body.get("name") and not parts_sent:
        first, _, last = str(body["name"]).strip().partition(" ")
        record["first_name"], record["last_name"] = first or None, last.strip() or None
    elif parts_sent and "name" not in body:
        joined = " ".join(p for p in (record.get("first_name"), record.get("last_name")) if p)
        record["name"] = joined or record.get("name")


def apply_body(store: Store, resource: str, record: dict[str, Any], body: Any, allowed: tuple[str, ...]) -> None:
    """Write the fields ``body`` carries onto ``record`` (validated; unknown keys are ignored)."""
    if not isinstance(body, Mapping):
        raise invalid("the body must be a JSON object")
    for key in allowed:
        if key in body:
            _set(store, record, key, body[key])
    _names(record, body)
    if "custom_fields" in body:
        values = custom.validate_values(store, ENTITY_OF[resource], body["custom_fields"])
        record["_custom"] = {**(record.get("_custom") or {}), **values}
    if not str(record.get("name") or "").strip():
        raise invalid("name can't be blank")


class PeopleRoutes:
    """People and leads on the emulator (``app`` holds the store and the change log)."""

    def __init__(self, app: CopperEmulator) -> None:
        self.app = app

    @property
    def store(self) -> Store:
        return self.app.store

    def register(self, api: Any) -> None:
        api("POST", "people/fetch_by_email", self.fetch_by_email)
        api("POST", "people/search", lambda r: self.search(r, "people"))
        api("POST", "people", lambda r: self.create(r, "people"))
        api("GET", r"people/(?P<id>[^/]+)", lambda r: self.read(r, "people"))
        api("PUT", r"people/(?P<id>[^/]+)", lambda r: self.update(r, "people"))
        api("DELETE", r"people/(?P<id>[^/]+)", lambda r: self.delete(r, "people"))
        api("POST", "leads/search", lambda r: self.search(r, "leads"))
        api("POST", "leads", lambda r: self.create(r, "leads"))
        api("GET", r"leads/(?P<id>[^/]+)", lambda r: self.read(r, "leads"))
        api("PUT", r"leads/(?P<id>[^/]+)", lambda r: self.update(r, "leads"))
        api("DELETE", r"leads/(?P<id>[^/]+)", lambda r: self.delete(r, "leads"))

    # -- writes --------------------------------------------------------------------------------------
    def _check_unique(self, record: dict[str, Any], own_id: int | None) -> None:
        taken = self.store.emails_taken(Store.emails_of(record), own_id)
        if taken:
            raise invalid(f"Email {taken[0]} is already in use by another person")

    def new_record(self, resource: str, body: Any, *, user_id: int | None) -> dict[str, Any]:
        """Create a person or lead (used by the route and by the UI helpers of the emulator)."""
        if not isinstance(body, Mapping) or not str(body.get("name") or "").strip():
            raise invalid("name can't be blank")
        now = self.store.now()
        record: dict[str, Any] = {
            "id": 0,
            "name": None,
            "first_name": None,
            "last_name": None,
            "prefix": None,
            "middle_name": None,
            "suffix": None,
            "address": None,
            "assignee_id": None,
            "company_name": None,
            "details": None,
            "phone_numbers": [],
            "socials": [],
            "websites": [],
            "tags": [],
            "title": None,
            "date_created": now,
            "date_modified": now,
            "_custom": {},
        }
        if resource == "people":
            record.update(company_id=None, contact_type_id=None, emails=[], interaction_count=0)
            record["leads_converted_from"] = []
        else:
            record.update(email=None, status="New", status_id=LEAD_STATUSES["New"], customer_source_id=None)
            record.update(monetary_value=None, monetary_unit=None)
        apply_body(self.store, resource, record, body, PERSON_KEYS if resource == "people" else LEAD_KEYS)
        if resource == "people":
            self._check_unique(record, None)
        custom.check_unique(self.store, resource, None, record["_custom"])
        record["id"] = self.store.new_id(resource)
        self.store.put(resource, record)
        self.app.changed(resource, record["id"], "new", user_id=user_id)
        return record

    def change_record(self, resource: str, record: dict[str, Any], body: Any, *, user_id: int | None) -> None:
        updated = self.store.copy(record)
        apply_body(self.store, resource, updated, body, PERSON_KEYS if resource == "people" else LEAD_KEYS)
        if resource == "people":
            self._check_unique(updated, record["id"])
        custom.check_unique(self.store, resource, record["id"], updated.get("_custom") or {})
        attributes = {
            ("custom_fields" if key == "_custom" else key): [record.get(key), updated.get(key)]
            for key in updated
            if key != "date_modified" and updated.get(key) != record.get(key)
        }
        if not attributes:
            return
        updated["date_modified"] = self.store.now()
        if resource == "people":
            self.store.unindex_emails(record)
        record.clear()
        record.update(updated)
        self.store.put(resource, record)
        self.app.changed(resource, record["id"], "update", user_id=user_id, attributes=attributes)

    # -- routes --------------------------------------------------------------------------------------
    def _existing(self, resource: str, request: Request) -> dict[str, Any]:
        record = self.store.get(resource, request.params["id"])
        if record is None:
            raise not_found()
        return record

    def create(self, request: Request, resource: str) -> Response:
        record = self.new_record(resource, request.json(), user_id=self.app.user_of(request))
        return Response.json(render(self.store, resource, record))

    def read(self, request: Request, resource: str) -> Response:
        return Response.json(render(self.store, resource, self._existing(resource, request)))

    def update(self, request: Request, resource: str) -> Response:
        record = self._existing(resource, request)
        self.change_record(resource, record, request.json() or {}, user_id=self.app.user_of(request))
        return Response.json(render(self.store, resource, record))

    def delete(self, request: Request, resource: str) -> Response:
        record = self._existing(resource, request)
        self.store.remove(resource, record["id"])
        self.app.changed(resource, record["id"], "delete", user_id=self.app.user_of(request))
        return Response.json({"id": record["id"], "is_deleted": True})

    def fetch_by_email(self, request: Request) -> Response:
        body = request.json()
        if not isinstance(body, Mapping) or not isinstance(body.get("email"), str) or not body["email"].strip():
            raise invalid("email can't be blank")
        owner = self.store.email_owner(body["email"])
        if owner is None:
            raise not_found()
        return Response.json(render(self.store, "people", self.store.records["people"][owner]))

    def search(self, request: Request, resource: str) -> Response:
        spec = PEOPLE_SEARCH if resource == "people" else LEAD_SEARCH
        page, total = search(self.store.all(resource), request.json(), spec)
        return Response.json([render(self.store, resource, r) for r in page], headers={"X-PW-TOTAL": str(total)})
