"""Start-up checks: stored credentials must decrypt with the configured key; PostgreSQL must
maintain its own tables (autovacuum)."""

from __future__ import annotations

from django.core import checks
from django.db import DatabaseError, connections

from crmsync.maintenance import autovacuum_settings
from integrations.fields import CredentialDecryptionError


@checks.register()
def credentials_decrypt(app_configs, **kwargs) -> list[checks.CheckMessage]:
    from integrations.models import Connection

    try:
        # The newest row is enough: every row is encrypted with the same key set.
        list(Connection.objects.order_by("-pk").values_list("access_token", "refresh_token", "webhook_secret")[:1])
    except CredentialDecryptionError as exc:
        return [
            checks.Error(
                str(exc),
                hint="Set FIELD_ENCRYPTION_KEY to the key the credentials were stored with.",
                id="integrations.E001",
            )
        ]
    except DatabaseError:
        return []  # no table yet (before migrate): nothing to check
    return []


# What goes wrong without each of crmsync.maintenance.AUTOVACUUM_SETTINGS.
MAINTENANCE_SETTINGS = {
    "autovacuum": "finished outbox rows and replaced prospect versions are never cleaned up, so the "
    "outbox's indexes fill with dead entries (the admin's queue counts went from 3 ms to 200 ms of "
    "SQL at 3 M dead rows), and the planner's statistics go stale",
    "track_counts": "autovacuum cannot tell which tables changed, so it never runs",
}


def maintenance_warnings(alias: str, values: dict[str, str]) -> list[checks.CheckMessage]:
    """A warning for each of ``MAINTENANCE_SETTINGS`` that ``values`` (setting -> SHOW's answer) has off."""
    return [
        checks.Warning(
            f"PostgreSQL ({alias}) has {name} = off: {why}.",
            hint=f"Set {name} = on in postgresql.conf (the default) and reload the server.",
            id="integrations.W001",
        )
        for name, why in MAINTENANCE_SETTINGS.items()
        if values.get(name, "on") != "on"
    ]


@checks.register(checks.Tags.database)
def postgresql_maintains_its_tables(app_configs, databases=None, **kwargs) -> list[checks.CheckMessage]:
    """Warn when PostgreSQL's autovacuum is off. The outbox is rewritten row by row all day and
    its partial indexes, the claim and the statistics-dependent invariants (docs/ARCHITECTURE.md,
    invariant 8) assume the server vacuums and analyses it. Runs with ``migrate`` and with
    ``manage.py check --database default``.
    https://www.postgresql.org/docs/current/routine-vacuuming.html#AUTOVACUUM"""
    messages: list[checks.CheckMessage] = []
    for alias in databases or []:
        connection = connections[alias]
        if connection.vendor != "postgresql":
            continue
        try:
            values = autovacuum_settings(connection)
        except DatabaseError:
            continue  # not reachable: Django's own database checks say so
        messages += maintenance_warnings(alias, values)
    return messages
