"""Zoho field metadata as FieldSchema, and our field definitions as Zoho fields to create
(crm-reference §4.3; spec fields.json ``GET``/``POST /settings/fields``).

Read: ``api_name``, ``field_label``/``display_label``, ``data_type``, ``length``, ``read_only`` /
``field_read_only``, ``system_mandatory``, ``custom_field``, ``unique`` (an object when the field
takes no duplicates) and ``pick_list_values[].actual_value``. Zoho's ``data_type`` vocabulary is
**UNVERIFIED** beyond the common types mapped here; anything else reads as "other".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from integrations.connector import FieldSchema
from integrations.errors import ConfigurationError

_TYPES = {
    "text": "string",
    "textarea": "text",
    "email": "email",
    "phone": "phone",
    "website": "url",
    "picklist": "picklist",
    "multiselectpicklist": "multipicklist",
    "integer": "number",
    "bigint": "number",
    "double": "number",
    "decimal": "number",
    "currency": "number",
    "percent": "number",
    "boolean": "boolean",
    "date": "date",
    "datetime": "datetime",
}
# Our vocabulary -> the data_type of a new Zoho field. Numbers are decimals unless the definition's
# ``extra`` asks for ``{"data_type": "integer"}`` (scores and seconds are whole numbers).
_CREATE_TYPES = {
    "string": "text",
    "text": "textarea",
    "email": "email",
    "phone": "phone",
    "url": "website",
    "number": "double",
    "boolean": "boolean",
    "date": "date",
    "datetime": "datetime",
    "picklist": "picklist",
    "multipicklist": "multiselectpicklist",
}
TEXT_LENGTH = 255


class FieldDefinition(Protocol):
    """What create_custom_field needs: a FieldSchema or mapping's CustomFieldSpec (which adds ``extra``)."""

    name: str
    label: str
    type: str
    options: tuple[str, ...]


def schema(field: Mapping[str, Any]) -> FieldSchema:
    data_type = str(field.get("data_type") or "")
    options = tuple(
        str(o.get("actual_value") or o.get("display_value"))
        for o in field.get("pick_list_values") or []
        if isinstance(o, Mapping) and (o.get("actual_value") or o.get("display_value")) not in (None, "-None-")
    )
    length = field.get("length")
    return FieldSchema(
        name=str(field.get("api_name") or ""),
        label=str(field.get("field_label") or field.get("display_label") or field.get("api_name") or ""),
        type=_TYPES.get(data_type, "other"),
        custom=bool(field.get("custom_field")),
        required=bool(field.get("system_mandatory")),
        read_only=bool(field.get("read_only") or field.get("field_read_only")),
        options=options,
        max_length=length
        if isinstance(length, int) and data_type in ("text", "textarea", "email", "phone", "website", "picklist")
        else None,
        unique=bool(field.get("unique")),
    )


def schemas(fields: Iterable[Any]) -> list[FieldSchema]:
    return [schema(f) for f in fields if isinstance(f, Mapping) and f.get("api_name")]


def field_create(definition: FieldDefinition, *, unique: bool = False, length: int | None = None) -> dict[str, Any]:
    """The body item of ``POST /settings/fields`` for one of our definitions."""
    extra = dict(getattr(definition, "extra", {}) or {})
    data_type = str(extra.get("data_type") or _CREATE_TYPES.get(definition.type, ""))
    if not data_type:
        raise ConfigurationError(
            f"Zoho CRM cannot hold a {definition.type} field ({definition.name})", code="unsupported_field_type"
        )
    body: dict[str, Any] = {"api_name": definition.name, "field_label": definition.label, "data_type": data_type}
    if data_type in ("text", "email", "phone", "website"):
        body["length"] = length or int(extra.get("length") or TEXT_LENGTH)
    if data_type in ("picklist", "multiselectpicklist"):
        body["pick_list_values"] = [{"display_value": o, "actual_value": o} for o in definition.options]
    if unique:
        body["unique"] = {"casesensitive": False}
    return body
