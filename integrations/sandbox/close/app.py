"""``CloseEmulator``: one Close organisation on loopback, built on ``integrations.sandbox.core``.

Routes live in ``people`` (leads, contacts), ``engagement`` (activities, tasks, opportunities),
``schema`` (custom fields, custom activity types, statuses), ``search`` (``/data/search/``) and
``hooks`` (webhooks, the event log); ``oauth`` serves the OAuth 2.0 endpoints. This module holds
authentication, rate limits, the fault hooks in Close's shapes, counters and test helpers.

Facts (crm-reference §8, §11.8): HTTP Basic with the API key as username and an empty password,
or ``Bearer`` with an OAuth access token; every path under ``/api/v1/`` ends with a slash; the
``RateLimit: limit=…, remaining=…, reset=<int seconds>`` header on every answer, and a 429 with it
plus ``Retry-After`` when a bucket is spent. Limits count per credential and endpoint group (path
and method) and per organisation (three times a credential's); Close publishes no numbers (UNVERIFIED), so
``rate_limit`` / ``window_seconds`` are options.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from integrations.sandbox.close import oauth, wire
from integrations.sandbox.close.engagement import Engagement
from integrations.sandbox.close.errors import CloseError
from integrations.sandbox.close.hooks import Hooks, delivery, post
from integrations.sandbox.close.people import People
from integrations.sandbox.close.schema import Schema
from integrations.sandbox.close.search import Search
from integrations.sandbox.close.store import Actor, Store
from integrations.sandbox.core import (
    EmulatorApp,
    IssuedToken,
    OAuthClient,
    OAuthServer,
    Request,
    Response,
    SlidingWindowLimiter,
)

API_PREFIX = "/api/v1/"
_ID_SEGMENT = re.compile(r"^[a-z]+_[A-Za-z0-9]{16,}$")  # lead_…, cont_… (not custom_field)


class PeekableLimiter(SlidingWindowLimiter):
    """The core's sliding window, plus a look at a key's budget without spending it."""

    def peek(self, key: str) -> tuple[int, float]:
        now = time.monotonic()
        with self._lock:
            hits = [t for t in self._hits.get(key, ()) if t > now - self.interval]
        reset = (hits[0] + self.interval - now) if hits else self.interval
        return self.limit - len(hits), reset


def endpoint_group(method: str, path: str) -> str:
    """The rate-limit bucket of a call: its method and path with ids replaced (``GET /lead/{id}/``)."""
    parts = ["{id}" if _ID_SEGMENT.match(part) else part for part in path.split("/")]
    return f"{method} {'/'.join(parts)}"


class CloseEmulator(EmulatorApp):
    """One Close organisation. Constructor options (keyword-only):

    client_id, client_secret, redirect_uris — the registered OAuth app; access_token_ttl (3600 s);
    rotate_refresh_tokens (True: Close retires a refresh token when it is used, §8.1); org_name,
    user_email, user_first_name, user_last_name; rate_limit (requests per ``window_seconds`` per
    credential and endpoint group, 20 per 1 s) and org_rate_multiplier (3); server_error_status
    (500, or 502/503 for injected server errors).

    Counters: ``api_calls`` (every ``/api/v1/`` request, faults and refusals included),
    ``calls_by_group``, ``rate_limited_count``. Records are read with ``contacts()``, ``leads()``,
    ``activities()``, ``tasks()``, ``opportunities()``; the event log is ``events()``.
    """

    name = "close"
    display_name = "Close"

    def __init__(
        self,
        *,
        client_id: str = "capsule-sandbox-client",
        client_secret: str = "capsule-sandbox-secret",
        redirect_uris: Iterable[str] = ("http://127.0.0.1:8000/oauth/callback/close/",),
        access_token_ttl: float = 3600,
        rotate_refresh_tokens: bool = True,
        org_name: str = "Capsule Sandbox Inc.",
        user_email: str = "sandbox-admin@capsule-sandbox.example.com",
        user_first_name: str = "Sandy",
        user_last_name: str = "Close",
        rate_limit: int = 20,
        window_seconds: float = 1.0,
        org_rate_multiplier: int = 3,
        server_error_status: int = 500,
    ) -> None:
        super().__init__()
        user = {
            "id": wire.new_id("user"),
            "email": user_email,
            "first_name": user_first_name,
            "last_name": user_last_name,
        }
        self.store = Store(wire.new_id("orga"), org_name, user)
        self.oauth = OAuthServer(
            self, access_token_ttl=access_token_ttl, rotate_refresh_tokens=rotate_refresh_tokens, token_prefix="oa2_"
        )
        self.client = self.register_client(client_id, client_secret, list(redirect_uris))
        self.rate_limit, self.window_seconds, self.org_rate_multiplier = rate_limit, window_seconds, org_rate_multiplier
        self.server_error_status = server_error_status
        self.api_keys: dict[str, str] = {}  # key -> its id (api_key_id in the event log)
        self._counter_lock = threading.Lock()
        self._reset_counters()
        self.people = People(self.store, self.actor)
        self.engagement = Engagement(self.store, self.actor)
        self.schema = Schema(self.store, self.actor)
        self.search = Search(self.store)
        self.hooks = Hooks(self.store, self.actor)
        for module in (self.people, self.engagement, self.schema, self.search, self.hooks):
            for method, pattern, handler in module.routes():
                self._api(method, pattern, handler)
        self._api("GET", r"/api/v1/me/", self._me)
        self._api("GET", r"/api/v1/organization/(?P<object_id>[^/]+)/", self._organization)
        for method, pattern, handler in oauth.routes(self):
            self.route(method, pattern, handler, auth=False)

    # -- plumbing -------------------------------------------------------------------------------------
    def _reset_counters(self) -> None:
        with self._counter_lock:
            self.api_calls = 0
            self.rate_limited_count = 0
            self.calls_by_group: dict[str, int] = {}
            self._key_windows = PeekableLimiter(self.rate_limit, self.window_seconds)
            self._org_windows = PeekableLimiter(self.rate_limit * self.org_rate_multiplier, self.window_seconds)

    def reset(self) -> None:
        """Forget records, custom fields, webhooks, events, counters and windows; keep apps, keys and tokens."""
        super().reset()
        with self.lock:
            self.store.reset()
        self._reset_counters()

    def state(self) -> dict[str, Any]:
        with self.lock:
            counts = {
                "leads": len(self.store.leads),
                "contacts": len(self.store.contacts),
                "activities": len(self.store.activities),
                "tasks": len(self.store.tasks),
                "opportunities": len(self.store.opportunities),
                "events": len(self.store.events),
            }
        return {
            **super().state(),
            "organization_id": self.store.org_id,
            "objects": counts,
            "api_calls": self.api_calls,
            "rate_limited": self.rate_limited_count,
        }

    def _api(self, method: str, pattern: str, handler: Callable[[Request], Response]) -> None:
        """An authenticated route that runs under the store lock and answers CloseError in Close's shape."""

        def run(request: Request) -> Response:
            try:
                with self.lock:
                    return handler(request)
            except CloseError as exc:
                return exc.response()

        self.route(method, pattern, run)

    def not_found(self, request: Request) -> Response:
        return CloseError(404, f"No such endpoint: {request.method} {request.path}").response()

    def handle(self, request: Request) -> Response:
        if not request.path.startswith(API_PREFIX):
            return super().handle(request)
        group = endpoint_group(request.method, request.path)
        with self._counter_lock:
            self.api_calls += 1
            self.calls_by_group[group] = self.calls_by_group.get(group, 0) + 1
        response = super().handle(request)
        if "RateLimit" not in response.headers:
            # Refusals before the limiter (401, injected faults) carry the budget too, unspent.
            credentials = self._credentials(request)
            remaining, reset = self._key_windows.peek(f"{credentials[1] if credentials else None}|{group}")
            response.headers["RateLimit"] = self._rate_header(remaining, reset)
        return response

    # -- authentication ----------------------------------------------------------------------------------
    def register_client(self, client_id: str, client_secret: str, redirect_uris: list[str]) -> OAuthClient:
        return self.oauth.register_client(client_id, client_secret, redirect_uris)

    def issue_api_key(self) -> str:
        """A new API key of the sandbox user (Close keys start with ``api_``; Settings → Developer)."""
        key = f"api_{wire.new_id('k', 22)[2:]}.{wire.new_id('s', 22)[2:]}"
        with self.lock:
            self.api_keys[key] = wire.new_id("apikey", 22)
        self.secrets_issued.append(key)
        return key

    def revoke_api_key(self, key: str) -> None:
        with self.lock:
            self.api_keys.pop(key, None)

    def issue_oauth_token(self, client_id: str | None = None) -> IssuedToken:
        """An access and refresh token as if the consent flow had run."""
        return self.oauth.issue(client_id or self.client.client_id, list(oauth.SCOPES), account_ref=self.store.org_id)

    def _credentials(self, request: Request) -> tuple[str, str] | None:
        """("basic", key) or ("bearer", token) from the Authorization header."""
        header = request.header("authorization", "") or ""
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "basic" and value:
            try:
                username, _, _password = base64.b64decode(value.strip()).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return None
            return ("basic", username)
        if scheme.lower() == "bearer" and value.strip():
            return ("bearer", value.strip())
        return None

    def authenticate(self, request: Request) -> Response | None:
        credentials = self._credentials(request)
        if credentials is None:
            return CloseError(401, "Authentication required: HTTP Basic with an API key, or a Bearer token").response()
        scheme, secret = credentials
        user_id = self.store.user["id"]
        request_id = wire.new_id("req", 22)
        if scheme == "basic":
            key_id = self.api_keys.get(secret)
            if key_id is None:
                return CloseError(401, "The API key is invalid or was deleted").response()
            request.token = secret
            request.close_actor = Actor(
                user_id, api_key_id=key_id, method=request.method, path=request.path, request_id=request_id
            )
            return None
        status = self.oauth.token_state(secret)
        if status == "expired":
            return CloseError(401, "The access token has expired").response()
        if status != "ok":
            return CloseError(401, "The access token is invalid or was revoked").response()
        issued = self.oauth.token_for(secret)
        request.token = secret
        request.close_actor = Actor(
            user_id,
            oauth_client_id=issued.client_id if issued else None,
            method=request.method,
            path=request.path,
            request_id=request_id,
        )
        return None

    def actor(self, request: Request) -> Actor:
        return getattr(request, "close_actor", None) or Actor(self.store.user["id"])

    # -- rate limits ----------------------------------------------------------------------------------------
    def check_rate_limit(self, request: Request) -> Response | None:
        group = endpoint_group(request.method, request.path)
        allowed, remaining, reset = self._key_windows.hit(f"{request.token}|{group}")
        if allowed:
            org_allowed, _org_remaining, org_reset = self._org_windows.hit(f"{self.store.org_id}|{group}")
            if not org_allowed:
                allowed, remaining, reset = False, 0, org_reset
        if not allowed:
            return self._too_many(reset)
        request.close_rate = (remaining, reset)
        return None

    def _rate_header(self, remaining: int, reset: float) -> str:
        # Integers only: the official Python client parses limit=(\d+), remaining=(\d+), reset=(\d+).
        return f"limit={self.rate_limit}, remaining={max(0, remaining)}, reset={max(1, math.ceil(reset))}"

    def add_rate_headers(self, request: Request, response: Response) -> None:
        remaining, reset = getattr(request, "close_rate", (self.rate_limit, self.window_seconds))
        response.headers["RateLimit"] = self._rate_header(remaining, reset)

    def _too_many(self, reset: float) -> Response:
        with self._counter_lock:
            self.rate_limited_count += 1
        seconds = max(1, math.ceil(reset))
        body = {"error": {"message": "API call count exceeded for this period", "rate_reset": round(reset, 3)}}
        return Response.json(
            body, status=429, headers={"RateLimit": self._rate_header(0, reset), "Retry-After": str(seconds)}
        )

    # -- the core's fault hooks, in Close's shapes ------------------------------------------------------------
    def rate_limited(self, request: Request) -> Response:
        return self._too_many(self.window_seconds)

    def server_error(self, request: Request) -> Response:
        return CloseError(self.server_error_status, "Internal server error").response()

    def expired_token(self, request: Request) -> Response:
        """401; an OAuth access token stays expired afterwards, as a real one would."""
        credentials = self._credentials(request)
        if credentials and credentials[0] == "bearer" and self.oauth.token_state(credentials[1]) == "ok":
            self.oauth.expire(credentials[1])
        return CloseError(401, "The access token has expired").response()

    # -- identity ------------------------------------------------------------------------------------------------
    def organization(self) -> dict[str, Any]:
        return {"id": self.store.org_id, "name": self.store.org_name, "currency": "USD"}

    def _me(self, request: Request) -> Response:
        user = self.store.user
        return Response.json(
            {
                **user,
                "display_name": self.store.user_name(),
                "organizations": [self.organization()],
                "memberships": [{"organization_id": self.store.org_id, "role_id": "admin"}],
                "date_created": "2024-01-02T03:04:05.000000+00:00",
                "date_updated": "2024-01-02T03:04:05.000000+00:00",
            }
        )

    def _organization(self, request: Request) -> Response:
        if request.params["object_id"] != self.store.org_id:
            raise CloseError(404, "Organization not found")
        return Response.json(self.organization())

    # -- helpers for tests ------------------------------------------------------------------------------------------
    def contacts(self) -> list[dict[str, Any]]:
        with self.lock:
            ordered = sorted(self.store.contacts.values(), key=lambda c: (c["date_created"], c["id"]))
            return [self.store.contact_wire(c) for c in ordered]

    def contact(self, contact_id: str) -> dict[str, Any] | None:
        with self.lock:
            found = self.store.contacts.get(contact_id)
            return self.store.contact_wire(found) if found else None

    def find_contact(self, email: str) -> dict[str, Any] | None:
        wanted = email.strip().lower()
        return next((c for c in self.contacts() if any(e["email"].lower() == wanted for e in c["emails"])), None)

    def leads(self) -> list[dict[str, Any]]:
        with self.lock:
            return [self.store.lead_wire(lead) for lead in self.store.leads.values()]

    def lead(self, lead_id: str) -> dict[str, Any] | None:
        with self.lock:
            found = self.store.leads.get(lead_id)
            return self.store.lead_wire(found) if found else None

    def activities(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Activities as Close renders them; ``kind`` is a ``_type`` (Note, Call, CustomActivity…)."""
        with self.lock:
            return [
                self.engagement.activity_wire(a)
                for a in self.store.activities.values()
                if kind is None or a["_type"] == kind
            ]

    def tasks(self) -> list[dict[str, Any]]:
        with self.lock:
            return [self.engagement.task_wire(t) for t in self.store.tasks.values()]

    def opportunities(self) -> list[dict[str, Any]]:
        with self.lock:
            return [self.engagement.opportunity_wire(o) for o in self.store.opportunities.values()]

    def events(self, object_type: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [e for e in self.store.events if object_type is None or e["object_type"] == object_type]

    def custom_fields(self, object_type: str) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(d) for d in self.store.definitions[object_type].values()]

    def add_custom_field(self, object_type: str, name: str, type: str = "text", **options: Any) -> dict[str, Any]:
        """Define a custom field as an admin would. ``unique=True`` adds the sandbox-only rule that
        refuses a value another record holds (see fields.py); other options are the API's."""
        unique = bool(options.pop("unique", False))
        with self.lock:
            definition = self.schema.add_field(object_type, {"name": name, "type": type, **options})
            if unique:
                self.store.unique_fields.add(definition["id"])
            return dict(definition)

    def add_activity_type(self, name: str, **options: Any) -> dict[str, Any]:
        with self.lock:
            return dict(self.schema.add_type({"name": name, **options}))

    def create_contact(
        self, email: str, name: str | None = None, lead_name: str | None = None, **custom: Any
    ) -> dict[str, Any]:
        """A lead with one contact, made by a Close user in the app (no API key in its events)."""
        body = {"name": name, "emails": [{"email": email, "type": "office"}], **custom}
        with self.lock:
            lead = self.people.new_lead({"name": lead_name or name or email, "contacts": [body]}, self.ui_actor())
            return self.store.contact_wire(next(c for c in self.store.contacts.values() if c["lead_id"] == lead["id"]))

    def edit_in_ui(self, contact_id: str, **changes: Any) -> dict[str, Any]:
        """Change a contact as a Close user would (drives inbound-sync tests)."""
        request = Request("PUT", f"/api/v1/contact/{contact_id}/", {}, {}, wire_json(changes))
        request.params = {"object_id": contact_id}
        request.close_actor = self.ui_actor()
        with self.lock:
            self.people.update_contact(request)
            return self.store.contact_wire(self.store.contacts[contact_id])

    def ui_actor(self) -> Actor:
        return Actor(self.store.user["id"], method="PUT", path="/app/", request_id=wire.new_id("req", 22))

    def set_modified(self, contact_ids: Iterable[str], at: str) -> None:
        """Give contacts one ``date_updated`` (a bulk edit), to test paging over a shared instant."""
        with self.lock:
            for contact_id in contact_ids:
                self.store.contacts[contact_id]["date_updated"] = at

    def webhook_delivery(self, event: dict[str, Any], subscription_id: str | None = None, **options: Any):
        """(headers, body) of the signed delivery of ``event`` for a subscription (the only one by default)."""
        with self.lock:
            subscription = (
                self.store.webhooks[subscription_id] if subscription_id else next(iter(self.store.webhooks.values()))
            )
            return delivery(subscription, event, **options)

    def deliver_pending(self, url: str | None = None) -> list[tuple[int, bytes]]:
        """POST every queued delivery to its subscription's URL (or ``url``); returns the answers."""
        with self.lock:
            queued, self.store.deliveries = list(self.store.deliveries), []
            prepared = [(self.store.webhooks[sid], event) for sid, event in queued if sid in self.store.webhooks]
        answers = []
        for subscription, event in prepared:
            headers, body = delivery(subscription, event)
            answers.append(post(url or subscription["url"], headers, body))
        return answers


def wire_json(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload).encode()


def build(**options: Any) -> CloseEmulator:
    """A Close emulator with ``options`` passed to the constructor (see CloseEmulator)."""
    return CloseEmulator(**options)
