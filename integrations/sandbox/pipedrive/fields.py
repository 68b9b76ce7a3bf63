"""Field definitions of the sandbox company: system fields per entity and custom fields by hash.

The shape is the v2 fields API's (crm-reference §3.3; client-nodejs v2 models
``GetPersonFields200ResponseDataInner``): ``field_name``, ``field_code`` (a 40-character hex hash
for custom fields), ``field_type``, ``is_custom_field``, ``is_optional_response_field`` and
``options`` (``[{id, label}]`` for ``enum``/``set``, else null). Custom fields can be created on
persons, deals and organizations (``POST /api/v2/{entity}Fields``); activity fields are read-only
through the API — the SDK has no create endpoint for them (CHANGELOG 30.7.0).
"""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

from integrations.sandbox.pipedrive.wire import ApiError, field_hash, parse_time

ENTITIES = ("person", "deal", "activity", "organization")
# The URL segment of each entity's fields endpoint.
FIELD_ROUTES = {
    "personFields": "person",
    "dealFields": "deal",
    "activityFields": "activity",
    "organizationFields": "organization",
}
CREATABLE = ("person", "deal", "organization")
# Field types a custom field may be created with (AddPersonFieldRequest enum, §3.3).
CREATE_TYPES = (
    "varchar",
    "text",
    "double",
    "phone",
    "date",
    "daterange",
    "time",
    "timerange",
    "set",
    "enum",
    "varchar_auto",
    "address",
    "monetary",
    "org",
    "people",
    "user",
)

_SYSTEM: dict[str, list[tuple[str, str, str]]] = {
    "person": [
        ("id", "ID", "int"),
        ("name", "Name", "varchar"),
        ("first_name", "First name", "varchar"),
        ("last_name", "Last name", "varchar"),
        ("emails", "Email", "varchar"),
        ("phones", "Phone", "phone"),
        ("org_id", "Organization", "org"),
        ("owner_id", "Owner", "user"),
        ("label_ids", "Labels", "set"),
        ("marketing_status", "Marketing status", "enum"),
        ("visible_to", "Visible to", "visible_to"),
        ("add_time", "Person created", "date"),
        ("update_time", "Update time", "date"),
    ],
    "deal": [
        ("id", "ID", "int"),
        ("title", "Title", "varchar"),
        ("value", "Value", "monetary"),
        ("currency", "Currency", "varchar_options"),
        ("person_id", "Contact person", "people"),
        ("org_id", "Organization", "org"),
        ("owner_id", "Owner", "user"),
        ("pipeline_id", "Pipeline", "int"),
        ("stage_id", "Stage", "stage"),
        ("status", "Status", "status"),
        ("expected_close_date", "Expected close date", "date"),
        ("probability", "Probability", "double"),
        ("lost_reason", "Lost reason", "varchar"),
        ("add_time", "Deal created", "date"),
        ("update_time", "Update time", "date"),
        ("won_time", "Won time", "date"),
    ],
    "activity": [
        ("id", "ID", "int"),
        ("subject", "Subject", "varchar"),
        ("type", "Type", "varchar_options"),
        ("due_date", "Due date", "date"),
        ("due_time", "Due time", "time"),
        ("duration", "Duration", "time"),
        ("done", "Done", "boolean"),
        ("busy", "Free/busy", "boolean"),
        ("person_id", "Contact person", "people"),
        ("deal_id", "Deal", "deal"),
        ("org_id", "Organization", "org"),
        ("lead_id", "Lead", "lead"),
        ("owner_id", "Assigned to user", "user"),
        ("note", "Note", "text"),
        ("public_description", "Description", "text"),
        ("add_time", "Add time", "date"),
        ("update_time", "Update time", "date"),
    ],
    "organization": [
        ("id", "ID", "int"),
        ("name", "Name", "varchar"),
        ("owner_id", "Owner", "user"),
        ("address", "Address", "address"),
        ("label_ids", "Labels", "set"),
        ("visible_to", "Visible to", "visible_to"),
        ("add_time", "Organization created", "date"),
        ("update_time", "Update time", "date"),
    ],
}


# System option lists whose API values are the labels themselves (a person's marketing status,
# AddPersonRequest.marketing_status; how v2 lists these options is UNVERIFIED).
_SYSTEM_OPTIONS = {"marketing_status": ("no_consent", "unsubscribed", "subscribed", "archived")}


def default_fields() -> dict[str, list[dict[str, Any]]]:
    return {
        entity: [
            {
                "field_name": label,
                "field_code": code,
                "field_type": kind,
                "is_custom_field": False,
                "is_optional_response_field": False,
                "options": [{"id": n, "label": value} for n, value in enumerate(_SYSTEM_OPTIONS.get(code, ()), 1)]
                if kind in ("enum", "set")
                else None,
            }
            for code, label, kind in rows
        ]
        for entity, rows in _SYSTEM.items()
    }


class FieldBook:
    """Every entity's field list, with custom-field creation and value checks."""

    def __init__(self) -> None:
        self.fields = default_fields()
        self._option_ids = itertools.count(101)
        self.unique: dict[tuple[str, str], bool] = {}  # (entity, code) -> values must be unique (test helper)

    def custom(self, entity: str) -> dict[str, dict[str, Any]]:
        return {f["field_code"]: f for f in self.fields[entity] if f["is_custom_field"]}

    def find(self, entity: str, code: str) -> dict[str, Any] | None:
        return next((f for f in self.fields[entity] if f["field_code"] == code), None)

    def add(
        self, entity: str, name: str, field_type: str, options: list[Any] | None = None, *, unique: bool = False
    ) -> dict[str, Any]:
        if entity not in ENTITIES:
            raise ApiError(404, f"Unknown entity {entity}")
        if not isinstance(name, str) or not name.strip():
            raise ApiError(400, "field_name is required", code="ERR_SCHEMA_VALIDATION_FAILED")
        if field_type not in CREATE_TYPES:
            raise ApiError(
                400, f"field_type must be one of: {', '.join(CREATE_TYPES)}", code="ERR_SCHEMA_VALIDATION_FAILED"
            )
        made: list[dict[str, Any]] | None = None
        if field_type in ("enum", "set"):
            labels = [o.get("label") if isinstance(o, dict) else o for o in options or []]
            if not labels or not all(isinstance(label, str) and label.strip() for label in labels):
                raise ApiError(
                    400,
                    "options with a label are required for enum and set fields",
                    code="ERR_SCHEMA_VALIDATION_FAILED",
                )
            made = [{"id": next(self._option_ids), "label": label.strip()} for label in labels]
        field = {
            "field_name": name.strip(),
            "field_code": field_hash(),
            "field_type": field_type,
            "is_custom_field": True,
            "is_optional_response_field": False,
            "options": made,
        }
        self.fields[entity].append(field)
        if unique:
            self.unique[(entity, field["field_code"])] = True
        return field

    def check(self, entity: str, raw: Any) -> dict[str, Any]:
        """The custom field values of a write, checked against their definitions."""
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            raise ApiError(400, "custom_fields must be an object", code="ERR_SCHEMA_VALIDATION_FAILED")
        defined = self.custom(entity)
        values: dict[str, Any] = {}
        for code, value in raw.items():
            field = defined.get(code)
            if field is None:
                raise ApiError(400, f"Unknown custom field key: {code}", code="ERR_SCHEMA_VALIDATION_FAILED")
            values[code] = None if value is None else _value(field, value)
        return values


def _value(field: dict[str, Any], value: Any) -> Any:
    kind, label = field["field_type"], field["field_name"]
    option_ids = {o["id"] for o in field.get("options") or []}
    if kind == "enum":
        if not isinstance(value, int) or value not in option_ids:
            raise ApiError(400, f"Invalid option for field '{label}': {value!r}", code="ERR_SCHEMA_VALIDATION_FAILED")
        return value
    if kind == "set":
        chosen = value if isinstance(value, list) else [value]
        if not chosen or any(not isinstance(v, int) or v not in option_ids for v in chosen):
            raise ApiError(400, f"Invalid options for field '{label}': {value!r}", code="ERR_SCHEMA_VALIDATION_FAILED")
        return chosen
    if kind in ("double", "monetary"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ApiError(400, f"Field '{label}' takes a number", code="ERR_SCHEMA_VALIDATION_FAILED")
        return value
    if kind == "date":
        try:
            return dt.date.fromisoformat(str(value)).isoformat()
        except ValueError:
            raise ApiError(
                400, f"Field '{label}' takes a date (YYYY-MM-DD)", code="ERR_SCHEMA_VALIDATION_FAILED"
            ) from None
    if kind in ("org", "people", "user"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ApiError(400, f"Field '{label}' takes an id", code="ERR_SCHEMA_VALIDATION_FAILED")
        return value
    if isinstance(value, dict | list):
        raise ApiError(400, f"Field '{label}' takes text", code="ERR_SCHEMA_VALIDATION_FAILED")
    return str(value)


def time_filter(items: list[dict[str, Any]], since: str | None, until: str | None) -> list[dict[str, Any]]:
    """``updated_since`` (inclusive) / ``updated_until`` (exclusive) on ``update_time`` (§3.7)."""
    low, high = parse_time(since), parse_time(until)
    if (since and low is None) or (until and high is None):
        raise ApiError(400, "updated_since and updated_until take RFC 3339 times", code="ERR_SCHEMA_VALIDATION_FAILED")
    chosen = []
    for item in items:
        at = parse_time(item.get("update_time"))
        if at is None or (low and at < low) or (high and at >= high):
            continue
        chosen.append(item)
    return chosen
