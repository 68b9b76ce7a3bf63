"""UTM parameters of the prospect's first identified visit."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from crmsync.lookups import in_account_unindexed
from crmsync.models import Account, Prospect
from mapping.sources import SourceField, register_source_group

GROUP = "utm"
PARAMETERS = ("source", "medium", "campaign", "term", "content")

FIELDS = [SourceField(f"utm_{name}", f"UTM {name}", "string", GROUP) for name in PARAMETERS]


def load(account: Account, prospect_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    rows = (
        in_account_unindexed(Prospect.objects.filter(pk__any=list(prospect_ids)), account.pk)
        .order_by()
        .values_list("id", "utm")
    )
    snapshots: dict[int, dict[str, Any]] = {}
    for prospect_id, utm in rows:
        utm = utm or {}
        # Stored as the API's {"source": …}; a "utm_source" spelling is read as well.
        snapshots[prospect_id] = {f"utm_{name}": utm.get(name) or utm.get(f"utm_{name}") or None for name in PARAMETERS}
    return snapshots


def register() -> None:
    register_source_group(GROUP, FIELDS, load, label="UTM parameters")
