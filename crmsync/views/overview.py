"""The account overview, and the panels other apps add to it.

An app shows its own status on the overview (a CRM connection's health, failed records…) by
registering a panel from its ``AppConfig.ready()``::

    from crmsync.views.overview import register_panel

    register_panel("integrations/_overview_panel.html", order=10, context=connection_summary)

``context(request)`` runs inside the account scope (``request.account``, ``request.membership``
are set) and returns the variables the panel's template needs; the template is included with
them plus the page's own context. Panels are shown in ``order`` to members of at least
``min_role``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from crmsync.models import ApiKey, Event, Prospect, Role
from crmsync.tenancy import account_view


@dataclass(frozen=True)
class OverviewPanel:
    template_name: str
    order: int
    context: Callable[[HttpRequest], dict] | None = None
    min_role: str = Role.VIEWER


_PANELS: dict[str, OverviewPanel] = {}


def register_panel(
    template_name: str,
    order: int,
    context: Callable[[HttpRequest], dict] | None = None,
    min_role: str = Role.VIEWER,
) -> None:
    """Add (or replace, keyed by template name) a panel on the account overview."""
    Role(min_role)
    _PANELS[template_name] = OverviewPanel(template_name, order, context, min_role)


def _panels(request: HttpRequest) -> list[dict]:
    shown = []
    for panel in sorted(_PANELS.values(), key=lambda item: item.order):
        if request.membership.has_role(panel.min_role):
            data = panel.context(request) if panel.context else {}
            shown.append({"template_name": panel.template_name, "data": data})
    return shown


@account_view()
def overview(request: HttpRequest) -> HttpResponse:
    account = request.account
    now = timezone.now()
    day_ago, week_ago = now - timedelta(days=1), now - timedelta(days=7)
    # One query per table, each served by the (account, time) indexes.
    prospects = Prospect.objects.filter(account=account, last_event_at__gte=week_ago).aggregate(
        day=Count("pk", filter=Q(last_event_at__gte=day_ago)), week=Count("pk")
    )
    events = Event.objects.filter(account=account, received_at__gte=week_ago).aggregate(
        day=Count("pk", filter=Q(received_at__gte=day_ago)), week=Count("pk")
    )
    return render(
        request,
        "crmsync/overview.html",
        {
            "prospects": prospects,
            "events": events,
            "active_api_keys": ApiKey.objects.active().filter(account=account).count(),
            "panels": _panels(request),
        },
    )
