"""The bridge from the sync engine to the mapping: each prospect's CRM payload and its hash.

The engine calls only this; this calls only the mapping's public functions (load_snapshots,
rows_for, build_payload, payload_hash) and its schema cache.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from crmsync.models import Prospect
from integrations.connector import FieldSchema
from integrations.models import Connection, RecordLink
from mapping.apply import build_payload, payload_hash
from mapping.rows import rows_for
from mapping.schema import refresh_schema, schema_for
from mapping.sources import load_snapshots


@dataclass(frozen=True)
class PersonPayload:
    fields: dict[str, Any]  # what to send now (for an existing record: without create-only fields)
    hash: str  # of the whole mapped payload: equal hashes mean nothing changed since the last sync
    blocking_problems: list[str]


class PayloadBuilder:
    """Builds person payloads for one connection; loads its mapping and schema once."""

    def __init__(self, connection: Connection, describe: Callable[[str], list[FieldSchema]] | None = None) -> None:
        self.connection = connection
        self.describe = describe
        self.object_kind = connection.record_type
        self.rows = rows_for(connection, target_object=self.object_kind)
        self._schema: Mapping[str, FieldSchema] | None = None
        self._scores: dict[int, float] = {}

    @property
    def schema(self) -> Mapping[str, FieldSchema]:
        """The cached CRM schema, fetched once if it never was (may raise a CrmError)."""
        if self._schema is None:
            cached = schema_for(self.connection, self.object_kind)
            if cached is None:
                cached = refresh_schema(self.connection, self.object_kind, describe=self.describe).field_schemas()
            self._schema = cached
        return self._schema

    def build(self, prospects: Iterable[Prospect], links: Mapping[int, RecordLink]) -> dict[int, PersonPayload]:
        prospects = list(prospects)
        if not prospects:
            return {}
        snapshots = load_snapshots(self.connection.account, [p.pk for p in prospects])
        built = {}
        for prospect in prospects:
            snapshot = snapshots.get(prospect.pk, {})
            self._scores[prospect.pk] = float(snapshot.get("lead_score") or 0)
            link = links.get(prospect.pk)
            result = build_payload(
                snapshot,
                self.rows,
                self.schema,
                previously_sent=link.last_sent_fields if link else None,
                object_kind=self.object_kind,
            )
            fields = result.fields if link is None else result.for_update()
            built[prospect.pk] = PersonPayload(
                fields=fields,
                hash=payload_hash(result.fields),
                blocking_problems=[str(problem) for problem in result.errors],
            )
        return built

    def score_of(self, prospect_id: int) -> float:
        return self._scores.get(prospect_id, 0.0)
