"""The RQ worker class for sync work.

- Jobs run in the worker process (``SimpleWorker``: no fork per job), so database connections
  and the rate limiter are reused between kicks, and SIGTERM reaches the running flush.
- SIGTERM (a graceful stop) sets ``STOP_REQUESTED``: the running flush finishes the batch it
  holds, hands nothing half-done back, and returns; RQ's warm shutdown then exits.
- RQ's maintenance (re-queueing jobs of workers that died) runs every RQ_MAINTENANCE_INTERVAL
  seconds instead of every ten minutes. The outbox sweep recovers the *work* independently.
"""

from __future__ import annotations

from django.conf import settings
from rq.worker import SimpleWorker

from integrations.sync import claim
from integrations.sync.jobs import STOP_REQUESTED


class SyncWorker(SimpleWorker):
    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("maintenance_interval", settings.RQ_MAINTENANCE_INTERVAL)
        super().__init__(*args, **kwargs)

    def request_stop(self, signum, frame) -> None:
        STOP_REQUESTED.set()
        super().request_stop(signum, frame)

    def teardown(self) -> None:
        # Whatever is still claimed by flushes in this process goes back to the queue at once.
        claim.hand_back_process()
        super().teardown()
