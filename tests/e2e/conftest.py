"""End-to-end sync fixtures: one sandbox CRM per test, parametrised over every provider.

``crm`` is a running emulator of one provider with this service pointed at it; ``crm.connect``
makes an activated, real-time connection through the real connect path (identity check,
standard mapping). ``drain()`` runs the real RQ worker class in burst mode until the outbox has
nothing due, so every test exercises: API ingest → outbox → kick (Redis) → worker → connector →
HTTP → emulator.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.db import connection as db_connection
from django.test import override_settings
from django.utils import timezone

from crmsync.models import Account
from integrations import registry
from integrations.connecting import connect
from integrations.connector import TokenSet
from integrations.models import (
    CLAIMABLE_STATES,
    AuthKind,
    Connection,
    OutboxItem,
    OutboxState,
    SyncMode,
)
from integrations.registry import AUTH_OAUTH, get_provider
from integrations.sandbox.core import EmulatorServer, LocalCA
from integrations.sandbox.probes import PROBES, Probe
from integrations.sync.redis import redis_client

PROVIDERS = sorted(PROBES)
OAUTH_PROVIDERS = [name for name in PROVIDERS if AUTH_OAUTH in get_provider(name).auth_kinds]
CLIENT_ID, CLIENT_SECRET = "e2e-client", "e2e-client-secret"


def _hubspot(ca: LocalCA):
    from integrations.sandbox.hubspot import HubSpotEmulator

    return HubSpotEmulator(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, search_limit=1000), None


def _salesforce(ca: LocalCA):
    from integrations.sandbox.salesforce import SalesforceEmulator

    return SalesforceEmulator(client_id=CLIENT_ID, client_secret=CLIENT_SECRET), ca


def _pipedrive(ca: LocalCA):
    from integrations.sandbox.pipedrive import PipedriveEmulator

    # Limits as on Pipedrive's higher plans, so the engine's limiter (the spec's 80 per 2 s) paces.
    return PipedriveEmulator(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, oauth_limit=400, api_token_limit=400), ca


def _zoho(ca: LocalCA):
    from integrations.sandbox.zoho import ZohoEmulator

    return ZohoEmulator(client_id=CLIENT_ID, client_secret=CLIENT_SECRET), ca


def _close(ca: LocalCA):
    from integrations.sandbox.close import CloseEmulator

    return CloseEmulator(client_id=CLIENT_ID, client_secret=CLIENT_SECRET), ca


def _copper(ca: LocalCA):
    from integrations.sandbox.copper import CopperEmulator

    # Ten times Copper's published 180/min, with the provider's limit raised to match (see
    # FAST_LIMITS): the end-to-end behaviours are the same, the run takes seconds, not minutes.
    # Pacing at the real limit is tested in tests/integrations/test_copper_connector.py.
    return CopperEmulator(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, rate_limit=1800), ca


def _freshsales(ca: LocalCA):
    from integrations.sandbox.freshsales import FreshsalesEmulator

    # Ten times the published quotas, matched in FAST_LIMITS (pacing at the real ones is tested in
    # tests/integrations/test_freshsales_connector.py).
    return FreshsalesEmulator(hourly_limit=50_000, per_minute_limit=4000), ca


def _dynamics(ca: LocalCA):
    from integrations.sandbox.dynamics import DynamicsEmulator

    return DynamicsEmulator(client_id=CLIENT_ID, client_secret=CLIENT_SECRET), ca


EMULATORS = {
    "hubspot": _hubspot,
    "salesforce": _salesforce,
    "pipedrive": _pipedrive,
    "zoho": _zoho,
    "close": _close,
    "copper": _copper,
    "freshsales": _freshsales,
    "dynamics": _dynamics,
}


@dataclass
class Sandbox:
    provider: str
    app: Any
    server: EmulatorServer
    probe: Probe
    connections: list[Connection] = field(default_factory=list)

    def connect(
        self, account: Account, *, mode: str = SyncMode.REALTIME, oauth: bool = False, **settings: Any
    ) -> Connection:
        if oauth:
            issued = self.app.oauth.issue(
                CLIENT_ID, ["api", "crm.objects.contacts.write"], account_ref=str(getattr(self.app, "hub_id", "org"))
            )
            tokens = TokenSet(
                access_token=issued.access_token,
                refresh_token=issued.refresh_token,
                expires_at=timezone.now() + dt.timedelta(hours=1),
                api_base_url=self.api_base(),
            )
            connection = connect(account, self.provider, tokens, auth_kind=AuthKind.OAUTH, actor_label="e2e")
        else:
            tokens = TokenSet(access_token=self.probe.token(self.app), api_base_url=self.api_base())
            connection = connect(
                account, self.provider, tokens, auth_kind=AuthKind.PRIVATE_APP_TOKEN, actor_label="e2e"
            )
        for name, value in {"sync_mode": mode, "activated_at": timezone.now(), **settings}.items():
            setattr(connection, name, value)
        connection.save()
        self.connections.append(connection)
        return connection

    def api_base(self) -> str | None:
        return self.server.url if self.provider == "salesforce" else None

    def people(self) -> list[tuple[str, str]]:
        return self.probe.people(self.app)

    def emails(self) -> list[str]:
        return sorted(email for _id, email in self.people())

    def engagement_keys(self) -> list[str]:
        return self.probe.engagement_keys(self.app)


# Providers whose published limits would make these tests take minutes: (requests, window) used
# instead, matched by their sandbox's own limit in EMULATORS.
FAST_LIMITS = {"copper": (1800, 60.0), "freshsales": (4000, 60.0)}


@contextmanager
def sandbox(provider: str, tmp_path) -> Iterator[Sandbox]:
    ca = LocalCA(tmp_path / "ca")
    app, tls = EMULATORS[provider](ca)
    server = EmulatorServer(app, tls=tls).start()
    endpoints = {
        provider: {
            "api_url": server.url,
            "oauth_url": server.url,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
        }
    }
    spec = get_provider(provider)
    if provider in FAST_LIMITS:
        requests_, window = FAST_LIMITS[provider]
        faster = dataclasses.replace(
            spec, rate_limit=dataclasses.replace(spec.rate_limit, requests=requests_, window_seconds=window)
        )
        registry.providers()[provider] = faster
        spec.connector_class().spec = faster
    # Fast retries so a test can drain a storm; the policy itself is tested on its own.
    with override_settings(
        CRM_ENDPOINTS=endpoints,
        CRM_CA_BUNDLE=str(ca.ca_path),
        SYNC_RETRY_BASE_SECONDS=1,
        SYNC_RETRY_MAX_SECONDS=2,
        SYNC_COALESCE_SECONDS=0,
    ):
        redis_client().flushdb()
        try:
            yield Sandbox(provider, app, server, PROBES[provider])
        finally:
            server.stop()
            redis_client().flushdb()
            if provider in FAST_LIMITS:
                registry.providers()[provider] = spec
                spec.connector_class().spec = spec


@pytest.fixture(params=PROVIDERS)
def crm(request, tmp_path) -> Iterator[Sandbox]:
    with sandbox(request.param, tmp_path) as running:
        yield running


@pytest.fixture(params=OAUTH_PROVIDERS)
def oauth_crm(request, tmp_path) -> Iterator[Sandbox]:
    """The sandbox of each provider that connects with OAuth (refresh tokens and all)."""
    with sandbox(request.param, tmp_path) as running:
        yield running


def due_now() -> None:
    """Let time pass: retry-scheduled rows become due, and the shared limiter forgets blocks."""
    OutboxItem.objects.filter(state__in=CLAIMABLE_STATES).update(next_attempt_at=timezone.now())
    client = redis_client()
    for key in client.scan_iter("rl:*:blocked"):
        client.delete(key)


def run_worker() -> None:
    """The real worker class, in burst mode: runs every queued job, then returns."""
    from integrations.sync.worker import SyncWorker

    SyncWorker(["realtime", "default", "batch"], connection=redis_client()).work(burst=True, with_scheduler=False)
    db_connection.close_if_unusable_or_obsolete()


def drain(rounds: int = 20) -> None:
    """Work until nothing is due: worker bursts, with the sweep re-kicking retried work."""
    from integrations.sync.jobs import sweep

    for _ in range(rounds):
        run_worker()
        due_now()
        if not OutboxItem.objects.filter(state__in=[*CLAIMABLE_STATES, OutboxState.IN_FLIGHT]).exists():
            return
        sweep()
    pending = list(OutboxItem.objects.exclude(state__in=[OutboxState.DONE]).values("kind", "state", "last_error"))
    raise AssertionError(f"the outbox did not drain: {pending[:5]}")


def event(event_id: str, email: str, kind: str = "capsule_viewed", **extra: Any) -> dict:
    body = {
        "event_id": event_id,
        "type": kind,
        "occurred_at": (timezone.now() - dt.timedelta(seconds=5)).isoformat(),
        "capsule": {"id": "cap_1", "title": "Pricing tour", "url": "https://capsules.example.com/c/1"},
        "prospect": {
            "email": email,
            "first_name": extra.pop("first_name", "Ann"),
            "last_name": extra.pop("last_name", "Lee"),
            "company": extra.pop("company", "Northwind"),
        },
        "data": extra.pop("data", {}),
    }
    body["prospect"].update(extra)
    return body


@pytest.fixture
def post_events(client, api_key):
    def post(*events: dict) -> dict:
        response = client.post(
            "/api/v1/events",
            {"events": list(events)},
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {api_key}",
        )
        assert response.status_code == 200, response.content
        return response.json()

    return post
