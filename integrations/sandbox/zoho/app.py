"""``ZohoEmulator``: one Zoho CRM org in one data centre, on loopback, built on ``integrations.sandbox.core``.

The same server is the data centre's accounts server (``/oauth/v2/*``, routes in ``oauth``) and its
API domain (``/crm/v2`` … ``/crm/v8``; ``api_domain`` in token answers is the server's own base
URL). Records and COQL live in ``records``, field/user/org metadata in ``meta``, notification
channels in ``notifications``; this module holds authentication, credits and concurrency, the
fault hooks in Zoho's shapes and the helpers tests use.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from integrations.sandbox.core import EmulatorApp, IssuedToken, OAuthClient, OAuthServer, Request, Response
from integrations.sandbox.zoho import errors
from integrations.sandbox.zoho.errors import ZohoError
from integrations.sandbox.zoho.limits import DEFAULT_CREDIT_COSTS, ConcurrencyGate, CreditLedger, coql_credits
from integrations.sandbox.zoho.meta import MetaRoutes
from integrations.sandbox.zoho.notifications import Channel, NotificationRoutes
from integrations.sandbox.zoho.oauth import OAuthRoutes
from integrations.sandbox.zoho.records import RecordRoutes
from integrations.sandbox.zoho.schema import FieldDef, Module, custom_api_name, parse_time
from integrations.sandbox.zoho.store import Rec, Store

API = r"/crm/v(?:[2-8])(?:\.\d)?"
DEFAULT_SCOPES = (
    "ZohoCRM.modules.ALL",
    "ZohoCRM.settings.fields.ALL",
    "ZohoCRM.users.READ",
    "ZohoCRM.org.READ",
    "ZohoCRM.coql.READ",
    "ZohoCRM.notifications.ALL",
)


class ZohoEmulator(EmulatorApp):
    """One Zoho CRM org. Constructor options (keyword-only; defaults from crm-reference §4):

    client_id, client_secret, redirect_uris — the registered OAuth client; access_token_ttl (s,
    3600); location (the data centre code in the consent redirect, "us"); daily_credits (rolling
    24 h, 50,000), credit_costs (route kind -> credits, see ``limits``), concurrency_limit (15,
    Professional) and heavy_concurrency_limit (10); rate_headers (send ``X-RATELIMIT-*``, whose
    names are **UNVERIFIED**); enforce_scopes (401 OAUTH_SCOPE_MISMATCH without the module scope);
    can_create_fields (403 NO_PERMISSION on field creation when False); currencies (Deals'
    ``Currency`` picklist; the first is the org's home currency); max_channel_seconds (a channel
    expires at most this long after it is written, one day); server_error_status;
    upsert_refused_modules (answer 400 NOT_SUPPORTED to upserts there: whether Zoho upserts
    activity modules is **UNVERIFIED**); org_id,
    company_name, user_email; clock (a callable giving an aware datetime, for record times).

    Counters: ``api_calls``, ``calls_by_kind``, ``credits_used``, ``rate_limited_count``; the
    change log is ``changes()``; delivered notifications are in ``deliveries``.
    """

    name = "zoho"
    display_name = "Zoho CRM"

    def __init__(
        self,
        *,
        client_id: str = "capsule-sandbox-client",
        client_secret: str = "capsule-sandbox-secret",
        redirect_uris: Iterable[str] = ("http://127.0.0.1:8000/oauth/callback/zoho/",),
        access_token_ttl: float = 3600,
        location: str = "us",
        daily_credits: int = 50_000,
        credit_costs: dict[str, int] | None = None,
        concurrency_limit: int = 15,
        heavy_concurrency_limit: int = 10,
        rate_headers: bool = True,
        enforce_scopes: bool = False,
        can_create_fields: bool = True,
        currencies: Iterable[str] = ("USD", "EUR", "GBP"),
        max_channel_seconds: float = 86_400,
        server_error_status: int = 500,
        upsert_refused_modules: Iterable[str] = (),
        org_id: str = "5725767",
        company_name: str = "Capsule Sandbox Inc",
        user_email: str = "capsulesync@sandx.com",
        clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        super().__init__()
        self.oauth = OAuthServer(self, access_token_ttl=access_token_ttl, token_prefix="1000.")
        self.client = self.oauth.register_client(client_id, client_secret, list(redirect_uris))
        self.location = location
        self.credit_costs = {**DEFAULT_CREDIT_COSTS, **(credit_costs or {})}
        self.daily_credits = daily_credits
        self.concurrency_limit, self.heavy_concurrency_limit = concurrency_limit, heavy_concurrency_limit
        self.rate_headers, self.enforce_scopes = rate_headers, enforce_scopes
        self.can_create_fields = can_create_fields
        self.currencies = list(currencies)
        self.max_channel_seconds = max_channel_seconds
        self.server_error_status = server_error_status
        self.upsert_refused_modules = set(upsert_refused_modules)
        self.org_id, self.company_name = org_id, company_name
        self._clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self.integration_user = {"name": "Capsule Sync", "id": "5725767000000411001", "email": user_email}
        self.ui_user = {"name": "Sam Rivera", "id": "5725767000000411002", "email": "samrivera@sandx.com"}
        self._counter_lock = threading.Lock()
        self._state_init()
        for routes in (OAuthRoutes, RecordRoutes, MetaRoutes):
            routes(self).register()
        self._notifications = NotificationRoutes(self)
        self._notifications.register()

    def _state_init(self) -> None:
        with self.lock:
            users = {u["id"]: u for u in (self.integration_user, self.ui_user)}
            self.store = Store(self._clock, users)
            self.store.modules["Deals"].fields["Currency"].options = tuple(self.currencies)
            self.channels: dict[str, Channel] = {}
            self.deliveries: list[dict[str, Any]] = []
        with self._counter_lock:
            self.credits = CreditLedger(self.daily_credits)
            self.gate = ConcurrencyGate(self.concurrency_limit, self.heavy_concurrency_limit)
            self.api_calls = 0
            self.calls_by_kind: Counter[str] = Counter()
            self.rate_limited_count = 0

    def reset(self) -> None:
        """Forget records, custom fields, channels, counters and the credit window; keep clients and tokens."""
        super().reset()
        self._state_init()

    def state(self) -> dict[str, Any]:
        with self.lock:
            counts = {name: len(self.store.live(name)) for name in self.store.records}
        return {
            **super().state(),
            "org_id": self.org_id,
            "records": counts,
            "api_calls": self.api_calls,
            "credits_used": self.credits_used,
            "rate_limited": self.rate_limited_count,
            "channels": len(self.channels),
        }

    # -- routing helpers ----------------------------------------------------------------------------
    def api(self, method: str, pattern: str, handler: Callable[[Request], Response], *, auth: bool = True) -> None:
        """Register a handler that runs under the store lock and answers ZohoError in Zoho's shape."""

        def run(request: Request) -> Response:
            try:
                with self.lock:
                    return handler(request)
            except ZohoError as exc:
                return exc.response()

        self.route(method, pattern, run, auth=auth)

    def not_found(self, request: Request) -> Response:
        return errors.url_pattern().response()

    @staticmethod
    def body(request: Request) -> Any:
        try:
            return request.json()
        except (ValueError, UnicodeDecodeError):
            raise errors.bad_body() from None

    def module(self, name: str) -> Module:
        module = self.store.modules.get(name)
        if module is None:
            raise errors.invalid_module(name)
        return module

    # -- authentication -------------------------------------------------------------------------------
    @staticmethod
    def _token(request: Request) -> str | None:
        header = request.header("authorization", "") or ""
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "zoho-oauthtoken":
            return None
        return value.strip() or None

    def authenticate(self, request: Request) -> Response | None:
        token = self._token(request)
        if token is None:  # no header, or another scheme such as Bearer (crm-reference §4.1)
            return ZohoError(401, "AUTHENTICATION_FAILURE", "Authentication failed", {}).response()
        if self.oauth.token_state(token) != "ok":
            return self.expired_token(request)
        request.token = token
        if self.enforce_scopes:
            refusal = self._scope_refusal(request, token)
            if refusal is not None:
                return refusal
        return None

    def issue_token(self, scopes: Iterable[str] | None = None) -> IssuedToken:
        """An access + refresh token as if the consent flow had run (tests that skip the browser)."""
        return self.oauth.issue(self.client.client_id, list(scopes or DEFAULT_SCOPES), account_ref=self.org_id)

    def register_client(self, client_id: str, client_secret: str, redirect_uris: list[str]) -> OAuthClient:
        return self.oauth.register_client(client_id, client_secret, redirect_uris)

    def _scope_refusal(self, request: Request, token: str) -> Response | None:
        issued = self.oauth.token_for(token)
        granted = {s.lower() for s in (issued.scopes if issued else [])}  # scopes are case-insensitive
        needed = scopes_for(request.method, request.path)
        if not needed or granted & {n.lower() for n in needed}:
            return None
        return ZohoError(401, "OAUTH_SCOPE_MISMATCH", "invalid oauth scope to access this URL", {}).response()

    # -- limits ---------------------------------------------------------------------------------------
    def route_kind(self, request: Request) -> str:
        path, method = request.path, request.method
        rest = path.split("/", 3)[3] if path.count("/") >= 3 else ""
        if rest.startswith("coql"):
            return "coql"
        if rest.startswith("settings/fields"):
            return "fields"
        if rest.startswith("users"):
            return "users"
        if rest.startswith("org"):
            return "org"
        if rest.startswith("actions/watch"):
            return "notifications"
        if rest.endswith("/search"):
            return "search"
        if rest.endswith("/upsert"):
            return "upsert"
        return "write" if method in ("POST", "PUT", "PATCH", "DELETE") else "records"

    def _heavy(self, request: Request, kind: str) -> bool:
        if kind in ("coql", "search"):
            return True
        if kind in ("write", "upsert"):
            try:
                data = (request.json() or {}).get("data")
            except (ValueError, AttributeError, UnicodeDecodeError):
                return False
            return isinstance(data, list) and len(data) > 10
        return False

    def _credits_for(self, request: Request, kind: str) -> int:
        if kind == "coql":
            try:
                query = str((request.json() or {}).get("select_query") or "")
            except (ValueError, AttributeError, UnicodeDecodeError):
                query = ""
            # "limit n", "limit n offset m" or "limit m, n": the row count asked for decides the cost.
            tail = (
                query.lower().rpartition(" limit ")[2].replace(",", " , ").split() if " limit " in query.lower() else []
            )
            count = tail[2] if len(tail) > 2 and tail[1] == "," else (tail[0] if tail else "200")
            return coql_credits(int(count) if count.isdigit() else 200) * self.credit_costs["coql"]
        return self.credit_costs.get(kind, 1)

    def handle(self, request: Request) -> Response:
        if not request.path.startswith("/crm/"):
            return super().handle(request)
        kind = self.route_kind(request)
        heavy = self._heavy(request, kind)
        with self._counter_lock:
            self.api_calls += 1
            self.calls_by_kind[kind] += 1
        if not self.gate.enter(heavy):
            return self._too_many("TOO_MANY_REQUESTS", "concurrency limit exceeded", {})
        try:
            return super().handle(request)
        finally:
            self.gate.leave(heavy)

    def check_rate_limit(self, request: Request) -> Response | None:
        if self.credits.spend(self._credits_for(request, self.route_kind(request))):
            return None
        return self._too_many(
            "LIMIT_EXCEEDED",
            "API credits for the rolling 24-hour window are exhausted",
            {"limit": self.daily_credits, "retry_after_seconds": self.credits.seconds_until_free()},
        )

    def _rate_header_values(self) -> dict[str, str]:
        if not self.rate_headers:
            return {}
        return {"X-RATELIMIT-LIMIT": str(self.daily_credits), "X-RATELIMIT-REMAINING": str(self.credits.remaining())}

    def add_rate_headers(self, request: Request, response: Response) -> None:
        response.headers.update(self._rate_header_values())

    def _too_many(self, code: str, message: str, details: dict[str, Any]) -> Response:
        with self._counter_lock:
            self.rate_limited_count += 1
        return ZohoError(429, code, message, details).response(headers=self._rate_header_values())

    @property
    def credits_used(self) -> int:
        return self.credits.used()

    # -- the core's fault hooks in Zoho's shapes ------------------------------------------------------
    def rate_limited(self, request: Request) -> Response:
        return self._too_many("TOO_MANY_REQUESTS", "concurrency limit exceeded", {})

    def server_error(self, request: Request) -> Response:
        return ZohoError(self.server_error_status, "INTERNAL_ERROR", "Internal server error occurred.", {}).response()

    def expired_token(self, request: Request) -> Response:
        """401 INVALID_TOKEN; a live token named by the request stays expired afterwards, as a real one would."""
        token = self._token(request)
        if token and self.oauth.token_state(token) == "ok":
            self.oauth.expire(token)
        return ZohoError(401, "INVALID_TOKEN", "invalid oauth token", {}).response()

    # -- helpers for tests and the demo (thread-safe) ------------------------------------------------
    def records(self, module: str) -> list[dict[str, Any]]:
        """Live records of a module as Zoho answers them, oldest first."""
        with self.lock:
            return [rec.wire() for rec in self.store.live(self.module(module).api_name)]

    def get(self, module: str, record_id: str) -> dict[str, Any] | None:
        with self.lock:
            rec = self.store.get(module, str(record_id))
            return rec.wire() if rec else None

    def find(self, module: str, email: str) -> dict[str, Any] | None:
        with self.lock:
            rec = self.store.match(module, "Email", email)
            return rec.wire() if rec else None

    def notes(self) -> list[dict[str, Any]]:
        return self.records("Notes")

    def add_custom_field(
        self,
        module: str,
        label: str,
        data_type: str = "text",
        *,
        api_name: str | None = None,
        unique: bool = False,
        length: int | None = None,
        options: Iterable[str] = (),
    ) -> str:
        """Define a custom field as an admin would in Setup; returns its API name."""
        with self.lock:
            target = self.module(module)
            definition = FieldDef(
                api_name or custom_api_name(label),
                label,
                data_type,
                custom=True,
                unique=unique,
                length=length,
                options=tuple(options),
                id=self.store.next_id(),
            )
            target.add(definition)
            return definition.api_name

    def create_record(self, module: str, values: dict[str, Any]) -> str:
        """A record made by a person in the Zoho UI (``Created_By``/``Modified_By`` the UI user)."""
        with self.lock:
            target = self.module(module)
            cleaned = self.store.clean(target, values, 0, None)
            return self.store.insert(target, cleaned, self.ui_user).id

    def edit_in_ui(self, module: str, record_id: str, values: dict[str, Any]) -> None:
        """Change fields as a Zoho user would (``Modified_By`` becomes that user), for inbound tests."""
        with self.lock:
            target = self.module(module)
            rec = self._must(module, record_id)
            self.store.update(rec, self.store.clean(target, values, 0, rec), self.ui_user)

    def delete_in_ui(self, module: str, record_id: str) -> None:
        with self.lock:
            self.store.delete(self._must(module, record_id), self.ui_user)

    def set_modified(self, module: str, record_ids: Iterable[str], when: dt.datetime | str) -> None:
        """Give records one ``Modified_Time`` (a mass update does that), to test paging at a boundary."""
        moment = parse_time(when) if isinstance(when, str) else when
        with self.lock:
            for record_id in record_ids:
                self._must(module, record_id).modified = moment.astimezone(dt.UTC).replace(microsecond=0)

    def _must(self, module: str, record_id: str) -> Rec:
        rec = self.store.get(module, str(record_id))
        if rec is None:
            raise KeyError(f"no live {module} record {record_id}")
        return rec

    def changes(self, since: dt.datetime | None = None) -> list[Any]:
        with self.lock:
            return [c for c in self.store.changes if since is None or c.at >= since]

    def send_notification(self, channel_id: str, module: str, operation: str, ids: Iterable[str], **kwargs: Any):
        """POST Zoho's callback for ``ids`` to the channel's notify URL; see NotificationRoutes.send."""
        return self._notifications.send(channel_id, module, operation, list(ids), **kwargs)

    def callback_body(self, channel_id: str, module: str, operation: str, ids: Iterable[str], **kwargs: Any):
        return self._notifications.body(channel_id, module, operation, list(ids), **kwargs)


def scopes_for(method: str, path: str) -> tuple[str, ...]:
    """The scopes one of which a request needs (crm-reference §4.1; spec ``security`` blocks)."""
    rest = path.split("/", 3)[3] if path.count("/") >= 3 else ""
    if rest.startswith("coql"):
        return ("ZohoCRM.coql.READ", "ZohoCRM.modules.ALL")
    if rest.startswith("settings/fields"):
        read = ("ZohoCRM.settings.fields.READ",) if method == "GET" else ()
        return (*read, "ZohoCRM.settings.fields.ALL", "ZohoCRM.settings.ALL")
    if rest.startswith("users"):
        return ("ZohoCRM.users.READ", "ZohoCRM.users.ALL")
    if rest.startswith("org"):
        return ("ZohoCRM.org.READ", "ZohoCRM.org.ALL")
    if rest.startswith("actions/watch"):
        return ("ZohoCRM.notifications.ALL",)
    module = rest.split("/", 1)[0]
    operation = {"GET": "READ", "POST": "CREATE", "PUT": "WRITE", "PATCH": "WRITE", "DELETE": "DELETE"}.get(
        method, "ALL"
    )
    return ("ZohoCRM.modules.ALL", f"ZohoCRM.modules.{module}.ALL", f"ZohoCRM.modules.{module}.{operation}")
