"""Background jobs of outgoing webhooks. They carry ids, never model objects (DESIGN.md).

- ``deliver(ids)``: dispatched by ``emit`` (and by replay) after commit, so a new message
  leaves at once;
- ``deliver_due()``: the scheduler's entry (crmsync/cron.py), every 15 s: reaps the leases of
  dead workers, then sends what is due (retries, and new rows whose dispatch was lost with
  Redis) for up to ``TICK_SECONDS``. Safe to run several at once: each claims its own rows
  (SKIP LOCKED), a few at a time, so concurrent runs share a backlog.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from integrations.webhooks_out import claim, delivery

QUEUE = "default"
# Deliveries per dispatched job and per claim: few enough that slow receivers do not hold many
# rows in one worker's lease while other workers could send them.
CHUNK = 10
# How long one scheduler run keeps claiming; what is left waits for the next run.
TICK_SECONDS = 50


def deliver(delivery_ids: Sequence[int]) -> None:
    """Send these deliveries if they are still due and no one else is sending them."""
    token, rows = claim.claim(len(delivery_ids), ids=delivery_ids)
    delivery.deliver_claimed(token, rows)


def deliver_due() -> int:
    """Reap expired leases, then send due deliveries, oldest first. Returns how many were sent."""
    claim.reap_expired_leases()
    started = time.monotonic()
    sent = 0
    while time.monotonic() - started < TICK_SECONDS:
        token, rows = claim.claim(CHUNK)
        if not rows:
            break
        delivery.deliver_claimed(token, rows)
        sent += len(rows)
    return sent
