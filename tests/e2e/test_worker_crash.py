"""A worker killed with SIGKILL mid-batch loses nothing and duplicates nothing.

The worker is a real `manage.py rqworker` process with our worker class. The CRM is made slow on
its batch-write route, so the kill lands while the batch is on the wire (the CRM may still apply
it after the worker is gone). The rows' lease then runs out, the sweep hands them to a new
worker, and idempotent writes make the second delivery a no-op in the CRM.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from django.conf import settings
from django.db import connection as db_connection
from django.utils import timezone

from integrations.models import OutboxItem, OutboxState
from integrations.sandbox.probes import duplicates
from integrations.sync.jobs import sweep
from tests.e2e.conftest import drain, event

pytestmark = pytest.mark.django_db(transaction=True)


def worker_environment(crm) -> dict[str, str]:
    database = db_connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": f"postgres://{database['USER'] or 'postgres'}@{database['HOST'] or '127.0.0.1'}:"
        f"{database['PORT'] or 5432}/{database['NAME']}",
        "REDIS_URL": settings.REDIS_URL,
        "CRM_CA_BUNDLE": settings.CRM_CA_BUNDLE or "",
        "SYNC_RETRY_BASE_SECONDS": "1",
        "SYNC_COALESCE_SECONDS": "0",
    }
    upper = crm.provider.upper()
    endpoint = settings.CRM_ENDPOINTS[crm.provider]
    env.update(
        {
            f"{upper}_API_URL": endpoint["api_url"],
            f"{upper}_OAUTH_URL": endpoint["oauth_url"],
            f"{upper}_CLIENT_ID": endpoint["client_id"],
            f"{upper}_CLIENT_SECRET": endpoint["client_secret"],
        }
    )
    return env


def wait_for(condition, seconds: float = 30.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def test_a_worker_killed_mid_batch_loses_and_duplicates_nothing(crm, account, post_events, tmp_path):
    crm.connect(account)
    crm.app.faults.inject("slow", count=1, path_prefix=crm.probe.batch_write_path, seconds=3)
    post_events(*[event(f"k{i}", f"k{i}@example.com") for i in range(150)])

    worker = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "rqworker",
            "realtime",
            "--burst",
            "--worker-class",
            "integrations.sync.worker.SyncWorker",
        ],
        env=worker_environment(crm),
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "worker.log").open("w"),
    )
    try:
        claimed = wait_for(lambda: OutboxItem.objects.filter(state=OutboxState.IN_FLIGHT).exists())
        assert claimed, "the worker never claimed a batch:\n" + (tmp_path / "worker.log").read_text()[:6000]
        time.sleep(0.5)  # the batch call is now on the wire, held by the slow CRM
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
    finally:
        if worker.poll() is None:
            worker.kill()

    stuck = OutboxItem.objects.filter(state=OutboxState.IN_FLIGHT)
    assert stuck.exists()  # the kill really interrupted claimed work
    # Time passes: the lease runs out and the sweep hands the rows to the next worker.
    stuck.update(lease_until=timezone.now() - timezone.timedelta(seconds=1))
    assert sweep()["reaped"] > 0
    time.sleep(3.5)  # let the CRM finish the interrupted call too, as a real one would
    drain(rounds=40)

    emails = [email for _id, email in crm.people()]
    assert sorted(emails) == sorted(f"k{i}@example.com" for i in range(150))
    assert duplicates(emails) == 0
    keys = crm.engagement_keys()
    assert len(keys) == 150 and duplicates(keys) == 0
    assert not OutboxItem.objects.exclude(state=OutboxState.DONE).exists()
