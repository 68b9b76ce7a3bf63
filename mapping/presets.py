"""Standard mappings and industry templates, read from the YAML files under ``mapping/templates/``.

The file format is documented in ``mapping/templates/README.md``. In short:

- ``standard/<provider>.yaml`` — the mapping a new connection to that CRM starts with, per CRM
  object (``contact``, ``lead``): its ``rows``, the fields the CRM needs mapped (``required``,
  beyond what the CRM's schema marks), and the capsule ``custom_fields`` the rows write, which
  :func:`mapping.provisioning.provision_fields` can create. A provider with no file gets no
  standard mapping; adding one is adding a file.
- ``industry/<name>.yaml`` — a template: ``name``, ``label``, ``description`` and, per provider
  and object, extra ``rows`` laid over the standard mapping (a template row replaces the standard
  row writing the same CRM field).

Files are parsed strictly (unknown keys and bad values raise :class:`PresetError` naming the file
and row), once per process.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from mapping import rows as r
from mapping.rows import MappingRow

PRESETS_DIR = Path(__file__).resolve().parent / "templates"
STANDARD_DIR = PRESETS_DIR / "standard"
INDUSTRY_DIR = PRESETS_DIR / "industry"

ROW_KEYS = {
    "source",
    "constant",
    "template",
    "target",
    "object",
    "transform",
    "options",
    "default",
    "update",
    "direction",
    "conflict",
    "enabled",
}
CUSTOM_FIELD_KEYS = {"name", "label", "type", "description", "options", "manual_type", "extra"}
CUSTOM_FIELD_TYPES = {"string", "text", "number", "boolean", "date", "datetime", "url", "picklist"}


class PresetError(ValueError):
    """A preset file that does not follow the format."""


@dataclass(frozen=True)
class CustomFieldSpec:
    """A capsule field a standard mapping writes, which the CRM may not have yet."""

    name: str  # the CRM's API name (HubSpot property name, Salesforce Foo__c)
    label: str
    type: str  # one of CUSTOM_FIELD_TYPES (our vocabulary; the connector translates)
    description: str = ""
    options: tuple[str, ...] = ()
    manual_type: str = ""  # how the CRM's own settings page names the type, for by-hand instructions
    extra: Mapping[str, Any] = field(default_factory=dict, hash=False)  # provider-specific (HubSpot groupName)


@dataclass(frozen=True)
class ObjectPreset:
    object_kind: str
    rows: tuple[MappingRow, ...]
    required: tuple[str, ...] = ()
    custom_fields: tuple[CustomFieldSpec, ...] = ()


@dataclass(frozen=True)
class StandardMapping:
    provider: str
    objects: Mapping[str, ObjectPreset]

    def for_object(self, object_kind: str) -> ObjectPreset:
        return self.objects.get(object_kind) or ObjectPreset(object_kind, ())


@dataclass(frozen=True)
class IndustryTemplate:
    name: str
    label: str
    description: str
    providers: Mapping[str, Mapping[str, tuple[MappingRow, ...]]]  # provider -> object -> rows

    def rows_for(self, provider: str, object_kind: str) -> tuple[MappingRow, ...]:
        return tuple(self.providers.get(provider, {}).get(object_kind, ()))


# -- parsing -------------------------------------------------------------------------------------


def _read(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise PresetError(f"{path.name}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise PresetError(f"{path.name}: expected a mapping at the top level")
    return data


def parse_row(data: Any, object_kind: str, where: str) -> MappingRow:
    if not isinstance(data, dict):
        raise PresetError(f"{where}: a row must be a mapping")
    unknown = set(data) - ROW_KEYS
    if unknown:
        raise PresetError(f"{where}: unknown keys {sorted(unknown)}; rows take {sorted(ROW_KEYS)}")
    kinds = [kind for kind in ("source", "constant", "template") if kind in data]
    if len(kinds) != 1:
        raise PresetError(f"{where}: give exactly one of source, constant or template")
    if not data.get("target"):
        raise PresetError(f"{where}: target (the CRM field) is required")
    options = data.get("options") or {}
    if not isinstance(options, dict):
        raise PresetError(f"{where}: options must be a mapping")
    kind = {"source": r.SOURCE_FIELD, "constant": r.SOURCE_CONSTANT, "template": r.SOURCE_TEMPLATE}[kinds[0]]
    row = MappingRow(
        target_field=str(data["target"]),
        source_kind=kind,
        source_key=str(data["source"]) if kind == r.SOURCE_FIELD else "",
        constant=_text(data["constant"]) if kind == r.SOURCE_CONSTANT else "",
        template=str(data["template"]) if kind == r.SOURCE_TEMPLATE else "",
        target_object=str(data.get("object", object_kind)),
        transform=str(data.get("transform") or ""),
        transform_options=options,
        default=_text(data.get("default", "")),
        update_policy=str(data.get("update", r.OVERWRITE)),
        direction=str(data.get("direction", r.TO_CRM)),
        conflict_policy=str(data.get("conflict", r.CRM_WINS)),
        enabled=bool(data.get("enabled", True)),
    )
    for value, allowed, name in (
        (row.update_policy, r.UPDATE_POLICIES, "update"),
        (row.direction, r.DIRECTIONS, "direction"),
        (row.conflict_policy, r.CONFLICT_POLICIES, "conflict"),
        (row.target_object, r.TARGET_OBJECTS, "object"),
    ):
        if value not in allowed:
            raise PresetError(f"{where}: {name} {value!r} is not one of {allowed}")
    return row


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _rows(items: Any, object_kind: str, where: str) -> tuple[MappingRow, ...]:
    if not isinstance(items, list):
        raise PresetError(f"{where}: rows must be a list")
    return tuple(
        replace(parse_row(item, object_kind, f"{where} row {n}"), order=n) for n, item in enumerate(items, start=1)
    )


def _custom_field(data: Any, where: str) -> CustomFieldSpec:
    if not isinstance(data, dict):
        raise PresetError(f"{where}: a custom field must be a mapping")
    unknown = set(data) - CUSTOM_FIELD_KEYS
    if unknown:
        raise PresetError(f"{where}: unknown keys {sorted(unknown)}")
    for key in ("name", "label", "type"):
        if not data.get(key):
            raise PresetError(f"{where}: {key} is required")
    if data["type"] not in CUSTOM_FIELD_TYPES:
        raise PresetError(f"{where}: type {data['type']!r} is not one of {sorted(CUSTOM_FIELD_TYPES)}")
    return CustomFieldSpec(
        name=str(data["name"]),
        label=str(data["label"]),
        type=str(data["type"]),
        description=str(data.get("description", "")),
        options=tuple(str(option) for option in data.get("options") or ()),
        manual_type=str(data.get("manual_type", "")),
        extra=dict(data.get("extra") or {}),
    )


def parse_standard(data: dict[str, Any], where: str) -> StandardMapping:
    unknown = set(data) - {"provider", "objects"}
    if unknown or not data.get("provider") or not isinstance(data.get("objects"), dict):
        raise PresetError(f"{where}: a standard mapping has provider and objects (and nothing else)")
    objects = {}
    for object_kind, section in data["objects"].items():
        at = f"{where} {object_kind}"
        if object_kind not in r.TARGET_OBJECTS or not isinstance(section, dict):
            raise PresetError(f"{at}: objects are keyed by contact, lead or deal, each a mapping")
        unknown = set(section) - {"rows", "required", "custom_fields"}
        if unknown:
            raise PresetError(f"{at}: unknown keys {sorted(unknown)}")
        objects[object_kind] = ObjectPreset(
            object_kind=object_kind,
            rows=_rows(section.get("rows", []), object_kind, at),
            required=tuple(str(name) for name in section.get("required") or ()),
            custom_fields=tuple(
                _custom_field(item, f"{at} custom field {n}")
                for n, item in enumerate(section.get("custom_fields") or [], start=1)
            ),
        )
    return StandardMapping(provider=str(data["provider"]), objects=objects)


def parse_industry(data: dict[str, Any], where: str) -> IndustryTemplate:
    unknown = set(data) - {"name", "label", "description", "providers"}
    if unknown or not data.get("name") or not data.get("label") or not isinstance(data.get("providers"), dict):
        raise PresetError(f"{where}: a template has name, label, description and providers")
    providers: dict[str, dict[str, tuple[MappingRow, ...]]] = {}
    for provider, objects in data["providers"].items():
        if not isinstance(objects, dict):
            raise PresetError(f"{where} {provider}: expected objects (contact, lead) with rows")
        providers[str(provider)] = {}
        for object_kind, section in objects.items():
            at = f"{where} {provider} {object_kind}"
            if object_kind not in r.TARGET_OBJECTS or not isinstance(section, dict) or set(section) - {"rows"}:
                raise PresetError(f"{at}: expected contact, lead or deal with rows")
            providers[str(provider)][object_kind] = _rows(section.get("rows", []), object_kind, at)
    return IndustryTemplate(
        name=str(data["name"]),
        label=str(data["label"]),
        description=str(data.get("description", "")),
        providers=providers,
    )


# -- loading -------------------------------------------------------------------------------------


@cache
def standard_mappings() -> dict[str, StandardMapping]:
    """Every standard mapping by provider name."""
    found = {}
    for path in sorted(STANDARD_DIR.glob("*.yaml")):
        preset = parse_standard(_read(path), path.name)
        if preset.provider != path.stem:
            raise PresetError(f"{path.name}: provider {preset.provider!r} does not match the file name")
        found[preset.provider] = preset
    return found


def standard_mapping(provider: str) -> StandardMapping | None:
    """The provider's standard mapping, or None when it has no file (it then starts empty)."""
    return standard_mappings().get(provider)


@cache
def industry_templates() -> dict[str, IndustryTemplate]:
    """Every industry template by name, in file-name order."""
    found = {}
    for path in sorted(INDUSTRY_DIR.glob("*.yaml")):
        template = parse_industry(_read(path), path.name)
        if template.name != path.stem:
            raise PresetError(f"{path.name}: name {template.name!r} does not match the file name")
        found[template.name] = template
    return found


def industry_template(name: str) -> IndustryTemplate:
    try:
        return industry_templates()[name]
    except KeyError:
        raise LookupError(f"no template named {name!r}; there are {', '.join(industry_templates())}") from None


def template_rows(provider: str, object_kind: str, template: IndustryTemplate | None) -> list[MappingRow]:
    """The standard rows for the provider's object with the template's rows laid over them: a
    template row replaces the standard row writing the same CRM field, the rest are added."""
    standard = standard_mapping(provider)
    base = list(standard.for_object(object_kind).rows) if standard else []
    extra = list(template.rows_for(provider, object_kind)) if template else []
    return merge_rows(base, extra)


def merge_rows(base: list[MappingRow], overlay: list[MappingRow]) -> list[MappingRow]:
    """``base`` with each ``overlay`` row replacing the base row of the same target (object and
    field), in place; overlay rows with new targets are appended. Orders are renumbered."""
    position = {(row.target_object, row.target_field): n for n, row in enumerate(base)}
    merged = list(base)
    for row in overlay:
        key = (row.target_object, row.target_field)
        if key in position:
            merged[position[key]] = row
        else:
            position[key] = len(merged)
            merged.append(row)
    return r.renumbered(merged)


def object_preset(provider: str, object_kind: str) -> ObjectPreset:
    standard = standard_mapping(provider)
    return standard.for_object(object_kind) if standard else ObjectPreset(object_kind, ())
