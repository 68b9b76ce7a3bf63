"""HubSpot properties (field definitions) as FieldSchema, and FieldSchema as a property to create.

The Property shape is crm-reference §2.3 (spec properties.json): ``type`` (bool, date, datetime,
enumeration, number, phone_number, string) with a ``fieldType`` widget, ``options``,
``hubspotDefined`` (present and true only for HubSpot's own), ``calculated``, ``hasUniqueValue``,
``hidden`` and ``modificationMetadata.readOnlyValue``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from integrations.connector import FieldSchema
from integrations.errors import ConfigurationError

# The property group our own properties live in, created on demand on each object type.
CAPSULE_GROUP = "capsule"
CAPSULE_GROUP_LABEL = "Capsule"

_PICKLIST_WIDGETS = {"select": "picklist", "radio": "picklist", "checkbox": "multipicklist"}
_SCALAR_TYPES = {
    "number": "number",
    "bool": "boolean",
    "date": "date",
    "datetime": "datetime",
    "phone_number": "phone",
}
_STRING_WIDGETS = {"textarea": "text", "html": "text", "phonenumber": "phone", "text": "string", "file": "other"}

# Our vocabulary (FieldSchema.type) -> HubSpot (type, fieldType) for new properties.
_CREATE_TYPES: dict[str, tuple[str, str]] = {
    "string": ("string", "text"),
    "email": ("string", "text"),
    "url": ("string", "text"),
    "text": ("string", "textarea"),
    "phone": ("string", "phonenumber"),
    "number": ("number", "number"),
    "boolean": ("bool", "booleancheckbox"),
    "date": ("date", "date"),
    "datetime": ("datetime", "date"),
    "picklist": ("enumeration", "select"),
    "multipicklist": ("enumeration", "checkbox"),
}


class FieldDefinition(Protocol):
    """What create_custom_field needs: a FieldSchema, or mapping's CustomFieldSpec (which adds
    ``description`` and ``extra`` such as HubSpot's ``groupName``)."""

    name: str
    label: str
    type: str
    options: tuple[str, ...]


def field_type(definition: Mapping[str, Any]) -> str:
    """Our type for a HubSpot property (string|text, number, boolean, date, datetime, picklist…)."""
    kind, widget = str(definition.get("type") or ""), str(definition.get("fieldType") or "")
    if definition.get("name") == "email" and kind == "string":
        return "email"
    if kind == "enumeration":
        if widget == "booleancheckbox":
            return "boolean"
        return _PICKLIST_WIDGETS.get(widget, "picklist")
    if kind == "string":
        return _STRING_WIDGETS.get(widget, "string")
    return _SCALAR_TYPES.get(kind, "other")


def to_schema(definition: Mapping[str, Any]) -> FieldSchema:
    metadata = definition.get("modificationMetadata") or {}
    options = tuple(
        str(option["value"])
        for option in definition.get("options") or []
        if isinstance(option, Mapping) and "value" in option and not option.get("hidden")
    )
    return FieldSchema(
        name=str(definition["name"]),
        label=str(definition.get("label") or definition["name"]),
        type=field_type(definition),
        # HubSpot only sends hubspotDefined (true) on its own properties; absent means custom.
        custom=not definition.get("hubspotDefined", False),
        required=False,  # HubSpot has no required properties on the API (the connector fills hs_timestamp)
        read_only=bool(metadata.get("readOnlyValue") or definition.get("calculated")),
        options=options,
        unique=bool(definition.get("hasUniqueValue")),
    )


def schemas(definitions: Iterable[Mapping[str, Any]]) -> list[FieldSchema]:
    """Visible, live properties; hidden ones are HubSpot internals a person cannot map."""
    return [
        to_schema(d)
        for d in definitions
        if isinstance(d, Mapping) and d.get("name") and not d.get("archived") and not d.get("hidden")
    ]


def property_create(field: FieldDefinition, group: str) -> dict[str, Any]:
    """A PropertyCreate body (spec properties.json) for one of our field definitions."""
    if field.type not in _CREATE_TYPES:
        raise ConfigurationError(
            f"HubSpot has no property type for a {field.type!r} field ({field.name})", code="unknown_field_type"
        )
    kind, widget = _CREATE_TYPES[field.type]
    body: dict[str, Any] = {
        "name": field.name,
        "label": field.label,
        "type": kind,
        "fieldType": widget,
        "groupName": group,
        "description": str(getattr(field, "description", "") or ""),
        "formField": False,
    }
    if kind == "enumeration":
        body["options"] = [
            {"label": value, "value": value, "displayOrder": order, "hidden": False}
            for order, value in enumerate(field.options)
        ]
    elif kind == "bool":
        body["options"] = [
            {"label": "Yes", "value": "true", "displayOrder": 0, "hidden": False},
            {"label": "No", "value": "false", "displayOrder": 1, "hidden": False},
        ]
    if getattr(field, "unique", False):
        body["hasUniqueValue"] = True
    return body


def group_for(field: FieldDefinition) -> str | None:
    """The group a field definition asks for (CustomFieldSpec.extra["groupName"]), if any."""
    extra = getattr(field, "extra", None) or {}
    group = extra.get("groupName") if isinstance(extra, Mapping) else None
    return str(group) if group else None


@dataclass(frozen=True)
class KeyProperty:
    """Our idempotency key on an engagement or deal: a unique-value single-line text property."""

    name: str
    label: str
    description: str
    type: str = "string"
    options: tuple[str, ...] = ()
    unique: bool = True
