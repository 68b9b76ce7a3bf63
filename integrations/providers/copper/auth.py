"""How credentials travel to Copper (crm-reference §6.1).

- API key (what customers use): ``X-PW-AccessToken: <key>`` and ``X-PW-UserEmail: <the key
  owner's e-mail>``. The e-mail is a non-secret extra of the token connection
  (``ProviderSpec.token_extra_fields`` → ``Connection.auth_extra`` → ``credentials.extra``).
- OAuth token of a registered partner app: ``Authorization: Bearer <token>``, no e-mail.

So a connection with a user e-mail is an API-key connection, one without is an OAuth one; every
request also carries ``X-PW-Application: developer_api`` and ``Content-Type: application/json``.
"""

from __future__ import annotations

import requests

from integrations.connector import ConnectionCredentials

USER_EMAIL = "user_email"


def user_email(credentials: ConnectionCredentials) -> str:
    """The API key owner's e-mail from the connection's extras ('' for OAuth connections)."""
    return str((credentials.extra or {}).get(USER_EMAIL) or "").strip()


class CopperAuth(requests.auth.AuthBase):
    def __init__(self, token: str, email: str) -> None:
        self._token = token
        self._email = email

    @property
    def api_key_mode(self) -> bool:
        return bool(self._email)

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["X-PW-Application"] = "developer_api"
        if self._email:
            request.headers["X-PW-AccessToken"] = self._token
            request.headers["X-PW-UserEmail"] = self._email
        else:
            request.headers["Authorization"] = f"Bearer {self._token}"
        # Copper asks for it on every request, including GETs without a body.
        request.headers.setdefault("Content-Type", "application/json")
        return request

    def __repr__(self) -> str:  # never show the key in a traceback's locals
        return "CopperAuth([REDACTED])"
