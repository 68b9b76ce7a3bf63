"""The sync engine's tables: the outbox (work to do), record links (what is where) and sync runs.

PostgreSQL is the source of truth for all sync work (DESIGN.md invariant 1): Redis only carries
kicks. A row here is written in the same transaction as the events that caused it.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from crmsync.models import Event, Prospect
from integrations.models.connection import Connection


class OutboxKind(models.TextChoices):
    PERSON = "person", "Contact/lead upsert"
    ACTIVITY = "activity", "Activity"
    NOTE = "note", "Note"
    DEAL = "deal", "Deal"
    TASK = "task", "Task"
    FIELDS = "fields", "Set fields"
    ERASE = "erase", "Erase in CRM"


class OutboxState(models.TextChoices):
    PENDING = "pending", "Pending"
    HELD = "held", "Waiting"  # e.g. until the lead exists in the CRM (score threshold, consent)
    IN_FLIGHT = "in_flight", "In flight"
    RETRY = "retry", "Retry scheduled"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Skipped"


# States a worker may claim once next_attempt_at has passed.
CLAIMABLE_STATES = (OutboxState.PENDING, OutboxState.RETRY)
OPEN_STATES = (OutboxState.PENDING, OutboxState.RETRY, OutboxState.HELD, OutboxState.IN_FLIGHT)


class OutboxItem(models.Model):
    # No index of its own: every index below leads with the connection, and a lone connection
    # index tempts the planner into sorting all of a connection's due rows on each claim when its
    # statistics are stale (a new connection's first sync). See integrations/sync/sql.py.
    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="outbox", db_index=False)
    prospect = models.ForeignKey(Prospect, on_delete=models.CASCADE, related_name="outbox")
    kind = models.CharField(max_length=10, choices=OutboxKind.choices)
    event = models.ForeignKey(Event, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # What makes the work unique: "person" rows coalesce per prospect while open; event rows are
    # "<kind>:<event id>"; trigger rows "<kind>:<firing id>". See integrations.sync.outbox.
    dedupe_key = models.CharField(max_length=120)
    payload = models.JSONField(default=dict, blank=True)  # task/field work carries its own content
    state = models.CharField(max_length=10, choices=OutboxState.choices, default=OutboxState.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    last_error = models.TextField(blank=True)
    last_error_kind = models.CharField(max_length=20, blank=True)
    hold_reason = models.CharField(max_length=200, blank=True)
    claimed_by = models.CharField(max_length=100, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    run = models.ForeignKey("SyncRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="items")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    done_at = models.DateTimeField(null=True, blank=True)
    result = models.CharField(max_length=20, blank=True)  # created, updated, unchanged, relinked…

    class Meta:
        constraints = [
            # Event-keyed work exists once per connection, ever: replays and retries cannot double it.
            models.UniqueConstraint(
                fields=["connection", "dedupe_key"],
                condition=~models.Q(kind="person"),
                name="outbox_unique_event_work",
            ),
            # Person work coalesces: at most one open row per prospect and connection.
            models.UniqueConstraint(
                fields=["connection", "prospect"],
                condition=models.Q(kind="person", state__in=["pending", "retry", "held"]),
                name="outbox_one_open_person_row",
            ),
        ]
        indexes = [
            models.Index(
                fields=["connection", "next_attempt_at", "id"],
                condition=models.Q(state__in=["pending", "retry"]),
                name="outbox_due_idx",
            ),
            models.Index(fields=["connection", "state", "-updated_at"], name="outbox_state_idx"),
            models.Index(fields=["prospect", "connection", "state"], name="outbox_prospect_idx"),
            models.Index(fields=["lease_until"], condition=models.Q(state="in_flight"), name="outbox_lease_idx"),
            models.Index(fields=["state", "-updated_at"], name="outbox_ops_idx"),
            # The ops admin's error-kind filter and error-text search, newest first: only the rows that
            # carry an error (the engine clears it when a row is done), so finding 40 rows of a rare
            # kind reads 40 index entries rather than the outbox in id order (integrations/admin_sync.py).
            models.Index(
                fields=["last_error_kind", "-id"], condition=~models.Q(last_error_kind=""), name="outbox_error_idx"
            ),
            # The dashboard's per-hour and reliability counts (covering, so no heap reads).
            models.Index(
                fields=["connection", "created_at"],
                include=["kind", "state", "done_at", "run"],
                name="outbox_created_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} for prospect {self.prospect_id} ({self.state})"


class LinkState(models.TextChoices):
    LINKED = "linked", "Linked"
    RELINKED = "relinked", "Re-linked after the CRM record was deleted or merged"
    DELETED = "deleted", "Deleted in the CRM"
    ERASED = "erased", "Erased"


class RecordLink(models.Model):
    """Which CRM record a prospect is, per connection, and what we last sent it."""

    # No index of its own: the unique (connection, prospect) constraint and the indexes below lead
    # with it, and a lone connection index lets stale statistics scan all of a new connection's
    # links for each batch's lookup (see OutboxItem.connection).
    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="links", db_index=False)
    prospect = models.ForeignKey(Prospect, on_delete=models.CASCADE, related_name="crm_links")
    crm_object_type = models.CharField(max_length=20)  # contact or lead
    crm_id = models.CharField(max_length=100)
    state = models.CharField(max_length=10, choices=LinkState.choices, default=LinkState.LINKED)
    last_payload_hash = models.CharField(max_length=64, blank=True)
    last_sent_fields = models.JSONField(default=dict, blank=True)
    last_synced_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["connection", "prospect"], name="link_one_per_prospect")]
        indexes = [
            models.Index(fields=["connection", "crm_id"], name="link_crm_id_idx"),
            # The dashboard counts the few links that are not plainly "linked".
            models.Index(fields=["connection", "state"], condition=~models.Q(state="linked"), name="link_unusual_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.crm_object_type} {self.crm_id}"


class RunMode(models.TextChoices):
    REALTIME = "realtime", "Real time"
    BATCH = "batch", "Batch"
    MANUAL = "manual", "Manual"


class RunState(models.TextChoices):
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class SyncRun(models.Model):
    """One flush of a connection's work: counts, API calls used, progress."""

    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="runs")
    mode = models.CharField(max_length=10, choices=RunMode.choices)
    state = models.CharField(max_length=10, choices=RunState.choices, default=RunState.RUNNING)
    started_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    total = models.PositiveIntegerField(default=0)  # items expected, for progress
    processed = models.PositiveIntegerField(default=0)
    created = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    unchanged = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    activities = models.PositiveIntegerField(default=0)
    api_calls = models.PositiveIntegerField(default=0)
    rate_limited = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)

    class Meta:
        indexes = [models.Index(fields=["connection", "-started_at"], name="run_recent_idx")]

    def __str__(self) -> str:
        return f"{self.get_mode_display()} run {self.pk} ({self.state})"

    def summary(self) -> str:
        return (
            f"created={self.created} updated={self.updated} unchanged={self.unchanged} "
            f"failed={self.failed} skipped={self.skipped} activities={self.activities} api_calls={self.api_calls}"
        )
