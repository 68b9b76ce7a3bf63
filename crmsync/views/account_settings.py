"""The account's own settings: consent requirement and notification address."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from crmsync import audit
from crmsync.models import Role
from crmsync.tenancy import account_view, require_role
from crmsync.views.forms import AccountSettingsForm


@require_http_methods(["GET", "POST"])
@account_view()
def account_settings(request: HttpRequest) -> HttpResponse:
    can_edit = request.membership.has_role(Role.ADMIN)
    if request.method == "POST":
        require_role(request, Role.ADMIN)
    account = request.account
    before = {name: getattr(account, name) for name in AccountSettingsForm.Meta.fields}
    form = AccountSettingsForm(request.POST or None, instance=account)
    if not can_edit:
        for field in form.fields.values():
            field.disabled = True
    if request.method == "POST" and form.is_valid():
        if form.has_changed():
            form.save()
            changes = {name: {"before": before[name], "after": form.cleaned_data[name]} for name in form.changed_data}
            audit.record("account.settings_changed", request=request, obj=account, changes=changes)
            messages.success(request, "Settings saved.")
        else:
            messages.info(request, "Nothing changed.")
        return redirect("crmsync:account_settings", account_slug=account.slug)
    return render(request, "crmsync/account_settings.html", {"form": form, "can_edit": can_edit})
