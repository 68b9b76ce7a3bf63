"""Starting a full recompute of an account's scores, after its rules or bands changed."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from crmsync import audit, jobs
from crmsync.models import Account
from scoring.models import ScoreRecompute

JOB = "scoring.jobs.recompute_account"
QUEUE = "batch"


def start_recompute(
    account: Account, started_by: AbstractBaseUser | None = None, *, request: HttpRequest | None = None
) -> ScoreRecompute:
    """Have the account's scores recomputed with its current rules and bands; return the recompute.

    Changes made in quick succession (a list of rules edited in the admin) share one recompute:
    a recompute that is still waiting to start is reused, since it will read the rules when it
    starts. One that is already running goes on, and a new one follows it. The job is
    dispatched after the caller's transaction commits, so it sees the change that caused it.
    """
    with transaction.atomic():
        # The account row is the lock that makes "reuse the waiting one or create one" atomic.
        Account.objects.select_for_update().filter(pk=account.pk).exists()
        now = timezone.now()
        stale = ScoreRecompute.objects.filter(
            account=account, state=ScoreRecompute.State.RUNNING, heartbeat_at__lt=now - ScoreRecompute.STALE_AFTER
        )
        stale.update(
            state=ScoreRecompute.State.FAILED,
            finished_at=now,
            error="The worker running this recompute stopped; a new recompute was started.",
        )
        recompute = ScoreRecompute.objects.filter(account=account, state=ScoreRecompute.State.PENDING).first()
        if recompute is None:
            recompute = ScoreRecompute.objects.create(account=account, started_by=started_by, created_at=now)
            audit.record(
                "scoring.recompute_started",
                request=request,
                actor_label=None if request is not None else _label(started_by),
                account=account,
                obj=recompute,
            )
        # Dispatched again even when reused: a job lost with Redis is replaced, and a duplicate
        # finds the recompute claimed and does nothing.
        jobs.enqueue(JOB, recompute.pk, queue=QUEUE)
    return recompute


def _label(user: AbstractBaseUser | None) -> str:
    return user.get_username() if user is not None else "system"
