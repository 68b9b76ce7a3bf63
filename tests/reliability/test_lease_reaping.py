"""A killed worker's person row comes back even when newer work for the same person is queued.

Found by `make chaos`: while a worker holds a prospect's person row (in flight), a new event for
that prospect queues a new open person row (the outbox allows one *open* person row per prospect,
and an in-flight row is not open). When the holder is killed, returning its row to pending would
make two open rows: the single bulk UPDATE of ``claim.reap_expired_leases`` fails on
``outbox_one_open_person_row``, no lease is reaped at all, and the sweep (which reaps first)
never kicks again, so real-time sync stalls. The same UPDATE shape is in ``hand_back`` and
``hand_back_process`` (graceful stop). The fix: a reopened person row whose prospect already has
a newer person row is retired as "superseded" (``claim.supersede_reopened_person_rows``).
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import transaction
from django.utils import timezone

from crmsync.models import Prospect
from integrations.models import Connection, ConnectionStatus, OutboxItem, OutboxKind, OutboxState, SyncMode
from integrations.sync import claim


@pytest.fixture
def person_rows(account):
    connection = Connection.objects.create(
        account=account,
        provider="hubspot",
        status=ConnectionStatus.ACTIVE,
        sync_mode=SyncMode.REALTIME,
        activated_at=timezone.now(),
    )
    prospect = Prospect.objects.create(account=account, email="held@example.com")
    now = timezone.now()
    common = {
        "connection": connection,
        "prospect": prospect,
        "kind": OutboxKind.PERSON,
        "dedupe_key": f"person:{prospect.pk}",
        "next_attempt_at": now,
    }
    held = OutboxItem.objects.create(
        **common, state=OutboxState.IN_FLIGHT, claimed_by="dead-worker:1:x", lease_until=now - dt.timedelta(seconds=1)
    )
    newer = OutboxItem.objects.create(**common, state=OutboxState.PENDING)
    other = OutboxItem.objects.create(
        connection=connection,
        prospect=Prospect.objects.create(account=account, email="other@example.com"),
        kind=OutboxKind.PERSON,
        dedupe_key="person:other",
        next_attempt_at=now,
        state=OutboxState.IN_FLIGHT,
        claimed_by="dead-worker:1:x",
        lease_until=now - dt.timedelta(seconds=1),
    )
    return held, newer, other


@pytest.mark.django_db
def test_expired_leases_are_reaped_even_when_a_newer_open_person_row_exists(person_rows):
    held, newer, other = person_rows
    assert newer.state == OutboxState.PENDING  # the newer open row for the same person
    with transaction.atomic():
        claim.reap_expired_leases()
    assert not OutboxItem.objects.filter(state=OutboxState.IN_FLIGHT).exists()
    other.refresh_from_db()
    assert other.state == OutboxState.PENDING
    assert OutboxItem.objects.filter(prospect=held.prospect, state__in=[OutboxState.PENDING]).count() == 1
    held.refresh_from_db()
    assert (held.state, held.result) == (OutboxState.SKIPPED, "superseded")
