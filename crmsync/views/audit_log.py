"""The account's audit log, newest first (admins and owners)."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from crmsync.models import AuditEntry, Role
from crmsync.tenancy import account_queryset, account_view

PAGE_SIZE = 50


@account_view(min_role=Role.ADMIN)
def audit_log(request: HttpRequest) -> HttpResponse:
    # Ordered by the (account, -created_at) index; the id breaks ties so pages never overlap.
    entries = account_queryset(AuditEntry, request).order_by("-created_at", "-id")
    page = Paginator(entries, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "crmsync/audit_log.html", {"page": page})
