"""Bounded concurrency for Pipedrive's one-record-per-call writes.

Pipedrive has no batch endpoints for persons, activities, notes or deals (crm-reference §3.2), so a
batch of 100 is up to a few hundred calls. They run on a small thread pool — every call through
the connector's HTTP seam (timeout, error mapping, redaction) and its ``before_request`` hook, where
the sync engine's shared limiter and the connector's pacer wait their turn — so a batch takes the
rate limit's time, not the sum of round trips.

Per-record failures (validation, a record gone, a 5xx or a dropped connection on that record's
call) are the task's own outcome. Failures of the whole call — an auth error, a 429, a refusal
that concerns the set-up — stop the tasks not yet started and are raised once every running task
has finished, so the engine retries the batch (safe: every write is idempotent).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from integrations.errors import AuthError, ConfigurationError, CrmError, RateLimited

WORKERS = 4
WHOLE_CALL = (AuthError, RateLimited, ConfigurationError)

T = TypeVar("T")


def run_all(tasks: Sequence[Callable[[], T]], workers: int = WORKERS) -> list[T | None]:
    """Results in task order; a task skipped after a whole-call failure gives None (then the
    failure is raised, so callers never see those Nones)."""
    stop = threading.Event()
    failures: list[CrmError] = []

    def guarded(task: Callable[[], T]) -> T | None:
        if stop.is_set():
            return None
        try:
            return task()
        except WHOLE_CALL as exc:
            stop.set()
            failures.append(exc)
            return None

    if workers <= 1 or len(tasks) <= 1:
        results = [guarded(task) for task in tasks]
    else:
        with ThreadPoolExecutor(max_workers=min(workers, len(tasks)), thread_name_prefix="pipedrive") as pool:
            results = list(pool.map(guarded, tasks))
    if failures:
        raise failures[0]
    return results
