"""OAuth 2.0 and identity endpoints in Salesforce's shapes (crm-reference §1.1).

The grant logic (consent page, code with PKCE, refresh with optional rotation, revoke) is core's
``OAuthServer``; this module shapes the answers: token responses carry ``instance_url``, the identity
URL ``id``, ``issued_at`` (ms, as a string) and ``signature`` but no ``expires_in``; errors are
``{"error", "error_description"}`` with HTTP 400. A refresh answer carries a refresh token only when
the connected app rotates them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from typing import TYPE_CHECKING, Any

from integrations.sandbox.core import IssuedToken, OAuthClient, Request, Response
from integrations.sandbox.salesforce.wire import format_datetime

if TYPE_CHECKING:
    from integrations.sandbox.salesforce.app import SalesforceEmulator

REFRESH_SCOPES = frozenset({"refresh_token", "offline_access"})
# Core's descriptions in Salesforce's words (unknown ones pass through unchanged).
DESCRIPTIONS = {
    "Client authentication failed": "invalid client credentials",
    "The refresh token is invalid or was revoked": "expired access/refresh token",
    "PKCE code_verifier does not match the code_challenge": "invalid code verifier",
    "The authorization code is invalid or was already used": "invalid authorization code",
}


def bad_token() -> Response:
    """The identity service's refusal of a missing, expired or revoked token."""
    return Response(403, b"Bad_OAuth_Token", {"Content-Type": "text/plain;charset=UTF-8"})


def oauth_error(error: str, description: str, status: int = 400) -> Response:
    return Response.json({"error": error, "error_description": description}, status=status)


class OAuthRoutes:
    def __init__(self, app: SalesforceEmulator) -> None:
        self.app = app

    def register(self) -> None:
        api = self.app.api
        api("GET", r"/services/oauth2/authorize", self.authorize, auth=False)
        api("POST", r"/services/oauth2/authorize", self.authorize, auth=False)
        api("POST", r"/services/oauth2/token", self.token, auth=False)
        api("GET", r"/services/oauth2/revoke", self.revoke, auth=False)
        api("POST", r"/services/oauth2/revoke", self.revoke, auth=False)
        api("POST", r"/services/oauth2/introspect", self.introspect, auth=False)
        api("GET", r"/services/oauth2/userinfo", self.userinfo)
        api("POST", r"/services/oauth2/userinfo", self.userinfo)
        api("GET", r"/id/(?P<org_id>[^/]+)/(?P<user_id>[^/]+)/?", self.identity)
        api("POST", r"/id/(?P<org_id>[^/]+)/(?P<user_id>[^/]+)/?", self.identity)

    # -- authorization and tokens --------------------------------------------------------------------
    def authorize(self, request: Request) -> Response:
        return self.app.oauth.authorize(request)

    def token(self, request: Request) -> Response:
        grant = request.form().get("grant_type")
        issued, error, description = self.app.oauth.exchange(request)
        if issued is None:
            description = description or "invalid request"
            return oauth_error(error or "invalid_request", DESCRIPTIONS.get(description, description))
        if grant == "authorization_code":
            if not issued.scopes:
                issued.scopes = list(self.app.default_scopes)
            if not REFRESH_SCOPES & set(issued.scopes):
                # No refresh_token/offline_access scope granted: Salesforce sends no refresh token.
                with self.app.oauth.lock:
                    self.app.oauth.refresh_tokens.pop(issued.refresh_token or "", None)
                issued.refresh_token = None
        include_refresh = grant == "authorization_code" or self.app.oauth.rotate_refresh_tokens
        return Response.json(self.token_body(issued, include_refresh))

    def token_body(self, issued: IssuedToken, include_refresh: bool = True) -> dict[str, Any]:
        client = self.app.oauth.clients.get(issued.client_id)
        identity = self.app.identity_url(self.app.user_of(issued.access_token))
        issued_at = str(int(time.time() * 1000))
        # Salesforce signs id + issued_at with the consumer secret so a client can check the answer.
        secret = (client.client_secret if client else "").encode()
        digest = hmac.new(secret, (identity + issued_at).encode(), hashlib.sha256).digest()
        body: dict[str, Any] = {"access_token": issued.access_token}
        if include_refresh and issued.refresh_token:
            body["refresh_token"] = issued.refresh_token
        body.update(
            {
                "signature": base64.b64encode(digest).decode(),
                "scope": " ".join(issued.scopes),
                "instance_url": self.app.base_url,
                "id": identity,
                "token_type": "Bearer",
                "issued_at": issued_at,
            }
        )
        return body

    def revoke(self, request: Request) -> Response:
        params = request.form() if request.method == "POST" else {k: v[0] for k, v in request.query.items()}
        if not self.app.oauth.revoke(params.get("token", "")):
            return oauth_error("unsupported_token_type", "this token type is not supported")
        return Response(200, b"", {"Content-Type": "text/plain;charset=UTF-8"})

    def _client(self, request: Request, form: dict[str, str]) -> OAuthClient | None:
        client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        auth = request.header("authorization", "") or ""
        if auth.lower().startswith("basic "):
            try:
                client_id, secret = base64.b64decode(auth[6:]).decode().split(":", 1)
            except ValueError:
                return None
        client = self.app.oauth.clients.get(client_id)
        if client is None or not secrets.compare_digest(client.client_secret, secret):
            return None
        return client

    def introspect(self, request: Request) -> Response:
        form = request.form()
        if self._client(request, form) is None:
            return oauth_error("invalid_client", "invalid client credentials", status=401)
        value = form.get("token", "")
        oauth = self.app.oauth
        with oauth.lock:
            access = oauth.access_tokens.get(value)
            refresh = oauth.refresh_tokens.get(value)
        issued = access or refresh
        if issued is None or issued.revoked or (access is not None and oauth.token_state(value) != "ok"):
            return Response.json({"active": False})
        user_id = self.app.user_of(issued.access_token)
        body: dict[str, Any] = {
            "active": True,
            "scope": " ".join(issued.scopes),
            "client_id": issued.client_id,
            "username": self.app.user_record(user_id).get("Username"),
            "sub": self.app.identity_url(user_id),
            "token_type": "access_token" if access is not None else "refresh_token",
        }
        if access is not None and issued.expires_at is not None:
            body["exp"] = int(issued.expires_at)
            body["iat"] = body["nbf"] = int(issued.expires_at - (oauth.access_token_ttl or 0))
        return Response.json(body)

    # -- identity ------------------------------------------------------------------------------------
    def _urls(self, user_id: str) -> dict[str, str]:
        base, org15 = self.app.base_url, self.app.org_id[:15]
        rest = f"{base}/services/data/v{{version}}/"
        return {
            "enterprise": f"{base}/services/Soap/c/{{version}}/{org15}",
            "metadata": f"{base}/services/Soap/m/{{version}}/{org15}",
            "partner": f"{base}/services/Soap/u/{{version}}/{org15}",
            "rest": rest,
            "sobjects": f"{rest}sobjects/",
            "search": f"{rest}search/",
            "query": f"{rest}query/",
            "recent": f"{rest}recent/",
            "tooling_soap": f"{base}/services/Soap/T/{{version}}/{org15}",
            "tooling_rest": f"{rest}tooling/",
            "profile": f"{base}/{user_id}",
            "feeds": f"{rest}chatter/feeds",
            "groups": f"{rest}chatter/groups",
            "users": f"{rest}chatter/users",
            "feed_items": f"{rest}chatter/feed-items",
            "feed_elements": f"{rest}chatter/feed-elements",
            "custom_domain": base,
        }

    def identity(self, request: Request) -> Response:
        """The identity URL from the token response: who the connected user and org are."""
        user_id = self.app.user_of(request.token or "")
        wanted_org = request.params["org_id"]
        wanted_user = request.params["user_id"]
        if wanted_org[:15] != self.app.org_id[:15] or wanted_user[:15] != user_id[:15]:
            return Response(404, b"Bad_Id", {"Content-Type": "text/plain;charset=UTF-8"})
        user = self.app.user_record(user_id)
        return Response.json(
            {
                "id": self.app.identity_url(user_id),
                "asserted_user": True,
                "user_id": user_id,
                "organization_id": self.app.org_id,
                "username": user["Username"],
                "nick_name": user["Alias"],
                "display_name": user["Name"],
                "email": user["Email"],
                "email_verified": True,
                "first_name": user.get("FirstName"),
                "last_name": user["LastName"],
                "timezone": "GMT",
                "photos": self._photos(user_id),
                "mobile_phone": None,
                "mobile_phone_verified": False,
                "status": {"created_date": None, "body": None},
                "urls": self._urls(user_id),
                "active": bool(user["IsActive"]),
                "user_type": "STANDARD",
                "language": "en_US",
                "locale": "en_GB",
                "utcOffset": 0,
                "last_modified_date": format_datetime(user["LastModifiedDate"]),
                "is_app_installed": True,
            }
        )

    def _photos(self, user_id: str) -> dict[str, str]:
        return {
            "picture": f"{self.app.base_url}/profilephoto/005/F/{user_id}",
            "thumbnail": f"{self.app.base_url}/profilephoto/005/T/{user_id}",
        }

    def userinfo(self, request: Request) -> Response:
        """OpenID Connect userinfo: the same identity, in OpenID claim names."""
        user_id = self.app.user_of(request.token or "")
        user = self.app.user_record(user_id)
        return Response.json(
            {
                "sub": self.app.identity_url(user_id),
                "user_id": user_id,
                "organization_id": self.app.org_id,
                "preferred_username": user["Username"],
                "nickname": user["Alias"],
                "name": user["Name"],
                "email": user["Email"],
                "email_verified": True,
                "given_name": user.get("FirstName"),
                "family_name": user["LastName"],
                "zoneinfo": "GMT",
                "photos": self._photos(user_id),
                "profile": f"{self.app.base_url}/{user_id}",
                "picture": self._photos(user_id)["picture"],
                "address": {},
                "urls": self._urls(user_id),
                "active": bool(user["IsActive"]),
                "user_type": "STANDARD",
                "language": "en_US",
                "locale": "en_GB",
                "utcOffset": 0,
                "updated_at": format_datetime(user["LastModifiedDate"]),
            }
        )
