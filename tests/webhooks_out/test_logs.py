"""No signing secret in any log line (issue 10, item 5): the autouse scan in conftest.py checks every
test of this package; these tests show the scan itself can fail, and cover the paths that log."""

from __future__ import annotations

import logging

import pytest

from integrations.models import DeliveryState, WebhookDelivery
from integrations.webhooks_out import jobs
from integrations.webhooks_out.emit import emit
from tests.webhooks_out.conftest import leaked


def test_the_scan_finds_a_secret_or_its_key_in_a_log_record(account, make_subscription, settings, caplog):
    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = True
    _subscription, secret = make_subscription(account, "http://127.0.0.1:9/x")
    logger = logging.getLogger("integrations.webhooks_out.test")

    logger.warning("signing with %s", secret)
    logger.warning("key %s", secret.removeprefix("whsec_"))

    assert len(leaked(caplog.records, {secret})) == 2
    caplog.clear()  # the leak above was this test's own, on purpose


@pytest.mark.usefixtures("deliver_to_loopback")
def test_sending_failing_and_disabling_log_no_secret(account, receiver, make_subscription, caplog):
    _subscription, secret = make_subscription(account, receiver.url + "/hook?token=path-secret")
    receiver.script((500, {}, b"boom"), (410, {}, b"gone"))
    emit(account, "lead.hot", {"grade": "hot"}, idempotency_key="k")

    jobs.deliver_due()
    WebhookDelivery.objects.update(next_attempt_at="2000-01-01T00:00:00Z")
    jobs.deliver_due()

    assert WebhookDelivery.objects.get().state == DeliveryState.FAILED
    messages = [record.getMessage() for record in caplog.records if record.name.startswith("integrations")]
    assert any("webhook delivery" in message for message in messages)
    assert not [message for message in messages if "path-secret" in message]
    assert leaked(caplog.records, {secret}) == []
