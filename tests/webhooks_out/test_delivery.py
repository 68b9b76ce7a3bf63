"""Delivering to a loopback receiver: headers and signatures, retries, 410, redirects, replay, leases.

Every test here sends real HTTP to the 127.0.0.1 receiver, so it allows private targets
(``deliver_to_loopback``), which also runs jobs inline and shortens the timeout to 0.5 s.
"""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from django.conf import settings as django_settings
from django.core import mail
from django.utils import timezone
from standardwebhooks import Webhook

from crmsync.models import AuditEntry
from integrations.models import DeliveryState, WebhookDelivery, WebhookSubscription
from integrations.webhooks_out import claim, delivery, jobs, subscriptions
from integrations.webhooks_out.emit import emit

pytestmark = pytest.mark.usefixtures("deliver_to_loopback")


def emit_one(account, key: str = "event:1", event: str = "cta.clicked") -> WebhookDelivery:
    emit(account, event, {"cta_id": "book-demo"}, idempotency_key=key)
    return WebhookDelivery.objects.get(idempotency_key=key)


def send(row: WebhookDelivery) -> WebhookDelivery:
    """Make the delivery due now (as if its time had come) and run the job the scheduler runs."""
    WebhookDelivery.objects.filter(pk=row.pk).update(next_attempt_at=timezone.now())
    jobs.deliver_due()
    row.refresh_from_db()
    return row


def test_a_delivered_message_is_signed_json_with_the_standard_headers(account, receiver, make_subscription):
    _subscription, secret = make_subscription(account, receiver.url + "/hooks/in?src=test", ["cta.clicked"])
    row = send(emit_one(account))

    assert row.state == DeliveryState.DELIVERED
    assert (row.attempts, row.last_status, row.response_excerpt) == (1, 200, "ok")
    assert row.delivered_at is not None
    [request] = receiver.requests
    assert request.path == "/hooks/in?src=test"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == "CapsuleCRMSync-Webhooks/1"
    assert request.headers["host"] == f"127.0.0.1:{receiver.port}"
    assert request.headers["webhook-id"] == f"msg_{row.message_id.hex}"
    assert Webhook(secret).verify(request.body, request.headers) == row.payload
    assert request.json()["type"] == "cta.clicked"


def test_emit_dispatches_a_job_with_the_delivery_ids_after_commit(
    account, receiver, make_subscription, django_capture_on_commit_callbacks, enqueued
):
    _subscription, secret = make_subscription(account, receiver.url, ["lead.hot"])

    with django_capture_on_commit_callbacks(execute=True):
        emit(account, "lead.hot", {"grade": "hot"}, idempotency_key="hot:1")
        assert enqueued() == []

    [job] = enqueued()
    row = WebhookDelivery.objects.get()
    assert (job.func_name, job.args) == ("integrations.webhooks_out.jobs.deliver", ([row.pk],))
    job.perform()
    row.refresh_from_db()
    assert row.state == DeliveryState.DELIVERED
    assert Webhook(secret).verify(receiver.requests[0].body, receiver.requests[0].headers)["data"] == {"grade": "hot"}


def test_during_a_rotation_both_the_old_and_the_new_secret_verify(account, receiver, make_subscription, rf):
    subscription, old = make_subscription(account, receiver.url)
    request = rf.post("/")
    request.user = type("Anonymous", (), {"is_authenticated": False})()
    new = subscriptions.rotate_secret(subscription, request=request)
    send(emit_one(account))

    [received] = receiver.requests
    assert len(received.headers["webhook-signature"].split(" ")) == 2
    assert Webhook(old).verify(received.body, received.headers)
    assert Webhook(new).verify(received.body, received.headers)


def test_once_the_overlap_ends_only_the_new_secret_signs(account, receiver, make_subscription):
    subscription, old = make_subscription(account, receiver.url)
    new = "whsec_" + "A" * 43 + "="
    WebhookSubscription.objects.filter(pk=subscription.pk).update(
        secret=new, previous_secret=old, previous_secret_expires_at=timezone.now() - dt.timedelta(seconds=1)
    )
    send(emit_one(account))

    [received] = receiver.requests
    assert " " not in received.headers["webhook-signature"]
    assert Webhook(new).verify(received.body, received.headers)
    with pytest.raises(Exception, match="No matching signature"):
        Webhook(old).verify(received.body, received.headers)


def test_429_is_retried_no_sooner_than_retry_after_then_delivered(account, receiver, make_subscription):
    make_subscription(account, receiver.url)
    receiver.script((429, {"Retry-After": "120"}, b"slow down"))
    before = timezone.now()

    row = send(emit_one(account))

    assert row.state == DeliveryState.RETRY
    assert (row.attempts, row.last_status, row.response_excerpt) == (1, 429, "slow down")
    assert row.next_attempt_at >= before + dt.timedelta(seconds=120)
    jobs.deliver_due()  # not due yet: nothing is sent
    assert len(receiver.requests) == 1

    row = send(row)

    assert row.state == DeliveryState.DELIVERED
    assert row.attempts == 2
    assert len({r.headers["webhook-id"] for r in receiver.requests}) == 1


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        ((500, {}, b"boom"), "answered 500"),
        ((503, {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}), "answered 503"),
        ((408,), "answered 408"),
        (("drop",), "dropped before an answer"),
        (("hang",), "did not answer within 0.5 s"),
    ],
    ids=["500", "503-with-a-past-date", "408", "dropped-connection", "timeout"],
)
def test_server_errors_timeouts_and_dropped_connections_are_retried_then_delivered(
    account, receiver, make_subscription, answer, error
):
    make_subscription(account, receiver.url)
    receiver.script(answer)
    before = timezone.now()

    row = send(emit_one(account))

    assert row.state == DeliveryState.RETRY
    assert error in row.last_error
    # The first retry is about 5 s later (±10 % jitter).
    assert before + dt.timedelta(seconds=4.5) <= row.next_attempt_at <= timezone.now() + dt.timedelta(seconds=5.5)
    receiver.release.set()

    row = send(row)

    assert (row.state, row.attempts, row.last_status, row.last_error) == (DeliveryState.DELIVERED, 2, 200, "")


def test_a_refused_connection_is_retried(account, make_subscription):
    closed_port = _closed_port()
    make_subscription(account, f"http://127.0.0.1:{closed_port}/hook")

    row = send(emit_one(account))

    assert row.state == DeliveryState.RETRY
    assert "could not connect" in row.last_error


def test_the_schedule_retries_for_about_three_days_then_fails(account, receiver, make_subscription):
    make_subscription(account, receiver.url)
    receiver.script(*[500] * delivery.MAX_ATTEMPTS)
    row = emit_one(account)
    waited = dt.timedelta(0)

    for attempt in range(1, delivery.MAX_ATTEMPTS):
        row = send(row)
        assert (row.state, row.attempts) == (DeliveryState.RETRY, attempt)
        waited += row.next_attempt_at - row.last_attempt_at
    row = send(row)

    assert row.state == DeliveryState.FAILED
    assert row.attempts == delivery.MAX_ATTEMPTS == 11
    assert "gave up after 11 attempts" in row.last_error
    assert dt.timedelta(days=2.6) < waited < dt.timedelta(days=3.3)
    assert len(receiver.requests) == 11


def test_the_retry_delays_grow_and_keep_within_their_jitter():
    for attempts, nominal in enumerate(delivery.RETRY_SCHEDULE, start=1):
        delay = delivery.next_attempt_after(attempts, None)
        assert nominal * 0.9 <= delay <= nominal * 1.1
    assert delivery.next_attempt_after(delivery.MAX_ATTEMPTS, None) is None
    assert delivery.next_attempt_after(1, dt.timedelta(hours=1)) == dt.timedelta(hours=1)
    assert delivery.next_attempt_after(1, dt.timedelta(days=9)) == delivery.MAX_RETRY_AFTER


def test_410_disables_the_subscription_records_why_and_tells_the_owner(
    account, owner, receiver, make_subscription, django_capture_on_commit_callbacks, enqueued
):
    subscription, _secret = make_subscription(account, receiver.url)
    receiver.script((410, {}, b"zap turned off"))

    with django_capture_on_commit_callbacks(execute=True):
        row = send(emit_one(account))
    [notice] = [job for job in enqueued() if job.func_name.endswith("notify.subscription_disabled")]
    notice.perform()

    subscription.refresh_from_db()
    assert row.state == DeliveryState.FAILED
    assert (row.last_status, row.response_excerpt) == (410, "zap turned off")
    assert not subscription.active
    assert "410 Gone" in subscription.disabled_reason
    entry = AuditEntry.objects.get(action="webhook.disabled")
    assert (entry.actor_label, entry.object_id, entry.account_id) == ("system", str(subscription.pk), account.pk)
    [message] = mail.outbox
    assert message.to == [owner.email]
    assert "127.0.0.1" in message.subject and "410 Gone" in message.body
    # Nothing more is written or sent for it.
    assert emit(account, "cta.clicked", {}, idempotency_key="event:2") == 0


@pytest.mark.parametrize("status", [400, 401, 404, 422])
def test_other_4xx_answers_fail_at_once(account, receiver, make_subscription, status):
    subscription, _secret = make_subscription(account, receiver.url)
    receiver.script((status, {}, b'{"error": "no"}'))

    row = send(emit_one(account))

    assert (row.state, row.attempts, row.last_status) == (DeliveryState.FAILED, 1, status)
    assert row.response_excerpt == '{"error": "no"}'
    subscription.refresh_from_db()
    assert subscription.active


def test_the_response_excerpt_keeps_500_characters_of_the_body_and_no_headers(account, receiver, make_subscription):
    make_subscription(account, receiver.url)
    receiver.script((200, {"X-Session": "header-value-not-kept"}, "é" * 3000))

    row = send(emit_one(account))

    assert row.response_excerpt == "é" * 500
    assert "header-value-not-kept" not in row.response_excerpt + row.last_error


def test_up_to_three_redirects_are_followed_with_the_same_signed_message(account, receiver, make_subscription):
    _subscription, secret = make_subscription(account, receiver.url + "/a")
    receiver.script(
        (301, {"Location": "/b"}),
        (302, {"Location": receiver.url + "/c"}),
        (307, {"Location": "d"}),
        (200, {}, b"made it"),
    )

    row = send(emit_one(account))

    assert (row.state, row.response_excerpt) == (DeliveryState.DELIVERED, "made it")
    assert [r.path for r in receiver.requests] == ["/a", "/b", "/c", "/d"]
    for received in receiver.requests:
        assert Webhook(secret).verify(received.body, received.headers)


def test_a_fourth_redirect_fails_the_delivery(account, receiver, make_subscription):
    make_subscription(account, receiver.url + "/a")
    receiver.script(*[(302, {"Location": "/again"})] * 4)

    row = send(emit_one(account))

    assert row.state == DeliveryState.FAILED
    assert row.last_error == "more than 3 redirects"
    assert len(receiver.requests) == 4


@pytest.mark.parametrize(
    "location",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/",
        "http://metadata.google.internal/",
    ],
)
def test_a_redirect_to_a_metadata_address_is_refused_without_following(account, receiver, make_subscription, location):
    make_subscription(account, receiver.url)
    receiver.script((302, {"Location": location}))

    row = send(emit_one(account))

    assert row.state == DeliveryState.FAILED
    assert row.last_error.startswith("a redirect was refused:")
    assert "metadata" in row.last_error
    assert len(receiver.requests) == 1


@pytest.mark.parametrize(
    "location",
    ["http://127.0.0.1:{port}/internal", "http://localhost:{port}/internal", "http://internal.customer.test/admin"],
)
def test_a_public_looking_receiver_cannot_redirect_to_loopback_with_the_setting_off(
    account, receiver, make_subscription, fake_dns, location
):
    """The first hop is a made-up public-looking name for the loopback receiver, allowed only because
    the setting is on when it is checked; the receiver turns the setting off before it answers with
    its redirect, so the redirect is checked exactly as production checks it."""
    fake_dns({"hooks.public-receiver.test": ["127.0.0.1"], "internal.customer.test": ["127.0.0.1"]})
    make_subscription(account, f"http://hooks.public-receiver.test:{receiver.port}/in")

    def setting_off() -> None:
        django_settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = False

    receiver.script((setting_off, 302, {"Location": location.format(port=receiver.port)}))

    row = send(emit_one(account))

    assert row.state == DeliveryState.FAILED
    assert row.last_error.startswith("a redirect was refused:")
    assert "loopback address" in row.last_error
    assert [r.path for r in receiver.requests] == ["/in"]
    assert receiver.requests[0].headers["host"] == f"hooks.public-receiver.test:{receiver.port}"


def test_the_connection_goes_to_the_checked_address_without_a_second_lookup(
    account, receiver, make_subscription, fake_dns
):
    """DNS rebinding: the name answers 127.0.0.1 when checked, then 127.0.0.2, where nothing listens.
    Delivered means the request went to the address that was checked."""
    fake_dns({"rebinding.customer.test": [["127.0.0.1"], ["127.0.0.2"]]})
    subscription, _secret = make_subscription(account, "http://127.0.0.1:9/placeholder")
    WebhookSubscription.objects.filter(pk=subscription.pk).update(
        target_url=f"http://rebinding.customer.test:{receiver.port}/in"
    )

    row = send(emit_one(account))

    assert row.state == DeliveryState.DELIVERED
    assert fake_dns.lookups == ["rebinding.customer.test"]
    assert receiver.requests[0].headers["host"] == f"rebinding.customer.test:{receiver.port}"


def test_https_goes_to_the_checked_address_with_the_host_name_as_sni_host_and_certificate_name(
    account, tls_receiver, make_subscription, fake_dns
):
    receiver = tls_receiver("hooks.secure-receiver.test")
    fake_dns({"hooks.secure-receiver.test": ["127.0.0.1"]})
    _subscription, secret = make_subscription(account, f"https://hooks.secure-receiver.test:{receiver.port}/in")

    row = send(emit_one(account))

    assert row.state == DeliveryState.DELIVERED
    assert receiver.sni == ["hooks.secure-receiver.test"]
    [received] = receiver.requests
    assert received.headers["host"] == f"hooks.secure-receiver.test:{receiver.port}"
    assert Webhook(secret).verify(received.body, received.headers)


def test_https_to_a_certificate_for_another_name_is_refused_and_retried(
    account, tls_receiver, make_subscription, fake_dns
):
    receiver = tls_receiver("someone-else.test")
    fake_dns({"hooks.secure-receiver.test": ["127.0.0.1"]})
    make_subscription(account, f"https://hooks.secure-receiver.test:{receiver.port}/in")

    row = send(emit_one(account))

    assert row.state == DeliveryState.RETRY
    assert "TLS handshake" in row.last_error
    assert receiver.requests == []


def test_a_stored_target_that_is_now_refused_is_not_called(account, receiver, make_subscription, settings):
    make_subscription(account, receiver.url)
    row = emit_one(account)
    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = False

    row = send(row)

    assert row.state == DeliveryState.FAILED
    assert row.last_error.startswith("the URL was refused: 127.0.0.1 is a loopback address")
    assert receiver.requests == []


def test_a_delivery_of_a_disabled_subscription_is_not_sent(account, receiver, make_subscription):
    subscription, _secret = make_subscription(account, receiver.url)
    row = emit_one(account)
    WebhookSubscription.objects.filter(pk=subscription.pk).update(active=False)

    row = send(row)

    assert row.state == DeliveryState.FAILED
    assert "disabled" in row.last_error
    assert receiver.requests == []


def test_replay_sends_the_same_message_with_the_same_webhook_id(account, receiver, make_subscription):
    _subscription, secret = make_subscription(account, receiver.url)
    row = send(emit_one(account))

    count = delivery.resend([row], action="webhook.replayed")
    jobs.deliver_due()  # what the job dispatched after commit would do

    row.refresh_from_db()
    assert count == 1
    assert (row.state, row.attempts) == (DeliveryState.DELIVERED, 1)
    first, second = receiver.requests
    assert first.body == second.body
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == row.webhook_id
    assert Webhook(secret).verify(second.body, second.headers)
    assert AuditEntry.objects.filter(action="webhook.replayed", object_id=str(row.pk)).count() == 1


def test_a_claimed_delivery_is_not_claimed_again_or_replayed(account, make_subscription):
    make_subscription(account, "http://127.0.0.1:9/never-called")
    row = emit_one(account)

    token, claimed = claim.claim(10)
    _other_token, again = claim.claim(10)

    assert [r.pk for r in claimed] == [row.pk] and again == []
    assert delivery.resend(claimed, action="webhook.replayed") == 0
    row.refresh_from_db()
    assert (row.state, row.claimed_by) == (DeliveryState.IN_FLIGHT, token)


def test_a_dead_workers_delivery_is_sent_again_once_its_lease_runs_out(account, receiver, make_subscription):
    make_subscription(account, receiver.url)
    row = emit_one(account)
    stale_token, _rows = claim.claim(10)
    WebhookDelivery.objects.filter(pk=row.pk).update(lease_until=timezone.now() - dt.timedelta(seconds=1))

    jobs.deliver_due()

    row.refresh_from_db()
    assert (row.state, row.attempts) == (DeliveryState.DELIVERED, 2)
    # The dead worker's late result is ignored: the row is no longer its own.
    assert delivery.record(row.pk, stale_token, delivery.Outcome("failed", 400)) is None
    row.refresh_from_db()
    assert row.state == DeliveryState.DELIVERED


def test_deliver_due_dispatches_everything_due_and_nothing_else(account, receiver, make_subscription):
    make_subscription(account, receiver.url)
    due = emit_one(account, "k1")
    later = emit_one(account, "k2")
    WebhookDelivery.objects.filter(pk=later.pk).update(next_attempt_at=timezone.now() + dt.timedelta(hours=1))

    assert jobs.deliver_due() == 1

    assert [r.json()["type"] for r in receiver.requests] == ["cta.clicked"]
    due.refresh_from_db()
    later.refresh_from_db()
    assert (due.state, later.state) == (DeliveryState.DELIVERED, DeliveryState.PENDING)


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_webhook_ids_are_unique_per_delivery(account, make_subscription):
    make_subscription(account, "http://127.0.0.1:9/a")
    make_subscription(account, "http://127.0.0.1:9/b")
    emit(account, "lead.hot", {}, idempotency_key="one")

    ids = list(WebhookDelivery.objects.values_list("message_id", flat=True))

    assert len(ids) == len(set(ids)) == 2
    assert all(isinstance(value, uuid.UUID) for value in ids)
