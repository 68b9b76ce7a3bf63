"""``SalesforceEmulator``: one Salesforce org on loopback, built on ``integrations.sandbox.core``.

The same server answers the login host (``/services/oauth2/*``, ``/id/…``) and the instance host
(``/services/data/vXX.X/…``); ``instance_url`` in token answers is the server's own base URL. Routes
live in ``oauth``, ``rest``, ``composite``, ``bulk`` and ``tooling``; records in ``store``; this module
holds authentication, limits, the fault hooks and the helpers tests use.
"""

from __future__ import annotations

import json
import random
import tempfile
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from integrations.sandbox.core import (
    EmulatorApp,
    EmulatorServer,
    IssuedToken,
    LocalCA,
    OAuthClient,
    OAuthServer,
    Request,
    Response,
    SlidingWindowLimiter,
)
from integrations.sandbox.salesforce.bulk import BulkRoutes, IngestJob
from integrations.sandbox.salesforce.composite import CompositeRoutes
from integrations.sandbox.salesforce.errors import INVALID_SESSION, REQUEST_LIMIT_EXCEEDED, SfError, json_error
from integrations.sandbox.salesforce.ids import IdFactory, normalize_id
from integrations.sandbox.salesforce.limits import Counters, RollingAllocation, route_kind
from integrations.sandbox.salesforce.oauth import OAuthRoutes, bad_token
from integrations.sandbox.salesforce.query import QueryEngine
from integrations.sandbox.salesforce.rest import RestRoutes
from integrations.sandbox.salesforce.schema import SObject, custom_field, standard_objects
from integrations.sandbox.salesforce.store import Actor, Change, Store
from integrations.sandbox.salesforce.tooling import ToolingRoutes

DATA_PREFIX = "/services/data/"
IDENTITY_PREFIXES = ("/id/", "/services/oauth2/userinfo")


class SalesforceEmulator(EmulatorApp):
    """One Salesforce org. Constructor options (keyword-only):

    client_id, client_secret, redirect_uris — the default connected app; default_scopes — granted
    when an authorize request names none; session_timeout (s, default 2 h; None = never) — access
    tokens expire after this much inactivity (Salesforce sends no ``expires_in``);
    rotate_refresh_tokens (default off); daily_limit (rolling 24 h, default 100,000);
    per_second_limit (requests per second for the whole org, default off); query_batch_size
    (default 2,000); max_open_cursors (query locators kept per org, oldest released first);
    customize_application (may the integration user create custom fields via Tooling);
    server_error_status (500 UNKNOWN_EXCEPTION or 503 SERVER_UNAVAILABLE for injected server errors);
    org_id, integration_username; clock (a callable returning an aware datetime, for record times).
    """

    name = "salesforce"
    display_name = "Salesforce"
    latest_version = 62

    def __init__(
        self,
        *,
        client_id: str = "capsule-sandbox-client",
        client_secret: str = "capsule-sandbox-secret",
        redirect_uris: Iterable[str] = ("http://127.0.0.1:8000/integrations/oauth/salesforce/callback",),
        default_scopes: Iterable[str] = ("api", "refresh_token", "id"),
        session_timeout: float | None = 7200.0,
        rotate_refresh_tokens: bool = False,
        daily_limit: int = 100_000,
        per_second_limit: int | None = None,
        query_batch_size: int = 2000,
        max_open_cursors: int = 10,
        customize_application: bool = True,
        server_error_status: int = 500,
        org_id: str | None = None,
        integration_username: str = "integration@capsule-sandbox.example.com",
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        super().__init__()
        self.ids = IdFactory()
        self.org_id = normalize_id(org_id) if org_id else self.ids.new("00D")
        self.oauth = OAuthServer(
            self,
            access_token_ttl=session_timeout,
            rotate_refresh_tokens=rotate_refresh_tokens,
            token_prefix=f"{self.org_id[:15]}!",  # Salesforce session ids start with the org id
        )
        self.client = self.oauth.register_client(client_id, client_secret, list(redirect_uris))
        self.default_scopes = list(default_scopes)
        self.session_timeout = session_timeout
        self.allocation = RollingAllocation(daily_limit)
        self.per_second = SlidingWindowLimiter(per_second_limit, 1.0) if per_second_limit else None
        self.query_batch_size, self.max_open_cursors = query_batch_size, max_open_cursors
        self.customize_application = customize_application
        self.server_error_status = server_error_status
        self.counters = Counters()
        self.ca: LocalCA | None = None
        self._clock = clock
        self._users: list[dict[str, Any]] = []
        self._new_store()
        self.integration_user_id = self.add_user(integration_username, "Capsule", "Integration")
        self.admin_user_id = self.add_user("admin@capsule-sandbox.example.com", "Sandbox", "Admin")
        self.add_user("rep@capsule-sandbox.example.com", "Sales", "Rep")
        self.store.changes.clear()  # set-up users are not changes anyone syncs
        for routes in (OAuthRoutes, RestRoutes, CompositeRoutes, BulkRoutes, ToolingRoutes):
            routes(self).register()

    def _new_store(self) -> None:
        with self.lock:
            self.store = Store(standard_objects(), self.ids, self._clock)
            self.queries = QueryEngine(self.store, self.query_batch_size, self.max_open_cursors)
            self.jobs: dict[str, IngestJob] = {}
            self.custom_fields: dict[str, dict[str, Any]] = {}
            for user in self._users:
                self.store.adopt(self.store.schema["User"], user)

    # -- routing and request helpers -------------------------------------------------------------------
    def api(self, method: str, pattern: str, handler: Callable[[Request], Response], *, auth: bool = True) -> None:
        """Register a handler that runs under the store lock and answers ``SfError`` in Salesforce's shape."""

        def run(request: Request) -> Response:
            try:
                with self.lock:
                    return handler(request)
            except SfError as exc:
                return exc.response()

        self.route(method, pattern, run, auth=auth)

    def not_found(self, request: Request) -> Response:
        # X-Sandbox-Route tells an unknown path apart from a missing record (for the spec route check).
        body = [{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}]
        return Response.json(body, status=404, headers={"X-Sandbox-Route": "none"})

    def dispatch(self, method: str, url: str, body: Any, parent: Request) -> Response:
        """Run a data-API request inside this one (composite sub-requests): no faults, no extra API call."""
        parts = urlsplit(url)
        request = Request(
            method,
            parts.path,
            parse_qs(parts.query, keep_blank_values=True),
            dict(parent.headers),
            json.dumps(body).encode() if body is not None else b"",
        )
        request.token = parent.token
        # Any data-API route may be a sub-request except the composite resource itself.
        if parts.path.startswith(DATA_PREFIX) and not parts.path.rstrip("/").endswith("/composite"):
            for route_method, pattern, handler, _auth in self.routes:
                match = pattern.match(parts.path)
                if match and route_method == method:
                    request.params = {k: v for k, v in match.groupdict().items() if v is not None}
                    return handler(request)
        return self.not_found(request)

    @staticmethod
    def base(request: Request) -> str:
        return f"/services/data/v{request.params['version']}"

    @staticmethod
    def json_body(request: Request) -> Any:
        try:
            return request.json()
        except (ValueError, UnicodeDecodeError) as exc:
            raise json_error(f"Unexpected character in the JSON body: {exc}") from None

    def sobject_or_404(self, name: str) -> SObject:
        sobject = self.store.sobject(name)
        if sobject is None:
            raise SfError(404, "NOT_FOUND", "The requested resource does not exist")
        return sobject

    def actor(self, request: Request) -> Actor:
        issued = self.oauth.token_for(request.token or "")
        return Actor(
            self.user_of(request.token or ""),
            issued.client_id if issued else None,
            request.params.get("version", f"{self.latest_version}.0"),
        )

    def user_of(self, access_token: str) -> str:
        issued = self.oauth.token_for(access_token)
        if issued is not None and issued.account_ref in self.store.records["User"]:
            return issued.account_ref
        return self.integration_user_id

    def user_record(self, user_id: str) -> dict[str, Any]:
        return self.store.records["User"][user_id]

    def identity_url(self, user_id: str) -> str:
        return f"{self.base_url}/id/{self.org_id}/{user_id}"

    # -- authentication, limits and the fault hooks ----------------------------------------------------
    @staticmethod
    def _bearer(request: Request) -> str | None:
        auth = request.header("authorization") or ""
        scheme, _, value = auth.partition(" ")
        return value.strip() if scheme.lower() in ("bearer", "oauth") and value.strip() else None

    def authenticate(self, request: Request) -> Response | None:
        token = self._bearer(request)
        if self.oauth.token_state(token) != "ok":
            return self._refuse_token(request)
        request.token = token
        if self.session_timeout:
            # Salesforce sessions time out after inactivity: activity in the second half extends them.
            with self.oauth.lock:
                issued = self.oauth.access_tokens[token or ""]
                now = time.time()
                if issued.expires_at is not None and issued.expires_at - now < self.session_timeout / 2:
                    issued.expires_at = now + self.session_timeout
        return None

    def _refuse_token(self, request: Request) -> Response:
        if request.path.startswith(IDENTITY_PREFIXES):
            return bad_token()
        return Response.json(INVALID_SESSION, status=401)

    def check_rate_limit(self, request: Request) -> Response | None:
        if not request.path.startswith(DATA_PREFIX):
            return None
        if self.per_second is not None and not self.per_second.hit(self.org_id)[0]:
            return self.rate_limited(request)
        allowed, _used = self.allocation.take()
        return None if allowed else self.rate_limited(request)

    def add_rate_headers(self, request: Request, response: Response) -> None:
        if request.path.startswith(DATA_PREFIX):
            response.headers["Sforce-Limit-Info"] = f"api-usage={self.allocation.used()}/{self.allocation.limit}"

    def handle(self, request: Request) -> Response:
        if not request.path.startswith("/__sandbox__/"):
            self.counters.call(route_kind(request.path), request.path.startswith(DATA_PREFIX))
        response = super().handle(request)
        self.add_rate_headers(request, response)  # every data-API answer, refusals included (§1.5)
        return response

    def rate_limited(self, request: Request) -> Response:
        """Salesforce has no 429: over-allocation is 403 REQUEST_LIMIT_EXCEEDED (§1.5)."""
        self.counters.refused()
        body = [{"message": "TotalRequests Limit exceeded.", "errorCode": REQUEST_LIMIT_EXCEEDED}]
        return Response.json(body, status=403)

    def server_error(self, request: Request) -> Response:
        if self.server_error_status == 503:
            return Response.json(
                [{"errorCode": "SERVER_UNAVAILABLE", "message": "Server temporarily unavailable."}], 503
            )
        error_id = f"{random.randint(1, 2**31)}-{random.randint(1, 2**20)} ({random.randint(-(2**31), 0)})"
        message = f"An unexpected error occurred. Please include this ErrorId if you contact support: {error_id}"
        return Response.json([{"errorCode": "UNKNOWN_EXCEPTION", "message": message}], status=500)

    def expired_token(self, request: Request) -> Response:
        """The token stays expired afterwards, as a timed-out session would."""
        token = self._bearer(request)
        if token:
            self.oauth.expire(token)
        return self._refuse_token(request)

    # -- set-up and inspection helpers -----------------------------------------------------------------
    def register_client(self, client_id: str, client_secret: str, redirect_uris: list[str]) -> OAuthClient:
        return self.oauth.register_client(client_id, client_secret, redirect_uris)

    def issue_token(
        self, user_id: str | None = None, client_id: str | None = None, scopes: Iterable[str] | None = None
    ) -> IssuedToken:
        """An access + refresh token as if the consent flow had run (``.access_token``, ``.refresh_token``)."""
        return self.oauth.issue(
            client_id or self.client.client_id,
            list(scopes or self.default_scopes),
            account_ref=user_id or self.integration_user_id,
        )

    def add_user(self, username: str, first_name: str, last_name: str, email: str | None = None) -> str:
        with self.lock:
            record = self.store.insert(
                self.store.schema["User"],
                {
                    "Username": username,
                    "FirstName": first_name,
                    "LastName": last_name,
                    "Email": email or username,
                    "Alias": (first_name[:1] + last_name)[:8].lower(),
                },
                Actor(self._users[0]["Id"] if self._users else "005000000000000AAA"),
                system=True,
            )
            if not self._users:  # the first user (the integration user) created itself
                record = dict(record, CreatedById=record["Id"], LastModifiedById=record["Id"])
                self.store.adopt(self.store.schema["User"], record)
            self._users.append(record)
            return record["Id"]

    def add_custom_field(
        self,
        sobject: str,
        name: str,
        type: str,
        length: int | None = None,
        picklist: Iterable[str] | None = None,
        external_id: bool = False,
        unique: bool = False,
        **options: Any,
    ) -> dict[str, Any]:
        """Define a custom field as an admin would (``type`` as describe names it); returns its describe."""
        with self.lock:
            target = self.sobject_or_404(sobject)
            new = custom_field(name, type, length, tuple(picklist or ()), external_id, unique, **options)
            target.add(new)
            return new.describe()

    def _copy(self, sobject: str, record: dict[str, Any]) -> dict[str, Any]:
        return dict(record, attributes={"type": sobject})

    def records(self, sobject: str, include_deleted: bool = False) -> list[dict[str, Any]]:
        """Copies of an object's records (Python values: datetimes, dates, bytes), in creation order."""
        with self.lock:
            name = self.sobject_or_404(sobject).name
            return [self._copy(name, r) for r in self.store.rows(name, include_deleted)]

    def get(self, sobject: str, record_id: str) -> dict[str, Any] | None:
        with self.lock:
            name = self.sobject_or_404(sobject).name
            record = self.store.records[name].get(normalize_id(record_id) or "")
            return self._copy(name, record) if record is not None else None

    def find(self, sobject: str, **field_equals: Any) -> list[dict[str, Any]]:
        """Live records whose fields equal the given values (names and text compared case-insensitively)."""

        def same(a: Any, b: Any) -> bool:
            return a.casefold() == b.casefold() if isinstance(a, str) and isinstance(b, str) else a == b

        with self.lock:
            target = self.sobject_or_404(sobject)
            wanted = {(target.field(k).name if target.field(k) else k): v for k, v in field_equals.items()}
            return [
                self._copy(target.name, r)
                for r in self.store.rows(target.name)
                if all(same(r.get(k), v) for k, v in wanted.items())
            ]

    def create(self, sobject: str, fields: dict[str, Any], user_id: str | None = None) -> str:
        """Create a record as a Salesforce user would in the UI (validated); returns its id."""
        with self.lock:
            return self.store.insert(self.sobject_or_404(sobject), fields, Actor(user_id or self.admin_user_id))["Id"]

    def simulate_user_edit(
        self, sobject: str, record_id: str, fields: dict[str, Any], user_id: str | None = None
    ) -> dict[str, Any]:
        """Change a record as another user (the admin by default), bumping SystemModstamp."""
        with self.lock:
            target = self.sobject_or_404(sobject)
            record = self.store.update(target, record_id, fields, Actor(user_id or self.admin_user_id))
            return self._copy(target.name, record)

    def delete(self, sobject: str, record_id: str, user_id: str | None = None) -> None:
        with self.lock:
            self.store.delete(self.sobject_or_404(sobject), record_id, Actor(user_id or self.admin_user_id))

    def merge(self, sobject: str, master_id: str, duplicate_ids: Iterable[str], user_id: str | None = None) -> None:
        with self.lock:
            target = self.sobject_or_404(sobject)
            self.store.merge(target, master_id, list(duplicate_ids), Actor(user_id or self.admin_user_id))

    def changes_since(self, sequence: int = 0, client_id: str | None = None) -> list[Change]:
        """The change log after ``sequence``; with ``client_id``, only writes made through that OAuth client."""
        with self.lock:
            return [
                c
                for c in self.store.changes
                if c.sequence > sequence and (client_id is None or c.client_id == client_id)
            ]

    @property
    def api_usage(self) -> tuple[int, int]:
        return self.allocation.used(), self.allocation.limit

    def reset(self) -> None:
        """Forget records (users stay), custom fields, jobs, cursors, counters and the daily allocation.

        OAuth clients and issued tokens are kept, so a client connected before the reset still works.
        """
        super().reset()
        self._new_store()
        self.allocation.reset()
        if self.per_second is not None:
            self.per_second.reset()
        self.counters.reset()

    def state(self) -> dict[str, Any]:
        with self.lock:
            objects = {name: len(self.store.rows(name)) for name in self.store.schema}
            deleted = {name: len(rows) - objects[name] for name, rows in self.store.records.items()}
            changes, jobs = len(self.store.changes), len(self.jobs)
        counters = self.counters
        return {
            **super().state(),
            "org_id": self.org_id,
            "objects": objects,
            "deleted": {k: v for k, v in deleted.items() if v},
            "changes": changes,
            "bulk_jobs": jobs,
            "api_usage": {"used": self.allocation.used(), "max": self.allocation.limit},
            "api_calls": counters.api_calls,
            "calls_by_kind": dict(counters.calls_by_kind),
            "bulk_records": counters.bulk_records,
            "limit_refusals": counters.limit_refusals,
        }

    # -- serving ---------------------------------------------------------------------------------------
    def serve(self, port: int = 0) -> EmulatorServer:
        """Start serving over TLS (simple-salesforce always builds https:// URLs, §10.1)."""
        if self.ca is None:
            self.ca = LocalCA(Path(tempfile.mkdtemp(prefix="salesforce-sandbox-ca-")))
        return EmulatorServer(self, port=port, tls=self.ca).start()
