"""Scoring prospects against the database: load the inputs, run the engine, store the results.

Set-based for any number of prospects: the rules and bands once, the events of all the given
prospects in one query, the previous grades in one, one upsert of the scores and one insert of
the grade changes. The ingest hook and each chunk of a full recompute both come through here.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from crmsync.ingest_sql import upsert_rows
from crmsync.lookups import in_account_unindexed
from crmsync.models import Event
from scoring.engine import BandSpec, RuleSpec, ScoredEvent, compute_score, format_contributors, grade_for
from scoring.models import GradeBand, GradeChange, ProspectScore, ScoringRule
from scoring.signals import ScoreChange, notify_grade_changes, notify_scores_changed


@dataclass(frozen=True)
class ScoringInputs:
    """An account's enabled rules and its bands, loaded once and used for many prospects."""

    rules: tuple[RuleSpec, ...]
    bands: tuple[BandSpec, ...]

    @classmethod
    def load(cls, account_id: int) -> ScoringInputs:
        rules = ScoringRule.objects.filter(account_id=account_id, enabled=True).order_by("order", "id")
        bands = GradeBand.objects.filter(account_id=account_id).order_by("min_score")
        return cls(tuple(rule.spec() for rule in rules), tuple(band.spec() for band in bands))

    @property
    def event_types(self) -> set[str]:
        return {rule.event_type for rule in self.rules}


def score_prospects(
    account_id: int,
    prospect_ids: Iterable[int],
    *,
    reason: str,
    inputs: ScoringInputs | None = None,
    now: datetime | None = None,
) -> list[GradeChange]:
    """Recompute and store the scores of ``prospect_ids`` (all of ``account_id``); return the grade changes.

    Call inside a transaction that holds the prospects' row locks (the ingest takes them; the
    recompute job locks each chunk), so no concurrent writer can store a score computed from
    fewer events. Grade changes are recorded and reported to ``scoring.signals`` listeners:

    - a prospect without a stored score starts from the grade of a score of 0 on ingest; a
      recompute stores such a prospect's first score silently (a backfill is not a crossing);
    - a previous grade that is no longer a band's name (renamed or removed) is not a crossing.
    """
    ids = sorted(set(prospect_ids))
    if not ids:
        return []
    inputs = inputs or ScoringInputs.load(account_id)
    now = now or timezone.now()
    events = _events_by_prospect(account_id, ids, inputs.event_types)
    stored = {
        prospect_id: (grade, score)
        for prospect_id, grade, score in ProspectScore.objects.filter(prospect_id__in=ids).values_list(
            "prospect_id", "grade", "score"
        )
    }
    previous = {prospect_id: grade for prospect_id, (grade, _score) in stored.items()}
    band_names = {band.name for band in inputs.bands}
    starting_grade = grade_for(0, inputs.bands) if reason == GradeChange.Reason.INGEST else None

    scores: list[dict] = []  # ProspectScore rows, written in one upsert
    changes: list[GradeChange] = []
    score_changes: list[ScoreChange] = []
    for prospect_id in ids:
        result = compute_score(events.get(prospect_id, ()), inputs.rules, inputs.bands, now)
        top_contributors = format_contributors(result.top_contributors)[:500]
        scores.append(
            {
                "prospect_id": prospect_id,
                "account_id": account_id,
                "score": result.score,
                "grade": result.grade,
                "breakdown": result.breakdown,
                "top_contributors": top_contributors,
                "computed_at": now,
            }
        )
        previous_score = stored[prospect_id][1] if prospect_id in stored else (0 if starting_grade else None)
        if previous_score is not None and previous_score != result.score:
            score_changes.append(
                ScoreChange(prospect_id, previous_score, result.score, result.grade, top_contributors, now)
            )
        old = previous.get(prospect_id, starting_grade)
        if old is not None and old != result.grade and old in band_names:
            changes.append(
                GradeChange(
                    account_id=account_id,
                    prospect_id=prospect_id,
                    from_grade=old,
                    to_grade=result.grade,
                    score=result.score,
                    reason=reason,
                    at=now,
                )
            )

    upsert_rows(ProspectScore, scores)  # INSERT … ON CONFLICT (prospect) DO UPDATE, rows as one JSON parameter
    notify_scores_changed(account_id, score_changes)
    if changes:
        GradeChange.objects.bulk_create(changes)
        notify_grade_changes(account_id, [(c.prospect_id, c.from_grade, c.to_grade) for c in changes])
    return changes


def _events_by_prospect(account_id: int, ids: list[int], types: set[str]) -> dict[int, list[ScoredEvent]]:
    grouped: dict[int, list[ScoredEvent]] = defaultdict(list)
    if not types:
        return grouped
    # The account per row: the prospects' own index whatever the statistics know of the account.
    events = in_account_unindexed(Event.objects.filter(prospect_id__in=ids, type__in=types), account_id)
    rows = events.values_list("prospect_id", "type", "occurred_at", "data")
    for prospect_id, type_, occurred_at, data in rows:
        grouped[prospect_id].append(ScoredEvent(type_, occurred_at, data if isinstance(data, dict) else {}))
    return grouped
