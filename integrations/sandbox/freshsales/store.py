"""The records of one Freshsales account in memory: contacts, notes, tasks, sales activities, deals,
their field definitions (standard and ``cf_…`` custom fields) and the account's users and types.

Shapes follow crm-reference §7: integer ids, ``updated_at``/``created_at`` as ISO 8601 with an
offset (seconds precision), custom field values inside a ``custom_field`` object, contacts with
an ``emails`` list of ``{id, value, is_primary, label}`` and the primary address in ``email``.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

RESOURCES = ("contacts", "notes", "tasks", "sales_activities", "deals")
SINGULAR = {
    "contacts": "contact",
    "notes": "note",
    "tasks": "task",
    "sales_activities": "sales_activity",
    "deals": "deal",
}

# Standard contact fields as GET /settings/contacts/fields lists them (a subset of Freshsales').
CONTACT_FIELDS: tuple[dict[str, Any], ...] = (
    {"name": "first_name", "label": "First name", "type": "text"},
    {"name": "last_name", "label": "Last name", "type": "text"},
    {"name": "emails", "label": "Emails", "type": "email"},
    {"name": "job_title", "label": "Job title", "type": "text"},
    {"name": "work_number", "label": "Work", "type": "phone_number"},
    {"name": "mobile_number", "label": "Mobile", "type": "phone_number"},
    {"name": "address", "label": "Address", "type": "textarea"},
    {"name": "city", "label": "City", "type": "text"},
    {"name": "state", "label": "State", "type": "text"},
    {"name": "zipcode", "label": "Zipcode", "type": "text"},
    {"name": "country", "label": "Country", "type": "text"},
    {"name": "linkedin", "label": "LinkedIn", "type": "text"},
    {"name": "medium", "label": "Medium", "type": "text"},
    {"name": "keyword", "label": "Keyword", "type": "text"},
    {"name": "owner_id", "label": "Sales owner", "type": "dropdown"},
    {"name": "lifecycle_stage_id", "label": "Lifecycle stage", "type": "dropdown"},
    {"name": "do_not_disturb", "label": "Do not disturb", "type": "checkbox"},
    {"name": "subscription_status", "label": "Subscription status", "type": "dropdown"},
    {"name": "created_at", "label": "Created at", "type": "date_time", "read_only": True},
    {"name": "updated_at", "label": "Updated at", "type": "date_time", "read_only": True},
)
DEAL_FIELDS: tuple[dict[str, Any], ...] = (
    {"name": "name", "label": "Name", "type": "text", "required": True},
    {"name": "amount", "label": "Deal value", "type": "number"},
    {"name": "currency_id", "label": "Currency", "type": "dropdown"},
    {"name": "deal_stage_id", "label": "Deal stage", "type": "dropdown"},
    {"name": "expected_close", "label": "Expected close date", "type": "date"},
    {"name": "owner_id", "label": "Sales owner", "type": "dropdown"},
    {"name": "updated_at", "label": "Updated at", "type": "date_time", "read_only": True},
)
DEAL_STAGES = ("New", "Demo scheduled", "Negotiation", "Won", "Lost")
SALES_ACTIVITY_TYPES = ("Call", "Meeting", "Demo")  # the sandbox's defaults (the real list is UNVERIFIED)


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).replace(microsecond=0).isoformat()


@dataclass
class User:
    id: int
    display_name: str
    email: str


@dataclass
class Store:
    clock: Callable[[], dt.datetime]
    records: dict[str, dict[int, dict[str, Any]]] = field(default_factory=lambda: {r: {} for r in RESOURCES})
    # Field definitions by base model ("contacts", "deals"), standard first, then custom.
    fields: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    users: list[User] = field(default_factory=list)
    activity_types: list[dict[str, Any]] = field(default_factory=list)
    deal_stages: list[dict[str, Any]] = field(default_factory=list)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(16000000001))

    def __post_init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.records = {r: {} for r in RESOURCES}
        self._ids = itertools.count(16000000001)
        self.fields = {
            "contacts": [self._standard(f, "Contact") for f in CONTACT_FIELDS],
            "deals": [self._standard(f, "Deal") for f in DEAL_FIELDS],
        }
        self.activity_types = [
            {"id": self.next_id(), "name": name, "internal_name": name.lower(), "is_default": i == 0, "position": i}
            for i, name in enumerate(SALES_ACTIVITY_TYPES)
        ]
        self.deal_stages = [
            {"id": self.next_id(), "name": name, "position": i, "forecast_type": "Open"}
            for i, name in enumerate(DEAL_STAGES)
        ]

    def next_id(self) -> int:
        return next(self._ids)

    def now(self) -> str:
        return iso(self.clock())

    def _standard(self, definition: dict[str, Any], base_model: str) -> dict[str, Any]:
        return {
            "id": f"std-{base_model.lower()}-{definition['name']}",
            "name": definition["name"],
            "label": definition["label"],
            "type": definition["type"],
            "base_model": base_model,
            "required": bool(definition.get("required")),
            "read_only": bool(definition.get("read_only")),
            "default": True,
            "choices": [],
        }

    def add_custom_field(
        self,
        model: str,
        label: str,
        field_type: str = "text",
        *,
        choices: tuple[str, ...] = (),
        unique: bool = False,
        required: bool = False,
        name: str | None = None,
    ) -> dict[str, Any]:
        """A ``cf_<label slug>`` field on ``model`` ("contacts" or "deals"), as an admin adds one."""
        slug = "".join(ch if ch.isalnum() else "_" for ch in label.strip().lower()).strip("_")
        definition = {
            "id": str(self.next_id()),
            "name": name or f"cf_{slug}",
            "label": label,
            "type": field_type,
            "base_model": "Contact" if model == "contacts" else "Deal",
            "required": required,
            "read_only": False,
            "default": False,
            "unique": unique,
            "choices": [{"id": self.next_id(), "value": value} for value in choices],
        }
        self.fields[model].append(definition)
        return definition

    def custom(self, model: str) -> dict[str, dict[str, Any]]:
        return {f["name"]: f for f in self.fields[model] if not f["default"]}

    def user(self, user_id: Any) -> User | None:
        return next((u for u in self.users if str(u.id) == str(user_id)), None)
