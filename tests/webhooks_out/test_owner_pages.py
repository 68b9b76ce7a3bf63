"""The owner pages under /a/<account>/webhooks/: roles, CSRF, audit, the secret shown once, tenancy."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from crmsync.models import AuditEntry, Role
from integrations.models import DeliveryState, WebhookDelivery, WebhookSubscription
from integrations.webhooks_out.emit import emit
from tests.webhooks_out.conftest import remember

TARGET = "https://hooks.customer.test/catch/1/"


@pytest.fixture(autouse=True)
def public_dns(fake_dns):
    fake_dns({"hooks.customer.test": ["93.184.216.34"]})  # checked, never contacted


@pytest.fixture
def as_role(client, account, make_member):
    def log_in(role: str) -> Client:
        client.force_login(make_member(account, role))
        return client

    return log_in


@pytest.fixture
def subscription(account, make_subscription):
    subscription, _secret = make_subscription(account, TARGET, ["cta.clicked"])
    return subscription


def url(name: str, account, **kwargs) -> str:
    return reverse(f"integrations:{name}", kwargs={"account_slug": account.slug, **kwargs})


def secret_in(html: str) -> str:
    [secret] = re.findall(r"whsec_[A-Za-z0-9+/=]+", html)
    return remember(secret)


# --- reading ------------------------------------------------------------------------------------


def test_a_viewer_reads_the_list_and_the_log_without_any_way_to_change_them(as_role, account, subscription):
    emit(account, "cta.clicked", {"n": 1}, idempotency_key="k1")
    client = as_role(Role.VIEWER)

    listing = client.get(url("webhooks", account)).content.decode()
    detail = client.get(url("webhook_detail", account, subscription_id=subscription.pk)).content.decode()

    assert "hooks.customer.test" in listing and "cta.clicked" in listing
    assert "Add a webhook" not in listing
    assert "cta.clicked" in detail and "Pending" in detail
    assert 'method="post"' not in detail
    assert "Replay" not in detail and "Rotate" not in detail


def test_the_list_counts_each_webhooks_failed_messages(as_role, account, subscription):
    for n in range(3):
        emit(account, "cta.clicked", {}, idempotency_key=f"k{n}")
    WebhookDelivery.objects.filter(idempotency_key__in=["k0", "k1"]).update(state=DeliveryState.FAILED)

    page = as_role(Role.VIEWER).get(url("webhooks", account)).content.decode()

    assert "2 failed" in page
    assert url("webhook_detail", account, subscription_id=subscription.pk) + "?state=failed" in page


def test_an_admin_sees_the_actions(as_role, account, subscription):
    emit(account, "cta.clicked", {"n": 1}, idempotency_key="k1")
    client = as_role(Role.ADMIN)

    listing = client.get(url("webhooks", account)).content.decode()
    detail = client.get(url("webhook_detail", account, subscription_id=subscription.pk)).content.decode()

    assert url("webhook_create", account) in listing
    for name in ("webhook_rotate", "webhook_disable", "webhook_delete"):
        assert url(name, account, subscription_id=subscription.pk) in detail
    delivery = WebhookDelivery.objects.get()
    assert url("webhook_replay", account, subscription_id=subscription.pk, delivery_id=delivery.pk) in detail


ROLE_MATRIX = [
    ("webhooks", "get", Role.VIEWER, 200),
    ("webhook_detail", "get", Role.VIEWER, 200),
    ("webhook_create", "get", Role.VIEWER, 403),
    ("webhook_create", "post", Role.VIEWER, 403),
    ("webhook_create", "get", Role.ADMIN, 200),
    ("webhook_rotate", "get", Role.VIEWER, 403),
    ("webhook_rotate", "post", Role.VIEWER, 403),
    ("webhook_rotate", "get", Role.ADMIN, 200),
    ("webhook_disable", "post", Role.VIEWER, 403),
    ("webhook_enable", "post", Role.VIEWER, 403),
    ("webhook_delete", "get", Role.VIEWER, 403),
    ("webhook_delete", "post", Role.VIEWER, 403),
    ("webhook_delete", "get", Role.ADMIN, 200),
    ("webhook_replay", "post", Role.VIEWER, 403),
]


@pytest.mark.parametrize(("name", "method", "role", "expected"), ROLE_MATRIX)
def test_each_role_may_do_what_its_rank_allows(as_role, account, subscription, name, method, role, expected):
    emit(account, "cta.clicked", {}, idempotency_key="k1")
    kwargs = {} if name in ("webhooks", "webhook_create") else {"subscription_id": subscription.pk}
    if name == "webhook_replay":
        kwargs["delivery_id"] = WebhookDelivery.objects.get().pk
    data = {"target_url": TARGET, "events": ["lead.hot"]} if method == "post" else None

    response = getattr(as_role(role), method)(url(name, account, **kwargs), data)

    assert response.status_code == expected
    if expected == 403:
        subscription.refresh_from_db()
        assert WebhookSubscription.objects.count() == 1 and subscription.active
        assert not subscription.previous_secret
        assert WebhookDelivery.objects.get().state == DeliveryState.PENDING
        assert not AuditEntry.objects.exclude(action="webhook.subscribed").exists()


# --- creating ------------------------------------------------------------------------------------


def test_creating_shows_the_secret_once_and_audits(as_role, account):
    client = as_role(Role.ADMIN)

    response = client.post(
        url("webhook_create", account), {"target_url": TARGET, "events": ["cta.clicked", "lead.hot"]}
    )

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    secret = secret_in(response.content.decode())
    subscription = WebhookSubscription.objects.get()
    assert (subscription.secret, subscription.events, subscription.source) == (
        secret,
        ["cta.clicked", "lead.hot"],
        "manual",
    )
    assert subscription.created_by.username == subscription.created_by_label
    entry = AuditEntry.objects.get(action="webhook.subscribed")
    assert (entry.actor_id, entry.object_id) == (subscription.created_by_id, str(subscription.pk))
    for page in (url("webhooks", account), url("webhook_detail", account, subscription_id=subscription.pk)):
        assert secret not in client.get(page).content.decode()


def test_every_event_is_one_checkbox(as_role, account):
    as_role(Role.ADMIN).post(url("webhook_create", account), {"target_url": TARGET, "all_events": "on"})

    assert WebhookSubscription.objects.get().events == ["*"]


def test_the_form_groups_the_events(as_role, account):
    page = as_role(Role.ADMIN).get(url("webhook_create", account)).content.decode()

    for group in ("Capsule engagement", "Lead scoring", "CRM changes", "Sync health"):
        assert group in page
    assert 'value="crm.deal.stage_changed"' in page


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"target_url": "http://127.0.0.1:8000/hook", "events": ["lead.hot"]}, "loopback"),
        ({"target_url": "http://localhost/hook", "events": ["lead.hot"]}, "loopback"),
        ({"target_url": "http://169.254.169.254/", "events": ["lead.hot"]}, "metadata"),
        ({"target_url": "ftp://hooks.customer.test/", "events": ["lead.hot"]}, "http"),
        ({"target_url": TARGET}, "Choose at least one event"),
        ({"target_url": TARGET, "events": ["lead.cold"]}, "not one of the available choices"),
    ],
)
def test_a_refused_url_or_no_event_is_a_form_error_and_nothing_is_created(as_role, account, data, words):
    response = as_role(Role.ADMIN).post(url("webhook_create", account), data)

    assert response.status_code == 200
    assert words in response.content.decode()
    assert "whsec_" not in response.content.decode()
    assert not WebhookSubscription.objects.exists()


# --- changing ------------------------------------------------------------------------------------


def test_rotating_asks_first_then_shows_the_new_secret_and_keeps_the_old_one_for_24_hours(
    as_role, account, subscription
):
    client = as_role(Role.ADMIN)
    old = subscription.secret

    confirm = client.get(url("webhook_rotate", account, subscription_id=subscription.pk))
    response = client.post(url("webhook_rotate", account, subscription_id=subscription.pk))

    assert "24 hours" in confirm.content.decode() and 'method="post"' in confirm.content.decode()
    assert "no-store" in response["Cache-Control"]
    new = secret_in(response.content.decode())
    subscription.refresh_from_db()
    assert (subscription.secret, subscription.previous_secret) == (new, old)
    expected = timezone.now() + dt.timedelta(hours=24)
    assert expected - dt.timedelta(minutes=1) < subscription.previous_secret_expires_at <= expected
    assert subscription.signing_secrets() == [new, old]
    entry = AuditEntry.objects.get(action="webhook.secret_rotated")
    assert old not in str(entry.changes) and new not in str(entry.changes)


def test_turning_off_and_on_is_audited(as_role, account, subscription):
    client = as_role(Role.ADMIN)

    off = client.post(url("webhook_disable", account, subscription_id=subscription.pk))
    subscription.refresh_from_db()
    assert off.status_code == 302 and not subscription.active
    assert subscription.disabled_reason.startswith("Turned off by")
    assert emit(account, "cta.clicked", {}, idempotency_key="while-off") == 0

    on = client.post(url("webhook_enable", account, subscription_id=subscription.pk))
    subscription.refresh_from_db()
    assert on.status_code == 302 and subscription.active and subscription.disabled_reason == ""
    assert list(AuditEntry.objects.filter(object_id=str(subscription.pk)).values_list("action", flat=True)) == [
        "webhook.enabled",
        "webhook.disabled",
        "webhook.subscribed",
    ]


def test_turning_on_checks_the_url_again(as_role, account, subscription):
    WebhookSubscription.objects.filter(pk=subscription.pk).update(active=False, target_url="http://10.0.0.1/x")

    response = as_role(Role.ADMIN).post(url("webhook_enable", account, subscription_id=subscription.pk), follow=True)

    subscription.refresh_from_db()
    assert not subscription.active
    assert "Cannot turn it on" in response.content.decode()


def test_deleting_asks_first_then_deletes_with_its_log_and_audits(as_role, account, subscription):
    emit(account, "cta.clicked", {}, idempotency_key="k1")
    client = as_role(Role.ADMIN)

    confirm = client.get(url("webhook_delete", account, subscription_id=subscription.pk))
    assert WebhookSubscription.objects.exists()
    response = client.post(url("webhook_delete", account, subscription_id=subscription.pk))

    assert "cannot be undone" in confirm.content.decode()
    assert response.status_code == 302 and response["Location"] == url("webhooks", account)
    assert not WebhookSubscription.objects.exists() and not WebhookDelivery.objects.exists()
    assert AuditEntry.objects.get(action="webhook.deleted").changes["host"] == "hooks.customer.test"


def test_replay_queues_the_same_delivery_again_and_audits(as_role, account, subscription):
    emit(account, "cta.clicked", {}, idempotency_key="k1")
    delivery = WebhookDelivery.objects.get()
    WebhookDelivery.objects.filter(pk=delivery.pk).update(state=DeliveryState.FAILED, attempts=11, last_status=400)

    response = as_role(Role.ADMIN).post(
        url("webhook_replay", account, subscription_id=subscription.pk, delivery_id=delivery.pk)
    )

    delivery.refresh_from_db()
    assert response.status_code == 302
    assert (delivery.state, delivery.attempts) == (DeliveryState.PENDING, 0)
    assert WebhookDelivery.objects.count() == 1
    assert AuditEntry.objects.filter(action="webhook.replayed", object_id=str(delivery.pk)).exists()


def test_replay_of_a_turned_off_webhook_is_refused(as_role, account, subscription):
    emit(account, "cta.clicked", {}, idempotency_key="k1")
    delivery = WebhookDelivery.objects.get()
    WebhookDelivery.objects.filter(pk=delivery.pk).update(state=DeliveryState.FAILED)
    WebhookSubscription.objects.filter(pk=subscription.pk).update(active=False)

    response = as_role(Role.ADMIN).post(
        url("webhook_replay", account, subscription_id=subscription.pk, delivery_id=delivery.pk), follow=True
    )

    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.FAILED
    assert "turn it on before replaying" in response.content.decode()


# --- the log ----------------------------------------------------------------------------------


def test_the_log_pages_newest_first_and_filters_by_status(as_role, account, subscription):
    for n in range(55):
        emit(account, "cta.clicked", {"n": n}, idempotency_key=f"k{n}")
    ids = list(WebhookDelivery.objects.order_by("-id").values_list("id", flat=True))
    WebhookDelivery.objects.filter(pk=ids[-1]).update(state=DeliveryState.FAILED, last_status=404)
    client = as_role(Role.VIEWER)
    page_url = url("webhook_detail", account, subscription_id=subscription.pk)

    first = client.get(page_url)
    second = client.get(page_url, {"before": first.context["older"]})
    failed = client.get(page_url, {"state": "failed"})

    assert [d.pk for d in first.context["deliveries"]] == ids[:50]
    assert [d.pk for d in second.context["deliveries"]] == ids[50:]
    assert second.context["older"] is None
    assert [d.pk for d in failed.context["deliveries"]] == [ids[-1]]
    assert "404" in failed.content.decode()


# --- CSRF and tenancy ------------------------------------------------------------------------------


POST_PAGES = ["webhook_create", "webhook_rotate", "webhook_disable", "webhook_enable", "webhook_delete"]


@pytest.mark.parametrize("name", [*POST_PAGES, "webhook_replay"])
def test_every_form_needs_its_csrf_token(account, make_member, subscription, name):
    emit(account, "cta.clicked", {}, idempotency_key="k1")
    client = Client(enforce_csrf_checks=True)
    client.force_login(make_member(account, Role.OWNER))
    kwargs = {} if name == "webhook_create" else {"subscription_id": subscription.pk}
    if name == "webhook_replay":
        kwargs["delivery_id"] = WebhookDelivery.objects.get().pk

    response = client.post(url(name, account, **kwargs), {"target_url": TARGET, "events": ["lead.hot"]})

    assert response.status_code == 403
    subscription.refresh_from_db()
    assert WebhookSubscription.objects.count() == 1 and subscription.active and not subscription.previous_secret
    assert not AuditEntry.objects.exclude(action="webhook.subscribed").exists()


@pytest.mark.parametrize(
    ("name", "method"),
    [
        ("webhook_detail", "get"),
        ("webhook_rotate", "get"),
        ("webhook_rotate", "post"),
        ("webhook_disable", "post"),
        ("webhook_enable", "post"),
        ("webhook_delete", "get"),
        ("webhook_delete", "post"),
        ("webhook_replay", "post"),
    ],
)
def test_another_accounts_webhook_is_not_found_from_my_account(
    as_role, account, make_account, make_subscription, name, method
):
    other = make_account("Other Co")
    theirs, _secret = make_subscription(other, TARGET, ["*"])
    emit(other, "cta.clicked", {}, idempotency_key="theirs")
    kwargs = {"subscription_id": theirs.pk}
    if name == "webhook_replay":
        kwargs["delivery_id"] = WebhookDelivery.objects.get().pk

    response = getattr(as_role(Role.OWNER), method)(url(name, account, **kwargs))

    assert response.status_code == 404
    theirs.refresh_from_db()
    assert theirs.active and not theirs.previous_secret
    assert WebhookDelivery.objects.get().state == DeliveryState.PENDING


def test_a_delivery_of_another_subscription_is_not_found_under_mine(as_role, account, make_subscription, subscription):
    mine_too, _secret = make_subscription(account, TARGET + "2", ["*"])
    emit(account, "lead.hot", {}, idempotency_key="k1")
    other_delivery = WebhookDelivery.objects.get(subscription=mine_too)

    response = as_role(Role.OWNER).post(
        url("webhook_replay", account, subscription_id=subscription.pk, delivery_id=other_delivery.pk)
    )

    assert response.status_code == 404


def test_an_outsider_gets_404_and_an_anonymous_visitor_is_sent_to_sign_in(
    client, account, make_account, make_member, subscription
):
    pages = [url("webhooks", account), url("webhook_detail", account, subscription_id=subscription.pk)]

    anonymous = [client.get(page) for page in pages]
    client.force_login(make_member(make_account("Other Co"), Role.OWNER))
    outsider = [client.get(page) for page in pages]

    assert all(r.status_code == 302 and r["Location"].startswith("/accounts/login/") for r in anonymous)
    assert all(r.status_code == 404 for r in outsider)
