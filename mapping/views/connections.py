"""Step 1: choose the connection whose mapping to configure."""

from __future__ import annotations

from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from crmsync.tenancy import account_queryset, account_view
from integrations.models import Connection
from mapping.views.common import page_context


@account_view()
def home(request: HttpRequest) -> HttpResponse:
    connections = (
        account_queryset(Connection.objects.live(), request)
        .annotate(row_count=Count("field_mappings"))
        .order_by("connected_at")
    )
    return render(request, "mapping/home.html", page_context(request, "home", None, connections=connections))
