"""Custom field definitions and their values (crm-reference §6.3).

``GET/POST /custom_field_definitions``: ``{id, name, data_type, available_on[], options[{id, name,
rank}]}``. Values travel as ``custom_fields: [{custom_field_definition_id, value}]``; dropdown
values are option ids, multi-selects lists of option ids, dates Unix seconds.

Chosen where the reference is silent (UNVERIFIED): definitions cannot be made available on
activities (Copper's settings offer custom fields on people, leads, companies, opportunities,
projects and tasks only), a duplicate name is refused with 422, creating one needs an admin
user (403 otherwise), and values are checked by type with a 422 naming the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from integrations.sandbox.copper.errors import CopperError, invalid
from integrations.sandbox.copper.store import Store

DATA_TYPES = (
    "String",
    "Text",
    "Dropdown",
    "MultiSelect",
    "Date",
    "Checkbox",
    "Float",
    "URL",
    "Percentage",
    "Currency",
    "Connect",
)
AVAILABLE_ON = ("lead", "person", "company", "opportunity", "project", "task")
WITH_OPTIONS = ("Dropdown", "MultiSelect")
NUMBERS = ("Float", "Percentage", "Currency")


def create_definition(store: Store, body: Any, *, admin: bool) -> dict[str, Any]:
    """A new definition from a ``POST /custom_field_definitions`` body."""
    if not admin:
        raise CopperError(403, "Forbidden: only administrators may manage custom fields")
    if not isinstance(body, Mapping):
        raise invalid("the body must be a JSON object")
    name = str(body.get("name") or "").strip()
    if not name:
        raise invalid("name can't be blank")
    if any(d["name"].lower() == name.lower() for d in store.definitions.values()):
        raise invalid(f"name {name!r} has already been taken")
    data_type = body.get("data_type")
    if data_type not in DATA_TYPES:
        raise invalid(f"data_type must be one of {', '.join(DATA_TYPES)}")
    available_on = body.get("available_on") or []
    if not isinstance(available_on, list) or not available_on:
        raise invalid("available_on must list at least one entity")
    unknown = [entity for entity in available_on if entity not in AVAILABLE_ON]
    if unknown:
        raise invalid(f"custom fields are not available on {', '.join(map(str, unknown))}")
    definition: dict[str, Any] = {
        "id": store.new_id("custom_field_definitions"),
        "name": name,
        "canonical_name": None,
        "data_type": data_type,
        "available_on": list(dict.fromkeys(available_on)),
        "is_filterable": True,
    }
    if data_type in WITH_OPTIONS:
        raw_options = body.get("options") or []
        if not isinstance(raw_options, list) or not raw_options:
            raise invalid(f"a {data_type} field needs options")
        options = []
        for rank, option in enumerate(raw_options):
            label = str(option.get("name") if isinstance(option, Mapping) else option or "").strip()
            if not label:
                raise invalid("every option needs a name")
            options.append({"id": store.new_id("custom_field_definitions"), "name": label, "rank": rank})
        definition["options"] = options
    if data_type == "Currency":
        definition["currency"] = str(body.get("currency") or "USD")
    store.definitions[definition["id"]] = definition
    return definition


def _check_value(definition: Mapping[str, Any], value: Any) -> Any:
    name, data_type = definition["name"], definition["data_type"]
    if value is None:
        return None
    option_ids = {o["id"] for o in definition.get("options") or []}
    if data_type in ("String", "Text") and isinstance(value, str):
        return value
    if data_type == "URL" and isinstance(value, str) and value.startswith(("http://", "https://")):
        return value
    if data_type == "Dropdown" and isinstance(value, int) and not isinstance(value, bool) and value in option_ids:
        return value
    if data_type == "MultiSelect" and isinstance(value, list) and all(v in option_ids for v in value):
        return list(value)
    if data_type == "Date" and isinstance(value, int) and not isinstance(value, bool):
        return value
    if data_type == "Checkbox" and isinstance(value, bool):
        return value
    if data_type in NUMBERS and isinstance(value, int | float) and not isinstance(value, bool):
        return value
    if data_type == "Connect":
        return value
    raise invalid(f"value {value!r} is not valid for custom field {name!r} ({data_type})")


def validate_values(store: Store, entity: str, raw: Any) -> dict[int, Any]:
    """``custom_fields`` of a write as {definition id: value}; unknown or unavailable fields refused."""
    if raw is None:
        return {}
    if not isinstance(raw, list):
        raise invalid("custom_fields must be a list")
    values: dict[int, Any] = {}
    for item in raw:
        if not isinstance(item, Mapping):
            raise invalid("each custom field is an object with custom_field_definition_id and value")
        definition = store.definitions.get(item.get("custom_field_definition_id"))  # type: ignore[arg-type]
        if definition is None:
            raise invalid(f"custom_field_definition_id {item.get('custom_field_definition_id')!r} does not exist")
        if entity not in definition["available_on"]:
            raise invalid(f"custom field {definition['name']!r} is not available on {entity}")
        values[definition["id"]] = _check_value(definition, item.get("value"))
    return values


def render(store: Store, entity: str, values: Mapping[int, Any]) -> list[dict[str, Any]]:
    """Every definition available on ``entity``, with its value or null, as Copper answers them."""
    return [
        {"custom_field_definition_id": definition_id, "value": values.get(definition_id)}
        for definition_id, definition in sorted(store.definitions.items())
        if entity in definition["available_on"]
    ]


def matches(values: Mapping[int, Any], wanted: Any) -> bool:
    """The ``custom_fields`` search filter: every listed definition holds the value (text compared
    case-insensitively, lists by any shared item)."""
    if not wanted:
        return True
    if not isinstance(wanted, list):
        raise invalid("custom_fields must be a list")
    for item in wanted:
        if not isinstance(item, Mapping):
            raise invalid("each custom field filter is an object")
        have = values.get(item.get("custom_field_definition_id"))  # type: ignore[arg-type]
        want = item.get("value")
        if isinstance(have, str) and isinstance(want, str):
            if have.lower() != want.lower():
                return False
        elif isinstance(have, list):
            wanted_items = want if isinstance(want, list) else [want]
            if not set(have) & set(wanted_items):
                return False
        elif have != want:
            return False
    return True


def check_unique(store: Store, resource: str, record_id: int | None, values: Mapping[int, Any]) -> None:
    """The sandbox-only uniqueness rule of ``store.unique_definitions`` (a test aid)."""
    for definition_id in sorted(store.unique_definitions & set(values)):
        value = values[definition_id]
        if value in (None, ""):
            continue
        wanted = value.lower() if isinstance(value, str) else value
        for other in store.records[resource].values():
            have = (other.get("_custom") or {}).get(definition_id)
            if other["id"] != record_id and (have.lower() if isinstance(have, str) else have) == wanted:
                name = store.definitions[definition_id]["name"]
                raise invalid(f"{name} {value!r} is already used by record {other['id']}")
