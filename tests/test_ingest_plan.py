"""Ingest's lookups by id stay probes of their ids' index for an account the statistics do not know.

Before this, a new account's batches got slower with every event it stored: the statistics (taken
while another account held every event) said the new account had about one event, so "which of
these 500 event ids are stored?" scanned all of the account's events through an account index and
compared each with each of the 500 ids. On a database holding another account's 10 M events the
batched ingest fell to 1,363 events/s. These tests read the plans PostgreSQL chooses.
"""

from __future__ import annotations

import re

import pytest
from django.db import connection as db
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from crmsync.ingest_sql import find_existing
from crmsync.models import Prospect
from scoring.models import GradeChange
from scoring.service import score_prospects

pytestmark = pytest.mark.skipif(db.vendor != "postgresql", reason="plans are PostgreSQL's")

ACCOUNT_INDEXES = ("event_recent_idx", "crmsync_event_account_id", "event_anonymous_idx")


def _store_events(account, prospect, count: int, prefix: str) -> None:
    now = timezone.now()
    with db.cursor() as cursor:
        cursor.execute(
            """INSERT INTO crmsync_event (account_id, external_id, type, occurred_at, received_at, prospect_id,
                   visitor_id, data)
               SELECT %s, %s || g, 'capsule_viewed', %s, %s, %s, '', '{}' FROM generate_series(1, %s) g""",
            [account.pk, prefix, now, now, prospect.pk, count],
        )


@pytest.fixture
def new_account(account, make_account):
    """``account`` holds 3,000 events that the statistics do not know: they were taken while another
    account held all 30,000 events there were."""
    other = make_account("Big Co")
    _store_events(other, Prospect.objects.create(account=other, email="big@example.com"), 30_000, "big-")
    with db.cursor() as cursor:
        cursor.execute("ANALYZE crmsync_event")
    prospect = Prospect.objects.create(account=account, email="ann@example.com")
    _store_events(account, prospect, 3_000, "evt-")
    return account, prospect


def _plans_of(run, table_pattern: str) -> list[str]:
    """Run ``run()`` and EXPLAIN each SELECT it sent that reads ``table_pattern``."""
    with CaptureQueriesContext(db) as captured:
        run()
    selects = [q["sql"] for q in captured.captured_queries if q["sql"].startswith("SELECT")]
    plans = []
    with db.cursor() as cursor:
        for sql in selects:
            if re.search(table_pattern, sql):
                cursor.execute("EXPLAIN " + sql)
                plans.append("\n".join(row[0] for row in cursor.fetchall()))
    assert plans, f"no SELECT of {table_pattern} ran"
    return plans


def test_the_stored_event_check_probes_each_id(new_account):
    account, _prospect = new_account
    asked = [f"evt-{n}" for n in range(2_901, 3_401)]  # 100 stored, 400 new
    found: dict = {}

    def run():
        found["existing"] = find_existing(account.pk, event_ids=asked, email_hashes=[], capsule_ids=[])

    (plan,) = _plans_of(run, r'FROM "crmsync_event"')

    assert sorted(found["existing"].stored_events) == sorted(f"evt-{n}" for n in range(2_901, 3_001))
    assert "event_unique_external_id" in plan, plan
    assert not any(index in plan for index in ACCOUNT_INDEXES), plan


def test_another_accounts_event_with_the_same_id_is_not_taken_for_ours(new_account, make_account):
    account, _prospect = new_account
    existing = find_existing(account.pk, event_ids=["big-7", "evt-7"], email_hashes=[], capsule_ids=[])
    assert set(existing.stored_events) == {"evt-7"}


def test_scoring_reads_the_prospects_events_through_their_own_index(new_account):
    account, prospect = new_account

    plans = _plans_of(
        lambda: score_prospects(account.pk, {prospect.pk}, reason=GradeChange.Reason.INGEST), r'FROM "crmsync_event"'
    )

    for plan in plans:
        assert "prospect" in plan, plan  # event_prospect_time_idx or the prospect foreign key's index
        assert not any(index in plan for index in ACCOUNT_INDEXES), plan
