"""The outbox admin's error-kind filter and error-text search read only the rows that carry an error.

Before this, both listed ``ORDER BY id DESC`` and capped their count by walking the same order: when
fewer than the cap's 1,001 rows matched (a rare kind, a rare message), the page and its count read
every row of the outbox (78 ms of SQL at 241,000 rows, growing with the table). These tests read the
plans PostgreSQL chooses for the change list's page and count, on an outbox of mostly done rows
whose few failed rows of a rare kind are its oldest, with fresh statistics and with statistics
taken during a backlog.
"""

from __future__ import annotations

import pytest
from django.contrib.admin import site
from django.contrib.auth import get_user_model
from django.db import connection as db
from django.test import RequestFactory
from django.utils import timezone

from crmsync.admin_support import EXACT_COUNT_CAP
from crmsync.models import Prospect
from integrations.models import Connection, OutboxItem

pytestmark = pytest.mark.skipif(db.vendor != "postgresql", reason="plans are PostgreSQL's")

DONE_ROWS = 30_000
RARE_ROWS = 30


def _insert(connection: Connection, prospect: Prospect, first_id: int, count: int, *, failed: bool) -> None:
    state, error, kind = ("failed", "HubSpot 403: missing scopes (crm.objects.contacts.write)", "auth")
    if not failed:
        state, error, kind = "done", "", ""
    now = timezone.now()
    with db.cursor() as cursor:
        cursor.execute(
            """INSERT INTO integrations_outboxitem (id, connection_id, prospect_id, kind, dedupe_key, payload, state,
                   attempts, next_attempt_at, last_error, last_error_kind, hold_reason, claimed_by, created_at,
                   updated_at, result)
               SELECT %s + g, %s, %s, 'activity', 'activity:' || (%s + g), '{}', %s, 1, %s, %s, %s, '', '', %s, %s, ''
               FROM generate_series(0, %s - 1) g""",
            [first_id, connection.pk, prospect.pk, first_id, state, now, error, kind, now, now, count],
        )


def _analyze() -> None:
    with db.cursor() as cursor:
        cursor.execute("ANALYZE integrations_outboxitem")


@pytest.fixture
def outbox(account):
    """A big outbox of done rows; the rare failed rows hold the lowest ids, so that walking the list
    in id order would reach them last."""
    connection = Connection.objects.create(account=account, provider="hubspot", access_token="x")
    prospect = Prospect.objects.create(account=account, email="grace@example.com")
    first_id = (OutboxItem.objects.order_by("-pk").values_list("pk", flat=True).first() or 0) + 1
    return connection, prospect, first_id


def _changelist(params: dict):
    request = RequestFactory().get("/admin/integrations/outboxitem/", params)
    request.user = get_user_model()(is_staff=True, is_superuser=True)
    return site._registry[OutboxItem].get_changelist_instance(request)


def _plan(sql: str, params) -> str:
    with db.cursor() as cursor:
        cursor.execute("EXPLAIN " + sql, params)
        return "\n".join(row[0] for row in cursor.fetchall())


def _page_and_count_plans(params: dict) -> tuple[list[int], str, str]:
    changelist = _changelist(params)
    queryset = changelist.queryset
    page_sql, page_params = queryset.values("pk")[:51].query.sql_with_params()
    # EstimatedCountPaginator counts a filtered list as values("pk")[:cap + 1].count(): this query.
    count_sql, count_params = queryset.values("pk")[: EXACT_COUNT_CAP + 1].query.sql_with_params()
    rows = [item.pk for item in changelist.result_list]
    return rows, _plan(page_sql, page_params), _plan(f"SELECT COUNT(*) FROM ({count_sql}) counted", count_params)


SEARCHES = [{"error_kind": "auth"}, {"q": "missing scopes"}, {"error_kind": "auth", "q": "scopes"}]


@pytest.mark.parametrize("params", SEARCHES, ids=["kind", "search", "kind and search"])
def test_a_rare_error_is_found_through_the_error_index(outbox, params):
    connection, prospect, first_id = outbox
    _insert(connection, prospect, first_id, RARE_ROWS, failed=True)
    _insert(connection, prospect, first_id + RARE_ROWS, DONE_ROWS, failed=False)
    _analyze()

    rows, page_plan, count_plan = _page_and_count_plans(params)

    assert rows == list(range(first_id + RARE_ROWS - 1, first_id - 1, -1))  # all of them, newest first
    for plan in (page_plan, count_plan):
        assert "outbox_error_idx" in plan, plan
        assert "pkey" not in plan and "Seq Scan" not in plan, plan


@pytest.mark.parametrize("params", SEARCHES, ids=["kind", "search", "kind and search"])
def test_statistics_taken_during_a_backlog_change_nothing(outbox, params):
    """Statistics taken while most rows were still queued: to the planner nearly every row is one
    that may carry an error, so walking the list's id order looked cheap. It read every row."""
    connection, prospect, first_id = outbox
    _insert(connection, prospect, first_id + RARE_ROWS, DONE_ROWS, failed=False)
    OutboxItem.objects.filter(connection=connection).update(state="held")
    _analyze()
    OutboxItem.objects.filter(connection=connection).update(state="done")
    _insert(connection, prospect, first_id, RARE_ROWS, failed=True)

    rows, page_plan, count_plan = _page_and_count_plans(params)

    assert len(rows) == RARE_ROWS
    for plan in (page_plan, count_plan):
        assert "outbox_error_idx" in plan, plan
        assert "pkey" not in plan and "Seq Scan" not in plan, plan
