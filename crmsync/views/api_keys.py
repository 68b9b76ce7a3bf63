"""Ingestion API keys: list, create (the raw key is shown once), revoke."""

from __future__ import annotations

from django.contrib import messages
from django.db.models import F
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from crmsync import audit
from crmsync.models import ApiKey, Role
from crmsync.tenancy import account_queryset, account_view, get_for_account
from crmsync.views.forms import ApiKeyCreateForm


@account_view()
def api_keys(request: HttpRequest) -> HttpResponse:
    # Active keys (no revocation date) first, newest first within each group.
    keys = (
        account_queryset(ApiKey, request)
        .select_related("created_by")
        .order_by(F("revoked_at").desc(nulls_first=True), "-created_at")
    )
    can_manage = request.membership.has_role(Role.ADMIN)
    return render(
        request,
        "crmsync/api_keys.html",
        {"keys": keys, "can_manage": can_manage, "form": ApiKeyCreateForm() if can_manage else None},
    )


@never_cache  # the response carries the raw key: no browser or proxy may keep a copy
@require_http_methods(["GET", "POST"])
@account_view(min_role=Role.ADMIN)
def api_key_create(request: HttpRequest) -> HttpResponse:
    form = ApiKeyCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        key, raw_key = ApiKey.issue(request.account, form.cleaned_data["name"], created_by=request.user)
        audit.record("api_key.created", request=request, obj=key, changes={"name": key.name, "prefix": key.prefix})
        # Rendered straight from the POST, never redirected through the session or a message:
        # the raw key exists only in this one response.
        return render(request, "crmsync/api_key_created.html", {"key": key, "raw_key": raw_key})
    return render(request, "crmsync/api_key_create.html", {"form": form})


@require_http_methods(["GET", "POST"])
@account_view(min_role=Role.ADMIN)
def api_key_revoke(request: HttpRequest, key_id: int) -> HttpResponse:
    key = get_for_account(ApiKey, request, pk=key_id)
    if request.method == "POST":
        if key.is_active:
            key.revoke()
            audit.record("api_key.revoked", request=request, obj=key, changes={"prefix": key.prefix})
            messages.success(request, f"The key “{key.name}” is revoked. Requests using it are now refused.")
        return redirect("crmsync:api_keys", account_slug=request.account.slug)
    return render(request, "crmsync/api_key_revoke.html", {"key": key})
