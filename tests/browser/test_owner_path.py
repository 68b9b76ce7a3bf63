"""An owner's whole path in Chromium, from sign-in to disconnecting, against a HubSpot sandbox.

Each step asserts what the page shows and saves a screenshot (test-artifacts/screenshots/).
Every page of ours that the path visits is checked for labelled form controls and heading order.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from integrations.models import Connection, OutboxItem, OutboxState, SyncMode
from tests.browser.a11y import accessibility_problems
from tests.browser.conftest import OWNER_EMAIL, OWNER_PASSWORD, drain, make_refused_record, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


class Path:
    """The browser plus the accessibility findings of every page visited."""

    def __init__(self, page, base_url: str, shot) -> None:
        self.page, self.base, self._shot, self.problems = page, base_url, shot, []
        self.steps = 0

    def step(self, name: str) -> None:
        """A page the owner has reached: check it and keep a screenshot."""
        self.page.wait_for_load_state()
        self.problems += accessibility_problems(self.page)
        self.steps += 1
        self._shot(self.page, f"{self.steps:02d}-{name}")


def test_owner_connects_maps_syncs_retries_and_disconnects(live_server, hubspot, owner_account, page, shot):
    path = Path(page, live_server.url, shot)
    slug = owner_account.slug

    # 1. Sign in → the overview.
    page.goto(f"{live_server.url}/accounts/login/")
    path.step("sign-in")
    sign_in(page, live_server.url, OWNER_EMAIL, OWNER_PASSWORD)
    expect(page).to_have_url(re.compile(rf"/a/{slug}/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Acme Capsules")
    expect(page.get_by_text("You are owner of this account.")).to_be_visible()
    path.step("overview")

    # 2. CRM connection → Connect HubSpot → the sandbox's consent page → Allow → connected.
    nav = page.get_by_role("navigation", name="Acme Capsules")
    nav.get_by_role("link", name="CRM connection").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("CRM connection")
    expect(page.get_by_text("No CRM is connected yet.")).to_be_visible()
    path.step("crm-connection")
    page.get_by_role("button", name="Connect HubSpot").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("HubSpot sandbox")
    expect(page.get_by_text("asks to access your sandbox")).to_be_visible()
    shot(page, f"{path.steps:02d}b-consent")  # the CRM's page, not ours: no accessibility check
    page.get_by_role("button", name="Allow").click()
    expect(page).to_have_url(re.compile(rf"/a/{slug}/crm/$"))
    card = page.locator("li.card[data-provider=hubspot]")
    expect(card.get_by_text(re.compile(r"Connected to capsule-sandbox-\d+\.hubspot\.example\.com"))).to_be_visible()
    expect(card.locator(".status")).to_have_text("Active")
    path.step("connected")

    # 3. Field mapping: load the CRM's fields, apply an industry template.
    nav.get_by_role("link", name="Field mapping").click()
    page.get_by_role("link", name="Configure").click()
    path.step("mapping-connection")
    expect(page.get_by_role("heading", level=1)).to_have_text("HubSpot contact fields")
    page.get_by_role("button", name=re.compile("(Load|Refresh) fields")).click()
    expect(page.get_by_text(re.compile(r"\d+ fields, loaded"))).to_be_visible()
    path.step("crm-fields")

    page.get_by_role("link", name="Apply a template").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Apply a template")
    page.get_by_role("combobox", name=re.compile("^Template")).select_option(label="B2B SaaS")
    page.get_by_label("Replace the mapping").check()
    page.get_by_label("Yes, change the mapping").check()
    path.step("template")
    page.get_by_role("button", name="Apply the template").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Map fields")
    expect(page.get_by_text(re.compile(r"Template applied: mapping version \d+\."))).to_be_visible()
    path.step("template-applied")

    # A validation error shown beside its row: a value written into a field the CRM keeps read-only.
    new_row = page.locator("fieldset.mapping-row").filter(has_text="(new)").first
    row_id = new_row.get_attribute("id")
    new_row.get_by_label("Capsule value").select_option("utm_campaign")
    new_row.get_by_label("CRM field").select_option("hs_object_id")
    page.get_by_role("button", name="Save mapping").click()
    expect(page.get_by_role("alert").filter(has_text="Not saved: 2 problems to fix")).to_be_visible()
    bad_row = page.locator("fieldset.mapping-row--invalid")
    expect(bad_row).to_have_count(1)  # the problems are beside the row they concern, and only there
    expect(bad_row).to_have_attribute("id", row_id)
    expect(bad_row).to_contain_text("“Record ID” is read-only in HubSpot")
    expect(bad_row).to_contain_text("type clash")
    path.step("validation-error")

    # Fixed: the campaign goes into a writable text field instead.
    bad_row.get_by_label("CRM field").select_option("address")
    page.get_by_role("button", name="Save mapping").click()
    expect(page.get_by_role("status").filter(has_text=re.compile(r"Saved as version \d+\."))).to_be_visible()
    expect(page.locator("fieldset.mapping-row--invalid")).to_have_count(0)
    path.step("mapping-saved")

    # Test with sample data: the payload that would be sent, nothing sent.
    page.get_by_role("link", name="Next: test with sample data").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Test with sample data")
    page.get_by_role("button", name="Show the payload").click()
    expect(page.get_by_role("heading", name="Payload for the generated sample")).to_be_visible()
    payload = page.locator("main")
    expect(payload).to_contain_text("email")
    expect(payload).to_contain_text("address")
    path.step("sample-payload")

    # Activate.
    page.get_by_role("link", name="Next: activate").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Activate sync")
    page.get_by_role("button", name="Activate sync").click()
    expect(page.get_by_text("Sync with HubSpot is active.")).to_be_visible()
    expect(page.get_by_text("The mapping has no problems")).to_be_visible()
    path.step("activated")

    # 4. Send sample events (the overview's button) → the status page shows them synced.
    connection = Connection.objects.get(account=owner_account)
    nav.get_by_role("link", name="Overview").click()
    page.get_by_role("button", name="Send sample events").click()
    expect(page.get_by_role("status").filter(has_text="20 sample events sent.")).to_be_visible()
    path.step("samples-sent")
    nav.get_by_role("link", name="Sync status").click()
    section = page.locator(f"#connection-{connection.pk}")
    expect(section.locator(".last-sync")).to_have_text("Never")
    reload_until_synced(page, section)
    expect(section.locator(".last-sync time")).to_be_visible()
    expect(section.locator("[data-count=pending]")).to_have_text("0")
    expect(section.locator("[data-count=failed]")).to_have_text("0")
    people = len(hubspot.app.objects("contacts"))
    assert people >= 1
    expect(section.locator("table.sync-runs tbody tr").first.locator("td").nth(3)).to_have_text(str(people))
    path.step("status-synced")

    # 5. A record the CRM refuses: its reason on the failed-records page, fixed in the CRM, retried.
    refused = make_refused_record(hubspot, connection)
    page.reload()
    expect(page.get_by_role("status").filter(has_text="Some records could not be synced")).to_be_visible()
    expect(section.locator("[data-count=failed]")).to_have_text("1")
    path.step("status-failed")
    section.locator("[data-count=failed]").get_by_role("link", name="1").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Failed records")
    expect(page.locator("#failed-count")).to_have_text("1 failed record")
    row = page.locator("table.failed-records tbody tr")
    expect(row).to_have_count(1)
    expect(row.get_by_role("rowheader")).to_contain_text(refused)
    reason = OutboxItem.objects.get(state=OutboxState.FAILED).last_error
    assert reason
    expect(row.locator(".crm-message")).to_have_text(reason)
    expect(row.locator(".crm-message")).to_contain_text("external_ref")
    expect(row.locator(".error-kind")).to_be_visible()
    path.step("failed-records")
    first = hubspot.app.find_contact("first@example.com")
    hubspot.app.edit_in_ui("contacts", first["id"], {"external_ref": "R-1-old"})  # the owner fixes it in HubSpot
    row.get_by_role("button", name=re.compile("^Retry")).click()
    expect(page.get_by_role("status").filter(has_text="Queued again")).to_be_visible()
    path.step("retried")
    drain()
    page.reload()
    expect(page.locator("#failed-count")).to_have_text("0 failed records")
    assert hubspot.app.find_contact(refused) is not None

    # 6. Change the sync mode.
    nav.get_by_role("link", name="Sync status").click()
    section.get_by_role("link", name="Sync settings").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Sync settings: HubSpot")
    page.get_by_role("radio", name="Batch").check()
    path.step("sync-settings")
    page.get_by_role("button", name="Save sync settings").click()
    expect(page.get_by_role("status").filter(has_text="Sync settings for HubSpot saved.")).to_be_visible()
    expect(page.get_by_role("radio", name="Batch")).to_be_checked()
    connection.refresh_from_db()
    assert connection.sync_mode == SyncMode.BATCH
    path.step("sync-mode-saved")

    # 7. Disconnect, after a confirmation page.
    nav.get_by_role("link", name="CRM connection").click()
    page.get_by_role("link", name="Disconnect HubSpot").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Disconnect HubSpot?")
    assert Connection.objects.filter(account=owner_account).live().exists()  # nothing happens before the yes
    path.step("disconnect-confirm")
    page.get_by_role("button", name="Yes, disconnect").click()
    expect(page.get_by_role("status").filter(has_text="Disconnected HubSpot")).to_be_visible()
    expect(page.get_by_text("No CRM is connected yet.")).to_be_visible()
    path.step("disconnected")

    assert path.problems == [], "accessibility problems:\n" + "\n".join(path.problems)


def reload_until_synced(page, section, attempts: int = 10) -> None:
    """Work the queue (a burst worker) and reload, until the page shows a last successful sync."""
    for _ in range(attempts):
        drain()
        page.reload()
        if section.locator(".last-sync time").count():
            return
    raise AssertionError(f"the status page never showed a sync: {section.inner_text()}")
