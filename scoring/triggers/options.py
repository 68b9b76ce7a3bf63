"""Typed options of trigger conditions and actions: one declaration gives the check, the form field and the docs."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from scoring.triggers.placeholders import unknown_placeholders

# Patterns run against question texts of up to 10,000 characters on every ingest; a short
# pattern keeps the room for pathological backtracking small (as for scoring rules).
MAX_PATTERN_LENGTH = 200
MAX_CRM_IDS = 50
MAX_CRM_ID_LENGTH = 100
_SLUG = re.compile(r"^[-a-zA-Z0-9_]+$")
# CRM ids and API field names: HubSpot "hs_lead_status", Salesforce "Capsule_Hot__c", Zoho "Lead_Status".
_CRM_NAME = re.compile(r"^[A-Za-z0-9_.:\-]+$")


@dataclass(frozen=True)
class OptionField:
    """One option of a condition or action type.

    ``kind`` is one of: ``integer``, ``number``, ``bool``, ``text``, ``pattern`` (a regular
    expression, matched case-insensitively), ``slug`` (a grade band name), ``email``,
    ``template`` (text with ``{{ placeholder }}``\\ s, see ``placeholders``), ``crm_id`` (an id or
    API name in the CRM), ``crm_id_list`` (a list of those).
    """

    key: str
    kind: str
    label: str
    help_text: str = ""
    required: bool = False
    default: Any = None
    min_value: float | None = None
    max_value: float | None = None
    max_length: int = 200

    def clean(self, value: Any) -> Any:
        """The value in its stored form, or ValueError with a message for people."""
        cleaner = _CLEANERS[self.kind]
        return cleaner(self, value)


def is_empty(value: Any) -> bool:
    return value is None or value == "" or value == []


def validate_options(fields: tuple[OptionField, ...], options: Any, *, what: str) -> dict[str, Any]:
    """``options`` checked against ``fields``: unknown keys and bad values are errors keyed by option,
    required ones must be there, missing ones take their default. ``what`` names the type in messages."""
    if not isinstance(options, Mapping):
        raise ValidationError({"options": "Options must be an object."})
    by_key = {field.key: field for field in fields}
    errors: dict[str, str] = {}
    cleaned: dict[str, Any] = {}
    for key, value in options.items():
        field = by_key.get(key)
        if field is None:
            errors[str(key)] = f"“{key}” is not an option of {what}."
            continue
        if is_empty(value):
            continue
        try:
            cleaned[key] = field.clean(value)
        except ValueError as exc:
            errors[key] = str(exc)
    for field in fields:
        if field.key in cleaned or field.key in errors:
            continue
        if field.required:
            errors[field.key] = "This option is required."
        elif field.default is not None:
            cleaned[field.key] = field.default
    if errors:
        raise ValidationError(errors)
    return cleaned


def _integer(field: OptionField, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise ValueError("Enter a whole number.")
    return int(_in_range(field, value))


def _number(field: OptionField, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("Enter a number.")
    return float(_in_range(field, value))


def _in_range(field: OptionField, value: float) -> float:
    if field.min_value is not None and value < field.min_value:
        raise ValueError(f"Enter a value of at least {field.min_value:g}.")
    if field.max_value is not None and value > field.max_value:
        raise ValueError(f"Enter a value of at most {field.max_value:g}.")
    return value


def _bool(field: OptionField, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("Enter true or false.")
    return value


def _text(field: OptionField, value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("Enter text.")
    value = value.strip()
    if len(value) > field.max_length:
        raise ValueError(f"Use at most {field.max_length} characters.")
    if any(ord(char) < 32 and char not in "\n\t" for char in value):
        raise ValueError("Remove the control characters.")
    return value


def _pattern(field: OptionField, value: Any) -> str:
    value = _text(OptionField(field.key, "text", field.label, max_length=MAX_PATTERN_LENGTH), value)
    try:
        re.compile(value, re.IGNORECASE)
    except re.error as exc:
        raise ValueError(f"This is not a valid regular expression: {exc}.") from None
    return value


def _slug(field: OptionField, value: Any) -> str:
    value = _text(field, value)
    if not _SLUG.match(value):
        raise ValueError("Use letters, digits, - and _ only.")
    return value


def _email(field: OptionField, value: Any) -> str:
    value = _text(field, value)
    try:
        validate_email(value)
    except ValidationError:
        raise ValueError("Enter a valid e-mail address.") from None
    return value


def _template(field: OptionField, value: Any) -> str:
    value = _text(field, value)
    unknown = unknown_placeholders(value)
    if unknown:
        names = ", ".join(f"{{{{ {name} }}}}" for name in unknown)
        raise ValueError(f"Unknown placeholder {names}. See the list of placeholders below the form.")
    return value


def _crm_id(field: OptionField, value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # CRM user ids are often numeric; they are stored and sent as text
    value = _text(OptionField(field.key, "text", field.label, max_length=MAX_CRM_ID_LENGTH), value)
    if not _CRM_NAME.match(value):
        raise ValueError(f"“{value}” is not a CRM id: use letters, digits and _ . : - only.")
    return value


def _crm_id_list(field: OptionField, value: Any) -> list[str]:
    if not isinstance(value, list):
        raise ValueError("Enter a list of CRM ids.")
    ids = [_crm_id(field, item) for item in value if not is_empty(item)]
    if not ids:
        raise ValueError("Enter at least one CRM id.")
    if len(ids) > MAX_CRM_IDS:
        raise ValueError(f"Enter at most {MAX_CRM_IDS} ids.")
    repeated = sorted({item for item in ids if ids.count(item) > 1})
    if repeated:
        raise ValueError(f"Each id once, please: {', '.join(repeated)} is repeated.")
    return ids


_CLEANERS = {
    "integer": _integer,
    "number": _number,
    "bool": _bool,
    "text": _text,
    "pattern": _pattern,
    "slug": _slug,
    "email": _email,
    "template": _template,
    "crm_id": _crm_id,
    "crm_id_list": _crm_id_list,
}
