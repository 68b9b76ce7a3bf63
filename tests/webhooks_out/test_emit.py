"""emit(): one delivery per listening subscription, written in the caller's transaction, never twice."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.db import transaction

from integrations.models import DeliveryState, WebhookDelivery
from integrations.webhooks_out.emit import Message, emit, emit_many

URL = "http://127.0.0.1:9/hook"  # never called: these tests stop before sending


@pytest.fixture(autouse=True)
def private_targets_allowed(settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = True


def test_each_active_subscription_that_listens_gets_one_delivery(account, make_account, make_subscription):
    exact, _ = make_subscription(account, URL + "/exact", ["cta.clicked"])
    everything, _ = make_subscription(account, URL + "/all", ["*"])
    make_subscription(account, URL + "/other-event", ["lead.hot"])
    make_subscription(account, URL + "/off", ["cta.clicked"], active=False)
    make_subscription(make_account("Other Co"), URL + "/other-account", ["*"])

    created = emit(account, "cta.clicked", {"cta_id": "demo"}, idempotency_key="event:1")

    assert created == 2
    assert set(WebhookDelivery.objects.values_list("subscription_id", flat=True)) == {exact.pk, everything.pk}
    assert set(WebhookDelivery.objects.values_list("state", "attempts", "account_id").distinct()) == {
        (DeliveryState.PENDING, 0, account.pk)
    }


def test_emitting_the_same_key_twice_writes_one_delivery(account, make_subscription):
    make_subscription(account, URL, ["cta.clicked"])

    first = emit(account, "cta.clicked", {"cta_id": "demo"}, idempotency_key="event:7")
    second = emit(account, "cta.clicked", {"cta_id": "changed"}, idempotency_key="event:7")

    assert (first, second) == (1, 0)
    assert WebhookDelivery.objects.get().payload["data"] == {"cta_id": "demo"}


def test_a_key_repeated_within_one_call_is_one_delivery(account, make_subscription):
    make_subscription(account, URL, ["*"])

    created = emit_many(
        account, [Message("lead.hot", {"n": 1}, "k"), Message("lead.hot", {"n": 2}, "k"), Message("lead.hot", {}, "j")]
    )

    assert created == 2
    assert WebhookDelivery.objects.count() == 2


def test_the_body_is_the_standard_webhooks_envelope_with_json_ready_data(account, make_subscription):
    make_subscription(account, URL, ["conversion.created"])
    when = dt.datetime(2025, 1, 31, 14, 5, tzinfo=dt.UTC)

    emit(
        account, "conversion.created", {"value": Decimal("48.50"), "at": when}, idempotency_key="c:1", occurred_at=when
    )

    assert WebhookDelivery.objects.get().payload == {
        "type": "conversion.created",
        "timestamp": "2025-01-31T14:05:00Z",
        "data": {"value": "48.50", "at": "2025-01-31T14:05:00Z"},
    }


def test_nobody_listening_writes_nothing(account):
    assert emit(account, "lead.hot", {}, idempotency_key="x") == 0
    assert not WebhookDelivery.objects.exists()


def test_an_unknown_event_or_a_bad_key_is_a_programming_error(account, make_subscription):
    make_subscription(account, URL, ["*"])

    with pytest.raises(ValueError, match="unknown webhook event"):
        emit(account, "lead.cold", {}, idempotency_key="x")
    with pytest.raises(ValueError, match="idempotency_key"):
        emit(account, "lead.hot", {}, idempotency_key="")
    with pytest.raises(ValueError, match="idempotency_key"):
        emit(account, "lead.hot", {}, idempotency_key="k" * 201)
    assert not WebhookDelivery.objects.exists()


def test_deliveries_roll_back_with_the_callers_transaction(account, make_subscription):
    make_subscription(account, URL, ["*"])

    with pytest.raises(RuntimeError), transaction.atomic():
        emit(account, "lead.hot", {}, idempotency_key="x")
        raise RuntimeError("the caller's own work failed")

    assert not WebhookDelivery.objects.exists()


def test_sending_is_dispatched_only_after_commit(account, make_subscription, django_capture_on_commit_callbacks):
    make_subscription(account, URL, ["*"])

    with django_capture_on_commit_callbacks() as callbacks:
        emit(account, "lead.hot", {}, idempotency_key="x")
        assert WebhookDelivery.objects.get().attempts == 0

    assert len(callbacks) == 1
