"""GET /healthz: 200 when the database (and Redis, when configured) answer, 503 otherwise."""

from __future__ import annotations

import pytest


@pytest.mark.django_db
def test_healthy_with_database_and_redis(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "redis": "ok"}


@pytest.mark.django_db
def test_an_unreachable_redis_is_unhealthy(client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unhealthy" and body["redis"].startswith("error: ")
    assert body["database"] == "ok"


@pytest.mark.django_db
def test_without_redis_jobs_run_in_process_and_that_is_healthy(client, settings):
    settings.REDIS_URL = None
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["redis"] == "not configured (jobs run in-process)"
