"""The records of one Copper account, kept in memory (crm-reference §6.2 to §6.4).

Ids are integers (§11.10) with one sequence per resource; times are Unix **seconds** (§6.2).
People keep an index of every e-mail they carry, because e-mail is a unique key for People
(a second person with the same address is refused, §6.2); leads may share addresses.
"""

from __future__ import annotations

import copy
import itertools
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

# Each resource's first id: far apart, so an id used with the wrong resource is never found.
ID_BASES = {
    "people": 11_000_001,
    "leads": 21_000_001,
    "opportunities": 31_000_001,
    "tasks": 41_000_001,
    "activities": 51_000_001,
    "webhooks": 61_001,
    "custom_field_definitions": 301_001,
    "users": 800_001,
}
RECORD_RESOURCES = ("people", "leads", "opportunities", "tasks", "activities")
# The entity names Copper uses in ``parent``/``related_resource``/``available_on``/webhooks.
ENTITY_OF = {"people": "person", "leads": "lead", "opportunities": "opportunity", "tasks": "task"}
RESOURCE_OF = {entity: resource for resource, entity in ENTITY_OF.items()}


@dataclass
class User:
    id: int
    name: str
    email: str
    admin: bool = True  # admins may create custom field definitions


def default_activity_types() -> dict[str, list[dict[str, Any]]]:
    """``GET /activity_types``: user types (Note is id 0 in Copper) and system types."""
    user = [
        {"id": 0, "category": "user", "name": "Note", "is_disabled": False, "count_as_interaction": False},
        {"id": 190_711, "category": "user", "name": "Phone Call", "is_disabled": False, "count_as_interaction": True},
        {"id": 190_712, "category": "user", "name": "Meeting", "is_disabled": False, "count_as_interaction": True},
    ]
    system = [
        {"id": 1, "category": "system", "name": "Property Changed", "is_disabled": False},
        {"id": 3, "category": "system", "name": "Pipeline Stage Changed", "is_disabled": False},
        {"id": 6, "category": "system", "name": "Email", "is_disabled": False},
    ]
    return {"user": user, "system": system}


def default_pipelines() -> list[dict[str, Any]]:
    return [
        {
            "id": 213_214,
            "name": "Sales",
            "stages": [
                {"id": 987_790, "name": "Qualified", "win_probability": 10},
                {"id": 987_791, "name": "Follow-up", "win_probability": 25},
                {"id": 987_792, "name": "Presentation", "win_probability": 50},
                {"id": 987_793, "name": "Contract Sent", "win_probability": 75},
                {"id": 987_794, "name": "Negotiation", "win_probability": 90},
            ],
        }
    ]


class Store:
    """Records by resource and id, plus the account's settings (users, types, fields, pipelines)."""

    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        self.clock = clock or time.time
        self._ids = {name: itertools.count(base) for name, base in ID_BASES.items()}
        self.records: dict[str, dict[int, dict[str, Any]]] = {name: {} for name in RECORD_RESOURCES}
        self.deleted: dict[str, set[int]] = {name: set() for name in RECORD_RESOURCES}
        self.people_by_email: dict[str, int] = {}
        self.users: dict[int, User] = {}
        self.api_keys: dict[str, int] = {}
        self.definitions: dict[int, dict[str, Any]] = {}
        # Sandbox-only test aid: definitions whose values must differ between records (Copper has
        # no unique custom fields; the rule stands in for any record Copper refuses).
        self.unique_definitions: set[int] = set()
        self.activity_types = default_activity_types()
        self.pipelines = default_pipelines()
        self.webhooks: dict[int, dict[str, Any]] = {}

    # -- basics --------------------------------------------------------------------------------------
    def now(self) -> int:
        return int(self.clock())

    def new_id(self, resource: str) -> int:
        return next(self._ids[resource])

    def add_user(self, name: str, email: str, *, admin: bool = True) -> User:
        user = User(self.new_id("users"), name, email.strip().lower(), admin)
        self.users[user.id] = user
        return user

    def adopt_users(self, other: Store) -> None:
        """Keep another store's users and API keys (a reset account keeps who may call it)."""
        self.users, self.api_keys = other.users, other.api_keys
        self._ids["users"] = itertools.count(max(self.users, default=ID_BASES["users"] - 1) + 1)

    def user_by_email(self, email: str) -> User | None:
        wanted = email.strip().lower()
        return next((u for u in self.users.values() if u.email == wanted), None)

    # -- records -------------------------------------------------------------------------------------
    def get(self, resource: str, record_id: Any) -> dict[str, Any] | None:
        try:
            key = int(record_id)
        except (TypeError, ValueError):
            return None
        return self.records[resource].get(key)

    def put(self, resource: str, record: dict[str, Any]) -> dict[str, Any]:
        self.records[resource][record["id"]] = record
        if resource == "people":
            self.index_emails(record)
        return record

    def remove(self, resource: str, record_id: int) -> None:
        record = self.records[resource].pop(record_id, None)
        self.deleted[resource].add(record_id)
        if record is not None and resource == "people":
            self.unindex_emails(record)

    def all(self, resource: str) -> list[dict[str, Any]]:
        return [self.records[resource][k] for k in sorted(self.records[resource])]

    def copy(self, record: dict[str, Any]) -> dict[str, Any]:
        return copy.deepcopy(record)

    # -- the People e-mail key -----------------------------------------------------------------------
    @staticmethod
    def emails_of(record: dict[str, Any]) -> list[str]:
        return [str(e.get("email") or "").strip().lower() for e in record.get("emails") or [] if e.get("email")]

    def index_emails(self, record: dict[str, Any]) -> None:
        for email in self.emails_of(record):
            self.people_by_email[email] = record["id"]

    def unindex_emails(self, record: dict[str, Any]) -> None:
        for email in self.emails_of(record):
            if self.people_by_email.get(email) == record["id"]:
                del self.people_by_email[email]

    def email_owner(self, email: str) -> int | None:
        return self.people_by_email.get(email.strip().lower())

    def emails_taken(self, emails: Iterable[str], own_id: int | None) -> list[str]:
        """Addresses already on another person (People's unique key)."""
        return [e for e in emails if (owner := self.email_owner(e)) is not None and owner != own_id]
