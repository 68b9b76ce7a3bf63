"""The small form of `make chaos`: nothing lost, nothing duplicated under CRM faults, a worker
SIGKILL and a restart of the run's private Redis (the shared one is never touched).

The command runs as an operator would run it, in its own process, against this test's database.
"""

from __future__ import annotations

import re

import pytest

from tests.reliability.conftest import manage, subprocess_env

pytestmark = pytest.mark.django_db(transaction=True)

LINE = re.compile(
    r"^events=(?P<events>\d+) prospects=(?P<prospects>\d+) crm_records=(?P<records>\d+) "
    r"activities=(?P<activities>\d+) lost=(?P<lost>\d+) duplicated=(?P<duplicated>\d+) "
    r"drain_seconds=(?P<drain>[\d.]+)$"
)


def test_chaos_small_loses_and_duplicates_nothing():
    result = manage(
        "chaos",
        "--events",
        "300",
        "--prospects",
        "60",
        "--kills",
        "1",
        "--restart-redis",
        "--seed",
        "7",
        env=subprocess_env(),
        timeout=300,
    )
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, result.stdout + result.stderr
    match = LINE.match(lines[0])
    assert match, lines[0]
    assert result.returncode == 0, result.stderr[-4000:]
    assert match["events"] == "300" and match["prospects"] == "60"
    assert match["lost"] == "0" and match["duplicated"] == "0"
    assert match["records"] == "60"
    assert int(match["activities"]) > 0
    # The faults really happened (the run reports them on stderr).
    assert "SIGKILL worker" in result.stderr
    assert "restarted Redis" in result.stderr
