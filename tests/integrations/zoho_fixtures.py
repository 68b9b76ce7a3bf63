"""Fixtures for tests that talk to the Zoho CRM sandbox emulator over real HTTPS (loopback), and the
check that holds every answer up against Zoho's OpenAPI documents in ``../shared/specs/zoho``.

Import them into a test module with ``from tests.integrations.zoho_fixtures import *  # noqa: F403``.

- ``zoho_ca`` (module scope): the shared ``sandbox_ca`` when tests/integrations/conftest.py offers it,
  else a CA of its own.
- ``zoho_server`` (module scope): one running ZohoEmulator per test module over TLS, with
  ``CRM_CA_BUNDLE`` trusting it and the Zoho entry of ``CRM_ENDPOINTS`` pointing OAuth at it
  (``api_url`` None: the API host is each token's ``api_domain``, as in production). Its OAuth
  client (``ZOHO_CLIENT_ID``/``ZOHO_CLIENT_SECRET``) accepts this service's callback URL.
- ``zoho_emulator`` (function scope): the same emulator reset to an empty org (records, custom
  fields, channels, counters, credits, faults), limits and switches back to their defaults, OAuth
  counters at zero; it also drops what the connector cached about key fields.
- ``zoho_token``: a fresh access token of the org's integration user.
- ``make_zoho_connector(record_type="contact", token=None)`` / ``zoho_connector``: a connector whose
  every answer is checked against the spec (``check_answer``) as it arrives.
- ``make_zoho_connection(account, kind="oauth", record_type="contact")`` (needs the database).
- ``zoho_check(response)``: validate a ``requests.Response`` against the spec (see ``check_answer``).
- ``zoho_receiver``: a loopback notify URL (``.url``) recording the bodies Zoho POSTs (``.received``).
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.test import override_settings
from django.urls import reverse
from jsonschema import validators
from jsonschema.exceptions import ValidationError

from integrations.connector import ConnectionCredentials
from integrations.models import AuthKind, Connection
from integrations.sandbox.core import EmulatorServer, LocalCA
from integrations.sandbox.zoho import ZohoEmulator
from tests.openapi_check import load_spec

ZOHO_CLIENT_ID = "capsule-test-zoho-client"
ZOHO_CLIENT_SECRET = "capsule-test-zoho-secret"

__all__ = [
    "ZOHO_CLIENT_ID",
    "ZOHO_CLIENT_SECRET",
    "check_answer",
    "make_zoho_connection",
    "make_zoho_connector",
    "zoho_ca",
    "zoho_check",
    "zoho_connector",
    "zoho_emulator",
    "zoho_receiver",
    "zoho_server",
    "zoho_token",
]


# -- the spec check ------------------------------------------------------------------------------------
#
# How Zoho's documents are read, and why (each point is a place where the spec and Zoho's wire format,
# as crm-reference §4 describes it, part ways; the report to the lead lists them):
#
# 1. Only 200 answers are modelled for records (record.json), and error bodies sit inside the 200
#    schema as ``API_Exception``. A status the operation does not declare is checked against the
#    200 schema when the body has the operation's envelope (``data``…), else against common.json's
#    ``API_Exception`` (status, code, message, details all required).
# 2. ``oneOf`` of a wrapper and ``API_Exception`` can never pass: ``API_Exception`` has no required
#    key, so every wrapper also matches it. The branch is chosen by the body — ``status: "error"``
#    selects the exception — and that branch alone is checked. Elsewhere ``oneOf`` is read as "at
#    least one" (e.g. COQL's exception shapes overlap the same way).
# 3. Known defects, waived: notifications.json types a channel's ``channel_id`` as an object and gives
#    ``notify_url`` a pattern copied from an example host (Zoho answers the number and the URL you
#    registered).
# 4. 204 answers must be empty; the reference (§4.2) and the spec's NO_CONTENT code make them the
#    answer to every empty read, declared or not.

_WAIVERS = {
    "zoho/notifications.json": (
        (("watch", "*", "channel_id"), "type"),
        (("watch", "*", "notify_url"), "pattern"),
    )
}
_SPEC_OF = (
    ("coql", "zoho/coql.json"),
    ("settings/fields", "zoho/fields.json"),
    ("users", "zoho/users.json"),
    ("actions/watch", "zoho/notifications.json"),
    ("Notes", "zoho/notes.json"),
)
_ENVELOPES = ("data", "fields", "users", "watch")


def _spec_and_path(method: str, path: str) -> tuple[str | None, str]:
    parts = path.split("/", 3)  # "", "crm", "vN", rest
    rest = parts[3] if len(parts) > 3 else ""
    segments = rest.split("/")
    if len(segments) == 3 and segments[2] == "Notes" and method == "POST":
        return "zoho/notes.json", "/crm/v8/Notes"  # the related-list form answers as POST /Notes does
    if rest == "org":
        return None, path  # no org.json among the copied specs: checked against the reference by the tests
    for prefix, name in _SPEC_OF:
        if rest == prefix or rest.startswith(prefix + "/") or rest.startswith(prefix + "?"):
            return name, f"/crm/v8/{rest}"
    return "zoho/record.json", f"/crm/v8/{rest}"


def _any_of(validator, one_of, instance, schema):
    errors = []
    for index, subschema in enumerate(one_of):
        found = list(validator.descend(instance, subschema, schema_path=index))
        if not found:
            return
        errors.extend(found)
    yield ValidationError(f"{instance!r:.120} is valid under none of the oneOf branches", context=errors)


def _waived(spec_name: str, error: ValidationError) -> bool:
    location = tuple(str(p) for p in error.absolute_path)
    for pattern, keyword in _WAIVERS.get(spec_name, ()):
        if (
            error.validator == keyword
            and len(location) == len(pattern)
            and all(p in ("*", part) for p, part in zip(pattern, location, strict=True))
        ):
            return True
    return False


def _common_exception() -> str:
    return f"{load_spec('zoho/common.json').uri}#/components/schemas/API_Exception"


def _schema_uri(spec, method: str, path: str, status: int, body: Any) -> str:
    try:
        operation = spec.operation(method, path)
    except AssertionError:
        if status >= 400:  # a path no operation has (INVALID_URL_PATTERN): the shared error shape
            return _common_exception()
        raise
    responses = operation.node.get("responses", {})
    declared = str(status) in responses
    if declared:
        uri = spec.response_schema_uri(method, path, status)
    elif status >= 400 and not (isinstance(body, dict) and any(k in body for k in _ENVELOPES)):
        return _common_exception()
    else:
        uri = spec.response_schema_uri(method, path, 200)
    assert uri is not None, f"{spec.name}: {method} {path} -> {status} declares no JSON body"
    node = spec.registry.resolver().lookup(uri).contents
    branches = node.get("oneOf") if isinstance(node, dict) else None
    if branches:
        exception = [i for i, b in enumerate(branches) if str(b.get("$ref", "")).endswith("/API_Exception")]
        if exception and len(branches) > 1:
            is_error = isinstance(body, dict) and body.get("status") == "error"
            chosen = exception[0] if is_error else next(i for i in range(len(branches)) if i not in exception)
            return f"{uri}/oneOf/{chosen}"
        if len(branches) == 1:
            return f"{uri}/oneOf/0"
    return uri


def check_answer(method: str, path: str, status: int, body: Any) -> None:
    """Assert that an emulator answer is what Zoho's spec declares (read as the notes above say)."""
    spec_name, spec_path = _spec_and_path(method.upper(), urlsplit(path).path)
    if status == 204:
        assert body in (None, b"", ""), f"{method} {path} -> 204 with a body"
        if spec_name:
            load_spec(spec_name).operation(method, spec_path)  # the route exists in the spec
        return
    if spec_name is None:
        return
    spec = load_spec(spec_name)
    uri = _schema_uri(spec, method.upper(), spec_path, status, body)
    base = spec if not uri.startswith(load_spec("zoho/common.json").uri) else load_spec("zoho/common.json")
    validator_class = validators.extend(base._validator_class, {"oneOf": _any_of})
    validator = validator_class({"$ref": uri}, registry=base.registry, format_checker=base._format_checker)
    problems = [e for e in validator.iter_errors(copy.deepcopy(body)) if not _waived(spec_name, e)]
    if problems:
        error = problems[0]
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        raise AssertionError(f"{spec_name}: {method} {path} -> {status}: schema error at {where}: {error.message}")


def zoho_check_response(response) -> Any:
    body = response.json() if response.content else None
    check_answer(response.request.method, urlsplit(response.request.url).path, response.status_code, body)
    return body


@pytest.fixture
def zoho_check() -> Callable[[Any], Any]:
    """``zoho_check(response)`` validates a ``requests.Response`` and returns its decoded body."""
    return zoho_check_response


# -- the emulator -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def zoho_ca(request, tmp_path_factory) -> LocalCA:
    try:
        return request.getfixturevalue("sandbox_ca")
    except pytest.FixtureLookupError:
        return LocalCA(tmp_path_factory.mktemp("zoho-ca"))


@pytest.fixture(scope="module")
def zoho_server(zoho_ca: LocalCA) -> Iterator[ZohoEmulator]:
    callback = settings.PUBLIC_BASE_URL + reverse("integrations:oauth_callback", kwargs={"provider": "zoho"})
    app = ZohoEmulator(client_id=ZOHO_CLIENT_ID, client_secret=ZOHO_CLIENT_SECRET, redirect_uris=[callback])
    server = EmulatorServer(app, tls=zoho_ca).start()
    endpoints = {
        **settings.CRM_ENDPOINTS,
        "zoho": {
            "api_url": None,
            "oauth_url": server.url,
            "client_id": ZOHO_CLIENT_ID,
            "client_secret": ZOHO_CLIENT_SECRET,
        },
    }
    with override_settings(CRM_ENDPOINTS=endpoints, CRM_CA_BUNDLE=str(zoho_ca.ca_path)):
        yield app
    server.stop()


@pytest.fixture
def zoho_emulator(zoho_server: ZohoEmulator) -> ZohoEmulator:
    from integrations.providers.zoho.keyed import forget_key_fields

    app = zoho_server
    app.daily_credits, app.concurrency_limit, app.heavy_concurrency_limit = 50_000, 15, 10
    app.enforce_scopes, app.can_create_fields, app.rate_headers = False, True, True
    app.upsert_refused_modules = set()
    app.reset()
    with app.oauth.lock:
        app.oauth.refresh_calls = 0
        app.oauth.token_calls = 0
        app.oauth.fail_next_refresh = None
    forget_key_fields()
    return app


@pytest.fixture
def zoho_token(zoho_emulator: ZohoEmulator) -> str:
    return zoho_emulator.issue_token().access_token


@pytest.fixture
def make_zoho_connector(zoho_emulator: ZohoEmulator) -> Callable[..., Any]:
    from integrations.providers.zoho.connector import ZohoConnector

    def make(record_type: str = "contact", token: str | None = None) -> ZohoConnector:
        credentials = ConnectionCredentials(
            access_token=token or zoho_emulator.issue_token().access_token, api_base_url=zoho_emulator.base_url
        )
        # Every answer the connector reads is held up against the spec on its way in.
        http = ZohoConnector.make_http(
            credentials, after_response=lambda response, _snapshot: zoho_check_response(response)
        )
        return ZohoConnector(credentials, http=http, settings={"record_type": record_type})

    return make


@pytest.fixture
def zoho_connector(make_zoho_connector, zoho_token: str):
    return make_zoho_connector("contact", token=zoho_token)


@pytest.fixture
def make_zoho_connection(zoho_emulator: ZohoEmulator, db) -> Callable[..., Connection]:
    from integrations.connecting import connect
    from integrations.connector import TokenSet

    def make(account, kind: str = "oauth", record_type: str = "contact") -> Connection:
        issued = zoho_emulator.issue_token()
        tokens = TokenSet(
            access_token=issued.access_token,
            refresh_token=issued.refresh_token if kind == "oauth" else None,
            api_base_url=zoho_emulator.base_url,
        )
        auth_kind = AuthKind.OAUTH if kind == "oauth" else AuthKind.PRIVATE_APP_TOKEN
        connection = connect(account, "zoho", tokens, auth_kind=auth_kind, actor_label="test fixture")
        if connection.record_type != record_type:
            connection.record_type = record_type
            connection.save(update_fields=["record_type", "updated_at"])
        return connection

    return make


# -- a notify URL -------------------------------------------------------------------------------------------


class Receiver:
    """A loopback notify URL that records what Zoho POSTs to it and answers ``status``."""

    def __init__(self, status: int = 200) -> None:
        received: list[bytes] = []
        self.received = received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # http.server's name
                received.append(self.rfile.read(int(self.headers["Content-Length"])))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/webhooks/crm/zoho/1/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def zoho_receiver() -> Iterator[Receiver]:
    made = Receiver()
    yield made
    made.close()
