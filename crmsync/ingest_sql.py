"""Set-based SQL for the ingest hot path (PostgreSQL, and SQLite >= 3.35 for the embedded default).

Django's ORM cannot express what ingestion needs in one statement each, and per-row or per-query
work is what limits a 500-event batch:

- ``find_existing`` answers "which of these events, suppressed addresses and capsules exist?"
  in one round trip;
- ``insert_new`` (INSERT … ON CONFLICT DO NOTHING RETURNING) says exactly which rows it created,
  so a replayed event is recognised even when two requests carry it at the same moment
  (bulk_create's ``ignore_conflicts`` cannot tell);
- ``insert_or_lock`` (DO UPDATE) creates the missing rows and row-locks the existing ones in one
  statement, in key order, and returns them all. Concurrent requests therefore wait for each
  other in the same order and never deadlock, which separate "SELECT … FOR UPDATE" and "INSERT"
  statements cannot promise;
- ``update_rows`` writes many rows, each with its own values, in one statement: bulk_update
  builds a CASE expression per row and field in Python, which costs more than the database work.

Rows are dicts of field attnames (``account_id``, ``email``…); a field a row leaves out takes
its default. On PostgreSQL rows and lists travel as one JSON parameter (``jsonb_to_recordset``,
``jsonb_array_elements_text``) and defaults as one parameter each: a VALUES or IN list of 500
rows has thousands of placeholders, and psycopg's client-side parsing of such a statement costs
more than running it. SQLite gets plain VALUES lists and ``json_each``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, TypeVar

from django.db import connections, models, router
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models.expressions import RawSQL

from crmsync.models import Capsule, Event, Suppression

M = TypeVar("M", bound=models.Model)
Row = dict[str, Any]


# Fields whose Python values (str, int, bool, None) json.dumps writes as they are: calling
# get_prep_value on each of them cost more than building the whole JSON document.
# Only Django's own conversions qualify: a subclass that overrides get_prep_value keeps it.
_AS_IS_FIELDS = (models.CharField, models.TextField, models.IntegerField, models.BooleanField)
_PLAIN_PREP = {field_class.get_prep_value for field_class in _AS_IS_FIELDS}


def _as_is(value: Any) -> Any:
    return value


def _to_json(field: models.Field) -> Callable[[Any], Any]:
    """How one field's Python value goes into the JSON rows (chosen once per field, not per value)."""
    if isinstance(field, models.JSONField):
        return _as_is
    if isinstance(field, models.DateTimeField | models.DateField):
        return lambda value: None if value is None else value.isoformat()
    target = field.target_field if field.is_relation else field  # a foreign key is sent as its target's value
    if type(target).get_prep_value in _PLAIN_PREP and isinstance(target, _AS_IS_FIELDS):
        return _as_is
    return lambda value: None if value is None else field.get_prep_value(value)


@lru_cache(maxsize=256)
def _db_type(field: models.Field, alias: str) -> str:
    # Computed from the backend's type table on every call; the statements here need it per column.
    return field.db_type(connections[alias])


def _insert(
    model: type[models.Model], rows: Sequence[Row], conflict: Sequence[str], *, with_pk: bool = False
) -> tuple[str, list, BaseDatabaseWrapper]:
    """``INSERT INTO table (…) <rows> ON CONFLICT (…)`` and its parameters, rows sorted by the conflict key."""
    connection = connections[router.db_for_write(model)]
    quote = connection.ops.quote_name
    fields = [field for field in model._meta.concrete_fields if with_pk or not field.primary_key]
    sent = set(rows[0])
    conflict_columns = [model._meta.get_field(name).column for name in conflict]
    if connection.vendor == "postgresql":
        data = [field for field in fields if field.attname in sent]
        converters = [(field.attname, _to_json(field)) for field in data]
        payload = json.dumps([{name: convert(row[name]) for name, convert in converters} for row in rows], default=str)
        selected, params = [], []
        for field in fields:
            if field.attname in sent:
                selected.append(f"rows.{quote(field.attname)}")
            else:
                selected.append(f"CAST(%s AS {_db_type(field, connection.alias)})")
                params.append(field.get_db_prep_save(field.get_default(), connection))
        definitions = ", ".join(f"{quote(field.attname)} {_db_type(field, connection.alias)}" for field in data)
        order = ", ".join(f"rows.{quote(model._meta.get_field(name).attname)}" for name in conflict)
        source = (
            f"SELECT {', '.join(selected)} "  # noqa: S608 - names, types and placeholders only
            f"FROM jsonb_to_recordset(%s::jsonb) AS rows({definitions}) ORDER BY {order}"
        )
        params.append(payload)
    else:
        defaults = {field.attname: field.get_default() for field in fields if field.attname not in sent}
        row_sql = "(" + ", ".join(["%s"] * len(fields)) + ")"
        params = [
            field.get_db_prep_save(row[field.attname] if field.attname in sent else defaults[field.attname], connection)
            for row in rows
            for field in fields
        ]
        source = "VALUES " + ", ".join([row_sql] * len(rows))
    # Only quoted table, column and type names are interpolated; every value is a parameter.
    sql = (
        f"INSERT INTO {quote(model._meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) {source} "
        f"ON CONFLICT ({', '.join(quote(column) for column in conflict_columns)})"
    )
    return sql, params, connection


def insert_new(
    model: type[models.Model], rows: Sequence[Row], *, conflict: Sequence[str], returning: Sequence[str]
) -> list[tuple]:
    """INSERT the rows, skipping those whose ``conflict`` key exists; return ``returning`` of the new rows."""
    if not rows:
        return []
    sql, params, connection = _insert(model, rows, conflict)
    columns = ", ".join(connection.ops.quote_name(model._meta.get_field(name).column) for name in returning)
    with connection.cursor() as cursor:
        cursor.execute(f"{sql} DO NOTHING RETURNING {columns}", params)
        return cursor.fetchall()


def insert_or_lock(
    model: type[M], rows: Sequence[Row], *, conflict: Sequence[str], keep_earliest: str | None = None
) -> list[M]:
    """INSERT the missing rows and lock the existing ones until commit; return all of them as stored.

    An existing row is left as it was, except that ``keep_earliest`` (a date field) takes the
    earlier of its stored and its given value. Rows are written in the order of the conflict key.
    """
    if not rows:
        return []
    sql, params, connection = _insert(model, rows, conflict)
    quote = connection.ops.quote_name
    if keep_earliest:
        column = quote(model._meta.get_field(keep_earliest).column)
        stored = f"{quote(model._meta.db_table)}.{column}"
        update = f"{column} = CASE WHEN EXCLUDED.{column} < {stored} THEN EXCLUDED.{column} ELSE {stored} END"
    else:
        # A write that changes nothing, for its row lock: DO NOTHING would neither lock nor return the row.
        column = quote(model._meta.get_field(conflict[-1]).column)
        update = f"{column} = EXCLUDED.{column}"
    columns = ", ".join(quote(field.column) for field in model._meta.concrete_fields)
    # raw() turns the returned rows into model instances with the ORM's own value conversions.
    return list(model._default_manager.raw(f"{sql} DO UPDATE SET {update} RETURNING {columns}", params))


def update_rows(model: type[models.Model], rows: Sequence[Row]) -> None:
    """Write the given fields of existing rows this transaction has locked, in one statement.

    Each row holds the primary key and the fields to write, including every NOT NULL field that
    has no default (such as a foreign key to the account; write its current value). It is an
    INSERT by primary key that turns into an UPDATE on the conflict, so the table's own column
    types apply and no casts are needed. The rows must exist and be locked (they are, after
    ``insert_or_lock``), or a deleted one would come back.
    """
    upsert_rows(model, rows)


def upsert_rows(model: type[models.Model], rows: Sequence[Row]) -> None:
    """INSERT the rows, or write the given fields of those whose primary key exists: one statement.

    ``bulk_create(update_conflicts=True)`` does the same with a model instance per row and an array
    parameter per column, which psycopg quotes value by value; here the rows are one JSON
    parameter. Rows hold the primary key and the same fields each (see ``update_rows``).
    """
    if not rows:
        return
    pk = model._meta.pk.attname
    sql, params, connection = _insert(model, rows, (model._meta.pk.name,), with_pk=True)
    quote = connection.ops.quote_name
    columns = [quote(model._meta.get_field(name).column) for name in rows[0] if name != pk]
    with connection.cursor() as cursor:
        cursor.execute(f"{sql} DO UPDATE SET " + ", ".join(f"{c} = EXCLUDED.{c}" for c in columns), params)


def case_by_key(model: type[models.Model], key: str, values: dict[Any, Any]) -> RawSQL:
    """``CASE key WHEN k1 THEN v1 … END`` for ``QuerySet.update(field=case_by_key(...))``.

    Django's Case/When resolves one expression tree per branch in Python; for hundreds of
    branches that costs more than the UPDATE itself. This is the same SQL, built as a string.
    """
    connection = connections[router.db_for_write(model)]
    column = connection.ops.quote_name(model._meta.get_field(key).column)
    branches = " ".join(["WHEN %s THEN %s"] * len(values))
    params = [item for pair in values.items() for item in pair]
    return RawSQL(f"CASE {column} {branches} END", params)  # noqa: S611 - a quoted column and placeholders only


@dataclass(frozen=True)
class Existing:
    stored_events: dict[str, int | None]  # event external id -> its prospect id
    suppressed: set[str]  # e-mail hashes on the suppression list
    capsules: dict[str, tuple[int, str, str]]  # capsule external id -> (id, title, url)


def _in_list(connection: BaseDatabaseWrapper) -> str:
    """SQL for ``IN (…)`` over a JSON array given as one parameter."""
    if connection.vendor == "postgresql":
        return "IN (SELECT jsonb_array_elements_text(%s::jsonb))"
    return "IN (SELECT value FROM json_each(%s))"


def find_existing(
    account_id: int, *, event_ids: Sequence[str], email_hashes: Sequence[str], capsule_ids: Sequence[str]
) -> Existing:
    """Which of these event ids are stored, which hashes suppressed, and which capsules exist: one query."""
    connection = connections[router.db_for_write(Event)]
    quote = connection.ops.quote_name
    in_list = _in_list(connection)

    def branch(
        model: type[models.Model], kind: str, key: str, columns: Sequence[str | None], *, account_per_row: bool = False
    ) -> str:
        table = quote(model._meta.db_table)
        selected = ", ".join("NULL" if column is None else f"{table}.{quote(column)}" for column in columns)
        account = f"{table}.{quote('account_id')}"
        # Events: the account as a check on each row ("+ 0" matches no index), so the ids are probes
        # of the (external_id, account) unique index even for an account the statistics do not know
        # yet (see Event.Meta and crmsync.lookups.where_unindexed). Capsules and suppressions are
        # few per account.
        account_check = f"({account} + 0) = %s" if account_per_row else f"{account} = %s"
        # Only quoted table and column names and fixed words are interpolated; values are parameters.
        return (
            f"SELECT '{kind}', {table}.{quote(key)}, {selected} FROM {table} "  # noqa: S608
            f"WHERE {account_check} AND {table}.{quote(key)} {in_list}"
        )

    sql = " UNION ALL ".join(
        [
            branch(Event, "event", "external_id", ["prospect_id", None, None], account_per_row=True),
            branch(Suppression, "suppressed", "email_hash", [None, None, None]),
            branch(Capsule, "capsule", "external_id", ["id", "title", "url"]),
        ]
    )
    params: list[Any] = []
    for values in (event_ids, email_hashes, capsule_ids):
        params += [account_id, json.dumps(list(values))]
    existing = Existing({}, set(), {})
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        for kind, key, number, title, url in cursor.fetchall():
            if kind == "event":
                existing.stored_events[key] = number
            elif kind == "suppressed":
                existing.suppressed.add(key)
            else:
                existing.capsules[key] = (number, title, url)
    return existing
