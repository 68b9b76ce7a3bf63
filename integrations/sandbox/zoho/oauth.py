"""The data centre's accounts server: consent page, token and revoke (crm-reference §4.1).

- ``GET /oauth/v2/auth`` shows a consent page (buttons ``allow`` / ``deny``); the answer redirects
  back with ``code``, ``state``, ``location`` (the data centre, e.g. ``us``) and
  ``accounts-server`` (where the code must be exchanged). Only ``access_type=offline`` earns a
  refresh token.
- ``POST /oauth/v2/token`` (form or query parameters) with ``grant_type`` ``authorization_code``
  or ``refresh_token``. Success: ``access_token``, ``refresh_token`` (code exchange only),
  ``api_domain`` (this server), ``token_type: "Bearer"``, ``expires_in: 3600``. Refresh tokens do
  not rotate. **Failures are HTTP 200 with ``{"error": "invalid_code"}``** (or
  ``invalid_client``, ``invalid_redirect_uri``, ``unsupported_grant_type``), as the Zoho SDK
  expects.
- ``POST /oauth/v2/token/revoke?token=<refresh token>``: ``{"status": "success"}``; the refresh
  token and every access token made from it stop working.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

from integrations.sandbox.core import Request, Response

if TYPE_CHECKING:
    from integrations.sandbox.zoho.app import ZohoEmulator

_ERRORS = {"invalid_grant": "invalid_code", "invalid_client": "invalid_client"}


def _params(request: Request) -> dict[str, str]:
    params = {key: values[0] for key, values in request.query.items()}
    if request.method == "POST" and request.body:
        params.update(request.form())
    return params


class OAuthRoutes:
    def __init__(self, app: ZohoEmulator) -> None:
        self.app = app

    def register(self) -> None:
        self.app.route("GET", r"/oauth/v2/auth", self.authorize, auth=False)
        self.app.route("POST", r"/oauth/v2/auth", self.authorize, auth=False)
        self.app.route("POST", r"/oauth/v2/token", self.token, auth=False)
        self.app.route("POST", r"/oauth/v2/token/revoke", self.revoke, auth=False)

    def authorize(self, request: Request) -> Response:
        params = _params(request)
        if request.method == "GET" and not params.get("scope"):
            return Response.html("<h1>Invalid OAuth scope</h1><p>The request names no scope.</p>", status=400)
        answer = self.app.oauth.authorize(request)
        location = answer.headers.get("Location", "")
        if answer.status != 302 or "code=" not in location:
            return answer
        parts = urlsplit(location)
        query = parse_qs(parts.query)
        code = query.get("code", [""])[0]
        with self.app.oauth.lock:
            entry = self.app.oauth.codes.get(code)
            if entry is not None:
                entry["offline"] = params.get("access_type", "online") == "offline"
        extra = urlencode({"location": self.app.location, "accounts-server": self.app.base_url})
        answer.headers["Location"] = urlunsplit((*parts[:3], f"{parts.query}&{extra}", parts.fragment))
        return answer

    def token(self, request: Request) -> Response:
        params = _params(request)
        form_request = Request(
            request.method, request.path, {}, request.headers, urlencode(params).encode(), token=request.token
        )
        offline = True
        if params.get("grant_type") == "authorization_code":
            with self.app.oauth.lock:
                entry = self.app.oauth.codes.get(params.get("code", ""))
            offline = bool(entry and entry.get("offline"))
        issued, error, description = self.app.oauth.exchange(form_request)
        if issued is None:
            if description and "redirect_uri" in description:
                error = "invalid_redirect_uri"
            return Response.json({"error": _ERRORS.get(error or "", error or "invalid_request")})
        issued.account_ref = self.app.org_id
        body = {
            "access_token": issued.access_token,
            "api_domain": self.app.base_url,
            "token_type": "Bearer",
            "expires_in": int(self.app.oauth.access_token_ttl or 3600),
        }
        if params.get("grant_type") == "authorization_code":
            if offline and issued.refresh_token:
                body["refresh_token"] = issued.refresh_token
            elif issued.refresh_token:  # online access: no refresh token is handed out
                self._forget_refresh(issued.refresh_token)
        return Response.json(body)

    def _forget_refresh(self, refresh_token: str) -> None:
        with self.app.oauth.lock:
            self.app.oauth.refresh_tokens.pop(refresh_token, None)

    def revoke(self, request: Request) -> Response:
        token = _params(request).get("token", "")
        self.app.oauth.revoke(token)
        return Response.json({"status": "success"})
