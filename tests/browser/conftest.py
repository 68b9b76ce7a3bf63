"""Browser tests: Debian's Chromium driven by Playwright against pytest-django's live server.

- ``hubspot``: a HubSpot sandbox emulator over TLS whose OAuth app accepts the live server's
  callback, with this service pointed at it (``PUBLIC_BASE_URL``, ``CRM_ENDPOINTS``, ``CRM_CA_BUNDLE``).
- ``browser`` / ``page``: Chromium at ``/usr/bin/chromium`` (never a downloaded browser). The
  emulator's certificate comes from a CA made for this run, so Chromium is started with
  ``--ignore-certificate-errors`` for the consent page; this service itself checks the CA.
- ``shot(page, name)`` saves a full-page screenshot to ``test-artifacts/screenshots/``.
- ``run_worker()`` runs the real RQ worker class in burst mode in the test thread: in tests,
  jobs go to Redis (``REDIS_URL`` is set), and nothing else would work them off.
"""

from __future__ import annotations

import datetime as dt
import gc
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.db import connection as db_connection
from django.test import override_settings
from django.utils import timezone

from crmsync.models import Account, Membership, Role
from integrations.models import CLAIMABLE_STATES, OutboxItem
from integrations.sandbox.core import EmulatorServer, LocalCA
from integrations.sandbox.hubspot import HubSpotEmulator
from integrations.sync.redis import redis_client

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # The sandbox CRM's certificate is issued by a CA made for this test run (LocalCA).
    "--ignore-certificate-errors",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
CLIENT_ID, CLIENT_SECRET = "browser-client", "browser-client-secret"
OWNER_EMAIL, OWNER_PASSWORD = "owner@acme.example.com", "correct horse battery 42"
STAFF_EMAIL, STAFF_PASSWORD = "ops@capsule.example.com", "staple ops battery 42"
# Playwright waits (locators, expect) give up after this many milliseconds.
WAIT_MS = 15_000


@dataclass
class Sandbox:
    app: HubSpotEmulator
    server: EmulatorServer
    unique_ref: bool = False  # the unique ``external_ref`` property exists (make_refused_record)


@pytest.fixture
def hubspot(live_server, tmp_path) -> Iterator[Sandbox]:
    ca = LocalCA(tmp_path / "ca")
    callback = f"{live_server.url}/oauth/callback/hubspot/"
    app = HubSpotEmulator(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, redirect_uris=[callback])
    server = EmulatorServer(app, tls=ca).start()
    endpoints = {
        "hubspot": {
            "api_url": server.url,
            "oauth_url": server.url,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
        },
    }
    with override_settings(
        PUBLIC_BASE_URL=live_server.url,
        CRM_ENDPOINTS=endpoints,
        CRM_CA_BUNDLE=str(ca.ca_path),
        SYNC_RETRY_BASE_SECONDS=1,
        SYNC_RETRY_MAX_SECONDS=2,
        SYNC_COALESCE_SECONDS=0,
    ):
        redis_client().flushdb()
        try:
            yield Sandbox(app, server)
        finally:
            server.stop()
            redis_client().flushdb()


@pytest.fixture(scope="session")
def chromium() -> Iterator:
    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        pytest.fail(
            f"Chromium is not installed at {CHROMIUM}. Install Debian's package: "
            "apt-get install -y chromium (never `playwright install`).",
            pytrace=False,
        )
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an asyncio loop on this thread; the ORM calls the tests make
    # between browser steps are ordinary blocking calls, which Django must be told to allow.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            try:
                yield browser
            finally:
                browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def page(chromium) -> Iterator:
    context = chromium.new_context(viewport={"width": 1280, "height": 900}, ignore_https_errors=True)
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    try:
        yield page
    finally:
        context.close()
        gc.collect()  # free the live server's request cycles (lazy users) while the test database exists


@pytest.fixture
def shot(request):
    """``shot(page, "step")`` saves test-artifacts/screenshots/<test>--<step>.png and returns the path."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    test_name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)

    def take(page, name: str, *, full_page: bool = True) -> Path:
        path = SCREENSHOTS / f"{test_name}--{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        return path

    return take


@pytest.fixture
def owner_account(db) -> Account:
    account = Account.objects.create(name="Acme Capsules", slug="acme-capsules")
    user = get_user_model().objects.create_user(username=OWNER_EMAIL, email=OWNER_EMAIL, password=OWNER_PASSWORD)
    Membership.objects.create(account=account, user=user, role=Role.OWNER)
    return account


@pytest.fixture
def staff_user(db):
    return get_user_model().objects.create_user(
        username=STAFF_EMAIL, email=STAFF_EMAIL, password=STAFF_PASSWORD, is_staff=True, is_superuser=True
    )


def sign_in(page, base_url: str, email: str, password: str) -> None:
    """The allauth sign-in page, as a person uses it: e-mail, password, the button."""
    page.goto(f"{base_url}/accounts/login/")
    page.get_by_label(re.compile(r"^e-?mail", re.IGNORECASE)).fill(email)
    page.get_by_label(re.compile(r"^password", re.IGNORECASE)).fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()


def run_worker() -> None:
    """The real worker class, in burst mode: runs every queued job, then returns."""
    from integrations.sync.worker import SyncWorker

    SyncWorker(["realtime", "default", "batch"], connection=redis_client()).work(burst=True, with_scheduler=False)
    db_connection.close_if_unusable_or_obsolete()


def drain(rounds: int = 10) -> None:
    """Worker bursts until nothing is due; scheduled retries are made due at once."""
    from integrations.sync.jobs import sweep

    for _ in range(rounds):
        run_worker()
        OutboxItem.objects.filter(state__in=CLAIMABLE_STATES).update(next_attempt_at=timezone.now())
        for key in redis_client().scan_iter("rl:*:blocked"):
            redis_client().delete(key)
        if not OutboxItem.objects.filter(state__in=CLAIMABLE_STATES).exists():
            return
        sweep()


def capsule_event(event_id: str, email: str, **attributes: str) -> dict:
    """One API event body for ``email`` (with prospect ``attributes``), as a capsule would send it."""
    return {
        "event_id": event_id,
        "type": "capsule_viewed",
        "occurred_at": (timezone.now() - dt.timedelta(seconds=5)).isoformat(),
        "capsule": {"id": "cap_1", "title": "Pricing tour", "url": "https://capsules.example.com/c/1"},
        "prospect": {
            "email": email,
            "first_name": "Ann",
            "last_name": "Lee",
            "company": "Northwind",
            "consent": {"granted": True, "source": "form"},
            "attributes": attributes,
        },
        "data": {},
    }


def ingest(account: Account, *events: dict) -> None:
    from crmsync.api.schemas import validate_event
    from crmsync.ingest import ingest_events

    ingest_events(account, [validate_event(body) for body in events], actor_label="browser test")


def make_refused_record(hubspot: Sandbox, connection, prefix: str = "") -> str:
    """A person HubSpot refuses (a unique property already taken); returns the refused e-mail.

    The CRM gets a unique ``external_ref`` property and the mapping a row writing the prospect's
    ``ref`` attribute into it; two prospects then claim the same reference.
    """
    from mapping.models import FieldMapping
    from mapping.schema import refresh_schema

    if not hubspot.unique_ref:
        hubspot.app.add_custom_property("contacts", "external_ref", "string", "text", hasUniqueValue=True)
        hubspot.unique_ref = True
    refresh_schema(connection, connection.record_type)
    FieldMapping.objects.get_or_create(
        connection=connection,
        source_key="attr.ref",
        target_field="external_ref",
        defaults={"order": 99, "target_object": connection.record_type},
    )
    ingest(connection.account, capsule_event(f"{prefix}ref-1", f"{prefix}first@example.com", ref=f"{prefix}R-1"))
    drain()
    refused = f"{prefix}clash@example.com"
    ingest(connection.account, capsule_event(f"{prefix}ref-2", refused, ref=f"{prefix}R-1"))
    drain()
    return refused


def connect_hubspot(hubspot: Sandbox, account: Account):
    """An active, real-time HubSpot connection made through the real connect path (a private-app token)."""
    from integrations.connecting import connect
    from integrations.connector import TokenSet
    from integrations.models import AuthKind, SyncMode

    tokens = TokenSet(access_token=hubspot.app.issue_private_app_token())
    connection = connect(account, "hubspot", tokens, auth_kind=AuthKind.PRIVATE_APP_TOKEN, actor_label="browser test")
    connection.sync_mode, connection.activated_at = SyncMode.REALTIME, timezone.now()
    connection.save()
    return connection
