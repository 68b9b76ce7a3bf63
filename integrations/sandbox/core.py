"""The shared machinery of the sandbox CRMs: loopback HTTP(S) emulators of each vendor's API.

An emulator is an ``EmulatorApp`` subclass that registers routes and answers in its vendor's wire
format. This module gives every emulator the same:

- a threaded HTTP/1.1 server on 127.0.0.1 (keep-alive, Nagle off so latency figures are ours),
  optionally over TLS with a certificate from a local CA (``trustme``);
- fault injection on demand: queued faults (``inject``) and a random failure rate (``chaos``),
  each one of ``rate_limit``, ``server_error``, ``slow``, ``drop`` (connection closed without an
  answer) and ``expire_token`` (the next authenticated request's token is treated as expired);
- a per-token sliding-window rate limiter whose excess answer each emulator shapes;
- a request log that tests read to count API calls or prove a route was never called;
- an OAuth 2.0 authorization server (consent page, code with PKCE, tokens, refresh with optional
  rotation, revoke) that emulators customise through ``token_response``;
- a control API under ``/__sandbox__/`` so other processes (the demo, ``make chaos``, browser
  tests) can inject faults, read state and reset.

Emulators never import Django: they run in tests, in ``make run`` and in benchmark processes.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import random
import re
import secrets
import socket
import ssl
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

# ---------------------------------------------------------------------------------------------
# Requests and responses


@dataclass
class Request:
    method: str
    path: str  # without the query string
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names
    body: bytes
    params: dict[str, str] = field(default_factory=dict)  # named groups of the matched route
    token: str | None = None  # set by the emulator's authenticate()

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def json(self) -> Any:
        if not self.body:
            return None
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        return {key: values[0] for key, values in parse_qs(self.body.decode(), keep_blank_values=True).items()}

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        return cls(
            status,
            json.dumps(payload).encode(),
            {"Content-Type": "application/json;charset=UTF-8", **(headers or {})},
        )

    @classmethod
    def html(cls, text: str, status: int = 200) -> Response:
        return cls(status, text.encode(), {"Content-Type": "text/html; charset=utf-8"})

    @classmethod
    def redirect(cls, location: str) -> Response:
        return cls(302, b"", {"Location": location})


class DropConnection(Exception):
    """Raised by a handler or a fault to close the socket without writing any answer."""


Handler = Callable[[Request], Response]


@dataclass
class LoggedRequest:
    method: str
    path: str
    status: int
    at: float
    query: dict[str, list[str]]


# ---------------------------------------------------------------------------------------------
# Faults


FAULT_KINDS = ("rate_limit", "server_error", "slow", "drop", "expire_token")


@dataclass
class Fault:
    kind: str
    path_prefix: str = ""  # only requests whose path starts with this
    seconds: float = 0.0  # for "slow"


class FaultPlan:
    """Queued faults (each fires once, in order) plus an optional random failure rate."""

    def __init__(self) -> None:
        self._queue: deque[Fault] = deque()
        self._lock = threading.Lock()
        self.chaos_rate = 0.0
        self.chaos_kinds: tuple[str, ...] = ("rate_limit", "server_error")
        self.slow_seconds = 0.0
        self._random = random.Random(0)

    def inject(self, kind: str, count: int = 1, path_prefix: str = "", seconds: float = 0.0) -> None:
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {FAULT_KINDS}")
        with self._lock:
            for _ in range(count):
                self._queue.append(Fault(kind, path_prefix, seconds))

    def chaos(
        self, rate: float, kinds: tuple[str, ...] = FAULT_KINDS, slow_seconds: float = 0.0, seed: int = 0
    ) -> None:
        with self._lock:
            self.chaos_rate, self.chaos_kinds, self.slow_seconds = rate, tuple(kinds), slow_seconds
            self._random = random.Random(seed)

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()
            self.chaos_rate = 0.0

    def pending(self) -> int:
        with self._lock:
            return len(self._queue)

    def take(self, path: str) -> Fault | None:
        with self._lock:
            for fault in self._queue:
                if path.startswith(fault.path_prefix):
                    self._queue.remove(fault)
                    return fault
            if self.chaos_rate and self._random.random() < self.chaos_rate:
                kind = self._random.choice(self.chaos_kinds)
                return Fault(kind, seconds=self.slow_seconds)
        return None


# ---------------------------------------------------------------------------------------------
# Rate limiting


class SlidingWindowLimiter:
    """At most ``limit`` requests per ``interval`` seconds per key (a token, an app or an org)."""

    def __init__(self, limit: int, interval: float) -> None:
        self.limit, self.interval = limit, interval
        self._hits: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def hit(self, key: str) -> tuple[bool, int, float]:
        """Record a request; return (allowed, remaining, seconds until a slot frees)."""
        now = time.monotonic()
        with self._lock:
            hits = self._hits[key]
            while hits and hits[0] <= now - self.interval:
                hits.popleft()
            if len(hits) >= self.limit:
                return False, 0, max(0.0, hits[0] + self.interval - now)
            hits.append(now)
            reset = hits[0] + self.interval - now
            return True, self.limit - len(hits), reset

    def reset(self) -> None:
        with self._lock:
            self._hits.clear()


# ---------------------------------------------------------------------------------------------
# OAuth 2.0 authorization server


@dataclass
class OAuthClient:
    client_id: str
    client_secret: str
    redirect_uris: list[str]


@dataclass
class IssuedToken:
    access_token: str
    refresh_token: str | None
    client_id: str
    scopes: list[str]
    expires_at: float | None
    account_ref: str  # which CRM account (portal, org) the token belongs to
    revoked: bool = False


class OAuthServer:
    """Authorization-code flow with PKCE, refresh (optionally rotating) and revoke.

    Emulators mount ``authorize``, ``token`` and ``revoke`` on their vendor's paths and shape the
    JSON with ``token_response``/``error_response`` overrides on the emulator.
    """

    def __init__(
        self,
        app: EmulatorApp,
        access_token_ttl: float | None = 1800,
        rotate_refresh_tokens: bool = False,
        token_prefix: str = "",
    ) -> None:
        self.app = app
        self.access_token_ttl = access_token_ttl
        self.rotate_refresh_tokens = rotate_refresh_tokens
        self.token_prefix = token_prefix
        self.clients: dict[str, OAuthClient] = {}
        self.codes: dict[str, dict[str, Any]] = {}
        self.access_tokens: dict[str, IssuedToken] = {}
        self.refresh_tokens: dict[str, IssuedToken] = {}
        self.lock = threading.Lock()
        self.token_calls = 0  # tests count refreshes with this
        self.refresh_calls = 0
        self.fail_next_refresh: str | None = None  # an OAuth error code to answer the next refresh with

    # -- set-up ---------------------------------------------------------------------------------
    def register_client(self, client_id: str, client_secret: str, redirect_uris: list[str]) -> OAuthClient:
        client = OAuthClient(client_id, client_secret, list(redirect_uris))
        self.clients[client_id] = client
        return client

    def issue(
        self,
        client_id: str = "sandbox-client",
        scopes: list[str] | None = None,
        account_ref: str = "default",
        with_refresh: bool = True,
    ) -> IssuedToken:
        """Issue a token directly (for tests and private-app/API-key style connections)."""
        token = IssuedToken(
            access_token=self.token_prefix + secrets.token_urlsafe(24),
            refresh_token=(self.token_prefix + "r-" + secrets.token_urlsafe(24)) if with_refresh else None,
            client_id=client_id,
            scopes=scopes or [],
            expires_at=(time.time() + self.access_token_ttl) if self.access_token_ttl else None,
            account_ref=account_ref,
        )
        with self.lock:
            self.access_tokens[token.access_token] = token
            if token.refresh_token:
                self.refresh_tokens[token.refresh_token] = token
        self.app.secrets_issued.append(token.access_token)
        if token.refresh_token:
            self.app.secrets_issued.append(token.refresh_token)
        return token

    def expire(self, access_token: str) -> None:
        with self.lock:
            if access_token in self.access_tokens:
                self.access_tokens[access_token].expires_at = time.time() - 1

    def token_state(self, access_token: str | None) -> str:
        """'ok', 'expired' or 'invalid' for a bearer token."""
        if not access_token:
            return "invalid"
        with self.lock:
            token = self.access_tokens.get(access_token)
        if token is None or token.revoked:
            return "invalid"
        if token.expires_at is not None and token.expires_at < time.time():
            return "expired"
        return "ok"

    def token_for(self, access_token: str) -> IssuedToken | None:
        return self.access_tokens.get(access_token)

    # -- endpoints --------------------------------------------------------------------------------
    def authorize(self, request: Request) -> Response:
        """GET shows a consent page; POST (the form) redirects back with a code or an error."""
        params = request.form() if request.method == "POST" else {k: v[0] for k, v in request.query.items()}
        client = self.clients.get(params.get("client_id", ""))
        redirect_uri = params.get("redirect_uri", "")
        if client is None:
            return Response.html("<h1>Unknown client_id</h1>", status=400)
        if redirect_uri not in client.redirect_uris:
            # Exact match only, as the vendors do: an open redirect would leak the code.
            return Response.html("<h1>redirect_uri does not match the app's registered URIs</h1>", status=400)
        state = params.get("state", "")
        if request.method == "GET":
            hidden = "".join(
                f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">' for k, v in params.items()
            )
            return Response.html(
                f"""<!doctype html><html lang="en"><head><title>{html.escape(self.app.display_name)} sandbox
                — authorise</title></head><body><main><h1>{html.escape(self.app.display_name)} sandbox</h1>
                <p>The app <strong>{html.escape(client.client_id)}</strong> asks to access your sandbox
                account with scopes: <code>{html.escape(params.get("scope", ""))}</code>.</p>
                <form method="post">{hidden}
                <button type="submit" name="decision" value="allow" id="allow">Allow</button>
                <button type="submit" name="decision" value="deny" id="deny">Deny</button></form></main>
                </body></html>"""
            )
        sep = "&" if "?" in redirect_uri else "?"
        if params.get("decision") != "allow":
            return Response.redirect(
                redirect_uri
                + sep
                + urlencode({"error": "access_denied", "error_description": "The user denied access", "state": state})
            )
        code = secrets.token_urlsafe(24)
        with self.lock:
            self.codes[code] = {
                "client_id": client.client_id,
                "redirect_uri": redirect_uri,
                "scopes": params.get("scope", "").replace(",", " ").split(),
                "code_challenge": params.get("code_challenge"),
                "code_challenge_method": params.get("code_challenge_method"),
                "issued": time.time(),
            }
        return Response.redirect(redirect_uri + sep + urlencode({"code": code, "state": state}))

    def _client_from(self, request: Request, form: dict[str, str]) -> OAuthClient | None:
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        auth = request.header("authorization", "")
        if auth.lower().startswith("basic "):
            try:
                client_id, client_secret = base64.b64decode(auth[6:]).decode().split(":", 1)
            except ValueError:
                return None
        client = self.clients.get(client_id or "")
        if client is None or not secrets.compare_digest(client.client_secret, client_secret or ""):
            return None
        return client

    def exchange(self, request: Request) -> tuple[IssuedToken | None, str | None, str | None]:
        """Handle the token endpoint. Returns (token, error, error_description)."""
        form = request.form()
        with self.lock:
            self.token_calls += 1
        client = self._client_from(request, form)
        if client is None:
            return None, "invalid_client", "Client authentication failed"
        grant = form.get("grant_type")
        if grant == "authorization_code":
            with self.lock:
                entry = self.codes.pop(form.get("code", ""), None)  # single use
            if entry is None or entry["client_id"] != client.client_id:
                return None, "invalid_grant", "The authorization code is invalid or was already used"
            if form.get("redirect_uri") != entry["redirect_uri"]:
                return None, "invalid_grant", "redirect_uri does not match"
            if entry["code_challenge"]:
                verifier = form.get("code_verifier", "")
                digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
                if digest != entry["code_challenge"]:
                    return None, "invalid_grant", "PKCE code_verifier does not match the code_challenge"
            return self.issue(client.client_id, entry["scopes"]), None, None
        if grant == "refresh_token":
            with self.lock:
                self.refresh_calls += 1
                failure, self.fail_next_refresh = self.fail_next_refresh, None
            if failure:
                return None, failure, "The refresh token is invalid or was revoked"
            with self.lock:
                old = self.refresh_tokens.get(form.get("refresh_token", ""))
            if old is None or old.revoked or old.client_id != client.client_id:
                return None, "invalid_grant", "The refresh token is invalid or was revoked"
            new = self.issue(client.client_id, old.scopes, old.account_ref, with_refresh=self.rotate_refresh_tokens)
            if self.rotate_refresh_tokens:
                with self.lock:
                    old.revoked = True
                    self.refresh_tokens.pop(old.refresh_token or "", None)
            else:
                new.refresh_token = old.refresh_token
            return new, None, None
        return None, "unsupported_grant_type", f"grant_type {grant!r} is not supported"

    def revoke(self, token_value: str) -> bool:
        with self.lock:
            token = self.refresh_tokens.get(token_value) or self.access_tokens.get(token_value)
            if token is None:
                return False
            token.revoked = True
            for other in self.access_tokens.values():
                if other.refresh_token and other.refresh_token == token.refresh_token:
                    other.revoked = True
            return True


# ---------------------------------------------------------------------------------------------
# The emulator app


class EmulatorApp:
    """Base of every emulator: routing, faults, rate limits, a request log and the control API.

    Subclasses set ``name``/``display_name``, register routes in ``__init__`` with ``route``, and
    override ``authenticate`` (which bearer/API-key scheme the vendor uses), and the vendor-shaped
    answers ``rate_limited``, ``server_error`` and ``expired_token``.
    """

    name = "emulator"
    display_name = "Emulator"

    def __init__(self) -> None:
        self.routes: list[tuple[str, re.Pattern[str], Handler, bool]] = []
        self.faults = FaultPlan()
        self.log: list[LoggedRequest] = []
        self.log_lock = threading.Lock()
        self.secrets_issued: list[str] = []  # every secret handed out, for "never logged" scans
        self.lock = threading.RLock()  # guards the emulator's record store
        self.base_url = ""  # set when served
        self.route("GET", r"/__sandbox__/state", self._control_state, auth=False)
        self.route("POST", r"/__sandbox__/faults", self._control_faults, auth=False)
        self.route("POST", r"/__sandbox__/reset", self._control_reset, auth=False)

    # -- routing ----------------------------------------------------------------------------------
    def route(self, method: str, pattern: str, handler: Handler, *, auth: bool = True) -> None:
        """Register ``handler`` for ``method`` and a path regex (named groups become params).

        ``auth=True`` routes pass through ``authenticate`` first and count against rate limits.
        """
        self.routes.append((method.upper(), re.compile(f"^{pattern}$"), handler, auth))

    def authenticate(self, request: Request) -> Response | None:
        """Check credentials; return an error Response to refuse, or None and set request.token."""
        return None

    def check_rate_limit(self, request: Request) -> Response | None:
        """Count the request against the vendor's limits; return the vendor's refusal when over."""
        return None

    def add_rate_headers(self, request: Request, response: Response) -> None:
        """Add the vendor's rate-limit headers to every authenticated answer."""

    def rate_limited(self, request: Request) -> Response:
        return Response.json({"error": "rate limited"}, status=429, headers={"Retry-After": "1"})

    def server_error(self, request: Request) -> Response:
        return Response.json({"error": "internal error"}, status=500)

    def expired_token(self, request: Request) -> Response:
        return Response.json({"error": "token expired"}, status=401)

    def not_found(self, request: Request) -> Response:
        return Response.json({"error": f"no route for {request.method} {request.path}"}, status=404)

    def reset(self) -> None:
        """Forget records and faults (subclasses extend to clear their stores)."""
        self.faults.clear()
        with self.log_lock:
            self.log.clear()

    def state(self) -> dict[str, Any]:
        """What the control API's /__sandbox__/state shows (subclasses add their record counts)."""
        return {"name": self.name, "requests": len(self.log), "pending_faults": self.faults.pending()}

    # -- dispatch ---------------------------------------------------------------------------------
    def requests_to(self, method: str, path_regex: str) -> list[LoggedRequest]:
        pattern = re.compile(path_regex)
        with self.log_lock:
            return [r for r in self.log if r.method == method and pattern.search(r.path)]

    def handle(self, request: Request) -> Response:
        for method, pattern, handler, auth in self.routes:
            match = pattern.match(request.path)
            if match and method == request.method:
                request.params = {k: v for k, v in match.groupdict().items() if v is not None}
                if not auth:
                    return handler(request)
                fault = self.faults.take(request.path)
                if fault is not None:
                    refusal = self._apply_fault(fault, request)
                    if refusal is not None:
                        return refusal
                refusal = self.authenticate(request)
                if refusal is not None:
                    return refusal
                refusal = self.check_rate_limit(request)
                if refusal is not None:
                    return refusal
                response = handler(request)
                self.add_rate_headers(request, response)
                return response
        return self.not_found(request)

    def _apply_fault(self, fault: Fault, request: Request) -> Response | None:
        if fault.kind == "rate_limit":
            return self.rate_limited(request)
        if fault.kind == "server_error":
            return self.server_error(request)
        if fault.kind == "drop":
            raise DropConnection
        if fault.kind == "slow":
            time.sleep(fault.seconds or 30)
            return None
        if fault.kind == "expire_token":
            return self.expired_token(request)
        return None

    # -- control API --------------------------------------------------------------------------------
    def _control_state(self, request: Request) -> Response:
        return Response.json(self.state())

    def _control_faults(self, request: Request) -> Response:
        body = request.json() or {}
        try:
            if "chaos_rate" in body:
                self.faults.chaos(
                    float(body["chaos_rate"]),
                    tuple(body.get("kinds", FAULT_KINDS)),
                    float(body.get("slow_seconds", 0)),
                    int(body.get("seed", 0)),
                )
            if "kind" in body:
                self.faults.inject(
                    body["kind"], int(body.get("count", 1)), body.get("path_prefix", ""), float(body.get("seconds", 0))
                )
            if body.get("clear"):
                self.faults.clear()
        except (ValueError, TypeError) as exc:
            return Response.json({"error": str(exc)}, status=400)
        return Response.json({"pending_faults": self.faults.pending(), "chaos_rate": self.faults.chaos_rate})

    def _control_reset(self, request: Request) -> Response:
        self.reset()
        return Response.json({"reset": True})


# ---------------------------------------------------------------------------------------------
# Serving


class _QuietThreadingServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def handle_error(self, request, client_address) -> None:
        # Clients that hang up mid-answer (timeouts under test) are expected; stay quiet.
        return


def _make_handler(app: EmulatorApp) -> type[BaseHTTPRequestHandler]:
    class _Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Without this each keep-alive answer can stall ~40 ms (crm-reference.md §11.11).
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            return

        def _serve(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            request = Request(
                method=self.command,
                path=parts.path,
                query=parse_qs(parts.query, keep_blank_values=True),
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body,
            )
            try:
                response = app.handle(request)
            except DropConnection:
                with app.log_lock:
                    app.log.append(LoggedRequest(request.method, request.path, 0, time.time(), request.query))
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return
            except Exception as exc:  # an emulator bug must show as a 500, not a hung client
                response = Response.json({"error": f"emulator error: {type(exc).__name__}: {exc}"}, status=500)
            if not request.path.startswith("/__sandbox__/"):
                with app.log_lock:
                    app.log.append(
                        LoggedRequest(request.method, request.path, response.status, time.time(), request.query)
                    )
            self.send_response(response.status)
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(response.body)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _serve

    return _Handler


class LocalCA:
    """A certificate authority made on this machine, kept in ``directory`` so it can be trusted."""

    def __init__(self, directory: Path) -> None:
        import trustme

        directory.mkdir(parents=True, exist_ok=True)
        self.ca_path = directory / "sandbox-ca.pem"
        self.cert_path = directory / "sandbox-server.pem"
        self._ca = trustme.CA()
        self._ca.cert_pem.write_to_path(str(self.ca_path))
        server_cert = self._ca.issue_cert("127.0.0.1", "localhost", "::1")
        server_cert.private_key_and_cert_chain_pem.write_to_path(str(self.cert_path))

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(self.cert_path))
        return context


class EmulatorServer:
    """Serve an ``EmulatorApp`` on 127.0.0.1 (port 0 picks a free one) in a background thread."""

    def __init__(self, app: EmulatorApp, port: int = 0, tls: LocalCA | None = None) -> None:
        self.app = app
        self.tls = tls
        self.httpd = _QuietThreadingServer(("127.0.0.1", port), _make_handler(app))
        if tls is not None:
            self.httpd.socket = tls.server_context().wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        scheme = "https" if tls else "http"
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        app.base_url = self.url
        self._thread: threading.Thread | None = None

    def start(self) -> EmulatorServer:
        self._thread = threading.Thread(target=self.httpd.serve_forever, name=f"sandbox-{self.app.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
