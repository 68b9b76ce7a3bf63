"""Bounded concurrency on the one HTTP seam, for Freshsales' one-record-per-call writes.

Freshsales has no synchronous batch upsert (crm-reference §7.2), so a batch costs a call per
item. A few run at once (``write_concurrency``); the quotas are kept by the engine's shared
limiter, plugged into every seam's ``before_request`` hook. ``CrmHttp`` is not shared across
threads: each worker thread gets its own seam with the same credentials and hooks, and its call
counts are added back to the connector's seam afterwards.

A ``RecordError`` belongs to its item and is returned in its place. Any other ``CrmError`` (rate
limit, auth, outage) concerns the whole call: no further item starts and the first such error is
raised once the running ones finish. Items already written stay written; every write is
idempotent, so the caller's retry of the batch is safe.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from integrations.errors import CrmError, RecordError
from integrations.http import CrmHttp


def run_bounded(
    items: Sequence[Any],
    work: Callable[[CrmHttp, Any], Any],
    *,
    main: CrmHttp,
    make_http: Callable[[], CrmHttp],
    workers: int,
) -> list[Any]:
    """``work(http, item)`` for every item, at most ``workers`` at once; results in input order."""
    if workers <= 1 or len(items) <= 1:
        return [_one(work, main, item) for item in items]
    local = threading.local()
    made: list[CrmHttp] = []
    lock = threading.Lock()
    failures: list[CrmError] = []
    stop = threading.Event()

    def seam() -> CrmHttp:
        http = getattr(local, "http", None)
        if http is None:
            http = local.http = make_http()
            with lock:
                made.append(http)
        return http

    def task(item: Any) -> Any:
        if stop.is_set():
            return None
        try:
            return _one(work, seam(), item)
        except CrmError as error:
            stop.set()
            failures.append(error)
            return None

    try:
        with ThreadPoolExecutor(max_workers=min(workers, len(items)), thread_name_prefix="freshsales") as pool:
            results = list(pool.map(task, items))
    finally:
        for http in made:
            main.calls += http.calls
            for status, count in http.calls_by_status.items():
                main.calls_by_status[status] = main.calls_by_status.get(status, 0) + count
            if http.rate_limit is not None:
                main.rate_limit = http.rate_limit
            http.session.close()
    if failures:
        raise failures[0]
    return results


def _one(work: Callable[[CrmHttp, Any], Any], http: CrmHttp, item: Any) -> Any:
    try:
        return work(http, item)
    except RecordError as error:
        return error
