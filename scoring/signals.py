"""Grade band crossings, for whoever needs to react to them (workflow triggers, outgoing webhooks).

Register a listener from an ``AppConfig.ready()``::

    from scoring.signals import on_grade_changed

    @on_grade_changed
    def fire_hot_lead_triggers(prospect_id: int, old: str, new: str) -> None:
        ...
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

GradeListener = Callable[[int, str, str], None]

_LISTENERS: list[GradeListener] = []


def on_grade_changed(listener: GradeListener) -> GradeListener:
    """Call ``listener(prospect_id, old_grade, new_grade)`` whenever a prospect changes grade.

    When it is called:
    - inside the database transaction that wrote the new score (the ingest of the events that
      moved it, or a chunk of a full recompute), after the ``GradeChange`` row is written, so a
      listener's own writes (outbox rows…) commit or roll back together with the score;
    - exactly once per crossing: a prospect whose grade did not change is never reported, and
      a rule or band change that only renames or removes a band reports nothing for it;
    - ``old`` for a prospect scored for the first time by an ingest is the grade a score of 0
      has (a new lead can enter straight into "hot"); a prospect that a full recompute scores
      for the first time (a backfill of prospects older than scoring) is not reported;
    - crossings caused by changed rules or bands (the full recompute) are reported like those
      caused by new events; ``GradeChange.reason`` tells them apart.

    A listener must be quick and must not dispatch work before commit (use crmsync.jobs.enqueue).
    An exception propagates: the transaction rolls back, so a crossing is never half-handled.

    A scoring pass (one ingest, one recompute chunk) can cross many prospects at once. A listener
    that can handle them together gives itself a ``for_many`` attribute, ``for_many(account_id,
    [(prospect_id, old, new), …])``, which is then called once per pass instead of the listener
    once per crossing (so it can, say, look up the account's subscriptions once, not per prospect).

    Returns ``listener``, so it can be used as a decorator. Registering twice has no effect.
    """
    if listener not in _LISTENERS:
        _LISTENERS.append(listener)
    return listener


def remove_grade_listener(listener: GradeListener) -> None:
    if listener in _LISTENERS:
        _LISTENERS.remove(listener)


def notify_grade_changed(prospect_id: int, old: str, new: str) -> None:
    for listener in list(_LISTENERS):
        listener(prospect_id, old, new)


def notify_grade_changes(account_id: int, changes: list[tuple[int, str, str]]) -> None:
    """Report one scoring pass's crossings ``(prospect_id, old, new)``, all of ``account_id``."""
    if not changes:
        return
    for listener in list(_LISTENERS):
        for_many = getattr(listener, "for_many", None)
        if for_many is not None:
            for_many(account_id, changes)
        else:
            for prospect_id, old, new in changes:
                listener(prospect_id, old, new)


@dataclass(frozen=True)
class ScoreChange:
    prospect_id: int
    previous_score: int
    score: int
    grade: str
    top_contributors: str
    computed_at: datetime


ScoreListener = Callable[[int, list[ScoreChange]], None]
_SCORE_LISTENERS: list[ScoreListener] = []


def on_score_changed(listener: ScoreListener) -> ScoreListener:
    """Call ``listener(account_id, changes)`` with every prospect whose score changed in one
    scoring pass (an ingest, or a chunk of a recompute), inside its transaction. A prospect scored
    for the first time by an ingest has a previous score of 0. Returns ``listener``."""
    if listener not in _SCORE_LISTENERS:
        _SCORE_LISTENERS.append(listener)
    return listener


def notify_scores_changed(account_id: int, changes: list[ScoreChange]) -> None:
    if changes:
        for listener in list(_SCORE_LISTENERS):
            listener(account_id, changes)
