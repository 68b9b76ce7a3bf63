"""Claims walk the due index, even for a new connection whose rows the statistics do not know.

Before this, a new connection's 100,000 queued rows were unknown to the planner's statistics and
the outbox had a lone connection index, so each claim sorted every due row (50-90 ms of database
CPU per claim, 1.5x the HubSpot floor at 100,000 contacts). These tests read the plan PostgreSQL
chooses and the statistics it has.
"""

from __future__ import annotations

import pytest
from django.db import connection as db
from django.db import transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from crmsync.models import Prospect
from integrations.models import Connection, OutboxItem, OutboxKind
from integrations.sync import claim as claiming
from integrations.sync.outbox import enqueue_prospects
from integrations.sync.sql import ANALYZE_AFTER_ROWS, analyze_after_bulk_write, read_in_index_order, worth_analyzing

pytestmark = pytest.mark.skipif(db.vendor != "postgresql", reason="plans and ANALYZE are PostgreSQL's")


def _claim_plan(connection: Connection) -> str:
    """The plan of the claim's query, planned as claim() plans it."""
    due = claiming._due(connection.pk, [OutboxKind.PERSON], timezone.now())
    sql, params = due.order_by("next_attempt_at", "id").values_list("id", flat=True)[:100].query.sql_with_params()
    with transaction.atomic(), read_in_index_order(), db.cursor() as cursor:
        cursor.execute("EXPLAIN " + sql + " FOR UPDATE SKIP LOCKED", params)
        return "\n".join(row[0] for row in cursor.fetchall())


def _bloat_the_due_index(account, rows: int) -> None:
    """Rows that went through the due index and left it (done), as a busy outbox's are until
    autovacuum: their dead entries make the due index bigger than the connection's other indexes."""
    other = Connection.objects.create(account=account, provider="close", access_token="x")
    prospect = Prospect.objects.create(account=account, email="bloat@example.com")
    with db.cursor() as cursor:
        cursor.execute(
            """INSERT INTO integrations_outboxitem (connection_id, prospect_id, kind, dedupe_key, payload, state,
                   attempts, next_attempt_at, last_error, last_error_kind, hold_reason, claimed_by, created_at,
                   updated_at, result)
               SELECT %s, %s, 'activity', 'activity:' || g, '{}', 'pending', 0, now(), '', '', '', '', now(), now(), ''
               FROM generate_series(1, %s) g""",
            [other.pk, prospect.pk, rows],
        )
    OutboxItem.objects.filter(connection=other).update(state="done")


def _queue_new_connection(account, *, analyze: bool) -> Connection:
    Prospect.objects.bulk_create(
        [Prospect(account=account, email=f"p{i}@example.com", consent_granted=True) for i in range(6_000)],
        batch_size=2_000,
    )
    # The statistics as a long-lived outbox has them: taken while other connections' rows were
    # there and before this connection had any.
    earlier = Connection.objects.create(account=account, provider="pipedrive", access_token="x")
    enqueue_prospects(earlier, analyze=False)
    with db.cursor() as cursor:
        cursor.execute("ANALYZE integrations_outboxitem")
    connection = Connection.objects.create(account=account, provider="hubspot", access_token="x")
    assert enqueue_prospects(connection, analyze=analyze) == 6_000
    return connection


def _connection_ids_in_statistics() -> list[str]:
    with db.cursor() as cursor:
        cursor.execute(
            "SELECT most_common_vals::text::text[] FROM pg_stats"
            " WHERE tablename = 'integrations_outboxitem' AND attname = 'connection_id'"
        )
        row = cursor.fetchone()
    return list(row[0] or []) if row else []


def test_even_with_stale_statistics_the_claim_walks_the_due_index(account):
    """No lone connection index exists to tempt the planner into sorting every due row."""
    connection = _queue_new_connection(account, analyze=False)
    assert str(connection.pk) not in _connection_ids_in_statistics()  # the statistics are stale
    plan = _claim_plan(connection)
    assert "outbox_due_idx" in plan, plan
    assert "Sort" not in plan, plan


def test_a_due_index_full_of_dead_entries_does_not_turn_the_claim_into_a_sort(account, make_account):
    """Stale statistics plus a bloated due index: every index of the connection looks about as good
    for the one row the planner expects, and the smallest wins unless sorting is ruled out."""
    _bloat_the_due_index(make_account("Busy Co"), 30_000)
    connection = _queue_new_connection(account, analyze=False)
    plan = _claim_plan(connection)
    assert "outbox_due_idx" in plan, plan
    assert "Sort" not in plan, plan


def test_the_claim_plans_its_select_without_a_sort_and_leaves_the_setting_as_it_was(account):
    connection = _queue_new_connection(account, analyze=False)
    with transaction.atomic(), CaptureQueriesContext(db) as captured:
        claimed = claiming.claim(connection.pk, "worker-1", 10)
        with db.cursor() as cursor:
            cursor.execute("SHOW enable_sort")
            after = cursor.fetchone()[0]
    statements = [query["sql"] for query in captured.captured_queries]
    select = next(i for i, sql in enumerate(statements) if "FOR UPDATE SKIP LOCKED" in sql)

    assert len(claimed) == 10
    assert statements[select - 1] == "SET LOCAL enable_sort = off"
    assert statements[select + 1] == "RESET enable_sort"
    assert after == "on"


def test_a_large_enqueue_refreshes_the_statistics(account):
    connection = _queue_new_connection(account, analyze=True)
    assert str(connection.pk) in _connection_ids_in_statistics()
    plan = _claim_plan(connection)
    assert "outbox_due_idx" in plan, plan
    assert "Sort" not in plan, plan


def test_small_writes_and_small_shares_of_a_big_table_skip_the_analyze():
    assert analyze_after_bulk_write(Connection, ANALYZE_AFTER_ROWS - 1) is False
    assert worth_analyzing(ANALYZE_AFTER_ROWS, table_rows=0)  # a new or never-analysed table
    assert worth_analyzing(20_000, table_rows=150_000)
    # 100,000 rows into a 1.9 M-row outbox: autovacuum's business, not worth seconds of ANALYZE now.
    assert not worth_analyzing(100_000, table_rows=1_900_000)


def test_a_batchs_link_lookup_uses_the_prospect_index_even_for_links_the_statistics_do_not_know(account):
    from crmsync.lookups import where_unindexed
    from integrations.models import RecordLink

    prospects = Prospect.objects.bulk_create(
        [Prospect(account=account, email=f"l{i}@example.com") for i in range(6_000)], batch_size=2_000
    )
    earlier = Connection.objects.create(account=account, provider="pipedrive", access_token="x")
    new = Connection.objects.create(account=account, provider="hubspot", access_token="x")

    def links(connection):
        return [
            RecordLink(connection=connection, prospect=p, crm_object_type="contact", crm_id=str(p.pk))
            for p in prospects
        ]

    RecordLink.objects.bulk_create(links(earlier), batch_size=2_000)
    with db.cursor() as cursor:
        cursor.execute("ANALYZE integrations_recordlink")
    RecordLink.objects.bulk_create(links(new), batch_size=2_000)  # the statistics know none of these

    batch = [p.pk for p in prospects[-100:]]
    query = where_unindexed(RecordLink.objects.filter(prospect_id__any=batch), "connection_id", new.pk)
    sql, params = query.query.sql_with_params()
    with db.cursor() as cursor:
        cursor.execute("EXPLAIN " + sql, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "prospect_id" in plan and "Index Cond: (prospect_id = ANY" in plan, plan
    assert sorted(query.values_list("prospect_id", flat=True)) == sorted(batch)
