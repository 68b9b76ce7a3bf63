"""The one HTTP seam for all CRM traffic.

Every request to a CRM goes through a ``CrmSession`` (a ``requests.Session``): connectors call
``CrmHttp.request``, and client libraries that accept a session (simple-salesforce) get
``CrmHttp.session``. The seam gives every call the same:

- a timeout (``CRM_HTTP_TIMEOUT_SECONDS``) even when a library passes none;
- TLS trust from ``CRM_CA_BUNDLE`` (the sandbox CA) without the environment's CA variables
  overriding it (crm-reference.md §10.4: requests lets REQUESTS_CA_BUNDLE win over Session.verify);
- the error taxonomy (integrations.errors): transport failures become ``RetryableError`` and
  non-2xx answers are classified by the connector's ``classify_error``;
- rate-limit headers parsed by the connector's ``parse_rate_limit`` into a ``RateLimitSnapshot``;
- ``before_request`` / ``after_response`` hooks where the sync engine plugs its shared limiter;
- one log line per call with the path only (no query string, no headers, no bodies), and every
  secret the seam knows about replaced by ``[REDACTED]``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter

from integrations.errors import CrmError, RetryableError

log = logging.getLogger("integrations.http")


@dataclass
class RateLimitSnapshot:
    """What the CRM's own headers said about our budget after a call."""

    limit: int | None = None
    remaining: int | None = None
    window_seconds: float | None = None
    daily_limit: int | None = None
    daily_remaining: int | None = None
    reset_seconds: float | None = None
    at: float = field(default_factory=time.time)


Classifier = Callable[[requests.Response], CrmError | None]
RateParser = Callable[[requests.structures.CaseInsensitiveDict], RateLimitSnapshot | None]


class _TimeoutAdapter(HTTPAdapter):
    def __init__(self, timeout: float, **kwargs: Any) -> None:
        self._timeout = timeout
        super().__init__(**kwargs)

    def send(self, request, **kwargs):  # type: ignore[override]
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self._timeout
        return super().send(request, **kwargs)


class CrmSession(requests.Session):
    """A session that turns transport failures and CRM refusals into ``CrmError``s."""

    def __init__(self, seam: CrmHttp) -> None:
        super().__init__()
        self._seam = seam
        self.trust_env = False
        self.verify = settings.CRM_CA_BUNDLE or True
        adapter = _TimeoutAdapter(seam.timeout, pool_connections=4, pool_maxsize=16)
        self.mount("https://", adapter)
        self.mount("http://", adapter)

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        seam = self._seam
        if seam.before_request is not None:
            seam.before_request(method, url)
        started = time.monotonic()
        try:
            response = super().request(method, url, *args, **kwargs)
        except requests.Timeout:
            seam.record(method, url, None, started)
            raise RetryableError(f"{seam.label} did not answer within the timeout", code="timeout") from None
        except requests.ConnectionError:
            seam.record(method, url, None, started)
            raise RetryableError(f"could not connect to {seam.label}", code="connection_error") from None
        seam.record(method, url, response.status_code, started)
        snapshot = seam.parse_rate_limit(response.headers) if seam.parse_rate_limit else None
        if snapshot is not None:
            seam.rate_limit = snapshot
        if seam.after_response is not None:
            seam.after_response(response, snapshot)
        if response.status_code >= 400 or response.status_code in seam.extra_error_statuses:
            error = seam.classify(response)
            if error is not None:
                raise error
        return response


class CrmHttp:
    """Per-connection HTTP access to one CRM. Cheap to create; not shared across threads."""

    def __init__(
        self,
        label: str,
        base_url: str,
        *,
        classify: Classifier,
        parse_rate_limit: RateParser | None = None,
        auth: requests.auth.AuthBase | None = None,
        secrets: Iterable[str] = (),
        timeout: float | None = None,
        before_request: Callable[[str, str], None] | None = None,
        after_response: Callable[[requests.Response, RateLimitSnapshot | None], None] | None = None,
    ) -> None:
        self.label = label
        self.base_url = base_url.rstrip("/")
        self.classify = classify
        self.parse_rate_limit = parse_rate_limit
        self.timeout = timeout or settings.CRM_HTTP_TIMEOUT_SECONDS
        self.before_request = before_request
        self.after_response = after_response
        self._secrets = {s for s in secrets if s}
        self.extra_error_statuses: set[int] = set()  # e.g. Salesforce's 300 (several matches)
        self.calls = 0
        self.calls_by_status: dict[int | None, int] = {}
        self.rate_limit: RateLimitSnapshot | None = None
        self.session = CrmSession(self)
        if auth is not None:
            self.session.auth = auth

    def add_secret(self, secret: str | None) -> None:
        """Remember a secret so it never appears in a log line (e.g. a freshly refreshed token)."""
        if secret:
            self._secrets.add(secret)

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "[REDACTED]")
        return text

    def record(self, method: str, url: str, status: int | None, started: float) -> None:
        self.calls += 1
        self.calls_by_status[status] = self.calls_by_status.get(status, 0) + 1
        path = self.redact(urlsplit(url).path)
        log.info(
            "%s %s %s -> %s in %.0f ms",
            self.label,
            method.upper(),
            path,
            status or "no answer",
            (time.monotonic() - started) * 1000,
        )

    def url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else f"{self.base_url}/{path.lstrip('/')}"

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """Send a request relative to the base URL; raises ``CrmError`` for failures."""
        return self.session.request(method, self.url(path), **kwargs)

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise RetryableError(
                f"{self.label} answered with a body that is not JSON", status=response.status_code, code="bad_body"
            ) from None


def retry_after_seconds(headers: requests.structures.CaseInsensitiveDict) -> float | None:
    """Retry-After in seconds (RFC 9110 §10.2.3); HTTP-date values are converted."""
    value = headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


def int_header(headers: requests.structures.CaseInsensitiveDict, name: str | None) -> int | None:
    if not name:
        return None
    value = headers.get(name)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
