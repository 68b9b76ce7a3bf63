"""The owner's sync status page: per connection its health, queue, volume, reliability and runs;
"Sync now"; and the progress fragment a running sync's bar is refreshed from."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from crmsync.models import Account, Prospect
from crmsync.models.capsules import normalise_email
from crmsync.tenancy import account_view, get_for_account
from integrations import dashboard, sync_actions
from integrations.charts import BarChart, Series, render_svg
from integrations.dashboard import ConnectionDashboard, Volume, describe_duration
from integrations.models import Connection, RunMode, RunState, SyncRun

# "Sync now" for a list of people takes at most this many addresses per request.
MAX_SYNC_EMAILS = 1_000
# After "Sync now", the page waits this long for the run to appear before it stops looking.
SYNC_REQUEST_WAIT = dt.timedelta(minutes=2)
SESSION_SYNC_REQUESTS = "sync_now_requested"


# -- "Sync now" -------------------------------------------------------------------------------------


class SyncNowForm(forms.Form):
    scope = forms.ChoiceField(
        label="What to sync",
        choices=[("all", "All records"), ("emails", "Only the people with these e-mail addresses")],
        initial="all",
        widget=forms.RadioSelect,
    )
    emails = forms.CharField(
        label="E-mail addresses",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "autocomplete": "off", "spellcheck": "false"}),
        help_text=f"One per line, or separated by commas. At most {MAX_SYNC_EMAILS:,}.",
    )

    def __init__(self, *args, account: Account, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.account = account

    def clean(self) -> dict:
        data = super().clean()
        data["prospect_ids"] = None
        if data.get("scope") != "emails":
            return data
        addresses = [normalise_email(part) for part in re.split(r"[\s,;]+", data.get("emails", "")) if part.strip()]
        addresses = list(dict.fromkeys(addresses))  # keep the order people typed, once each
        if not addresses:
            self.add_error("emails", "Enter at least one e-mail address, or choose all records.")
            return data
        if len(addresses) > MAX_SYNC_EMAILS:
            self.add_error(
                "emails", f"Enter at most {MAX_SYNC_EMAILS:,} addresses at a time ({len(addresses):,} given)."
            )
            return data
        invalid = [address for address in addresses if not _is_email(address)]
        if invalid:
            self.add_error("emails", f"Not e-mail addresses: {', '.join(invalid[:10])}.")
            return data
        found = dict(
            Prospect.objects.filter(account=self.account, email__in=addresses, erased=False).values_list("email", "pk")
        )
        unknown = [address for address in addresses if address not in found]
        if unknown:
            self.add_error(
                "emails",
                f"No prospect of {self.account.name} has these addresses: {', '.join(unknown[:10])}"
                f"{' and more' if len(unknown) > 10 else ''}. Nothing was started.",
            )
            return data
        data["prospect_ids"] = [found[address] for address in addresses]
        return data


def _is_email(value: str) -> bool:
    try:
        validate_email(value)
    except ValidationError:
        return False
    return True


# -- what the page shows about one connection -------------------------------------------------------


@dataclass(frozen=True)
class Progress:
    """A run's progress for the bar: processed can pass total (activities are counted as they go),
    so the bar stops at full."""

    run: SyncRun

    @property
    def value(self) -> int:
        return min(self.run.processed, self.run.total)

    @property
    def percent(self) -> int:
        return int(100 * self.value / self.run.total) if self.run.total else 0

    @property
    def running(self) -> bool:
        return self.run.state == RunState.RUNNING


@dataclass
class Panel:
    dash: ConnectionDashboard
    charts: list[tuple[BarChart, str]]
    sync_form: SyncNowForm | None
    progress: Progress | None
    waiting_for_run: bool
    sync_refusal: str | None

    @property
    def connection(self) -> Connection:
        return self.dash.connection

    @property
    def target_text(self) -> str:
        return describe_duration(self.dash.target)


def volume_chart(connection: Connection, vol: Volume, unit: str) -> BarChart:
    if unit == "hour":
        labels = tuple(f"{start:%H}:00" for start in vol.buckets)
        title = f"{connection.spec.label}: records synced and failed per hour, last 24 hours (UTC)"
        every = 3
    else:
        labels = tuple(f"{start.day} {start:%b}" for start in vol.buckets)
        title = f"{connection.spec.label}: records synced and failed per day, last 30 days (UTC)"
        every = 5
    return BarChart(
        chart_id=f"chart-{connection.pk}-{unit}",
        title=title,
        labels=labels,
        series=(Series("Synced", vol.synced, "bar--synced"), Series("Failed", vol.failed, "bar--failed")),
        label_every=every,
    )


def _requested_at(request: HttpRequest, connection_id: int) -> dt.datetime | None:
    value = request.session.get(SESSION_SYNC_REQUESTS, {}).get(str(connection_id))
    if not value:
        return None
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return when if timezone.now() - when < SYNC_REQUEST_WAIT else None


def _run_to_show(request: HttpRequest, dash: ConnectionDashboard) -> tuple[SyncRun | None, bool]:
    """The run whose bar the page shows, and whether it still waits for a run "Sync now" asked for."""
    if dash.running is not None:
        return dash.running, False
    requested = _requested_at(request, dash.connection.pk)
    if requested is None:
        return None, False
    asked_for = next((r for r in dash.runs if r.mode == RunMode.MANUAL and r.started_at >= requested), None)
    return asked_for, asked_for is None


def _panels(request: HttpRequest, sync_forms: dict[int, SyncNowForm]) -> list[Panel]:
    connections = list(Connection.objects.filter(account=request.account).live().order_by("provider", "pk"))
    can_act = request.membership.has_role("admin")
    panels = []
    for dash in dashboard.build(connections):
        connection = dash.connection
        run, waiting = _run_to_show(request, dash)
        form = None
        if can_act:
            form = sync_forms.get(connection.pk) or SyncNowForm(account=request.account, prefix=f"sync-{connection.pk}")
        panels.append(
            Panel(
                dash=dash,
                charts=[
                    (chart, render_svg(chart))
                    for chart in (
                        volume_chart(connection, dash.hourly, "hour"),
                        volume_chart(connection, dash.daily, "day"),
                    )
                ],
                sync_form=form,
                progress=Progress(run) if run is not None else None,
                waiting_for_run=waiting,
                sync_refusal=sync_actions.sync_now_refusal(connection),
            )
        )
    return panels


def _page(request: HttpRequest, sync_forms: dict[int, SyncNowForm] | None = None, status: int = 200) -> HttpResponse:
    context = {
        "panels": _panels(request, sync_forms or {}),
        "requirement": f"{dashboard.RELIABILITY_REQUIREMENT * 100:.1f}%",
        "targets": {
            "realtime": describe_duration(dashboard.REALTIME_TARGET),
            "hourly": describe_duration(dashboard.target_for("batch", "hourly")),
            "daily": describe_duration(dashboard.target_for("batch", "daily")),
            "manual": describe_duration(dashboard.MANUAL_TARGET),
        },
    }
    return render(request, "integrations/sync_status.html", context, status=status)


# -- the views -------------------------------------------------------------------------------------


@require_GET
@account_view()
def sync_status(request: HttpRequest) -> HttpResponse:
    return _page(request)


@require_POST
@account_view(min_role="admin")
def sync_now(request: HttpRequest, connection_id: int) -> HttpResponse:
    connection = get_for_account(Connection.objects.live(), request, pk=connection_id)
    form = SyncNowForm(request.POST, account=request.account, prefix=f"sync-{connection.pk}")
    if not form.is_valid():
        return _page(request, {connection.pk: form}, status=400)
    refusal = sync_actions.sync_now_refusal(connection)
    if refusal:
        form.add_error(None, refusal)
        return _page(request, {connection.pk: form}, status=409)
    prospect_ids = form.cleaned_data["prospect_ids"]
    sync_actions.sync_now(connection, prospect_ids, request=request, via="owner page")
    requests = request.session.get(SESSION_SYNC_REQUESTS, {})
    requests[str(connection.pk)] = timezone.now().isoformat()
    request.session[SESSION_SYNC_REQUESTS] = requests
    what = (
        "all records"
        if prospect_ids is None
        else f"{len(prospect_ids):,} record{'s' if len(prospect_ids) != 1 else ''}"
    )
    messages.success(request, f"Sync started for {what} to {connection.spec.label}. Its progress shows below.")
    return redirect("integrations:sync_status", account_slug=request.account.slug)


@never_cache
@require_GET
@account_view()
def run_progress(request: HttpRequest, run_id: int) -> HttpResponse:
    """The progress fragment of one run: static/js/poll.js swaps it into the page every second."""
    run = get_for_account(SyncRun.objects.all(), request, account_path="connection__account", pk=run_id)
    return render(request, "integrations/sync_progress.html", {"progress": Progress(run), "waiting": False})
