"""Fixtures for tests that talk to the Pipedrive sandbox emulator over real HTTPS (loopback).

Import them into a test module with ``from tests.integrations.pipedrive_fixtures import *  # noqa``.

- ``pipedrive_ca`` (module scope): the shared ``sandbox_ca`` of tests/integrations/conftest.py when
  there is one (one ``CRM_CA_BUNDLE`` trusts every emulator), else a CA of its own.
- ``pipedrive_server`` (module scope): one running PipedriveEmulator per test module over TLS, with
  ``CRM_CA_BUNDLE`` trusting it and the Pipedrive entry of ``CRM_ENDPOINTS`` pointing API and OAuth
  at it, and the sandbox's OAuth app (``PIPEDRIVE_CLIENT_ID``/``PIPEDRIVE_CLIENT_SECRET``) configured;
  its redirect URI is this service's callback. Burst limits are raised to 1,000 per 2 s so tests are
  not throttled (tests of the limit build their own emulator).
- ``pipedrive_emulator`` (function scope): the same emulator reset to an empty company — records,
  custom fields, webhooks, counters, faults — with the deprecated v1 routes answering, our user an
  admin, refresh-token rotation on and the OAuth counters at zero. It also drops what the
  connector caches per process (field definitions, the activity type and deal key field, known
  organizations, pacers). Issued tokens stay valid. Request this one in tests.
- ``pipedrive_token``: a fresh API token of the company's integration user.
- ``make_pipedrive_connector(token=None, record_type="contact", **http_hooks)``: a
  PipedriveConnector on the emulator (``api_url`` from the settings, as for an API-token connection).
- ``pipedrive_connector``: ``make_pipedrive_connector()``.
- ``make_pipedrive_connection`` (needs the database): ``make(account, kind="token" | "oauth",
  record_type="contact")``, made through ``integrations.connecting.connect`` (the identity call
  runs); OAuth connections store the emulator's refresh token and ``api_domain``.

Typical use::

    def test_something(pipedrive_emulator, pipedrive_connector):
        pipedrive_connector.upsert_people("contact", [PersonInput("k1", "ann@example.com", {"name": "Ann"})])
        assert pipedrive_emulator.find_person("ann@example.com")
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
from integrations.sandbox.pipedrive import PipedriveEmulator

PIPEDRIVE_CLIENT_ID = "capsule-test-pipedrive-client"
PIPEDRIVE_CLIENT_SECRET = "capsule-test-pipedrive-secret"

__all__ = [
    "PIPEDRIVE_CLIENT_ID",
    "PIPEDRIVE_CLIENT_SECRET",
    "make_pipedrive_connection",
    "make_pipedrive_connector",
    "pipedrive_ca",
    "pipedrive_connector",
    "pipedrive_emulator",
    "pipedrive_server",
    "pipedrive_token",
]


@pytest.fixture(scope="module")
def pipedrive_ca(request, tmp_path_factory) -> LocalCA:
    try:
        return request.getfixturevalue("sandbox_ca")
    except pytest.FixtureLookupError:
        return LocalCA(tmp_path_factory.mktemp("pipedrive-ca"))


@pytest.fixture(scope="module")
def pipedrive_server(pipedrive_ca: LocalCA) -> Iterator[PipedriveEmulator]:
    callback = settings.PUBLIC_BASE_URL + reverse("integrations:oauth_callback", kwargs={"provider": "pipedrive"})
    app = PipedriveEmulator(
        client_id=PIPEDRIVE_CLIENT_ID,
        client_secret=PIPEDRIVE_CLIENT_SECRET,
        redirect_uris=[callback],
        api_token_limit=1000,
        oauth_limit=1000,
    )
    server = EmulatorServer(app, tls=pipedrive_ca).start()
    endpoints = {
        **settings.CRM_ENDPOINTS,
        "pipedrive": {
            "api_url": server.url,
            "oauth_url": server.url,
            "client_id": PIPEDRIVE_CLIENT_ID,
            "client_secret": PIPEDRIVE_CLIENT_SECRET,
        },
    }
    with override_settings(CRM_ENDPOINTS=endpoints, CRM_CA_BUNDLE=str(pipedrive_ca.ca_path)):
        yield app
    server.stop()


@pytest.fixture
def pipedrive_emulator(pipedrive_server: PipedriveEmulator) -> PipedriveEmulator:
    from integrations.providers.pipedrive.connector import forget_process_caches

    app = pipedrive_server
    app.reset()
    app.v1_deprecated_gone = False
    app.admin = True
    app.records.users[1]["is_admin"] = 1
    with app.oauth.lock:
        app.oauth.refresh_calls = 0
        app.oauth.token_calls = 0
        app.oauth.fail_next_refresh = None
        app.oauth.rotate_refresh_tokens = True
    forget_process_caches()
    return app


@pytest.fixture
def pipedrive_token(pipedrive_emulator: PipedriveEmulator) -> str:
    return pipedrive_emulator.issue_api_token()


@pytest.fixture
def make_pipedrive_connector(pipedrive_emulator: PipedriveEmulator) -> Callable[..., Any]:
    from integrations.providers.pipedrive.connector import PipedriveConnector

    def make(token: str | None = None, record_type: str = "contact", **http_hooks: Any) -> PipedriveConnector:
        credentials = ConnectionCredentials(access_token=token or pipedrive_emulator.issue_api_token())
        http = PipedriveConnector.make_http(credentials, **http_hooks) if http_hooks else None
        return PipedriveConnector(credentials, http=http, settings={"record_type": record_type})

    return make


@pytest.fixture
def pipedrive_connector(make_pipedrive_connector, pipedrive_token: str):
    return make_pipedrive_connector(pipedrive_token)


@pytest.fixture
def make_pipedrive_connection(pipedrive_emulator: PipedriveEmulator, db) -> Callable[..., Connection]:
    from integrations.connecting import connect
    from integrations.connector import TokenSet

    def make(account, kind: str = "token", record_type: str = "contact") -> Connection:
        if kind == "token":
            tokens = TokenSet(access_token=pipedrive_emulator.issue_api_token())
            auth_kind = AuthKind.API_KEY
        else:
            issued = pipedrive_emulator.issue_oauth_token()
            tokens = TokenSet(
                access_token=issued.access_token,
                refresh_token=issued.refresh_token,
                api_base_url=pipedrive_emulator.base_url,
            )
            auth_kind = AuthKind.OAUTH
        connection = connect(account, "pipedrive", tokens, auth_kind=auth_kind, actor_label="test fixture")
        if record_type != connection.record_type:
            connection.record_type = record_type
            connection.save(update_fields=["record_type"])
        return connection

    return make
