"""A connector for inbound work: through the connection's shared rate limiter, refreshed once on 401.

Inbound reads (fetching a changed record, polling) share the CRM's budget with the outbound
engine, so they acquire from the same per-connection limiter (integrations.sync.ratelimit).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from integrations import credentials
from integrations.connector import Connector
from integrations.errors import AuthError
from integrations.models import Connection
from integrations.sync.ratelimit import limiter_for

T = TypeVar("T")


class InboundCrm:
    """Lazily builds the connector on first use, so work that needs no CRM call makes none."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.connector_class = connection.spec.connector_class()
        self._connector: Connector | None = None
        self._limiter = None
        self.api_calls = 0

    def _make(self) -> Connector:
        if self._limiter is None:
            self._limiter = limiter_for(self.connection.pk, self.connection.spec.rate_limit)
        limiter, connector_class = self._limiter, self.connector_class

        def before(method: str, url: str) -> None:
            limiter.acquire(connector_class.rate_bucket(method, url))

        def after(response, snapshot) -> None:
            self.api_calls += 1
            limiter.observe(snapshot)

        self.connection = credentials.fresh_connection(self.connection)
        return self.connection.connector(before_request=before, after_response=after)

    @property
    def connector(self) -> Connector:
        if self._connector is None:
            self._connector = self._make()
        return self._connector

    def call(self, fn: Callable[[Connector], T]) -> T:
        try:
            return fn(self.connector)
        except AuthError:
            self.connection = credentials.refresh_after_rejection(self.connection)
            self._connector = self._make()
            return fn(self._connector)
