"""Fixtures for tests that talk to the Dataverse (Dynamics 365) sandbox emulator over real HTTPS.

Import them with ``from tests.integrations.dynamics_fixtures import *  # noqa: F403``.

- ``dynamics_server`` (module scope): one running DynamicsEmulator over TLS (the shared ``sandbox_ca``
  when tests/integrations/conftest.py offers it), with ``CRM_CA_BUNDLE`` trusting it and the Dynamics
  entry of ``CRM_ENDPOINTS`` pointing API (the org URL) and OAuth at it; its OAuth client accepts this
  service's callback URL.
- ``dynamics_emulator`` (function scope): the same emulator reset to an empty org; limits back to
  6,000 per 300 s; the connector's cache of key attributes forgotten.
- ``dynamics_token``: a fresh access token of the org's integration user.
- ``make_dynamics_connector(token=None, **settings)`` / ``dynamics_connector``.
- ``make_dynamics_connection(account)`` (needs the database): a token connection made through
  ``integrations.connecting.connect``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.conf import settings
from django.test import override_settings
from django.urls import reverse

from integrations.connector import ConnectionCredentials
from integrations.providers.dynamics import keyed
from integrations.providers.dynamics.connector import DynamicsConnector
from integrations.sandbox.core import EmulatorServer, LocalCA
from integrations.sandbox.dynamics import DynamicsEmulator

DYNAMICS_CLIENT_ID = "capsule-test-dynamics-client"
DYNAMICS_CLIENT_SECRET = "capsule-test-dynamics-secret"

__all__ = [
    "DYNAMICS_CLIENT_ID",
    "DYNAMICS_CLIENT_SECRET",
    "dynamics_ca",
    "dynamics_connector",
    "dynamics_emulator",
    "dynamics_server",
    "dynamics_token",
    "make_dynamics_connection",
    "make_dynamics_connector",
]


@pytest.fixture(scope="module")
def dynamics_ca(request, tmp_path_factory) -> LocalCA:
    try:
        return request.getfixturevalue("sandbox_ca")
    except pytest.FixtureLookupError:
        return LocalCA(tmp_path_factory.mktemp("dynamics-ca"))


@pytest.fixture(scope="module")
def dynamics_server(dynamics_ca: LocalCA) -> Iterator[EmulatorServer]:
    callback = settings.PUBLIC_BASE_URL + reverse("integrations:oauth_callback", kwargs={"provider": "dynamics"})
    app = DynamicsEmulator(client_id=DYNAMICS_CLIENT_ID, client_secret=DYNAMICS_CLIENT_SECRET, redirect_uris=[callback])
    server = EmulatorServer(app, tls=dynamics_ca).start()
    endpoints = {
        **settings.CRM_ENDPOINTS,
        "dynamics": {
            "api_url": server.url,
            "oauth_url": server.url,
            "client_id": DYNAMICS_CLIENT_ID,
            "client_secret": DYNAMICS_CLIENT_SECRET,
        },
    }
    with override_settings(CRM_ENDPOINTS=endpoints, CRM_CA_BUNDLE=str(dynamics_ca.ca_path)):
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture
def dynamics_emulator(dynamics_server: EmulatorServer) -> DynamicsEmulator:
    app: DynamicsEmulator = dynamics_server.app  # type: ignore[assignment]
    app.reset()
    app.initial_alternate_keys = {}
    app.store.alternate_keys = {}
    app.limiter.limit, app.limiter.interval = 6000, 300.0
    keyed.forget_key_attributes()
    return app


@pytest.fixture
def dynamics_token(dynamics_emulator: DynamicsEmulator) -> str:
    return dynamics_emulator.issue_token().access_token


@pytest.fixture
def make_dynamics_connector(dynamics_emulator, dynamics_server):
    def make(token: str | None = None, **connection_settings) -> DynamicsConnector:
        token = token or dynamics_emulator.issue_token().access_token
        return DynamicsConnector(ConnectionCredentials(token, dynamics_server.url), settings=connection_settings)

    return make


@pytest.fixture
def dynamics_connector(make_dynamics_connector) -> DynamicsConnector:
    return make_dynamics_connector()


@pytest.fixture
def make_dynamics_connection(db, dynamics_emulator, dynamics_server):
    from integrations.connecting import connect
    from integrations.connector import TokenSet
    from integrations.models import AuthKind

    def make(account, **values):
        tokens = TokenSet(access_token=dynamics_emulator.issue_token().access_token, api_base_url=dynamics_server.url)
        connection = connect(account, "dynamics", tokens, auth_kind=AuthKind.PRIVATE_APP_TOKEN, actor_label="test")
        for name, value in values.items():
            setattr(connection, name, value)
        connection.save()
        return connection

    return make
