"""Set-based writes the sync engine needs on its hot path.

Django's ``bulk_update`` builds a CASE expression per row and field, which costs more than the
CRM call it records. On PostgreSQL one ``UPDATE … FROM (VALUES …)`` does the same work in one
statement; elsewhere (SQLite, the embedded default) ``bulk_update`` is fine at its scale.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from django.db import connection, models


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
