"""The provider registry: each CRM's facts as data (after Nango's providers.yaml).

A provider package ``integrations/providers/<name>/`` exports ``PROVIDER`` (a ``ProviderSpec``)
from its ``provider.py`` and a connector class. Adding a CRM = adding its package and a line in
``PROVIDER_PACKAGES``; core code never branches on a provider's name.

Base URLs are settings: ``<NAME>_API_URL`` and ``<NAME>_OAUTH_URL`` override the vendor's own,
so a connection can point at a sandbox, a regional data centre or a loopback emulator.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from importlib import import_module
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.utils.module_loading import import_string

if TYPE_CHECKING:
    from integrations.connector import Connector

# The one list of CRMs. Order is the order they are offered to owners.
PROVIDER_PACKAGES: tuple[str, ...] = (
    "hubspot",
    "salesforce",
    "pipedrive",
    "zoho",
    "copper",
    "close",
    "freshsales",
    "dynamics",
)

AUTH_OAUTH = "oauth"
AUTH_PRIVATE_APP_TOKEN = "private_app_token"
AUTH_API_KEY = "api_key"
AUTH_KINDS = (AUTH_OAUTH, AUTH_PRIVATE_APP_TOKEN, AUTH_API_KEY)


@dataclass(frozen=True)
class OAuthSpec:
    authorize_url: str
    token_url: str
    revoke_url: str | None
    scopes: tuple[str, ...]
    pkce: bool
    # "body": client id and secret as form fields; "basic": HTTP Basic (RFC 6749 §2.3.1).
    client_auth: str = "body"
    scope_separator: str = " "
    extra_authorize_params: dict[str, str] = field(default_factory=dict)
    # Whether a refresh answer may carry a new refresh token that replaces the old one.
    rotates_refresh_tokens: bool = False


@dataclass(frozen=True)
class RateLimitSpec:
    """Published limits; the shared limiter runs below them with ``headroom``."""

    requests: int  # per window, per connection (token/app/org as the CRM counts it)
    window_seconds: float
    daily: int | None = None
    search_per_second: float | None = None
    headroom: float = 0.9
    # Header names by role: limit, remaining, window_ms, daily, daily_remaining, reset, retry_after.
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ConnectionSetting:
    """A provider-specific whole-number setting ops may set per connection (admin), e.g.
    Salesforce's ``bulk_threshold``. Stored on ``Connection.provider_settings`` and handed to the
    connector as ``Connector.settings``; the connector supplies the default when it is unset."""

    name: str
    label: str
    help: str
    minimum: int
    maximum: int


@dataclass(frozen=True)
class ProviderSpec:
    name: str
    label: str
    tier: int  # 1 full, 2 standard, 3 through Zapier/Make
    auth_kinds: tuple[str, ...]
    api_base_url: str | None  # None: the base comes from the token answer (instance_url, api_domain)
    oauth: OAuthSpec | None
    batch_sizes: dict[str, int]  # operation -> records per call
    rate_limit: RateLimitSpec
    webhook_signature: str  # how inbound webhooks are authenticated, e.g. "hmac-sha256-v3", "none"
    record_types: tuple[str, ...]  # "contact", "lead": which person objects the CRM has
    connector_path: str  # dotted path of the Connector subclass
    docs_url: str
    token_help: str = ""  # where an owner finds a token or API key, shown on the connect page
    # Non-secret values a token connection needs besides the token, as (name, label) pairs,
    # e.g. Copper's ("user_email", "Copper user e-mail"). Stored on Connection.auth_extra and
    # handed to the connector as ConnectionCredentials.extra.
    token_extra_fields: tuple[tuple[str, str], ...] = ()
    # The person object's owner field, for workflow triggers that assign an owner ("" = none).
    owner_field: str = ""
    # Per-connection settings ops may change in the admin (validated by integrations.provider_settings).
    connection_settings: tuple[ConnectionSetting, ...] = ()

    # -- endpoints, with settings overrides ---------------------------------------------------------
    def _endpoint_override(self, key: str) -> str | None:
        return (settings.CRM_ENDPOINTS.get(self.name) or {}).get(key)

    def api_url(self, connection_base: str | None = None) -> str:
        """The API base: the connection's own (instance_url, api_domain), the override, or the default."""
        base = connection_base or self._endpoint_override("api_url") or self.api_base_url
        if not base:
            raise ValueError(f"{self.label} has no API base URL until a connection supplies one")
        return base.rstrip("/")

    def oauth_endpoint(self, which: str) -> str | None:
        """``authorize``, ``token`` or ``revoke`` URL; ``<NAME>_OAUTH_URL`` replaces scheme and host."""
        if self.oauth is None:
            return None
        url = getattr(self.oauth, f"{which}_url")
        override = self._endpoint_override("oauth_url")
        if url is None or not override:
            return url
        target, original = urlsplit(override.rstrip("/")), urlsplit(url)
        return urlunsplit((target.scheme, target.netloc, target.path + original.path, original.query, ""))

    @property
    def client_id(self) -> str | None:
        return self._endpoint_override("client_id")

    @property
    def client_secret(self) -> str | None:
        return self._endpoint_override("client_secret")

    @property
    def oauth_configured(self) -> bool:
        return AUTH_OAUTH in self.auth_kinds and bool(self.client_id and self.client_secret)

    def connector_class(self) -> type[Connector]:
        return import_string(self.connector_path)


@cache
def providers() -> dict[str, ProviderSpec]:
    specs = {}
    for package in PROVIDER_PACKAGES:
        spec = import_module(f"integrations.providers.{package}.provider").PROVIDER
        specs[spec.name] = spec
    return specs


def get_provider(name: str) -> ProviderSpec:
    try:
        return providers()[name]
    except KeyError:
        raise LookupError(f"unknown CRM provider {name!r}; known: {', '.join(providers())}") from None


def provider_choices() -> list[tuple[str, str]]:
    return [(spec.name, spec.label) for spec in providers().values()]
