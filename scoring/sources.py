"""The score as mapping source fields: ``lead_score``, ``lead_grade``, ``score_top_contributors``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from crmsync.lookups import in_account_unindexed
from crmsync.models import Account
from scoring.models import ProspectScore

GROUP = "score"
FIELDS = (
    # (key, label, type)
    ("lead_score", "Lead score", "integer"),
    ("lead_grade", "Lead grade", "string"),
    ("score_top_contributors", "Top score contributors", "string"),
)


def load_scores(account: Account, prospect_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """The stored scores of ``prospect_ids`` in one query; prospects not scored yet are left out."""
    rows = in_account_unindexed(
        ProspectScore.objects.filter(prospect_id__any=list(prospect_ids)), account.pk
    ).values_list("prospect_id", "score", "grade", "top_contributors")
    return {
        prospect_id: {"lead_score": score, "lead_grade": grade, "score_top_contributors": top}
        for prospect_id, score, grade, top in rows
    }


def register() -> None:
    """Add the score group to the mapping catalogue (called from ScoringConfig.ready)."""
    from mapping.sources import SourceField, register_source_group

    fields = [SourceField(key, label, type_, GROUP) for key, label, type_ in FIELDS]
    register_source_group(GROUP, fields, load_scores, label="Lead score")
