"""The owner's "Conflicts" page: fields that differed on both sides when a CRM change came in.

``templates/inbound/_conflicts.html`` renders the rows and can be included by the sync dashboard
with ``conflicts`` (rows from :func:`recent_conflicts`) in its context.
"""

from __future__ import annotations

from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from crmsync.models import Account
from crmsync.tenancy import account_view
from integrations.models import SyncConflict

PAGE_SIZE = 50


def recent_conflicts(account: Account, limit: int = PAGE_SIZE, before_id: int | None = None) -> QuerySet[SyncConflict]:
    """The account's conflicts, newest first (keyset-paged by id, so any page costs what the first does)."""
    rows = SyncConflict.objects.filter(connection__account=account).select_related("connection", "prospect")
    if before_id is not None:
        rows = rows.filter(pk__lt=before_id)
    return rows.order_by("-id")[:limit]


@require_GET
@account_view()
def conflicts(request: HttpRequest) -> HttpResponse:
    try:
        before = int(request.GET["before"]) if request.GET.get("before") else None
    except ValueError:
        before = None
    rows = list(recent_conflicts(request.account, PAGE_SIZE + 1, before))
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    return render(
        request,
        "inbound/conflicts.html",
        {"conflicts": rows, "next_before": rows[-1].pk if more and rows else None},
    )
