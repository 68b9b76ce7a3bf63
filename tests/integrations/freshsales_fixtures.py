"""Fixtures for tests that talk to the Freshsales sandbox emulator over real HTTPS (loopback).

Import them with ``from tests.integrations.freshsales_fixtures import *  # noqa: F403``.

- ``freshsales_server`` (module scope): one running FreshsalesEmulator over TLS, with
  ``CRM_CA_BUNDLE`` trusting its CA.
- ``freshsales_emulator`` (function scope): the same emulator reset to an empty account, with the
  quotas back at 1,000 an hour and 400 a minute.
- ``freshsales_key``: a fresh API key of the admin user.
- ``make_freshsales_connector(key=None, **settings)``: a connector whose API URL is the emulator's
  bare host (the connector adds ``/crm/sales/api``, as for ``--api-url https://acme.myfreshworks.com``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator

import pytest
from django.test import override_settings

from integrations.connector import ConnectionCredentials
from integrations.providers.freshsales.connector import FreshsalesConnector
from integrations.sandbox.core import EmulatorServer, LocalCA
from integrations.sandbox.freshsales import FreshsalesEmulator

__all__ = [
    "freshsales_ca",
    "freshsales_connector",
    "freshsales_emulator",
    "freshsales_key",
    "freshsales_server",
    "make_freshsales_connector",
]


@pytest.fixture(scope="module")
def freshsales_ca(request, tmp_path_factory) -> LocalCA:
    try:
        return request.getfixturevalue("sandbox_ca")
    except pytest.FixtureLookupError:
        return LocalCA(tmp_path_factory.mktemp("freshsales-ca"))


@pytest.fixture(scope="module")
def freshsales_server(freshsales_ca: LocalCA) -> Iterator[FreshsalesEmulator]:
    app = FreshsalesEmulator()
    server = EmulatorServer(app, tls=freshsales_ca).start()
    with override_settings(CRM_CA_BUNDLE=str(freshsales_ca.ca_path)):
        yield app
    server.stop()


@pytest.fixture
def freshsales_emulator(freshsales_server: FreshsalesEmulator) -> FreshsalesEmulator:
    freshsales_server.reset()
    freshsales_server.set_limits(hourly=1000, per_minute=400)
    freshsales_server.clock = lambda: dt.datetime.now(dt.UTC)
    return freshsales_server


@pytest.fixture
def freshsales_key(freshsales_emulator: FreshsalesEmulator) -> str:
    return freshsales_emulator.issue_api_key()


@pytest.fixture
def make_freshsales_connector(freshsales_emulator, freshsales_key) -> Callable[..., FreshsalesConnector]:
    def make(key: str | None = None, **settings) -> FreshsalesConnector:
        credentials = ConnectionCredentials(key or freshsales_key, api_base_url=freshsales_emulator.base_url)
        return FreshsalesConnector(credentials, settings=settings)

    return make


@pytest.fixture
def freshsales_connector(make_freshsales_connector) -> FreshsalesConnector:
    return make_freshsales_connector()
