"""Every page the page benchmark (``manage.py bench_pages``) times answers in a number of SQL
queries that does not grow with the rows behind it: the same with 3 rows of each kind as with 30
(and under a fixed ceiling). The benchmark shows these pages within 300 ms at 1,000,000 prospects
and 10,000,000 events; these tests keep the N+1 queries out that would undo it."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlencode

import pytest
from django.contrib.admin import site
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import connection as db
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from crmsync.admin_support import (
    EstimatedCountPaginator,
    IndexedValuesListFilter,
    distinct_indexed_values,
    prefix_q,
)
from crmsync.models import AuditEntry, Capsule, Event, Prospect, Role, Visitor
from integrations.models import (
    Connection,
    LinkState,
    OutboxItem,
    OutboxKind,
    OutboxState,
    RecordLink,
    RunMode,
    RunState,
    SyncRun,
    WebhookDelivery,
    WebhookSubscription,
)
from integrations.views.sync_failed import Cursor
from scoring.models import GradeChange, ProspectScore
from scoring.models_triggers import TriggerFiring, TriggerRule

_serial = itertools.count(1)
STATES = [OutboxState.DONE, OutboxState.FAILED, OutboxState.PENDING, OutboxState.RETRY, OutboxState.HELD]
ERROR_KINDS = ["record", "auth", "configuration", "retryable"]


@pytest.fixture(autouse=True)
def empty_cache():
    cache.clear()
    yield
    cache.clear()


class World:
    """One account with a connected HubSpot, grown ``add(n)`` rows of every kind at a time."""

    def __init__(self, account) -> None:
        self.account = account
        self.connection = Connection.objects.create(
            account=account, provider="hubspot", access_token="x", activated_at=timezone.now()
        )
        self.capsule = Capsule.objects.create(account=account, external_id="cap-1", title="Pricing tour")
        self.subscription = WebhookSubscription.objects.create(
            account=account, target_url="https://hooks.example.com/x", events=["*"], secret="whsec_dGVzdA=="
        )
        self.rule = TriggerRule.objects.create(account=account, name="Viewed", condition_type="capsule_viewed")

    def add(self, n: int) -> None:
        now = timezone.now()
        account, connection = self.account, self.connection
        prospects = Prospect.objects.bulk_create(
            Prospect(account=account, email=f"grace.lee{next(_serial)}@example.com", first_name="Grace")
            for _ in range(n)
        )
        visitors = Visitor.objects.bulk_create(
            Visitor(account=account, visitor_id=f"v-{p.pk}", prospect=p) for p in prospects
        )
        events = Event.objects.bulk_create(
            Event(
                account=account,
                external_id=f"evt-{p.pk}",
                type="cta_clicked",
                occurred_at=now,
                prospect=p,
                capsule=self.capsule,
                visitor_id=v.visitor_id,
                data={"seconds": 5},
            )
            for p, v in zip(prospects, visitors, strict=True)
        )
        RecordLink.objects.bulk_create(
            RecordLink(
                connection=connection,
                prospect=p,
                crm_object_type="contact",
                crm_id=f"crm-{p.pk}",
                state=LinkState.DELETED if i % 3 == 0 else LinkState.LINKED,
            )
            for i, p in enumerate(prospects)
        )
        runs = SyncRun.objects.bulk_create(
            SyncRun(
                connection=connection,
                mode=RunMode.MANUAL if i % 2 else RunMode.REALTIME,
                state=RunState.DONE,
                started_at=now - dt.timedelta(minutes=i),
                finished_at=now,
                processed=10,
            )
            for i in range(n)
        )
        items = []
        for i, (p, e) in enumerate(zip(prospects, events, strict=True)):
            for j, state in enumerate(STATES):
                failed = state in (OutboxState.FAILED, OutboxState.RETRY)
                items.append(
                    OutboxItem(
                        connection=connection,
                        prospect=p,
                        event=e if j else None,
                        kind=OutboxKind.PERSON if j == 0 else OutboxKind.ACTIVITY,
                        dedupe_key=f"person:{p.pk}" if j == 0 else f"activity:{e.pk}:{j}",
                        state=state,
                        last_error=(
                            ("HubSpot 403: missing scopes" if i % 4 == 1 else "Property lifecyclestage was not valid")
                            if failed
                            else ""
                        ),
                        last_error_kind=ERROR_KINDS[i % 4] if failed else "",
                        hold_reason="Waiting for consent" if state == OutboxState.HELD else "",
                        run=runs[i],
                        created_at=now - dt.timedelta(minutes=i),
                        updated_at=now - dt.timedelta(minutes=i, seconds=j),
                        done_at=now if state == OutboxState.DONE else None,
                    )
                )
        OutboxItem.objects.bulk_create(items)
        AuditEntry.objects.bulk_create(
            AuditEntry(account=account, actor_label="system", action=f"sync.retry{i % 3}", object_id=str(i))
            for i in range(n)
        )
        WebhookDelivery.objects.bulk_create(
            WebhookDelivery(
                subscription=self.subscription,
                account=account,
                event_type="event.received",
                idempotency_key=f"event:{e.pk}",
                payload={"type": "event.received"},
                state="failed" if i % 2 else "delivered",
            )
            for i, e in enumerate(events)
        )
        ProspectScore.objects.bulk_create(
            ProspectScore(prospect=p, account=account, score=50, grade="Warm") for p in prospects
        )
        GradeChange.objects.bulk_create(
            GradeChange(account=account, prospect=p, to_grade="Warm", score=50, reason="ingest") for p in prospects
        )
        TriggerFiring.objects.bulk_create(
            TriggerFiring(
                rule=self.rule,
                account=account,
                prospect=p,
                event=e,
                key=f"rule:{self.rule.pk}:{e.pk}",
                condition_type="capsule_viewed",
            )
            for p, e in zip(prospects, events, strict=True)
        )


@pytest.fixture
def world(account) -> World:
    return World(account)


@pytest.fixture
def owner_client(world, make_member) -> Client:
    client = Client()
    client.force_login(make_member(world.account, Role.OWNER))
    return client


@pytest.fixture
def ops_client(db) -> Client:
    user = get_user_model().objects.create_superuser("ops@example.com", "ops@example.com", "correct horse 123")
    client = Client()
    client.force_login(user)
    return client


def _admin(model: str, query: str = "", app: str = "crmsync") -> Callable[[World], str]:
    return lambda w: reverse(f"admin:{app}_{model}_changelist") + (f"?{query}" if query else "")


def _change(model: str, find: Callable[[World], int], app: str = "crmsync") -> Callable[[World], str]:
    return lambda w: reverse(f"admin:{app}_{model}_change", args=[find(w)])


def _owner(name: str, query: str = "") -> Callable[[World], str]:
    return lambda w: reverse(f"integrations:{name}", kwargs={"account_slug": w.account.slug}) + query


def _newest(model, **filters) -> Callable[[World], int]:
    return lambda w: model.objects.filter(**filters).order_by("-pk").values_list("pk", flat=True)[0]


def _failed_page_2(w: World) -> str:
    rows = OutboxItem.objects.filter(state=OutboxState.FAILED).order_by("-updated_at", "-pk")
    cursor = Cursor.of(rows[min(2, rows.count() - 1)])
    return _owner("sync_failed", f"?before={cursor}")(w)


def _week() -> str:
    """The "Past 7 days" link of the date filter, as Django's DateFieldListFilter writes it."""
    today = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    return urlencode(
        {"received_at__gte": str(today - dt.timedelta(days=7)), "received_at__lt": str(today + dt.timedelta(days=1))}
    )


# (name, "owner" or "ops", URL of the world, ceiling): the pages of bench_pages.
PAGES = [
    ("owner: sync status", "owner", _owner("sync_status"), 20),
    ("owner: failed records", "owner", _owner("sync_failed"), 12),
    ("owner: failed, page 2", "owner", _failed_page_2, 12),
    ("owner: failed, error kind", "owner", _owner("sync_failed", "?error_kind=record"), 12),
    ("owner: failed, kind", "owner", _owner("sync_failed", "?kind=activity"), 12),
    ("admin: prospects", "ops", _admin("prospect"), 10),
    ("admin: prospects, search e-mail start", "ops", _admin("prospect", "q=grace.lee"), 10),
    ("admin: prospects, filter consent", "ops", _admin("prospect", "consent_granted__isnull=True"), 10),
    ("admin: prospect change form", "ops", _change("prospect", _newest(Prospect)), 10),
    ("admin: events", "ops", _admin("event"), 10),
    ("admin: events, search id", "ops", lambda w: _admin("event", f"q=evt-{_newest(Prospect)(w)}")(w), 10),
    ("admin: events, filter type", "ops", _admin("event", "type__exact=cta_clicked"), 10),
    ("admin: events, received this week", "ops", lambda w: _admin("event", _week())(w), 10),
    ("admin: event change form", "ops", _change("event", _newest(Event)), 10),
    ("admin: visitors", "ops", _admin("visitor"), 10),
    ("admin: visitors, search", "ops", lambda w: _admin("visitor", f"q=v-{_newest(Prospect)(w)}")(w), 10),
    ("admin: visitor change form", "ops", _change("visitor", _newest(Visitor)), 10),
    ("admin: audit entries", "ops", _admin("auditentry"), 10),
    ("admin: audit, search actor", "ops", _admin("auditentry", "q=system"), 10),
    ("admin: audit, filter action", "ops", _admin("auditentry", "action=sync.retry1"), 10),
    ("admin: audit entry change form", "ops", _change("auditentry", _newest(AuditEntry)), 10),
    ("admin: outbox", "ops", _admin("outboxitem", app="integrations"), 10),
    ("admin: outbox, filter failed", "ops", _admin("outboxitem", "state__exact=failed", "integrations"), 10),
    ("admin: outbox, filter error kind", "ops", _admin("outboxitem", "error_kind=auth", "integrations"), 10),
    ("admin: outbox, search e-mail", "ops", _admin("outboxitem", "q=grace.lee1@", "integrations"), 10),
    ("admin: outbox, search error", "ops", _admin("outboxitem", "q=lifecyclestage", "integrations"), 10),
    ("admin: outbox, search rare error", "ops", _admin("outboxitem", "q=scopes", "integrations"), 10),
    ("admin: outbox change form", "ops", _change("outboxitem", _newest(OutboxItem), "integrations"), 12),
    ("admin: record links", "ops", _admin("recordlink", app="integrations"), 10),
    ("admin: links, search e-mail", "ops", _admin("recordlink", "q=grace.lee1@", "integrations"), 10),
    ("admin: links, filter state", "ops", _admin("recordlink", "state__exact=deleted", "integrations"), 10),
    ("admin: record link change form", "ops", _change("recordlink", _newest(RecordLink), "integrations"), 10),
    ("admin: sync runs", "ops", _admin("syncrun", app="integrations"), 10),
    ("admin: runs, filter manual", "ops", _admin("syncrun", "mode__exact=manual", "integrations"), 10),
    ("admin: sync run change form", "ops", _change("syncrun", _newest(SyncRun), "integrations"), 10),
    ("admin: connection syncs", "ops", _admin("connectionsync", app="integrations"), 10),
    ("admin: connection sync form", "ops", _change("connectionsync", _newest(Connection), "integrations"), 20),
    ("admin: webhook deliveries", "ops", _admin("webhookdelivery", app="integrations"), 10),
    ("admin: deliveries, filter failed", "ops", _admin("webhookdelivery", "state__exact=failed", "integrations"), 10),
    ("admin: deliveries, search key", "ops", _admin("webhookdelivery", "q=event:1", "integrations"), 10),
    ("admin: webhook delivery form", "ops", _change("webhookdelivery", _newest(WebhookDelivery), "integrations"), 10),
    ("admin: prospect scores", "ops", _admin("prospectscore", app="scoring"), 10),
    ("admin: grade changes", "ops", _admin("gradechange", app="scoring"), 10),
    ("admin: trigger firings", "ops", _admin("triggerfiring", app="scoring"), 10),
]  # fmt: skip


def _queries(client: Client, url: str) -> int:
    with CaptureQueriesContext(db) as captured:
        response = client.get(url)
    assert response.status_code == 200, f"{url} answered {response.status_code}"
    return len(captured.captured_queries)


@pytest.mark.parametrize(("name", "who", "url_of", "ceiling"), PAGES, ids=[page[0] for page in PAGES])
def test_page_queries_do_not_grow_with_rows(name, who, url_of, ceiling, world, owner_client, ops_client):
    client = owner_client if who == "owner" else ops_client
    world.add(3)
    few = _queries(client, url_of(world))
    world.add(27)
    cache.clear()  # the status page caches finished hours; count them again, as with 3 rows
    many = _queries(client, url_of(world))

    assert many <= few, f"{name}: {few} queries with 3 rows of each kind, {many} with 30"
    assert few <= ceiling, f"{name}: {few} queries (ceiling {ceiling})"


def test_the_benchmark_measures_the_pages_these_tests_bound():
    """A page added to bench_pages without a bound here shows up as a name missing below."""
    from crmsync.management.commands import bench_pages

    source = Path(bench_pages.__file__).read_text()
    for model in (Prospect, Event, Visitor, AuditEntry, OutboxItem, RecordLink, SyncRun, WebhookDelivery):
        assert f'"{model._meta.model_name}"' in source, model


# --- the paginator and filters of the big tables ----------------------------------------------------


def test_an_unfiltered_big_table_is_counted_by_the_planner_estimate(world, monkeypatch):
    world.add(3)
    monkeypatch.setattr("crmsync.admin_support.table_estimate", lambda queryset: 5_000_000)
    paginator = EstimatedCountPaginator(Event.objects.order_by("-pk"), 50)

    assert paginator.count == 5_000_000
    assert paginator.num_pages == 200  # MAX_PAGES: the admin pages by OFFSET


def test_a_small_or_never_analysed_table_is_counted_exactly(world):
    world.add(3)

    assert EstimatedCountPaginator(Event.objects.order_by("-pk"), 50).count == 3


def test_a_filtered_list_is_counted_exactly_up_to_the_cap_then_estimated(world, monkeypatch):
    world.add(3)
    monkeypatch.setattr("crmsync.admin_support.EXACT_COUNT_CAP", 2)
    monkeypatch.setattr("crmsync.admin_support.planner_estimate", lambda queryset: 1234)

    assert EstimatedCountPaginator(Event.objects.filter(type="cta_clicked").order_by("-pk"), 50).count == 1234
    assert EstimatedCountPaginator(Event.objects.filter(type="sentiment").order_by("-pk"), 50).count == 0


def test_the_planner_estimate_runs_nothing(world):
    from crmsync.admin_support import planner_estimate

    world.add(3)

    assert planner_estimate(Event.objects.filter(type="cta_clicked")) >= 1


def test_the_action_filter_lists_each_value_once_from_the_index(world):
    world.add(6)

    expected = sorted(set(AuditEntry.objects.values_list("action", flat=True)))
    assert "sync.retry1" in expected
    assert distinct_indexed_values(AuditEntry, "action") == expected
    assert distinct_indexed_values(AuditEntry, "action", limit=2) == expected[:2]
    assert IndexedValuesListFilter is site._registry[AuditEntry].list_filter[0][1]


def test_an_email_prefix_finds_exactly_the_addresses_that_start_with_it(world):
    world.add(3)
    Prospect.objects.create(account=world.account, email="grace.leeds@example.com")
    Prospect.objects.create(account=world.account, email="grace.lef@example.com")

    found = set(Prospect.objects.filter(prefix_q("email", "grace.lee")).values_list("email", flat=True))

    assert "grace.leeds@example.com" in found
    assert "grace.lef@example.com" not in found
    assert len(found) == 4
