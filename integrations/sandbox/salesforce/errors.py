"""Salesforce's error shapes (crm-reference §1.6).

REST answers carry a JSON *array* of ``{"message", "errorCode", "fields"?}``; per-record results in
sObject Collections and SaveResults use ``{"statusCode", "message", "fields"}`` instead; Bulk API 2.0
writes ``CODE:message:Field --`` into the ``sf__Error`` column.
"""

from __future__ import annotations

from typing import Any

from integrations.sandbox.core import Response


class SfError(Exception):
    """A refusal Salesforce would send. ``status`` is the HTTP status of a single-record answer."""

    def __init__(self, status: int, code: str, message: str, fields: list[str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.fields = status, code, message, fields

    def entry(self) -> dict[str, Any]:
        body: dict[str, Any] = {"message": self.message, "errorCode": self.code}
        if self.fields is not None:
            body["fields"] = list(self.fields)
        return body

    def save_error(self) -> dict[str, Any]:
        return {"statusCode": self.code, "message": self.message, "fields": list(self.fields or [])}

    def bulk_error(self) -> str:
        return f"{self.code}:{self.message}:{','.join(self.fields or [])} --"

    def response(self, headers: dict[str, str] | None = None) -> Response:
        return Response.json([self.entry()], status=self.status, headers=headers)


def not_found(message: str = "The requested resource does not exist") -> SfError:
    return SfError(404, "NOT_FOUND", message)


def malformed_id(label: str, value: object) -> SfError:
    return SfError(400, "MALFORMED_ID", f"{label}: id value of incorrect type: {value}", [])


def entity_is_deleted() -> SfError:
    return SfError(404, "ENTITY_IS_DELETED", "entity is deleted", [])


def json_error(message: str) -> SfError:
    return SfError(400, "JSON_PARSER_ERROR", message)


REQUEST_LIMIT_EXCEEDED = "REQUEST_LIMIT_EXCEEDED"
INVALID_SESSION = [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
