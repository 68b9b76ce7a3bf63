"""A connection's sync settings: mode and schedule, direction, record type, when a lead is created.

Anyone in the account may read them; admins and owners change them. Every save writes an audit
entry with each changed setting's before and after; switching to real time kicks the connection
so the work that waited for a batch or a button goes at once.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from crmsync import audit
from crmsync.tenancy import account_view, get_for_account, require_role
from integrations.dashboard import BATCH_GRACE, MANUAL_TARGET, REALTIME_TARGET
from integrations.models import Connection, LeadCreation, RecordType, SyncMode
from integrations.sync import jobs

SETTINGS_FIELDS = ("sync_mode", "batch_schedule", "direction", "record_type", "lead_creation", "score_threshold")
# Lead scores are sums of rule points; a threshold past this is a typo, not a policy.
MAX_SCORE_THRESHOLD = 100_000


class SyncSettingsForm(forms.ModelForm):
    class Meta:
        model = Connection
        fields = SETTINGS_FIELDS
        widgets = {
            "sync_mode": forms.RadioSelect,
            "batch_schedule": forms.RadioSelect,
            "direction": forms.RadioSelect,
            "record_type": forms.RadioSelect,
            "lead_creation": forms.RadioSelect,
        }
        labels = {
            "sync_mode": "Sync mode",
            "batch_schedule": "Batch schedule",
            "direction": "Direction",
            "record_type": "Create people in the CRM as",
            "lead_creation": "When a lead is created",
            "score_threshold": "Score threshold",
        }
        help_texts = {
            "sync_mode": (
                f"Real time: each change reaches the CRM within {REALTIME_TARGET.seconds // 60} minutes, one small "
                "write at a time. Batch: changes collect and go together on the schedule below, through the CRM's "
                "batch endpoints (fewest API calls). Manual: nothing goes until someone presses “Sync now”."
            ),
            "batch_schedule": (
                f"Only for batch mode. Hourly or once a day (UTC midnight); we aim to finish within "
                f"{BATCH_GRACE.seconds // 3600} hour after each run is due."
            ),
            "direction": (
                "Capsule → CRM sends capsule activity to the CRM. CRM → capsule reads changes in the CRM back for "
                "personalisation. Both does both."
            ),
            "record_type": "Records already in the CRM stay what they are; this applies to people created from now on.",
            "lead_creation": (
                "As soon as identified: a person is created in the CRM when the capsule learns their e-mail address. "
                "Over the threshold: only once their lead score reaches the threshold below (and consent is given "
                "where this account requires it). Until then their activity waits, and is added to their timeline "
                "when they are created."
            ),
            "score_threshold": "The lead score a person needs before they are created in the CRM, when the setting "
            "above says so.",
        }

    def __init__(self, *args, read_only: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        record_types = tuple(self.instance.spec.record_types)
        if len(record_types) < 2:
            # The CRM has one kind of person object (HubSpot: contacts): nothing to choose.
            del self.fields["record_type"]
        else:
            self.fields["record_type"].choices = [(v, label) for v, label in RecordType.choices if v in record_types]
        self.fields["score_threshold"].widget.attrs.update(
            {"min": 0, "max": MAX_SCORE_THRESHOLD, "inputmode": "numeric"}
        )
        if read_only:
            for field in self.fields.values():
                field.disabled = True

    def clean_score_threshold(self) -> int:
        value = self.cleaned_data["score_threshold"]
        if value > MAX_SCORE_THRESHOLD:
            raise forms.ValidationError(f"Enter a threshold of at most {MAX_SCORE_THRESHOLD:,}.")
        return value

    def clean(self) -> dict:
        data = super().clean()
        if data.get("lead_creation") == LeadCreation.ON_SCORE and not data.get("score_threshold"):
            self.add_error(
                "score_threshold",
                "Enter a score above 0, or choose to create leads as soon as a prospect is identified.",
            )
        return data


@account_view()
def sync_settings(request: HttpRequest, connection_id: int) -> HttpResponse:
    connection = get_for_account(Connection.objects.live(), request, pk=connection_id)
    can_change = request.membership.has_role("admin")
    if request.method != "POST":
        form = SyncSettingsForm(instance=connection, read_only=not can_change)
        return _render(request, connection, form, can_change)
    require_role(request, "admin")
    before = {name: getattr(connection, name) for name in SETTINGS_FIELDS}
    form = SyncSettingsForm(request.POST, instance=connection)
    if not form.is_valid():
        return _render(request, connection, form, can_change, status=400)
    changed = list(form.changed_data)
    if not changed:
        messages.info(request, "Nothing changed.")
        return redirect("integrations:sync_settings", account_slug=request.account.slug, connection_id=connection.pk)
    with transaction.atomic():
        connection = form.save(commit=False)
        # Only the settings: a worker may have changed the status (e.g. needs re-authentication) meanwhile.
        connection.save(update_fields=[*changed, "updated_at"])
        audit.record(
            "connection.sync_settings_changed",
            request=request,
            obj=connection,
            changes={name: {"before": before[name], "after": getattr(connection, name)} for name in changed},
        )
        went_realtime = "sync_mode" in changed and connection.sync_mode == SyncMode.REALTIME
        if went_realtime:
            connection_pk = connection.pk
            transaction.on_commit(lambda: jobs.kick(connection_pk))
    note = " Waiting records are being sent now." if went_realtime else ""
    messages.success(request, f"Sync settings for {connection.spec.label} saved.{note}")
    return redirect("integrations:sync_settings", account_slug=request.account.slug, connection_id=connection.pk)


def _render(
    request: HttpRequest, connection: Connection, form: SyncSettingsForm, can_change: bool, status: int = 200
) -> HttpResponse:
    return render(
        request,
        "integrations/sync_settings.html",
        {"connection": connection, "form": form, "can_change": can_change, "manual_target": MANUAL_TARGET},
        status=status,
    )
