"""/settings/: where sign-in lands; sends a member to their first account."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from crmsync.models import Membership


@login_required
def settings_home(request: HttpRequest) -> HttpResponse:
    membership = (
        Membership.objects.filter(user=request.user).select_related("account").order_by("account__name").first()
    )
    if membership is None:
        return render(request, "crmsync/no_account.html")
    return redirect("crmsync:overview", account_slug=membership.account.slug)
