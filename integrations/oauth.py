"""OAuth 2.0 authorization-code flow with PKCE, token refresh and revoke, for every provider.

oauthlib builds the authorize URL, the PKCE verifier/challenge and the token request bodies
(RFC 6749, RFC 7636); the requests go through the HTTP seam so they get its timeout, TLS trust,
error mapping and redaction. Token answers are parsed by the provider's connector, because the
vendors differ (Salesforce sends no ``expires_in``; Zoho reports errors with HTTP 200).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import requests
from oauthlib.oauth2 import WebApplicationClient

from integrations.connector import TokenSet
from integrations.errors import AuthError, CrmError, OAuthError, RecordError, RetryableError
from integrations.http import CrmHttp
from integrations.registry import ProviderSpec


@dataclass(frozen=True)
class AuthorizationRequest:
    url: str
    state: str
    code_verifier: str | None


class OAuthNotConfigured(Exception):
    """The provider has no OAuth client id/secret configured (``<NAME>_CLIENT_ID``/``_SECRET``)."""


def _client(spec: ProviderSpec) -> WebApplicationClient:
    if not spec.oauth_configured:
        raise OAuthNotConfigured(
            f"{spec.label} OAuth is not configured: set {spec.name.upper()}_CLIENT_ID and "
            f"{spec.name.upper()}_CLIENT_SECRET (see docs/crms/{spec.name}.md)"
        )
    return WebApplicationClient(spec.client_id)


def build_authorization(spec: ProviderSpec, redirect_uri: str) -> AuthorizationRequest:
    """The provider's authorize URL with a fresh single-use ``state`` and, where supported, PKCE S256."""
    client = _client(spec)
    assert spec.oauth is not None
    state = secrets.token_urlsafe(32)
    params: dict[str, str] = dict(spec.oauth.extra_authorize_params)
    verifier = None
    if spec.oauth.pkce:
        verifier = client.create_code_verifier(64)
        params.update(code_challenge=client.create_code_challenge(verifier, "S256"), code_challenge_method="S256")
    url = client.prepare_request_uri(
        spec.oauth_endpoint("authorize"),
        redirect_uri=redirect_uri,
        scope=spec.oauth.scope_separator.join(spec.oauth.scopes),
        state=state,
        **params,
    )
    return AuthorizationRequest(url=url, state=state, code_verifier=verifier)


def _classify_oauth_error(response: requests.Response) -> CrmError | None:
    if response.status_code >= 500 or response.status_code == 429:
        return RetryableError(f"the token endpoint answered {response.status_code}", status=response.status_code)
    try:
        body = response.json()
    except ValueError:
        body = {}
    error = str(body.get("error") or body.get("status") or "invalid_response") if isinstance(body, dict) else ""
    description = str(body.get("error_description") or body.get("message") or "") if isinstance(body, dict) else ""
    raise OAuthError(error or f"http_{response.status_code}", description[:300])


def _token_http(spec: ProviderSpec, secrets_: list[str]) -> CrmHttp:
    return CrmHttp(
        f"{spec.label} OAuth",
        spec.oauth_endpoint("token") or "",
        classify=_classify_oauth_error,
        secrets=[spec.client_secret or "", *secrets_],
    )


def _post_token(spec: ProviderSpec, body: str, known_secrets: list[str]) -> TokenSet:
    assert spec.oauth is not None
    http = _token_http(spec, known_secrets)
    auth = None
    if spec.oauth.client_auth == "basic":
        auth = requests.auth.HTTPBasicAuth(spec.client_id or "", spec.client_secret or "")
    response = http.request(
        "POST",
        spec.oauth_endpoint("token") or "",
        data=body,
        auth=auth,
        headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"},
    )
    try:
        payload = response.json()
    except ValueError:
        raise OAuthError("invalid_response", "the token endpoint did not answer with JSON") from None
    if not isinstance(payload, dict):
        raise OAuthError("invalid_response", "the token endpoint answered with something other than an object")
    return spec.connector_class().parse_token_response(payload)


def _credentials_in_body(spec: ProviderSpec) -> dict[str, str]:
    assert spec.oauth is not None
    if spec.oauth.client_auth == "basic":
        return {}
    return {"client_id": spec.client_id or "", "client_secret": spec.client_secret or ""}


def exchange_code(spec: ProviderSpec, code: str, redirect_uri: str, code_verifier: str | None) -> TokenSet:
    """Trade an authorization code for tokens; raises OAuthError when the CRM refuses."""
    client = _client(spec)
    assert spec.oauth is not None
    extra = {"code_verifier": code_verifier} if code_verifier else {}
    # oauthlib adds client_id itself when asked to (and drops one passed in the kwargs).
    in_body = spec.oauth.client_auth != "basic"
    secret = {"client_secret": spec.client_secret or ""} if in_body else {}
    body = client.prepare_request_body(
        code=code, redirect_uri=redirect_uri, include_client_id=in_body, **secret, **extra
    )
    return _post_token(spec, body, [code, code_verifier or ""])


def refresh(spec: ProviderSpec, refresh_token: str) -> TokenSet:
    """A new access token (and, where the CRM rotates them, a new refresh token)."""
    client = _client(spec)
    body = client.prepare_refresh_body(refresh_token=refresh_token, **_credentials_in_body(spec))
    return _post_token(spec, body, [refresh_token])


def revoke_token(spec: ProviderSpec, token: str) -> bool:
    """Revoke at the CRM; False when it has no revoke endpoint. Refusals of an already-dead token
    count as revoked."""
    url = spec.oauth_endpoint("revoke") if spec.oauth else None
    if not url or not token:
        return False
    http = _token_http(spec, [token])
    data = {"token": token, **(_credentials_in_body(spec) if spec.oauth_configured else {})}
    auth = None
    if spec.oauth is not None and spec.oauth.client_auth == "basic" and spec.oauth_configured:
        auth = requests.auth.HTTPBasicAuth(spec.client_id or "", spec.client_secret or "")
    try:
        http.request("POST", url, data=data, auth=auth)
    except OAuthError:
        return True  # invalid_token and the like: nothing left to revoke
    except (AuthError, RecordError):
        return True
    return True
