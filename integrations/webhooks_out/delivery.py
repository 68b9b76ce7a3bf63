"""Sending one delivery: sign, POST (following up to three redirects, each checked), decide, record.

What an answer means (docs/WEBHOOKS.md has the same table for receivers):

- 2xx: delivered.
- 410 Gone: the receiver says the subscription is over (Zapier answers 410 once a Zap is turned
  off): the subscription is disabled, the reason recorded and audited, and the owner told.
- 408, 429, 5xx, timeouts, refused or dropped connections, DNS failures: tried again on the
  schedule below (about three days), never sooner than a ``Retry-After`` asks; then failed.
- Any other answer (other 4xx, a 3xx without a usable ``Location``, more than three redirects)
  and a refused target (SSRF guard): failed at once. Retrying would get the same answer.

Every attempt leaves its trace on the row: attempts, last status, last error, a 500-character
excerpt of the response body (never its headers), next try (DESIGN.md invariant 3).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import random
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Literal
from urllib.parse import urljoin

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from crmsync import audit
from crmsync.jobs import enqueue
from integrations.models import DeliveryState, WebhookDelivery
from integrations.webhooks_out import signing, ssrf, subscriptions, transport

log = logging.getLogger(__name__)

USER_AGENT = "CapsuleCRMSync-Webhooks/1"
MAX_REDIRECTS = 3
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
RETRYABLE_STATUSES = frozenset({408, 429})
# Delay before the 2nd, 3rd, … attempt: roughly exponential, about three days in all (71.6 h);
# after the last one fails the delivery is failed. The first attempt goes right after commit.
RETRY_SCHEDULE = (
    dt.timedelta(seconds=5),
    dt.timedelta(minutes=5),
    dt.timedelta(minutes=30),
    dt.timedelta(hours=2),
    dt.timedelta(hours=5),
    dt.timedelta(hours=10),
    dt.timedelta(hours=10),
    dt.timedelta(hours=10),
    dt.timedelta(hours=14),
    dt.timedelta(hours=20),
)
MAX_ATTEMPTS = len(RETRY_SCHEDULE) + 1
JITTER = 0.1  # ±10 %, so receivers that failed together are not all retried in the same second
# A Retry-After longer than this is treated as this; the schedule still ends the delivery in time.
MAX_RETRY_AFTER = dt.timedelta(hours=24)

Verdict = Literal["delivered", "retry", "failed", "gone"]


@dataclass(frozen=True)
class Outcome:
    verdict: Verdict
    status: int | None = None
    error: str = ""
    excerpt: str = ""
    retry_after: dt.timedelta | None = None


def body_of(payload: dict) -> str:
    """The exact text that is sent and signed: compact JSON, the same on every attempt."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False, sort_keys=True)


def parse_retry_after(value: str | None, now: dt.datetime) -> dt.timedelta | None:
    """Retry-After as seconds or as an HTTP date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return dt.timedelta(seconds=int(value))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(dt.timedelta(0), when - now)


def classify(answer: transport.Answer, now: dt.datetime) -> Outcome:
    status = answer.status
    if 200 <= status < 300:
        return Outcome("delivered", status, excerpt=answer.excerpt)
    if status == 410:
        return Outcome("gone", status, "the receiver answered 410 Gone", answer.excerpt)
    if status in RETRYABLE_STATUSES or status >= 500:
        retry_after = parse_retry_after(answer.retry_after, now)
        return Outcome("retry", status, f"the receiver answered {status}", answer.excerpt, retry_after)
    return Outcome("failed", status, f"the receiver answered {status}", answer.excerpt)


def send(delivery: WebhookDelivery, now: dt.datetime | None = None) -> Outcome:
    """One attempt: sign the message, POST it, follow up to three redirects. No database writes."""
    now = now or timezone.now()
    subscription = delivery.subscription
    body = body_of(delivery.payload)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        **signing.signed_headers(delivery.webhook_id, now, body, subscription.signing_secrets(now)),
    }
    url = subscription.target_url
    for hop in range(MAX_REDIRECTS + 1):
        try:
            target = ssrf.check_url(url)
        except ssrf.TargetRefused as exc:
            prefix = "a redirect was refused: " if hop else "the URL was refused: "
            return Outcome("failed", error=prefix + str(exc))
        except ssrf.TargetUnresolvable as exc:
            return Outcome("retry", error=str(exc))
        try:
            answer = transport.post(target, body.encode(), headers, settings.WEBHOOKS_TIMEOUT_SECONDS)
        except transport.TransportError as exc:
            return Outcome("retry", error=str(exc))
        if answer.status not in REDIRECT_STATUSES:
            return classify(answer, now)
        if not answer.location:
            return Outcome("failed", answer.status, f"the receiver answered {answer.status} without a Location")
        # Re-sent as the same signed POST: a webhook is not a page, and a GET would lose the message.
        url = urljoin(target.url, answer.location)
    return Outcome("failed", error=f"more than {MAX_REDIRECTS} redirects")


def next_attempt_after(attempts: int, retry_after: dt.timedelta | None) -> dt.timedelta | None:
    """How long to wait after ``attempts`` failed attempts; None once the schedule is used up."""
    if attempts >= MAX_ATTEMPTS:
        return None
    delay = RETRY_SCHEDULE[attempts - 1] * random.uniform(1 - JITTER, 1 + JITTER)
    if retry_after is not None:
        delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
    return delay


def record(delivery_id: int, token: str, outcome: Outcome, now: dt.datetime | None = None) -> WebhookDelivery | None:
    """Write an attempt's outcome, if this worker still holds the delivery. Returns the row written."""
    now = now or timezone.now()
    with transaction.atomic():
        row = (
            WebhookDelivery.objects.select_for_update()
            .select_related("subscription__account")
            .filter(pk=delivery_id, state=DeliveryState.IN_FLIGHT, claimed_by=token)
            .first()
        )
        if row is None:  # the lease ran out and another worker took it over: its result counts
            return None
        row.attempts += 1
        row.last_status = outcome.status
        row.last_error = outcome.error[:500]
        row.response_excerpt = outcome.excerpt[:500]
        row.last_attempt_at = now
        row.updated_at = now
        row.claimed_by = ""
        row.lease_until = None
        if outcome.verdict == "delivered":
            row.state = DeliveryState.DELIVERED
            row.delivered_at = now
        elif outcome.verdict == "retry" and (delay := next_attempt_after(row.attempts, outcome.retry_after)):
            row.state = DeliveryState.RETRY
            row.next_attempt_at = now + delay
        else:
            row.state = DeliveryState.FAILED
            if outcome.verdict == "retry":
                row.last_error = f"{row.last_error} (gave up after {row.attempts} attempts)"[:500]
        row.save()
        if outcome.verdict == "gone":
            subscriptions.disable(
                row.subscription, reason=f"The receiver answered 410 Gone on {now:%d %b %Y, %H:%M} UTC."
            )
    log.info(
        "webhook delivery %s (subscription %s, %s) attempt %s: %s %s",
        row.pk,
        row.subscription_id,
        row.event_type,
        row.attempts,
        row.state,
        outcome.status or outcome.error,
    )
    return row


def deliver_claimed(token: str, rows: list[WebhookDelivery]) -> None:
    """Send each claimed delivery and record what happened."""
    for row in rows:
        if not row.subscription.active:
            outcome = Outcome("failed", error="the subscription was disabled before this message was sent")
        else:
            try:
                outcome = send(row)
            except Exception:  # a bug must not leave the row in flight until its lease runs out
                log.exception("webhook delivery %s: unexpected error while sending", row.pk)
                outcome = Outcome("retry", error="an internal error stopped this attempt; it will be tried again")
        record(row.pk, token, outcome)


def resend(
    deliveries: list[WebhookDelivery],
    *,
    action: str,
    request: HttpRequest | None = None,
    only_states: tuple[str, ...] | None = None,
) -> int:
    """Send deliveries again as they were (same ``webhook-id``, same body, newly signed) on a fresh
    schedule, right after commit. Rows being sent right now, and rows outside ``only_states``, are
    left alone. Audited as ``action`` ("webhook.replayed", "webhook.retried"). Returns how many."""
    now = timezone.now()
    queryset = WebhookDelivery.objects.filter(pk__in=[d.pk for d in deliveries]).exclude(state=DeliveryState.IN_FLIGHT)
    if only_states is not None:
        queryset = queryset.filter(state__in=only_states)
    with transaction.atomic():
        ids = list(queryset.select_for_update().values_list("id", flat=True))
        WebhookDelivery.objects.filter(pk__in=ids).update(
            state=DeliveryState.PENDING, attempts=0, next_attempt_at=now, updated_at=now, delivered_at=None
        )
        for delivery in deliveries:
            if delivery.pk in ids:
                audit.record(action, request=request, obj=delivery, changes={"event_type": delivery.event_type})
        for start in range(0, len(ids), 10):
            enqueue("integrations.webhooks_out.jobs.deliver", ids[start : start + 10], queue="default")
    return len(ids)
