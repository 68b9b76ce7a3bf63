"""Bounded concurrency for Copper's one-record-per-call API, on the one HTTP seam.

Copper has no batch lookup or batch write we can rely on (crm-reference §6.2), so a batch of
people costs a call or two each. Running a few at once keeps the latency of each call from
setting the pace; the rate limit (180 a minute) is kept by the shared limiter the engine plugs
into the seam's ``before_request`` hook, which every worker thread's seam shares.

``CrmHttp`` is not shared across threads: each worker thread gets its own, made by the
connector's ``make_http`` with the same credentials and hooks, and its call counts are added
back to the connector's seam afterwards.

Errors: a ``RecordError`` belongs to its item and is returned in its place; any other
``CrmError`` (rate limit, auth, outage) concerns the whole call, so no further item is started
and the first such error is raised once the running ones have finished. Items already written
stay written — every write is idempotent, so the caller's retry of the batch is safe.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from integrations.errors import CrmError, RecordError
from integrations.http import CrmHttp

Item = TypeVar("Item")
Result = TypeVar("Result")


class SeamPool:
    """Per-thread copies of one ``CrmHttp``."""

    def __init__(self, main: CrmHttp, make: Callable[[], CrmHttp]) -> None:
        self.main = main
        self._make = make
        self._local = threading.local()
        self._made: list[CrmHttp] = []
        self._lock = threading.Lock()

    def http(self) -> CrmHttp:
        seam = getattr(self._local, "seam", None)
        if seam is None:
            seam = self._make()
            self._local.seam = seam
            with self._lock:
                self._made.append(seam)
        return seam

    def fold_counts(self) -> None:
        """Add the thread seams' call counts (and the latest rate snapshot) to the main seam."""
        with self._lock:
            made, self._made = self._made, []
        for seam in made:
            self.main.calls += seam.calls
            for status, count in seam.calls_by_status.items():
                self.main.calls_by_status[status] = self.main.calls_by_status.get(status, 0) + count
            if seam.rate_limit is not None:
                self.main.rate_limit = seam.rate_limit
            seam.session.close()


def run_bounded(
    items: Sequence[Item],
    work: Callable[[CrmHttp, Item], Result],
    *,
    main: CrmHttp,
    make_http: Callable[[], CrmHttp],
    workers: int,
) -> list[Result | RecordError]:
    """``work(http, item)`` for every item, at most ``workers`` at once, results in input order."""
    if not items:
        return []
    if workers <= 1 or len(items) == 1:
        return [_one(work, main, item) for item in items]
    pool = SeamPool(main, make_http)
    failure: list[CrmError] = []
    stop = threading.Event()

    def task(item: Item) -> Result | RecordError | None:
        if stop.is_set():
            return None
        try:
            return _one(work, pool.http(), item)
        except CrmError as error:
            stop.set()
            failure.append(error)
            return None

    try:
        with ThreadPoolExecutor(max_workers=min(workers, len(items)), thread_name_prefix="copper") as executor:
            results = list(executor.map(task, items))
    finally:
        pool.fold_counts()
    if failure:
        raise failure[0]
    return results  # type: ignore[return-value]


def _one(work: Callable[[CrmHttp, Item], Result], http: CrmHttp, item: Item) -> Result | RecordError:
    try:
        return work(http, item)
    except RecordError as error:
        return error
