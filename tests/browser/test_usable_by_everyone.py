"""Keyboard only, a phone-width screen, and the sample-events button's guards, in Chromium."""

from __future__ import annotations

import re

import pytest
import redis
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import override_settings
from playwright.sync_api import expect

from crmsync.models import AuditEntry, Event, Membership, Role
from tests.browser.a11y import accessibility_problems
from tests.browser.conftest import OWNER_EMAIL, OWNER_PASSWORD, connect_hubspot, drain, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# What the focused element looks like: an outline (or a focus ring drawn as a box shadow).
FOCUS_STYLE = """
() => {
  const el = document.activeElement;
  const style = getComputedStyle(el);
  return {
    text: (el.innerText || el.value || el.getAttribute("aria-label") || "").trim(),
    tag: el.tagName.toLowerCase(),
    outline: style.outlineStyle !== "none" && parseFloat(style.outlineWidth) > 0,
    shadow: style.boxShadow !== "none",
  };
}
"""


def tab_to(page, name: str, limit: int = 60) -> list[dict]:
    """Press Tab until the focused element's text is ``name``; returns every stop on the way."""
    stops = []
    for _ in range(limit):
        page.keyboard.press("Tab")
        focused = page.evaluate(FOCUS_STYLE)
        stops.append(focused)
        if focused["text"] == name:
            return stops
    raise AssertionError(f"Tab never reached {name!r}; stops: {[stop['text'] for stop in stops]}")


def test_keyboard_alone_reaches_the_main_actions_with_a_visible_focus(live_server, hubspot, owner_account, page, shot):
    # Sign in with the keyboard: type, Tab, type, Enter.
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label(re.compile(r"^e-?mail", re.IGNORECASE)).focus()
    page.keyboard.type(OWNER_EMAIL)
    for _ in range(5):  # past any help link between the two fields
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement.type") == "password":
            break
    page.keyboard.type(OWNER_PASSWORD)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text("Acme Capsules")

    # The first Tab stop is the skip link, and it is visible when focused; Enter moves focus to main.
    page.keyboard.press("Tab")
    first = page.evaluate(FOCUS_STYLE)
    assert first["text"] == "Skip to main content"
    expect(page.get_by_role("link", name="Skip to main content")).to_be_in_viewport()
    page.keyboard.press("Enter")
    assert page.evaluate("() => document.activeElement.id") == "main"

    # From main, Tab reaches the overview's main action; every stop shows where focus is.
    stops = tab_to(page, "Send sample events")
    unmarked = [stop for stop in stops if not (stop["outline"] or stop["shadow"])]
    assert unmarked == [], f"focus is invisible on: {unmarked}"
    shot(page, "focus-send-sample-events", full_page=False)
    page.keyboard.press("Enter")
    expect(page.get_by_role("status").filter(has_text="20 sample events sent.")).to_be_visible()

    # The CRM page: Tab reaches "Connect HubSpot", focus visible; Enter starts the consent flow.
    page.get_by_role("navigation", name="Acme Capsules").get_by_role("link", name="CRM connection").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text("CRM connection")
    stops = tab_to(page, "Connect HubSpot")
    assert stops[-1]["outline"] or stops[-1]["shadow"]
    shot(page, "focus-connect-hubspot", full_page=False)
    page.keyboard.press("Enter")
    expect(page.get_by_role("button", name="Allow")).to_be_visible()


def test_the_status_page_fits_a_phone(live_server, hubspot, owner_account, chromium, shot):
    connection = connect_hubspot(hubspot, owner_account)
    from crmsync.samples import send_sample_events

    send_sample_events(owner_account, 20, actor_label="browser test", seed=3)
    drain()
    context = chromium.new_context(
        viewport={"width": 375, "height": 812}, is_mobile=True, has_touch=True, device_scale_factor=2
    )
    try:
        page = context.new_page()
        sign_in(page, live_server.url, OWNER_EMAIL, OWNER_PASSWORD)
        page.goto(f"{live_server.url}/a/{owner_account.slug}/sync/")
        section = page.locator(f"#connection-{connection.pk}")
        expect(section.locator(".last-sync time")).to_be_visible()
        shot(page, "phone-375-sync-status")
        width = page.evaluate("() => document.documentElement.scrollWidth")
        assert width <= 375, f"the page scrolls sideways on a phone: {width}px wide"
        assert accessibility_problems(page) == []
        for path in ("", "crm/", f"mapping/{connection.pk}/map/", "sync/failed/"):
            page.goto(f"{live_server.url}/a/{owner_account.slug}/{path}")
            width = page.evaluate("() => document.documentElement.scrollWidth")
            assert width <= 375, f"/{path} scrolls sideways on a phone: {width}px wide"
    finally:
        context.close()


def test_sample_events_button_is_for_admins_audited_and_rate_limited(live_server, owner_account, page, shot):
    # The limiter's counts in a Redis database of their own: other suites flush the test database
    # (tests/e2e), and a flush between two presses would forget them.
    redis_url = re.sub(r"/\d+$", "", settings.REDIS_URL) + "/13"
    redis.Redis.from_url(redis_url).flushdb()
    with override_settings(REDIS_URL=redis_url):
        _sample_events_button(live_server, owner_account, page, shot)


def _sample_events_button(live_server, owner_account, page, shot) -> None:
    viewer = get_user_model().objects.create_user(
        username="viewer@acme.example.com", email="viewer@acme.example.com", password=OWNER_PASSWORD
    )
    Membership.objects.create(account=owner_account, user=viewer, role=Role.VIEWER)

    sign_in(page, live_server.url, OWNER_EMAIL, OWNER_PASSWORD)
    button = page.get_by_role("button", name="Send sample events")
    for _ in range(3):
        with page.expect_navigation():
            button.click()
        expect(page.get_by_role("status").filter(has_text="20 sample events sent.")).to_be_visible()
    assert Event.objects.filter(account=owner_account).count() == 60
    with page.expect_navigation():
        button.click()  # a fourth press within the minute: refused, nothing ingested
    expect(page.get_by_role("alert").filter(has_text="Sample events were sent a moment ago")).to_be_visible()
    shot(page, "rate-limited")
    assert Event.objects.filter(account=owner_account).count() == 60
    entries = AuditEntry.objects.filter(action="sample_events.sent", account=owner_account)
    assert entries.count() == 3 and {entry.actor_label for entry in entries} == {OWNER_EMAIL}

    # A viewer sees no button, and the endpoint refuses them.
    page.context.clear_cookies()
    sign_in(page, live_server.url, "viewer@acme.example.com", OWNER_PASSWORD)
    expect(page.get_by_role("heading", level=1)).to_have_text("Acme Capsules")
    expect(page.get_by_role("button", name="Send sample events")).to_have_count(0)
    token = page.context.cookies()
    csrf = next(cookie["value"] for cookie in token if cookie["name"] == "csrftoken")
    answer = page.request.post(f"{live_server.url}/a/{owner_account.slug}/samples/", headers={"X-CSRFToken": csrf})
    assert answer.status == 403
    assert Event.objects.filter(account=owner_account).count() == 60


def test_the_accessibility_check_finds_unlabelled_controls_and_skipped_headings(page):
    page.set_content(
        """<main><h1>Title</h1><h3>Skipped a level</h3>
        <label for="named">Name</label><input id="named">
        <input name="nameless"><select name="choice"></select><button></button>
        <input type="hidden" name="token"><input aria-label="Search" name="q"></main>"""
    )
    problems = accessibility_problems(page)
    assert len(problems) == 4, problems
    assert any("input[name=nameless] has no label" in problem for problem in problems)
    assert any("select[name=choice] has no label" in problem for problem in problems)
    assert any("button has no text" in problem for problem in problems)
    assert any("h1 is followed by h3" in problem for problem in problems)
