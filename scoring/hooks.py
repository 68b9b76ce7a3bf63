"""Incremental scoring: the ingest hook that rescores every prospect an ingest touched."""

from __future__ import annotations

from crmsync.models import Account, Event, Prospect
from scoring.models import GradeChange
from scoring.service import score_prospects


def score_ingested(account: Account, created_events: list[Event], prospects: dict[int, Prospect]) -> None:
    """Rescore the prospects that received events (directly or by stitching) in this ingest.

    Runs inside the ingest transaction, which already holds the prospects' row locks; a score
    is recomputed from all of the prospect's events rather than adjusted by the new ones, so
    caps, thresholds and decay stay exact and a replayed hook can never count an event twice.
    """
    prospect_ids = set(prospects) | {event.prospect_id for event in created_events if event.prospect_id}
    score_prospects(account.pk, prospect_ids, reason=GradeChange.Reason.INGEST)
