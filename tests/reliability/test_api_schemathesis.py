"""Schemathesis against the ingestion and personalisation API's own OpenAPI document.

Every operation in /api/v1/openapi.json gets generated requests (valid and invalid) through the
Django WSGI application with a valid API key. No answer may be a 5xx, and a 4xx must leave
nothing half-written: the account's events, prospects and outbox rows are counted around each
call (invariant 7). Examples are bounded so the run stays well under a minute.
"""

from __future__ import annotations

import pytest
import schemathesis
from django.core import signals
from django.db import close_old_connections
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

from crmsync.models import Event, Prospect
from integrations.models import OutboxItem


def load_schema():
    from crmsync.wsgi import application

    return schemathesis.openapi.from_wsgi("/api/v1/openapi.json", application)


schema = load_schema()


@pytest.fixture(autouse=True)
def _keep_the_test_connection():
    # As Django's test client does: the request cycle must not close the test's connection
    # (its transaction holds the test data).
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


def counts(account) -> tuple[int, int, int]:
    return (
        Event.objects.filter(account=account).count(),
        Prospect.objects.filter(account=account).count(),
        OutboxItem.objects.filter(connection__account=account).count(),
    )


@pytest.mark.django_db
@schema.parametrize()
@hypothesis_settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_the_api_never_answers_5xx_and_a_4xx_writes_nothing(case, account, api_key):
    before = counts(account)
    response = case.call(headers={"Authorization": f"Bearer {api_key}"})
    assert response.status_code < 500, (case.method, case.path, response.status_code, response.text[:500])
    if 400 <= response.status_code < 500:
        assert counts(account) == before, (case.method, case.path, response.status_code, response.text[:300])
