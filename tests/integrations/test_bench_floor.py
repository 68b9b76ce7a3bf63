"""bench_sync's floors: the least time each CRM's published limits allow for a first load."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from integrations.management.commands.bench_sync import DAY, floor_seconds, pipedrive_floor, zoho_floor


def test_a_rolling_window_lets_the_first_windows_worth_go_at_once():
    assert floor_seconds(100, 100, 10) == 0
    assert floor_seconds(200, 100, 10) == 10
    assert floor_seconds(201, 100, 10) == 20


def _pipedrive(**limits):
    return SimpleNamespace(
        **{"search_limit": 10, "oauth_limit": 80, "window_seconds": 2.0, "daily_token_budget": 300_000, **limits}
    )


def test_pipedrive_is_two_calls_a_new_person_and_the_search_burst_sets_the_floor():
    floor = pipedrive_floor(_pipedrive(), 10_000)
    assert floor.min_calls == 20_000
    assert floor.seconds == pytest.approx(1998.0)  # 1,000 windows of 10 searches, the first at once
    assert floor.basis.startswith("search burst 10/2 s")
    assert "250,000 of 300,000 daily tokens" in floor.basis


def test_pipedrive_past_the_daily_token_budget_waits_for_the_next_day():
    floor = pipedrive_floor(_pipedrive(), 100_000)
    assert floor.seconds == pytest.approx(19_998 + 8 * DAY)  # 2.5M tokens: 9 days of 300,000
    assert "+8 day(s)" in floor.basis


def test_pipedrive_with_a_generous_search_limit_is_set_by_the_token_burst():
    assert pipedrive_floor(_pipedrive(search_limit=1000), 10_000).basis.startswith("token burst 80/2 s")


def test_zoho_is_one_upsert_per_100_in_rounds_of_the_heavy_concurrency_cap():
    app = SimpleNamespace(
        credit_costs={"upsert": 1}, daily_credits=50_000, heavy_concurrency_limit=10, concurrency_limit=15
    )
    floor = zoho_floor(app, 10_000, 0.5)
    assert floor.min_calls == 100
    assert floor.seconds == pytest.approx(5.0)  # 10 rounds of 10 upserts in flight
    assert "100 of 50,000 daily credits" in floor.basis
