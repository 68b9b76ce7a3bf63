"""A graceful stop (SIGTERM) of a worker mid-flush finishes or hands back its in-flight work.

The worker is a real `manage.py rqworker` process with our worker class. The CRM answers the
batch write slowly, so SIGTERM arrives while a claimed batch is on the wire. When the process has
exited no row may be left in flight (they would otherwise wait for their lease to run out), and
after another worker has run, every row is done: nothing lost, nothing duplicated.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from django.conf import settings
from django.test import override_settings

from integrations.models import OutboxItem, OutboxState
from integrations.sandbox.core import EmulatorServer, LocalCA
from integrations.sandbox.probes import PROBES, duplicates
from integrations.sync.redis import redis_client
from tests.e2e.conftest import CLIENT_ID, CLIENT_SECRET, EMULATORS, Sandbox, drain, event
from tests.reliability.conftest import ROOT, subprocess_env

pytestmark = pytest.mark.django_db(transaction=True)

BATCH_WRITE_PATH = "/crm/v3/objects/contacts/batch"
SLOW_SECONDS = 4


@pytest.fixture
def hubspot(tmp_path) -> Iterator[Sandbox]:
    ca = LocalCA(tmp_path / "ca")
    app, _tls = EMULATORS["hubspot"](ca)
    server = EmulatorServer(app, tls=ca).start()
    endpoints = {
        "hubspot": {
            "api_url": server.url,
            "oauth_url": server.url,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
        }
    }
    with override_settings(
        CRM_ENDPOINTS=endpoints,
        CRM_CA_BUNDLE=str(ca.ca_path),
        SYNC_RETRY_BASE_SECONDS=1,
        SYNC_RETRY_MAX_SECONDS=2,
        SYNC_COALESCE_SECONDS=0,
    ):
        redis_client().flushdb()
        try:
            yield Sandbox("hubspot", app, server, PROBES["hubspot"])
        finally:
            server.stop()
            redis_client().flushdb()


def wait_for(condition, seconds: float = 30.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_sigterm_mid_flush_leaves_nothing_in_flight_and_loses_nothing(hubspot, account, client, api_key):
    hubspot.connect(account)
    hubspot.app.faults.inject("slow", count=1, path_prefix=BATCH_WRITE_PATH, seconds=SLOW_SECONDS)
    events = [event(f"g{i}", f"g{i}@example.com") for i in range(150)]
    response = client.post(
        "/api/v1/events", {"events": events}, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {api_key}"
    )
    assert response.status_code == 200, response.content

    endpoint = settings.CRM_ENDPOINTS["hubspot"]
    env = subprocess_env(
        HUBSPOT_API_URL=endpoint["api_url"],
        HUBSPOT_OAUTH_URL=endpoint["oauth_url"],
        HUBSPOT_CLIENT_ID=CLIENT_ID,
        HUBSPOT_CLIENT_SECRET=CLIENT_SECRET,
        CRM_CA_BUNDLE=settings.CRM_CA_BUNDLE,
        SYNC_COALESCE_SECONDS="0",
        SYNC_RETRY_BASE_SECONDS="1",
    )
    worker = subprocess.Popen(  # our own manage.py with fixed arguments
        [sys.executable, "manage.py", "rqworker", "realtime", "--worker-class", "integrations.sync.worker.SyncWorker"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        # A generous wait: starting Django in a subprocess takes long on a loaded 2-core machine.
        assert wait_for(lambda: OutboxItem.objects.filter(state=OutboxState.IN_FLIGHT).exists(), seconds=120), (
            "the worker never claimed a batch"
        )
        assert wait_for(
            lambda: len(hubspot.app.requests_to("POST", BATCH_WRITE_PATH)) > 0 or hubspot.app.faults.pending() == 0
        )
        time.sleep(0.5)  # the slow batch call is on the wire
        in_flight_at_stop = OutboxItem.objects.filter(state=OutboxState.IN_FLIGHT).count()
        os.kill(worker.pid, signal.SIGTERM)
        worker.wait(timeout=60)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(timeout=10)

    assert in_flight_at_stop > 0  # the stop really landed on claimed work
    assert worker.returncode == 0  # a warm shutdown, not a crash
    assert not OutboxItem.objects.filter(state=OutboxState.IN_FLIGHT).exists()
    # Handed-back rows count no attempt: a graceful stop is not a failure.
    assert not OutboxItem.objects.filter(attempts__gt=0, last_error__contains="worker stopped").exists()

    drain(rounds=40)
    emails = hubspot.emails()
    assert emails == sorted(f"g{i}@example.com" for i in range(150))
    assert duplicates(emails) == 0
    keys = hubspot.engagement_keys()
    assert len(keys) == 150 and duplicates(keys) == 0
    assert not OutboxItem.objects.exclude(state=OutboxState.DONE).exists()
