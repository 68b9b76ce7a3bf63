"""One error envelope for every 4xx answer: ``{"errors": [{"field": "...", "message": "..."}]}``.

Validation errors name the field as a client would write it (``events[3].data.seconds``), so one
answer can list every problem of every event and the platform can fix them all at once.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse
from ninja import NinjaAPI
from ninja.errors import AuthenticationError
from ninja.errors import ValidationError as NinjaValidationError


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str


class ApiError(Exception):
    """An answer other than 2xx, raised from anywhere in a request and rendered by the API."""

    def __init__(self, status: int, errors: list[FieldError], headers: dict[str, str] | None = None) -> None:
        super().__init__(status, errors)
        self.status = status
        self.errors = errors
        self.headers = headers or {}

    @classmethod
    def invalid(cls, errors: list[FieldError]) -> ApiError:
        return cls(400, errors)

    @classmethod
    def unauthorized(cls) -> ApiError:
        message = "a valid API key is required: Authorization: Bearer <key>"
        return cls(401, [FieldError("Authorization", message)], {"WWW-Authenticate": "Bearer"})

    @classmethod
    def too_large(cls) -> ApiError:
        message = f"the request body is larger than {settings.INGEST_MAX_BODY_BYTES} bytes; send smaller batches"
        return cls(413, [FieldError("body", message)])

    @classmethod
    def rate_limited(cls, retry_after: float) -> ApiError:
        seconds = max(1, math.ceil(retry_after))
        message = f"too many requests for this API key; retry after {seconds} seconds"
        return cls(429, [FieldError("Authorization", message)], {"Retry-After": str(seconds)})

    @classmethod
    def not_found(cls, name: str, message: str) -> ApiError:
        return cls(404, [FieldError(name, message)])


_FRIENDLY = {
    "missing": "this field is required",
    "extra_forbidden": "unknown field",
}


def _message(error: dict[str, Any]) -> str:
    kind = error["type"]
    if kind in _FRIENDLY:
        return _FRIENDLY[kind]
    if kind == "value_error":
        return str(error["ctx"]["error"])
    if kind == "union_tag_invalid":
        return f"unknown event type {error['ctx']['tag']!r}; expected one of {error['ctx']['expected_tags']}"
    if kind == "union_tag_not_found":
        return _FRIENDLY["missing"]
    return error["msg"]


def field_path(loc: Iterable[Any], *, tags: Iterable[str] = ()) -> str:
    """("events", 3, "time_spent", "data", "seconds") -> "events[3].data.seconds".

    A discriminated union puts the chosen member's tag in the location; ``tags`` names those so
    they are left out (they stand right after a list index, or first for a single object).
    """
    tag_names = set(tags)
    path = ""
    previous: Any = None
    for position, item in enumerate(loc):
        if isinstance(item, int):
            path += f"[{item}]"
        elif not (item in tag_names and (position == 0 or isinstance(previous, int))):
            path += f".{item}" if path else str(item)
        previous = item
    return path


def field_errors(errors: Iterable[dict[str, Any]], *, tags: Iterable[str] = ()) -> list[FieldError]:
    """Pydantic's error dicts as FieldErrors; a missing union tag is reported on its ``type`` field."""
    result = []
    for error in errors:
        path = field_path(error["loc"], tags=tags)
        if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
            path = f"{path}.type" if path else "type"
        result.append(FieldError(path or "body", _message(error)))
    return result


def render(error: ApiError) -> HttpResponse:
    body = json.dumps({"errors": [asdict(item) for item in error.errors]})
    response = HttpResponse(body, status=error.status, content_type="application/json")
    for name, value in error.headers.items():
        response[name] = value
    return response


def install_handlers(api: NinjaAPI) -> None:
    """Replace ninja's default answers (422 for validation, bare 401) with the envelope above."""

    def on_api_error(_request: HttpRequest, exc: ApiError) -> HttpResponse:
        return render(exc)

    def on_ninja_validation(_request: HttpRequest, exc: NinjaValidationError) -> HttpResponse:
        # ninja prefixes the parameter source ("path", "query", "body"); the name alone is clearer.
        errors = [{**error, "loc": tuple(error["loc"])[1:] or ("body",)} for error in exc.errors]
        return render(ApiError.invalid(field_errors(errors)))

    def on_authentication(_request: HttpRequest, _exc: AuthenticationError) -> HttpResponse:
        return render(ApiError.unauthorized())

    def on_too_big(_request: HttpRequest, _exc: RequestDataTooBig) -> HttpResponse:
        return render(ApiError.too_large())

    api.add_exception_handler(ApiError, on_api_error)
    api.add_exception_handler(NinjaValidationError, on_ninja_validation)
    api.add_exception_handler(AuthenticationError, on_authentication)
    api.add_exception_handler(RequestDataTooBig, on_too_big)
