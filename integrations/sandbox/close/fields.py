"""Close custom fields: definitions per object type and the values records carry (crm-reference §8.3).

Values live on records as ``custom.cf_<id>`` keys; definitions are served by
``/custom_field/{lead,contact,opportunity,activity}/``. Activity custom fields belong to a Custom
Activity Type (``custom_activity_type_id`` is required when creating one, spec: "Activity Custom
Fields belong to Custom Activities"). The type list (text, textarea, number, date, datetime,
choices, user, contact, hidden, url) is crm-reference's, marked UNVERIFIED there.

``unique`` is a sandbox-only rule (Close has no unique custom fields): it lets tests make the
emulator refuse one record of a batch with a 400 ``field-errors`` answer, the way a real org
refuses a record for its own reasons.
"""

from __future__ import annotations

from typing import Any

from integrations.sandbox.close import wire
from integrations.sandbox.close.errors import CloseError, invalid

OBJECT_TYPES = ("lead", "contact", "opportunity", "activity")
FIELD_TYPES = ("text", "textarea", "number", "date", "datetime", "choices", "user", "contact", "hidden", "url")
TEXT_TYPES = ("text", "textarea", "hidden", "url")


def new_definition(object_type: str, body: Any, store_ids: set[str]) -> dict[str, Any]:
    """A validated custom field definition from a create body (raises CloseError 400)."""
    if not isinstance(body, dict):
        raise CloseError(400, "The body must be a JSON object")
    problems: dict[str, str] = {}
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        problems["name"] = "This field is required."
    field_type = body.get("type")
    if field_type not in FIELD_TYPES:
        problems["type"] = f"Must be one of: {', '.join(FIELD_TYPES)}."
    choices = body.get("choices") or []
    if field_type == "choices" and (not isinstance(choices, list) or not choices):
        problems["choices"] = "A choices field needs a list of choices."
    type_id = body.get("custom_activity_type_id")
    if object_type == "activity" and type_id not in store_ids:
        problems["custom_activity_type_id"] = "A valid custom activity type id is required."
    if problems:
        raise invalid(problems)
    stamp = wire.iso(wire.now())
    definition: dict[str, Any] = {
        "id": wire.new_id("cf"),
        "name": name.strip(),
        "description": body.get("description") or None,
        "type": field_type,
        "choices": [str(c) for c in choices] if field_type == "choices" else [],
        "accepts_multiple_values": bool(body.get("accepts_multiple_values", False)),
        "editable_with_roles": body.get("editable_with_roles") or [],
        "date_created": stamp,
        "date_updated": stamp,
        "created_by": None,
        "updated_by": None,
        "organization_id": None,
    }
    if object_type == "activity":
        definition["custom_activity_type_id"] = type_id
        definition["required"] = bool(body.get("required", False))
    return definition


def coerce(definition: dict[str, Any], value: Any) -> tuple[Any, str | None]:
    """(stored value, problem) for one value written to a custom field; None clears it."""
    if value is None or value == "":
        return None, None
    kind = definition["type"]
    if definition.get("accepts_multiple_values"):
        items = value if isinstance(value, list) else [value]
        coerced = [coerce({**definition, "accepts_multiple_values": False}, item) for item in items]
        problem = next((p for _v, p in coerced if p), None)
        return [v for v, _p in coerced], problem
    if kind in TEXT_TYPES or kind in ("user", "contact"):
        if isinstance(value, dict | list):
            return None, "Must be a string."
        return str(value), None
    if kind == "number":
        if isinstance(value, bool):
            return None, "Must be a number."
        try:
            number = float(value)
        except (TypeError, ValueError):
            return None, f"{value!r} is not a number."
        return (int(number) if number.is_integer() else number), None
    if kind == "date":
        parsed = wire.parse_date(value)
        return (parsed.isoformat(), None) if parsed else (None, f"{value!r} is not a date (YYYY-MM-DD).")
    if kind == "datetime":
        moment = wire.parse_time(value)
        return (wire.iso(moment), None) if moment else (None, f"{value!r} is not a date and time.")
    if kind == "choices":
        if str(value) not in definition["choices"]:
            return None, f"{value!r} is not one of the choices: {', '.join(definition['choices'])}."
        return str(value), None
    return value, None


def custom_values(definitions: dict[str, dict[str, Any]], body: dict[str, Any]) -> dict[str, Any]:
    """The ``custom.cf_<id>`` values of a write body (and a ``custom_fields`` map, which the
    opportunity and custom-activity create schemas also accept), validated; raises a 400 naming
    each bad key."""
    given: dict[str, Any] = {}
    for key, value in body.items():
        if key.startswith("custom."):
            given[key[len("custom.") :]] = value
    for key, value in (body.get("custom_fields") or {}).items():
        given[str(key).removeprefix("custom.")] = value
    values: dict[str, Any] = {}
    problems: dict[str, str] = {}
    for field_id, value in given.items():
        definition = definitions.get(field_id)
        if definition is None:
            problems[f"custom.{field_id}"] = "Unknown custom field."
            continue
        stored, problem = coerce(definition, value)
        if problem:
            problems[f"custom.{field_id}"] = problem
        else:
            values[field_id] = stored
    if problems:
        raise invalid(problems)
    return values


def wire_values(custom: dict[str, Any]) -> dict[str, Any]:
    return {f"custom.{field_id}": value for field_id, value in custom.items() if value is not None}
