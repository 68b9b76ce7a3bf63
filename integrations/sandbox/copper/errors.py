"""Copper's error answers (crm-reference §6.6).

Copper documents one body shape, for validation: ``{"success": false, "status": 422, "message":
"Invalid input: <detail>"}``. The bodies of 401, 403, 404 and 429 are not documented
(UNVERIFIED); the emulator answers them in the same shape so a client reads one format.
"""

from __future__ import annotations

from integrations.sandbox.core import Response


class CopperError(Exception):
    """Raised by a handler; becomes Copper's error body with ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def response(self) -> Response:
        return error_response(self.status, self.message)


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response.json({"success": False, "status": status, "message": message}, status=status, headers=headers)


def invalid(detail: str) -> CopperError:
    """A 422 validation refusal, worded as Copper's documented example."""
    return CopperError(422, f"Invalid input: {detail}")


def not_found() -> CopperError:
    return CopperError(404, "Resource not found")
