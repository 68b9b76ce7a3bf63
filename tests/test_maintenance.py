"""Autovacuum's work on demand (crmsync.maintenance) for a server running without it, and the start-up
check that warns of such a server."""

from __future__ import annotations

import pytest
from django.db import connection as db

from crmsync.maintenance import TableStats, Thresholds, maintenance_due, run_due_maintenance, server_vacuums_itself
from integrations.checks import maintenance_warnings, postgresql_maintains_its_tables

LIMITS = Thresholds(vacuum=50, vacuum_scale=0.2, insert=1000, insert_scale=0.2, analyze=50, analyze_scale=0.1)


def stats(live=10_000, dead=0, changed=0, inserted=0) -> TableStats:
    return TableStats("t", live, dead, changed, inserted)


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        (stats(dead=2_051), "VACUUM (ANALYZE)"),  # past 50 + 20% of 10,000
        (stats(dead=2_050), None),
        (stats(inserted=3_001), "VACUUM (ANALYZE)"),  # insert-only tables get their visibility map
        (stats(changed=1_051), "ANALYZE"),  # past 50 + 10%
        (stats(changed=1_050), None),
        (stats(live=0, dead=51), "VACUUM (ANALYZE)"),
    ],
)
def test_maintenance_is_due_by_autovacuums_own_thresholds(table, expected):
    assert maintenance_due(table, LIMITS) == expected


def test_a_negative_insert_threshold_turns_insert_vacuums_off():
    assert maintenance_due(stats(inserted=10**9), Thresholds(insert=-1)) is None


pg_only = pytest.mark.skipif(db.vendor != "postgresql", reason="autovacuum is PostgreSQL's")


@pg_only
@pytest.mark.django_db(transaction=True)
def test_a_churned_table_is_vacuumed_and_a_quiet_one_left_alone():
    with db.cursor() as cursor:
        cursor.execute("CREATE TABLE maintenance_churned (id int)")
        cursor.execute("CREATE TABLE maintenance_quiet (id int)")
    try:
        with db.cursor() as cursor:
            cursor.execute("INSERT INTO maintenance_churned SELECT generate_series(1, 5000)")
            cursor.execute("DELETE FROM maintenance_churned")
            cursor.execute("SELECT pg_stat_force_next_flush()")
        with db.cursor() as cursor:
            cursor.execute("SELECT 1")  # the statistics are reported when a statement ends

        said = run_due_maintenance()

        with db.cursor() as cursor:
            cursor.execute(
                "SELECT relname, last_vacuum IS NOT NULL FROM pg_stat_user_tables"
                " WHERE relname IN ('maintenance_churned', 'maintenance_quiet')"
            )
            vacuumed = dict(cursor.fetchall())
        assert said.startswith("autovacuum is off: vacuumed/analysed")
        assert vacuumed == {"maintenance_churned": True, "maintenance_quiet": False}
    finally:
        with db.cursor() as cursor:
            cursor.execute("DROP TABLE maintenance_churned, maintenance_quiet")


def test_the_start_up_check_names_each_setting_that_is_off():
    assert maintenance_warnings("default", {"autovacuum": "on", "track_counts": "on"}) == []
    warnings = maintenance_warnings("default", {"autovacuum": "off", "track_counts": "on"})
    assert [w.id for w in warnings] == ["integrations.W001"]
    assert "PostgreSQL (default) has autovacuum = off" in warnings[0].msg
    assert len(maintenance_warnings("default", {"autovacuum": "off", "track_counts": "off"})) == 2


@pg_only
@pytest.mark.django_db
def test_the_start_up_check_reads_the_servers_own_settings():
    with db.cursor() as cursor:
        cursor.execute("SHOW autovacuum")
        autovacuum = cursor.fetchone()[0]
        cursor.execute("SHOW track_counts")
        track_counts = cursor.fetchone()[0]
    expected = maintenance_warnings("default", {"autovacuum": autovacuum, "track_counts": track_counts})

    assert postgresql_maintains_its_tables(None, databases=["default"]) == expected
    assert server_vacuums_itself() == (autovacuum == "on" and track_counts == "on")
