"""Ops in the Django admin, in Chromium: failed records across accounts, a bulk retry, the audit log."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import expect

from crmsync.models import Account, AuditEntry, Membership, Role
from integrations.models import OutboxItem, OutboxState
from tests.browser.conftest import (
    OWNER_EMAIL,
    OWNER_PASSWORD,
    STAFF_EMAIL,
    STAFF_PASSWORD,
    connect_hubspot,
    make_refused_record,
    sign_in,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_ops_filters_failed_records_across_accounts_bulk_retries_and_reads_the_audit_log(
    live_server, hubspot, owner_account, staff_user, chromium, page, shot
):
    other = Account.objects.create(name="Globex Capsules", slug="globex-capsules")
    other_owner = get_user_model().objects.create_user(
        username="owner@globex.example.com", email="owner@globex.example.com", password="x" * 20
    )
    Membership.objects.create(account=other, user=other_owner, role=Role.OWNER)
    refused = {
        owner_account.name: make_refused_record(hubspot, connect_hubspot(hubspot, owner_account), prefix="acme-"),
        other.name: make_refused_record(hubspot, connect_hubspot(hubspot, other), prefix="globex-"),
    }
    assert OutboxItem.objects.filter(state=OutboxState.FAILED).count() == 2

    # The owner acts in the product (their own browser): those actions must reach the audit log.
    owner_context = chromium.new_context()
    try:
        owner_page = owner_context.new_page()
        sign_in(owner_page, live_server.url, OWNER_EMAIL, OWNER_PASSWORD)
        owner_page.get_by_role("button", name="Send sample events").click()
        expect(owner_page.get_by_role("status").filter(has_text="20 sample events sent.")).to_be_visible()
    finally:
        owner_context.close()

    # Sign in to the admin as staff.
    page.goto(f"{live_server.url}/admin/")
    page.get_by_label(re.compile("^(Username|E-?mail)", re.IGNORECASE)).fill(STAFF_EMAIL)
    page.get_by_label(re.compile("^Password", re.IGNORECASE)).fill(STAFF_PASSWORD)
    page.get_by_role("button", name=re.compile("Log in|Sign in")).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("administration")
    shot(page, "01-admin-home")

    # Failed outbox records, every account: the state filter in the sidebar.
    page.goto(f"{live_server.url}/admin/integrations/outboxitem/")
    page.locator("#changelist-filter").get_by_role("link", name="Failed", exact=True).first.click()
    expect(page).to_have_url(re.compile(r"state__exact=failed"))
    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(2)
    for account_name, email in refused.items():
        expect(rows.filter(has_text=account_name).filter(has_text=email)).to_have_count(1)
    expect(rows.first).to_contain_text("external_ref")  # the CRM's reason, in the list
    shot(page, "02-failed-across-accounts")

    # Bulk retry: select all, the action, Go.
    page.locator("#action-toggle").check()
    page.get_by_label("Action:").select_option(label="Retry selected")
    page.get_by_role("button", name="Go").click()
    expect(page.locator("ul.messagelist")).to_contain_text(re.compile(r"2"))
    assert OutboxItem.objects.filter(state=OutboxState.FAILED).count() == 0
    shot(page, "03-bulk-retried")

    # The audit log: the owner's button press and this retry, newest first.
    page.goto(f"{live_server.url}/admin/crmsync/auditentry/")
    expect(page.get_by_role("heading", level=1)).to_contain_text("audit")
    log = page.locator("#result_list tbody")
    expect(log.locator("tr").filter(has_text="sample_events.sent").filter(has_text=OWNER_EMAIL)).to_have_count(1)
    retry_actions = set(AuditEntry.objects.filter(actor__email=STAFF_EMAIL).values_list("action", flat=True))
    assert retry_actions, "the bulk retry wrote no audit entry"
    for action in retry_actions:
        expect(log.locator("tr").filter(has_text=action).first).to_be_visible()
    shot(page, "04-audit-log")
