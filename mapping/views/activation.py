"""Step 6: activate sync — refused while the mapping has errors."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from crmsync.models import Role
from crmsync.tenancy import account_view, require_role
from mapping.service import activate, deactivate, problems_for
from mapping.views.common import connection_for, page_context


@require_http_methods(["GET", "POST"])
@account_view()
def activation(request: HttpRequest, connection_id: int) -> HttpResponse:
    connection = connection_for(request, connection_id)
    if request.method == "POST":
        require_role(request, Role.ADMIN)
        if request.POST.get("action") == "deactivate":
            deactivate(connection, request=request)
            messages.success(request, "Sync is switched off for this connection.")
            return redirect("mapping:activate", account_slug=request.account.slug, connection_id=connection.pk)
        refused = activate(connection, request=request)
        if not refused:
            messages.success(request, f"Sync with {connection.spec.label} is active.")
            return redirect("mapping:activate", account_slug=request.account.slug, connection_id=connection.pk)
        messages.error(request, "Not activated: the mapping has errors. Fix them on the “Map fields” step.")
        return render(
            request,
            "mapping/activate.html",
            page_context(request, "activate", connection, problems=problems_for(connection)),
            status=409,
        )
    return render(
        request,
        "mapping/activate.html",
        page_context(request, "activate", connection, problems=problems_for(connection)),
    )
