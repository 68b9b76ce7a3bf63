"""Starting a recompute by hand, and the progress fragment the scoring page polls."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from crmsync.models import Role
from crmsync.tenancy import account_view, get_for_account
from scoring.models import ScoreRecompute
from scoring.recompute import start_recompute


@require_POST
@account_view(min_role=Role.ADMIN)
def recompute_start(request: HttpRequest) -> HttpResponse:
    start_recompute(request.account, request.user, request=request)
    messages.success(request, "Scores are being recomputed with the current rules and bands.")
    return redirect("scoring:overview", account_slug=request.account.slug)


@never_cache
@account_view()
def recompute_progress(request: HttpRequest, recompute_id: int) -> HttpResponse:
    recompute = get_for_account(ScoreRecompute, request, pk=recompute_id)
    return render(request, "scoring/_recompute_progress.html", {"recompute": recompute})
