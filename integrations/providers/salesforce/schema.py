"""Describe results as FieldSchema, and our field definitions as Tooling API ``CustomField`` bodies.

Describe (crm-reference §1.3): each field has ``name``, ``label``, ``type``, ``custom``,
``createable``, ``updateable``, ``nillable``, ``defaultedOnCreate``, ``length``, ``unique``,
``externalId`` and ``picklistValues[{value, active}]``. A field an insert must supply is one that
is createable, not nillable and not defaulted by the platform — so Lead ``LastName`` and
``Company`` are required, while ``OwnerId`` (defaulted to the running user) and checkboxes
(never null, defaulted to false) are not.

Tooling ``CustomField`` (``POST /tooling/sobjects/CustomField``) takes ``FullName``
(``Object.Name__c``) and ``Metadata`` in Metadata API terms: ``type`` Text, LongTextArea, Number,
Checkbox, Date, DateTime, Email, Phone, Url, Picklist or MultiselectPicklist, with a ``label`` and
the type's own attributes (length, precision and scale, visibleLines, valueSet) — sizes come from the
definition's ``extra`` or the by-hand type the mapping presets name (``Text(10)``, ``Number(18, 0)``),
else the defaults below. Custom fields of
Task and Event are defined on the Activity object in the Metadata API, so a Task field is asked
for as ``Activity.Name__c`` first.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from integrations.connector import FieldSchema
from integrations.errors import ConfigurationError

_TYPES = {
    "string": "string",
    "combobox": "string",
    "encryptedstring": "string",
    "textarea": "text",
    "email": "email",
    "phone": "phone",
    "url": "url",
    "picklist": "picklist",
    "multipicklist": "multipicklist",
    "boolean": "boolean",
    "date": "date",
    "datetime": "datetime",
    "double": "number",
    "currency": "number",
    "percent": "number",
    "int": "number",
    "long": "number",
}
# Our vocabulary → Metadata API field definition.
_METADATA: dict[str, dict[str, Any]] = {
    "string": {"type": "Text", "length": 255},
    "text": {"type": "LongTextArea", "length": 32768, "visibleLines": 3},
    "email": {"type": "Email"},
    "phone": {"type": "Phone"},
    "url": {"type": "Url"},
    "number": {"type": "Number", "precision": 18, "scale": 2},
    "boolean": {"type": "Checkbox", "defaultValue": "false"},
    "date": {"type": "Date"},
    "datetime": {"type": "DateTime"},
    "picklist": {"type": "Picklist"},
    "multipicklist": {"type": "MultiselectPicklist", "visibleLines": 4},
}
# An API name: a letter, then letters, digits and single underscores, 40 characters before __c.
_CUSTOM_NAME = re.compile(r"^[A-Za-z](?:[A-Za-z0-9]|_(?!_)){0,39}__c$")
ACTIVITY_OBJECTS = frozenset({"Task", "Event"})
# Sizes a field definition may carry: in ``extra`` (provider-specific), or in its by-hand type.
_SIZE_KEYS = ("length", "precision", "scale", "visibleLines")
_SIZES_OF = {
    "Text": ("length",),
    "LongTextArea": ("length", "visibleLines"),
    "Number": ("precision", "scale"),
    "MultiselectPicklist": ("visibleLines",),
}
_MANUAL_SIZE = re.compile(r"^(Text|Number|LongTextArea)\((\d+)(?:,\s*(\d+))?\)$", re.IGNORECASE)


class FieldDefinition(Protocol):
    """What ``create_custom_field`` needs: a FieldSchema or mapping's CustomFieldSpec."""

    name: str
    label: str
    type: str
    options: tuple[str, ...]


def field_schema(field: Mapping[str, Any]) -> FieldSchema:
    kind = str(field.get("type") or "")
    createable, updateable = bool(field.get("createable")), bool(field.get("updateable"))
    length = field.get("length")
    return FieldSchema(
        name=str(field["name"]),
        label=str(field.get("label") or field["name"]),
        type=_TYPES.get(kind, "other"),
        custom=bool(field.get("custom")),
        required=createable and not field.get("nillable", True) and not field.get("defaultedOnCreate"),
        read_only=not createable and not updateable,
        options=tuple(
            str(v["value"])
            for v in field.get("picklistValues") or []
            if isinstance(v, Mapping) and v.get("active", True) and v.get("value") is not None
        ),
        max_length=int(length) if isinstance(length, int) and length > 0 else None,
        unique=bool(field.get("unique") or field.get("externalId")),
    )


def field_schemas(describe: Mapping[str, Any]) -> list[FieldSchema]:
    return [field_schema(f) for f in describe.get("fields") or [] if isinstance(f, Mapping) and f.get("name")]


def custom_api_name(name: str) -> str:
    """``Capsule_Score`` or ``Capsule_Score__c`` → ``Capsule_Score__c``, checked."""
    api_name = name if name.endswith("__c") else f"{name}__c"
    if not _CUSTOM_NAME.match(api_name):
        raise ConfigurationError(
            f"{name!r} cannot be a Salesforce custom field name: letters, digits and single underscores, "
            "starting with a letter, at most 40 characters before __c",
            code="invalid_field_name",
        )
    return api_name


def custom_field_metadata(
    definition: FieldDefinition, *, external_id: bool = False, unique: bool = False
) -> dict[str, Any]:
    try:
        metadata = dict(_METADATA[definition.type])
    except KeyError:
        raise ConfigurationError(
            f"Salesforce custom fields cannot have our type {definition.type!r}; use one of {', '.join(_METADATA)}",
            code="unsupported_type",
        ) from None
    sizes = _sized(str(getattr(definition, "manual_type", "") or ""))
    extra = getattr(definition, "extra", None) or {}
    sizes.update({k: extra[k] for k in _SIZE_KEYS if k in extra})
    metadata.update({k: v for k, v in sizes.items() if k in _SIZES_OF.get(metadata["type"], ())})
    metadata["label"] = (definition.label or definition.name)[:40]
    description = getattr(definition, "description", "")
    if description:
        metadata["description"] = str(description)[:1000]
    if definition.type in ("picklist", "multipicklist"):
        if not definition.options:
            raise ConfigurationError(f"the picklist {definition.name} needs at least one option", code="no_options")
        metadata["valueSet"] = {
            "restricted": False,
            "valueSetDefinition": {
                "sorted": False,
                "value": [{"fullName": str(o), "label": str(o), "default": False} for o in definition.options],
            },
        }
    if external_id:
        metadata["externalId"] = True
    if unique:
        metadata["unique"] = True
        metadata["caseSensitive"] = False
    return metadata


def _sized(manual_type: str) -> dict[str, int]:
    """The size a by-hand type names (mapping presets say ``Text(10)``, ``Number(18, 0)``)."""
    match = _MANUAL_SIZE.match(manual_type.strip())
    if match is None:
        return {}
    kind, first, second = match.group(1).lower(), int(match.group(2)), match.group(3)
    if kind == "number":
        return {"precision": first, "scale": int(second or 0)}
    return {"length": first}


def full_names(sobject: str, api_name: str) -> Sequence[str]:
    """The ``FullName`` values to try, in order (Activity first for Task and Event)."""
    if sobject in ACTIVITY_OBJECTS:
        return (f"Activity.{api_name}", f"{sobject}.{api_name}")
    return (f"{sobject}.{api_name}",)
