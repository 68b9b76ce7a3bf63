"""A small run of bench_latency: events through gunicorn and an RQ worker to the sandbox HubSpot.

The figures themselves are measured by ``make bench``; this checks that the command drives what it
says, reports every figure it claims, and leaves nothing behind (account, worker, gunicorn).
"""

from __future__ import annotations

import io
import json
import os
import re

import pytest
from django.conf import settings
from django.core.management import call_command

from crmsync.models import Account, Event

pytestmark = pytest.mark.skipif(not settings.REDIS_URL, reason="real-time work goes to RQ workers over Redis")


@pytest.mark.django_db(transaction=True)
def test_bench_latency_sees_every_event_in_the_crm_and_cleans_up():
    out, err = io.StringIO(), io.StringIO()
    call_command(
        "bench_latency",
        *("--rate", "4", "--seconds", "3", "--workers", "1", "--events-per-request", "2"),
        stdout=out,
        stderr=err,
    )

    figures = json.loads(out.getvalue().strip().splitlines()[-1])
    assert (figures["events"], figures["accepted"], figures["visible"]) == (12, 12, 12)
    assert figures["events_per_request"] == 2
    assert figures["http_429"] == 0
    # A contact cannot be in the CRM before its event was accepted, and within the target.
    assert 0 < figures["p50"] <= figures["p95"] <= figures["p99"] <= figures["max"]
    assert figures["meets_target"] is (figures["p99"] <= 5)
    assert figures["achieved_rate"] > 0 and "api_calls" in figures
    assert not Account.objects.exists()
    assert not Event.objects.exists()
    group = int(re.search(r"gunicorn started, process group (\d+)", err.getvalue()).group(1))
    with pytest.raises(ProcessLookupError):
        os.killpg(group, 0)
