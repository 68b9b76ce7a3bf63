"""Copper's fields as we describe them, and its custom fields (crm-reference §6.2, §6.3).

Standard fields keep Copper's names where a record has them at the top level (``first_name``,
``title``…); nested ones are flattened: ``email`` (the first of People's ``emails``, a Lead's
``email``), ``phone``, ``website`` and ``address_street``/``_city``/``_state``/``_postal_code``/
``_country``.

Custom fields are named ``cf_<slug of the Copper name>`` ("Capsule score" → ``cf_capsule_score``):
a readable, stable API name for mappings, which Copper itself lacks (its definitions have an id
and a display name only). Values are translated both ways: dropdown option names ↔ option ids,
dates ↔ Unix seconds, checkboxes ↔ booleans.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from integrations.connector import ACTIVITY, CONTACT, DEAL, LEAD, NOTE, TASK, FieldSchema
from integrations.errors import ConfigurationError, RecordError
from integrations.providers.copper import wire

CUSTOM_PREFIX = "cf_"
# Copper data_type → our FieldSchema type (value lists UNVERIFIED, §6.3).
FIELD_TYPES = {
    "String": "string",
    "Text": "text",
    "Dropdown": "picklist",
    "MultiSelect": "multipicklist",
    "Date": "date",
    "Checkbox": "boolean",
    "Float": "number",
    "Percentage": "number",
    "Currency": "number",
    "URL": "url",
    "Connect": "other",
}
# Our CustomFieldSpec types → the Copper data_type a new definition gets.
DATA_TYPES = {
    "string": "String",
    "text": "Text",
    "number": "Float",
    "boolean": "Checkbox",
    "date": "Date",
    "datetime": "Date",  # Copper's Date holds a Unix time; it shows as a day
    "url": "URL",
    "picklist": "Dropdown",
    "multipicklist": "MultiSelect",
}

_F = FieldSchema
_READ_ONLY = (
    _F("id", "Copper ID", "number", read_only=True, unique=True),
    _F("date_created", "Created", "datetime", read_only=True),
    _F("date_modified", "Last modified", "datetime", read_only=True),
)
_PERSON_COMMON = (
    # ``name`` is required by Copper; the connector builds it from first and last name (or the
    # e-mail) when no row maps it, so a mapping need not.
    _F("name", "Full name", "string", max_length=255),
    _F("first_name", "First name", "string", max_length=255),
    _F("last_name", "Last name", "string", max_length=255),
    _F("prefix", "Prefix", "string"),
    _F("middle_name", "Middle name", "string"),
    _F("suffix", "Suffix", "string"),
    _F("title", "Title", "string", max_length=255),
    _F("company_name", "Company", "string", max_length=255),
    _F("phone", "Phone", "phone"),
    _F("website", "Website", "url"),
    _F("details", "Details", "text"),
    _F("tags", "Tags", "multipicklist"),
    _F("assignee_id", "Owner (user id)", "other"),
    _F("address_street", "Street", "string"),
    _F("address_city", "City", "string"),
    _F("address_state", "State", "string"),
    _F("address_postal_code", "Postal code", "string"),
    _F("address_country", "Country", "string"),
)
LEAD_STATUSES = ("New", "Unqualified", "Contacted", "Qualified")
STANDARD: dict[str, tuple[FieldSchema, ...]] = {
    CONTACT: (
        _F("email", "Email", "email", required=True, unique=True),
        *_PERSON_COMMON,
        _F("company_id", "Company (id)", "other"),
        _F("contact_type_id", "Contact type (id)", "other"),
        _F("interaction_count", "Interactions", "number", read_only=True),
        *_READ_ONLY,
    ),
    LEAD: (
        _F("email", "Email", "email", required=True),
        *_PERSON_COMMON,
        _F("status", "Status", "picklist", options=LEAD_STATUSES),
        _F("monetary_value", "Value", "number"),
        *_READ_ONLY,
    ),
    DEAL: (
        _F("name", "Name", "string", required=True, max_length=255),
        _F("monetary_value", "Value", "number"),
        _F("monetary_unit", "Currency", "string", max_length=3),
        _F("close_date", "Close date", "date"),
        _F("status", "Status", "picklist", options=("Open", "Won", "Lost", "Abandoned")),
        _F("pipeline_id", "Pipeline (id)", "other"),
        _F("pipeline_stage_id", "Stage (id)", "other"),
        _F("primary_contact_id", "Primary contact (id)", "other"),
        _F("assignee_id", "Owner (user id)", "other"),
        _F("details", "Details", "text"),
        _F("tags", "Tags", "multipicklist"),
        *_READ_ONLY,
    ),
    TASK: (
        _F("name", "Name", "string", required=True, max_length=255),
        _F("details", "Details", "text"),
        _F("due_date", "Due", "datetime"),
        _F("status", "Status", "picklist", options=("Open", "Completed")),
        _F("priority", "Priority", "picklist", options=("None", "High")),
        _F("assignee_id", "Owner (user id)", "other"),
        *_READ_ONLY,
    ),
}
_ACTIVITY = (
    _F("details", "Details", "text"),
    _F("activity_date", "Date", "datetime"),
    _F("user_id", "User (id)", "other", read_only=True),
    *_READ_ONLY,
)
STANDARD[ACTIVITY] = STANDARD[NOTE] = _ACTIVITY


class CustomFields:
    """The account's custom field definitions, by our API name and by id."""

    def __init__(self, definitions: Iterable[Mapping[str, Any]]) -> None:
        self.definitions = [dict(d) for d in definitions if isinstance(d, Mapping) and d.get("id") is not None]
        self.by_name: dict[str, dict[str, Any]] = {}
        self.name_of: dict[int, str] = {}
        for definition in sorted(self.definitions, key=lambda d: d["id"]):
            name = CUSTOM_PREFIX + (wire.slug(str(definition.get("name") or "")) or str(definition["id"]))
            if name in self.by_name:  # two Copper names with one slug: the later one gets its id
                name = f"{name}_{definition['id']}"
            self.by_name[name] = definition
            self.name_of[definition["id"]] = name

    def on(self, entity: str) -> list[dict[str, Any]]:
        return [d for d in self.definitions if entity in (d.get("available_on") or [])]

    def named(self, display_name: str) -> dict[str, Any] | None:
        """A definition by its Copper name (case-insensitive)."""
        wanted = display_name.strip().lower()
        return next((d for d in self.definitions if str(d.get("name") or "").strip().lower() == wanted), None)

    def schema(self, definition: Mapping[str, Any]) -> FieldSchema:
        options = tuple(str(o.get("name")) for o in definition.get("options") or [] if o.get("name"))
        return FieldSchema(
            name=self.name_of[definition["id"]],
            label=str(definition.get("name") or ""),
            type=FIELD_TYPES.get(str(definition.get("data_type")), "other"),
            custom=True,
            options=options,
        )

    # -- values ----------------------------------------------------------------------------------
    def encode(self, entity: str, name: str, value: Any) -> dict[str, Any]:
        """One ``{custom_field_definition_id, value}`` for a write, in Copper's value form."""
        definition = self.by_name.get(name)
        if definition is None or entity not in (definition.get("available_on") or []):
            raise RecordError(f"Copper has no custom field {name} on {entity}", code="unknown_field", field=name)
        try:
            converted = _encode_value(definition, value)
        except (TypeError, ValueError) as exc:
            raise RecordError(
                f"{value!r} does not fit the {definition.get('data_type')} field “{definition.get('name')}”: {exc}",
                code="bad_value",
                field=name,
            ) from None
        return {"custom_field_definition_id": definition["id"], "value": converted}

    def decode(self, items: Any) -> dict[str, Any]:
        """A record's ``custom_fields`` as {our API name: value}."""
        values: dict[str, Any] = {}
        for item in items or []:
            if not isinstance(item, Mapping):
                continue
            name = self.name_of.get(item.get("custom_field_definition_id"))  # type: ignore[arg-type]
            if name is not None:
                values[name] = _decode_value(self.by_name[name], item.get("value"))
        return values


def _option_ids(definition: Mapping[str, Any], names: list[str]) -> list[int]:
    options = {str(o.get("name")).strip().lower(): o["id"] for o in definition.get("options") or []}
    ids = {o["id"] for o in definition.get("options") or []}
    chosen = []
    for name in names:
        if name.strip().lower() in options:
            chosen.append(options[name.strip().lower()])
        elif name.isdigit() and int(name) in ids:
            chosen.append(int(name))
        else:
            raise ValueError(f"{name!r} is not one of its options ({', '.join(sorted(options))})")
    return chosen


def _encode_value(definition: Mapping[str, Any], value: Any) -> Any:
    if value is None or value == "":
        return None
    data_type = definition.get("data_type")
    if data_type == "Dropdown":
        return _option_ids(definition, [str(value)])[0]
    if data_type == "MultiSelect":
        return _option_ids(definition, wire.as_list(value))
    if data_type == "Date":
        return wire.to_unix(value)
    if data_type == "Checkbox":
        return wire.as_bool(value)
    if data_type in ("Float", "Percentage", "Currency"):
        return wire.as_number(value)
    if data_type in ("String", "Text", "URL"):
        return wire.as_text(value)
    return value


def _decode_value(definition: Mapping[str, Any], value: Any) -> Any:
    if value is None:
        return None
    names = {o["id"]: o.get("name") for o in definition.get("options") or []}
    data_type = definition.get("data_type")
    if data_type == "Dropdown":
        return names.get(value, value)
    if data_type == "MultiSelect" and isinstance(value, list):
        return [names.get(v, v) for v in value]
    if data_type == "Date" and isinstance(value, int | float):
        return dt.datetime.fromtimestamp(value, tz=dt.UTC).date().isoformat()
    return value


def describe(object_kind: str, custom: CustomFields) -> list[FieldSchema]:
    if object_kind not in STANDARD:
        raise ConfigurationError(f"Copper has no {object_kind} records", code="unknown_object")
    fields = list(STANDARD[object_kind])
    entity = wire.ENTITIES.get(object_kind)
    if entity is not None:
        fields += [custom.schema(d) for d in sorted(custom.on(entity), key=lambda d: d["id"])]
    return fields


def definition_body(name: str, field_type: str, entities: Iterable[str], options: Iterable[str] = ()) -> dict[str, Any]:
    """A ``POST /custom_field_definitions`` body for one of our field definitions."""
    data_type = DATA_TYPES.get(field_type)
    if data_type is None:
        raise ConfigurationError(f"Copper has no custom field type for {field_type} values", code="unsupported_type")
    body: dict[str, Any] = {"name": name, "data_type": data_type, "available_on": list(entities)}
    if data_type in ("Dropdown", "MultiSelect"):
        body["options"] = [{"name": option, "rank": rank} for rank, option in enumerate(options)]
    return body
