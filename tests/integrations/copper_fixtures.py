"""Fixtures for tests that talk to the Copper sandbox emulator over real HTTPS (loopback).

Import them into a test module with ``from tests.integrations.copper_fixtures import *  # noqa``.

- ``copper_ca`` (module scope): the local CA of the emulator's certificate — the shared
  ``sandbox_ca`` when tests/integrations/conftest.py offers it, else a CA of its own.
- ``copper_server`` (module scope): one running CopperEmulator per test module over TLS, with
  ``CRM_CA_BUNDLE`` trusting it and the Copper entry of ``CRM_ENDPOINTS`` pointing API and OAuth
  at it (the API URL is the bare host, as an operator may write ``COPPER_API_URL``; the connector
  adds ``/developer_api/v1``). Its partner OAuth app (``COPPER_CLIENT_ID``/``_SECRET``) accepts
  this service's callback URL. Webhook targets may be plain http (loopback receivers).
- ``copper_emulator`` (function scope): the same emulator reset to an empty account — records,
  custom fields, webhooks, counters, faults, the rate window — with the limit back at 180 a
  minute, redirect code delivery and the OAuth counters at zero. Users, keys and tokens stay.
- ``copper_key``: a fresh API key of the admin user and that user's e-mail, as ``(key, email)``.
- ``make_copper_connector(key=None, email=None, record_type="contact", **settings)``: a
  CopperConnector with API-key credentials (``email=""`` gives an OAuth-style Bearer connector).
- ``copper_connector``: ``make_copper_connector()`` for People.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.conf import settings
from django.test import override_settings
from django.urls import reverse

from integrations.connector import ConnectionCredentials
from integrations.sandbox.copper import CopperEmulator
from integrations.sandbox.core import EmulatorServer, LocalCA

COPPER_CLIENT_ID = "capsule-test-copper-client"
COPPER_CLIENT_SECRET = "capsule-test-copper-secret"

__all__ = [
    "COPPER_CLIENT_ID",
    "COPPER_CLIENT_SECRET",
    "copper_ca",
    "copper_connector",
    "copper_emulator",
    "copper_key",
    "copper_server",
    "make_copper_connector",
]


@pytest.fixture(scope="module")
def copper_ca(request, tmp_path_factory) -> LocalCA:
    try:
        return request.getfixturevalue("sandbox_ca")
    except pytest.FixtureLookupError:
        return LocalCA(tmp_path_factory.mktemp("copper-ca"))


@pytest.fixture(scope="module")
def copper_server(copper_ca: LocalCA) -> Iterator[CopperEmulator]:
    callback = settings.PUBLIC_BASE_URL + reverse("integrations:oauth_callback", kwargs={"provider": "copper"})
    app = CopperEmulator(
        client_id=COPPER_CLIENT_ID,
        client_secret=COPPER_CLIENT_SECRET,
        redirect_uris=[callback],
        allow_http_targets=True,
    )
    server = EmulatorServer(app, tls=copper_ca).start()
    endpoints = {
        **settings.CRM_ENDPOINTS,
        "copper": {
            "api_url": server.url,
            "oauth_url": server.url,
            "client_id": COPPER_CLIENT_ID,
            "client_secret": COPPER_CLIENT_SECRET,
        },
    }
    with override_settings(CRM_ENDPOINTS=endpoints, CRM_CA_BUNDLE=str(copper_ca.ca_path)):
        yield app
    server.stop()


@pytest.fixture
def copper_emulator(copper_server: CopperEmulator) -> CopperEmulator:
    app = copper_server
    app.rate_limit, app.rate_window = 180, 60.0
    app.code_delivery = "redirect"
    app.issue_refresh_tokens = False
    app.reset()
    with app.oauth.lock:
        app.oauth.refresh_calls = 0
        app.oauth.token_calls = 0
        app.oauth.fail_next_refresh = None
    return app


@pytest.fixture
def copper_key(copper_emulator: CopperEmulator) -> tuple[str, str]:
    return copper_emulator.issue_api_key()


@pytest.fixture
def make_copper_connector(copper_emulator: CopperEmulator) -> Callable[..., Any]:
    from integrations.providers.copper.connector import CopperConnector

    def make(
        key: str | None = None, email: str | None = None, record_type: str = "contact", **options: Any
    ) -> CopperConnector:
        if key is None:
            key, owner = copper_emulator.issue_api_key()
            email = owner if email is None else email
        extra = {"user_email": email} if email else {}
        credentials = ConnectionCredentials(access_token=key, extra=extra)
        return CopperConnector(credentials, settings={"record_type": record_type, **options})

    return make


@pytest.fixture
def copper_connector(make_copper_connector, copper_key: tuple[str, str]):
    key, email = copper_key
    return make_copper_connector(key, email)
