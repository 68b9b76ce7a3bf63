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

from django.db import models
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
