"""Outgoing webhooks (Zapier, Make, any URL): subscriptions and the delivery log.

A delivery row is written in the same transaction as whatever caused it (``emit``), so a crash
between commit and sending loses nothing: the periodic job finds due rows again (DESIGN.md
invariant 1). Signing secrets live only in encrypted columns (invariant 4).
"""

from __future__ import annotations

import datetime as dt
import uuid
from urllib.parse import urlsplit

from django.conf import settings
from django.db import models
from django.utils import timezone

from crmsync.models import Account
from integrations.fields import StrictEncryptedTextField


class WebhookSource(models.TextChoices):
    ZAPIER = "zapier", "Zapier"
    MAKE = "make", "Make"
    API = "api", "API client"
    MANUAL = "manual", "Added by hand"


class WebhookSubscription(models.Model):
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="webhook_subscriptions")
    target_url = models.CharField(max_length=2000)
    # Catalogue event names (integrations.webhooks_out.catalogue), or ["*"] for every event.
    events = models.JSONField(default=list)
    # Standard Webhooks secrets ("whsec_" + base64). While a rotation overlaps, the previous
    # secret signs too (the spec allows several space-separated signatures for exactly this).
    secret = StrictEncryptedTextField()
    previous_secret = StrictEncryptedTextField(blank=True, default="")
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    active = models.BooleanField(default=True)
    disabled_reason = models.CharField(max_length=300, blank=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    source = models.CharField(max_length=10, choices=WebhookSource.choices, default=WebhookSource.MANUAL)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_by_label = models.CharField(max_length=200, blank=True)  # "ann@example.com", "api-key csk_AbC…"
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["account", "active"], name="webhook_sub_account_idx")]

    def __str__(self) -> str:
        return f"webhook #{self.pk} → {self.host}"

    @property
    def host(self) -> str:
        return urlsplit(self.target_url).hostname or self.target_url[:60]

    def listens_to(self, event_type: str) -> bool:
        return "*" in self.events or event_type in self.events

    def signing_secrets(self, now: dt.datetime | None = None) -> list[str]:
        """The secrets that sign a message now: the current one, and the previous one until it expires."""
        now = now or timezone.now()
        secrets = [self.secret]
        if self.previous_secret and self.previous_secret_expires_at and now < self.previous_secret_expires_at:
            secrets.append(self.previous_secret)
        return secrets


class DeliveryState(models.TextChoices):
    PENDING = "pending", "Pending"
    IN_FLIGHT = "in_flight", "Sending"
    DELIVERED = "delivered", "Delivered"
    RETRY = "retry", "Retry scheduled"
    FAILED = "failed", "Failed"


# States a worker may claim once next_attempt_at has passed.
DUE_STATES = (DeliveryState.PENDING, DeliveryState.RETRY)


class WebhookDelivery(models.Model):
    subscription = models.ForeignKey(WebhookSubscription, on_delete=models.CASCADE, related_name="deliveries")
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="webhook_deliveries")
    # The Standard Webhooks "webhook-id": stable across retries and replays, so receivers can dedupe.
    message_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    event_type = models.CharField(max_length=60)
    # What makes this delivery unique for its subscription: a retried emit() writes nothing new.
    idempotency_key = models.CharField(max_length=200)
    payload = models.JSONField()  # the whole body: {"type", "timestamp", "data"}
    state = models.CharField(max_length=10, choices=DeliveryState.choices, default=DeliveryState.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    last_status = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    response_excerpt = models.CharField(max_length=500, blank=True)  # the body's start; never headers
    claimed_by = models.CharField(max_length=64, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "webhook deliveries"
        constraints = [
            models.UniqueConstraint(fields=["subscription", "idempotency_key"], name="webhook_delivery_once"),
        ]
        indexes = [
            models.Index(
                fields=["next_attempt_at", "id"],
                condition=models.Q(state__in=["pending", "retry"]),
                name="webhook_delivery_due_idx",
            ),
            models.Index(fields=["subscription", "-id"], name="webhook_delivery_log_idx"),
            models.Index(fields=["subscription", "state", "-id"], name="webhook_delivery_state_idx"),
            models.Index(fields=["account", "event_type", "-created_at"], name="webhook_delivery_recent_idx"),
            models.Index(
                fields=["lease_until"], condition=models.Q(state="in_flight"), name="webhook_delivery_lease_idx"
            ),
            models.Index(fields=["state", "-id"], name="webhook_delivery_ops_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} delivery #{self.pk} ({self.state})"

    @property
    def webhook_id(self) -> str:
        return f"msg_{self.message_id.hex}"
