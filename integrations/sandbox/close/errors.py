"""Close's error answers (crm-reference §8.5, §8.6).

- Validation (400): ``{"errors": [...], "field-errors": {"<field>": "<message>"}}`` — the shape the
  official Python client reads into ``ValidationError(errors, field_errors)``; we add a top-level
  ``"error"`` summary so clients that read only ``error`` still get a message.
- Everything else: ``{"error": "<message>"}``.
- 429: ``{"error": {"message": …, "rate_reset": <seconds>}}`` with the ``RateLimit`` and
  ``Retry-After`` headers (added by the app).
"""

from __future__ import annotations

from typing import Any

from integrations.sandbox.core import Response


class CloseError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        field_errors: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field_errors = dict(field_errors or {})
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        if self.field_errors:
            return {"error": self.message, "errors": [], "field-errors": self.field_errors}
        return {"error": self.message}

    def response(self) -> Response:
        return Response.json(self.body(), status=self.status, headers=self.headers)


def invalid(field_errors: dict[str, str], message: str = "Validation failed") -> CloseError:
    return CloseError(400, message, field_errors=field_errors)


def not_found(kind: str, object_id: str) -> CloseError:
    return CloseError(404, f"Empty query: {kind} matching query does not exist. ({object_id})")
