"""Close's OAuth 2.0 endpoints on the emulator (crm-reference §8.1).

- ``GET /oauth2/authorize/`` shows a consent page with ``allow`` / ``deny`` buttons; the form
  posts back and the browser is sent to the redirect URI with a ``code`` or ``error=access_denied``.
- ``POST /oauth2/token/`` (form: ``client_id``, ``client_secret``, ``grant_type``, ``code`` or
  ``refresh_token``) answers ``{"token_type": "Bearer", "access_token", "expires_in": 3600,
  "refresh_token", "scope": "all.full_access offline_access", "organization_id", "user_id"}``.
  Refresh tokens rotate: the one used is retired.
- ``POST /oauth2/revoke/`` (``token``, client credentials) answers 200 whatever the token's state
  (RFC 7009 §2.2).

Errors are RFC 6749 §5.2 bodies: ``{"error": …, "error_description": …}``, 401 for a client that
fails authentication and 400 otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from integrations.sandbox.core import Request, Response

if TYPE_CHECKING:
    from integrations.sandbox.close.app import CloseEmulator

SCOPES = ("all.full_access", "offline_access")


def routes(app: CloseEmulator) -> list[tuple[str, str, Callable[[Request], Response]]]:
    def authorize(request: Request) -> Response:
        return app.oauth.authorize(request)

    def token(request: Request) -> Response:
        issued, error, description = app.oauth.exchange(request)
        if issued is None:
            status = 401 if error == "invalid_client" else 400
            return Response.json({"error": error, "error_description": description}, status=status)
        issued.account_ref = app.store.org_id
        return Response.json(
            {
                "token_type": "Bearer",
                "access_token": issued.access_token,
                "expires_in": int(app.oauth.access_token_ttl or 0),
                "refresh_token": issued.refresh_token,
                # Every Close app gets the same scope, whatever it asked for.
                "scope": " ".join(SCOPES),
                "organization_id": app.store.org_id,
                "user_id": app.store.user["id"],
            }
        )

    def revoke(request: Request) -> Response:
        form = request.form()
        client = app.oauth.clients.get(form.get("client_id", ""))
        if client is None or client.client_secret != form.get("client_secret"):
            return Response.json(
                {"error": "invalid_client", "error_description": "Client authentication failed"}, status=401
            )
        app.oauth.revoke(form.get("token", ""))
        return Response.json({})

    return [
        ("GET", r"/oauth2/authorize/?", authorize),
        ("POST", r"/oauth2/authorize/?", authorize),
        ("POST", r"/oauth2/token/?", token),
        ("POST", r"/oauth2/revoke/?", revoke),
    ]
