"""integrations.concurrency: the one bounded-concurrency runner of the one-record-per-call CRMs."""

from __future__ import annotations

import threading
import time

import pytest

from integrations.concurrency import ThreadSeams, first_error, run_bounded, run_tasks
from integrations.errors import AuthError, ConfigurationError, RateLimited, RecordError, RetryableError
from integrations.http import CrmHttp


def _seam() -> CrmHttp:
    return CrmHttp("Test CRM", "https://crm.invalid", classify=lambda response: None)


def _seams() -> ThreadSeams:
    return ThreadSeams(_seam(), _seam)


def test_results_come_in_input_order_and_each_thread_has_its_own_seam():
    seams = _seams()
    used: dict[int, set[int]] = {}
    lock = threading.Lock()

    def work(http: CrmHttp, item: int) -> int:
        time.sleep(0.01 * (5 - item % 5))  # later items finish first
        http.calls += 1
        with lock:
            used.setdefault(threading.get_ident(), set()).add(id(http))
        return item * 10

    assert run_bounded(list(range(12)), work, seams=seams, workers=4) == [i * 10 for i in range(12)]
    assert all(len(ids) == 1 for ids in used.values())  # a thread keeps one seam
    assert len({seam for ids in used.values() for seam in ids}) <= 4
    assert id(seams.main) not in {seam for ids in used.values() for seam in ids}
    assert seams.main.calls == 12  # the thread seams' counts are folded into the main seam


def test_seams_are_kept_for_the_next_run_and_counts_are_not_folded_twice():
    made: list[CrmHttp] = []

    def factory() -> CrmHttp:
        made.append(_seam())
        return made[-1]

    seams = ThreadSeams(_seam(), factory)

    def work(http: CrmHttp, item: int) -> int:
        http.calls += 1
        time.sleep(0.01)
        return item

    run_bounded(list(range(8)), work, seams=seams, workers=2)
    run_bounded(list(range(8)), work, seams=seams, workers=2)
    assert len(made) == 2
    assert seams.main.calls == 16


def test_one_worker_or_one_item_runs_inline_on_the_main_seam():
    seams = ThreadSeams(_seam(), lambda: pytest.fail("no thread seam is needed"))
    assert run_bounded([1, 2], lambda http, item: http is seams.main, seams=seams, workers=1) == [True, True]
    assert run_bounded([1], lambda http, item: http is seams.main, seams=seams, workers=4) == [True]
    assert run_bounded([], lambda http, item: item, seams=seams, workers=4) == []


def test_a_record_error_is_the_items_outcome():
    def work(http: CrmHttp, item: int) -> int:
        if item == 2:
            raise RecordError("bad e-mail", field="email")
        return item

    results = run_bounded([1, 2, 3], work, seams=_seams(), workers=3)
    assert results[0] == 1 and results[2] == 3 and isinstance(results[1], RecordError)
    mapped = run_bounded(
        [1, 2, 3], work, seams=_seams(), workers=3, on_record_error=lambda item, error: f"failed {item}"
    )
    assert mapped == [1, "failed 2", 3]


def test_a_whole_call_error_stops_new_items_and_is_raised_after_the_running_ones():
    started: list[int] = []
    finished: list[int] = []

    def work(http: CrmHttp, item: int) -> int:
        started.append(item)
        if item == 0:
            raise RetryableError("CRM outage", status=503)
        time.sleep(0.05)
        finished.append(item)
        return item

    with pytest.raises(RetryableError):
        run_bounded(list(range(40)), work, seams=_seams(), workers=2)
    assert len(started) < 40  # nothing new after the failure
    assert sorted(finished) == sorted(i for i in started if i != 0)  # the running ones finished


def test_auth_then_rate_limit_win_over_other_errors():
    outage, limited, auth = RetryableError("outage"), RateLimited("429"), AuthError("401")
    assert first_error([outage, limited, auth]) is auth
    assert first_error([outage, limited]) is limited
    assert first_error([ConfigurationError("a"), outage]).message == "a"


def test_run_tasks_shares_the_callers_seam_and_raises_a_record_error():
    main = _seam()
    assert run_tasks([lambda: 1, lambda: 2, lambda: 3], main=main, workers=2) == [1, 2, 3]

    def refused() -> int:
        raise RecordError("refused")

    with pytest.raises(RecordError):
        run_tasks([lambda: 1, refused], workers=2)
    assert main.calls == 0  # nothing folded into a shared seam
