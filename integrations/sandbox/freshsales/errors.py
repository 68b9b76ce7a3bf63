"""Freshsales error bodies (crm-reference §7.6): ``{"errors": {"code": <status>, "message": [...]}}``."""

from __future__ import annotations

from integrations.sandbox.core import Response


class FreshsalesError(Exception):
    """Raised inside a handler; the app answers with Freshsales' error shape."""

    def __init__(self, status: int, *messages: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(status, messages)
        self.status = status
        self.messages = list(messages) or ["Something went wrong"]
        self.headers = headers or {}


def error_response(status: int, *messages: str, headers: dict[str, str] | None = None) -> Response:
    return Response.json({"errors": {"code": status, "message": list(messages)}}, status=status, headers=headers)


def not_found(what: str) -> FreshsalesError:
    return FreshsalesError(404, f"{what} not found")
