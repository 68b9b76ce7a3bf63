"""Fixtures for tests that talk to the Salesforce sandbox emulator over real HTTPS (loopback).

Import them into a test module with ``from tests.integrations.salesforce_fixtures import *  # noqa``.

- ``salesforce_ca`` (module scope): the local CA the emulator's certificate comes from — the
  shared ``sandbox_ca`` when tests/integrations/conftest.py offers it (so one ``CRM_CA_BUNDLE``
  trusts every emulator of a test), else a CA of its own in a tmp dir.
- ``salesforce_server`` (module scope): one running SalesforceEmulator per test module over TLS,
  with ``CRM_CA_BUNDLE`` set to that CA and the Salesforce entry of ``CRM_ENDPOINTS`` pointing
  OAuth at it (``api_url`` is None: the API host is each token's ``instance_url``, as in
  production). Its OAuth app (``SALESFORCE_CLIENT_ID``/``SALESFORCE_CLIENT_SECRET``) accepts this
  service's callback URL. Yields the emulator; ``app.base_url`` is its instance URL.
- ``salesforce_emulator`` (function scope): the same emulator reset to an empty org — records,
  custom fields, bulk jobs, counters, faults, the daily allocation — with "Customize
  Application" granted, refresh-token rotation off and the OAuth counters at zero. It also drops
  the connector's cached describes. Issued tokens stay valid. Request this one in tests.
- ``salesforce_token``: a fresh access token for the org's integration user.
- ``make_salesforce_connector(record_type="contact", token=None, **settings)``: a
  SalesforceConnector on the emulator's instance URL (``settings`` such as ``bulk_threshold``).
- ``salesforce_connector``: ``make_salesforce_connector()`` for Contacts.
- ``make_salesforce_connection`` (needs the database): ``make(account, kind="oauth" | "token",
  record_type="contact") -> Connection``, made through ``integrations.connecting.connect`` (so
  the identity call runs). OAuth connections carry the emulator's refresh token.

Typical use::

    def test_something(salesforce_emulator, salesforce_connector):
        salesforce_connector.upsert_people("contact", [PersonInput("k1", "ann@example.com", {...})])
        assert salesforce_emulator.find("Contact", Email="ann@example.com")
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.conf import settings
from django.test import override_settings
from django.urls import reverse

from integrations.connector import ConnectionCredentials
from integrations.models import AuthKind, Connection
from integrations.sandbox.core import EmulatorServer, LocalCA
from integrations.sandbox.salesforce import SalesforceEmulator

SALESFORCE_CLIENT_ID = "capsule-test-salesforce-client"
SALESFORCE_CLIENT_SECRET = "capsule-test-salesforce-secret"

__all__ = [
    "SALESFORCE_CLIENT_ID",
    "SALESFORCE_CLIENT_SECRET",
    "make_salesforce_connection",
    "make_salesforce_connector",
    "salesforce_ca",
    "salesforce_connector",
    "salesforce_emulator",
    "salesforce_server",
    "salesforce_token",
]


@pytest.fixture(scope="module")
def salesforce_ca(request, tmp_path_factory) -> LocalCA:
    try:
        return request.getfixturevalue("sandbox_ca")
    except pytest.FixtureLookupError:
        return LocalCA(tmp_path_factory.mktemp("salesforce-ca"))


@pytest.fixture(scope="module")
def salesforce_server(salesforce_ca: LocalCA) -> Iterator[SalesforceEmulator]:
    callback = settings.PUBLIC_BASE_URL + reverse("integrations:oauth_callback", kwargs={"provider": "salesforce"})
    app = SalesforceEmulator(
        client_id=SALESFORCE_CLIENT_ID, client_secret=SALESFORCE_CLIENT_SECRET, redirect_uris=[callback]
    )
    server = EmulatorServer(app, tls=salesforce_ca).start()
    endpoints = {
        **settings.CRM_ENDPOINTS,
        "salesforce": {
            "api_url": None,
            "oauth_url": server.url,
            "client_id": SALESFORCE_CLIENT_ID,
            "client_secret": SALESFORCE_CLIENT_SECRET,
        },
    }
    with override_settings(CRM_ENDPOINTS=endpoints, CRM_CA_BUNDLE=str(salesforce_ca.ca_path)):
        yield app
    server.stop()


@pytest.fixture
def salesforce_emulator(salesforce_server: SalesforceEmulator) -> SalesforceEmulator:
    from integrations.providers.salesforce.api import forget_schemas

    app = salesforce_server
    app.reset()
    app.customize_application = True
    with app.oauth.lock:
        app.oauth.rotate_refresh_tokens = False
        app.oauth.fail_next_refresh = None
        app.oauth.refresh_calls = 0
        app.oauth.token_calls = 0
    forget_schemas()
    return app


@pytest.fixture
def salesforce_token(salesforce_emulator: SalesforceEmulator) -> str:
    return salesforce_emulator.issue_token().access_token


@pytest.fixture
def make_salesforce_connector(salesforce_emulator: SalesforceEmulator) -> Callable[..., Any]:
    from integrations.providers.salesforce.connector import SalesforceConnector

    def make(record_type: str = "contact", token: str | None = None, **options: Any) -> SalesforceConnector:
        credentials = ConnectionCredentials(
            access_token=token or salesforce_emulator.issue_token().access_token,
            api_base_url=salesforce_emulator.base_url,
        )
        return SalesforceConnector(credentials, settings={"record_type": record_type, **options})

    return make


@pytest.fixture
def salesforce_connector(make_salesforce_connector, salesforce_token: str):
    return make_salesforce_connector("contact", token=salesforce_token)


@pytest.fixture
def make_salesforce_connection(salesforce_emulator: SalesforceEmulator, db) -> Callable[..., Connection]:
    from integrations.connecting import connect
    from integrations.connector import TokenSet

    app = salesforce_emulator

    def make(account, kind: str = "oauth", record_type: str = "contact") -> Connection:
        issued = app.issue_token()
        tokens = TokenSet(
            access_token=issued.access_token,
            refresh_token=issued.refresh_token if kind == "oauth" else None,
            api_base_url=app.base_url,
        )
        auth_kind = AuthKind.OAUTH if kind == "oauth" else AuthKind.PRIVATE_APP_TOKEN
        connection = connect(account, "salesforce", tokens, auth_kind=auth_kind, actor_label="test fixture")
        if connection.record_type != record_type:
            connection.record_type = record_type
            connection.save(update_fields=["record_type", "updated_at"])
        return connection

    return make
