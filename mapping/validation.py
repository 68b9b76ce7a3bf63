"""Checking a mapping against the CRM's schema before it is saved or activated.

:func:`validate` is pure: rows, the target object's fields, and the source catalogue in; a list
of :class:`~mapping.problems.Problem` out, each naming the row and the reason. Errors block
saving from the owner pages and activation; warnings are shown and allowed.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from integrations.connector import FieldSchema
from mapping import sources, text_templates, transforms
from mapping.apply import is_empty
from mapping.problems import ERROR, WARNING, Problem
from mapping.rows import (
    APPEND,
    CONFLICT_POLICIES,
    DIRECTIONS,
    SOURCE_CONSTANT,
    SOURCE_FIELD,
    SOURCE_KINDS,
    SOURCE_TEMPLATE,
    TARGET_OBJECTS,
    UPDATE_POLICIES,
    MappingRow,
)

TEXT_TARGETS = frozenset({"string", "text", "other"})
# Which value types each CRM field type takes without a transform. Text-like targets take any
# scalar (it is written as text); the rest need a matching type or a converting transform.
ACCEPTS: dict[str, frozenset[str]] = {
    "string": frozenset(
        {"string", "text", "email", "phone", "url", "number", "integer", "boolean", "date", "datetime"}
    ),
    "email": frozenset({"email", "string"}),
    "phone": frozenset({"phone", "string"}),
    "url": frozenset({"url", "string"}),
    "number": frozenset({"number", "integer"}),
    "boolean": frozenset({"boolean"}),
    "date": frozenset({"date"}),
    "datetime": frozenset({"datetime", "date"}),
    "picklist": frozenset({"string", "text", "integer", "number", "boolean"}),
    "multipicklist": frozenset({"list", "string"}),
}
ACCEPTS["text"] = ACCEPTS["string"]
ACCEPTS["other"] = ACCEPTS["string"]

# Which transform fixes a clash, for the message.
SUGGESTED_TRANSFORM = {
    "number": "number",
    "boolean": "boolean",
    "date": "date",
    "datetime": "datetime",
    "phone": "phone_e164",
    "string": "join",
    "text": "join",
}


def validate(
    rows: Sequence[MappingRow],
    schema: Mapping[str, FieldSchema],
    *,
    record_type: str,
    required_overrides: Collection[str] = (),
    source_index: Mapping[str, sources.SourceField] | None = None,
    other_schemas: Mapping[str, Mapping[str, FieldSchema]] | None = None,
    crm_label: str = "CRM",
) -> list[Problem]:
    """Every problem of ``rows`` for a connection that syncs ``record_type`` records.

    ``schema``: the record type's fields by name. ``required_overrides``: more field names that
    must be mapped (provider facts from the standard mapping's ``required``, e.g. Salesforce
    Lead's LastName and Company, or HubSpot's email as the dedupe key). ``source_index``: the
    account's catalogue (default: the static catalogue; ``attr.*`` keys are always accepted).
    ``other_schemas``: fields of other target objects (``{"deal": {...}}``); rows targeting an
    object with no schema here are reported as not checkable.
    """
    index = source_index if source_index is not None else sources.catalogue_index()
    other_schemas = other_schemas or {}
    problems: list[Problem] = []
    for position, row in enumerate(rows):
        problems.extend(_row_problems(position, row, schema, record_type, index, other_schemas, crm_label))
    problems.extend(_duplicates(rows))
    problems.extend(_unmapped_required(rows, schema, record_type, required_overrides, crm_label))
    return problems


def _row_problems(
    position: int,
    row: MappingRow,
    schema: Mapping[str, FieldSchema],
    record_type: str,
    index: Mapping[str, sources.SourceField],
    other_schemas: Mapping[str, Mapping[str, FieldSchema]],
    crm_label: str,
) -> list[Problem]:
    found: list[Problem] = []

    def problem(message: str, column: str, severity: str = ERROR) -> None:
        found.append(Problem(position, row.target_field, message, severity, column))

    if not row.enabled:
        return found
    # Settings with a fixed set of values.
    for value, allowed, column in (
        (row.source_kind, SOURCE_KINDS, "source_kind"),
        (row.update_policy, UPDATE_POLICIES, "update_policy"),
        (row.direction, DIRECTIONS, "direction"),
        (row.conflict_policy, CONFLICT_POLICIES, "conflict_policy"),
        (row.target_object, TARGET_OBJECTS, "target_object"),
    ):
        if value not in allowed:
            problem(f"{column.replace('_', ' ')} “{value}” is not one of {', '.join(allowed)}", column)
    if found:
        return found

    # Target object and field.
    if row.target_object in ("contact", "lead") and row.target_object != record_type:
        problem(f"this connection syncs {record_type}s, not {row.target_object}s", "target_object")
        return found
    target_schema = schema if row.target_object == record_type else other_schemas.get(row.target_object)
    if not row.target_field:
        problem("choose the CRM field to write", "target_field")
        return found
    if target_schema is None:
        problem(
            f"the {crm_label} {row.target_object} fields are not loaded, so this row cannot be checked",
            "target_object",
            WARNING,
        )
        return found
    target = target_schema.get(row.target_field)
    if target is None:
        problem(
            f"the {crm_label} {row.target_object} has no field “{row.target_field}” "
            "(refresh the fields if it was just created)",
            "target_field",
        )
        return found
    if target.read_only and row.outbound:
        problem(f"“{target.label}” is read-only in {crm_label}: it cannot be written", "target_field")

    # Source.
    value_type = _source_problems(row, index, problem)
    if value_type is None:
        return found

    # Transform.
    if row.transform:
        try:
            item = transforms.get(row.transform)
        except LookupError:
            problem(f"there is no transform “{row.transform}”", "transform")
            return found
        for message in transforms.check_options(row.transform, row.transform_options):
            problem(message, "transform")
        if (
            item.accepts is not None
            and value_type not in item.accepts
            and not (value_type == "list" and item.accepts & {"string", "text"})
        ):
            problem(f"“{item.label}” does not take {_a(value_type)} value ({row.describe_source()})", "transform")
        value_type = item.output_type(value_type)

    # Type.
    if row.outbound:
        accepted = ACCEPTS.get(target.type, ACCEPTS["string"])
        if value_type not in accepted:
            hint = SUGGESTED_TRANSFORM.get(target.type if value_type != "list" else "string")
            problem(
                f"type clash: {_a(value_type)} value ({row.describe_source()}) cannot go into "
                f"“{target.label}”, a {target.type} field" + (f"; use the {hint} transform" if hint else ""),
                "transform",
            )
        # Fixed values must be among the picklist's options.
        for label, fixed in _fixed_values(row):
            for item in _picklist_misses(target, fixed):
                problem(
                    f"“{target.label}” has no option “{item}” ({label})", "default" if label == "default" else "source"
                )
        if row.update_policy == APPEND and target.type not in ("multipicklist", "string", "text"):
            problem(f"append needs a multi-value field; “{target.label}” is a {target.type} field", "update_policy")
        if (
            target.max_length
            and value_type == "text"
            and target.type in ("string", "text")
            and row.transform != "truncate"
        ):
            problem(f"long text is cut to {target.max_length} characters in “{target.label}”", "transform", WARNING)

    # Inbound.
    if row.direction != "to_crm":
        if row.source_kind != SOURCE_FIELD:
            problem("only a field row can receive values from the CRM; set the direction to “to the CRM”", "direction")
        elif not sources.is_writable(row.source_key):
            problem(
                f"“{row.source_key}” is computed by capsule and cannot take values from the CRM; "
                "set the direction to “to the CRM”",
                "direction",
            )
    return found


def _source_problems(row: MappingRow, index: Mapping[str, sources.SourceField], problem) -> str | None:
    """Report source problems; return the source's value type, or None when it is unusable."""
    if row.source_kind == SOURCE_CONSTANT:
        if is_empty(row.constant):
            problem("the constant is empty", "source")
            return None
        return "string"
    if row.source_kind == SOURCE_TEMPLATE:
        messages = text_templates.syntax_errors(row.template)
        for key in text_templates.placeholders(row.template):
            if sources.resolve(key, index) is None:
                messages.append(f"the template uses “{key}”, which is not a capsule field")
        for message in messages:
            problem(message, "source")
        return None if messages else "string"
    if not row.source_key:
        problem("choose the capsule field to send", "source")
        return None
    source = sources.resolve(row.source_key, index)
    if source is None:
        problem(f"“{row.source_key}” is not a capsule field", "source")
        return None
    return source.type


def _fixed_values(row: MappingRow) -> list[tuple[str, Any]]:
    fixed: list[tuple[str, Any]] = []
    if row.source_kind == SOURCE_CONSTANT and not row.transform:
        fixed.append(("the constant", row.constant))
    if not is_empty(row.default) and not row.transform:
        fixed.append(("default", row.default))
    if row.transform == "picklist_map":
        for capsule_value, crm_value in (row.transform_options.get("map") or {}).items():
            fixed.append((f"the picklist map's value for “{capsule_value}”", crm_value))
    return fixed


def _picklist_misses(target: FieldSchema, value: Any) -> list[str]:
    if target.type not in ("picklist", "multipicklist") or not target.options:
        return []
    items = str(value).split(";") if target.type == "multipicklist" else [str(value)]
    return [item for item in (i.strip() for i in items) if item and item not in target.options]


def _duplicates(rows: Sequence[MappingRow]) -> list[Problem]:
    """Every outbound row writing a field an earlier row already writes."""
    first: dict[tuple[str, str], int] = {}
    problems = []
    for position, row in enumerate(rows):
        if not row.outbound or not row.target_field:
            continue
        key = (row.target_object, row.target_field)
        if key in first:
            problems.append(
                Problem(
                    position,
                    row.target_field,
                    f"row {first[key] + 1} already writes “{row.target_field}”: keep one row per CRM field",
                    column="target_field",
                )
            )
        else:
            first[key] = position
    return problems


def _unmapped_required(
    rows: Sequence[MappingRow],
    schema: Mapping[str, FieldSchema],
    record_type: str,
    required_overrides: Collection[str],
    crm_label: str,
) -> list[Problem]:
    mapped = {row.target_field for row in rows if row.outbound and row.target_object == record_type}
    required = [f.name for f in schema.values() if f.required and not f.read_only]
    required += [name for name in required_overrides if name not in required]
    problems = []
    for name in required:
        if name not in mapped:
            label = schema[name].label if name in schema else name
            problems.append(
                Problem(
                    None,
                    name,
                    f"{crm_label} requires “{label}” ({name}) on every {record_type}: map a field or a constant to it",
                    column="target_field",
                )
            )
    return problems


def _a(type_name: str) -> str:
    return ("an " if type_name[:1] in "aeiou" else "a ") + type_name
