"""A loopback emulator of Microsoft Dataverse (Dynamics 365) and its Entra ID sign-in.

Wire facts are crm-reference.md §5 and §11.5:

- Entra ID v2 OAuth on ``/{tenant}/oauth2/v2.0/authorize`` (consent page with Allow/Deny) and
  ``/{tenant}/oauth2/v2.0/token`` (code + PKCE, refresh with rotation); no revoke endpoint.
  Token errors are HTTP 400 with ``error``, ``error_description`` (``AADSTS…``) and ``error_codes``.
- The org's Web API under ``/api/data/v9.2/``: ``WhoAmI``, ``organizations``, ``systemusers``,
  ``contacts``, ``leads``, ``tasks``, ``phonecalls``, ``annotations``, ``opportunities``, ``accounts``
  (routes.py), ``$batch`` (batch.py), ``EntityDefinitions`` metadata with custom attributes and
  alternate keys (metadata.py), change tracking (``Prefer: odata.track-changes`` → ``@odata.deltaLink``).
- Errors are ``{"error": {"code": "0x…", "message": "…"}}``; ids are GUIDs.
- Service protection: per user, ``limit`` requests per ``window`` seconds (6,000 per 300 s by
  default) → 429 ``0x80072322`` with ``Retry-After``; every answer carries
  ``x-ms-ratelimit-burst-remaining-xrm-requests`` and ``x-ms-ratelimit-time-remaining-xrm-requests``
  (the 20-minute combined execution-time budget, in milliseconds). A ``$batch`` counts once.
- Faults (rate limit, 5xx, slow, dropped connection, expired token) come from integrations.sandbox.core.
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections import defaultdict, deque
from typing import Any

from integrations.sandbox.core import EmulatorApp, OAuthServer, Request, Response, SlidingWindowLimiter
from integrations.sandbox.dynamics import metadata
from integrations.sandbox.dynamics.routes import ApiRoutes
from integrations.sandbox.dynamics.store import Store

API = "/api/data/v9.2"
EXECUTION_BUDGET_MS = 1_200_000


def odata_error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response.json(
        {"error": {"code": code, "message": message}},
        status=status,
        headers={"OData-Version": "4.0", **(headers or {})},
    )


class DynamicsEmulator(EmulatorApp):
    name = "dynamics"
    display_name = "Microsoft Dataverse"

    def __init__(
        self,
        *,
        client_id: str = "sandbox-dynamics-client",
        client_secret: str = "sandbox-dynamics-secret",
        redirect_uris: list[str] | None = None,
        limit: int = 6000,
        window: float = 300.0,
        alternate_keys: dict[str, list[tuple[str, ...]]] | None = None,
        organization_name: str = "Contoso Sandbox",
        access_token_ttl: float = 3599,
    ) -> None:
        super().__init__()
        self.organization_id = str(uuid.uuid4())
        self.organization_name = organization_name
        self.business_unit_id = str(uuid.uuid4())
        self.user_id = str(uuid.uuid4())
        self.user_email = "integration@contoso-sandbox.example"
        self.initial_alternate_keys = {k: list(v) for k, v in (alternate_keys or {}).items()}
        self.client_id = client_id
        self.oauth = OAuthServer(
            self, access_token_ttl=access_token_ttl, rotate_refresh_tokens=True, token_prefix="eyJ0"
        )
        self.oauth.register_client(client_id, client_secret, list(redirect_uris or []))
        self.limiter = SlidingWindowLimiter(limit, window)
        self._execution: dict[str, deque[tuple[float, float]]] = defaultdict(deque)
        self._started = threading.local()
        self.api_calls = 0
        self.rate_limited_count = 0
        self.batch_calls = 0
        self.batch_operations = 0
        self.store = self._new_store()
        self.api = ApiRoutes(self)
        tenant = r"/(?P<tenant>[A-Za-z0-9.-]+)/oauth2/v2\.0"
        self.route("GET", tenant + "/authorize", self.oauth.authorize, auth=False)
        self.route("POST", tenant + "/authorize", self.oauth.authorize, auth=False)
        self.route("POST", tenant + "/token", self._token, auth=False)
        self.api.register(API)

    def _new_store(self) -> Store:
        store = Store(user_id=self.user_id)
        store.alternate_keys = {k: list(v) for k, v in self.initial_alternate_keys.items()}
        store.entities["organization"] = {
            "EntitySetName": "organizations",
            "PrimaryIdAttribute": "organizationid",
            "attributes": {
                a["LogicalName"]: a
                for a in (
                    metadata.attribute("organizationid", "Uniqueidentifier", "Organization"),
                    metadata.attribute("name", "String", "Name", max_length=160),
                )
            },
        }
        store.entities["systemuser"] = {
            "EntitySetName": "systemusers",
            "PrimaryIdAttribute": "systemuserid",
            "attributes": {
                a["LogicalName"]: a
                for a in (
                    metadata.attribute("systemuserid", "Uniqueidentifier", "User"),
                    metadata.attribute("fullname", "String", "Full Name", max_length=200),
                    metadata.attribute("internalemailaddress", "String", "Primary Email", max_length=100),
                )
            },
        }
        store.table("organization")[self.organization_id] = {
            "organizationid": self.organization_id,
            "name": self.organization_name,
        }
        store.table("systemuser")[self.user_id] = {
            "systemuserid": self.user_id,
            "fullname": "Capsule Integration",
            "internalemailaddress": self.user_email,
        }
        return store

    # -- OAuth (Entra ID v2) ---------------------------------------------------------------------------
    def _token(self, request: Request) -> Response:
        token, error, description = self.oauth.exchange(request)
        if token is None:
            codes = {"invalid_grant": 70008, "invalid_client": 7000215, "unsupported_grant_type": 70003}
            number = codes.get(error or "", 90000)
            return Response.json(
                {
                    "error": error,
                    "error_description": f"AADSTS{number}: {description}",
                    "error_codes": [number],
                    "timestamp": time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime()),
                    "trace_id": str(uuid.uuid4()),
                    "correlation_id": str(uuid.uuid4()),
                },
                status=401 if error == "invalid_client" else 400,
            )
        token.account_ref = self.user_id
        scopes = token.scopes or [f"{self.base_url}/.default", "offline_access"]
        body: dict[str, Any] = {
            "token_type": "Bearer",
            "scope": " ".join(scopes),
            "expires_in": int(self.oauth.access_token_ttl or 3599),
            "ext_expires_in": int(self.oauth.access_token_ttl or 3599),
            "access_token": token.access_token,
        }
        if token.refresh_token:
            body["refresh_token"] = token.refresh_token
        return Response.json(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})

    def issue_token(self, *, with_refresh: bool = False):
        """A token for the org's integration user (token connections and tests)."""
        return self.oauth.issue(
            self.client_id, [f"{self.base_url}/.default"], account_ref=self.user_id, with_refresh=with_refresh
        )

    # -- auth, limits, faults ----------------------------------------------------------------------------
    def authenticate(self, request: Request) -> Response | None:
        header = request.header("authorization", "")
        token = header[7:] if header.lower().startswith("bearer ") else None
        state = self.oauth.token_state(token)
        if state != "ok":
            return Response(
                401,
                b"",
                {
                    "WWW-Authenticate": f'Bearer authorization_uri="{self.base_url}/organizations/oauth2/authorize", '
                    f'resource_id="{self.base_url}/"'
                    + (
                        ', error="invalid_token", error_description="The access token expired"'
                        if state == "expired"
                        else ""
                    ),
                },
            )
        request.token = token
        return None

    def _user(self, request: Request) -> str:
        issued = self.oauth.token_for(request.token or "")
        return issued.account_ref if issued else "anonymous"

    def check_rate_limit(self, request: Request) -> Response | None:
        with self.lock:
            self.api_calls += 1
        allowed, remaining, reset = self.limiter.hit(self._user(request))
        request.params["__burst"] = str(remaining)
        self._started.at = time.monotonic()
        if not allowed:
            with self.lock:
                self.rate_limited_count += 1
            return self._too_many(reset)
        return None

    def _too_many(self, reset: float) -> Response:
        return odata_error(
            429,
            "0x80072322",
            f"Number of requests exceeded the limit of {self.limiter.limit} over time window of "
            f"{int(self.limiter.interval)} seconds.",
            {
                "Retry-After": str(max(1, math.ceil(reset))),
                "x-ms-ratelimit-burst-remaining-xrm-requests": "0",
                "x-ms-ratelimit-time-remaining-xrm-requests": f"{self._time_remaining(''):.2f}",
            },
        )

    def _time_remaining(self, user: str, spent_ms: float = 0.0) -> float:
        now = time.monotonic()
        with self.lock:
            entries = self._execution[user]
            if spent_ms:
                entries.append((now, spent_ms))
            while entries and entries[0][0] <= now - self.limiter.interval:
                entries.popleft()
            return max(0.0, EXECUTION_BUDGET_MS - sum(ms for _t, ms in entries))

    def add_rate_headers(self, request: Request, response: Response) -> None:
        started = getattr(self._started, "at", None)
        spent = (time.monotonic() - started) * 1000 if started else 0.0
        response.headers.setdefault("x-ms-ratelimit-burst-remaining-xrm-requests", request.params.get("__burst", "0"))
        response.headers.setdefault(
            "x-ms-ratelimit-time-remaining-xrm-requests", f"{self._time_remaining(self._user(request), spent):.2f}"
        )
        response.headers.setdefault("OData-Version", "4.0")

    def rate_limited(self, request: Request) -> Response:
        with self.lock:
            self.rate_limited_count += 1
        return self._too_many(2)

    def server_error(self, request: Request) -> Response:
        return odata_error(500, "0x80040216", "An unexpected error occurred.")

    def expired_token(self, request: Request) -> Response:
        header = request.header("authorization", "")
        if header.lower().startswith("bearer "):
            self.oauth.expire(header[7:])
        return Response(
            401,
            b"",
            {
                "WWW-Authenticate": f'Bearer authorization_uri="{self.base_url}/organizations/'
                f'oauth2/authorize", error="invalid_token"'
            },
        )

    def not_found(self, request: Request) -> Response:
        return odata_error(
            404, "0x8006088a", f"Resource not found for the segment '{request.path.rsplit('/', 1)[-1]}'."
        )

    # -- inspection --------------------------------------------------------------------------------------------
    def records(self, entity: str) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(r) for r in self.store.table(entity).values()]

    def get(self, entity: str, record_id: str) -> dict[str, Any] | None:
        with self.lock:
            record = self.store.table(entity).get(record_id.lower())
            return dict(record) if record else None

    def find(self, entity: str, **values: Any) -> list[dict[str, Any]]:
        return [
            r
            for r in self.records(entity)
            if all(str(r.get(k) or "").lower() == str(v).lower() for k, v in values.items())
        ]

    def create(self, entity: str, body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            return dict(self.store.create(entity, body))

    def edit(self, entity: str, record_id: str, body: dict[str, Any], *, by: str | None = None) -> dict[str, Any]:
        """An edit made in Dynamics by someone (another user's id by default), not through our connector."""
        with self.lock:
            return dict(self.store.update(entity, record_id, body, by=by or self.other_user_id))

    @property
    def other_user_id(self) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.organization_id}:sales-rep"))

    def remove(self, entity: str, record_id: str) -> None:
        with self.lock:
            self.store.delete(entity, record_id)

    def add_custom_attribute(self, entity: str, name: str, kind: str = "String", **kw: Any) -> dict[str, Any]:
        meta = metadata.attribute(name, kind, kw.pop("display", name), custom=True, **kw)
        with self.lock:
            self.store.attributes(entity)[name] = meta
        return meta

    def add_alternate_key(self, entity: str, *attributes: str) -> None:
        with self.lock:
            self.store.alternate_keys.setdefault(entity, []).append(tuple(attributes))

    def reset(self) -> None:
        super().reset()
        with self.lock:
            self.store = self._new_store()
            self.api_calls = self.rate_limited_count = self.batch_calls = self.batch_operations = 0
        self.limiter.reset()
        self._execution.clear()
        self.oauth.refresh_calls = self.oauth.token_calls = 0
        self.oauth.fail_next_refresh = None

    def state(self) -> dict[str, Any]:
        with self.lock:
            counts = {e: len(t) for e, t in self.store.tables.items()}
        return {
            **super().state(),
            "records": counts,
            "api_calls": self.api_calls,
            "rate_limited": self.rate_limited_count,
            "batch_calls": self.batch_calls,
        }


def build(*, client_id: str, client_secret: str, redirect_uris: list[str]) -> DynamicsEmulator:
    """The sandbox of `make run` (integrations.sandbox.registry)."""
    return DynamicsEmulator(client_id=client_id, client_secret=client_secret, redirect_uris=redirect_uris)
