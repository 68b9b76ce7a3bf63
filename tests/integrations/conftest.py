"""Shared fixtures for tests that talk to CRM emulators over real HTTP (loopback).

Each CRM has its own self-contained block below; add a CRM by adding a block, not by changing
another's. Shared:

- ``sandbox_ca`` (session scope): the local CA every emulator's TLS certificate comes from.

HubSpot (integrations.sandbox.hubspot)
--------------------------------------
- ``hubspot_server`` (module scope): one running HubSpotEmulator per test module, over https
  (``sandbox_ca``; ``settings.CRM_CA_BUNDLE`` trusts it), with the
  HubSpot entry of ``settings.CRM_ENDPOINTS`` pointing API and OAuth at it and the sandbox's
  OAuth client (``HUBSPOT_CLIENT_ID`` / ``HUBSPOT_CLIENT_SECRET``) configured. Its OAuth app
  accepts this service's callback URL as redirect URI. The search limit is raised to 1,000/s so
  tests that page through search are not throttled (make your own emulator to test that limit).
- ``hubspot_emulator`` (function scope): the same emulator, reset to an empty portal: records, custom
  properties, counters, request log, faults, OAuth counters (``oauth.refresh_calls``,
  ``oauth.token_calls``), ``oauth.fail_next_refresh``, refresh-token rotation and scope
  enforcement (both off) and ``search_tie_order`` ("id"); a test may change them for itself. Issued
  tokens stay valid. Request this one in tests; it also forgets which key properties the
  connector has already checked.
- ``hubspot_token``: a fresh private-app token on that portal (never expires).
- ``hubspot_connector``: a HubSpotConnector using ``hubspot_token``.
- ``make_hubspot_connection`` (needs the database): ``make(account, kind="private_app" | "oauth",
  expires_in=timedelta | None) -> Connection``. Private-app connections are made through
  ``integrations.connecting.connect`` (so the identity call runs). OAuth connections carry a
  refresh token from the emulator and, with ``expires_in``, an access token that the emulator
  and the connection both consider to expire then (e.g. ``timedelta(minutes=1)`` is inside the
  refresh-ahead window of integrations.credentials).

Typical use::

    def test_something(hubspot_emulator, hubspot_connector):
        hubspot_connector.upsert_people("contact", [...])
        assert hubspot_emulator.find_contact("a@example.com")["id"]
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator

import pytest
from django.conf import settings
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from integrations.connector import ConnectionCredentials
from integrations.models import AuthKind, Connection
from integrations.sandbox.core import EmulatorServer, LocalCA
from integrations.sandbox.hubspot import HubSpotEmulator

HUBSPOT_CLIENT_ID = "capsule-test-client"
HUBSPOT_CLIENT_SECRET = "capsule-test-client-secret"


# -- shared by every emulator ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def sandbox_ca(tmp_path_factory) -> LocalCA:
    """One local certificate authority for every emulator of the test session.

    Emulators are served over TLS like the real APIs (oauthlib refuses an http authorize URL,
    and Salesforce clients only speak https). A fixture that starts an emulator overrides
    ``CRM_CA_BUNDLE`` with ``str(sandbox_ca.ca_path)``, the same value for every CRM, so the HTTP
    seam trusts all of them at once. Your own ``requests`` calls need ``verify=str(sandbox_ca.ca_path)``.
    """
    return LocalCA(tmp_path_factory.mktemp("sandbox-ca"))


# -- HubSpot ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hubspot_server(sandbox_ca: LocalCA) -> Iterator[HubSpotEmulator]:
    callback = settings.PUBLIC_BASE_URL + reverse("integrations:oauth_callback", kwargs={"provider": "hubspot"})
    app = HubSpotEmulator(
        client_id=HUBSPOT_CLIENT_ID,
        client_secret=HUBSPOT_CLIENT_SECRET,
        redirect_uris=[callback],
        search_limit=1000,
    )
    server = EmulatorServer(app, tls=sandbox_ca).start()
    endpoints = {
        **settings.CRM_ENDPOINTS,
        "hubspot": {
            "api_url": server.url,
            "oauth_url": server.url,
            "client_id": HUBSPOT_CLIENT_ID,
            "client_secret": HUBSPOT_CLIENT_SECRET,
        },
    }
    with override_settings(CRM_ENDPOINTS=endpoints, CRM_CA_BUNDLE=str(sandbox_ca.ca_path)):
        yield app
    server.stop()


@pytest.fixture
def hubspot_emulator(hubspot_server: HubSpotEmulator) -> HubSpotEmulator:
    from integrations.providers.hubspot.keyed import forget_key_properties

    app = hubspot_server
    app.reset()
    app.enforce_scopes = False
    app.search_tie_order = "id"
    with app.oauth.lock:
        app.oauth.refresh_calls = 0
        app.oauth.token_calls = 0
        app.oauth.fail_next_refresh = None
        app.oauth.rotate_refresh_tokens = False
    forget_key_properties()
    return app


@pytest.fixture
def hubspot_token(hubspot_emulator: HubSpotEmulator) -> str:
    return hubspot_emulator.issue_private_app_token()


@pytest.fixture
def hubspot_connector(hubspot_token: str):
    from integrations.providers.hubspot.connector import HubSpotConnector

    return HubSpotConnector(ConnectionCredentials(access_token=hubspot_token))


@pytest.fixture
def make_hubspot_connection(hubspot_emulator: HubSpotEmulator, db) -> Callable[..., Connection]:
    from integrations.connecting import connect
    from integrations.connector import TokenSet

    hubspot = hubspot_emulator

    def make(account, kind: str = "private_app", expires_in: dt.timedelta | None = None) -> Connection:
        if kind == "private_app":
            token = hubspot.issue_private_app_token()
            return connect(
                account,
                "hubspot",
                TokenSet(access_token=token),
                auth_kind=AuthKind.PRIVATE_APP_TOKEN,
                actor_label="test fixture",
            )
        issued = hubspot.issue_oauth_token()
        connection = connect(
            account,
            "hubspot",
            TokenSet(access_token=issued.access_token, refresh_token=issued.refresh_token),
            auth_kind=AuthKind.OAUTH,
            actor_label="test fixture",
        )
        if expires_in is not None:
            with hubspot.oauth.lock:
                issued.expires_at = time.time() + expires_in.total_seconds()
            connection.token_expires_at = timezone.now() + expires_in
            connection.save(update_fields=["token_expires_at"])
        return connection

    return make
