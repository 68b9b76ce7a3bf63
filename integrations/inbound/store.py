"""Storing received changes once: one ``InboundEvent`` per provider event id and connection.

The insert is a single ``INSERT … ON CONFLICT (connection_id, event_id) DO NOTHING RETURNING``
(PostgreSQL, and SQLite ≥ 3.35), so concurrent deliveries of the same event race safely in the
database and each request learns exactly how many of its changes were new.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db import connection as db
from django.utils import timezone

from integrations.connector import InboundChange
from integrations.models import Connection, InboundEvent, InboundState, InboundVia

# Rows per INSERT statement: well under PostgreSQL's 65,535 parameters at 14 columns.
INSERT_CHUNK = 500


@dataclass(frozen=True)
class Stored:
    received: int
    duplicates: int


def _jsonable(value: Any) -> Any:
    """Properties as JSON (CRMs send strings, numbers and lists; dates from pollers become ISO text)."""
    return json.loads(json.dumps(value, default=str))


def event_id_of(change: InboundChange) -> str:
    """The provider's id, or a stable digest of the change when the CRM gives none."""
    if change.event_id:
        return change.event_id[:200]
    digest = hashlib.sha256(
        json.dumps(
            [change.object_kind, change.crm_id, change.change, str(change.occurred_at), _jsonable(change.properties)],
            sort_keys=True,
        ).encode()
    ).hexdigest()
    return f"h:{digest}"


def poll_event_id(object_kind: str, crm_id: str, modified_at: dt.datetime | None) -> str:
    """A polled record's event id: the same modification seen twice is stored once."""
    stamp = modified_at.isoformat() if modified_at else "unknown"
    return f"poll:{object_kind}:{crm_id}:{stamp}"[:200]


_COLUMNS = (
    "connection_id",
    "event_id",
    "via",
    "object_kind",
    "crm_id",
    "change",
    "properties",
    "source",
    "merged_into",
    "occurred_at",
    "received_at",
    "state",
    "reason",
    "error",
    "attempts",
    "next_attempt_at",
)


def _row(connection_id: int, change: InboundChange, via: str, now: dt.datetime) -> dict[str, Any]:
    return {
        "connection_id": connection_id,
        "event_id": event_id_of(change),
        "via": via,
        "object_kind": str(change.object_kind)[:20],
        "crm_id": str(change.crm_id)[:100],
        "change": str(change.change)[:20],
        "properties": _jsonable(dict(change.properties or {})),
        "source": str(change.source or "")[:200],
        "merged_into": str(change.merged_into or "")[:100],
        "occurred_at": change.occurred_at,
        "received_at": now,
        "state": InboundState.PENDING,
        "reason": "",
        "error": "",
        "attempts": 0,
        "next_attempt_at": now,
    }


def _insert(rows: list[dict[str, Any]]) -> int:
    """Insert rows, skipping event ids already stored; the number inserted."""
    fields = {f.attname: f for f in InboundEvent._meta.concrete_fields}
    quote = db.ops.quote_name
    placeholders = "(" + ", ".join(["%s"] * len(_COLUMNS)) + ")"
    sql = (
        f"INSERT INTO {quote(InboundEvent._meta.db_table)} ({', '.join(quote(c) for c in _COLUMNS)}) "  # noqa: S608
        f"VALUES {', '.join([placeholders] * len(rows))} "
        f"ON CONFLICT ({quote('connection_id')}, {quote('event_id')}) DO NOTHING RETURNING {quote('id')}"
    )
    params = [fields[column].get_db_prep_save(row[column], db) for row in rows for column in _COLUMNS]
    with db.cursor() as cursor:
        cursor.execute(sql, params)
        return len(cursor.fetchall())


def store_changes(connection: Connection, changes: Iterable[InboundChange], *, via: str = InboundVia.WEBHOOK) -> Stored:
    """Store each change as a pending InboundEvent; duplicates (same event id) are counted, not stored."""
    now = timezone.now()
    rows: dict[str, dict[str, Any]] = {}
    total = 0
    for change in changes:
        total += 1
        row = _row(connection.pk, change, via, now)
        rows.setdefault(row["event_id"], row)  # one delivery listing an event twice stores it once
    unique = list(rows.values())
    received = sum(_insert(unique[i : i + INSERT_CHUNK]) for i in range(0, len(unique), INSERT_CHUNK))
    return Stored(received=received, duplicates=total - received)
