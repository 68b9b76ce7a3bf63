"""Autovacuum's work, done on demand, for a PostgreSQL server that runs without it.

The benchmarks (``make bench``) run each command on the database the one before left behind:
100,000 outbox rows deleted, a million prospects updated. A production server's autovacuum
cleans that up within minutes; a server with ``autovacuum = off`` (``migrate`` warns:
integrations.W001) never does, and the next benchmark then measures dead index entries instead
of the code. ``run_due_maintenance`` vacuums and analyses the tables that autovacuum would have
by now, by autovacuum's own thresholds.
https://www.postgresql.org/docs/current/routine-vacuuming.html#AUTOVACUUM
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.db import connection
from django.db.backends.base.base import BaseDatabaseWrapper


@dataclass(frozen=True)
class TableStats:
    name: str
    live: int
    dead: int
    changed_since_analyze: int
    inserted_since_vacuum: int


@dataclass(frozen=True)
class Thresholds:
    """autovacuum_{vacuum,vacuum_insert,analyze}_{threshold,scale_factor}, as the server has them."""

    vacuum: int = 50
    vacuum_scale: float = 0.2
    insert: int = 1000
    insert_scale: float = 0.2
    analyze: int = 50
    analyze_scale: float = 0.1


def maintenance_due(table: TableStats, limits: Thresholds) -> str | None:
    """ "VACUUM (ANALYZE)", "ANALYZE" or None: what autovacuum would run on ``table`` now."""
    if table.dead > limits.vacuum + limits.vacuum_scale * table.live:
        return "VACUUM (ANALYZE)"
    # Insert-only tables are vacuumed too (PostgreSQL 13+): it sets the visibility map that
    # index-only scans need.
    if limits.insert >= 0 and table.inserted_since_vacuum > limits.insert + limits.insert_scale * table.live:
        return "VACUUM (ANALYZE)"
    if table.changed_since_analyze > limits.analyze + limits.analyze_scale * table.live:
        return "ANALYZE"
    return None


# Autovacuum runs only with both on: track_counts gives it the changed rows it decides by.
AUTOVACUUM_SETTINGS = ("autovacuum", "track_counts")


def autovacuum_settings(db: BaseDatabaseWrapper = connection) -> dict[str, str]:
    """SHOW's answer for each of ``AUTOVACUUM_SETTINGS`` on a PostgreSQL connection."""
    values = {}
    with db.cursor() as cursor:
        for name in AUTOVACUUM_SETTINGS:
            cursor.execute(f"SHOW {name}")
            values[name] = cursor.fetchone()[0]
    return values


def server_vacuums_itself() -> bool:
    """True unless this is a PostgreSQL server without a working autovacuum (SQLite has no such work)."""
    if connection.vendor != "postgresql":
        return True
    return all(value == "on" for value in autovacuum_settings().values())


def _thresholds() -> Thresholds:
    names = [
        "autovacuum_vacuum_threshold",
        "autovacuum_vacuum_scale_factor",
        "autovacuum_vacuum_insert_threshold",
        "autovacuum_vacuum_insert_scale_factor",
        "autovacuum_analyze_threshold",
        "autovacuum_analyze_scale_factor",
    ]
    with connection.cursor() as cursor:
        cursor.execute("SELECT " + ", ".join("current_setting(%s)" for _ in names), names)
        values = cursor.fetchone()
    return Thresholds(
        int(values[0]), float(values[1]), int(values[2]), float(values[3]), int(values[4]), float(values[5])
    )


def _table_stats() -> list[TableStats]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname, n_live_tup, n_dead_tup, n_mod_since_analyze, n_ins_since_vacuum"
            " FROM pg_stat_user_tables WHERE schemaname = current_schema() ORDER BY relname"
        )
        return [TableStats(*row) for row in cursor.fetchall()]


def run_due_maintenance() -> str:
    """Vacuum and analyse what autovacuum would have by now (PostgreSQL, outside a transaction).
    Returns a line saying what was done, or "" when nothing was due."""
    if connection.vendor != "postgresql":
        return ""
    started = time.monotonic()
    limits = _thresholds()
    done = []
    for table in _table_stats():
        action = maintenance_due(table, limits)
        if action:
            with connection.cursor() as cursor:
                cursor.execute(f'{action} "{table.name}"')  # names from pg_stat_user_tables
            done.append(table.name)
    if not done:
        return ""
    return f"autovacuum is off: vacuumed/analysed {len(done)} tables in {time.monotonic() - started:.0f} s"
