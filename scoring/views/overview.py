"""The lead scoring page: rules, bands, score distribution, lookup, recompute progress."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from crmsync.models import Role
from crmsync.tenancy import account_view
from scoring.distribution import grade_counts, score_distribution
from scoring.forms import ProspectLookupForm
from scoring.models import GradeBand, ScoreRecompute, ScoringRule


def latest_recompute(account_id: int) -> ScoreRecompute | None:
    """The running recompute if there is one (a newer one may be waiting behind it), else the latest."""
    recomputes = ScoreRecompute.objects.filter(account_id=account_id).order_by("-created_at", "-pk")
    return recomputes.filter(state=ScoreRecompute.State.RUNNING).first() or recomputes.first()


@account_view()
def overview(request: HttpRequest) -> HttpResponse:
    account = request.account
    return render(
        request,
        "scoring/overview.html",
        {
            "rules": ScoringRule.objects.filter(account=account).order_by("order", "pk"),
            "bands": GradeBand.objects.filter(account=account).order_by("min_score"),
            "distribution": score_distribution(account.pk),
            "recompute": latest_recompute(account.pk),
            "lookup_form": ProspectLookupForm(),
            "can_edit": request.membership.has_role(Role.ADMIN),
        },
    )


def overview_panel_context(request: HttpRequest) -> dict:
    """The account overview's lead scoring panel: prospects per grade."""
    return {"grades": grade_counts(request.account.pk)}
