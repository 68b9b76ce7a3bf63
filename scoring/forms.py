"""Forms for scoring rules and grade bands, shared by the owner pages and the ops admin."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from crmsync.models import EventType
from scoring.conditions import (
    ALL_CONDITION_FIELDS,
    CONDITION_FIELDS,
    MAX_KEYWORD_LENGTH,
    MAX_PATTERN_LENGTH,
    condition_keys,
    validate_conditions,
)
from scoring.models import GradeBand, ScoringRule


def _condition_help(key: str) -> str:
    spec = ALL_CONDITION_FIELDS[key]
    types = [EventType(event_type).label for event_type, fields in CONDITION_FIELDS.items() if spec in fields]
    return f"{' and '.join(types)} rules only. {spec.help_text}"


def _condition_field(key: str) -> forms.Field:
    spec = ALL_CONDITION_FIELDS[key]
    common = {"label": spec.label, "required": False, "help_text": _condition_help(key)}
    if spec.kind == "text":
        return forms.CharField(max_length=MAX_PATTERN_LENGTH if key == "pattern" else MAX_KEYWORD_LENGTH, **common)
    field_class = forms.IntegerField if spec.kind == "integer" else forms.FloatField
    return field_class(min_value=spec.min_value, max_value=spec.max_value, **common)


class ScoringRuleForm(forms.ModelForm):
    """A rule with its conditions as separate fields (the model keeps them as one JSON object).

    A condition filled in for an event type that has no such condition is an error on that
    field, never silently dropped.
    """

    min_seconds = _condition_field("min_seconds")
    keyword = _condition_field("keyword")
    pattern = _condition_field("pattern")
    min_value = _condition_field("min_value")
    max_score = _condition_field("max_score")

    class Meta:
        model = ScoringRule
        fields = ["name", "event_type", "points", "cap", "decay_half_life_days", "enabled"]
        labels = {"decay_half_life_days": "Half-life (days)", "cap": "Cap per prospect"}
        help_texts = {
            "points": "Given for every event that counts (once, for a total-time threshold). Negative points "
            "lower the score.",
            "decay_half_life_days": "Optional: each event's points halve every this many days, so old "
            "engagement counts for less.",
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for key, value in (self.instance.conditions or {}).items():
            if key in self.fields:
                self.initial.setdefault(key, value)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        event_type = cleaned.get("event_type")
        # The model's own check must not trip over conditions of the type the rule had before.
        self.instance.conditions = {}
        if not event_type:
            return cleaned
        allowed = condition_keys(event_type)
        given: dict[str, Any] = {}
        for key in ALL_CONDITION_FIELDS:
            value = cleaned.get(key)
            if value in (None, ""):
                continue
            if key not in allowed:
                self.add_error(key, f"{EventType(event_type).label} rules have no such condition; leave this empty.")
            else:
                given[key] = value
        try:
            conditions = validate_conditions(event_type, given)
        except ValidationError as exc:
            for key, messages in exc.message_dict.items():
                self.add_error(key if key in self.fields else None, messages)
        else:
            if not self.errors:
                self.instance.conditions = conditions
        return cleaned


class AdminScoringRuleForm(ScoringRuleForm):
    class Meta(ScoringRuleForm.Meta):
        fields = ["account", "name", "event_type", "points", "cap", "decay_half_life_days", "enabled", "order"]


def check_bands(bands: list[tuple[str, int]]) -> list[str]:
    """What is wrong with a set of bands as a whole: none, a repeated name, a repeated minimum."""
    problems = []
    if not bands:
        problems.append("Keep at least one grade band.")
    names = [name for name, _minimum in bands]
    minimums = [minimum for _name, minimum in bands]
    for name in sorted({name for name in names if names.count(name) > 1}):
        problems.append(f"The name “{name}” is used by more than one band.")
    for minimum in sorted({minimum for minimum in minimums if minimums.count(minimum) > 1}):
        problems.append(f"More than one band starts at {minimum}.")
    return problems


class GradeBandForm(forms.Form):
    name = forms.SlugField(
        label="Grade", max_length=40, help_text="Letters, digits, - and _, e.g. hot. Sent to the CRM as the lead grade."
    )
    min_score = forms.IntegerField(label="From score", help_text="Prospects with at least this score get this grade.")


class BaseGradeBandFormSet(forms.BaseFormSet):
    def clean(self) -> None:
        if any(self.errors):
            return
        problems = check_bands(self.bands())
        if problems:
            raise ValidationError(problems)

    def bands(self) -> list[tuple[str, int]]:
        """The bands to keep, as (name, min_score), lowest first."""
        kept = []
        for form in self.forms:
            if not form.has_changed() and form.empty_permitted:
                continue  # the blank extra row
            if self.can_delete and self._should_delete_form(form):
                continue
            kept.append((form.cleaned_data["name"], form.cleaned_data["min_score"]))
        return sorted(kept, key=lambda band: band[1])


GradeBandFormSet = forms.formset_factory(
    GradeBandForm, formset=BaseGradeBandFormSet, extra=1, can_delete=True, max_num=10, validate_max=True
)


def band_formset_initial(account_id: int) -> list[dict[str, Any]]:
    return list(GradeBand.objects.filter(account_id=account_id).order_by("min_score").values("name", "min_score"))


class ProspectLookupForm(forms.Form):
    email = forms.EmailField(label="Prospect e-mail address")
