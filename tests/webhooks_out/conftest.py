"""Fixtures of the outgoing webhook tests: a loopback receiver, simulated DNS, subscriptions, and a
scan of every log line for every signing secret the test created.

- ``receiver``: an HTTP server on 127.0.0.1 (a thread) that records each request (path, headers,
  body) and answers from a script: ``receiver.script(429, ("drop",), 200)``; an empty script
  answers 200. ``("hang",)`` holds the answer until the test ends (for timeouts); ``(302,
  {"Location": …})`` redirects.
- ``deliver_to_loopback``: allows private targets (the receiver is on 127.0.0.1) and shortens the
  timeout to half a second. Only tests that deliver use it. They run the jobs themselves
  (``jobs.deliver_due``, or an RQ job's ``perform()``): jobs dispatched after commit go to Redis.
- ``fake_dns``: ``fake_dns({"hooks.example.test": ["93.184.216.34"]})`` answers for made-up host
  names; every other name goes to the real resolver. Nothing is ever sent to those addresses:
  the tests that use public-looking answers stop at the SSRF check or before sending.
- ``make_subscription``: a subscription created the way owners and the API create them.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.test import override_settings

from integrations.models import WebhookSource, WebhookSubscription
from integrations.webhooks_out import hooks, subscriptions

# Every signing secret a test was given: scanned for in every log line (issue 10, item 5).
SECRETS: set[str] = set()


def remember(secret: str) -> str:
    SECRETS.add(secret)
    return secret


# --- the receiver --------------------------------------------------------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    host: str = "127.0.0.1"
    port: int = 0
    requests: list[Received] = field(default_factory=list)
    answers: deque = field(default_factory=deque)
    release: threading.Event = field(default_factory=threading.Event)
    sni: list[str] = field(default_factory=list)  # TLS server names asked for (tls_receiver)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def script(self, *answers: Any) -> None:
        """Answers for the next requests, in order: a status, (status, headers), (status, headers, body),
        ("drop",) to close the connection without answering, ("hang",) to answer only at the end;
        (callable, …) calls it first, then answers with the rest."""
        for answer in answers:
            self.answers.append(answer if isinstance(answer, tuple) else (answer,))


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            receiver.requests.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            answer = receiver.answers.popleft() if receiver.answers else (200,)
            if callable(answer[0]):
                answer[0]()  # something to do before answering, e.g. change a setting
                answer = answer[1:]
            if answer[0] == "drop":
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if answer[0] == "hang":
                receiver.release.wait(10)
                answer = (200,)
            status = answer[0]
            headers = answer[1] if len(answer) > 1 else {}
            text = answer[2] if len(answer) > 2 else b"ok"
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            payload = text if isinstance(text, bytes) else text.encode()
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep the test output (and the log scan) to our own lines

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        pass  # a client that timed out and left is what the timeout tests are about


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    server = _Server(("127.0.0.1", 0), _handler(receiver))
    receiver.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield receiver
    receiver.release.set()
    server.shutdown()
    server.server_close()


@pytest.fixture
def tls_receiver(tmp_path) -> Iterator:
    """Start HTTPS receivers on 127.0.0.1 with a local CA (trustme) that WEBHOOKS_CA_BUNDLE trusts:
    ``start(certificate_name)`` returns a Receiver whose ``sni`` lists the server names clients sent."""
    import ssl

    import trustme

    ca = trustme.CA()
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    servers = []

    def start(certificate_name: str) -> Receiver:
        receiver = Receiver()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert(certificate_name).configure_cert(context)
        context.sni_callback = lambda _sock, name, _ctx: receiver.sni.append(name)
        server = _Server(("127.0.0.1", 0), _handler(receiver))
        server.socket = context.wrap_socket(server.socket, server_side=True)
        receiver.port = server.server_address[1]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append((server, receiver))
        return receiver

    with override_settings(WEBHOOKS_CA_BUNDLE=str(bundle)):
        yield start
    for server, receiver in servers:
        receiver.release.set()
        server.shutdown()
        server.server_close()


@pytest.fixture
def deliver_to_loopback() -> Iterator[None]:
    with override_settings(WEBHOOKS_ALLOW_PRIVATE_TARGETS=True, WEBHOOKS_TIMEOUT_SECONDS=0.5):
        yield


# --- DNS -------------------------------------------------------------------------------------------


@dataclass
class FakeDns:
    """Answers for made-up host names (ending in .test). An entry is a list of addresses, or a list of
    such lists: one per lookup, the last one repeating. ``lookups`` lists the simulated names asked."""

    names: dict[str, list] = field(default_factory=dict)
    lookups: list[str] = field(default_factory=list)

    def __call__(self, mapping: dict[str, list]) -> None:
        assert all(name.endswith(".test") for name in mapping), "only made-up names may be simulated"
        self.names.update({name: list(value) for name, value in mapping.items()})

    def answer(self, host: str) -> list[str] | None:
        name = host.rstrip(".").lower()
        if name not in self.names:
            return None
        self.lookups.append(name)
        entry = self.names[name]
        if entry and isinstance(entry[0], list):
            return entry.pop(0) if len(entry) > 1 else entry[0]
        return entry


@pytest.fixture
def fake_dns(monkeypatch) -> FakeDns:
    """Simulated DNS answers for made-up host names; every other name resolves as usual."""
    real = socket.getaddrinfo
    dns = FakeDns()

    def getaddrinfo(host, port, *args, **kwargs):
        addresses = dns.answer(host) if isinstance(host, str) else None
        if addresses is None:
            return real(host, port, *args, **kwargs)
        answers = []
        for address in addresses:
            if ":" in address:
                answers.append((socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, port, 0, 0)))
            else:
                answers.append((socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, port)))
        return answers

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return dns


# --- subscriptions ----------------------------------------------------------------------------------


@pytest.fixture
def make_subscription(db):
    def make(account, url: str, events=("*",), **fields) -> tuple[WebhookSubscription, str]:
        subscription, secret = subscriptions.subscribe(
            account, url, list(events), source=WebhookSource.MANUAL, actor_label="test"
        )
        if fields:
            WebhookSubscription.objects.filter(pk=subscription.pk).update(**fields)
            subscription.refresh_from_db()
        return subscription, remember(secret)

    return make


@pytest.fixture
def installed_hooks():
    """The ingest hook and grade listener, as IntegrationsConfig.ready() installs them (idempotent)."""
    hooks.install()


# --- no secret in any log line ------------------------------------------------------------------------


def leaked(records: list[logging.LogRecord], secrets: set[str]) -> list[str]:
    found = []
    for record in records:
        parts = [record.getMessage(), repr(record.args)]
        if record.exc_info:
            parts.append(logging.Formatter().formatException(record.exc_info))
        text = "\n".join(parts)
        for secret in secrets:
            # The whole secret, or its base64 key without the whsec_ prefix.
            if secret and (secret in text or secret.removeprefix("whsec_") in text):
                found.append(text[:200])
    return found


@pytest.fixture(autouse=True)
def no_secret_in_any_log_line(db, caplog):
    """Set up after the database fixture, so its check still sees the test's rows."""
    for name in [None, *logging.root.manager.loggerDict]:
        caplog.set_level(logging.DEBUG, logger=name)
    SECRETS.clear()
    yield
    secrets = set(SECRETS)
    # Secrets of subscriptions the test made by other means (the API, the owner pages).
    for current, previous in WebhookSubscription.objects.values_list("secret", "previous_secret"):
        secrets.update(secret for secret in (current, previous) if secret)
    records = caplog.get_records("setup") + caplog.get_records("call")
    assert leaked(records, secrets) == []


# --- jobs dispatched after commit ------------------------------------------------------------------


@pytest.fixture
def enqueued():
    """The RQ jobs of outgoing webhooks that this test dispatched (tests run with Redis, and jobs
    dispatched after commit go there); a test runs them with ``job.perform()``. Removed afterwards."""
    import django_rq

    queue = django_rq.get_queue("default")
    before = set(queue.job_ids)

    def ours() -> list:
        jobs = [queue.fetch_job(job_id) for job_id in queue.job_ids if job_id not in before]
        return [job for job in jobs if job is not None and job.func_name.startswith("integrations.webhooks_out.")]

    yield ours
    for job in ours():
        job.delete()
