"""Fixtures for tests that talk to the Close sandbox emulator over real HTTPS (loopback).

Import them into a test module with ``from tests.integrations.close_fixtures import *  # noqa: F403``.

- ``close_ca`` (module scope): the shared ``sandbox_ca`` when tests/integrations/conftest.py
  offers it, else a CA of its own.
- ``close_server`` (module scope): one running CloseEmulator per module over TLS, with
  ``CRM_CA_BUNDLE`` trusting it and the Close entry of ``CRM_ENDPOINTS`` pointing API and OAuth at
  it (the API override is the bare host: the connector adds ``/api/v1``). Its OAuth app
  (``CLOSE_CLIENT_ID`` / ``CLOSE_CLIENT_SECRET``) accepts this service's callback URL. The rate
  limit is raised so tests are not throttled (make your own emulator to test it).
- ``close_emulator`` (function scope): the same emulator reset to an empty organisation
  (records, custom fields, webhooks, events, counters, faults), refresh-token rotation on, the
  OAuth counters at zero; the connector's process caches (custom fields, activity type) dropped.
- ``close_key``: a fresh API key; ``close_connector``: a CloseConnector using it.
- ``make_close_connection`` (needs the database): ``make(account, kind="api_key" | "oauth",
  expires_in=timedelta | None) -> Connection`` through ``integrations.connecting.connect``.
- ``close_spec_check``: validates a ``requests.Response`` against the vendor spec.

Typical use::

    def test_something(close_emulator, close_connector):
        close_connector.upsert_people("contact", [PersonInput("k1", "ann@example.com", {...})])
        assert close_emulator.find_contact("ann@example.com")["id"]
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
from integrations.sandbox.close import CloseEmulator
from integrations.sandbox.core import EmulatorServer, LocalCA

CLOSE_CLIENT_ID = "capsule-test-close-client"
CLOSE_CLIENT_SECRET = "capsule-test-close-secret"
CLOSE_SPEC = "close/close-openapi.yml"

__all__ = [
    "CLOSE_CLIENT_ID",
    "CLOSE_CLIENT_SECRET",
    "CLOSE_SPEC",
    "close_ca",
    "close_connector",
    "close_emulator",
    "close_key",
    "close_server",
    "make_close_connection",
]


@pytest.fixture(scope="module")
def close_ca(request, tmp_path_factory) -> LocalCA:
    try:
        return request.getfixturevalue("sandbox_ca")
    except pytest.FixtureLookupError:
        return LocalCA(tmp_path_factory.mktemp("close-ca"))


@pytest.fixture(scope="module")
def close_server(close_ca: LocalCA) -> Iterator[CloseEmulator]:
    callback = settings.PUBLIC_BASE_URL + reverse("integrations:oauth_callback", kwargs={"provider": "close"})
    app = CloseEmulator(
        client_id=CLOSE_CLIENT_ID, client_secret=CLOSE_CLIENT_SECRET, redirect_uris=[callback], rate_limit=1000
    )
    server = EmulatorServer(app, tls=close_ca).start()
    endpoints = {
        **settings.CRM_ENDPOINTS,
        "close": {
            "api_url": server.url,
            "oauth_url": server.url,
            "client_id": CLOSE_CLIENT_ID,
            "client_secret": CLOSE_CLIENT_SECRET,
        },
    }
    with override_settings(CRM_ENDPOINTS=endpoints, CRM_CA_BUNDLE=str(close_ca.ca_path)):
        yield app
    server.stop()


@pytest.fixture
def close_emulator(close_server: CloseEmulator) -> CloseEmulator:
    from integrations.providers.close.keyed import forget_types
    from integrations.providers.close.schema import forget_all

    app = close_server
    app.reset()
    with app.oauth.lock:
        app.oauth.rotate_refresh_tokens = True
        app.oauth.fail_next_refresh = None
        app.oauth.refresh_calls = 0
        app.oauth.token_calls = 0
    forget_all()
    forget_types()
    return app


@pytest.fixture
def close_key(close_emulator: CloseEmulator) -> str:
    return close_emulator.issue_api_key()


@pytest.fixture
def close_connector(close_key: str):
    from integrations.providers.close.connector import CloseConnector

    return CloseConnector(ConnectionCredentials(access_token=close_key))


@pytest.fixture
def make_close_connection(close_emulator: CloseEmulator, db) -> Callable[..., Connection]:
    from integrations.connecting import connect
    from integrations.connector import TokenSet

    app = close_emulator

    def make(account, kind: str = "api_key", expires_in: dt.timedelta | None = None) -> Connection:
        if kind == "api_key":
            tokens = TokenSet(access_token=app.issue_api_key())
            return connect(account, "close", tokens, auth_kind=AuthKind.API_KEY, actor_label="test fixture")
        issued = app.issue_oauth_token()
        connection = connect(
            account,
            "close",
            TokenSet(access_token=issued.access_token, refresh_token=issued.refresh_token),
            auth_kind=AuthKind.OAUTH,
            actor_label="test fixture",
        )
        if expires_in is not None:
            with app.oauth.lock:
                issued.expires_at = time.time() + expires_in.total_seconds()
            connection.token_expires_at = timezone.now() + expires_in
            connection.save(update_fields=["token_expires_at"])
        return connection

    return make
