"""Signing outgoing messages per the Standard Webhooks specification, with the ``standardwebhooks`` library.

Spec: https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md

- ``webhook-id``: the message id, the same on every retry and replay, so receivers can dedupe.
- ``webhook-timestamp``: seconds since the epoch at the time of this attempt; receivers refuse
  messages outside their tolerance (the library's is five minutes), which defeats replays.
- ``webhook-signature``: ``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">``. The spec
  allows several space-separated signatures "to support zero-downtime secret rotation": while a
  rotation overlaps we sign with the new and the old secret, so receivers verifying with either
  one accept the message.
- Secrets are ``whsec_`` + base64 of random bytes; the spec asks for 24 to 64 bytes.
"""

from __future__ import annotations

import base64
import datetime as dt
import secrets as random_source
from collections.abc import Sequence

from standardwebhooks import Webhook

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(random_source.token_bytes(SECRET_BYTES)).decode()


def signature_header(message_id: str, timestamp: dt.datetime, body: str, secrets: Sequence[str]) -> str:
    """The ``webhook-signature`` value: one ``v1,…`` signature per secret, space-separated."""
    if not secrets:
        raise ValueError("a message needs at least one signing secret")
    # The library reads the time as UTC whatever its zone says; hand it UTC.
    timestamp = timestamp.astimezone(dt.UTC)
    return " ".join(Webhook(secret).sign(message_id, timestamp, body) for secret in secrets)


def signed_headers(message_id: str, timestamp: dt.datetime, body: str, secrets: Sequence[str]) -> dict[str, str]:
    """The three Standard Webhooks headers for one attempt to send ``body``."""
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": signature_header(message_id, timestamp, body, secrets),
    }
