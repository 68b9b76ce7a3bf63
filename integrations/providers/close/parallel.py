"""Bounded concurrency for Close's one-record-per-call writes.

Close has no batch endpoints for contacts, activities, tasks or opportunities, so a batch is one
call per record. A few run at once (``batch_sizes["write_concurrency"]``), each thread with its
own ``CrmHttp`` (the seam is not shared across threads) wired to the same limiter hooks, so the
shared rate limiter still paces every call. The seams are kept in an ``HttpPool`` for the
connector's life, so their kept-alive connections (and TLS sessions) serve the next batch too.

Failures: a record-level error (``RecordError``, ``NotFound``) is that record's outcome. A 429 on
one record is waited out and that record tried once more, as Close's own client does (it sleeps
for the ``RateLimit`` reset): the refused call wrote nothing, and giving up the batch would cost
its finished records a second search and write. Anything else concerns the whole call (auth, a
rate limit that persists, outage, configuration): no new record is started, the ones in flight
finish, and the first such error is raised, as the connector contract asks. Retrying the whole
batch is safe because every write is matched before it is made.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from integrations.errors import AuthError, CrmError, RateLimited, RecordError
from integrations.http import CrmHttp

T = TypeVar("T")
R = TypeVar("R")

# The longest reset waited out inline; a longer one is the engine's to schedule.
INLINE_WAIT_SECONDS = 5.0

# Which whole-call error wins when several happen at once: the one the caller must act on first.
_PRECEDENCE = (AuthError, RateLimited)


class HttpPool:
    """Idle seams for writer threads, made on demand by ``factory`` and reused."""

    def __init__(self, factory: Callable[[], CrmHttp]) -> None:
        self.factory = factory
        self._idle: queue.SimpleQueue[CrmHttp] = queue.SimpleQueue()

    def acquire(self) -> CrmHttp:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            return self.factory()

    def release(self, http: CrmHttp) -> None:
        self._idle.put(http)


def _first(errors: list[CrmError]) -> CrmError:
    for kind in _PRECEDENCE:
        for error in errors:
            if isinstance(error, kind):
                return error
    return errors[0]


def _attempt(work: Callable[[CrmHttp, T], R], http: CrmHttp, item: T) -> R:
    try:
        return work(http, item)
    except RateLimited as error:
        wait = error.retry_after if error.retry_after is not None else 1.0
        if wait > INLINE_WAIT_SECONDS:
            raise
        time.sleep(wait)  # the shared limiter, told by the 429's headers, holds the other calls too
    return work(http, item)


def run(
    groups: Sequence[Sequence[T]],
    work: Callable[[CrmHttp, T], R],
    *,
    pool: HttpPool,
    main_http: CrmHttp,
    concurrency: int,
    failed: Callable[[T, RecordError], R],
) -> list[tuple[T, R]]:
    """Run ``work`` on every item; items of one group run in order (they write the same record).

    Returns (item, result) pairs; a RecordError becomes ``failed(item, error)``.
    """
    results: list[tuple[T, R]] = []
    errors: list[CrmError] = []
    lock = threading.Lock()
    inline = concurrency <= 1 or len(groups) <= 1

    def run_group(group: Sequence[T]) -> None:
        http = main_http if inline else pool.acquire()
        try:
            for item in group:
                with lock:
                    if errors:
                        return
                try:
                    result = _attempt(work, http, item)
                except RecordError as error:
                    result = failed(item, error)
                except CrmError as error:
                    with lock:
                        errors.append(error)
                    return
                with lock:
                    results.append((item, result))
        finally:
            if not inline:
                pool.release(http)

    if inline:
        for group in groups:
            run_group(group)
    else:
        workers = min(concurrency, len(groups))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="close-write") as executor:
            list(executor.map(run_group, groups))
    if errors:
        raise _first(errors)
    return results
