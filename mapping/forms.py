"""The owner pages' forms: the mapping rows formset, the sample picker, template application."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from django import forms
from django.forms import formset_factory

from integrations.connector import FieldSchema
from mapping import sources, transforms
from mapping.models import CONFLICT_POLICY_CHOICES, DIRECTION_CHOICES, UPDATE_POLICY_CHOICES
from mapping.presets import industry_templates
from mapping.problems import Problem
from mapping.rows import SOURCE_CONSTANT, SOURCE_FIELD, SOURCE_TEMPLATE, MappingRow

CONSTANT_CHOICE, TEMPLATE_CHOICE = "__constant__", "__template__"

# Which form field shows a problem about which part of a row.
PROBLEM_COLUMNS = {
    "source": "source",
    "source_kind": "source",
    "target_field": "target_field",
    "transform": "transform",
    "default": "default",
    "update_policy": "update_policy",
    "direction": "direction",
    "conflict_policy": "conflict_policy",
}


def source_choices(catalogue: Sequence[sources.SourceField], extra_keys: Sequence[str] = ()) -> list:
    """The source select's option groups: fixed value and template first, then each catalogue
    group; keys saved earlier but no longer listed stay selectable (and are flagged)."""
    grouped: dict[str, list[tuple[str, str]]] = {}
    for source in catalogue:
        grouped.setdefault(sources.group_label(source.group), []).append((source.key, f"{source.label} ({source.key})"))
    listed = {source.key for source in catalogue}
    unknown = [(key, f"{key} (not available)") for key in dict.fromkeys(extra_keys) if key and key not in listed]
    choices: list = [
        ("", "— choose —"),
        (
            "Fixed value or template",
            [(CONSTANT_CHOICE, "Fixed value (type it in Value)"), (TEMPLATE_CHOICE, "Template (type it in Value)")],
        ),
    ]
    choices += [(label, items) for label, items in grouped.items()]
    if unknown:
        choices.append(("Not available", unknown))
    return choices


def target_choices(schema: Mapping[str, FieldSchema], extra_names: Sequence[str] = ()) -> list[tuple[str, str]]:
    def label(field: FieldSchema) -> str:
        marks = [
            mark
            for flag, mark in ((field.required, "required"), (field.read_only, "read-only"), (field.custom, "custom"))
            if flag
        ]
        return f"{field.label} ({field.name})" + (f" — {', '.join(marks)}" if marks else "")

    choices = [("", "— choose —")]
    choices += [(field.name, label(field)) for field in sorted(schema.values(), key=lambda f: f.label.lower())]
    choices += [
        (name, f"{name} (not in the CRM)") for name in dict.fromkeys(extra_names) if name and name not in schema
    ]
    return choices


class MappingRowForm(forms.Form):
    enabled = forms.BooleanField(required=False, initial=True, label="Row switched on")
    source = forms.ChoiceField(label="Capsule value", required=False)
    value = forms.CharField(label="Value", required=False, max_length=1000)
    target_field = forms.ChoiceField(label="CRM field", required=False)
    transform = forms.ChoiceField(label="Transform", required=False)
    transform_options = forms.CharField(
        label="Transform options (JSON)",
        required=False,
        max_length=4000,
        widget=forms.TextInput(attrs={"spellcheck": "false"}),
    )
    default = forms.CharField(label="Default when empty", required=False, max_length=1000)
    update_policy = forms.ChoiceField(label="Update", choices=UPDATE_POLICY_CHOICES, required=False)
    direction = forms.ChoiceField(label="Direction", choices=DIRECTION_CHOICES, required=False)
    conflict_policy = forms.ChoiceField(label="If both changed", choices=CONFLICT_POLICY_CHOICES, required=False)
    target_object = forms.CharField(widget=forms.HiddenInput, required=False)

    def __init__(self, *args: Any, source_options: list, target_options: list, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["source"].choices = source_options
        self.fields["target_field"].choices = target_options
        self.fields["transform"].choices = transforms.choices()
        self.warnings: list[str] = []
        self.saved_problems: list[str] = []  # errors of the saved row, shown when the page is opened

    def clean_transform_options(self) -> dict[str, Any]:
        text = (self.cleaned_data.get("transform_options") or "").strip()
        if not text:
            return {}
        try:
            options = json.loads(text)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(f"not valid JSON: {exc.msg}") from None
        if not isinstance(options, dict):
            raise forms.ValidationError('options are a JSON object, e.g. {"format": "epoch_ms"}')
        return options

    def is_blank(self) -> bool:
        data = self.cleaned_data
        return not data.get("source") and not data.get("target_field") and not data.get("value")

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if self.is_blank() or data.get("DELETE"):
            return data
        source = data.get("source")
        if not source:
            self.add_error("source", "choose where the value comes from")
        elif source in (CONSTANT_CHOICE, TEMPLATE_CHOICE) and not (data.get("value") or "").strip():
            self.add_error("value", "type the fixed value or the template")
        if not data.get("target_field"):
            self.add_error("target_field", "choose the CRM field")
        return data

    def to_row(self, default_object: str) -> MappingRow:
        data = self.cleaned_data
        source = data["source"]
        kind = {CONSTANT_CHOICE: SOURCE_CONSTANT, TEMPLATE_CHOICE: SOURCE_TEMPLATE}.get(source, SOURCE_FIELD)
        value = (data.get("value") or "").strip()
        return MappingRow(
            target_field=data["target_field"],
            source_kind=kind,
            source_key=source if kind == SOURCE_FIELD else "",
            constant=value if kind == SOURCE_CONSTANT else "",
            template=value if kind == SOURCE_TEMPLATE else "",
            target_object=data.get("target_object") or default_object,
            transform=data.get("transform") or "",
            transform_options=data.get("transform_options") or {},
            default=data.get("default") or "",
            update_policy=data.get("update_policy") or "overwrite",
            direction=data.get("direction") or "to_crm",
            conflict_policy=data.get("conflict_policy") or "crm_wins",
            enabled=bool(data.get("enabled")),
        )

    def show_problem(self, problem: Problem) -> None:
        message = problem.message
        if not problem.is_error:
            self.warnings.append(message)
            return
        field = PROBLEM_COLUMNS.get(problem.column)
        if field == "source" and self.cleaned_data.get("source") in (CONSTANT_CHOICE, TEMPLATE_CHOICE):
            field = "value"  # a fixed value's or template's problem is about the text typed in
        self.add_error(field, message)


def initial_for(row: MappingRow) -> dict[str, Any]:
    source = {SOURCE_CONSTANT: CONSTANT_CHOICE, SOURCE_TEMPLATE: TEMPLATE_CHOICE}.get(row.source_kind, row.source_key)
    return {
        "enabled": row.enabled,
        "source": source,
        "value": row.constant if row.source_kind == SOURCE_CONSTANT else row.template,
        "target_field": row.target_field,
        "transform": row.transform,
        "transform_options": json.dumps(dict(row.transform_options)) if row.transform_options else "",
        "default": row.default,
        "update_policy": row.update_policy,
        "direction": row.direction,
        "conflict_policy": row.conflict_policy,
        "target_object": row.target_object,
    }


class BaseRowFormSet(forms.BaseFormSet):
    def __init__(self, *args: Any, source_options: list, target_options: list, **kwargs: Any) -> None:
        self.source_options, self.target_options = source_options, target_options
        super().__init__(*args, **kwargs)

    def get_form_kwargs(self, index: int | None) -> dict[str, Any]:
        return {"source_options": self.source_options, "target_options": self.target_options}

    @property
    def empty_form(self):
        form = self.form(
            auto_id=self.auto_id,
            prefix=self.add_prefix("__prefix__"),
            empty_permitted=True,
            use_required_attribute=False,
            source_options=self.source_options,
            target_options=self.target_options,
            renderer=self.renderer,
        )
        self.add_fields(form, None)
        return form

    def rows(self, default_object: str) -> list[tuple[MappingRowForm, MappingRow]]:
        """The kept rows, each with its form (blank and removed forms left out)."""
        kept = []
        for form in self.forms:
            if not hasattr(form, "cleaned_data") or form.cleaned_data.get("DELETE") or form.is_blank():
                continue
            kept.append((form, form.to_row(default_object)))
        return kept


RowFormSet = formset_factory(
    MappingRowForm, formset=BaseRowFormSet, extra=2, can_delete=True, max_num=300, validate_max=True
)


class SampleForm(forms.Form):
    email = forms.EmailField(
        label="A prospect's e-mail", required=False, help_text="Leave empty to use a generated sample prospect."
    )


class ApplyTemplateForm(forms.Form):
    template = forms.ChoiceField(label="Template")
    mode = forms.ChoiceField(
        label="How",
        choices=[
            ("replace", "Replace the mapping (standard mapping + the template's rows)"),
            ("merge", "Merge into the current mapping (the template's rows replace or join)"),
        ],
        initial="replace",
        widget=forms.RadioSelect,
    )
    confirm = forms.BooleanField(label="Yes, change the mapping", required=True)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["template"].choices = [(t.name, t.label) for t in industry_templates().values()]
