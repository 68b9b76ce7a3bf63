"""The webhook receiver: who gets in (signature, replay window), what is stored (once), what it answers."""

from __future__ import annotations

import json
import threading
import time

import pytest
import requests
from django.urls import reverse

from integrations.models import Connection, ConnectionStatus, InboundEvent, InboundState
from integrations.sandbox.hubspot import sign_v3
from tests.inbound.conftest import load_fixture

pytestmark = pytest.mark.django_db


def _event(event_id: int, object_id: int = 101, value: str = "VP Engineering", portal: int = 62515) -> dict:
    return {
        "eventId": event_id,
        "subscriptionId": 4100001,
        "portalId": portal,
        "appId": 1234567,
        "occurredAt": int(time.time() * 1000),
        "subscriptionType": "contact.propertyChange",
        "attemptNumber": 0,
        "objectId": object_id,
        "changeSource": "CRM_UI",
        "propertyName": "jobtitle",
        "propertyValue": value,
    }


def test_a_bad_signature_is_refused_with_401_and_nothing_is_stored(hub):
    response = hub.post(load_fixture("hubspot", "contact.propertyChange"), secret="not-the-client-secret")
    assert response.status_code == 401
    assert not InboundEvent.objects.exists()


def test_a_missing_signature_is_refused_with_401(hub):
    response = hub.post(load_fixture("hubspot", "contact.propertyChange"), drop=("X-HubSpot-Signature-v3",))
    assert response.status_code == 401


def test_a_missing_timestamp_is_refused_with_401(hub):
    response = hub.post(load_fixture("hubspot", "contact.propertyChange"), drop=("X-HubSpot-Request-Timestamp",))
    assert response.status_code == 401


def test_a_replay_outside_the_five_minute_window_is_refused_with_401(hub):
    six_minutes_ago = int(time.time() * 1000) - 6 * 60 * 1000
    response = hub.post(load_fixture("hubspot", "contact.propertyChange"), timestamp_ms=six_minutes_ago)
    assert response.status_code == 401


def test_a_delivery_signed_four_minutes_ago_is_still_accepted(hub):
    four_minutes_ago = int(time.time() * 1000) - 4 * 60 * 1000
    response = hub.post(load_fixture("hubspot", "contact.propertyChange"), timestamp_ms=four_minutes_ago)
    assert response.status_code == 200


def test_the_same_event_twice_is_stored_once_and_the_second_answer_reports_a_duplicate(hub):
    events = load_fixture("hubspot", "contact.propertyChange")
    assert hub.post(events).json() == {"received": 1, "duplicates": 0}
    assert hub.post(events).json() == {"received": 0, "duplicates": 1}
    assert InboundEvent.objects.filter(connection=hub.connection).count() == 1


def test_an_event_listed_twice_in_one_delivery_is_stored_once(hub):
    assert hub.post([_event(7), _event(7), _event(8)]).json() == {"received": 2, "duplicates": 1}


def test_a_delivery_is_acknowledged_before_it_is_processed(hub):
    hub.post(load_fixture("hubspot", "contact.propertyChange"))
    assert list(InboundEvent.objects.values_list("state", flat=True)) == [InboundState.PENDING]
    hub.process()
    assert list(InboundEvent.objects.values_list("state", flat=True)) == [InboundState.PROCESSED]


def test_an_unknown_connection_is_404_without_detail(hub):
    path = reverse("integrations:crm_webhook", kwargs={"provider": "hubspot", "connection_id": hub.connection.pk + 99})
    response = hub.post(load_fixture("hubspot", "contact.propertyChange"), path=path)
    assert (response.status_code, response.content) == (404, b"")


def test_a_connection_named_under_another_provider_is_404(hub):
    path = reverse("integrations:crm_webhook", kwargs={"provider": "salesforce", "connection_id": hub.connection.pk})
    assert hub.post(load_fixture("hubspot", "contact.propertyChange"), path=path).status_code == 404


def test_a_disconnected_connection_is_404(hub):
    Connection.objects.filter(pk=hub.connection.pk).update(status=ConnectionStatus.DISCONNECTED)
    assert hub.post(load_fixture("hubspot", "contact.propertyChange")).status_code == 404


def test_a_body_over_the_limit_is_413(hub, settings):
    settings.INBOUND_WEBHOOK_MAX_BYTES = 100
    assert hub.post([_event(n) for n in range(10)]).status_code == 413


def test_a_signed_body_that_is_not_json_is_400(hub, settings):
    body, stamp = b"this is not json", int(time.time() * 1000)
    signature = sign_v3(hub.emulator.client.client_secret, "POST", settings.PUBLIC_BASE_URL + hub.path, body, stamp)
    response = hub.client.post(
        hub.path,
        data=body,
        content_type="application/json",
        headers={"X-HubSpot-Signature-v3": signature, "X-HubSpot-Request-Timestamp": str(stamp)},
    )
    assert response.status_code == 400


def test_a_get_is_405(hub):
    assert hub.client.get(hub.path).status_code == 405


def test_the_receiver_needs_no_csrf_token(hub):
    hub.client.handler.enforce_csrf_checks = True
    assert hub.post(load_fixture("hubspot", "contact.propertyChange")).status_code == 200


def test_a_connection_without_any_secret_refuses_everything(hub, settings):
    settings.CRM_ENDPOINTS = {
        **settings.CRM_ENDPOINTS,
        "hubspot": {**settings.CRM_ENDPOINTS["hubspot"], "client_secret": None},
    }
    assert hub.post(load_fixture("hubspot", "contact.propertyChange")).status_code == 401


# -- app-wide deliveries (connectors with split_webhook) -------------------------------------------------


def test_an_app_wide_delivery_goes_to_the_connection_of_each_portal(hub, hubspot_profile):
    path = reverse("integrations:crm_webhook_app", kwargs={"provider": "hubspot"})
    answer = hub.post([_event(1), _event(2, portal=99999)], path=path).json()
    assert answer == {"received": 1, "duplicates": 0}
    assert list(InboundEvent.objects.values_list("connection_id", "event_id")) == [(hub.connection.pk, "1")]


def test_a_connection_url_keeps_only_its_own_portals_events_when_the_connector_can_tell(hub, hubspot_profile):
    assert hub.post([_event(1, portal=99999)]).json() == {"ignored": True}


def test_the_app_wide_url_is_404_for_connectors_without_split_webhook(hub, monkeypatch):
    from tests.inbound.conftest import use_connector

    use_connector(monkeypatch, "hubspot", "tests.inbound.connectors.HubSpotPlain")
    path = reverse("integrations:crm_webhook_app", kwargs={"provider": "hubspot"})
    assert hub.post([_event(1)], path=path).status_code == 404


# -- a burst -------------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_burst_of_500_deliveries_from_4_threads_is_all_acknowledged_and_stored_once(hub, live_server, settings):
    settings.PUBLIC_BASE_URL = live_server.url
    statuses: list[int] = []
    lock = threading.Lock()

    def send(thread: int) -> None:
        session = requests.Session()
        session.trust_env = False
        for n in range(125):
            event_id = thread * 1000 + n
            body = json.dumps([_event(event_id, value=f"title {event_id}")]).encode()
            stamp = int(time.time() * 1000)
            headers = {
                "Content-Type": "application/json",
                "X-HubSpot-Request-Timestamp": str(stamp),
                "X-HubSpot-Signature-v3": sign_v3(
                    hub.emulator.client.client_secret, "POST", live_server.url + hub.path, body, stamp
                ),
            }
            status = session.post(live_server.url + hub.path, data=body, headers=headers, timeout=30).status_code
            with lock:
                statuses.append(status)

    threads = [threading.Thread(target=send, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses.count(200) == 500
    stored = list(InboundEvent.objects.filter(connection=hub.connection).values_list("event_id", flat=True))
    assert len(stored) == len(set(stored)) == 500
