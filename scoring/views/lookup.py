"""Looking a prospect up by e-mail address: its score, grade and where the points came from."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from crmsync.models import Prospect
from crmsync.models.capsules import normalise_email
from crmsync.tenancy import account_view
from scoring.forms import ProspectLookupForm
from scoring.models import ProspectScore


@account_view()
def lookup(request: HttpRequest) -> HttpResponse:
    form = ProspectLookupForm(request.GET if "email" in request.GET else None)
    prospect = score = None
    searched = False
    if form.is_bound and form.is_valid():
        searched = True
        # Served by the (account, email) unique index; addresses are stored normalised.
        email = normalise_email(form.cleaned_data["email"])
        prospect = Prospect.objects.filter(account=request.account, email=email).first()
        if prospect is not None:
            score = ProspectScore.objects.filter(prospect=prospect).first()
    return render(
        request,
        "scoring/lookup.html",
        {"form": form, "prospect": prospect, "score": score, "searched": searched},
    )
