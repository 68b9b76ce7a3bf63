"""Workflow trigger rules and their firings (see scoring.triggers)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from crmsync.models import Account, Event, Prospect
from scoring.triggers.action_types import describe_action, validate_actions
from scoring.triggers.conditions import ConditionType, describe_condition, validate_condition


class TriggerRule(models.Model):
    """When ``condition_type`` (with ``condition_options``) holds for a prospect, run ``actions`` in order."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="trigger_rules")
    name = models.CharField(max_length=100)
    enabled = models.BooleanField(default=True)
    condition_type = models.CharField(max_length=30, choices=ConditionType.choices)
    condition_options = models.JSONField(
        default=dict, blank=True, help_text="See scoring.triggers.conditions for each condition type."
    )
    once_per_prospect = models.BooleanField(
        default=False,
        help_text="Fire at most once per prospect, however often the condition holds again.",
    )
    actions = models.JSONField(default=list, help_text="Ordered; see scoring.triggers.action_types.")
    # Round robin assignment: the position in the owner list the next firing takes. Advanced
    # with an UPDATE … SET n = n + k inside the firing's transaction, so concurrent firings
    # never take the same turn (scoring.triggers.firing).
    round_robin_next = models.PositiveBigIntegerField(default=0, editable=False)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["account", "name", "id"]
        indexes = [models.Index(fields=["account", "condition_type"], name="trigger_rule_type_idx")]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        errors: dict[str, Any] = {}
        try:
            self.condition_options = validate_condition(self.condition_type, self.condition_options)
        except ValidationError as exc:
            # One JSON field here; the owner form shows each option as its own field instead.
            errors["condition_options"] = [f"{key}: {' '.join(texts)}" for key, texts in exc.message_dict.items()]
        try:
            self.actions = validate_actions(self.actions)
        except ValidationError as exc:
            errors["actions"] = exc.messages
        if errors:
            raise ValidationError(errors)

    def describe_condition(self) -> str:
        return describe_condition(self.condition_type, self.condition_options or {})

    def describe_actions(self) -> list[str]:
        return [describe_action(action) for action in self.actions or []]


class TriggerFiring(models.Model):
    """One firing of a rule for a prospect. ``key`` is unique and inserted with ON CONFLICT DO
    NOTHING, so a retried ingest, a replayed event or a second scheduler can never fire twice."""

    rule = models.ForeignKey(TriggerRule, on_delete=models.CASCADE, related_name="firings")
    # Copied from the rule, so the log of an account never needs a join.
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="trigger_firings")
    prospect = models.ForeignKey(Prospect, on_delete=models.CASCADE, related_name="trigger_firings")
    event = models.ForeignKey(Event, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    key = models.CharField(max_length=200, unique=True)
    condition_type = models.CharField(max_length=30, choices=ConditionType.choices)
    fired_at = models.DateTimeField(default=timezone.now)
    # What each action did, in the rule's order: [{"type": …, "status": …, "detail": …}].
    actions = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-fired_at", "-id"]
        indexes = [
            models.Index(fields=["account", "-fired_at"], name="trigger_firing_recent_idx"),
            models.Index(fields=["rule", "-fired_at"], name="trigger_firing_rule_idx"),
            models.Index(fields=["prospect", "rule"], name="trigger_firing_prospect_idx"),
        ]

    def __str__(self) -> str:
        # No e-mail address: firings are listed in the admin and referenced from the audit log.
        return f"{self.rule} for prospect #{self.prospect_id}"
