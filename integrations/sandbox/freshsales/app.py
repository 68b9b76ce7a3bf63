"""``FreshsalesEmulator``: one Freshsales (Freshworks CRM) account on loopback, on ``sandbox.core``.

Facts are crm-reference §7 and §11.7:

- The API lives on the account's own host under ``/crm/sales/api/`` (the bundle alias host
  ``https://<alias>.myfreshworks.com``); legacy ``/api/`` paths of standalone accounts are served
  too. Every API request carries ``Authorization: Token token=<API key>``; anything else is 401.
- Bodies are wrapped in a singular root key (``{"contact": {…}}``) and errors look like
  ``{"errors": {"code": 400, "message": ["…"]}}``.
- Quotas: requests per hour (1,000 on Growth, the default) and per minute (400), counted per
  account; over either → 429 with ``Retry-After``. Every authenticated answer carries
  ``x-ratelimit-limit``/``x-ratelimit-remaining`` (hourly) and ``per-min-x-ratelimit-limit``/
  ``-remaining`` (the header names and ``Retry-After`` are UNVERIFIED in the vendor docs, §7.5).
- No OAuth (§7.1), so the core's ``expire_token`` fault refuses the next key once with 401.

Routes are in ``contacts`` (contacts, upsert, lookup, search, views, filtered search, fields) and
``engagement`` (notes, tasks, sales activities, deals, selectors); the workflow "Trigger webhook"
sender is in ``webhooks``.
"""

from __future__ import annotations

import datetime as dt
import secrets
import threading
from collections.abc import Callable
from typing import Any

from integrations.sandbox.core import EmulatorApp, Request, Response, SlidingWindowLimiter
from integrations.sandbox.freshsales.contacts import ContactRoutes
from integrations.sandbox.freshsales.engagement import EngagementRoutes
from integrations.sandbox.freshsales.errors import FreshsalesError, error_response
from integrations.sandbox.freshsales.store import SINGULAR, Store, User
from integrations.sandbox.freshsales.webhooks import WorkflowWebhooks

API_PREFIX = r"(?:/crm/sales)?/api"
HOURLY, PER_MINUTE = 3600.0, 60.0


class FreshsalesEmulator(EmulatorApp):
    """One Freshsales account. Keyword options: ``alias`` (the bundle alias, shown as the account's
    domain), ``hourly_limit`` (1,000), ``per_minute_limit`` (400), ``clock`` (returns an aware
    datetime; record times come from it), ``users`` (display names of the account's users; the
    first is the admin whose keys ``issue_api_key`` hands out). OAuth options passed by the
    sandbox registry (``client_id``…) are accepted and ignored: Freshsales has no OAuth (§7.1)."""

    name = "freshsales"
    display_name = "Freshsales"

    def __init__(
        self,
        *,
        alias: str = "capsule-sandbox",
        hourly_limit: int = 1000,
        per_minute_limit: int = 400,
        clock: Callable[[], dt.datetime] | None = None,
        users: tuple[str, ...] = ("Sandbox Admin", "Sam Seller"),
        **_ignored: Any,
    ) -> None:
        super().__init__()
        self.alias = alias
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self.store = Store(clock=lambda: self.clock())
        self.store.users = [
            User(id=1000 + i, display_name=name, email=f"{name.split()[0].lower()}@{alias}.example.com")
            for i, name in enumerate(users)
        ]
        self.api_keys: dict[str, int] = {}  # key -> user id
        self._expired_once: set[str] = set()
        self.hourly = SlidingWindowLimiter(hourly_limit, HOURLY)
        self.per_minute = SlidingWindowLimiter(per_minute_limit, PER_MINUTE)
        self.counter_lock = threading.Lock()
        self.api_calls = 0
        self.rate_limited_count = 0
        self.webhooks = WorkflowWebhooks(self)
        ContactRoutes(self).register(API_PREFIX)
        EngagementRoutes(self).register(API_PREFIX)

    # -- keys and users ------------------------------------------------------------------------------
    def issue_api_key(self, user_id: int | None = None) -> str:
        """A new API key of ``user_id`` (the admin by default), as Profile settings → API settings shows."""
        key = secrets.token_urlsafe(18)
        self.api_keys[key] = user_id if user_id is not None else self.store.users[0].id
        self.secrets_issued.append(key)
        return key

    def revoke_api_key(self, key: str) -> None:
        self.api_keys.pop(key, None)

    def user_of(self, request: Request) -> User:
        return self.store.user(self.api_keys.get(request.token or "")) or self.store.users[0]

    # -- limits ----------------------------------------------------------------------------------------
    def set_limits(self, *, hourly: int | None = None, per_minute: int | None = None) -> None:
        if hourly is not None:
            self.hourly = SlidingWindowLimiter(hourly, HOURLY)
        if per_minute is not None:
            self.per_minute = SlidingWindowLimiter(per_minute, PER_MINUTE)

    # -- core hooks ------------------------------------------------------------------------------------
    def handle(self, request: Request) -> Response:
        try:
            response = super().handle(request)
        except FreshsalesError as error:
            response = error_response(error.status, *error.messages, headers=error.headers)
            self.add_rate_headers(request, response)
        if request.token is not None:
            with self.counter_lock:
                self.api_calls += 1
        return response

    def authenticate(self, request: Request) -> Response | None:
        header = request.header("authorization", "") or ""
        scheme, _, rest = header.partition(" ")
        key = rest.strip().removeprefix("token=") if scheme == "Token" and rest.strip().startswith("token=") else ""
        if not key or key not in self.api_keys:
            return error_response(401, "Incorrect or expired API key")
        if key in self._expired_once:
            self._expired_once.discard(key)
            return error_response(401, "Incorrect or expired API key")
        request.token = key
        return None

    def check_rate_limit(self, request: Request) -> Response | None:
        minute_ok, _left, minute_reset = self.per_minute.hit("account")
        if not minute_ok:
            return self._refuse(request, "per minute", minute_reset)
        hour_ok, _left, hour_reset = self.hourly.hit("account")
        if not hour_ok:
            return self._refuse(request, "per hour", hour_reset)
        return None

    def _refuse(self, request: Request, window: str, reset: float) -> Response:
        with self.counter_lock:
            self.rate_limited_count += 1
        response = error_response(
            429, f"You have exceeded the limit of API requests {window}", headers={"Retry-After": str(int(reset) + 1)}
        )
        self.add_rate_headers(request, response)
        return response

    def add_rate_headers(self, request: Request, response: Response) -> None:
        for prefix, limiter in (("", self.hourly), ("per-min-", self.per_minute)):
            with limiter._lock:
                used = len(limiter._hits.get("account", ()))
            response.headers[f"{prefix}x-ratelimit-limit"] = str(limiter.limit)
            response.headers[f"{prefix}x-ratelimit-remaining"] = str(max(0, limiter.limit - used))

    def rate_limited(self, request: Request) -> Response:
        return self._refuse(request, "per minute", 1)

    def server_error(self, request: Request) -> Response:
        return error_response(500, "Something went wrong. Please try again later")

    def expired_token(self, request: Request) -> Response:
        return error_response(401, "Incorrect or expired API key")

    def not_found(self, request: Request) -> Response:
        return error_response(404, f"No route matches {request.method} {request.path}")

    def reset(self) -> None:
        super().reset()
        with self.lock:
            self.store.reset()
        self.hourly.reset()
        self.per_minute.reset()
        with self.counter_lock:
            self.api_calls = self.rate_limited_count = 0
        self.webhooks.deliveries.clear()

    def state(self) -> dict[str, Any]:
        return {
            **super().state(),
            **{resource: len(rows) for resource, rows in self.store.records.items()},
            "api_calls": self.api_calls,
            "rate_limited": self.rate_limited_count,
        }

    # -- inspection ------------------------------------------------------------------------------------
    def records(self, resource: str) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(r) for r in self.store.records[resource].values()]

    def get(self, resource: str, record_id: Any) -> dict[str, Any] | None:
        with self.lock:
            record = self.store.records[resource].get(int(record_id)) if str(record_id).isdigit() else None
            return dict(record) if record else None

    def add_custom_field(self, model: str, label: str, field_type: str = "text", **options: Any) -> dict[str, Any]:
        with self.lock:
            return self.store.add_custom_field(model, label, field_type, **options)

    def add_sales_activity_type(self, name: str) -> dict[str, Any]:
        with self.lock:
            kind = {
                "id": self.store.next_id(),
                "name": name,
                "internal_name": name.lower(),
                "is_default": False,
                "position": len(self.store.activity_types),
            }
            self.store.activity_types.append(kind)
            return kind

    def touch(self, resource: str, record_id: int, when: dt.datetime | None = None, **changes: Any) -> dict[str, Any]:
        """Change a record as a salesperson would in the UI (no API call counted)."""
        with self.lock:
            record = self.store.records[resource][int(record_id)]
            custom = {k: v for k, v in changes.items() if k.startswith("cf_")}
            record.update({k: v for k, v in changes.items() if not k.startswith("cf_")})
            if custom:
                record["custom_field"] = {**record.get("custom_field", {}), **custom}
            record["updated_at"] = (when and when.astimezone(dt.UTC).replace(microsecond=0).isoformat()) or (
                self.store.now()
            )
            return dict(record)

    def expire_next(self, key: str) -> None:
        """The next request with ``key`` is refused with 401 (the key was regenerated meanwhile)."""
        self._expired_once.add(key)

    @staticmethod
    def root(resource: str) -> str:
        return SINGULAR[resource]


def build(**options: Any) -> FreshsalesEmulator:
    """A Freshsales emulator with ``options`` passed to the constructor (see FreshsalesEmulator)."""
    return FreshsalesEmulator(**options)
