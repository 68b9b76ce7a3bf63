"""Bounded concurrency for CRMs that write one record per call, on the one HTTP seam.

Several CRMs have no batch endpoint for some writes (Pipedrive persons, Copper people, Freshsales
contacts, Close contacts and activities: crm-reference §3.2, §6.2, §7.2, §8.2), so a batch of 100
is 100 or more calls. Running a few at once keeps each call's round trip from setting the pace;
the CRM's rate limit still does, because every call goes through a seam whose ``before_request``
hook is the sync engine's shared limiter (and any pacer of the connector's own).

This module is the one implementation; provider packages only say how many workers they want
(e.g. ``batch_sizes["write_concurrency"]``) and what one item's work is.

Seams and threads
    ``CrmHttp`` is not shared across threads. ``ThreadSeams`` hands each worker thread a seam of
    its own, made by the connector's factory (``make_http`` with the same credentials, timeout and
    limiter hooks), and keeps the idle ones for the next run, so their kept-alive connections
    serve the next batch too. After every run the thread seams' call counts (and the latest
    rate-limit snapshot) are folded into the connector's main seam, so ``connector.http.calls``
    counts every call the connector made.

Errors
    A ``RecordError`` belongs to its item: it is returned in the item's place, or turned into a
    result by ``on_record_error``. Any other ``CrmError`` (auth, rate limit, outage,
    configuration) concerns the whole call: no further item is started, the ones in flight
    finish, and one error is raised — an ``AuthError`` before a ``RateLimited`` before the first
    other one, so the caller acts on what matters most. Items already written stay written;
    every connector write is idempotent (integrations.connector), so retrying the batch is safe.

Extension point
    ``work(http, item)`` is the provider's: it must make its calls through the ``http`` it is
    given (the thread's seam), raise ``RecordError`` for that item's own failure and any other
    ``CrmError`` for the call's. A provider that wants a different per-item policy (e.g. Close
    waits out a short 429 and tries the item once more) wraps its ``work`` before passing it in;
    items that must run in order (several writes to one record) are passed as one item, a
    group, whose ``work`` runs them in turn.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from integrations.errors import AuthError, CrmError, RateLimited, RecordError
from integrations.http import CrmHttp

Item = TypeVar("Item")
Result = TypeVar("Result")

# Which whole-call error is raised when several threads fail at once: the one to act on first.
PRECEDENCE: tuple[type[CrmError], ...] = (AuthError, RateLimited)


class ThreadSeams:
    """Seams for worker threads: one per thread at a time, made on demand and reused.

    ``main`` is the connector's own seam (used when a run needs no thread, and where call counts
    are folded); ``factory`` makes another seam with the same credentials and hooks.
    """

    def __init__(self, main: CrmHttp, factory: Callable[[], CrmHttp]) -> None:
        self.main = main
        self.factory = factory
        self._idle: queue.SimpleQueue[CrmHttp] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._made: list[CrmHttp] = []

    @classmethod
    def shared(cls, main: CrmHttp) -> ThreadSeams:
        """Every thread uses ``main`` (for helpers that hold the connector's seam; see ``run_tasks``)."""
        return cls(main, lambda: main)

    def acquire(self) -> CrmHttp:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            seam = self.factory()
            if seam is not self.main:
                with self._lock:
                    self._made.append(seam)
            return seam

    def release(self, seam: CrmHttp) -> None:
        self._idle.put(seam)

    def fold_counts(self) -> None:
        """Move the thread seams' call counts (and the latest rate snapshot) to the main seam."""
        with self._lock:
            made = list(self._made)
        for seam in made:
            calls, by_status = seam.calls, seam.calls_by_status
            seam.calls, seam.calls_by_status = 0, {}
            self.main.calls += calls
            for status, count in by_status.items():
                self.main.calls_by_status[status] = self.main.calls_by_status.get(status, 0) + count
            if seam.rate_limit is not None and (
                self.main.rate_limit is None or seam.rate_limit.at >= self.main.rate_limit.at
            ):
                self.main.rate_limit = seam.rate_limit

    def close(self) -> None:
        """Close every thread seam's connections (the seams stay usable; they reconnect)."""
        with self._lock:
            made = list(self._made)
        for seam in made:
            seam.session.close()


def first_error(errors: Sequence[CrmError]) -> CrmError:
    """The error to raise when several whole-call errors happened at once (see ``PRECEDENCE``)."""
    for kind in PRECEDENCE:
        for error in errors:
            if isinstance(error, kind):
                return error
    return errors[0]


def run_bounded(
    items: Sequence[Item],
    work: Callable[[CrmHttp, Item], Result],
    *,
    seams: ThreadSeams,
    workers: int,
    on_record_error: Callable[[Item, RecordError], Result] | None = None,
    thread_name: str = "crm-write",
) -> list[Result | RecordError]:
    """``work(http, item)`` for every item, at most ``workers`` at once; results in input order.

    A ``RecordError`` is the item's result (or ``on_record_error(item, error)`` when given); any
    other ``CrmError`` stops the run and is raised once the running items have finished. With one
    worker or one item, everything runs on this thread with the main seam.
    """
    if not items:
        return []

    def one(http: CrmHttp, item: Item) -> Result | RecordError:
        try:
            return work(http, item)
        except RecordError as error:
            return on_record_error(item, error) if on_record_error is not None else error

    if workers <= 1 or len(items) == 1:
        return [one(seams.main, item) for item in items]

    stop = threading.Event()
    errors: list[CrmError] = []
    lock = threading.Lock()

    def task(item: Item) -> Result | RecordError | None:
        if stop.is_set():
            return None
        http = seams.acquire()
        try:
            return one(http, item)
        except CrmError as error:
            stop.set()
            with lock:
                errors.append(error)
            return None
        finally:
            seams.release(http)

    try:
        with ThreadPoolExecutor(max_workers=min(workers, len(items)), thread_name_prefix=thread_name) as executor:
            results = list(executor.map(task, items))
    finally:
        seams.fold_counts()
    if errors:
        raise first_error(errors)
    return results  # type: ignore[return-value]  # no None is left once no error was raised


def run_tasks(
    tasks: Sequence[Callable[[], Result]],
    *,
    workers: int,
    main: CrmHttp | None = None,
    thread_name: str = "crm-write",
) -> list[Result]:
    """Run argument-less tasks, at most ``workers`` at once; results in task order.

    For connectors whose helpers already hold the connector's seam (Pipedrive's persons, notes
    and activities) rather than taking one per call; ``main`` is that seam (tasks are handed it
    and may ignore it), so every thread shares it. A task
    handles its own record's failures; a ``RecordError`` it lets through is raised like any other
    whole-call error. Prefer ``run_bounded`` with a seam per thread for new code.
    """

    def reraise(_task: Callable[[], Result], error: RecordError) -> Result:
        raise error

    return run_bounded(  # type: ignore[return-value]  # record errors are raised, never returned
        tasks,
        lambda _http, task: task(),
        seams=ThreadSeams.shared(main),  # type: ignore[arg-type]  # None: the tasks hold their seam
        workers=workers,
        on_record_error=reraise,
        thread_name=thread_name,
    )
