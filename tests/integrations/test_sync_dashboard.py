"""The owner's sync status page and failed-records list: numbers, reliability, charts, progress,
"Sync now", retry and skip, tenancy, roles, CSRF and query counts."""

from __future__ import annotations

import datetime as dt
import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from django.core.cache import cache
from django.db import connection as db
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import URLPattern, reverse
from django.utils import timezone

from crmsync.cron import TIMETABLE
from crmsync.models import Account, AuditEntry, Prospect, Role
from integrations import dashboard, sync_urls
from integrations.charts import BarChart, Series, render_svg
from integrations.dashboard import Reliability
from integrations.models import (
    BatchSchedule,
    Connection,
    ConnectionStatus,
    OutboxItem,
    OutboxKind,
    OutboxState,
    RunMode,
    RunState,
    SyncMode,
    SyncRun,
)
from integrations.views import sync_failed

UTC = dt.UTC
_serial = itertools.count(1)


# --- building rows directly (no CRM needed) -------------------------------------------------------


def make_connection(account: Account, provider: str = "hubspot", **fields) -> Connection:
    fields.setdefault("activated_at", timezone.now())
    return Connection.objects.create(account=account, provider=provider, access_token="x", **fields)


def make_prospect(account: Account, email: str | None = None) -> Prospect:
    return Prospect.objects.create(account=account, email=email or f"person{next(_serial)}@example.com")


def make_item(
    connection: Connection,
    state: str = OutboxState.PENDING,
    *,
    kind: str = OutboxKind.ACTIVITY,
    prospect: Prospect | None = None,
    **fields,
) -> OutboxItem:
    """One outbox row; every row its own prospect unless given, so the unique keys never clash."""
    prospect = prospect or make_prospect(connection.account)
    n = next(_serial)
    now = timezone.now()
    fields.setdefault("created_at", now)
    fields.setdefault("updated_at", fields["created_at"])
    if state == OutboxState.DONE:
        fields.setdefault("done_at", fields["updated_at"])
    return OutboxItem.objects.create(
        connection=connection,
        prospect=prospect,
        kind=kind,
        dedupe_key=f"person:{prospect.pk}" if kind == OutboxKind.PERSON else f"{kind}:{n}",
        state=state,
        **fields,
    )


def make_run(connection: Connection, **fields) -> SyncRun:
    fields.setdefault("mode", RunMode.REALTIME)
    fields.setdefault("state", RunState.DONE)
    return SyncRun.objects.create(connection=connection, **fields)


@pytest.fixture(autouse=True)
def empty_cache():
    """The dashboard keeps finished numbers in the cache: every test starts without them."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def other_account(make_account) -> Account:
    return make_account("Other Co")


@pytest.fixture
def hubspot(account) -> Connection:
    return make_connection(account, "hubspot", crm_account_name="Acme portal")


@pytest.fixture
def member(account, make_member, client) -> Callable[[str], Client]:
    def log_in(role: str = Role.OWNER) -> Client:
        client.force_login(make_member(account, role))
        return client

    return log_in


def url(name: str, account: Account, **kwargs) -> str:
    return reverse(f"integrations:{name}", kwargs={"account_slug": account.slug, **kwargs})


def text_of(response) -> str:
    """The page as text with tags and runs of whitespace reduced, for assertions on what it says."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode()))


# --- the numbers ------------------------------------------------------------------------------------


def test_state_counts_count_each_state_of_each_connection(account, hubspot):
    salesforce = make_connection(account, "salesforce")
    for state, how_many in [
        (OutboxState.PENDING, 3),
        (OutboxState.IN_FLIGHT, 1),
        (OutboxState.RETRY, 2),
        (OutboxState.HELD, 2),
        (OutboxState.FAILED, 4),
        (OutboxState.DONE, 5),
    ]:
        for _ in range(how_many):
            make_item(hubspot, state)
    make_item(salesforce, OutboxState.FAILED)

    counts = dashboard.state_counts([hubspot.pk, salesforce.pk])

    assert {state: c.value for state, c in counts[hubspot.pk].items()} == {
        "pending": 3,
        "in_flight": 1,
        "retry": 2,
        "held": 2,
        "failed": 4,
    }
    assert counts[salesforce.pk]["failed"].value == 1
    assert counts[salesforce.pk]["pending"].value == 0


def test_a_count_past_the_cap_says_so_instead_of_counting_everything(hubspot):
    for _ in range(4):
        make_item(hubspot, OutboxState.FAILED)

    capped = dashboard.state_counts([hubspot.pk], cap=3)[hubspot.pk]["failed"]
    exact = dashboard.state_counts([hubspot.pk], cap=4)[hubspot.pk]["failed"]

    assert (capped.value, capped.capped, str(capped)) == (3, True, "3+")
    assert (exact.value, exact.capped, str(exact)) == (4, False, "4")


def test_waiting_rows_are_grouped_by_their_reason(hubspot):
    for reason in ["waiting for consent", "waiting for consent", "waiting for a lead score of 50"]:
        make_item(hubspot, OutboxState.HELD, hold_reason=reason)

    assert dashboard.held_reasons([hubspot.pk])[hubspot.pk] == [
        ("waiting for consent", 2),
        ("waiting for a lead score of 50", 1),
    ]


def test_last_successful_sync_is_the_newest_done_row(hubspot):
    now = timezone.now()
    make_item(hubspot, OutboxState.DONE, updated_at=now - dt.timedelta(hours=3))
    newest = make_item(hubspot, OutboxState.DONE, updated_at=now - dt.timedelta(minutes=7))
    make_item(hubspot, OutboxState.FAILED, updated_at=now)  # a failure is not a successful sync

    assert dashboard.last_synced([hubspot.pk]) == {hubspot.pk: newest.done_at}


def test_volume_puts_synced_and_failed_rows_in_their_hour_and_day(hubspot):
    now = dt.datetime(2026, 3, 10, 12, 30, tzinfo=UTC)
    make_item(hubspot, OutboxState.DONE, updated_at=dt.datetime(2026, 3, 10, 10, 5, tzinfo=UTC))
    make_item(hubspot, OutboxState.DONE, updated_at=dt.datetime(2026, 3, 10, 10, 55, tzinfo=UTC))
    make_item(hubspot, OutboxState.FAILED, updated_at=dt.datetime(2026, 3, 10, 12, 1, tzinfo=UTC))
    make_item(hubspot, OutboxState.DONE, updated_at=dt.datetime(2026, 3, 9, 11, 59, tzinfo=UTC))  # 24 h + ago
    make_item(hubspot, OutboxState.FAILED, updated_at=dt.datetime(2026, 2, 1, 9, 0, tzinfo=UTC))  # 30 days + ago

    hourly, daily = (volume[hubspot.pk] for volume in dashboard.volumes([hubspot], now=now))

    assert hourly.buckets[-1] == dt.datetime(2026, 3, 10, 12, tzinfo=UTC) and len(hourly.buckets) == 24
    assert hourly.synced[-3] == 2 and sum(hourly.synced) == 2
    assert hourly.failed[-1] == 1 and sum(hourly.failed) == 1
    assert daily.buckets[-1] == dt.datetime(2026, 3, 10, tzinfo=UTC) and len(daily.buckets) == 30
    assert (daily.synced[-1], daily.synced[-2], sum(daily.synced)) == (2, 1, 3)
    assert (daily.failed[-1], sum(daily.failed)) == (1, 1)


def test_the_finished_past_is_counted_once_and_the_current_hour_every_time(hubspot, django_assert_num_queries):
    now = dt.datetime(2026, 3, 10, 12, 30, tzinfo=UTC)
    make_item(hubspot, OutboxState.DONE, updated_at=now - dt.timedelta(hours=3))
    make_item(hubspot, OutboxState.DONE, updated_at=now - dt.timedelta(days=3))
    first_hourly, first_daily = dashboard.volumes([hubspot], now=now)
    make_item(hubspot, OutboxState.DONE, updated_at=now)  # lands in the open hour

    # The open hour's done rows and the failed rows; every finished hour and day comes from the cache.
    with django_assert_num_queries(2):
        hourly, daily = dashboard.volumes([hubspot], now=now)

    assert sum(first_hourly[hubspot.pk].synced) == 1 and sum(first_daily[hubspot.pk].synced) == 2
    assert sum(hourly[hubspot.pk].synced) == 2 and sum(daily[hubspot.pk].synced) == 3


def test_latest_runs_are_the_newest_ten_of_each_connection(account, hubspot):
    salesforce = make_connection(account, "salesforce")
    start = timezone.now() - dt.timedelta(days=1)
    for i in range(12):
        make_run(hubspot, started_at=start + dt.timedelta(minutes=i), api_calls=i)
    make_run(salesforce, started_at=start)

    runs = dashboard.latest_runs([hubspot.pk, salesforce.pk])

    assert [run.api_calls for run in runs[hubspot.pk]] == list(range(11, 1, -1))
    assert len(runs[salesforce.pk]) == 1


# --- the reliability figure -------------------------------------------------------------------------

NOW = dt.datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
MORNING = dt.datetime(2026, 3, 10, 9, 0, tzinfo=UTC)


def today_figure(connection: Connection) -> Reliability:
    days = dashboard.reliability([connection], now=NOW)[connection.pk]
    assert days[-1].day == NOW.date()
    return days[-1].figure


def done_after(connection, delay: dt.timedelta, *, kind=OutboxKind.ACTIVITY, clock=MORNING, **fields) -> OutboxItem:
    return make_item(
        connection,
        OutboxState.DONE,
        kind=kind,
        created_at=clock,
        updated_at=clock + delay,
        done_at=clock + delay,
        **fields,
    )


def test_real_time_done_at_four_fifty_nine_counts_and_at_five_oh_one_does_not(hubspot):
    done_after(hubspot, dt.timedelta(minutes=4, seconds=59))
    done_after(hubspot, dt.timedelta(minutes=5, seconds=1))

    figure = today_figure(hubspot)

    assert (figure.on_time, figure.decided) == (1, 2)
    assert figure.percent == "50.00%"


def test_real_time_done_at_exactly_five_minutes_is_on_time(hubspot):
    done_after(hubspot, dt.timedelta(minutes=5), kind=OutboxKind.PERSON)

    assert today_figure(hubspot) == Reliability(on_time=1, decided=1)


def test_open_rows_count_only_once_their_deadline_has_passed(hubspot):
    make_item(hubspot, OutboxState.PENDING, created_at=NOW - dt.timedelta(minutes=6))  # late: a miss
    make_item(hubspot, OutboxState.RETRY, created_at=NOW - dt.timedelta(minutes=4))  # still inside 5 minutes
    make_item(hubspot, OutboxState.FAILED, created_at=NOW - dt.timedelta(minutes=1))  # failed: a miss at once
    make_item(hubspot, OutboxState.HELD, created_at=MORNING)  # waits by the owner's own settings
    make_item(hubspot, OutboxState.SKIPPED, created_at=MORNING)  # deliberately not sent
    done_after(hubspot, dt.timedelta(minutes=1), kind=OutboxKind.NOTE)  # notes are not in the figure

    assert today_figure(hubspot) == Reliability(on_time=0, decided=2)


def test_batch_target_is_the_schedule_interval_plus_an_hour(account):
    hourly = make_connection(account, "hubspot", sync_mode=SyncMode.BATCH, batch_schedule=BatchSchedule.HOURLY)
    daily = make_connection(account, "salesforce", sync_mode=SyncMode.BATCH, batch_schedule=BatchSchedule.DAILY)
    earlier = NOW - dt.timedelta(days=2)
    for connection in (hourly, daily):
        run = make_run(connection, mode=RunMode.BATCH, started_at=earlier)
        for delay in (
            dt.timedelta(hours=1, minutes=59),
            dt.timedelta(hours=2, minutes=1),
            dt.timedelta(hours=24, minutes=59),
        ):
            done_after(connection, delay, clock=earlier, run=run)

    hourly_days = dashboard.reliability([hourly], now=NOW)[hourly.pk]
    daily_days = dashboard.reliability([daily], now=NOW)[daily.pk]

    assert hourly_days[-3].day == earlier.date()
    assert hourly_days[-3].figure == Reliability(on_time=1, decided=3)
    assert daily_days[-3].figure == Reliability(on_time=3, decided=3)


def test_manual_rows_are_timed_from_the_run_start_and_unasked_rows_are_not_counted(account):
    manual = make_connection(account, "hubspot", sync_mode=SyncMode.MANUAL)
    run = make_run(manual, mode=RunMode.MANUAL, started_at=MORNING)
    long_ago = MORNING - dt.timedelta(days=3)  # the event arrived days before anyone pressed "Sync now"
    for delay in (dt.timedelta(minutes=59), dt.timedelta(minutes=61)):
        make_item(
            manual, OutboxState.DONE, created_at=long_ago, updated_at=MORNING + delay, done_at=MORNING + delay, run=run
        )
    make_item(manual, OutboxState.PENDING, created_at=MORNING)  # nobody asked for it yet

    assert today_figure(manual) == Reliability(on_time=1, decided=2)


def test_settled_hours_are_counted_once_and_open_hours_every_time(hubspot, django_assert_num_queries):
    done_after(hubspot, dt.timedelta(minutes=4), clock=MORNING)
    first = today_figure(hubspot)
    done_after(hubspot, dt.timedelta(minutes=9), clock=NOW - dt.timedelta(minutes=30))  # an hour still open

    # The manual runs of the open hours, and their rows; settled hours come from the cache.
    with django_assert_num_queries(2):
        second = today_figure(hubspot)

    assert first == Reliability(on_time=1, decided=1)
    assert second == Reliability(on_time=1, decided=2)


def test_reliability_is_rounded_down_so_a_near_miss_never_reads_as_a_pass():
    assert Reliability(on_time=995, decided=1000).percent == "99.50%"
    assert Reliability(on_time=995, decided=1000).meets_requirement is True
    assert Reliability(on_time=19_899, decided=20_000).percent == "99.49%"
    assert Reliability(on_time=19_899, decided=20_000).meets_requirement is False
    assert Reliability().percent == "—" and Reliability().meets_requirement is None


def test_reliability_lists_seven_days_oldest_first_and_sums_the_week(hubspot):
    done_after(hubspot, dt.timedelta(minutes=1), clock=MORNING - dt.timedelta(days=6))
    done_after(hubspot, dt.timedelta(minutes=9), clock=MORNING - dt.timedelta(days=7))  # outside the week
    done_after(hubspot, dt.timedelta(minutes=9), clock=MORNING)

    (dash,) = dashboard.build([hubspot], now=NOW)

    assert [day.day for day in dash.days] == [(NOW - dt.timedelta(days=6 - i)).date() for i in range(7)]
    assert dash.days[0].figure == Reliability(1, 1)
    assert dash.today == Reliability(0, 1)
    assert dash.week == Reliability(1, 2)


# --- the chart ---------------------------------------------------------------------------------------


def test_the_svg_chart_has_a_bar_per_bucket_and_series_and_a_text_alternative():
    chart = BarChart(
        chart_id="c1",
        title="Synced & failed <per hour>",
        labels=tuple(f"{h:02d}:00" for h in range(24)),
        series=(Series("Synced", tuple(range(24)), "bar--synced"), Series("Failed", (0,) * 23 + (7,), "bar--failed")),
    )

    svg = str(render_svg(chart))

    assert len(re.findall(r'<rect class="bar ', svg)) == 48
    assert len(re.findall(r'<rect class="bar bar--failed"', svg)) == 24
    assert 'role="img" aria-labelledby="c1-title c1-desc"' in svg
    assert '<title id="c1-title">Synced &amp; failed &lt;per hour&gt;</title>' in svg
    assert "Synced: 276 in total, most in 23:00 (23); Failed: 7 in total, most in 23:00 (7)." in svg
    assert "<title>23:00: Failed 7</title>" in svg
    assert chart.rows[23] == ("23:00", (23, 7))


def test_a_chart_with_nothing_to_show_says_so():
    chart = BarChart("c2", "Empty", ("a", "b"), (Series("Synced", (0, 0), "bar--synced"),))

    assert "Nothing in this period (a to b)." in str(render_svg(chart))
    assert str(render_svg(chart)).count('<rect class="bar ') == 2


def test_a_series_of_the_wrong_length_is_refused():
    with pytest.raises(ValueError, match="2 values for 3 buckets"):
        BarChart("c3", "Bad", ("a", "b", "c"), (Series("Synced", (1, 2), "bar--synced"),))


# --- the status page ------------------------------------------------------------------------------


def test_status_page_shows_counts_last_sync_and_charts_for_each_live_connection(account, hubspot, member):
    salesforce = make_connection(
        account, "salesforce", status=ConnectionStatus.NEEDS_REAUTH, status_reason="Token revoked"
    )
    gone = make_connection(account, "hubspot", status=ConnectionStatus.DISCONNECTED)
    for _ in range(3):
        make_item(hubspot, OutboxState.PENDING)
    make_item(hubspot, OutboxState.HELD, hold_reason="waiting for consent")
    for _ in range(2):
        make_item(hubspot, OutboxState.FAILED, last_error="Property values were not valid")
    synced = make_item(hubspot, OutboxState.DONE, updated_at=timezone.now() - dt.timedelta(minutes=30))

    response = member(Role.VIEWER).get(url("sync_status", account))

    assert response.status_code == 200
    html = response.content.decode()
    section = html.split(f'id="connection-{hubspot.pk}"')[1].split("</section>")[0]
    assert re.search(r'data-count="pending">3<', section)
    assert re.search(r'data-count="held">1<', section)
    assert re.search(rf'data-count="failed"><a href="[^"]+\?connection={hubspot.pk}">2</a>', section)
    assert f'datetime="{synced.done_at.isoformat()}"' in section
    assert "Waiting for consent: 1" in text_of(response)
    assert section.count('<rect class="bar ') == 24 * 2 + 30 * 2
    assert f'id="connection-{salesforce.pk}"' in html
    assert f'id="connection-{gone.pk}"' not in html
    assert "Needs re-authentication: Token revoked" in text_of(response)
    assert "How reliability is measured" in html


def test_status_page_shows_the_latest_runs_with_api_calls_and_429s(account, hubspot, member):
    make_run(hubspot, mode=RunMode.BATCH, created=12, updated=3, api_calls=77, rate_limited=4)

    text = text_of(member(Role.VIEWER).get(url("sync_status", account)))

    assert "Batch Done 12 3 0 0 0 77 4" in text


def test_a_running_batch_shows_a_progress_bar_that_polls_its_fragment(account, hubspot, member):
    run = make_run(hubspot, mode=RunMode.BATCH, state=RunState.RUNNING, total=10_000, processed=1_234)

    html = member(Role.VIEWER).get(url("sync_status", account)).content.decode()

    assert '<progress value="1234" max="10000"' in html
    assert "1,234 of 10,000" in html
    assert f'data-poll-url="{url("sync_run_progress", account, run_id=run.pk)}"' in html
    assert "js/poll.js" in html


def test_the_progress_fragment_returns_the_runs_numbers(account, hubspot, member):
    run = make_run(hubspot, mode=RunMode.MANUAL, state=RunState.RUNNING, total=10_000, processed=1_234, api_calls=13)

    response = member(Role.VIEWER).get(url("sync_run_progress", account, run_id=run.pk))

    html = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in html  # a fragment, not a page
    assert '<progress value="1234" max="10000"' in html and "1,234 of 10,000" in html
    assert "13 API calls" in html
    assert 'aria-busy="true"' in html and "data-poll-url" in html
    assert "no-cache" in response["Cache-Control"] or "max-age=0" in response["Cache-Control"]


def test_a_finished_run_fragment_stops_the_polling(account, hubspot, member):
    run = make_run(
        hubspot, mode=RunMode.MANUAL, state=RunState.DONE, total=10, processed=12, finished_at=timezone.now()
    )

    html = member(Role.VIEWER).get(url("sync_run_progress", account, run_id=run.pk)).content.decode()

    assert "data-poll-url" not in html
    assert '<progress value="10" max="10"' in html  # processed past total stops at full
    assert 'aria-busy="false"' in html


def test_a_page_with_no_connection_points_to_the_connect_page(account, member):
    response = member(Role.VIEWER).get(url("sync_status", account))

    assert "No CRM is connected yet" in text_of(response)
    assert url("connections", account) in response.content.decode()


def test_viewers_see_no_sync_now_form_and_admins_do(account, hubspot, member, make_member, client):
    assert (
        url("sync_now", account, connection_id=hubspot.pk)
        not in member(Role.VIEWER).get(url("sync_status", account)).content.decode()
    )
    client.force_login(make_member(account, Role.ADMIN))
    assert (
        url("sync_now", account, connection_id=hubspot.pk) in client.get(url("sync_status", account)).content.decode()
    )


# --- "Sync now" -------------------------------------------------------------------------------------


def sync_now_data(connection: Connection, scope: str = "all", emails: str = "") -> dict:
    return {f"sync-{connection.pk}-scope": scope, f"sync-{connection.pk}-emails": emails}


def test_sync_now_for_all_records_starts_a_run_after_commit_and_audits(
    account, hubspot, member, django_capture_on_commit_callbacks
):
    client = member(Role.ADMIN)

    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(url("sync_now", account, connection_id=hubspot.pk), sync_now_data(hubspot))

    assert response.status_code == 302
    assert len(callbacks) == 1  # jobs.start_sync_now: the run is dispatched once the request commits
    entry = AuditEntry.objects.get(action="sync.sync_now")
    assert (entry.account, entry.object_id, entry.changes) == (
        account,
        str(hubspot.pk),
        {"records": "all", "via": "owner page"},
    )
    page = client.get(response["Location"])
    assert "Sync started for all records" in text_of(page)
    assert "Sync requested: it starts in a moment." in text_of(page)  # and the page waits for the run


def test_sync_now_for_listed_addresses_finds_their_prospects(
    account, hubspot, member, django_capture_on_commit_callbacks, monkeypatch
):
    ann, bob = make_prospect(account, "ann@example.com"), make_prospect(account, "bob@example.com")
    started = []
    monkeypatch.setattr("integrations.sync.jobs.start_sync_now", lambda c, ids, user: started.append((c.pk, ids)))

    response = member(Role.ADMIN).post(
        url("sync_now", account, connection_id=hubspot.pk),
        sync_now_data(hubspot, "emails", "Ann@Example.com,\n bob@example.com ann@example.com"),
    )

    assert response.status_code == 302
    assert started == [(hubspot.pk, [ann.pk, bob.pk])]
    assert AuditEntry.objects.get(action="sync.sync_now").changes == {"records": 2, "via": "owner page"}


@pytest.mark.parametrize(
    ("emails", "message"),
    [
        ("", "Enter at least one e-mail address"),
        ("not-an-address", "Not e-mail addresses: not-an-address"),
        ("nobody@example.com", "has these addresses: nobody@example.com"),
    ],
)
def test_sync_now_with_bad_addresses_says_why_beside_the_field_and_starts_nothing(
    account, hubspot, member, django_capture_on_commit_callbacks, emails, message
):
    with django_capture_on_commit_callbacks() as callbacks:
        response = member(Role.ADMIN).post(
            url("sync_now", account, connection_id=hubspot.pk), sync_now_data(hubspot, "emails", emails)
        )

    assert response.status_code == 400
    assert message in response.content.decode()
    assert 'aria-invalid="true"' in response.content.decode()
    assert callbacks == [] and not AuditEntry.objects.filter(action="sync.sync_now").exists()


def test_sync_now_is_refused_on_a_connection_that_needs_reauthentication(account, member):
    broken = make_connection(account, "hubspot", status=ConnectionStatus.NEEDS_REAUTH)

    response = member(Role.ADMIN).post(url("sync_now", account, connection_id=broken.pk), sync_now_data(broken))

    assert response.status_code == 409
    assert "needs re-authentication" in response.content.decode()
    assert not AuditEntry.objects.filter(action="sync.sync_now").exists()


# --- failed records -----------------------------------------------------------------------------------


def test_failed_list_shows_the_prospect_what_the_crm_said_and_when(account, hubspot, member):
    item = make_item(
        hubspot,
        OutboxState.FAILED,
        kind=OutboxKind.PERSON,
        prospect=make_prospect(account, "carol@example.com"),
        attempts=3,
        last_error="Property values were not valid: lifecyclestage 'hot' is not an option",
        last_error_kind="record",
    )
    make_item(hubspot, OutboxState.DONE, last_error="")

    response = member(Role.VIEWER).get(url("sync_failed", account))

    text = text_of(response)
    assert "1 failed record" in text
    assert "carol@example.com Contact/lead upsert HubSpot" in text
    assert (
        "Property values were not valid: lifecyclestage &#x27;hot&#x27; is not an option" in response.content.decode()
    )
    assert "The CRM refused the record" in text
    assert f'id="item-{item.pk}"' in response.content.decode()
    assert url("sync_item_retry", account, item_id=item.pk) not in response.content.decode()  # viewers only read


def test_failed_list_filters_by_connection_kind_and_error_kind(account, hubspot, member):
    salesforce = make_connection(account, "salesforce")
    note = make_item(hubspot, OutboxState.FAILED, kind=OutboxKind.NOTE, last_error_kind="record")
    activity = make_item(hubspot, OutboxState.FAILED, kind=OutboxKind.ACTIVITY, last_error_kind="configuration")
    theirs = make_item(salesforce, OutboxState.FAILED, kind=OutboxKind.NOTE, last_error_kind="record")
    client = member(Role.VIEWER)

    def shown(**query) -> set[int]:
        html = client.get(url("sync_failed", account), query).content.decode()
        return {int(pk) for pk in re.findall(r'id="item-(\d+)"', html)}

    assert shown() == {note.pk, activity.pk, theirs.pk}
    assert shown(connection=hubspot.pk) == {note.pk, activity.pk}
    assert shown(kind="note") == {note.pk, theirs.pk}
    assert shown(error_kind="configuration") == {activity.pk}
    assert shown(connection=salesforce.pk, kind="note", error_kind="record") == {theirs.pk}


def test_failed_list_pages_newest_first_without_gaps_or_repeats(account, hubspot, member):
    start = timezone.now() - dt.timedelta(days=1)
    items = [
        make_item(hubspot, OutboxState.FAILED, updated_at=start + dt.timedelta(seconds=i // 2)) for i in range(120)
    ]
    expected = [item.pk for item in sorted(items, key=lambda i: (i.updated_at, i.pk), reverse=True)]
    client = member(Role.VIEWER)

    seen, pages, next_url = [], 0, url("sync_failed", account)
    while next_url:
        html = client.get(next_url).content.decode()
        seen += [int(pk) for pk in re.findall(r'id="item-(\d+)"', html)]
        pages += 1
        older = re.search(r'<a href="([^"]+)" rel="next">Older</a>', html)
        next_url = url("sync_failed", account) + older.group(1).replace("&amp;", "&") if older else None

    assert pages == 3
    assert seen == expected
    back = re.search(r'<a href="([^"]+)" rel="prev">Newer</a>', html).group(1).replace("&amp;", "&")
    newer_page = client.get(url("sync_failed", account) + back).content.decode()
    assert [int(pk) for pk in re.findall(r'id="item-(\d+)"', newer_page)] == expected[50:100]


def test_the_failed_count_stops_at_the_cap(account, hubspot, member, monkeypatch):
    monkeypatch.setattr(sync_failed, "COUNT_CAP", 5)
    for _ in range(7):
        make_item(hubspot, OutboxState.FAILED)

    assert "5+ failed records" in text_of(member(Role.VIEWER).get(url("sync_failed", account)))


def test_a_malformed_page_cursor_shows_the_first_page(account, hubspot, member):
    item = make_item(hubspot, OutboxState.FAILED)

    response = member(Role.VIEWER).get(
        url("sync_failed", account), {"before": "x-1'; DROP", "after": "99999999999999999999-1"}
    )

    assert response.status_code == 200
    assert f'id="item-{item.pk}"' in response.content.decode()


def test_retry_puts_the_row_back_to_pending_with_attempts_reset_and_audits(
    account, hubspot, member, django_capture_on_commit_callbacks
):
    item = make_item(
        hubspot,
        OutboxState.FAILED,
        attempts=10,
        last_error="Invalid email",
        next_attempt_at=timezone.now() + dt.timedelta(days=1),
    )
    back = url("sync_failed", account) + "?kind=activity"

    with django_capture_on_commit_callbacks() as callbacks:
        response = member(Role.ADMIN).post(url("sync_item_retry", account, item_id=item.pk), {"next": back})

    item.refresh_from_db()
    assert (item.state, item.attempts) == (OutboxState.PENDING, 0)
    assert item.next_attempt_at <= timezone.now()
    assert response.status_code == 302 and response["Location"] == back
    assert len(callbacks) == 1  # the real-time connection is kicked after commit
    entry = AuditEntry.objects.get(action="sync.retried")
    assert entry.account == account
    assert entry.changes == {"count": 1, "item_ids": [item.pk], "via": "owner page"}
    assert "@" not in entry.object_repr  # the audit log never holds the prospect's address


def test_retry_all_retries_only_the_filtered_failed_rows(account, hubspot, member):
    salesforce = make_connection(account, "salesforce")
    notes = [make_item(hubspot, OutboxState.FAILED, kind=OutboxKind.NOTE) for _ in range(3)]
    activity = make_item(hubspot, OutboxState.FAILED, kind=OutboxKind.ACTIVITY)
    elsewhere = make_item(salesforce, OutboxState.FAILED, kind=OutboxKind.NOTE)
    done = make_item(hubspot, OutboxState.DONE, kind=OutboxKind.NOTE)

    response = member(Role.ADMIN).post(url("sync_retry_all", account), {"connection": hubspot.pk, "kind": "note"})

    assert response.status_code == 302
    states = dict(OutboxItem.objects.values_list("pk", "state"))
    assert [states[n.pk] for n in notes] == ["pending"] * 3
    assert (states[activity.pk], states[elsewhere.pk], states[done.pk]) == ("failed", "failed", "done")
    entry = AuditEntry.objects.get(action="sync.retried")
    assert entry.changes["count"] == 3
    assert entry.changes["filters"] == {"connection": hubspot.pk, "kind": "note"}


def test_retry_all_works_in_chunks_and_stops_at_its_limit(account, hubspot, member, monkeypatch):
    from integrations import sync_actions

    monkeypatch.setattr(sync_actions, "RETRY_CHUNK", 2)
    monkeypatch.setattr(sync_actions, "RETRY_LIMIT", 5)
    for _ in range(7):
        make_item(hubspot, OutboxState.FAILED)

    response = member(Role.ADMIN).post(url("sync_retry_all", account), follow=True)

    assert OutboxItem.objects.filter(state=OutboxState.PENDING).count() == 5
    assert OutboxItem.objects.filter(state=OutboxState.FAILED).count() == 2
    assert "More are left" in text_of(response)


def test_skip_asks_first_on_get_and_skips_only_on_post(account, hubspot, member):
    item = make_item(hubspot, OutboxState.FAILED, last_error="Duplicate value")
    client = member(Role.ADMIN)

    confirm = client.get(url("sync_item_skip", account, item_id=item.pk))
    item.refresh_from_db()
    assert confirm.status_code == 200 and item.state == OutboxState.FAILED
    assert "Skip this record?" in text_of(confirm) and "Duplicate value" in text_of(confirm)

    response = client.post(url("sync_item_skip", account, item_id=item.pk))

    item.refresh_from_db()
    assert response.status_code == 302 and item.state == OutboxState.SKIPPED
    assert AuditEntry.objects.get(action="sync.skipped").changes["item_ids"] == [item.pk]


@pytest.mark.parametrize(
    "target", ["https://evil.example/", "//evil.example/x", "/a/other/sync/failed/", "javascript:alert(1)"]
)
def test_retry_and_skip_only_return_to_this_accounts_failed_list(account, hubspot, member, target):
    item = make_item(hubspot, OutboxState.FAILED)
    client = member(Role.ADMIN)

    retried = client.post(url("sync_item_retry", account, item_id=item.pk), {"next": target})
    confirm = client.get(url("sync_item_skip", account, item_id=item.pk), {"next": target})

    assert retried["Location"] == url("sync_failed", account)
    assert f'href="{url("sync_failed", account)}">Cancel' in confirm.content.decode()


# --- tenancy, roles, CSRF ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Page:
    url_name: str
    method: str = "get"
    kwargs: Callable[[dict], dict] = field(default=lambda objects: {})
    query: Callable[[dict], dict] = field(default=lambda objects: {})
    role_needed: str = Role.VIEWER

    def __str__(self) -> str:
        return f"{self.method.upper()} {self.url_name}"

    def request(self, client: Client, account: Account, objects: dict):
        target = url(self.url_name, account, **self.kwargs(objects))
        return getattr(client, self.method)(target, self.query(objects))


# Every URL of integrations/sync_urls.py, naming the *other* account's objects where it names any.
THEIR_OBJECT_PAGES = [
    Page("sync_settings", kwargs=lambda o: {"connection_id": o["their_connection"].pk}),
    Page("sync_settings", "post", kwargs=lambda o: {"connection_id": o["their_connection"].pk}, role_needed=Role.ADMIN),
    Page("sync_now", "post", kwargs=lambda o: {"connection_id": o["their_connection"].pk}, role_needed=Role.ADMIN),
    Page("sync_run_progress", kwargs=lambda o: {"run_id": o["their_run"].pk}),
    Page("sync_item_retry", "post", kwargs=lambda o: {"item_id": o["their_item"].pk}, role_needed=Role.ADMIN),
    Page("sync_item_skip", kwargs=lambda o: {"item_id": o["their_item"].pk}, role_needed=Role.ADMIN),
    Page("sync_item_skip", "post", kwargs=lambda o: {"item_id": o["their_item"].pk}, role_needed=Role.ADMIN),
    Page("sync_failed", query=lambda o: {"connection": o["their_connection"].pk}),
    Page("sync_retry_all", "post", query=lambda o: {"connection": o["their_connection"].pk}, role_needed=Role.ADMIN),
]
# The same URLs with this account's own objects: what a member of another account may not even see.
OWN_OBJECT_PAGES = [
    Page("sync_status"),
    Page("sync_failed"),
    Page("sync_settings", kwargs=lambda o: {"connection_id": o["connection"].pk}),
    Page("sync_settings", "post", kwargs=lambda o: {"connection_id": o["connection"].pk}, role_needed=Role.ADMIN),
    Page("sync_now", "post", kwargs=lambda o: {"connection_id": o["connection"].pk}, role_needed=Role.ADMIN),
    Page("sync_run_progress", kwargs=lambda o: {"run_id": o["run"].pk}),
    Page("sync_item_retry", "post", kwargs=lambda o: {"item_id": o["item"].pk}, role_needed=Role.ADMIN),
    Page("sync_item_skip", kwargs=lambda o: {"item_id": o["item"].pk}, role_needed=Role.ADMIN),
    Page("sync_item_skip", "post", kwargs=lambda o: {"item_id": o["item"].pk}, role_needed=Role.ADMIN),
    Page("sync_retry_all", "post", role_needed=Role.ADMIN),
]


@pytest.fixture
def objects(account, other_account, hubspot) -> dict:
    their_connection = make_connection(other_account, "hubspot")
    return {
        "connection": hubspot,
        "run": make_run(hubspot),
        "item": make_item(hubspot, OutboxState.FAILED),
        "their_connection": their_connection,
        "their_run": make_run(their_connection),
        "their_item": make_item(their_connection, OutboxState.FAILED),
    }


def test_every_sync_url_is_in_the_tenancy_sweep():
    names = {pattern.name for pattern in sync_urls.urlpatterns if isinstance(pattern, URLPattern)}

    assert names == {page.url_name for page in OWN_OBJECT_PAGES}
    assert names - {"sync_status"} == {page.url_name for page in THEIR_OBJECT_PAGES}


@pytest.mark.parametrize("page", THEIR_OBJECT_PAGES, ids=str)
def test_another_accounts_object_is_not_found_even_for_my_owner(page, account, member, objects):
    response = page.request(member(Role.OWNER), account, objects)

    assert response.status_code == 404
    their_item = objects["their_item"]
    their_item.refresh_from_db()
    assert their_item.state == OutboxState.FAILED
    assert not AuditEntry.objects.filter(action__startswith="sync.").exists()


@pytest.mark.parametrize("page", OWN_OBJECT_PAGES, ids=str)
def test_a_member_of_another_account_gets_404_on_every_sync_page(
    page, account, other_account, make_member, client, objects
):
    client.force_login(make_member(other_account, Role.OWNER))

    assert page.request(client, account, objects).status_code == 404


@pytest.mark.parametrize("page", OWN_OBJECT_PAGES, ids=str)
def test_anonymous_visitors_are_sent_to_sign_in(page, account, client, objects):
    response = page.request(client, account, objects)

    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


@pytest.mark.parametrize("page", [p for p in OWN_OBJECT_PAGES if p.role_needed == Role.ADMIN], ids=str)
def test_a_viewer_may_not_act(page, account, member, objects):
    response = page.request(member(Role.VIEWER), account, objects)

    assert response.status_code == 403
    objects["item"].refresh_from_db()
    assert objects["item"].state == OutboxState.FAILED
    assert not AuditEntry.objects.filter(action__startswith="sync.").exists()


@pytest.mark.parametrize("page", [p for p in OWN_OBJECT_PAGES if p.role_needed == Role.VIEWER], ids=str)
def test_a_viewer_may_read(page, account, member, objects):
    assert page.request(member(Role.VIEWER), account, objects).status_code == 200


@pytest.mark.parametrize("page", [p for p in OWN_OBJECT_PAGES if p.method == "post"], ids=str)
def test_every_form_needs_its_csrf_token(page, account, make_member, objects):
    client = Client(enforce_csrf_checks=True)
    client.force_login(make_member(account, Role.OWNER))

    response = page.request(client, account, objects)

    assert response.status_code == 403
    assert b"CSRF" in response.content
    objects["item"].refresh_from_db()
    assert objects["item"].state == OutboxState.FAILED


def test_a_form_with_its_csrf_token_goes_through(account, make_member, objects):
    client = Client(enforce_csrf_checks=True)
    client.force_login(make_member(account, Role.OWNER))
    page = client.get(url("sync_failed", account)).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)

    response = client.post(url("sync_item_retry", account, item_id=objects["item"].pk), {"csrfmiddlewaretoken": token})

    assert response.status_code == 302
    objects["item"].refresh_from_db()
    assert objects["item"].state == OutboxState.PENDING


# --- query counts ------------------------------------------------------------------------------------


def fill(connection: Connection, rows: int) -> None:
    states = [OutboxState.PENDING, OutboxState.HELD, OutboxState.FAILED, OutboxState.DONE, OutboxState.RETRY]
    for i in range(rows):
        make_item(connection, states[i % len(states)], hold_reason=f"reason {i % 3}", last_error_kind="record")
    for i in range(12):
        make_run(connection, started_at=timezone.now() - dt.timedelta(minutes=i))
    make_run(connection, mode=RunMode.BATCH, state=RunState.RUNNING, total=100, processed=10)


def queries_for(client: Client, target: str) -> int:
    with CaptureQueriesContext(db) as context:
        assert client.get(target).status_code == 200
    return len(context.captured_queries)


def test_the_status_page_costs_the_same_queries_for_more_rows_and_connections(
    account, hubspot, member, django_assert_max_num_queries
):
    client = member(Role.ADMIN)
    fill(hubspot, 5)
    few = queries_for(client, url("sync_status", account))
    fill(hubspot, 60)
    fill(make_connection(account, "salesforce"), 60)

    with django_assert_max_num_queries(few):
        response = client.get(url("sync_status", account))

    assert response.status_code == 200
    assert few <= 20
    assert response.content.decode().count("<progress") == 2


def test_the_failed_list_costs_the_same_queries_for_a_full_page(
    account, hubspot, member, django_assert_max_num_queries
):
    client = member(Role.ADMIN)
    fill(hubspot, 5)
    few = queries_for(client, url("sync_failed", account))
    salesforce = make_connection(account, "salesforce")
    for i in range(70):
        make_item(hubspot if i % 2 else salesforce, OutboxState.FAILED, last_error="Invalid", last_error_kind="record")

    with django_assert_max_num_queries(few):
        response = client.get(url("sync_failed", account))

    assert few <= 12
    assert response.content.decode().count('id="item-') == sync_failed.PAGE_SIZE


def test_relinked_deleted_and_erased_records_are_counted_on_the_status_page(account, client, make_member):
    from crmsync.models import Prospect
    from integrations.models import Connection, RecordLink

    connection = Connection.objects.create(
        account=account, provider="hubspot", access_token="x", activated_at=timezone.now()
    )
    for index, state in enumerate(["linked", "relinked", "relinked", "deleted", "erased"]):
        prospect = Prospect.objects.create(account=account, email=f"l{index}@example.com")
        RecordLink.objects.create(
            connection=connection, prospect=prospect, crm_object_type="contact", crm_id=str(index), state=state
        )
    client.force_login(make_member(account, "viewer", email="links-viewer@example.com"))
    page = client.get(f"/a/{account.slug}/sync/").content.decode()
    assert "re-linked after a deletion or merge in the CRM: 2" in page
    assert "deleted in the CRM: 1" in page and "erased on request: 1" in page


def test_the_scheduler_warms_every_live_connection_so_a_page_view_counts_only_open_hours(
    account, hubspot, django_assert_num_queries
):
    now = dt.datetime(2026, 3, 10, 12, 30, tzinfo=UTC)
    make_item(hubspot, OutboxState.DONE, updated_at=now - dt.timedelta(hours=3))
    make_item(hubspot, OutboxState.DONE, updated_at=now - dt.timedelta(days=3))
    never_activated = make_connection(account, provider="salesforce", activated_at=None)

    assert dashboard.warm_figures(now=now) == 1
    assert dashboard.warm_figures in [job for job, _queue, _every in TIMETABLE]

    with django_assert_num_queries(2):  # the open hour's done rows and the failed rows
        hourly, daily = dashboard.volumes([hubspot], now=now)
    assert sum(hourly[hubspot.pk].synced) == 1 and sum(daily[hubspot.pk].synced) == 2
    assert not cache.get(
        dashboard._cache_key("done-hour", never_activated, now.replace(minute=0) - dt.timedelta(hours=3))
    )


def test_a_cache_that_is_down_costs_a_recount_not_the_page(hubspot, monkeypatch):
    now = dt.datetime(2026, 3, 10, 12, 30, tzinfo=UTC)
    make_item(hubspot, OutboxState.DONE, updated_at=now - dt.timedelta(hours=3))

    def down(*args, **kwargs):
        raise ConnectionError("Redis is restarting")

    monkeypatch.setattr(dashboard.cache, "get_many", down)
    monkeypatch.setattr(dashboard.cache, "set_many", down)
    hourly, _daily = dashboard.volumes([hubspot], now=now)
    assert sum(hourly[hubspot.pk].synced) == 1
