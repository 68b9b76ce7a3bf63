"""The Pipedrive sandbox: one company on loopback, faithful to Pipedrive's wire format.

What it covers (crm-reference.md §3, §11.3, §12 Pipedrive):

- OAuth 2.0 at ``/oauth/authorize`` (a consent page with ``allow``/``deny``), ``/oauth/token`` and
  ``/oauth/revoke``, with **HTTP Basic client authentication** only (§3.1); the token answer
  carries ``api_domain`` (this emulator's base URL), ``expires_in`` and a comma-separated
  ``scope``; refresh tokens are single-use and rotate by default (the "already exchanged" error
  text of §3.1). API tokens (40 hex characters, one per user) travel in the ``x-api-token``
  header, as Pipedrive's authentication guide and official SDKs send them, or in the
  ``api_token`` query parameter that older clients (pipedrive-python-lib) use.
- API v2 for persons, organizations, deals, activities, search and fields (``v2.py``); v1 for notes,
  leads, webhooks, users and activity types, and the deprecated v1 routes that a switch turns
  into 410 Gone (``v1.py``).
- Rate limits (§3.5): a burst window of requests per token per 2 seconds (``x-ratelimit-limit``,
  ``x-ratelimit-remaining``, ``x-ratelimit-reset`` on every answer) and the company's daily token
  budget, which v2 calls spend at half the rate of v1 calls (``x-daily-ratelimit-token-limit``,
  ``x-daily-ratelimit-token-remaining`` — names seen in third-party clients, UNVERIFIED in
  Pipedrive's docs). Search endpoints have their own, lower burst limit (10 per 2 s), counted on
  top of the token's window; which headers a search answer carries is not documented, so every
  answer states the token's window. Over any of them: 429.
- Faults through ``integrations.sandbox.core`` in Pipedrive's shapes, webhooks v2 out
  (``webhooks.py``), inspection helpers and counters for tests.
"""

from __future__ import annotations

import copy
import math
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from integrations.sandbox.core import (
    EmulatorApp,
    IssuedToken,
    OAuthServer,
    Request,
    Response,
    SlidingWindowLimiter,
)
from integrations.sandbox.pipedrive.records import Change, Records
from integrations.sandbox.pipedrive.v1 import GONE, V1Routes, is_deprecated_v1
from integrations.sandbox.pipedrive.v2 import V2Routes
from integrations.sandbox.pipedrive.webhooks import WebhookSender
from integrations.sandbox.pipedrive.wire import TOKEN_COSTS, ApiError, error, parse_time, v2_time

OUR_USER_ID, UI_USER_ID = 1, 2
DEFAULT_SCOPES = (
    "base",
    "contacts:full",
    "deals:full",
    "activities:full",
    "leads:full",
    "search:read",
    "users:read",
    "admin",
    "contact-fields:full",
    "deal-fields:full",
)


class PipedriveEmulator(V2Routes, V1Routes, WebhookSender, EmulatorApp):
    """One Pipedrive company. Constructor options (keyword-only):

    company_id, company_name, company_domain, client_id, client_secret, redirect_uris, user_email,
    access_token_ttl (s, 3600 like Pipedrive), rotate_refresh_tokens (True), oauth_limit and
    api_token_limit (requests per ``window_seconds`` per token; Pipedrive's lowest plan: 80 and 20
    per 2 s), search_limit (search requests per ``window_seconds`` per token, 10: the published
    search limit, counted on top of the token's window), daily_token_budget (300,000: the 30,000
    base for a company of ten seats on the base multiplier), admin (whether our user is a company
    admin: webhooks, new fields and activity types need it), currencies (the first is the
    company's), v1_deprecated_gone.

    Counters: ``api_calls``, ``calls_by_route`` ("METHOD /path/{id}"), ``rate_limited_count``,
    ``v1_calls`` (calls to deprecated v1 routes, answered or gone), ``tokens_used`` today.
    """

    name = "pipedrive"
    display_name = "Pipedrive"

    def __init__(
        self,
        *,
        company_id: int = 7_001_001,
        company_name: str = "Capsule Sandbox Ltd",
        company_domain: str = "capsule-sandbox",
        client_id: str = "capsule-sandbox-client",
        client_secret: str = "capsule-sandbox-secret",
        redirect_uris: Any = ("http://127.0.0.1:8000/oauth/callback/pipedrive/",),
        user_email: str = "integration@capsule-sandbox.example.com",
        access_token_ttl: float = 3600,
        rotate_refresh_tokens: bool = True,
        oauth_limit: int = 80,
        api_token_limit: int = 20,
        window_seconds: float = 2.0,
        search_limit: int = 10,
        daily_token_budget: int = 300_000,
        admin: bool = True,
        currencies: tuple[str, ...] = ("EUR", "USD", "GBP"),
        v1_deprecated_gone: bool = False,
    ) -> None:
        super().__init__()
        self.company_id, self.company_name, self.company_domain = company_id, company_name, company_domain
        self.user_email, self.admin, self.currencies = user_email, admin, tuple(currencies)
        self.oauth_limit, self.api_token_limit, self.window_seconds = oauth_limit, api_token_limit, window_seconds
        self.search_limit = search_limit
        self.daily_token_budget = daily_token_budget
        self.v1_deprecated_gone = v1_deprecated_gone
        self.oauth = OAuthServer(
            self, access_token_ttl=access_token_ttl, rotate_refresh_tokens=rotate_refresh_tokens, token_prefix="v1u:"
        )
        self.client = self.oauth.register_client(client_id, client_secret, list(redirect_uris))
        self.api_tokens: dict[str, int] = {}
        self._counter_lock = threading.Lock()
        self._state_init()
        self._register_routes()

    # -- state ---------------------------------------------------------------------------------------
    def _users(self) -> list[dict[str, Any]]:
        base = {
            "default_currency": self.currencies[0],
            "locale": "en_US",
            "lang": 1,
            "activated": True,
            "active_flag": True,
            "timezone_name": "UTC",
            "timezone_offset": "+00:00",
            "icon_url": None,
            "is_deleted": False,
            "has_created_company": True,
        }
        return [
            {
                **base,
                "id": OUR_USER_ID,
                "name": "Capsule Integration",
                "email": self.user_email,
                "is_admin": 1 if self.admin else 0,
                "role_id": 1,
            },
            {
                **base,
                "id": UI_USER_ID,
                "name": "Sam Seller",
                "email": "sam@capsule-sandbox.example.com",
                "is_admin": 0,
                "role_id": 2,
            },
        ]

    def _state_init(self) -> None:
        with self.lock:
            self.records = Records(self.company_id, self._users(), self.currencies)
        with self._counter_lock:
            self._windows = {
                "oauth": SlidingWindowLimiter(self.oauth_limit, self.window_seconds),
                "api_token": SlidingWindowLimiter(self.api_token_limit, self.window_seconds),
            }
            self._search_window = SlidingWindowLimiter(self.search_limit, self.window_seconds)
            self.api_calls = 0
            self.calls_by_route: Counter[str] = Counter()
            self.rate_limited_count = 0
            self.v1_calls = 0
            self.tokens_used, self._budget_day = 0, self._today()

    @property
    def user(self) -> dict[str, Any]:
        return self.records.users[OUR_USER_ID]

    def reset(self) -> None:
        """Forget records, fields, webhooks, counters and windows; keep OAuth clients and tokens."""
        super().reset()
        self._state_init()

    def state(self) -> dict[str, Any]:
        with self.lock:
            counts = {entity: len(self.records.live(entity)) for entity in self.records.items}
            counts.update(notes=len(self.records.notes), leads=len(self.records.leads))
        with self._counter_lock:
            calls = {
                "api_calls": self.api_calls,
                "v1_calls": self.v1_calls,
                "rate_limited": self.rate_limited_count,
                "tokens_used": self.tokens_used,
                "calls_by_route": dict(self.calls_by_route),
            }
        return {
            **super().state(),
            "company_id": self.company_id,
            "records": counts,
            "v1_deprecated_gone": self.v1_deprecated_gone,
            **calls,
        }

    # -- routes ----------------------------------------------------------------------------------------
    def api(self, method: str, pattern: str, handler: Callable[[Request], Response], *, auth: bool = True) -> None:
        """A route that runs under the store lock and answers ApiError in Pipedrive's shape."""

        def run(request: Request) -> Response:
            try:
                with self.lock:
                    return handler(request)
            except ApiError as exc:
                return exc.response()
            except ValueError:  # a body that is not JSON
                return error(400, "Malformed JSON in the request body", code="ERR_SCHEMA_VALIDATION_FAILED")

        self.route(method, pattern, run, auth=auth)

    def _register_routes(self) -> None:
        self.api("GET", r"/oauth/authorize", self.oauth.authorize, auth=False)
        self.api("POST", r"/oauth/authorize", self.oauth.authorize, auth=False)
        self.api("POST", r"/oauth/token", self._token, auth=False)
        self.api("POST", r"/oauth/revoke", self._revoke, auth=False)
        self.route("POST", r"/__sandbox__/settings", self._control_settings, auth=False)
        self.register_v2()
        self.register_v1()

    @staticmethod
    def route_key(method: str, path: str) -> str:
        """ "GET /api/v2/persons/{id}": the path with ids, UUIDs and field hashes folded."""
        parts = []
        for part in path.split("/"):
            if part.isdigit() or (len(part) == 36 and part.count("-") == 4) or (len(part) == 40 and _hex(part)):
                part = "{id}"
            parts.append(part)
        return f"{method} {'/'.join(parts)}"

    def handle(self, request: Request) -> Response:
        api = request.path.startswith(("/api/", "/v1/"))
        if api:
            with self._counter_lock:
                self.api_calls += 1
                self.calls_by_route[self.route_key(request.method, request.path)] += 1
                if is_deprecated_v1(request.path):
                    self.v1_calls += 1
        if api and self.v1_deprecated_gone and is_deprecated_v1(request.path):
            return error(410, "Gone", info=GONE, code="ERR_GONE")
        return super().handle(request)

    def not_found(self, request: Request) -> Response:
        return error(404, f"Unknown method {request.method} {request.path}", code="ERR_NOT_FOUND")

    def _control_settings(self, request: Request) -> Response:
        body = request.json() or {}
        if "v1_deprecated_gone" in body:
            self.v1_deprecated_gone = bool(body["v1_deprecated_gone"])
        if "admin" in body:
            self.admin = bool(body["admin"])
            self.records.users[OUR_USER_ID]["is_admin"] = 1 if self.admin else 0
        return Response.json({"v1_deprecated_gone": self.v1_deprecated_gone, "admin": self.admin})

    # -- authentication [crm-reference §3.1] ---------------------------------------------------------------
    def issue_api_token(self, user_id: int = OUR_USER_ID) -> str:
        """A user's API token (40 hex characters, like Pipedrive's); never expires."""
        token = secrets.token_hex(20)
        with self.lock:
            self.api_tokens[token] = user_id
        self.secrets_issued.append(token)
        return token

    def issue_oauth_token(self, scopes: Any = None) -> IssuedToken:
        """Access and refresh token as if the consent flow had run (for tests that skip the browser)."""
        return self.oauth.issue(self.client.client_id, list(scopes or DEFAULT_SCOPES), account_ref=str(self.company_id))

    @staticmethod
    def _bearer(request: Request) -> str | None:
        auth = request.header("authorization", "") or ""
        return auth[7:].strip() or None if auth.lower().startswith("bearer ") else None

    def _api_token(self, request: Request) -> str | None:
        return request.header("x-api-token") or request.arg("api_token")

    def authenticate(self, request: Request) -> Response | None:
        bearer, api_token = self._bearer(request), self._api_token(request)
        if bearer:
            state = self.oauth.token_state(bearer)
            if state == "expired":
                return self._expired_answer()
            if state == "ok":
                request.token, request.pd_kind, request.pd_user = bearer, "oauth", OUR_USER_ID  # type: ignore[attr-defined]
                return None
        elif api_token and api_token in self.api_tokens:
            request.token, request.pd_kind = api_token, "api_token"  # type: ignore[attr-defined]
            request.pd_user = self.api_tokens[api_token]  # type: ignore[attr-defined]
            return None
        return error(
            401, "unauthorized access", info="Please check the access token or api_token.", code="ERR_UNAUTHORIZED"
        )

    def actor(self, request: Request) -> tuple[int, str]:
        """Who makes this API call, and the change source its writes get ("api")."""
        return getattr(request, "pd_user", OUR_USER_ID), "api"

    def require_admin(self, request: Request) -> None:
        user = self.records.users.get(getattr(request, "pd_user", OUR_USER_ID)) or {}
        if not user.get("is_admin"):
            raise ApiError(
                403,
                "You do not have permission to perform this action: admin rights are required",
                code="ERR_FORBIDDEN",
            )

    def _expired_answer(self) -> Response:
        return error(
            401,
            "Access token expired",
            info="Refresh the access token with the refresh token.",
            code="ERR_ACCESS_TOKEN_EXPIRED",
        )

    # -- rate limits and the daily token budget [crm-reference §3.5] --------------------------------------
    @staticmethod
    def _today() -> str:
        return datetime.now(UTC).strftime("%Y-%m-%d")

    @staticmethod
    def call_kind(method: str, path: str) -> str:
        if path.endswith("/search") or "itemSearch" in path:
            return "search"
        if method != "GET":
            return "write"
        last = path.rstrip("/").rsplit("/", 1)[-1]
        single = last.isdigit() or (len(last) == 36 and last.count("-") == 4) or last == "me"
        return "read" if single else "list"

    def check_rate_limit(self, request: Request) -> Response | None:
        kind = getattr(request, "pd_kind", "api_token")
        version = "v2" if request.path.startswith("/api/v2/") else "v1"
        cost = TOKEN_COSTS[version][self.call_kind(request.method, request.path)]
        with self._counter_lock:
            if self._budget_day != self._today():
                self.tokens_used, self._budget_day = 0, self._today()
            allowed, remaining, reset = self._windows[kind].hit(request.token or "")
            if not allowed:
                return self._too_many(kind, reset, "Request over limit")
            if self.call_kind(request.method, request.path) == "search":
                searched, _left, search_reset = self._search_window.hit(request.token or "")
                if not searched:
                    return self._too_many(kind, search_reset, "Search request over limit")
            if self.tokens_used + cost > self.daily_token_budget:
                return self._too_many(kind, reset, "Daily token budget exhausted", daily_remaining=0)
            self.tokens_used += cost
            request.pd_rate = (self._windows[kind].limit, remaining, reset)  # type: ignore[attr-defined]
        return None

    def _headers(self, limit: int, remaining: int, reset: float, daily_remaining: int | None = None) -> dict[str, str]:
        left = self.daily_token_budget - self.tokens_used if daily_remaining is None else daily_remaining
        return {
            "x-ratelimit-limit": str(limit),
            "x-ratelimit-remaining": str(max(0, remaining)),
            "x-ratelimit-reset": str(max(1, math.ceil(reset))),
            "x-daily-ratelimit-token-limit": str(self.daily_token_budget),
            "x-daily-ratelimit-token-remaining": str(max(0, left)),
        }

    def add_rate_headers(self, request: Request, response: Response) -> None:
        rate = getattr(request, "pd_rate", None)
        if rate is not None:
            with self._counter_lock:
                response.headers.update(self._headers(*rate))

    def _too_many(self, kind: str, reset: float, message: str, *, daily_remaining: int | None = None) -> Response:
        self.rate_limited_count += 1
        limit = self._windows[kind].limit
        headers = self._headers(limit, 0, reset or self.window_seconds, daily_remaining)
        return error(
            429,
            message,
            info="See https://pipedrive.readme.io/docs/core-api-concepts-rate-limiting",
            code="ERR_RATE_LIMIT",
            headers=headers,
        )

    # -- the core's fault hooks in Pipedrive's shapes -----------------------------------------------------
    def rate_limited(self, request: Request) -> Response:
        kind = "oauth" if self._bearer(request) else "api_token"
        with self._counter_lock:
            return self._too_many(kind, self.window_seconds, "Request over limit")

    def server_error(self, request: Request) -> Response:
        return error(500, "Internal server error", code="ERR_INTERNAL")

    def expired_token(self, request: Request) -> Response:
        """401; an OAuth access token stays expired afterwards, as a real one would."""
        bearer = self._bearer(request)
        if bearer:
            self.oauth.expire(bearer)
        return self._expired_answer()

    # -- OAuth endpoints [crm-reference §3.1] ----------------------------------------------------------------
    @staticmethod
    def _oauth_error(status: int, error_code: str, message: str) -> Response:
        # The exact JSON keys of token-endpoint errors are UNVERIFIED (§3.6): Pipedrive's message
        # strings, with the RFC 6749 fields beside them so every client can read them.
        return Response.json(
            {"success": False, "message": message, "error": error_code, "error_description": message}, status=status
        )

    def _basic_client(self, request: Request) -> bool:
        return (request.header("authorization", "") or "").lower().startswith("basic ")

    def _token(self, request: Request) -> Response:
        if not self._basic_client(request):
            with self.oauth.lock:
                self.oauth.token_calls += 1
            return self._oauth_error(401, "invalid_client", "Invalid client: client is invalid")
        form = request.form()
        if not form.get("grant_type"):
            return self._oauth_error(400, "invalid_request", "Missing parameter: grant_type")
        issued, failure, _description = self.oauth.exchange(request)
        if issued is None:
            messages = {
                "invalid_client": (401, "Invalid client: client is invalid"),
                "unsupported_grant_type": (400, "Unsupported grant type"),
            }
            if failure in messages:
                status, message = messages[failure]
            elif form.get("grant_type") == "refresh_token":
                status, message = 400, "Invalid grant: refresh_token is invalid"
            else:
                status, message = 400, "Invalid grant: authorization_code is invalid"
            return self._oauth_error(status, failure or "invalid_grant", message)
        issued.account_ref = str(self.company_id)
        return Response.json(
            {
                "access_token": issued.access_token,
                "token_type": "Bearer",
                "refresh_token": issued.refresh_token,
                "scope": ",".join(issued.scopes or ["base"]),
                "expires_in": int(self.oauth.access_token_ttl or 0),
                "api_domain": self.base_url,
            }
        )

    def _revoke(self, request: Request) -> Response:
        client = self.oauth._client_from(request, {}) if self._basic_client(request) else None
        if client is None:
            return self._oauth_error(401, "invalid_client", "Invalid client: client is invalid")
        token = request.form().get("token", "")
        if not token:
            return self._oauth_error(400, "invalid_request", "Missing parameter: token")
        self.oauth.revoke(token)  # unknown tokens are answered 200 too (RFC 7009 §2.2)
        return Response.json({})

    # -- inspection and set-up helpers for tests (thread-safe) ----------------------------------------------
    def _all(self, entity: str, include_deleted: bool = False) -> list[dict[str, Any]]:
        with self.lock:
            items = self.records.items[entity].values()
            return [
                copy.deepcopy(r)
                for r in sorted(items, key=lambda r: r["id"])
                if include_deleted or not r.get("is_deleted")
            ]

    def persons(self, include_deleted: bool = False) -> list[dict[str, Any]]:
        return self._all("person", include_deleted)

    def deals(self) -> list[dict[str, Any]]:
        return self._all("deal")

    def activities(self) -> list[dict[str, Any]]:
        return self._all("activity")

    def organizations(self) -> list[dict[str, Any]]:
        return self._all("organization")

    def notes(self) -> list[dict[str, Any]]:
        with self.lock:
            return [
                copy.deepcopy(n) for n in sorted(self.records.notes.values(), key=lambda n: n["id"]) if n["active_flag"]
            ]

    def leads(self) -> list[dict[str, Any]]:
        with self.lock:
            return [copy.deepcopy(lead) for lead in self.records.leads.values()]

    def webhooks(self) -> list[dict[str, Any]]:
        with self.lock:
            return [copy.deepcopy(w) for w in self.records.webhooks.values()]

    def changes(self, source: str | None = None) -> list[Change]:
        with self.lock:
            return [c for c in self.records.changes if source is None or c.change_source == source]

    def find_person(self, email: str) -> dict[str, Any] | None:
        """The live person with this e-mail (any of its addresses, any case), lowest id first."""
        wanted = email.strip().casefold()
        with self.lock:
            for person in sorted(self.records.live("person"), key=lambda r: r["id"]):
                if any(e["value"].casefold() == wanted for e in person["emails"]):
                    return copy.deepcopy(person)
        return None

    def add_custom_field(
        self,
        entity: str,
        name: str,
        field_type: str = "varchar",
        options: list[str] | None = None,
        *,
        unique: bool = False,
    ) -> dict[str, Any]:
        """Define a custom field as an admin would in Pipedrive's settings (activities included);
        returns it with its 40-character ``field_code``. ``unique=True`` makes the sandbox refuse a
        second record with the same value (a test aid, not a Pipedrive feature: it lets shared tests
        provoke a record-level 400 the way the other CRMs' unique fields do)."""
        with self.lock:
            field = self.records.fields.add(entity, name, field_type, options, unique=unique)
            for record in self.records.items.get(entity, {}).values():
                record.setdefault("custom_fields", {}).setdefault(field["field_code"], None)
            return copy.deepcopy(field)

    def create_record(self, entity: str, body: dict[str, Any], user_id: int = UI_USER_ID) -> dict[str, Any]:
        """A record created in Pipedrive's interface (change source "app")."""
        with self.lock:
            return copy.deepcopy(self.records.write(entity, body, user_id=user_id, source="app"))

    def edit_in_ui(self, entity: str, ident: int, body: dict[str, Any], user_id: int = UI_USER_ID) -> dict[str, Any]:
        """Change a record as a Pipedrive user would (change source "app"), e.g. for inbound tests."""
        with self.lock:
            return copy.deepcopy(self.records.write(entity, body, user_id=user_id, source="app", ident=ident))

    def delete_in_ui(self, entity: str, ident: int, user_id: int = UI_USER_ID) -> None:
        with self.lock:
            self.records.delete(entity, ident, user_id=user_id, source="app")

    def set_update_time(self, entity: str, ids: list[int], moment: datetime | str) -> None:
        """Give records one update time, as a bulk import does (to test paging over shared times)."""
        stamp = v2_time(parse_time(moment) if isinstance(moment, str) else moment)  # type: ignore[arg-type]
        with self.lock:
            for ident in ids:
                self.records.get(entity, ident)["update_time"] = stamp

    def wait_for_window(self) -> None:
        """Let the burst window empty (tests that count 429s start from a clean window)."""
        time.sleep(self.window_seconds)


def _hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text.lower())


def build(**options: Any) -> PipedriveEmulator:
    """A Pipedrive emulator with ``options`` passed to the constructor (see PipedriveEmulator)."""
    return PipedriveEmulator(**options)
