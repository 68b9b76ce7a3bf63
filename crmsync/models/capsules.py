"""The capsule domain: capsules, prospects, anonymous visitors and interaction events."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from crmsync.models.tenancy import Account


def normalise_email(email: str) -> str:
    """One spelling per address: surrounding space trimmed, compared case-insensitively."""
    return email.strip().lower()


class Capsule(models.Model):
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="capsules")
    external_id = models.CharField(max_length=100, help_text="The capsule platform's id.")
    title = models.CharField(max_length=300, blank=True)
    url = models.URLField(max_length=1000, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account", "external_id"], name="capsule_unique_external_id")]

    def __str__(self) -> str:
        return self.title or self.external_id


class Prospect(models.Model):
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="prospects")
    # Null only once erased: the row stays (anonymised) so CRM-side erasure can find its links.
    email = models.CharField(max_length=254, null=True, blank=True)
    first_name = models.CharField(max_length=150, blank=True)
    last_name = models.CharField(max_length=150, blank=True)
    phone = models.CharField(max_length=50, blank=True)
    company = models.CharField(max_length=200, blank=True)
    job_title = models.CharField(max_length=200, blank=True)
    attributes = models.JSONField(default=dict, blank=True, help_text="Custom attributes from the capsule.")
    utm = models.JSONField(default=dict, blank=True, help_text="UTM parameters of the first identified visit.")
    consent_granted = models.BooleanField(null=True, blank=True, help_text="Unknown until the prospect answers.")
    consent_at = models.DateTimeField(null=True, blank=True)
    consent_source = models.CharField(max_length=200, blank=True)
    erased = models.BooleanField(default=False)
    erased_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    last_event_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "email"], name="prospect_unique_email"),
        ]
        indexes = [
            models.Index(fields=["account", "-last_event_at"], name="prospect_recent_idx"),
            models.Index(fields=["account", "updated_at", "id"], name="prospect_changed_idx"),
        ]

    def __str__(self) -> str:
        return self.email or f"erased prospect #{self.pk}"

    @property
    def full_name(self) -> str:
        return " ".join(part for part in (self.first_name, self.last_name) if part)

    def may_sync(self) -> bool:
        """Whether personal data may go to a CRM: never once erased; with consent where required."""
        if self.erased or not self.email:
            return False
        if self.account.require_consent:
            return self.consent_granted is True
        return self.consent_granted is not False


class Visitor(models.Model):
    """An anonymous visitor id, attached to a prospect once the visitor is identified."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="visitors")
    visitor_id = models.CharField(max_length=100)
    prospect = models.ForeignKey(Prospect, null=True, blank=True, on_delete=models.CASCADE, related_name="visitors")
    first_seen_at = models.DateTimeField(default=timezone.now)
    identified_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account", "visitor_id"], name="visitor_unique_id")]

    def __str__(self) -> str:
        return self.visitor_id


class EventType(models.TextChoices):
    CAPSULE_VIEWED = "capsule_viewed", "Capsule viewed"
    QUESTION_ASKED = "question_asked", "Question asked"
    TIME_SPENT = "time_spent", "Time spent"
    CONTENT_ACCESSED = "content_accessed", "Content accessed"
    CONTENT_DOWNLOADED = "content_downloaded", "Content downloaded"
    CTA_CLICKED = "cta_clicked", "CTA clicked"
    CONVERSION = "conversion", "Conversion"
    SENTIMENT = "sentiment", "Sentiment"
    CAPSULE_COMPLETED = "capsule_completed", "Capsule completed"
    LEAD_CAPTURED = "lead_captured", "Lead captured"


class Event(models.Model):
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="events")
    external_id = models.CharField(max_length=100, help_text="The capsule platform's event id.")
    type = models.CharField(max_length=30, choices=EventType.choices)
    occurred_at = models.DateTimeField()
    received_at = models.DateTimeField(default=timezone.now)
    capsule = models.ForeignKey(Capsule, null=True, blank=True, on_delete=models.SET_NULL, related_name="events")
    prospect = models.ForeignKey(Prospect, null=True, blank=True, on_delete=models.CASCADE, related_name="events")
    visitor_id = models.CharField(max_length=100, blank=True)
    data = models.JSONField(default=dict, blank=True, help_text="The type's own fields (text, seconds, value…).")

    class Meta:
        # The event id first: ingest asks "which of these 500 ids are stored?" with the account as a
        # per-row check (crmsync.ingest_sql.find_existing), so each id is one probe of this index even
        # when the statistics do not know the account yet. Led by the account, the index offered the
        # planner a scan of all the account's events for that question, which it took for a new
        # account (expected to have one row): a nested loop over every event of the account for each
        # of the 500 ids, per request. ON CONFLICT (account, external_id) finds it in either order.
        constraints = [models.UniqueConstraint(fields=["external_id", "account"], name="event_unique_external_id")]
        indexes = [
            models.Index(fields=["prospect", "occurred_at"], name="event_prospect_time_idx"),
            models.Index(fields=["account", "-received_at"], name="event_recent_idx"),
            models.Index(
                fields=["account", "visitor_id"],
                name="event_anonymous_idx",
                condition=models.Q(prospect__isnull=True),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.external_id}"
