"""Zoho's token answers (crm-reference §4.1; Zoho SDK ``oauth_token.py``).

Success: ``access_token``, ``refresh_token`` (code exchange only: refresh tokens do not rotate),
``api_domain`` (where this account's API lives), ``token_type: "Bearer"`` (the API still wants
``Zoho-oauthtoken``), ``expires_in`` (seconds). Failure: **HTTP 200** with ``{"error": "invalid_code"}``
(or ``invalid_client``…), which integrations.oauth hands over as a normal answer — so an answer with
an ``error``, or without an ``access_token``, is an OAuthError here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from integrations.connector import TokenSet
from integrations.errors import OAuthError


def _api_domain(payload: Mapping[str, Any]) -> str | None:
    raw = payload.get("api_domain")
    if raw in (None, ""):
        return None
    parts = urlsplit(str(raw))
    if parts.scheme not in ("https", "http") or not parts.netloc or parts.query or parts.fragment:
        raise OAuthError("invalid_response", "api_domain is not a URL")
    return str(raw).rstrip("/")


def parse(payload: Mapping[str, Any]) -> TokenSet:
    if payload.get("error"):
        description = payload.get("error_description") or payload.get("message") or ""
        raise OAuthError(str(payload["error"]), str(description)[:300])
    token = payload.get("access_token")
    if not isinstance(token, str) or not token:
        raise OAuthError("invalid_response", "the answer has no access_token")
    expires_at = None
    if payload.get("expires_in") is not None:
        try:
            seconds = int(payload["expires_in"])
        except (TypeError, ValueError):
            raise OAuthError("invalid_response", "expires_in is not a number of seconds") from None
        expires_at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)
    refresh = payload.get("refresh_token")
    refresh = refresh if isinstance(refresh, str) and refresh else None
    api_domain = _api_domain(payload)
    if api_domain is None and refresh is not None:
        # A code exchange (the only answer with a refresh token) must say where the account lives;
        # a refresh answer without api_domain keeps the one stored on the connection.
        raise OAuthError("invalid_response", "Zoho did not say which API domain (data centre) this account uses")
    raw_scopes = payload.get("scope")
    scopes = tuple(str(raw_scopes).replace(",", " ").split()) if isinstance(raw_scopes, str) else ()
    return TokenSet(
        access_token=token,
        refresh_token=refresh,
        expires_at=expires_at,
        scopes=scopes,
        api_base_url=api_domain,
        raw_fields=tuple(sorted(str(k) for k in payload)),
    )
