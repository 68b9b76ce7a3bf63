"""Lead scoring: an account's rules and grade bands, each prospect's score, grade changes, recomputes."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from crmsync.models import Account, EventType, Prospect
from scoring.conditions import validate_conditions
from scoring.engine import BandSpec, RuleSpec


class ScoringRule(models.Model):
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="scoring_rules")
    name = models.CharField(max_length=100, help_text="Shown in the score breakdown and sent to the CRM.")
    event_type = models.CharField(max_length=30, choices=EventType.choices)
    conditions = models.JSONField(default=dict, blank=True, help_text="See scoring.conditions for each event type.")
    points = models.IntegerField(help_text="Per counting event; negative points lower the score.")
    cap = models.PositiveIntegerField(
        null=True, blank=True, help_text="The most points (or, for negative points, the most taken away) per prospect."
    )
    decay_half_life_days = models.PositiveIntegerField(
        null=True, blank=True, help_text="Each event's points halve every this many days. Empty: no decay."
    )
    enabled = models.BooleanField(default=True)
    order = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["account", "order", "id"]
        indexes = [models.Index(fields=["account", "order"], name="scoring_rule_account_idx")]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        try:
            self.conditions = validate_conditions(self.event_type, self.conditions)
        except ValidationError as exc:
            # The model has one JSON field; forms show each condition as its own field instead.
            messages = [f"{key}: {' '.join(texts)}" for key, texts in exc.message_dict.items()]
            raise ValidationError({"conditions": messages}) from None

    def spec(self) -> RuleSpec:
        return RuleSpec(
            id=self.pk,
            name=self.name,
            event_type=self.event_type,
            points=self.points,
            conditions=self.conditions,
            cap=self.cap,
            decay_half_life_days=self.decay_half_life_days,
        )

    def describe_conditions(self) -> str:
        """The conditions in words, for tables: "total over 300 s", "contains “price”"."""
        words = {
            "min_seconds": "total over {} s",
            "keyword": "contains “{}”",
            "pattern": "matches /{}/",
            "min_value": "value at least {:g}",
            "max_score": "sentiment at most {:g}",
        }
        return ", ".join(words[key].format(value) for key, value in self.conditions.items() if key in words)


class GradeBand(models.Model):
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="grade_bands")
    name = models.SlugField(max_length=40, help_text="The grade sent to the CRM, e.g. “hot”.")
    min_score = models.IntegerField(help_text="A prospect with at least this score is in the band.")

    class Meta:
        ordering = ["account", "min_score"]
        constraints = [
            models.UniqueConstraint(fields=["account", "name"], name="grade_band_unique_name"),
            models.UniqueConstraint(fields=["account", "min_score"], name="grade_band_unique_min_score"),
        ]

    def __str__(self) -> str:
        return f"{self.name} (from {self.min_score})"

    def spec(self) -> BandSpec:
        return BandSpec(self.name, self.min_score)


class ProspectScore(models.Model):
    # The prospect is the key: one score per prospect, and the upsert conflicts on it.
    prospect = models.OneToOneField(Prospect, on_delete=models.CASCADE, primary_key=True, related_name="score")
    # Copied from the prospect so distribution queries never join the prospect table.
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="prospect_scores")
    score = models.IntegerField(default=0)
    grade = models.CharField(max_length=40, blank=True)
    breakdown = models.JSONField(default=dict, blank=True)
    top_contributors = models.CharField(max_length=500, blank=True)
    computed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            models.Index(fields=["account", "grade"], name="prospect_score_grade_idx"),
            models.Index(fields=["account", "score"], name="prospect_score_score_idx"),
        ]

    def __str__(self) -> str:
        return f"prospect #{self.prospect_id}: {self.score} ({self.grade})"

    def breakdown_rows(self) -> list[dict]:
        """The breakdown as rows, the biggest contribution first."""
        rows = [{"rule_id": rule_id, **entry} for rule_id, entry in self.breakdown.items()]
        return sorted(rows, key=lambda row: (-abs(row["points"]), row["name"]))


class GradeChange(models.Model):
    """A prospect crossed a grade band: the event that workflow triggers react to."""

    class Reason(models.TextChoices):
        INGEST = "ingest", "New events"
        RECOMPUTE = "recompute", "Rules or bands changed"

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="grade_changes")
    prospect = models.ForeignKey(Prospect, on_delete=models.CASCADE, related_name="grade_changes")
    from_grade = models.CharField(max_length=40, blank=True)
    to_grade = models.CharField(max_length=40)
    score = models.IntegerField()
    reason = models.CharField(max_length=20, choices=Reason.choices)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [
            models.Index(fields=["account", "-at"], name="grade_change_recent_idx"),
            models.Index(fields=["prospect", "-at"], name="grade_change_prospect_idx"),
        ]

    def __str__(self) -> str:
        return f"prospect #{self.prospect_id}: {self.from_grade or '—'} → {self.to_grade}"


class ScoreRecompute(models.Model):
    """One full recompute of an account's scores, with its progress for the progress bar."""

    class State(models.TextChoices):
        PENDING = "pending", "Waiting to start"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    ACTIVE_STATES = (State.PENDING, State.RUNNING)
    # A running recompute shows progress at least once per chunk; one silent this long has lost its worker.
    STALE_AFTER = timedelta(minutes=10)

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="score_recomputes")
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    started_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    # Where a running recompute is: prospects up to this id are done. A job that runs out of its
    # time slice, or takes over from a worker that died, continues from here.
    cursor = models.BigIntegerField(default=0)
    # The job working on it: its lease token and when it last showed progress (scoring.jobs).
    lease = models.CharField(max_length=32, blank=True, editable=False)
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["account", "state"], name="score_recompute_state_idx")]
        constraints = [
            # Two recomputes of one account at once would only fight over the same rows.
            models.UniqueConstraint(
                fields=["account"], condition=models.Q(state="running"), name="score_recompute_one_running"
            ),
        ]

    def __str__(self) -> str:
        return f"recompute #{self.pk} of {self.account_id} ({self.state})"

    @property
    def is_active(self) -> bool:
        return self.state in self.ACTIVE_STATES

    @property
    def is_stale(self) -> bool:
        """Running, but silent for so long that its worker must have stopped."""
        return (
            self.state == self.State.RUNNING
            and self.heartbeat_at is not None
            and self.heartbeat_at < timezone.now() - self.STALE_AFTER
        )

    @property
    def percent(self) -> int:
        if self.state == self.State.DONE:
            return 100
        return int(self.done * 100 / self.total) if self.total else 0


class ScoringAccount(Account):
    """An account seen from the scoring admin: its rules and bands inline, "recompute now"."""

    class Meta:
        proxy = True
        verbose_name = "account scoring"
        verbose_name_plural = "account scoring"


from scoring.models_triggers import TriggerFiring, TriggerRule  # noqa: E402,F401
