"""The full recompute: started when rules change, run as a job in chunks, with progress."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from crmsync.models import AuditEntry, Prospect
from scoring.jobs import recompute_account, score_chunk, score_one
from scoring.models import GradeChange, ProspectScore, ScoreRecompute, ScoringRule
from scoring.recompute import start_recompute
from scoring.service import ScoringInputs
from tests.scoring.conftest import event

State = ScoreRecompute.State


@pytest.fixture
def five_prospects(account, ingest):
    ingest(account, *[event("cta_clicked", f"p{n}@example.com") for n in range(5)])
    return list(Prospect.objects.filter(account=account).order_by("pk").values_list("pk", flat=True))


def scores(account) -> list[int]:
    return list(ProspectScore.objects.filter(account=account).order_by("prospect_id").values_list("score", flat=True))


def test_starting_a_recompute_queues_one_job_after_commit(account, owner, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        recompute = start_recompute(account, owner)

    assert recompute.state == State.PENDING
    assert recompute.started_by == owner
    assert len(callbacks) == 1
    entry = AuditEntry.objects.get(action="scoring.recompute_started")
    assert (entry.account, entry.actor_label, entry.object_id) == (account, owner.username, str(recompute.pk))


def test_changes_in_quick_succession_share_one_waiting_recompute(account, owner):
    first = start_recompute(account, owner)
    second = start_recompute(account, owner)

    assert second.pk == first.pk
    assert ScoreRecompute.objects.filter(account=account).count() == 1
    assert AuditEntry.objects.filter(action="scoring.recompute_started").count() == 1


def test_the_job_rescores_every_prospect_with_the_new_rules(account, owner, five_prospects):
    assert scores(account) == [30] * 5
    ScoringRule.objects.filter(account=account, event_type="cta_clicked").update(points=45)
    recompute = start_recompute(account, owner)

    recompute_account(recompute.pk)

    recompute.refresh_from_db()
    assert scores(account) == [45] * 5
    assert (recompute.state, recompute.done, recompute.total, recompute.percent) == (State.DONE, 5, 5, 100)
    assert recompute.started_at is not None and recompute.finished_at is not None
    assert recompute.error == ""


def test_a_recompute_gives_scores_to_prospects_that_had_none(account, owner, five_prospects):
    ProspectScore.objects.filter(prospect_id__in=five_prospects[:2]).delete()

    recompute_account(start_recompute(account, owner).pk)

    assert scores(account) == [30] * 5


def test_a_recompute_records_the_band_crossings_it_causes(account, owner, five_prospects, grade_calls):
    ScoringRule.objects.filter(account=account, event_type="cta_clicked").update(points=50)

    recompute_account(start_recompute(account, owner).pk)

    assert sorted(grade_calls) == [(pid, "cold", "warm") for pid in five_prospects]
    assert GradeChange.objects.filter(reason="recompute").count() == 5


def test_progress_is_stored_chunk_by_chunk_and_the_job_hands_over(
    account, owner, five_prospects, django_capture_on_commit_callbacks
):
    ScoringRule.objects.filter(account=account, event_type="cta_clicked").update(points=1)
    recompute = start_recompute(account, owner)
    progress = []

    with django_capture_on_commit_callbacks() as continuations:
        recompute_account(recompute.pk, chunk_size=2, time_slice=0)  # one chunk, then hand over
    for _ in range(3):
        recompute.refresh_from_db()
        progress.append((recompute.state, recompute.done, recompute.total))
        recompute_account(recompute.pk, recompute.lease, chunk_size=2, time_slice=0)

    recompute.refresh_from_db()
    assert progress == [(State.RUNNING, 2, 5), (State.RUNNING, 4, 5), (State.RUNNING, 5, 5)]
    assert (recompute.state, recompute.done) == (State.DONE, 5)
    assert len(continuations) == 1
    assert scores(account) == [1] * 5


def test_a_duplicate_dispatch_does_nothing_while_the_recompute_is_held(account, owner, five_prospects):
    recompute = start_recompute(account, owner)
    recompute_account(recompute.pk, chunk_size=2, time_slice=0)
    recompute.refresh_from_db()

    recompute_account(recompute.pk, chunk_size=2, time_slice=0)  # no lease: a replayed first dispatch

    recompute.refresh_from_db()
    assert (recompute.state, recompute.done) == (State.RUNNING, 2)


def test_a_recompute_whose_worker_died_is_taken_over_from_its_cursor(account, owner, five_prospects):
    recompute = start_recompute(account, owner)
    recompute_account(recompute.pk, chunk_size=2, time_slice=0)
    ScoreRecompute.objects.filter(pk=recompute.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    ProspectScore.objects.filter(prospect_id__in=five_prospects[:2]).update(score=-1)  # not redone

    recompute_account(recompute.pk)

    recompute.refresh_from_db()
    assert (recompute.state, recompute.done) == (State.DONE, 5)
    assert scores(account) == [-1, -1, 30, 30, 30]


def test_a_stale_recompute_is_marked_failed_when_a_new_one_starts(account, owner, five_prospects):
    stale = start_recompute(account, owner)
    recompute_account(stale.pk, chunk_size=2, time_slice=0)
    ScoreRecompute.objects.filter(pk=stale.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))

    fresh = start_recompute(account, owner)
    recompute_account(fresh.pk)

    stale.refresh_from_db()
    fresh.refresh_from_db()
    assert stale.state == State.FAILED
    assert "stopped" in stale.error
    assert fresh.state == State.DONE


def test_a_new_recompute_waits_for_the_running_one_and_follows_it(
    account, owner, five_prospects, django_capture_on_commit_callbacks
):
    running = start_recompute(account, owner)
    recompute_account(running.pk, chunk_size=2, time_slice=0)
    waiting = start_recompute(account, owner)
    assert waiting.pk != running.pk

    recompute_account(waiting.pk)  # its first dispatch: another one runs, so it waits
    waiting.refresh_from_db()
    assert waiting.state == State.PENDING

    running.refresh_from_db()
    with django_capture_on_commit_callbacks() as dispatched:
        recompute_account(running.pk, running.lease)  # finishes, then dispatches the waiting one
    assert len(dispatched) == 1
    recompute_account(waiting.pk)

    waiting.refresh_from_db()
    assert (waiting.state, waiting.done) == (State.DONE, 5)


def test_a_failing_recompute_is_marked_failed_with_its_error(account, owner, five_prospects, ingest):
    ingest(account, event("question_asked", "p0@example.com"))
    ScoringRule.objects.filter(account=account, event_type="question_asked").update(conditions={"pattern": "("})
    recompute = start_recompute(account, owner)

    recompute_account(recompute.pk)

    recompute.refresh_from_db()
    assert recompute.state == State.FAILED
    assert recompute.error.startswith("error: missing )")
    assert recompute.finished_at is not None


def test_a_finished_recompute_is_not_run_again(account, owner, five_prospects):
    recompute = start_recompute(account, owner)
    recompute_account(recompute.pk)
    ProspectScore.objects.update(score=0)

    recompute_account(recompute.pk)

    assert scores(account) == [0] * 5


def test_the_job_reads_prospects_chunk_by_chunk(account, owner, five_prospects):
    recompute = start_recompute(account, owner)
    statements = []

    def watch(execute, sql, params, many, context):
        statements.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(watch):
        recompute_account(recompute.pk, chunk_size=2)

    id_pages = [sql for sql in statements if 'FROM "crmsync_prospect"' in sql and "LIMIT 2" in sql]
    assert len(id_pages) == 4  # 2 + 2 + 1, then the empty page that ends it


@pytest.mark.django_db(transaction=True)
def test_a_prospect_an_ingest_holds_is_skipped_then_scored_after_it(account, ingest):
    ingest(account, event("cta_clicked", "held@example.com"), event("cta_clicked", "free@example.com"))
    held = Prospect.objects.get(email="held@example.com")
    free = Prospect.objects.get(email="free@example.com")
    ScoringRule.objects.filter(account=account, event_type="cta_clicked").update(points=70)
    locked, release = threading.Event(), threading.Event()

    def hold_the_row() -> None:
        try:
            with transaction.atomic():
                Prospect.objects.select_for_update().filter(pk=held.pk).exists()
                locked.set()
                release.wait()
        finally:
            locked.set()  # never leave the test waiting, even if taking the lock failed
            connection.close()

    holder = threading.Thread(target=hold_the_row)
    holder.start()
    locked.wait()
    try:
        skipped = score_chunk(account.pk, [held.pk, free.pk], ScoringInputs.load(account.pk))
    finally:
        release.set()
        holder.join()

    assert skipped == [held.pk]
    assert ProspectScore.objects.get(prospect=free).score == 70
    assert ProspectScore.objects.get(prospect=held).score == 30

    score_one(account.pk, held.pk, ScoringInputs.load(account.pk))

    assert ProspectScore.objects.get(prospect=held).score == 70


def test_the_command_recomputes_an_account_here_and_now(account, five_prospects):
    from io import StringIO

    from django.core.management import call_command

    ScoringRule.objects.filter(account=account, event_type="cta_clicked").update(points=12)
    out = StringIO()

    call_command("recompute_scores", "--account", account.slug, "--wait", stdout=out)

    assert scores(account) == [12] * 5
    assert f"{account.slug}: recompute #" in out.getvalue() and out.getvalue().strip().endswith("done")


def test_the_command_refuses_an_unknown_account(db):
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match="No account"):
        call_command("recompute_scores", "--account", "nope")
