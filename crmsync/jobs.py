"""Running background jobs: on RQ when REDIS_URL is set, otherwise in-process.

Jobs are always dispatched after the surrounding transaction commits and carry ids, never model
objects (DESIGN.md). Losing a dispatched job may delay work but never loses it: the work itself
lives in PostgreSQL (the outbox) and a periodic sweep finds it again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.conf import settings
from django.db import close_old_connections, transaction
from django.utils.module_loading import import_string

log = logging.getLogger(__name__)

_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def _job_path(func: Callable[..., Any] | str) -> str:
    return func if isinstance(func, str) else f"{func.__module__}.{func.__qualname__}"


def _run_in_process(path: str, args: tuple, kwargs: dict) -> None:
    close_old_connections()
    try:
        import_string(path)(*args, **kwargs)
    except Exception:  # an in-process job must not take the web process down; it is logged
        log.exception("in-process job %s failed", path)
    finally:
        close_old_connections()


def _in_process_executor() -> ThreadPoolExecutor:
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="crmsync-job")
        return _executor


def dispatch_now(
    func: Callable[..., Any] | str, *args: Any, queue: str = "default", job_id: str | None = None, **kwargs: Any
) -> None:
    path = _job_path(func)
    if settings.REDIS_URL:
        import django_rq
        from rq.exceptions import DuplicateJobError  # noqa: F401 - documents the coalescing intent

        queue_obj = django_rq.get_queue(queue)
        try:
            queue_obj.enqueue(path, *args, job_id=job_id, **kwargs)
        except Exception:
            # Redis is down: the work is in PostgreSQL and the periodic sweep will pick it up.
            log.warning("could not enqueue %s on %s; the sweep will pick the work up", path, queue, exc_info=True)
    elif getattr(settings, "JOBS_RUN_INLINE", False):
        _run_in_process(path, args, kwargs)
    else:
        _in_process_executor().submit(_run_in_process, path, args, kwargs)


def enqueue(
    func: Callable[..., Any] | str, *args: Any, queue: str = "default", job_id: str | None = None, **kwargs: Any
) -> None:
    """Dispatch ``func(*args, **kwargs)`` once the current transaction commits."""
    transaction.on_commit(lambda: dispatch_now(func, *args, queue=queue, job_id=job_id, **kwargs))
