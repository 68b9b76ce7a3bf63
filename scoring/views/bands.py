"""Editing the grade bands as one set: the bands are few and only make sense together."""

from __future__ import annotations

from django.contrib import messages
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from crmsync import audit
from crmsync.models import Role
from crmsync.tenancy import account_view
from scoring.forms import GradeBandFormSet, band_formset_initial
from scoring.models import GradeBand
from scoring.recompute import start_recompute


@require_http_methods(["GET", "POST"])
@account_view(min_role=Role.ADMIN)
def bands(request: HttpRequest) -> HttpResponse:
    account = request.account
    before = [(row["name"], row["min_score"]) for row in band_formset_initial(account.pk)]
    formset = GradeBandFormSet(request.POST or None, initial=[{"name": n, "min_score": m} for n, m in before])
    if request.method == "POST" and formset.is_valid():
        after = formset.bands()
        if after != before:
            with transaction.atomic():
                # Replaced as a whole, so swapping two bands' names or minimums never meets the
                # uniqueness constraint half-way.
                GradeBand.objects.filter(account=account).delete()
                GradeBand.objects.bulk_create(GradeBand(account=account, name=n, min_score=m) for n, m in after)
                audit.record(
                    "scoring.bands_changed",
                    request=request,
                    account=account,
                    changes={"before": dict(before), "after": dict(after)},
                )
                start_recompute(account, request.user, request=request)
            messages.success(request, "Grade bands saved. Scores are being recomputed.")
        return redirect("scoring:overview", account_slug=account.slug)
    return render(request, "scoring/bands.html", {"formset": formset})
