"""The error taxonomy of DESIGN.md: one place decides what a CRM failure means.

Every failure talking to a CRM becomes one of these. The sync engine reads only ``kind`` and
``retry_after``; it never inspects status codes or vendor bodies itself.

- ``retryable``: 429, 5xx, timeouts, connection errors, Salesforce REQUEST_LIMIT_EXCEEDED.
- ``auth``: the token is expired or revoked: refresh once, else the connection needs
  re-authentication.
- ``record``: this record is wrong (validation, unknown field, bad picklist value): fail the
  row with the CRM's message, carry on with the rest of the batch.
- ``configuration``: the set-up cannot work (missing scope, field not writable): tell a person.
"""

from __future__ import annotations


class CrmError(Exception):
    kind = "retryable"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str = "",
        retry_after: float | None = None,
        field: str = "",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.retry_after = retry_after
        self.field = field

    @property
    def retryable(self) -> bool:
        return self.kind == "retryable"

    def __str__(self) -> str:
        prefix = f"{self.status} " if self.status else ""
        code = f"{self.code}: " if self.code else ""
        return f"{prefix}{code}{self.message}"


class RetryableError(CrmError):
    kind = "retryable"


class RateLimited(RetryableError):
    """The CRM asked us to slow down. Never counted as a failure; retried after ``retry_after``."""


class AuthError(CrmError):
    kind = "auth"


class RecordError(CrmError):
    kind = "record"


class NotFound(RecordError):
    """The record does not exist (deleted or merged in the CRM)."""


class ConfigurationError(CrmError):
    kind = "configuration"


class OAuthError(Exception):
    """The OAuth server refused: an ``error`` code and description from RFC 6749 §5.2."""

    def __init__(self, error: str, description: str = "") -> None:
        super().__init__(error, description)
        self.error = error
        self.description = description

    def __str__(self) -> str:
        return f"{self.error}: {self.description}" if self.description else self.error
