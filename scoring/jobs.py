"""The full recompute job: every prospect of an account, in chunks, with progress.

Streams prospect ids by keyset (``id > cursor ORDER BY id LIMIT chunk``), so memory stays flat
at a million prospects, and stores the cursor with the progress: a job that uses up its time
slice hands over to a continuation job, and one whose worker died is taken over from the
cursor. A lease token (in the row and in the job's arguments) makes sure only one job works on
a recompute at a time, whatever RQ replays.
"""

from __future__ import annotations

import logging
import secrets
import time

from django.db import IntegrityError, transaction
from django.utils import timezone

from crmsync import jobs
from crmsync.models import Prospect
from scoring.models import GradeChange, ScoreRecompute
from scoring.recompute import JOB, QUEUE
from scoring.service import ScoringInputs, score_prospects

log = logging.getLogger(__name__)

CHUNK_SIZE = 1000
# Well under the batch queue's 600 s job timeout: the job hands over long before RQ kills it.
TIME_SLICE_SECONDS = 120.0
MAX_ERROR_LENGTH = 2000

State = ScoreRecompute.State


class LeaseLost(Exception):
    """Another job took the recompute over (this worker was thought dead): stop without writing."""


def recompute_account(
    recompute_id: int,
    lease: str = "",
    *,
    chunk_size: int = CHUNK_SIZE,
    time_slice: float = TIME_SLICE_SECONDS,
) -> None:
    """Recompute every score of the recompute's account, or continue doing so from its cursor.

    ``lease`` is given to continuations only; a first dispatch (or a duplicate of it) has none.
    """
    recompute = _claim(recompute_id, lease)
    if recompute is None:
        return
    try:
        finished = _run(recompute, chunk_size, time_slice)
    except LeaseLost:
        log.warning("recompute %s was taken over by another job; this one stops", recompute_id)
        return
    except Exception as exc:  # recorded on the recompute for ops and the owner to see
        log.exception("recompute %s of account %s failed", recompute_id, recompute.account_id)
        _finish(recompute, State.FAILED, f"{type(exc).__name__}: {exc}"[:MAX_ERROR_LENGTH])
        return
    if finished:
        _finish(recompute, State.DONE)
    else:
        ScoreRecompute.objects.filter(pk=recompute.pk, lease=recompute.lease).update(heartbeat_at=timezone.now())
        jobs.enqueue(JOB, recompute.pk, recompute.lease, queue=QUEUE)


def _claim(recompute_id: int, lease: str) -> ScoreRecompute | None:
    """The recompute, now leased to this job, or None when this job has nothing to do."""
    now = timezone.now()
    try:
        with transaction.atomic():
            recompute = ScoreRecompute.objects.select_for_update().filter(pk=recompute_id).first()
            if recompute is None:
                return None
            if recompute.state == State.PENDING:
                others = ScoreRecompute.objects.filter(account_id=recompute.account_id, state=State.RUNNING)
                others.filter(heartbeat_at__lt=now - ScoreRecompute.STALE_AFTER).update(
                    state=State.FAILED, finished_at=now, error="The worker running this recompute stopped."
                )
                if others.exists():
                    return None  # the running recompute starts this one when it ends (_finish)
                recompute.state = State.RUNNING
                recompute.started_at = now
                recompute.total = Prospect.objects.filter(account_id=recompute.account_id).count()
            elif recompute.state == State.RUNNING:
                continuation = lease and lease == recompute.lease
                if not continuation and recompute.heartbeat_at is not None and not recompute.is_stale:
                    return None  # a duplicate dispatch while another job holds it
            else:
                return None  # already done or failed
            recompute.lease = secrets.token_hex(16)
            recompute.heartbeat_at = now
            recompute.save(update_fields=["state", "started_at", "total", "lease", "heartbeat_at"])
            return recompute
    except IntegrityError:
        return None  # another recompute of the account started running at the same moment


def _run(recompute: ScoreRecompute, chunk_size: int, time_slice: float) -> bool:
    """Score chunks until every prospect is done (True) or the time slice is used up (False)."""
    deadline = time.monotonic() + time_slice
    inputs = ScoringInputs.load(recompute.account_id)
    prospects = Prospect.objects.filter(account_id=recompute.account_id)
    while True:
        ids = list(prospects.filter(pk__gt=recompute.cursor).order_by("pk").values_list("pk", flat=True)[:chunk_size])
        if not ids:
            return True
        skipped = score_chunk(recompute.account_id, ids, inputs)
        for prospect_id in skipped:
            score_one(recompute.account_id, prospect_id, inputs)
        _progress(recompute, ids)
        if time.monotonic() >= deadline:
            return False


def score_chunk(account_id: int, ids: list[int], inputs: ScoringInputs) -> list[int]:
    """Rescore the prospects of ``ids`` that no one else holds; return the ids that were skipped."""
    with transaction.atomic():
        # SKIP LOCKED: a prospect an ingest holds right now is being rescored by that ingest;
        # waiting for it here, while holding the rest of the chunk, could deadlock with it.
        locked = list(
            Prospect.objects.select_for_update(skip_locked=True)
            .filter(pk__in=ids)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        score_prospects(account_id, locked, reason=GradeChange.Reason.RECOMPUTE, inputs=inputs)
    return sorted(set(ids) - set(locked))


def score_one(account_id: int, prospect_id: int, inputs: ScoringInputs) -> None:
    """Rescore one prospect, waiting for its lock: safe because nothing else is held, and the
    score then uses the current rules whatever the ingest that held it had loaded."""
    with transaction.atomic():
        if Prospect.objects.select_for_update().filter(pk=prospect_id).exists():
            score_prospects(account_id, [prospect_id], reason=GradeChange.Reason.RECOMPUTE, inputs=inputs)


def _progress(recompute: ScoreRecompute, ids: list[int]) -> None:
    recompute.cursor = ids[-1]
    recompute.done += len(ids)
    # Prospects created during the recompute are counted too, so the bar never passes 100 %.
    recompute.total = max(recompute.total, recompute.done)
    updated = ScoreRecompute.objects.filter(pk=recompute.pk, lease=recompute.lease).update(
        cursor=recompute.cursor, done=recompute.done, total=recompute.total, heartbeat_at=timezone.now()
    )
    if not updated:
        raise LeaseLost(recompute.pk)


def _finish(recompute: ScoreRecompute, state: str, error: str = "") -> None:
    now = timezone.now()
    with transaction.atomic():
        ScoreRecompute.objects.filter(pk=recompute.pk, lease=recompute.lease).update(
            state=state, finished_at=now, heartbeat_at=now, error=error
        )
        waiting = (
            ScoreRecompute.objects.filter(account_id=recompute.account_id, state=State.PENDING)
            .order_by("created_at", "pk")
            .first()
        )
        if waiting is not None:
            jobs.enqueue(JOB, waiting.pk, queue=QUEUE)
