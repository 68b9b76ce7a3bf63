"""``CopperEmulator``: one Copper account on loopback, built on ``integrations.sandbox.core``.

Authentication (crm-reference §6.1): every API request carries ``X-PW-Application:
developer_api`` and either an API key (``X-PW-AccessToken``) with its owner's e-mail
(``X-PW-UserEmail``), or — for registered partner apps — an OAuth ``Authorization: Bearer``
token. Anything else is 401. A request with a body must say ``Content-Type: application/json``
(415 otherwise; the status Copper uses is UNVERIFIED).

Limits (§6.5): 180 requests per rolling 60 s per user, then 429 with Copper's error body and no
rate-limit headers (none are documented). Faults come from core: ``rate_limit`` (that same 429),
``server_error``, ``slow``, ``drop`` and ``expire_token`` (an OAuth token expires for good; an API
key is refused once).

OAuth (partner apps only): ``/oauth/authorize`` shows core's consent page and ``/oauth/token``
exchanges the code for ``{"access_token", "token_type": "Bearer", "scope": "developer/v1/all"}``
with no expiry and, as in Copper's example, no refresh token (``issue_refresh_tokens=True`` adds
one); a ``refresh_token`` grant works for tokens that have one. Copper delivers the code by POST
to the redirect URI (§6.1); ``code_delivery="post"`` does that with an auto-submitting form, the
default ``"redirect"`` uses a 302 like every other sandbox so this service's callback accepts it.

Routes live in ``records`` (people, leads), ``engagement`` (activities, tasks, opportunities),
``webhooks`` and here (identity, custom field definitions, OAuth); records in ``store``.
"""

from __future__ import annotations

import html
import json
import re
import secrets
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

from integrations.sandbox.copper import fields as custom
from integrations.sandbox.copper.engagement import EngagementRoutes
from integrations.sandbox.copper.errors import CopperError, error_response, not_found
from integrations.sandbox.copper.records import PeopleRoutes, render
from integrations.sandbox.copper.store import ENTITY_OF, RECORD_RESOURCES, Store, User
from integrations.sandbox.copper.webhooks import Delivery, WebhookRoutes, deliver, notification
from integrations.sandbox.core import (
    EmulatorApp,
    IssuedToken,
    OAuthClient,
    OAuthServer,
    Request,
    Response,
    SlidingWindowLimiter,
)

API_PREFIX = "/developer_api/v1/"
SCOPE = "developer/v1/all"  # Copper's only OAuth scope (§6.1)
_ID_SEGMENT = re.compile(r"/\d+(?=/|$)")


@dataclass
class Change:
    """One write the account saw (API or "UI"), for tests that drive webhooks and polling."""

    entity: str  # person, lead, opportunity, task, activity
    record_id: int
    event: str  # new, update, delete
    at: int
    user_id: int | None
    attributes: dict[str, Any] = field(default_factory=dict)


class CopperEmulator(EmulatorApp):
    """One Copper account. Constructor options (keyword-only):

    account_id, account_name; user_name, user_email — the admin user API keys and OAuth tokens
    act as; client_id, client_secret, redirect_uris — the partner OAuth app; rate_limit and
    rate_window (requests per seconds, per user); code_delivery ("redirect" or "post");
    issue_refresh_tokens; allow_http_targets (webhook targets over plain http on any host;
    loopback ones are always taken); currencies (accepted ``monetary_unit`` values); server_error_status; clock (a
    callable returning Unix seconds).

    Counters for tests and benchmarks: ``api_calls``, ``calls_by_route`` ("METHOD path" with ids
    as ``{id}``), ``rate_limited_count``; ``changes`` is the change log, ``deliveries`` every
    webhook notification sent.
    """

    name = "copper"
    display_name = "Copper"

    def __init__(
        self,
        *,
        account_id: int = 900_101,
        account_name: str = "Capsule Sandbox (Copper)",
        user_name: str = "Sandbox Admin",
        user_email: str = "sandbox-admin@copper-sandbox.example.com",
        client_id: str = "capsule-sandbox-client",
        client_secret: str = "capsule-sandbox-secret",
        redirect_uris: Iterable[str] = ("http://127.0.0.1:8000/oauth/callback/copper/",),
        rate_limit: int = 180,
        rate_window: float = 60.0,
        code_delivery: str = "redirect",
        issue_refresh_tokens: bool = False,
        allow_http_targets: bool = False,
        currencies: Iterable[str] = ("USD", "EUR", "GBP"),
        server_error_status: int = 500,
        clock: Callable[[], float] | None = None,
    ) -> None:
        super().__init__()
        if code_delivery not in ("redirect", "post"):
            raise ValueError("code_delivery is 'redirect' or 'post'")
        self.account_id, self.account_name = account_id, account_name
        self.rate_limit, self.rate_window = rate_limit, rate_window
        self.code_delivery = code_delivery
        self.issue_refresh_tokens = issue_refresh_tokens
        self.allow_http_targets = allow_http_targets
        self.currencies = tuple(currencies)
        self.server_error_status = server_error_status
        self._clock = clock
        # Copper's partner tokens carry no expiry in the docs' example: they live until revoked.
        self.oauth = OAuthServer(self, access_token_ttl=None, token_prefix="cu-")
        self.client: OAuthClient = self.oauth.register_client(client_id, client_secret, list(redirect_uris))
        self.store = Store(clock)
        self.admin: User = self.store.add_user(user_name, user_email)
        self._counter_lock = threading.Lock()
        self._state_init()
        self._register_routes()

    # -- state -------------------------------------------------------------------------------------
    def _state_init(self) -> None:
        with self._counter_lock:
            self.limiter = SlidingWindowLimiter(self.rate_limit, self.rate_window)
            self.api_calls = 0
            self.calls_by_route: Counter[str] = Counter()
            self.rate_limited_count = 0
        with self.lock:
            self.changes: list[Change] = []
            self.deliveries: list[Delivery] = []

    def reset(self) -> None:
        """Forget records, custom fields, webhooks, changes, counters and the rate window; keep
        users, API keys, the OAuth app and its tokens."""
        super().reset()
        with self.lock:
            fresh = Store(self._clock)
            fresh.adopt_users(self.store)
            self.store = fresh
        self._state_init()

    def state(self) -> dict[str, Any]:
        with self.lock:
            counts = {resource: len(self.store.records[resource]) for resource in RECORD_RESOURCES}
            subscriptions = len(self.store.webhooks)
        with self._counter_lock:
            calls = {"api_calls": self.api_calls, "rate_limited": self.rate_limited_count}
        return {**super().state(), "account_id": self.account_id, "records": counts, "webhooks": subscriptions, **calls}

    # -- routing -----------------------------------------------------------------------------------
    def _api(self, method: str, path: str, handler: Callable[[Request], Response]) -> None:
        """A Developer API route: under the store lock, CopperError answered in Copper's shape."""

        def run(request: Request) -> Response:
            try:
                with self.lock:
                    return handler(request)
            except CopperError as exc:
                return exc.response()
            except (json.JSONDecodeError, UnicodeDecodeError):
                return error_response(400, "The body is not valid JSON")

        self.route(method, API_PREFIX + path, run)

    def _register_routes(self) -> None:
        self.route("GET", r"/oauth/authorize", self._authorize, auth=False)
        self.route("POST", r"/oauth/authorize", self._authorize, auth=False)
        self.route("POST", r"/oauth/token", self._token, auth=False)
        self._api("GET", "account", self._account)
        self._api("GET", "users/me", lambda r: Response.json(self._user_json(self.store.users[self.user_of(r)])))
        self._api("GET", r"users/(?P<id>\d+)", self._user)
        self._api("GET", "custom_field_definitions", self._definitions)
        self._api("POST", "custom_field_definitions", self._create_definition)
        self._api("GET", r"custom_field_definitions/(?P<id>\d+)", self._definition)
        self._api("DELETE", r"custom_field_definitions/(?P<id>\d+)", self._delete_definition)
        self.people_routes = PeopleRoutes(self)
        self.engagement_routes = EngagementRoutes(self)
        for routes in (self.people_routes, self.engagement_routes, WebhookRoutes(self)):
            routes.register(self._api)

    def not_found(self, request: Request) -> Response:
        return error_response(404, "Resource not found")

    @staticmethod
    def route_key(method: str, path: str) -> str:
        return f"{method} {_ID_SEGMENT.sub('/{id}', path.removeprefix(API_PREFIX))}"

    def handle(self, request: Request) -> Response:
        # Count every API request, including those refused by a fault, the limit or a 401.
        if request.path.startswith(API_PREFIX):
            with self._counter_lock:
                self.api_calls += 1
                self.calls_by_route[self.route_key(request.method, request.path)] += 1
        return super().handle(request)

    # -- authentication and limits -----------------------------------------------------------------
    def authenticate(self, request: Request) -> Response | None:
        if request.header("x-pw-application") != "developer_api":
            return error_response(401, "Unauthorized: X-PW-Application must be developer_api")
        authorization = request.header("authorization") or ""
        if authorization.lower().startswith("bearer "):
            token = authorization[7:].strip()
            state = self.oauth.token_state(token)
            if state != "ok":
                reason = "the access token has expired" if state == "expired" else "invalid access token"
                return error_response(401, f"Unauthorized: {reason}")
            request.token, request.copper_user = token, self.admin.id
        else:
            key, email = request.header("x-pw-accesstoken"), request.header("x-pw-useremail")
            if not key or not email:
                return error_response(401, "Unauthorized: X-PW-AccessToken and X-PW-UserEmail are required")
            user = self.store.users.get(self.store.api_keys.get(key, -1))
            if user is None or user.email != email.strip().lower():
                return error_response(401, "Unauthorized: invalid API key or user e-mail")
            request.token, request.copper_user = key, user.id
        if request.body and not (request.header("content-type") or "").lower().startswith("application/json"):
            return error_response(415, "Content-Type must be application/json")
        return None

    def user_of(self, request: Request | None) -> int:
        return getattr(request, "copper_user", None) or self.admin.id

    def check_rate_limit(self, request: Request) -> Response | None:
        allowed, _remaining, _reset = self.limiter.hit(f"user:{self.user_of(request)}")
        return None if allowed else self.rate_limited(request)

    def rate_limited(self, request: Request) -> Response:
        with self._counter_lock:
            self.rate_limited_count += 1
        return error_response(429, "Rate limit exceeded")

    def server_error(self, request: Request) -> Response:
        return error_response(self.server_error_status, "Internal server error")

    def expired_token(self, request: Request) -> Response:
        """An OAuth token stays expired afterwards, as a real one would; an API key is refused once."""
        authorization = request.header("authorization") or ""
        if authorization.lower().startswith("bearer "):
            self.oauth.expire(authorization[7:].strip())
            return error_response(401, "Unauthorized: the access token has expired")
        return error_response(401, "Unauthorized: invalid API key or user e-mail")

    # -- OAuth (partner apps) ----------------------------------------------------------------------
    def _authorize(self, request: Request) -> Response:
        answer = self.oauth.authorize(request)
        location = answer.headers.get("Location")
        if self.code_delivery != "post" or answer.status != 302 or not location:
            return answer
        # Copper posts the code (or the refusal) to the redirect URI: an auto-submitting form.
        parts = urlsplit(location)
        inputs = "".join(
            f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v[0])}">'
            for k, v in parse_qs(parts.query).items()
        )
        action = html.escape(urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")))
        return Response.html(
            f'<!doctype html><html lang="en"><body onload="document.forms[0].submit()"><form method="post" '
            f'action="{action}">{inputs}<noscript><button>Continue</button></noscript></form></body></html>'
        )

    def _token(self, request: Request) -> Response:
        grant = request.form().get("grant_type")
        token, error, description = self.oauth.exchange(request)
        if token is None:
            status = 401 if error == "invalid_client" else 400
            return Response.json({"error": error, "error_description": description}, status=status)
        answer: dict[str, Any] = {
            "access_token": token.access_token,
            "token_type": "Bearer",
            "scope": " ".join(token.scopes) or SCOPE,
        }
        if token.refresh_token and (grant == "refresh_token" or self.issue_refresh_tokens):
            answer["refresh_token"] = token.refresh_token
        return Response.json(answer)

    # -- identity and custom fields ----------------------------------------------------------------
    def _account(self, request: Request) -> Response:
        return Response.json({"id": self.account_id, "name": self.account_name, "primary_timezone": "Etc/UTC"})

    @staticmethod
    def _user_json(user: User) -> dict[str, Any]:
        return {"id": user.id, "name": user.name, "email": user.email}

    def _user(self, request: Request) -> Response:
        user = self.store.users.get(int(request.params["id"]))
        if user is None:
            raise not_found()
        return Response.json(self._user_json(user))

    def _definitions(self, request: Request) -> Response:
        return Response.json([self.store.copy(d) for _id, d in sorted(self.store.definitions.items())])

    def _definition(self, request: Request) -> Response:
        definition = self.store.definitions.get(int(request.params["id"]))
        if definition is None:
            raise not_found()
        return Response.json(self.store.copy(definition))

    def _create_definition(self, request: Request) -> Response:
        admin = self.store.users[self.user_of(request)].admin
        return Response.json(self.store.copy(custom.create_definition(self.store, request.json(), admin=admin)))

    def _delete_definition(self, request: Request) -> Response:
        if self.store.definitions.pop(int(request.params["id"]), None) is None:
            raise not_found()
        return Response.json({"id": int(request.params["id"]), "is_deleted": True})

    # -- the change log ----------------------------------------------------------------------------
    def changed(
        self,
        resource: str,
        record_id: int,
        event: str,
        *,
        user_id: int | None,
        attributes: Mapping[str, Any] | None = None,
    ) -> None:
        entity = ENTITY_OF.get(resource, "activity")
        self.changes.append(Change(entity, record_id, event, self.store.now(), user_id, dict(attributes or {})))

    # =============================================================================================
    # Helpers for tests, the demo and benchmarks (thread-safe)

    def issue_api_key(self, user_email: str | None = None, *, admin: bool = True) -> tuple[str, str]:
        """A new API key and its owner's e-mail (a new user when ``user_email`` is not one yet)."""
        key = secrets.token_hex(16)  # Copper's keys are 32 hex characters
        with self.lock:
            user = self.store.user_by_email(user_email) if user_email else self.admin
            if user is None:
                user = self.store.add_user(str(user_email).split("@")[0].title(), str(user_email), admin=admin)
            self.store.api_keys[key] = user.id
        self.secrets_issued.append(key)
        return key, user.email

    def issue_oauth_token(self, *, with_refresh: bool = False) -> IssuedToken:
        """A partner-app access token as if the consent flow had run (no expiry)."""
        return self.oauth.issue(
            self.client.client_id, [SCOPE], account_ref=str(self.account_id), with_refresh=with_refresh
        )

    def add_user(self, name: str, email: str, *, admin: bool = True) -> int:
        with self.lock:
            return self.store.add_user(name, email, admin=admin).id

    def records(self, resource: str) -> list[dict[str, Any]]:
        """Every record of ``people``, ``leads``, ``opportunities``, ``tasks`` or ``activities``, by id."""
        with self.lock:
            return [render(self.store, resource, r) for r in self.store.all(resource)]

    def get(self, resource: str, record_id: int | str) -> dict[str, Any] | None:
        with self.lock:
            record = self.store.get(resource, record_id)
            return render(self.store, resource, record) if record else None

    def find_person(self, email: str) -> dict[str, Any] | None:
        with self.lock:
            owner = self.store.email_owner(email)
            return render(self.store, "people", self.store.records["people"][owner]) if owner else None

    def activities_of(self, entity: str, record_id: int | str) -> list[dict[str, Any]]:
        return [a for a in self.records("activities") if a["parent"] == {"type": entity, "id": int(record_id)}]

    def create_record(self, resource: str, body: Mapping[str, Any]) -> int:
        """Create a record as a user in Copper's UI would (validated as the API validates)."""
        routes = self.people_routes if resource in ("people", "leads") else self.engagement_routes
        with self.lock:
            return routes.new_record(resource, dict(body), user_id=self.admin.id)["id"]

    def edit_in_ui(self, resource: str, record_id: int | str, body: Mapping[str, Any]) -> None:
        """Change a person or lead as a Copper user would (to drive inbound-sync tests)."""
        with self.lock:
            record = self.store.get(resource, record_id)
            if record is None:
                raise KeyError(f"no {resource} {record_id}")
            self.people_routes.change_record(resource, record, dict(body), user_id=self.admin.id)

    def delete_in_ui(self, resource: str, record_id: int | str) -> None:
        with self.lock:
            self.store.remove(resource, int(record_id))
            self.changed(resource, int(record_id), "delete", user_id=self.admin.id)

    def set_modified(self, resource: str, record_ids: Iterable[int | str], at: int) -> None:
        """Give records one modification time, as a bulk import does (paging over shared times)."""
        with self.lock:
            for record_id in record_ids:
                self.store.records[resource][int(record_id)]["date_modified"] = at

    def add_custom_field(
        self,
        name: str,
        data_type: str,
        available_on: Iterable[str],
        options: Iterable[str] = (),
        *,
        unique: bool = False,
    ) -> dict[str, Any]:
        """Define a custom field as an admin would; returns the definition (with option ids).

        ``unique=True`` is a sandbox-only test aid: Copper has no unique custom fields, but a
        record refused for a value another record holds (422) stands in for any record Copper
        refuses, so tests can show one refusal failing alone."""
        body = {"name": name, "data_type": data_type, "available_on": list(available_on)}
        if options:
            body["options"] = [{"name": o} for o in options]
        with self.lock:
            definition = custom.create_definition(self.store, body, admin=True)
            if unique:
                self.store.unique_definitions.add(definition["id"])
            return self.store.copy(definition)

    def add_activity_type(self, name: str, *, disabled: bool = False) -> int:
        """A user activity type an admin added in Copper's settings; returns its id."""
        with self.lock:
            type_id = max(t["id"] for t in self.store.activity_types["user"]) + 1
            self.store.activity_types["user"].append(
                {"id": type_id, "category": "user", "name": name, "is_disabled": disabled, "count_as_interaction": True}
            )
            return type_id

    def subscriptions(self) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(s) for _id, s in sorted(self.store.webhooks.items())]

    def make_webhook_request(
        self, subscription_id: int, ids: list[int], updated_attributes: Mapping[str, Any] | None = None
    ) -> tuple[dict[str, str], bytes]:
        """The headers and body of one notification, without sending it."""
        with self.lock:
            subscription = dict(self.store.webhooks[subscription_id])
        return notification(subscription, ids, updated_attributes)

    def send_webhook(
        self,
        entity: str,
        event: str,
        ids: Iterable[int | str],
        *,
        updated_attributes: Mapping[str, Any] | None = None,
        cafile: str | None = None,
        timeout: float = 5.0,
    ) -> list[Delivery]:
        """Notify every subscription to ``entity``/``event`` of ``ids``, at most 30 ids a
        notification, each POSTed once (Copper never retries). Returns what was sent and answered."""
        with self.lock:
            chosen = [dict(s) for _id, s in sorted(self.store.webhooks.items())]
        id_list = [int(i) for i in ids]
        sent = []
        for subscription in chosen:
            if subscription["type"] != entity or subscription["event"] != event:
                continue
            for start in range(0, len(id_list), 30):
                delivery = deliver(
                    subscription, id_list[start : start + 30], updated_attributes, timeout=timeout, cafile=cafile
                )
                sent.append(delivery)
        with self.lock:
            self.deliveries.extend(sent)
        return sent


def build(**options: Any) -> CopperEmulator:
    """A Copper emulator with ``options`` passed to the constructor (see CopperEmulator)."""
    return CopperEmulator(**options)
