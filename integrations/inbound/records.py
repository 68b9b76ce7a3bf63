"""Shared steps of applying a CRM record's values to one prospect's CRM data.

Callers hold a transaction; ``locked_data`` takes the row lock that serialises every change to
one prospect's CRM data, whichever worker applies it.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from crmsync.models import Prospect
from integrations.inbound import cache
from integrations.inbound.echo import same_value
from integrations.models import Connection, InboundEvent, ProspectCrmData, SyncConflict
from mapping.apply import FieldTimes, apply_inbound
from mapping.rows import MappingRow
from mapping.sources import load_snapshots


@dataclass(frozen=True)
class FieldChange:
    before: Any
    after: Any

    def as_dict(self) -> dict[str, Any]:
        return {"from": self.before, "to": self.after}


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat()


def parse_iso(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        return None


def jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def locked_data(prospect: Prospect) -> ProspectCrmData:
    """The prospect's CRM data row, created if missing, locked until the transaction ends."""
    ProspectCrmData.objects.bulk_create([ProspectCrmData(prospect=prospect)], ignore_conflicts=True)
    return ProspectCrmData.objects.select_for_update().get(prospect=prospect)


def seen_key(connection_id: int, object_kind: str, crm_id: str) -> str:
    return f"{connection_id}:{object_kind}:{crm_id}"


def fresh_changes(
    data: ProspectCrmData, key: str, values: Mapping[str, Any], at: dt.datetime
) -> dict[str, FieldChange]:
    """The fields whose value differs from the one last seen on this record, recorded as seen.

    A value older than the one already seen (a webhook delivered late, or a poll racing a
    webhook) is not a change: per-field CRM times make the order of arrival irrelevant.
    """
    seen: dict[str, Any] = dict(data.crm_seen.get(key) or {})
    changed: dict[str, FieldChange] = {}
    for name, value in values.items():
        previous = seen.get(name)
        if isinstance(previous, Mapping):
            seen_at = parse_iso(previous.get("at"))
            if seen_at is not None and at < seen_at:
                continue
            if same_value(previous.get("v"), value):
                continue
            before = previous.get("v")
        else:
            before = None
            if _blank(value):
                # First sight of an empty field (or an unticked box): the default state, not news,
                # and no reason to take a record we just wrote for a person's edit.
                seen[name] = {"v": jsonable(value), "at": iso(at)}
                continue
        changed[name] = FieldChange(before, jsonable(value))
        seen[name] = {"v": jsonable(value), "at": iso(at)}
    data.crm_seen = {**data.crm_seen, key: seen}
    return changed


def _blank(value: Any) -> bool:
    return value in (None, "", False, []) or (isinstance(value, str) and value.strip().lower() in ("", "false"))


def _capsule_view(prospect: Prospect, data: ProspectCrmData) -> tuple[dict[str, Any], dict[str, dt.datetime]]:
    """The capsule's current value and its time per source key: the prospect's own value at its
    last update, or the CRM-sourced value taken later than that."""
    snapshot = dict(load_snapshots(prospect.account, [prospect.pk]).get(prospect.pk) or {})
    times: dict[str, dt.datetime] = {}
    for key in set(snapshot) | set(data.fields):
        taken_at = parse_iso(data.field_timestamps.get(key))
        if key in data.fields and taken_at is not None and taken_at >= prospect.updated_at:
            snapshot[key] = data.fields[key]
            times[key] = taken_at
        else:
            times[key] = prospect.updated_at
    return snapshot, times


def apply_mapped(
    connection: Connection,
    prospect: Prospect,
    data: ProspectCrmData,
    rows: Sequence[MappingRow],
    changed: Mapping[str, Any],
    at: dt.datetime,
    event: InboundEvent,
) -> tuple[list[str], int]:
    """Mapped fields through the mapping's conflict policies: (source keys updated, conflicts recorded)."""
    if not rows or not changed:
        return [], 0
    snapshot, capsule_times = _capsule_view(prospect, data)
    times = {row.source_key: FieldTimes(crm=at, capsule=capsule_times.get(row.source_key)) for row in rows}
    result = apply_inbound(changed, rows, snapshot, field_timestamps=times)
    updated: list[str] = []
    fields, stamps = dict(data.fields), dict(data.field_timestamps)
    for key, value in result.updates.items():
        fields[key] = jsonable(value)
        stamps[key] = iso(at)
        updated.append(key)
    data.fields, data.field_timestamps = fields, stamps
    SyncConflict.objects.bulk_create(
        [
            SyncConflict(
                connection=connection,
                prospect=prospect,
                inbound_event_id=event.pk,
                source_key=conflict.source_key,
                crm_field=conflict.crm_field,
                capsule_value=jsonable(conflict.capsule_value),
                crm_value=jsonable(conflict.crm_value),
                policy=conflict.policy,
                winner=conflict.winner,
                at=timezone.now(),
            )
            for conflict in result.conflicts
        ]
    )
    return updated, len(result.conflicts)


def changed_prospect(prospect_id: int) -> None:
    """Drop the cached personalisation once the change is committed (never before: a reader could
    cache the old data again in between)."""
    transaction.on_commit(lambda: cache.invalidate(prospect_id))


def truthy(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    return str(value or "").strip().lower() in ("true", "1", "yes", "y", "on")
