"""Set-based writes the sync engine needs on its hot path, and keeping the planner informed.

Django's ``bulk_update`` builds a CASE expression per row and field, which costs more than the
CRM call it records. On PostgreSQL one ``UPDATE … FROM (VALUES …)`` does the same work in one
statement; elsewhere (SQLite, the embedded default) ``bulk_update`` is fine at its scale.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from django.db import connection, models

from crmsync.lookups import table_estimate


def bulk_update_values(model: type[models.Model], rows: Sequence[models.Model], fields: Sequence[str]) -> None:
    if not rows:
        return
    if connection.vendor != "postgresql":
        model.objects.bulk_update(rows, list(fields), batch_size=500)
        return
    table = model._meta.db_table
    columns = [model._meta.get_field(name) for name in fields]
    casts = [f"::{column.db_type(connection)}" for column in columns]
    pk = model._meta.pk
    placeholders = "(" + ", ".join([f"%s::{pk.db_type(connection)}"] + [f"%s{cast}" for cast in casts]) + ")"
    values, params = [], []
    for row in rows:
        values.append(placeholders)
        params.append(row.pk)
        for column in columns:
            value = getattr(row, column.attname)
            params.append(json.dumps(value) if isinstance(column, models.JSONField) else value)
    assignments = ", ".join(f'"{column.column}" = v."{column.column}"' for column in columns)
    names = ", ".join(['"id"'] + [f'"{column.column}"' for column in columns])
    with connection.cursor() as cursor:
        cursor.execute(
            f'UPDATE "{table}" AS t SET {assignments} FROM (VALUES {", ".join(values)}) AS v({names}) '  # noqa: S608
            f'WHERE t."{pk.column}" = v."id"',
            params,
        )


# A bulk enqueue refreshes the outbox's planner statistics at once when it wrote at least this
# many rows and at least this share of the table (autovacuum's own trigger is 10% of the table
# changed, checked once a minute: this does the same at once, while the run that needs it starts).
ANALYZE_AFTER_ROWS = 5_000
ANALYZE_SHARE = 0.1


def worth_analyzing(rows_written: int, table_rows: float) -> bool:
    return rows_written >= ANALYZE_AFTER_ROWS and rows_written >= ANALYZE_SHARE * max(table_rows, 0.0)


def analyze_after_bulk_write(model: type[models.Model], rows_written: int) -> bool:
    """Refresh PostgreSQL's statistics of ``model``'s table after a bulk write (True if it did).

    A first sync of a new connection queues every prospect at once. Until autovacuum analyses
    the table, the planner believes the new connection has about one row. The outbox's indexes
    keep claims index-served even then (see ``OutboxItem.connection``); fresh statistics keep the
    other queries of the run well planned too. ``ANALYZE`` samples 300 x the statistics target
    rows whatever the table's size, but on a large table those are random page reads (4.5-6.5 s
    on a 1.1 GB outbox of 1.9 M rows): so only a write that is a large share of the table, which
    the statistics are most wrong about, pays for it here; autovacuum handles the rest.
    https://www.postgresql.org/docs/current/routine-vacuuming.html#VACUUM-FOR-STATISTICS
    """
    if connection.vendor != "postgresql" or rows_written < ANALYZE_AFTER_ROWS:
        return False
    if not worth_analyzing(rows_written, table_estimate(model.objects.all())):
        return False
    with connection.cursor() as cursor:
        cursor.execute(f'ANALYZE "{model._meta.db_table}"')
    return True


@contextmanager
def read_in_index_order() -> Iterator[None]:
    """Plan the queries run inside this block so that they read rows in an index's order rather
    than sort them (PostgreSQL's ``enable_sort = off``, for the block only).

    For a query whose right plan is known and whose order an index gives, such as the claim's
    ``ORDER BY next_attempt_at, id`` along ``outbox_due_idx``. When the statistics do not know a
    connection yet (its first sync), the planner expects about one due row, to which a sort costs
    nothing: any index of the connection then looks as good, and one whose pages are fewer (the
    due index bloats with every row that passes through it) wins. The claim then sorts every due
    row of the connection each time: 50-90 ms a claim at 100,000 rows. A plan with a sort is only
    chosen here when no other exists.
    https://www.postgresql.org/docs/current/runtime-config-query.html#GUC-ENABLE-SORT
    Must run inside a transaction (``SET LOCAL``); on other databases it does nothing.
    """
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_sort = off")
    yield
    # Not reached on an error: rolling back the transaction or savepoint undoes SET LOCAL itself.
    with connection.cursor() as cursor:
        cursor.execute("RESET enable_sort")
