"""Zoho CRM's error shapes (crm-reference §4.6; spec record.json ``API_Exception``, common.json).

A request-level refusal is one object ``{"code", "details", "message", "status": "error"}``; a
record-level one is the same object inside the ``data[]`` of a batch write, in input order. The
codes are the spec's ``API_Exception.code`` enum; the messages are taken from its ``message`` enum
wherever one fits, and the HTTP status pairings (**UNVERIFIED** in the reference) are:

==========================  ======  =========================================
code                        status  when
==========================  ======  =========================================
AUTHENTICATION_FAILURE      401     no ``Zoho-oauthtoken`` header (``Bearer`` included)
INVALID_TOKEN               401     unknown, revoked or expired token
OAUTH_SCOPE_MISMATCH        401     the token lacks the scope (``enforce_scopes``)
NO_PERMISSION               403     the user may not (e.g. create fields)
INVALID_URL_PATTERN         404     no such route
INVALID_MODULE              400     unknown module API name
REQUIRED_PARAM_MISSING      400     e.g. ``fields`` on a list call
INVALID_DATA / MANDATORY…   400     a bad body; per record inside ``data[]``
LIMIT_EXCEEDED              400     more than 100 records in one write
TOO_MANY_REQUESTS           429     over the concurrency cap
LIMIT_EXCEEDED              429     the 24-hour credit budget is spent
INTERNAL_ERROR              500     injected server errors
==========================  ======  =========================================
"""

from __future__ import annotations

from typing import Any

from integrations.sandbox.core import Response


class ZohoError(Exception):
    """A refusal Zoho would send; ``status`` is the HTTP status of a request-level answer."""

    def __init__(self, status: int, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.details = dict(details or {})

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "details": self.details, "message": self.message, "status": "error"}

    def response(self, headers: dict[str, str] | None = None) -> Response:
        return Response.json(self.body(), status=self.status, headers=headers)


def field_path(index: int, api_name: str, wrapper: str = "data") -> str:
    return f"$.{wrapper}[{index}].{api_name}"


def mandatory(index: int, api_name: str) -> ZohoError:
    return ZohoError(
        400,
        "MANDATORY_NOT_FOUND",
        "required field not found",
        {"api_name": api_name, "json_path": field_path(index, api_name)},
    )


def invalid_data(index: int, api_name: str, **extra: Any) -> ZohoError:
    details = {"api_name": api_name, "json_path": field_path(index, api_name), **extra}
    return ZohoError(400, "INVALID_DATA", "invalid data", details)


def invalid_id(index: int) -> ZohoError:
    return ZohoError(
        400,
        "INVALID_DATA",
        "the id given seems to be invalid",
        {"api_name": "id", "json_path": field_path(index, "id")},
    )


def duplicate(index: int, api_name: str, module: str, module_id: str, existing_id: str, owner: dict) -> ZohoError:
    return ZohoError(
        400,
        "DUPLICATE_DATA",
        "duplicate data",
        {
            "api_name": api_name,
            "json_path": field_path(index, api_name),
            "duplicate_record": {
                "module": {"api_name": module, "id": module_id},
                "id": existing_id,
                "Owner": {"name": owner["name"], "id": owner["id"], "email": owner["email"]},
            },
        },
    )


def invalid_module(name: str) -> ZohoError:
    return ZohoError(400, "INVALID_MODULE", "The module name given seems to be invalid", {"param": name})


def required_param(name: str) -> ZohoError:
    return ZohoError(
        400, "REQUIRED_PARAM_MISSING", "One of the expected parameter is missing", {"param_name": name, "param": name}
    )


def invalid_param(name: str, message: str = "Please check whether the input values are correct") -> ZohoError:
    return ZohoError(400, "INVALID_DATA", message, {"param_name": name, "param": name})


def too_many_records(limit: int = 100) -> ZohoError:
    return ZohoError(400, "LIMIT_EXCEEDED", "Record count exceeded", {"limit": limit})


def bad_body(message: str = "body") -> ZohoError:
    """An unreadable or wrongly shaped JSON body (Zoho answers INVALID_DATA with the message "body")."""
    return ZohoError(400, "INVALID_DATA", message, {})


def url_pattern() -> ZohoError:
    return ZohoError(404, "INVALID_URL_PATTERN", "Please check if the URL trying to access is a correct one", {})


def no_permission(*permissions: str) -> ZohoError:
    return ZohoError(403, "NO_PERMISSION", "permission denied", {"permissions": list(permissions)})
