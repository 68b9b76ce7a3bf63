"""Copper's refusals in the error taxonomy of DESIGN.md (crm-reference §6.5, §6.6).

Copper answers errors as ``{"success": false, "status": <n>, "message": "…"}`` (422 bodies say
``Invalid input: <detail>``). It documents no rate-limit headers and no ``Retry-After``: after a
429 we wait one whole window (60 s), the only safe reading of "180 requests per rolling minute".
"""

from __future__ import annotations

from collections.abc import Mapping

import requests

from integrations.errors import (
    AuthError,
    ConfigurationError,
    CrmError,
    NotFound,
    RateLimited,
    RecordError,
    RetryableError,
)
from integrations.http import retry_after_seconds

RATE_WINDOW_SECONDS = 60.0
AUTH_HINT = (
    " — check the API key and that the e-mail given with it is the Copper user who generated it "
    "(Copper → Settings → Integrations → API Keys)"
)


def describe(response: requests.Response) -> str:
    """Copper's message, or the start of whatever else came back."""
    try:
        body = response.json()
    except ValueError:
        return (response.text or response.reason or "no message")[:300]
    if isinstance(body, Mapping):
        message = body.get("message") or body.get("error_description") or body.get("error")
        if message:
            return str(message)[:500]
    return str(body)[:300]


def classify(response: requests.Response, *, api_key_mode: bool = True) -> CrmError | None:
    status = response.status_code
    message = describe(response)
    if status == 429:
        retry = retry_after_seconds(response.headers) or RATE_WINDOW_SECONDS
        return RateLimited(message, status=status, retry_after=retry)
    if status == 401:
        return AuthError(message + (AUTH_HINT if api_key_mode else ""), status=status)
    if status == 403:
        return ConfigurationError(message, status=status)
    if status in (404, 410):
        return NotFound(message, status=status)
    if status == 408 or status >= 500:
        return RetryableError(message, status=status, retry_after=retry_after_seconds(response.headers))
    if status >= 400:
        return RecordError(message, status=status)
    return None


def is_duplicate_email(error: CrmError) -> bool:
    """Whether a 422 on a person write is People's e-mail key (wording UNVERIFIED: the caller
    confirms with ``fetch_by_email``, so a false positive only costs one call)."""
    text = error.message.lower()
    return error.status == 422 and "email" in text and ("already" in text or "taken" in text or "exist" in text)
