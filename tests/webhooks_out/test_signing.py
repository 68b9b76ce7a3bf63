"""Signatures per the Standard Webhooks spec, checked with the standardwebhooks library itself."""

from __future__ import annotations

import base64
import datetime as dt

import pytest
from django.utils import timezone
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from integrations.webhooks_out.signing import new_secret, signed_headers

BODY = '{"data":{},"timestamp":"2025-01-31T14:05:00Z","type":"capsule.viewed"}'


def test_a_new_secret_is_whsec_and_32_random_bytes():
    first, second = new_secret(), new_secret()

    assert first.startswith("whsec_")
    assert len(base64.b64decode(first.removeprefix("whsec_"))) == 32
    assert first != second


def test_the_headers_verify_with_the_library():
    secret = new_secret()
    headers = signed_headers("msg_1", timezone.now(), BODY, [secret])

    assert Webhook(secret).verify(BODY, headers) == {
        "data": {},
        "timestamp": "2025-01-31T14:05:00Z",
        "type": "capsule.viewed",
    }
    assert headers["webhook-id"] == "msg_1"
    assert headers["webhook-signature"].startswith("v1,")


def test_another_secret_or_a_changed_body_does_not_verify():
    secret = new_secret()
    headers = signed_headers("msg_1", timezone.now(), BODY, [secret])

    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(BODY, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY.replace("viewed", "completed"), headers)


def test_during_a_rotation_both_secrets_verify_the_same_message():
    old, new = new_secret(), new_secret()
    headers = signed_headers("msg_2", timezone.now(), BODY, [new, old])

    assert len(headers["webhook-signature"].split(" ")) == 2
    assert Webhook(old).verify(BODY, headers)
    assert Webhook(new).verify(BODY, headers)


def test_the_timestamp_is_the_attempts_time_in_epoch_seconds_whatever_the_zone():
    secret = new_secret()
    when = dt.datetime(2030, 1, 1, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    headers = signed_headers("msg_3", when, BODY, [secret])

    assert headers["webhook-timestamp"] == str(int(when.timestamp()))
    expected = Webhook(secret).sign("msg_3", when.astimezone(dt.UTC), BODY)
    assert headers["webhook-signature"] == expected


def test_a_message_cannot_go_unsigned():
    with pytest.raises(ValueError, match="at least one"):
        signed_headers("msg_4", timezone.now(), BODY, [])
