"""Exactly once under real concurrency: two transactions recording the same firing at once."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, transaction

from crmsync.models import Prospect
from scoring.models_triggers import TriggerFiring
from scoring.triggers.evaluate import Firing
from scoring.triggers.firing import record_firings
from tests.triggers.conftest import evt, trigger_rows


@pytest.mark.django_db(transaction=True)
def test_two_transactions_recording_one_firing_act_once(account, crm, make_rule, ingest):
    rule = make_rule(account, "cta_clicked", actions=[{"type": "assign_owner", "owner_ids": ["a1", "b2"]}])
    ingest(account, evt("capsule_viewed"))
    prospect_id = Prospect.objects.get(account=account).pk
    planned = [Firing(rule.pk, prospect_id, None, f"rule:{rule.pk}:prospect:{prospect_id}")]
    barrier = threading.Barrier(2)
    results: list[int] = []
    errors: list[BaseException] = []

    def record() -> None:
        try:
            barrier.wait()
            with transaction.atomic():
                results.append(len(record_firings(account, planned, {rule.pk: rule})))
        except BaseException as exc:  # reported below: a thread's exception would otherwise vanish
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=record) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert sorted(results) == [0, 1]
    assert TriggerFiring.objects.filter(rule=rule).count() == 1
    assert [row.payload["owner_id"] for row in trigger_rows(crm)] == ["a1"]
    rule.refresh_from_db()
    assert rule.round_robin_next == 1
