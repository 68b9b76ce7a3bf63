"""Changing a connection's mapping: every save is versioned and audited; presets are applied
through the same path. Also the checks that gate saving and activation."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from crmsync import audit
from integrations.models import Connection
from mapping import presets, sources
from mapping.models import FieldMapping, MappingVersion
from mapping.problems import ERROR, Problem
from mapping.rows import MappingRow, renumbered, rows_for
from mapping.schema import cached_schemas
from mapping.validation import validate


@dataclass
class ApplyReport:
    """What applying a standard mapping or a template did."""

    version: MappingVersion | None  # None: nothing changed
    rows: list[MappingRow] = field(default_factory=list)
    waiting: list[tuple[MappingRow, str]] = field(default_factory=list)  # rows left disabled, and why

    @property
    def changed(self) -> bool:
        return self.version is not None


def _actor_label(request: HttpRequest | None, actor: AbstractBaseUser | None, actor_label: str | None) -> str:
    if actor_label:
        return actor_label
    user = actor or (getattr(request, "user", None) if request is not None else None)
    if user is not None and user.is_authenticated:
        return user.get_username()
    return "system"


def _actor_user(request: HttpRequest | None, actor: AbstractBaseUser | None) -> AbstractBaseUser | None:
    user = actor or (getattr(request, "user", None) if request is not None else None)
    return user if user is not None and user.is_authenticated else None


def _diff(before: list[MappingRow], after: list[MappingRow]) -> dict[str, list[str]]:
    """Which CRM fields' rows were added, removed or changed (for the audit entry)."""

    def keyed(rows: list[MappingRow]) -> dict[str, dict[str, Any]]:
        result = {}
        for row in rows:
            data = row.as_dict()
            data.pop("order")
            result[f"{row.target_object}.{row.target_field}"] = data
        return result

    old, new = keyed(before), keyed(after)
    return {
        "added": sorted(new.keys() - old.keys()),
        "removed": sorted(old.keys() - new.keys()),
        "changed": sorted(key for key in old.keys() & new.keys() if old[key] != new[key]),
    }


def save_mapping(
    connection: Connection,
    rows: Sequence[MappingRow],
    *,
    request: HttpRequest | None = None,
    actor: AbstractBaseUser | None = None,
    actor_label: str | None = None,
    summary: str = "",
) -> MappingVersion | None:
    """Replace the connection's rows with ``rows``, write a MappingVersion and an audit entry
    ("mapping.changed" with before, after and a per-field diff). Returns None — and writes
    nothing — when the rows equal the current ones. Callers validate first (:func:`problems_for`);
    this function stores what it is given."""
    new_rows = renumbered(rows)
    with transaction.atomic():
        # The row lock serialises concurrent saves of one connection, so version numbers are gap-free.
        Connection.objects.select_for_update().filter(pk=connection.pk).first()
        before = rows_for(connection)
        if _same_rows(before, new_rows):
            return None
        FieldMapping.objects.filter(connection=connection).delete()
        FieldMapping.objects.bulk_create([FieldMapping.from_row(connection, row) for row in new_rows])
        return record_change(
            connection, before, new_rows, request=request, actor=actor, actor_label=actor_label, summary=summary
        )


def _same_rows(before: Sequence[MappingRow], after: Sequence[MappingRow]) -> bool:
    return [row.as_dict() for row in before] == [row.as_dict() for row in after]


def record_change(
    connection: Connection,
    before: Sequence[MappingRow],
    after: Sequence[MappingRow],
    *,
    request: HttpRequest | None = None,
    actor: AbstractBaseUser | None = None,
    actor_label: str | None = None,
    summary: str = "",
) -> MappingVersion | None:
    """Write the version and audit entry for rows already stored (the admin's inline saves them
    itself). None when nothing changed."""
    if _same_rows(before, after):
        return None
    with transaction.atomic():
        Connection.objects.select_for_update().filter(pk=connection.pk).first()
        last = MappingVersion.objects.filter(connection=connection).order_by("-number").first()
        diff = _diff(list(before), list(after))
        version = MappingVersion.objects.create(
            connection=connection,
            number=(last.number + 1) if last else 1,
            rows=[row.as_dict() for row in after],
            changed_by=_actor_user(request, actor),
            changed_by_label=_actor_label(request, actor, actor_label)[:200],
            changed_at=timezone.now(),
            summary=(summary or _summary(diff))[:500],
        )
        audit.record(
            "mapping.changed",
            request=request,
            # With a request the audit log takes the user, address and agent from it.
            actor_label=actor_label if request is not None else _actor_label(None, actor, actor_label),
            obj=connection,
            changes={
                "version": version.number,
                "summary": version.summary,
                "diff": diff,
                "before": [row.as_dict() for row in before],
                "after": version.rows,
            },
        )
    return version


def _summary(diff: dict[str, list[str]]) -> str:
    parts = [f"{verb} {', '.join(names)}" for verb, names in diff.items() if names]
    return "; ".join(parts) or "reordered rows"


def problems_for(connection: Connection, rows: Sequence[MappingRow] | None = None) -> list[Problem]:
    """Validation of ``rows`` (default: the saved rows) against the connection's cached schema and
    the account's catalogue. Fields never fetched are an error: nothing can be checked."""
    rows = rows_for(connection) if rows is None else list(rows)
    schemas = cached_schemas(connection)
    record_type = connection.record_type
    label = connection.spec.label
    if record_type not in schemas:
        return [
            Problem(
                None,
                "",
                f"The {label} {record_type} fields are not loaded yet: refresh the fields first.",
                ERROR,
                "target_field",
            )
        ]
    preset = presets.object_preset(connection.provider, record_type)
    return validate(
        rows,
        schemas[record_type],
        record_type=record_type,
        required_overrides=preset.required,
        source_index=sources.catalogue_index(connection.account),
        other_schemas={kind: fields for kind, fields in schemas.items() if kind != record_type},
        crm_label=label,
    )


def _readiness(connection: Connection, rows: list[MappingRow]) -> tuple[list[MappingRow], list[tuple[MappingRow, str]]]:
    """Preset rows as they can be applied now: a row whose source is not available (its source
    group is not installed) or whose target is a capsule custom field the CRM does not have yet
    (or whose fields were never loaded) is kept but disabled, with the reason."""
    preset = presets.object_preset(connection.provider, connection.record_type)
    custom = {spec.name for spec in preset.custom_fields}
    schema = cached_schemas(connection).get(connection.record_type)
    index = sources.catalogue_index(connection.account)
    ready, waiting = [], []
    for row in rows:
        reason = ""
        if row.source_kind == "field" and sources.resolve(row.source_key, index) is None:
            reason = f"the capsule field “{row.source_key}” is not available"
        elif row.target_field in custom and (schema is None or row.target_field not in schema):
            reason = f"the CRM has no field “{row.target_field}” yet: create the capsule fields"
        if reason and row.enabled:
            row = replace(row, enabled=False)
            waiting.append((row, reason))
        ready.append(row)
    return ready, waiting


def apply_standard_mapping(
    connection: Connection, *, request: HttpRequest | None = None, actor: AbstractBaseUser | None = None
) -> ApplyReport:
    """Give a connection its provider's standard mapping — only if it has no rows yet, so calling
    it again (the connect flow and the post-save signal both do) changes nothing. A provider
    without a standard mapping file gets no rows."""
    if FieldMapping.objects.filter(connection=connection).exists():
        return ApplyReport(version=None, rows=rows_for(connection))
    rows = presets.template_rows(connection.provider, connection.record_type, None)
    if not rows:
        return ApplyReport(version=None)
    ready, waiting = _readiness(connection, rows)
    version = save_mapping(
        connection, ready, request=request, actor=actor, summary=f"standard {connection.spec.label} mapping applied"
    )
    return ApplyReport(version=version, rows=ready, waiting=waiting)


REPLACE, MERGE = "replace", "merge"


def apply_template(
    connection: Connection,
    name: str,
    actor: AbstractBaseUser | None = None,
    *,
    mode: str = REPLACE,
    request: HttpRequest | None = None,
) -> ApplyReport:
    """Apply industry template ``name`` in one step, versioned and audited.

    ``replace``: the mapping becomes the standard mapping with the template's rows laid over it.
    ``merge``: the current rows stay; the template's rows replace rows writing the same CRM
    field and the others are added. Rows that cannot work yet are added disabled (see the
    report's ``waiting``). The rows stay editable afterwards like any others.
    """
    template = presets.industry_template(name)
    incoming = presets.template_rows(connection.provider, connection.record_type, template)
    if mode == MERGE:
        incoming = presets.merge_rows(
            rows_for(connection), list(template.rows_for(connection.provider, connection.record_type))
        )
    elif mode != REPLACE:
        raise ValueError(f"mode must be {REPLACE!r} or {MERGE!r}")
    ready, waiting = _readiness(connection, incoming)
    version = save_mapping(
        connection, ready, request=request, actor=actor, summary=f"template “{template.label}” applied ({mode})"
    )
    return ApplyReport(version=version, rows=ready, waiting=waiting)


def activate(connection: Connection, *, request: HttpRequest | None = None) -> list[Problem]:
    """Switch sync on (``activated_at``) when the mapping has no errors; returns the errors that
    refused it (empty when activated). Audited either way."""
    found = [problem for problem in problems_for(connection) if problem.is_error]
    if found:
        audit.record(
            "mapping.activation_refused",
            request=request,
            obj=connection,
            changes={"errors": [str(problem) for problem in found[:50]]},
        )
        return found
    connection.activated_at = timezone.now()
    connection.save(update_fields=["activated_at", "updated_at"])
    audit.record(
        "connection.activated",
        request=request,
        obj=connection,
        changes={"activated_at": connection.activated_at.isoformat()},
    )
    return []


def deactivate(connection: Connection, *, request: HttpRequest | None = None) -> None:
    connection.activated_at = None
    connection.save(update_fields=["activated_at", "updated_at"])
    audit.record("connection.deactivated", request=request, obj=connection)
