"""``field__any=[…]``: membership in a long list of values as ONE array parameter on PostgreSQL.

Django's ``__in`` writes ``IN (%s, %s, …)`` with a placeholder per value. With the tens of
thousands of ids a bulk sync pass handles (a Salesforce Bulk API job carries up to 100,000
people), building that statement and having psycopg split it on every placeholder cost more than
the query itself (a third of a 20,000-contact run in a profile). ``= ANY(%s)`` with the list as
one array does the same filtering with one parameter; PostgreSQL plans it like ``IN``
(https://www.postgresql.org/docs/current/functions-comparisons.html#FUNCTIONS-COMPARISONS-ANY-SOME).
Other databases (SQLite, the embedded default) get a plain ``IN`` list.
"""

from __future__ import annotations

from django.db import connections, models
from django.db.models.lookups import In, Lookup


class AnyOf(Lookup):
    lookup_name = "any"
    prepare_rhs = False

    def as_sql(self, compiler, connection):
        if connection.vendor != "postgresql":
            return In(self.lhs, list(self.rhs)).as_sql(compiler, connection)
        lhs, lhs_params = self.process_lhs(compiler, connection)
        values = [self.lhs.output_field.get_db_prep_value(v, connection, prepared=False) for v in self.rhs]
        return f"{lhs} = ANY(%s)", [*lhs_params, values]


models.Field.register_lookup(AnyOf)
# Relation fields look lookups up only as far as ForeignObject in their class hierarchy.
models.ForeignObject.register_lookup(AnyOf)


def where_unindexed(queryset: models.QuerySet, field: str, value: int) -> models.QuerySet:
    """Keep only rows whose ``field`` is ``value``, as a check on each row, not an index condition.

    For queries that already name their rows (``pk__any=ids``, ``prospect_id__any=ids``) and
    filter by an owner (the account, the connection) for tenancy. Written plainly
    (``account_id = 7``), the filter offers the planner every index that leads with the owner.
    When the statistics do not know the owner yet, the planner expects one row there. That
    happens on a new account's first bulk import, or a new connection's first sync, before
    autovacuum analyses the table. The planner then takes the owner's index and reads every row
    of the owner for each batch of 100 ids: a 100,000-contact sync spent its time in those scans,
    growing through the run. ``(account_id + 0) = 7`` filters the same rows but matches no index,
    so the ids' own index is used whatever the statistics say.
    """
    expression = models.ExpressionWrapper(models.F(field) + 0, output_field=models.BigIntegerField())
    return queryset.alias(_unindexed_check=expression).filter(_unindexed_check=value)


def in_account_unindexed(queryset: models.QuerySet, account_id: int) -> models.QuerySet:
    """``where_unindexed`` on the account: tenancy for a query that names its rows by id."""
    return where_unindexed(queryset, "account_id", account_id)


def table_estimate(queryset: models.QuerySet) -> int:
    """The planner's row estimate of the queryset's table (-1 or 0 before its first ANALYZE).

    PostgreSQL only (``pg_class.reltuples``): a count of a million-row table without reading it."""
    with connections[queryset.db].cursor() as cursor:
        cursor.execute(
            "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass", [queryset.model._meta.db_table]
        )
        row = cursor.fetchone()
    return int(row[0]) if row else -1
