"""Webhook subscriptions registered at the CRM on connect and removed on disconnect (where the connector can)."""

from __future__ import annotations

import django_rq
import pytest
from django.db.models.signals import post_save, pre_save
from django.urls import reverse

from integrations.connecting import disconnect
from integrations.inbound import registration
from integrations.models import Connection, WebhookRegistration
from tests.inbound.conftest import use_connector
from tests.inbound.connectors import HubSpotWithRegistration

pytestmark = pytest.mark.django_db


@pytest.fixture
def installed():
    registration.install()
    yield
    post_save.disconnect(sender=Connection, dispatch_uid="inbound-register-webhooks")
    pre_save.disconnect(sender=Connection, dispatch_uid="inbound-unregister-webhooks")


@pytest.fixture
def registering(monkeypatch):
    use_connector(monkeypatch, "hubspot", "tests.inbound.connectors.HubSpotWithRegistration")
    monkeypatch.setattr(HubSpotWithRegistration, "calls", [])
    return HubSpotWithRegistration.calls


def test_registering_subscribes_the_connections_url_with_a_fresh_secret(hub, registering, settings):
    made = registration.register_webhooks_for(hub.connection)
    path = reverse("integrations:crm_webhook", kwargs={"provider": "hubspot", "connection_id": hub.connection.pk})
    hub.connection.refresh_from_db()
    assert registering == [("register", settings.PUBLIC_BASE_URL + path, hub.connection.webhook_secret)]
    assert len(hub.connection.webhook_secret) >= 32 and made.ref == "sub-1"


def test_registering_twice_subscribes_once(hub, registering):
    registration.register_webhooks_for(hub.connection)
    registration.register_webhooks_for(hub.connection)
    assert [call[0] for call in registering] == ["register"]


def test_the_registered_secret_is_what_the_connections_webhooks_are_verified_with(hub, registering):
    registration.register_webhooks_for(hub.connection)
    hub.connection.refresh_from_db()
    assert hub.post([], secret=hub.connection.webhook_secret).status_code == 200
    assert hub.post([], secret=hub.emulator.client.client_secret).status_code == 401


def test_unregistering_removes_the_subscription(hub, registering):
    registration.register_webhooks_for(hub.connection)
    assert registration.unregister_webhooks_for(hub.connection) is True
    assert registering[-1][:2] == ("unregister", "sub-1")
    assert not WebhookRegistration.objects.exists()


def test_a_connector_without_registration_is_left_alone(hub):
    assert registration.register_webhooks_for(hub.connection) is None
    assert not WebhookRegistration.objects.exists()


def test_disconnecting_unsubscribes_with_the_credentials_before_they_are_wiped(hub, registering, installed):
    registration.register_webhooks_for(hub.connection)
    token = Connection.objects.get(pk=hub.connection.pk).access_token
    disconnect(Connection.objects.get(pk=hub.connection.pk), actor_label="test")
    assert registering[-1] == ("unregister", "sub-1", token)


def test_connecting_registers_in_a_job_after_commit(hub, registering, installed, django_capture_on_commit_callbacks):
    connection = Connection.objects.get(pk=hub.connection.pk)
    queue = django_rq.get_queue("default")
    with django_capture_on_commit_callbacks(execute=True):
        connection.save()
        assert registering == []  # nothing is called inside the saving transaction
    jobs = [
        job
        for job in queue.jobs
        if job.func_name == "integrations.inbound.registration.register_job" and job.args == (connection.pk,)
    ]
    assert jobs
    for job in jobs:
        job.delete()
    registration.register_job(connection.pk)
    assert [call[0] for call in registering] == ["register"]
