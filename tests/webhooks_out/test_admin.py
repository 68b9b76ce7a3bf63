"""The ops admin: subscriptions without their secrets, the delivery log with filters, and audited
replay, retry, turn off and turn on."""

from __future__ import annotations

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from crmsync.models import AuditEntry
from integrations.models import DeliveryState, WebhookDelivery, WebhookSubscription
from integrations.webhooks_out.emit import emit

URL = "http://127.0.0.1:9/hook"  # never called: nothing is sent in these tests


@pytest.fixture(autouse=True)
def private_targets_allowed(settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = True


@pytest.fixture
def ops(db) -> Client:
    user = get_user_model().objects.create_superuser("ops@example.com", "ops@example.com", "correct horse 123")
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def viewing_ops(db) -> Client:
    user = get_user_model().objects.create_user("look@example.com", "look@example.com", "x", is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_webhooksubscription", "view_webhookdelivery"])
    )
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def world(account, make_account, make_subscription):
    other = make_account("Other Co")
    mine, mine_secret = make_subscription(account, URL + "/acme", ["*"])
    theirs, theirs_secret = make_subscription(other, URL + "/other", ["*"])
    emit(account, "cta.clicked", {}, idempotency_key="a1")
    emit(account, "lead.hot", {}, idempotency_key="a2")
    emit(other, "cta.clicked", {}, idempotency_key="o1")
    WebhookDelivery.objects.filter(idempotency_key="a2").update(state=DeliveryState.FAILED, attempts=11)
    return {"mine": mine, "theirs": theirs, "secrets": [mine_secret, theirs_secret], "other": other}


def changelist(model: str) -> str:
    return reverse(f"admin:integrations_{model}_changelist")


def test_subscriptions_never_show_a_secret(ops, world):
    listing = ops.get(changelist("webhooksubscription")).content.decode()
    detail = ops.get(reverse("admin:integrations_webhooksubscription_change", args=[world["mine"].pk]))

    assert "127.0.0.1" in listing
    for secret in world["secrets"]:
        assert secret not in listing and secret not in detail.content.decode()
        assert secret.removeprefix("whsec_") not in detail.content.decode()
    assert "secret" not in detail.context["adminform"].form.fields


@pytest.mark.parametrize(
    ("query", "keys"),
    [
        ({}, {"a1", "a2", "o1"}),
        ({"state__exact": "failed"}, {"a2"}),
        ({"event_type": "cta.clicked"}, {"a1", "o1"}),
        ({"q": "a2"}, {"a2"}),
    ],
)
def test_deliveries_filter_by_state_event_and_account(ops, world, query, keys):
    response = ops.get(changelist("webhookdelivery"), query)

    assert response.status_code == 200
    assert {row.idempotency_key for row in response.context["cl"].result_list} == keys


def test_deliveries_filter_by_account(ops, world):
    response = ops.get(changelist("webhookdelivery"), {"account__id__exact": world["other"].pk})

    assert {row.idempotency_key for row in response.context["cl"].result_list} == {"o1"}


def post_action(client, model: str, action: str, ids: list[int]):
    return client.post(changelist(model), {"action": action, ACTION_CHECKBOX_NAME: [str(i) for i in ids]})


def test_retry_queues_failed_deliveries_now_and_leaves_the_others(ops, world):
    ids = list(WebhookDelivery.objects.values_list("id", flat=True))

    post_action(ops, "webhookdelivery", "retry_selected", ids)

    failed = WebhookDelivery.objects.get(idempotency_key="a2")
    assert (failed.state, failed.attempts) == (DeliveryState.PENDING, 0)
    assert list(AuditEntry.objects.filter(action="webhook.retried").values_list("object_id", flat=True)) == [
        str(failed.pk)
    ]


def test_replay_queues_any_delivery_of_an_active_subscription(ops, world):
    WebhookDelivery.objects.filter(idempotency_key="a1").update(state=DeliveryState.DELIVERED, attempts=1)
    WebhookSubscription.objects.filter(pk=world["theirs"].pk).update(active=False)
    ids = list(WebhookDelivery.objects.values_list("id", flat=True))

    post_action(ops, "webhookdelivery", "replay_selected", ids)

    states = dict(WebhookDelivery.objects.values_list("idempotency_key", "state"))
    assert states == {"a1": DeliveryState.PENDING, "a2": DeliveryState.PENDING, "o1": DeliveryState.PENDING}
    assert AuditEntry.objects.filter(action="webhook.replayed").count() == 2  # not the inactive one's


def test_turning_subscriptions_off_and_on_is_audited(ops, world):
    post_action(ops, "webhooksubscription", "disable_selected", [world["mine"].pk])
    world["mine"].refresh_from_db()
    assert not world["mine"].active and "ops" in world["mine"].disabled_reason

    post_action(ops, "webhooksubscription", "enable_selected", [world["mine"].pk])
    world["mine"].refresh_from_db()
    assert world["mine"].active
    assert {"webhook.disabled", "webhook.enabled"} <= set(AuditEntry.objects.values_list("action", flat=True))


def test_staff_who_may_only_look_cannot_act(viewing_ops, world):
    listing = viewing_ops.get(changelist("webhookdelivery"))
    failed = WebhookDelivery.objects.get(idempotency_key="a2")

    response = post_action(viewing_ops, "webhookdelivery", "retry_selected", [failed.pk])

    assert listing.status_code == 200
    assert "retry_selected" not in listing.content.decode()
    failed.refresh_from_db()
    assert failed.state == DeliveryState.FAILED
    assert response.status_code == 200  # the action is not theirs to run: the change list again
    assert not AuditEntry.objects.filter(action="webhook.retried").exists()
    assert viewing_ops.get(reverse("admin:integrations_webhooksubscription_add")).status_code == 403
