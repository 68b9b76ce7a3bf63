"""Ops in the admin: outbox rows across accounts with their filters and search, retry and skip
(audited), sync runs with their progress, record links, and per-connection "Sync now"."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from crmsync.models import AuditEntry
from integrations.admin_sync import ConnectionSync
from integrations.models import (
    ConnectionStatus,
    LinkState,
    OutboxItem,
    OutboxKind,
    OutboxState,
    RecordLink,
    RunMode,
    RunState,
)
from tests.integrations.test_sync_dashboard import make_connection, make_item, make_prospect, make_run


@pytest.fixture
def ops(db) -> Client:
    user = get_user_model().objects.create_superuser("ops@example.com", "ops@example.com", "correct horse 123")
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def viewing_ops(db) -> Client:
    """Staff who may look at outbox rows and connections but change nothing."""
    user = get_user_model().objects.create_user("look@example.com", "look@example.com", "x", is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_outboxitem", "view_connectionsync", "view_connection"])
    )
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def world(account, make_account):
    """Two accounts, each with a CRM and a few rows in several states."""
    other = make_account("Other Co")
    acme = make_connection(account, "hubspot")
    theirs = make_connection(other, "salesforce")
    return {
        "acme": acme,
        "theirs": theirs,
        "failed": make_item(
            acme,
            OutboxState.FAILED,
            kind=OutboxKind.PERSON,
            prospect=make_prospect(account, "carol@example.com"),
            attempts=10,
            last_error="Property values were not valid: " + "x" * 200,
            last_error_kind="record",
        ),
        "their_failed": make_item(
            theirs, OutboxState.FAILED, kind=OutboxKind.NOTE, last_error="INVALID_SESSION_ID", last_error_kind="auth"
        ),
        "pending": make_item(acme, OutboxState.PENDING),
        "done": make_item(theirs, OutboxState.DONE),
    }


def admin_url(name: str, *args) -> str:
    return reverse(f"admin:{name}", args=args)


ROW_LINK = r'<th class="field-[^"]+"><a href="/admin/integrations/\w+/(\d+)/change/'


def listed(response) -> set[int]:
    """The ids of the change list's rows (each row's first column links to its page)."""
    assert response.status_code == 200
    html = response.content.decode()
    return {int(pk) for pk in re.findall(ROW_LINK, html)}


def run_action(client: Client, changelist: str, action: str, ids: list[int], *, follow: bool = False, **extra):
    return client.post(changelist, {"action": action, "_selected_action": ids, "index": 0, **extra}, follow=follow)


# --- the outbox --------------------------------------------------------------------------------------

OUTBOX = "integrations_outboxitem_changelist"


def test_ops_see_every_accounts_rows_with_their_account_and_a_truncated_error(ops, world):
    response = ops.get(admin_url(OUTBOX))

    assert listed(response) == {world[k].pk for k in ("failed", "their_failed", "pending", "done")}
    html = response.content.decode()
    assert "Acme Corp" in html and "Other Co" in html
    assert "Property values were not valid: " in html and "x" * 100 not in html


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"state__exact": "failed"}, {"failed", "their_failed"}),
        ({"connection__provider__exact": "salesforce"}, {"their_failed", "done"}),
        ({"kind__exact": "note"}, {"their_failed"}),
        ({"error_kind": "auth"}, {"their_failed"}),
        ({"state__exact": "failed", "connection__provider__exact": "hubspot"}, {"failed"}),
        ({"q": "carol@example.com"}, {"failed"}),
        ({"q": "Carol@"}, {"failed"}),
        ({"q": "invalid_session"}, {"their_failed"}),
    ],
)
def test_ops_filter_and_search_across_accounts(ops, world, query, expected):
    assert listed(ops.get(admin_url(OUTBOX), query)) == {world[name].pk for name in expected}


def test_retry_selected_requeues_rows_of_each_account_and_audits_each_account(ops, world):
    ids = [world["failed"].pk, world["their_failed"].pk, world["done"].pk]

    response = run_action(ops, admin_url(OUTBOX), "retry_selected", ids)

    assert response.status_code == 302
    states = dict(OutboxItem.objects.values_list("pk", "state"))
    assert (states[world["failed"].pk], states[world["their_failed"].pk], states[world["done"].pk]) == (
        "pending",
        "pending",
        "done",
    )
    world["failed"].refresh_from_db()
    assert world["failed"].attempts == 0
    entries = AuditEntry.objects.filter(action="sync.retried").order_by("pk")
    assert {(e.account.name, tuple(e.changes["item_ids"]), e.changes["via"]) for e in entries} == {
        ("Acme Corp", (world["failed"].pk,), "admin"),
        ("Other Co", (world["their_failed"].pk,), "admin"),
    }
    assert all(e.actor_label == "ops@example.com" for e in entries)


def test_skip_selected_asks_first_then_skips_and_audits(ops, world):
    ids = [world["failed"].pk, world["pending"].pk]

    confirm = run_action(ops, admin_url(OUTBOX), "skip_selected", ids)

    assert confirm.status_code == 200 and "Yes, skip them" in confirm.content.decode()
    assert OutboxItem.objects.filter(pk__in=ids, state=OutboxState.SKIPPED).count() == 0

    response = run_action(ops, admin_url(OUTBOX), "skip_selected", ids, confirmed="yes")

    assert response.status_code == 302
    assert OutboxItem.objects.filter(pk__in=ids, state=OutboxState.SKIPPED).count() == 2
    entry = AuditEntry.objects.get(action="sync.skipped")
    assert sorted(entry.changes["item_ids"]) == sorted(ids) and entry.changes["via"] == "admin"


def test_staff_who_may_only_view_cannot_retry(viewing_ops, world):
    assert listed(viewing_ops.get(admin_url(OUTBOX)))  # they can read the list

    run_action(viewing_ops, admin_url(OUTBOX), "retry_selected", [world["failed"].pk])

    world["failed"].refresh_from_db()
    assert world["failed"].state == OutboxState.FAILED
    assert not AuditEntry.objects.filter(action="sync.retried").exists()


def test_outbox_rows_are_read_only(ops, world):
    change = admin_url("integrations_outboxitem_change", world["failed"].pk)

    page = ops.get(change)
    post = ops.post(change, {"state": "done"})
    delete = ops.get(admin_url("integrations_outboxitem_delete", world["failed"].pk))

    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
    assert "Property values were not valid" in page.content.decode()
    assert post.status_code == 403 and delete.status_code == 403
    world["failed"].refresh_from_db()
    assert world["failed"].state == OutboxState.FAILED


def test_the_outbox_list_costs_the_same_queries_with_more_rows(ops, world, django_assert_max_num_queries):
    from django.db import connection as db
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(db) as few:
        ops.get(admin_url(OUTBOX), {"state__exact": "failed"})
    for i in range(60):
        make_item(world["acme" if i % 2 else "theirs"], OutboxState.FAILED, kind=OutboxKind.ACTIVITY)

    with django_assert_max_num_queries(len(few.captured_queries)):
        response = ops.get(admin_url(OUTBOX), {"state__exact": "failed"})

    assert len(listed(response)) == 50  # the first page of the 62 (big tables list 50 rows a page)
    assert response.context["cl"].result_count == 62


# --- sync runs and record links --------------------------------------------------------------------


def test_a_running_batch_shows_its_progress_in_the_run_list_and_page(ops, world):
    run = make_run(world["acme"], mode=RunMode.BATCH, state=RunState.RUNNING, total=10_000, processed=1_234)
    make_run(world["theirs"], mode=RunMode.REALTIME, state=RunState.DONE)

    listing = ops.get(admin_url("integrations_syncrun_changelist"), {"mode__exact": "batch", "state__exact": "running"})
    page = ops.get(admin_url("integrations_syncrun_change", run.pk))

    assert listed(listing) == {run.pk}
    for response in (listing, page):
        html = response.content.decode()
        assert '<progress value="1234" max="10000">12%</progress> 1,234 of 10,000' in html
    assert 'name="_save"' not in page.content.decode()


def test_runs_filter_by_provider(ops, world):
    ours = make_run(world["acme"])
    make_run(world["theirs"])

    assert listed(
        ops.get(admin_url("integrations_syncrun_changelist"), {"connection__provider__exact": "hubspot"})
    ) == {ours.pk}


def test_record_links_are_found_by_crm_id_or_address(ops, account, world):
    carol = world["failed"].prospect
    link = RecordLink.objects.create(
        connection=world["acme"], prospect=carol, crm_object_type="contact", crm_id="5101", state=LinkState.LINKED
    )
    RecordLink.objects.create(
        connection=world["acme"], prospect=make_prospect(account), crm_object_type="contact", crm_id="5102"
    )
    links = admin_url("integrations_recordlink_changelist")

    assert listed(ops.get(links, {"q": "5101"})) == {link.pk}
    assert listed(ops.get(links, {"q": "carol@example.com"})) == {link.pk}
    assert listed(ops.get(links, {"q": "510"})) == set()  # ids match exactly
    assert ops.get(admin_url("integrations_recordlink_change", link.pk)).status_code == 200


# --- per-connection sync --------------------------------------------------------------------------------

CONNECTIONS = "integrations_connectionsync_changelist"


def test_the_connection_sync_list_shows_each_connections_queue_and_last_sync(ops, world):
    response = ops.get(admin_url(CONNECTIONS))

    assert listed(response) == {world["acme"].pk, world["theirs"].pk}
    rows = {
        pk: row
        for pk, row in re.findall(
            r'value="(\d+)" class="action-select"[^>]*>.*?(<td.*?)</tr>', response.content.decode(), re.S
        )
    }
    acme = re.sub(r"<[^>]+>", "|", rows[str(world["acme"].pk)])
    assert re.search(r"\|never\|+1\|+0\|+0\|+0\|+1\|", acme)  # last sync, pending, in flight, retry, waiting, failed


def test_the_connection_sync_page_shows_the_dashboard_numbers(ops, world):
    make_run(world["acme"], mode=RunMode.MANUAL, api_calls=42, rate_limited=3)

    html = ops.get(admin_url("integrations_connectionsync_change", world["acme"].pk)).content.decode()

    assert "Reliability per day (UTC)" in html
    assert "<tr><th scope='row'>Failed</th><td>1</td></tr>" in html
    assert "<td>42</td><td>3</td>" in html
    assert "access_token" not in html


def test_sync_now_asks_first_then_starts_after_commit_and_audits(ops, world, django_capture_on_commit_callbacks):
    confirm = run_action(ops, admin_url(CONNECTIONS), "sync_now_all", [world["acme"].pk])
    assert confirm.status_code == 200 and "Yes, sync now" in confirm.content.decode()
    assert not AuditEntry.objects.filter(action="sync.sync_now").exists()

    with django_capture_on_commit_callbacks() as callbacks:
        response = run_action(ops, admin_url(CONNECTIONS), "sync_now_all", [world["acme"].pk], confirmed="yes")

    assert response.status_code == 302
    assert len(callbacks) == 1
    entry = AuditEntry.objects.get(action="sync.sync_now")
    assert (entry.account, entry.changes) == (world["acme"].account, {"records": "all", "via": "admin"})


def test_sync_now_skips_a_connection_that_cannot_sync_and_says_why(ops, world, django_capture_on_commit_callbacks):
    ConnectionSync.objects.filter(pk=world["theirs"].pk).update(status=ConnectionStatus.NEEDS_REAUTH)

    with django_capture_on_commit_callbacks() as callbacks:
        response = run_action(
            ops, admin_url(CONNECTIONS), "sync_now_all", [world["theirs"].pk], confirmed="yes", follow=True
        )

    assert callbacks == []
    assert "Not started" in response.content.decode() and "needs re-authentication" in response.content.decode()
    assert not AuditEntry.objects.filter(action="sync.sync_now").exists()


def test_staff_who_may_only_view_cannot_sync_now(viewing_ops, world):
    run_action(viewing_ops, admin_url(CONNECTIONS), "sync_now_all", [world["acme"].pk], confirmed="yes")

    assert not AuditEntry.objects.filter(action="sync.sync_now").exists()


def test_the_connection_sync_list_costs_one_query_for_all_its_numbers(
    ops, world, account, django_assert_max_num_queries
):
    from django.db import connection as db
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(db) as few:
        ops.get(admin_url(CONNECTIONS))
    make_connection(account, "salesforce", activated_at=timezone.now())
    for _ in range(20):
        make_item(world["acme"], OutboxState.FAILED)

    with django_assert_max_num_queries(len(few.captured_queries)):
        response = ops.get(admin_url(CONNECTIONS))

    assert len(listed(response)) == 3
