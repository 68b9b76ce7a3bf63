"""``MappingRow``: one mapping row as a plain frozen value, so the pure functions (build_payload,
validate, apply_inbound) never touch the database. Built from FieldMapping rows, form data or the
YAML presets, and back."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from integrations.models import Connection
    from mapping.models import FieldMapping

# Where a row's value comes from.
SOURCE_FIELD, SOURCE_CONSTANT, SOURCE_TEMPLATE = "field", "constant", "template"
SOURCE_KINDS = (SOURCE_FIELD, SOURCE_CONSTANT, SOURCE_TEMPLATE)

# What the CRM already holds decides whether a value is written.
OVERWRITE, IF_EMPTY, NEVER_OVERWRITE, APPEND = "overwrite", "if_empty", "never_overwrite", "append"
UPDATE_POLICIES = (OVERWRITE, IF_EMPTY, NEVER_OVERWRITE, APPEND)

TO_CRM, FROM_CRM, BOTH = "to_crm", "from_crm", "both"
DIRECTIONS = (TO_CRM, FROM_CRM, BOTH)
OUTBOUND = (TO_CRM, BOTH)
INBOUND = (FROM_CRM, BOTH)

# Which side wins when a field mapped "from the CRM" differs on both sides.
CRM_WINS, CAPSULE_WINS, NEWEST_WINS = "crm_wins", "capsule_wins", "newest_wins"
CONFLICT_POLICIES = (CRM_WINS, CAPSULE_WINS, NEWEST_WINS)

TARGET_OBJECTS = ("contact", "lead", "deal")


@dataclass(frozen=True)
class MappingRow:
    target_field: str
    source_kind: str = SOURCE_FIELD
    source_key: str = ""  # a catalogue key (source_kind "field")
    constant: str = ""  # source_kind "constant"
    template: str = ""  # source_kind "template": "{{ first_name }} at {{ company }}"
    target_object: str = "contact"
    transform: str = ""  # a name in mapping.transforms, or "" for none
    transform_options: Mapping[str, Any] = field(default_factory=dict, hash=False)
    default: str = ""  # sent when the source is empty
    update_policy: str = OVERWRITE
    direction: str = TO_CRM
    conflict_policy: str = CRM_WINS
    order: int = 0
    enabled: bool = True

    @property
    def outbound(self) -> bool:
        return self.enabled and self.direction in OUTBOUND

    @property
    def inbound(self) -> bool:
        return self.enabled and self.direction in INBOUND and self.source_kind == SOURCE_FIELD

    def source_keys(self) -> list[str]:
        """The catalogue keys this row reads (a field, or a template's placeholders)."""
        if self.source_kind == SOURCE_TEMPLATE:
            from mapping.text_templates import placeholders

            return placeholders(self.template)
        if self.source_kind == SOURCE_FIELD:
            return [self.source_key]
        return []

    def describe_source(self) -> str:
        if self.source_kind == SOURCE_CONSTANT:
            return f"constant “{self.constant}”"
        if self.source_kind == SOURCE_TEMPLATE:
            return f"template “{self.template}”"
        return self.source_key

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, for MappingVersion history and the audit log."""
        data = asdict(self)
        data["transform_options"] = dict(self.transform_options)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MappingRow:
        names = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in names})

    @classmethod
    def from_model(cls, row: FieldMapping) -> MappingRow:
        return cls(
            target_field=row.target_field,
            source_kind=row.source_kind,
            source_key=row.source_key,
            constant=row.constant,
            template=row.template,
            target_object=row.target_object,
            transform=row.transform,
            transform_options=dict(row.transform_options or {}),
            default=row.default,
            update_policy=row.update_policy,
            direction=row.direction,
            conflict_policy=row.conflict_policy,
            order=row.order,
            enabled=row.enabled,
        )


def rows_for(connection: Connection, target_object: str | None = None) -> list[MappingRow]:
    """The connection's rows in order, as plain values (one query). ``target_object`` keeps only
    the rows of one CRM object (the connection's record type for person payloads, "deal"…)."""
    from mapping.models import FieldMapping

    queryset = FieldMapping.objects.filter(connection=connection).order_by("order", "id")
    if target_object is not None:
        queryset = queryset.filter(target_object=target_object)
    return [MappingRow.from_model(row) for row in queryset]


def renumbered(rows: Iterable[MappingRow]) -> list[MappingRow]:
    """The rows with ``order`` set to their position."""
    from dataclasses import replace

    return [replace(row, order=index) for index, row in enumerate(rows)]
