"""The HTTP seam: error taxonomy, timeouts, rate-limit headers, redaction."""

from __future__ import annotations

import logging
import time

import pytest
from django.test import override_settings

from integrations.connector import Connector
from integrations.errors import AuthError, ConfigurationError, NotFound, RateLimited, RecordError, RetryableError
from integrations.http import CrmHttp
from integrations.registry import get_provider
from integrations.sandbox.core import EmulatorApp, EmulatorServer, Response


class EchoApp(EmulatorApp):
    name = "echo"

    def __init__(self):
        super().__init__()
        self.route("GET", r"/status/(?P<code>\d+)", self.status)
        self.route("GET", r"/slow", self.slow)
        self.route("GET", r"/limits", self.limits)
        self.route("GET", r"/secret/(?P<token>[^/]+)", lambda r: Response.json({"ok": True}))

    def status(self, request):
        code = int(request.params["code"])
        headers = {"Retry-After": "7"} if code in (429, 503) else {}
        return Response.json({"message": f"status {code}", "category": "TEST"}, status=code, headers=headers)

    def slow(self, request):
        time.sleep(1.5)
        return Response.json({})

    def limits(self, request):
        return Response.json(
            {},
            headers={
                "X-HubSpot-RateLimit-Max": "100",
                "X-HubSpot-RateLimit-Remaining": "42",
                "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
            },
        )


@pytest.fixture(scope="module")
def server():
    with EmulatorServer(EchoApp()) as running:
        yield running


# The base class's classification and header parsing, with HubSpot's header names.
EchoConnector = type("EchoConnector", (Connector,), {"spec": get_provider("hubspot")})


def seam(server, **kwargs):
    return CrmHttp(
        "Echo",
        server.url,
        classify=EchoConnector.classify_error,
        parse_rate_limit=EchoConnector.parse_rate_limit,
        **kwargs,
    )


@pytest.mark.parametrize(
    ("status", "error_class", "kind"),
    [
        (400, RecordError, "record"),
        (422, RecordError, "record"),
        (401, AuthError, "auth"),
        (403, ConfigurationError, "configuration"),
        (404, NotFound, "record"),
        (429, RateLimited, "retryable"),
        (500, RetryableError, "retryable"),
        (503, RetryableError, "retryable"),
    ],
)
def test_each_status_maps_to_its_error_class(server, status, error_class, kind):
    with pytest.raises(error_class) as caught:
        seam(server).request("GET", f"/status/{status}")
    assert caught.value.kind == kind
    assert caught.value.status == status
    assert f"status {status}" in caught.value.message


def test_retry_after_is_read_on_429(server):
    with pytest.raises(RateLimited) as caught:
        seam(server).request("GET", "/status/429")
    assert caught.value.retry_after == 7


def test_a_timeout_is_retryable_and_says_so(server):
    with pytest.raises(RetryableError) as caught:
        seam(server, timeout=0.3).request("GET", "/slow")
    assert caught.value.code == "timeout"


def test_a_dropped_connection_is_retryable(server):
    server.app.faults.inject("drop")
    with pytest.raises(RetryableError) as caught:
        seam(server).request("GET", "/status/200")
    assert caught.value.code == "connection_error"


def test_nothing_listens_is_retryable():
    http = CrmHttp("Nowhere", "http://127.0.0.1:9", classify=EchoConnector.classify_error)
    with pytest.raises(RetryableError):
        http.request("GET", "/")


def test_rate_limit_headers_are_parsed(server):
    http = seam(server)
    http.request("GET", "/limits")
    assert http.rate_limit.limit == 100
    assert http.rate_limit.remaining == 42
    assert http.rate_limit.window_seconds == 10


def test_calls_are_counted_by_status(server):
    http = seam(server)
    http.request("GET", "/status/200")
    with pytest.raises(RecordError):
        http.request("GET", "/status/400")
    assert http.calls == 2
    assert http.calls_by_status == {200: 1, 400: 1}


def test_log_lines_name_the_path_but_never_a_known_secret(server, caplog):
    secret = "tok-abcdef-123456"
    http = seam(server, secrets=[secret])
    with caplog.at_level(logging.INFO, logger="integrations.http"):
        http.request("GET", f"/secret/{secret}", params={"api_token": secret})
    text = caplog.text
    assert "/secret/[REDACTED]" in text
    assert secret not in text


def test_the_environment_ca_bundle_does_not_override_the_configured_one(server, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/nonexistent/ca.pem")
    with override_settings(CRM_CA_BUNDLE=None):
        http = seam(server)
    assert http.session.trust_env is False
    assert http.request("GET", "/status/200").status_code == 200
