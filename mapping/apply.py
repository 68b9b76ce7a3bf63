"""The one pure function: (prospect snapshot, mapping rows, CRM schema) → CRM payload + problems.

The sync engine calls only :func:`build_payload` (and :func:`payload_hash` to skip records whose
payload did not change); bi-directional sync calls :func:`apply_inbound`. Nothing here touches
the database or the network: rows are :class:`~mapping.rows.MappingRow` values, the schema is a
``{name: FieldSchema}`` dict, and the snapshot comes from :func:`mapping.sources.load_snapshots`.

Per row, outbound:

1. the value: the snapshot's ``source_key``, the constant, or the rendered template;
2. empty (None, blank text, empty list) → the row's ``default``; still empty → nothing is sent
   (we never blank a CRM field), and a *required* CRM field left empty is a problem;
3. the transform (errors become problems; the field is left out of this record's payload);
4. the update policy against what the CRM holds (see :func:`_policy`);
5. fitted to the CRM field: JSON types, lists ``;``-joined, text cut to ``max_length`` (with a
   warning), picklist values checked against the field's options.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from integrations.connector import FieldSchema
from mapping import text_templates, transforms
from mapping.problems import ERROR, WARNING, Problem
from mapping.rows import (
    APPEND,
    CAPSULE_WINS,
    CRM_WINS,
    IF_EMPTY,
    NEVER_OVERWRITE,
    NEWEST_WINS,
    SOURCE_CONSTANT,
    SOURCE_TEMPLATE,
    MappingRow,
)

MULTI_SEPARATOR = ";"
PICKLIST_TYPES = ("picklist", "multipicklist")


@dataclass(frozen=True)
class PayloadResult:
    fields: dict[str, Any]
    problems: list[Problem]
    # Fields sent only when the record is created: ``if_empty`` rows built without ``crm_current``
    # (the CRM's values are unknown). A caller updating an existing record without reading it
    # first leaves these out, so a value someone set in the CRM is not overwritten.
    create_only: frozenset[str] = field(default_factory=frozenset)

    @property
    def errors(self) -> list[Problem]:
        return [problem for problem in self.problems if problem.is_error]

    def for_update(self) -> dict[str, Any]:
        """The fields to send to a record that exists but whose values were not read."""
        return {name: value for name, value in self.fields.items() if name not in self.create_only}


def is_empty(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, list | tuple | set | dict):
        return len(value) == 0
    return False


def source_value(row: MappingRow, snapshot: Mapping[str, Any]) -> Any:
    """The row's raw value for this snapshot, before default and transform."""
    if row.source_kind == SOURCE_CONSTANT:
        return row.constant
    if row.source_kind == SOURCE_TEMPLATE:
        return text_templates.render(row.template, snapshot)
    return snapshot.get(row.source_key)


def build_payload(
    snapshot: Mapping[str, Any],
    rows: Sequence[MappingRow],
    schema: Mapping[str, FieldSchema],
    *,
    crm_current: Mapping[str, Any] | None = None,
    previously_sent: Mapping[str, Any] | None = None,
    object_kind: str | None = None,
) -> PayloadResult:
    """The CRM payload for one prospect.

    - ``rows``: enabled rows whose direction is ``to_crm`` or ``both`` are used (all of one CRM
      object; pass ``object_kind`` to keep only the rows targeting it).
    - ``schema``: the target object's fields by name. A row whose field is missing or read-only
      sends nothing and reports a problem.
    - ``crm_current``: the CRM record's current values when the caller has read them; ``None``
      means unknown — for a new record, or an update that did not read the record first.
    - ``previously_sent``: what we last sent for this record (``never_overwrite``).

    Update policies: ``overwrite`` always sends; ``if_empty`` skips a field that holds a value in
    ``crm_current`` — and when ``crm_current`` is None the field is marked ``create_only`` (sent
    when the record is created, left out of updates by :meth:`PayloadResult.for_update`);
    ``never_overwrite`` skips a field once we have sent it (``previously_sent`` has it) or the
    CRM holds a value; ``append`` adds our values to the CRM's ``;``-separated multi-value.
    """
    fields: dict[str, Any] = {}
    problems: list[Problem] = []
    create_only: set[str] = set()
    for index, row in enumerate(rows):
        if not row.outbound or (object_kind is not None and row.target_object != object_kind):
            continue
        target = schema.get(row.target_field)
        if target is None:
            problems.append(
                Problem(index, row.target_field, f"the CRM has no field “{row.target_field}”", column="target_field")
            )
            continue
        if target.read_only:
            problems.append(
                Problem(index, row.target_field, f"“{target.label}” is read-only in the CRM", column="target_field")
            )
            continue
        value = source_value(row, snapshot)
        if is_empty(value):
            value = row.default
        if is_empty(value):
            if target.required:
                problems.append(
                    Problem(
                        index,
                        row.target_field,
                        f"“{target.label}” is required, and this prospect has no "
                        f"{row.describe_source()}: set a default",
                        column="default",
                    )
                )
            continue
        if row.transform:
            try:
                value = transforms.apply(row.transform, value, row.transform_options, target)
            except transforms.TransformError as exc:
                problems.append(Problem(index, row.target_field, str(exc), column="transform"))
                continue
            except LookupError as exc:
                problems.append(Problem(index, row.target_field, str(exc), column="transform"))
                continue
            if is_empty(value):
                continue
        policy = _policy(row, target, value, crm_current, previously_sent)
        if policy is _SKIP:
            continue
        if policy is _CREATE_ONLY:
            create_only.add(row.target_field)
        else:
            value = policy
        fitted = _fit(index, row, target, value, problems)
        if fitted is not _SKIP:
            fields[row.target_field] = fitted
    return PayloadResult(fields=fields, problems=problems, create_only=frozenset(create_only & fields.keys()))


class _Marker:
    def __repr__(self) -> str:
        return "<marker>"


_SKIP, _CREATE_ONLY = _Marker(), _Marker()


def _policy(
    row: MappingRow,
    target: FieldSchema,
    value: Any,
    crm_current: Mapping[str, Any] | None,
    previously_sent: Mapping[str, Any] | None,
) -> Any:
    """The value to send under the row's update policy, _SKIP, or _CREATE_ONLY (send as is)."""
    current = None if crm_current is None else crm_current.get(row.target_field)
    if row.update_policy == IF_EMPTY:
        if crm_current is None:
            return _CREATE_ONLY
        return _SKIP if not is_empty(current) else value
    if row.update_policy == NEVER_OVERWRITE:
        if previously_sent is not None and row.target_field in previously_sent:
            return _SKIP
        return _SKIP if not is_empty(current) else value
    if row.update_policy == APPEND:
        return _merge_multi(current, value)
    return value


def _split_multi(value: Any) -> list[str]:
    if is_empty(value):
        return []
    items = value if isinstance(value, list | tuple) else str(value).split(MULTI_SEPARATOR)
    return [str(item).strip() for item in items if str(item).strip()]


def _merge_multi(current: Any, value: Any) -> str:
    """The CRM's values followed by ours not already there, ``;``-separated."""
    merged = list(dict.fromkeys(_split_multi(current) + _split_multi(value)))
    return MULTI_SEPARATOR.join(merged)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, list | tuple | set):
        return [_jsonable(item) for item in value]
    return value


def _fit(index: int, row: MappingRow, target: FieldSchema, value: Any, problems: list[Problem]) -> Any:
    """The value in a shape the CRM field takes, or _SKIP with a problem."""
    value = _jsonable(value)
    if isinstance(value, list):
        value = MULTI_SEPARATOR.join(str(item) for item in value if not is_empty(item))
    mismatch = _type_mismatch(target, value)
    if mismatch:
        problems.append(Problem(index, row.target_field, mismatch, column="transform"))
        return _SKIP
    if target.type in PICKLIST_TYPES and target.options:
        chosen = _split_multi(value) if target.type == "multipicklist" else [str(value)]
        unknown = [item for item in chosen if item not in target.options]
        if unknown:
            listed = ", ".join(target.options[:12]) + ("…" if len(target.options) > 12 else "")
            problems.append(
                Problem(
                    index,
                    row.target_field,
                    f"“{target.label}” has no option {', '.join(repr(u) for u in unknown)} (it has: {listed})",
                    column="transform",
                )
            )
            return _SKIP
    if isinstance(value, str) and target.max_length and len(value) > target.max_length:
        problems.append(
            Problem(
                index,
                row.target_field,
                f"cut to {target.max_length} characters (“{target.label}” holds no more; the value had {len(value)})",
                severity=WARNING,
                column="transform",
            )
        )
        value = value[: target.max_length]
    return value


def _type_mismatch(target: FieldSchema, value: Any) -> str:
    """Why ``value`` cannot go into a number or yes/no field ("" when it can): a last check, so a
    mapping saved before the CRM changed a field's type never sends a value the CRM refuses."""
    if target.type == "number":
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            return f"“{target.label}” takes a number, not {value!r}"
        if isinstance(value, str):
            try:
                Decimal(value.strip())
            except ArithmeticError:
                return f"“{target.label}” takes a number, not “{value}”: use the number transform"
    if target.type == "boolean" and not (isinstance(value, bool) or str(value).lower() in ("true", "false")):
        return f"“{target.label}” takes true or false, not “{value}”: use the boolean transform"
    return ""


def payload_hash(fields: Mapping[str, Any]) -> str:
    """A stable fingerprint of a payload: sha256 of its JSON with sorted keys. Equal payloads give
    equal hashes across processes and runs, so the sync engine skips records whose hash equals
    the one stored with their last successful sync."""
    text = json.dumps(_jsonable_tree(fields), sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _jsonable_tree(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(key): _jsonable_tree(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set):
        return [_jsonable_tree(item) for item in value]
    return _jsonable(value)


# -- inbound -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldTimes:
    """When each side last changed a field (``None``: unknown, counts as oldest)."""

    crm: dt.datetime | None = None
    capsule: dt.datetime | None = None


@dataclass(frozen=True)
class Conflict:
    source_key: str
    crm_field: str
    crm_value: Any
    capsule_value: Any
    policy: str
    winner: str  # "crm" or "capsule"


@dataclass(frozen=True)
class InboundResult:
    updates: dict[str, Any]  # source key -> new capsule value
    conflicts: list[Conflict]
    problems: list[Problem] = field(default_factory=list)


def apply_inbound(
    crm_fields: Mapping[str, Any],
    rows: Sequence[MappingRow],
    current_snapshot: Mapping[str, Any],
    *,
    field_timestamps: Mapping[str, FieldTimes] | None = None,
) -> InboundResult:
    """What a CRM record's values change in the capsule's data, under each row's conflict policy.

    Only enabled field rows whose direction is ``from_crm`` or ``both`` take part, and only CRM
    fields present in ``crm_fields``. The CRM value goes through the inverse of the row's
    transform when it has one (epoch ms back to a date, a picklist value back to ours).

    - Same value on both sides, or an empty CRM value: nothing (we never blank capsule data).
    - Empty capsule value: the CRM's value is taken; no conflict.
    - Both set and different — a conflict, recorded, and decided by the row's policy:
      ``crm_wins`` takes the CRM's value; ``capsule_wins`` keeps ours; ``newest_wins`` compares
      ``field_timestamps[source_key]`` (a side with no time is older; a tie goes to the CRM).
    """
    field_timestamps = field_timestamps or {}
    updates: dict[str, Any] = {}
    conflicts: list[Conflict] = []
    problems: list[Problem] = []
    for index, row in enumerate(rows):
        if not row.inbound or row.target_field not in crm_fields:
            continue
        crm_value = crm_fields[row.target_field]
        if is_empty(crm_value):
            continue
        inverse = _inverse(row)
        if inverse is not None:
            try:
                crm_value = inverse(crm_value, row.transform_options, None)
            except transforms.TransformError as exc:
                problems.append(Problem(index, row.target_field, str(exc), column="transform"))
                continue
        current = current_snapshot.get(row.source_key)
        if _same(current, crm_value):
            continue
        if is_empty(current):
            updates[row.source_key] = crm_value
            continue
        winner = _winner(row.conflict_policy, field_timestamps.get(row.source_key))
        conflicts.append(Conflict(row.source_key, row.target_field, crm_value, current, row.conflict_policy, winner))
        if winner == "crm":
            updates[row.source_key] = crm_value
    return InboundResult(updates=updates, conflicts=conflicts, problems=problems)


def _inverse(row: MappingRow) -> transforms.TransformFunc | None:
    if not row.transform:
        return None
    try:
        return transforms.get(row.transform).inverse
    except LookupError:
        return None


def _same(current: Any, crm_value: Any) -> bool:
    if isinstance(current, bool) or isinstance(crm_value, bool):
        return current == crm_value
    if isinstance(current, int | float | Decimal) and not isinstance(crm_value, bool):
        try:
            return Decimal(str(current)) == Decimal(str(crm_value))
        except ArithmeticError:
            return False
    return _jsonable(current) == _jsonable(crm_value)


def _winner(policy: str, times: FieldTimes | None) -> str:
    if policy == CAPSULE_WINS:
        return "capsule"
    if policy == NEWEST_WINS:
        crm_at = times.crm if times else None
        capsule_at = times.capsule if times else None
        if capsule_at is not None and (crm_at is None or capsule_at > crm_at):
            return "capsule"
        return "crm"
    if policy != CRM_WINS:
        raise ValueError(f"unknown conflict policy {policy!r}")
    return "crm"


__all__ = [
    "ERROR",
    "WARNING",
    "Conflict",
    "FieldTimes",
    "InboundResult",
    "PayloadResult",
    "Problem",
    "apply_inbound",
    "build_payload",
    "payload_hash",
]
