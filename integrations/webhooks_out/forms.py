"""The owner pages' forms: a new subscription, and the delivery log's filter."""

from __future__ import annotations

from typing import Any

from django import forms

from integrations.models import DeliveryState
from integrations.webhooks_out import catalogue, subscriptions


class SubscriptionForm(forms.Form):
    target_url = forms.CharField(
        label="Receiver URL",
        max_length=2000,
        widget=forms.URLInput(attrs={"placeholder": "https://hooks.zapier.com/hooks/catch/…", "spellcheck": "false"}),
        help_text="Where we POST each event: the webhook URL of your Zap, Make scenario or own service. "
        "It must be https:// or http:// on a public address.",
    )
    all_events = forms.BooleanField(
        label="Every event, including ones added later",
        required=False,
    )
    events = forms.MultipleChoiceField(
        label="Events",
        required=False,
        choices=catalogue.grouped_choices(),
        widget=forms.CheckboxSelectMultiple,
        help_text="Choose the events this URL receives.",
    )

    def clean_target_url(self) -> str:
        try:
            return subscriptions.check_target(self.cleaned_data["target_url"])
        except subscriptions.SubscriptionError as exc:
            raise forms.ValidationError(exc.message) from None

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if not cleaned.get("all_events") and not cleaned.get("events"):
            self.add_error("events", "Choose at least one event, or every event.")
        return cleaned

    def chosen_events(self) -> list[str]:
        return [catalogue.ALL_EVENTS] if self.cleaned_data["all_events"] else list(self.cleaned_data["events"])


class DeliveryFilterForm(forms.Form):
    state = forms.ChoiceField(label="Status", required=False, choices=[("", "Any status"), *DeliveryState.choices])
