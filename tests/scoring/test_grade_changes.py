"""Crossing a grade band is an event: recorded once, and reported to listeners in the transaction."""

from __future__ import annotations

import pytest

from crmsync.models import Prospect
from scoring.models import GradeBand, GradeChange, ProspectScore
from scoring.service import score_prospects
from scoring.signals import on_grade_changed, remove_grade_listener
from tests.scoring.conftest import event


def prospect_id(account, email: str = "ann@example.com") -> int:
    return Prospect.objects.get(account=account, email=email).pk


def test_crossing_into_a_band_is_recorded_and_reported(account, ingest, grade_calls):
    ingest(account, event("cta_clicked"))
    assert grade_calls == []  # 30 points: still cold, as a score of 0 is

    ingest(account, event("content_downloaded"))

    pid = prospect_id(account)
    assert grade_calls == [(pid, "cold", "warm")]
    change = GradeChange.objects.get()
    assert (change.prospect_id, change.from_grade, change.to_grade, change.score, change.reason) == (
        pid,
        "cold",
        "warm",
        50,
        "ingest",
    )


def test_staying_in_a_band_is_not_a_crossing(account, ingest, grade_calls):
    ingest(account, event("cta_clicked"), event("content_downloaded"))
    ingest(account, event("capsule_viewed"))
    ingest(account, event("capsule_viewed"))

    assert grade_calls == [(prospect_id(account), "cold", "warm")]
    assert GradeChange.objects.count() == 1


def test_a_new_prospect_can_enter_straight_into_a_high_band(account, ingest, grade_calls):
    ingest(account, event("cta_clicked"), event("cta_clicked"), event("content_downloaded"))

    assert grade_calls == [(prospect_id(account), "cold", "hot")]


def test_each_band_crossed_over_time_is_its_own_event(account, ingest, grade_calls):
    ingest(account, event("cta_clicked"), event("content_downloaded"))
    ingest(account, event("cta_clicked"))

    pid = prospect_id(account)
    assert grade_calls == [(pid, "cold", "warm"), (pid, "warm", "hot")]
    assert list(GradeChange.objects.order_by("at", "id").values_list("from_grade", "to_grade")) == [
        ("cold", "warm"),
        ("warm", "hot"),
    ]


def test_the_listener_runs_inside_the_ingest_transaction(account, ingest):
    seen: list[int] = []

    def listener(prospect_id: int, old: str, new: str) -> None:
        # The score that caused the crossing is already written, in this same transaction.
        seen.append(ProspectScore.objects.get(prospect_id=prospect_id).score)

    on_grade_changed(listener)
    try:
        ingest(account, event("cta_clicked"), event("content_downloaded"))
    finally:
        remove_grade_listener(listener)

    assert seen == [50]


def test_a_failing_listener_rolls_the_ingest_back(account, ingest):
    def listener(prospect_id: int, old: str, new: str) -> None:
        raise RuntimeError("trigger store unavailable")

    on_grade_changed(listener)
    try:
        with pytest.raises(RuntimeError):
            ingest(account, event("cta_clicked"), event("content_downloaded"))
    finally:
        remove_grade_listener(listener)

    assert not Prospect.objects.filter(account=account).exists()
    assert not GradeChange.objects.exists()


def test_a_listener_with_for_many_gets_all_crossings_of_a_pass_at_once(account, ingest, grade_calls):
    batches: list[tuple[int, list]] = []

    def listener(prospect_id: int, old: str, new: str) -> None:
        raise AssertionError("for_many is called instead")

    listener.for_many = lambda account_id, changes: batches.append((account_id, changes))
    on_grade_changed(listener)
    try:
        ingest(
            account,
            event("cta_clicked"),
            event("content_downloaded"),
            event("cta_clicked", "bob@example.com"),
            event("content_downloaded", "bob@example.com"),
        )
    finally:
        remove_grade_listener(listener)

    ann, bob = prospect_id(account), prospect_id(account, "bob@example.com")
    assert batches == [(account.pk, sorted([(ann, "cold", "warm"), (bob, "cold", "warm")]))]
    assert sorted(grade_calls) == sorted([(ann, "cold", "warm"), (bob, "cold", "warm")])  # others one by one


def test_registering_a_listener_twice_calls_it_once(account, ingest, grade_calls):
    listener_calls: list[tuple] = []

    def listener(*args) -> None:
        listener_calls.append(args)

    on_grade_changed(listener)
    on_grade_changed(listener)
    try:
        ingest(account, event("cta_clicked"), event("content_downloaded"))
    finally:
        remove_grade_listener(listener)

    assert len(listener_calls) == 1


def test_a_recompute_reports_crossings_caused_by_new_rules(account, ingest, grade_calls):
    ingest(account, event("cta_clicked"))
    GradeBand.objects.filter(account=account, name="warm").update(min_score=30)

    changes = score_prospects(account.pk, [prospect_id(account)], reason="recompute")

    assert [(c.from_grade, c.to_grade, c.reason) for c in changes] == [("cold", "warm", "recompute")]
    assert grade_calls == [(prospect_id(account), "cold", "warm")]


def test_a_renamed_band_is_not_a_crossing(account, ingest, grade_calls):
    ingest(account, event("cta_clicked"), event("content_downloaded"))
    grade_calls.clear()
    GradeBand.objects.filter(account=account, name="warm").update(name="lukewarm")

    score_prospects(account.pk, [prospect_id(account)], reason="recompute")

    assert ProspectScore.objects.get().grade == "lukewarm"
    assert grade_calls == []
    assert GradeChange.objects.count() == 1  # only the original crossing


def test_a_first_score_from_a_recompute_is_a_backfill_not_a_crossing(account, grade_calls):
    prospect = Prospect.objects.create(account=account, email="old@example.com")
    prospect.events.create(account=account, external_id="e1", type="cta_clicked", occurred_at=prospect.created_at)
    prospect.events.create(account=account, external_id="e2", type="cta_clicked", occurred_at=prospect.created_at)
    prospect.events.create(account=account, external_id="e3", type="cta_clicked", occurred_at=prospect.created_at)

    score_prospects(account.pk, [prospect.pk], reason="recompute")

    assert ProspectScore.objects.get(prospect=prospect).grade == "hot"
    assert grade_calls == []
