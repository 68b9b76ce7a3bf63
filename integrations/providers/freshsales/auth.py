"""How the API key travels to Freshsales (crm-reference §7.1): ``Authorization: Token token=<key>``."""

from __future__ import annotations

import requests


class FreshsalesAuth(requests.auth.AuthBase):
    def __init__(self, api_key: str) -> None:
        self._api_key = api_key

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Token token={self._api_key}"
        request.headers.setdefault("Content-Type", "application/json")
        return request

    def __repr__(self) -> str:  # never show the key in a traceback's locals
        return "FreshsalesAuth([REDACTED])"
