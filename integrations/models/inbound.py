"""The CRM → capsule direction: received changes, polling cursors, the prospect's CRM data, conflicts.

An ``InboundEvent`` row is written for every change a CRM tells us about (webhook or polling)
before anything is done with it, so a crash after the acknowledgement loses nothing: the row
stays pending and the scheduler finds it again (DESIGN.md invariant 1). The provider's event id
is unique per connection, which is what makes a redelivered webhook a no-op.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from crmsync.models import Prospect
from integrations.models.connection import Connection


class InboundState(models.TextChoices):
    PENDING = "pending", "Pending"
    PROCESSED = "processed", "Processed"
    IGNORED = "ignored", "Ignored"
    FAILED = "failed", "Failed"


class InboundVia(models.TextChoices):
    WEBHOOK = "webhook", "Webhook"
    POLL = "poll", "Polling"


class InboundEvent(models.Model):
    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="inbound_events")
    # The provider's event id, or "poll:<kind>:<crm id>:<modified time>" for polled changes.
    event_id = models.CharField(max_length=200)
    via = models.CharField(max_length=10, choices=InboundVia.choices, default=InboundVia.WEBHOOK)
    object_kind = models.CharField(max_length=20)
    crm_id = models.CharField(max_length=100)
    change = models.CharField(max_length=20)  # created, updated, deleted, merged, property
    properties = models.JSONField(default=dict, blank=True)
    source = models.CharField(max_length=200, blank=True)
    merged_into = models.CharField(max_length=100, blank=True)
    occurred_at = models.DateTimeField(null=True, blank=True)
    received_at = models.DateTimeField(default=timezone.now)
    state = models.CharField(max_length=10, choices=InboundState.choices, default=InboundState.PENDING)
    reason = models.CharField(max_length=40, blank=True)  # why ignored: echo, unchanged, not_linked…
    error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["connection", "event_id"], name="inbound_event_once")]
        indexes = [
            models.Index(
                fields=["connection", "next_attempt_at", "id"],
                condition=models.Q(state="pending"),
                name="inbound_pending_idx",
            ),
            models.Index(fields=["received_at"], name="inbound_received_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.object_kind} {self.crm_id} {self.change} ({self.state})"


class PollCursor(models.Model):
    """Where polling of one object kind of one connection stands: a modified time and an id tie-break."""

    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="poll_cursors")
    object_kind = models.CharField(max_length=20)
    modified_at = models.DateTimeField()
    last_id = models.CharField(max_length=100, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["connection", "object_kind"], name="poll_cursor_one_per_kind")]

    def __str__(self) -> str:
        return f"{self.object_kind} since {self.modified_at.isoformat()} after {self.last_id or '-'}"


class PollSchedule(models.Model):
    """When a connection is polled next, and the lease that keeps two pollers off one connection."""

    connection = models.OneToOneField(
        Connection, on_delete=models.CASCADE, primary_key=True, related_name="poll_schedule"
    )
    interval_seconds = models.PositiveIntegerField(default=300)
    next_poll_at = models.DateTimeField(default=timezone.now)
    lease_until = models.DateTimeField(null=True, blank=True)
    last_polled_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    def __str__(self) -> str:
        return f"poll connection {self.connection_id} every {self.interval_seconds}s"


class WebhookRegistration(models.Model):
    """A webhook subscription we registered with the CRM for one connection (where its API allows)."""

    connection = models.OneToOneField(
        Connection, on_delete=models.CASCADE, primary_key=True, related_name="webhook_registration"
    )
    ref = models.CharField(max_length=300, blank=True)  # the CRM's id for the subscription
    callback_url = models.CharField(max_length=500)
    registered_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"webhooks of connection {self.connection_id}"


class ProspectCrmData(models.Model):
    """What the CRMs say about a prospect: the personalisation data of the CRM → capsule direction."""

    prospect = models.OneToOneField(Prospect, on_delete=models.CASCADE, primary_key=True, related_name="crm_data")
    fields = models.JSONField(default=dict, blank=True)  # CRM-sourced values by capsule source key
    field_timestamps = models.JSONField(default=dict, blank=True)  # source key -> ISO time of the CRM change
    # Values last seen from each CRM record: "<connection>:<kind>:<crm id>" -> {field: {"v": value, "at": iso}}.
    # What tells a real change from a repeat, and a late (older) change from a current one.
    crm_seen = models.JSONField(default=dict, blank=True)
    deal_crm_id = models.CharField(max_length=100, blank=True)
    deal_stage = models.CharField(max_length=100, blank=True)
    deal_stage_changed_at = models.DateTimeField(null=True, blank=True)
    owner_id = models.CharField(max_length=100, blank=True)
    owner_name = models.CharField(max_length=200, blank=True)
    unsubscribed = models.BooleanField(default=False)
    do_not_contact = models.BooleanField(default=False)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "prospect CRM data"
        verbose_name_plural = "prospect CRM data"
        indexes = [
            models.Index(fields=["prospect"], condition=models.Q(do_not_contact=True), name="crm_data_dnc_idx"),
        ]

    def __str__(self) -> str:
        return f"CRM data of prospect {self.prospect_id}"


class DealLink(models.Model):
    """Which prospects a CRM deal belongs to (a deal has no RecordLink: those are one per prospect)."""

    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="deal_links")
    crm_id = models.CharField(max_length=100)
    prospect = models.ForeignKey(Prospect, on_delete=models.CASCADE, related_name="crm_deal_links")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["connection", "crm_id", "prospect"], name="deal_link_once"),
        ]

    def __str__(self) -> str:
        return f"deal {self.crm_id} of prospect {self.prospect_id}"


class ConflictWinner(models.TextChoices):
    CRM = "crm", "CRM"
    CAPSULE = "capsule", "Capsule"


class SyncConflict(models.Model):
    """A field that differed on both sides when a CRM change came in, and which side won."""

    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="sync_conflicts")
    prospect = models.ForeignKey(Prospect, on_delete=models.CASCADE, related_name="sync_conflicts")
    inbound_event = models.ForeignKey(
        InboundEvent, null=True, blank=True, on_delete=models.SET_NULL, related_name="conflicts"
    )
    source_key = models.CharField(max_length=120)
    crm_field = models.CharField(max_length=200)
    capsule_value = models.JSONField(null=True, blank=True)
    crm_value = models.JSONField(null=True, blank=True)
    policy = models.CharField(max_length=20)
    winner = models.CharField(max_length=10, choices=ConflictWinner.choices)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["connection", "-at", "-id"], name="sync_conflict_recent_idx")]

    def __str__(self) -> str:
        return f"{self.source_key} of prospect {self.prospect_id}: {self.winner} won"
