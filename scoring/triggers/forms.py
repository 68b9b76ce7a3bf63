"""The owner forms of workflow triggers: a rule with its condition's options as fields, and its
actions as a formset (one row per action, in order).

Each condition type's options are fields named ``<condition type>__<option>``, grouped per type
on the page; only the chosen type's group is read, so the page works without JavaScript (which
merely hides the other groups). Action rows share fields across types (a task and an e-mail both
have a subject); a row reads only the fields of its type. Every value is checked by the same
registries the model uses (``conditions``, ``action_types``), and errors show beside their field.
"""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from scoring.models import GradeBand
from scoring.models_triggers import TriggerRule
from scoring.triggers.action_types import (
    ACTIONS,
    MAX_ACTIONS,
    ActionType,
    repeated_action_errors,
    validate_action,
)
from scoring.triggers.conditions import CONDITIONS, ConditionSpec, ConditionType, validate_condition
from scoring.triggers.options import MAX_CRM_ID_LENGTH, MAX_PATTERN_LENGTH, OptionField, is_empty


def option_field_name(condition_type: str, key: str) -> str:
    return f"{condition_type}__{key}"


def _form_field(option: OptionField, grade_choices: list[tuple[str, str]]) -> forms.Field:
    common: dict[str, Any] = {"label": option.label, "required": False, "help_text": option.help_text}
    if option.kind == "integer":
        return forms.IntegerField(min_value=option.min_value, max_value=option.max_value, **common)
    if option.kind == "number":
        return forms.FloatField(min_value=option.min_value, max_value=option.max_value, **common)
    if option.kind == "bool":
        return forms.BooleanField(**common)
    if option.kind == "slug":
        return forms.ChoiceField(choices=[("", "—"), *grade_choices], **common)
    if option.kind == "template" and option.max_length > 300:
        return forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), max_length=option.max_length, **common)
    limit = {"pattern": MAX_PATTERN_LENGTH, "crm_id": MAX_CRM_ID_LENGTH}.get(option.kind, option.max_length)
    return forms.CharField(max_length=limit, strip=False, **common)


class TriggerRuleForm(forms.Form):
    """Name, switches and the condition of a rule; ``apply`` copies them onto the rule.

    A plain form rather than a ModelForm: the model checks its JSON fields as a whole, while this
    form reports each option beside its own field (and the actions come from the formset).
    """

    name = forms.CharField(max_length=100, help_text="Shown in the firing log, in e-mails and in webhooks.")
    enabled = forms.BooleanField(required=False, initial=True)
    condition_type = forms.ChoiceField(label="When", choices=ConditionType.choices)
    once_per_prospect = forms.BooleanField(
        label="At most once per prospect",
        required=False,
        help_text="Otherwise the rule fires for every event that meets the condition.",
    )

    def __init__(self, data: Any = None, *, rule: TriggerRule, account_id: int) -> None:
        initial = {
            "name": rule.name,
            "enabled": rule.enabled,
            "condition_type": rule.condition_type,
            "once_per_prospect": rule.once_per_prospect,
        }
        super().__init__(data, initial=initial if rule.pk else {"enabled": True})
        self.rule = rule
        self.condition_options: dict[str, Any] = {}
        grades = list(
            GradeBand.objects.filter(account_id=account_id).order_by("min_score").values_list("name", flat=True)
        )
        stored = rule.condition_options or {}
        if rule.condition_type == ConditionType.GRADE_CROSSED and stored.get("to_grade") not in (None, *grades):
            grades.append(stored["to_grade"])  # a band renamed since: keep it visible rather than lose it
        grade_choices = [(name, name) for name in grades]
        for spec in CONDITIONS.values():
            for option in spec.options:
                name = option_field_name(spec.type, option.key)
                self.fields[name] = _form_field(option, grade_choices)
                if spec.type == rule.condition_type and option.key in stored:
                    self.initial[name] = stored[option.key]
                elif option.default is not None:
                    self.initial[name] = option.default

    def condition_groups(self) -> list[tuple[ConditionSpec, list[forms.BoundField]]]:
        """Each condition type with the bound fields of its options, for the template."""
        return [
            (spec, [self[option_field_name(spec.type, option.key)] for option in spec.options])
            for spec in CONDITIONS.values()
        ]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        condition_type = cleaned.get("condition_type")
        if not condition_type:
            return cleaned
        spec = CONDITIONS[condition_type]
        given = {}
        for option in spec.options:
            value = cleaned.get(option_field_name(condition_type, option.key))
            if not is_empty(value):
                given[option.key] = value
        try:
            self.condition_options = validate_condition(condition_type, given)
        except ValidationError as exc:
            for key, messages in exc.message_dict.items():
                name = option_field_name(condition_type, key)
                self.add_error(name if name in self.fields else None, messages)
        return cleaned

    def apply(self) -> TriggerRule:
        """The rule with this form's values (unsaved); call only when the form is valid."""
        for name in ("name", "enabled", "condition_type", "once_per_prospect"):
            setattr(self.rule, name, self.cleaned_data[name])
        self.rule.condition_options = self.condition_options
        return self.rule


# --- actions -------------------------------------------------------------------------------------

# The action fields of the form, each with the action types that use it (the template shows the
# field only for those, when JavaScript runs).
_ACTION_FIELD_USERS: dict[str, list[str]] = {}
for _spec in ACTIONS.values():
    for _option in _spec.options:
        _ACTION_FIELD_USERS.setdefault(_option.key, []).append(_spec.type)


def _labels(types: list[str]) -> str:
    return ", ".join(f"“{ActionType(action_type).label}”" for action_type in types)


class ActionForm(forms.Form):
    type = forms.ChoiceField(label="Action", choices=[("", "—"), *ActionType.choices], required=False)
    subject = forms.CharField(label="Subject", max_length=255, required=False)
    body = forms.CharField(label="Text", max_length=5000, required=False, widget=forms.Textarea(attrs={"rows": 3}))
    due_in_days = forms.IntegerField(label="Due in (days)", min_value=0, max_value=365, required=False)
    owner_id = forms.CharField(label="Task owner (CRM user id)", max_length=100, required=False)
    owner_ids = forms.CharField(label="CRM user ids", max_length=2000, required=False)
    field = forms.CharField(label="CRM field (API name)", max_length=100, required=False)
    value = forms.CharField(label="Value", max_length=500, required=False)
    list_id = forms.CharField(label="List or campaign id", max_length=100, required=False)
    to = forms.CharField(label="E-mail to", max_length=254, required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name, types in _ACTION_FIELD_USERS.items():
            option = next(o for t in types for o in ACTIONS[t].options if o.key == name)
            self.fields[name].help_text = f"Used by {_labels(types)}. {option.help_text}".strip()
        self.action: dict[str, Any] | None = None

    def field_groups(self) -> list[tuple[str, forms.BoundField]]:
        """The option fields with the space-separated action types that use each, for the template."""
        return [(" ".join(types), self[name]) for name, types in _ACTION_FIELD_USERS.items()]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        action_type = cleaned.get("type")
        if not action_type:
            if any(not is_empty(cleaned.get(name)) for name in _ACTION_FIELD_USERS):
                self.add_error("type", "Choose what this action does, or clear the row.")
            return cleaned
        options: dict[str, Any] = {}
        for option in ACTIONS[action_type].options:
            value = cleaned.get(option.key)
            if option.kind == "crm_id_list" and isinstance(value, str):
                value = [item for item in re.split(r"[\s,;]+", value) if item]
            if not is_empty(value):
                options[option.key] = value
        try:
            self.action = validate_action({"type": action_type, **options})
        except ValidationError as exc:
            for key, messages in exc.message_dict.items():
                self.add_error(key if key in self.fields else None, messages)
        return cleaned

    @staticmethod
    def initial_for(action: dict[str, Any]) -> dict[str, Any]:
        initial = dict(action)
        if isinstance(initial.get("owner_ids"), list):
            initial["owner_ids"] = ", ".join(initial["owner_ids"])
        return initial


class BaseActionFormSet(forms.BaseFormSet):
    def add_fields(self, form: forms.Form, index: int | None) -> None:
        super().add_fields(form, index)
        form.fields["ORDER"].label = "Position"
        form.fields["DELETE"].label = "Remove this action"

    def clean(self) -> None:
        if any(self.errors):
            return
        actions = self.actions()
        if not actions:
            raise ValidationError("Add at least one action: what should happen when the rule fires?")
        if len(actions) > MAX_ACTIONS:
            raise ValidationError(f"A rule has at most {MAX_ACTIONS} actions.")
        problems = repeated_action_errors([action["type"] for action in actions])
        if problems:
            raise ValidationError(problems)

    def actions(self) -> list[dict[str, Any]]:
        """The filled-in, not deleted actions, by their position field (then page order)."""
        kept = []
        for index, form in enumerate(self.forms):
            if self.can_delete and self._should_delete_form(form):
                continue
            if getattr(form, "action", None) is None:
                continue  # a blank row
            position = form.cleaned_data.get("ORDER")
            kept.append((position if position is not None else MAX_ACTIONS * 10 + index, index, form.action))
        return [action for _position, _index, action in sorted(kept, key=lambda item: item[:2])]


ActionFormSet = forms.formset_factory(
    ActionForm,
    formset=BaseActionFormSet,
    extra=1,
    can_delete=True,
    can_order=True,
    max_num=MAX_ACTIONS,
    validate_max=True,
)


def action_formset(data: Any, rule: TriggerRule) -> BaseActionFormSet:
    formset = ActionFormSet(
        data, prefix="actions", initial=[ActionForm.initial_for(action) for action in rule.actions or []]
    )
    # Blank rows to fill in without JavaScript (which adds more on demand): two for a new rule.
    formset.extra = 1 if rule.actions else 2
    return formset


class AdminTriggerRuleForm(forms.ModelForm):
    """The ops admin edits options and actions as JSON; the model's ``clean`` checks both."""

    class Meta:
        model = TriggerRule
        fields = ["account", "name", "enabled", "condition_type", "condition_options", "once_per_prospect", "actions"]
