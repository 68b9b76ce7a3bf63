"""Members and their roles: everyone in the account sees the list, only owners change it.

An account always keeps at least one owner: the last owner can be neither demoted nor removed.
The owners are locked (SELECT … FOR UPDATE) while that is checked, so two owners demoting each
other at the same moment cannot leave the account without one.
"""

from __future__ import annotations

from django.contrib import messages
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from crmsync import audit
from crmsync.models import Account, Membership, Role
from crmsync.tenancy import account_queryset, account_view, get_for_account
from crmsync.views.forms import InviteMemberForm, RoleForm

LAST_OWNER_MESSAGE = "An account needs at least one owner: make someone else an owner first."


def _members_page(request: HttpRequest, invite_form: InviteMemberForm | None = None, status: int = 200):
    memberships = account_queryset(Membership, request).select_related("user").order_by("user__email", "pk")
    is_owner = request.membership.has_role(Role.OWNER)
    if is_owner and invite_form is None:
        invite_form = InviteMemberForm(account=request.account)
    return render(
        request,
        "crmsync/members.html",
        {"memberships": memberships, "is_owner": is_owner, "invite_form": invite_form, "roles": Role.choices},
        status=status,
    )


def _other_owners_exist(account: Account, membership: Membership) -> bool:
    owners = Membership.objects.select_for_update().filter(account=account, role=Role.OWNER)
    return any(owner.pk != membership.pk for owner in owners)


@account_view()
def members(request: HttpRequest) -> HttpResponse:
    return _members_page(request)


@require_POST
@account_view(min_role=Role.OWNER)
def member_invite(request: HttpRequest) -> HttpResponse:
    form = InviteMemberForm(request.POST, account=request.account)
    if not form.is_valid():
        return _members_page(request, invite_form=form, status=400)
    membership = Membership.objects.create(account=request.account, user=form.user, role=form.cleaned_data["role"])
    audit.record("membership.added", request=request, obj=membership, changes={"role": membership.role})
    messages.success(request, f"{form.user.email} is now a member ({membership.get_role_display().lower()}).")
    return redirect("crmsync:members", account_slug=request.account.slug)


@require_POST
@account_view(min_role=Role.OWNER)
def member_role(request: HttpRequest, membership_id: int) -> HttpResponse:
    form = RoleForm(request.POST)
    with transaction.atomic():
        membership = get_for_account(Membership.objects.select_for_update(), request, pk=membership_id)
        if not form.is_valid():
            messages.error(request, "Choose one of the listed roles.")
        elif form.cleaned_data["role"] != membership.role:
            new_role = form.cleaned_data["role"]
            if membership.role == Role.OWNER and not _other_owners_exist(request.account, membership):
                messages.error(request, LAST_OWNER_MESSAGE)
            else:
                before, membership.role = membership.role, new_role
                membership.save(update_fields=["role"])
                audit.record(
                    "membership.role_changed",
                    request=request,
                    obj=membership,
                    changes={"role": {"before": before, "after": new_role}},
                )
                messages.success(request, f"{membership.user.email} is now {membership.get_role_display().lower()}.")
    if membership.user_id == request.user.pk and not membership.has_role(Role.OWNER):
        # You just gave up your own ownership: the members page is no longer yours to manage.
        return redirect("crmsync:overview", account_slug=request.account.slug)
    return redirect("crmsync:members", account_slug=request.account.slug)


@require_http_methods(["GET", "POST"])
@account_view(min_role=Role.OWNER)
def member_remove(request: HttpRequest, membership_id: int) -> HttpResponse:
    membership = get_for_account(Membership.objects.select_related("user"), request, pk=membership_id)
    if request.method == "GET":
        return render(request, "crmsync/member_remove.html", {"member": membership})
    with transaction.atomic():
        membership = get_for_account(
            Membership.objects.select_for_update(of=("self",)).select_related("user"), request, pk=membership_id
        )
        if membership.role == Role.OWNER and not _other_owners_exist(request.account, membership):
            messages.error(request, LAST_OWNER_MESSAGE)
            return redirect("crmsync:members", account_slug=request.account.slug)
        audit.record("membership.removed", request=request, obj=membership, changes={"role": membership.role})
        membership.delete()
    messages.success(request, f"{membership.user.email} no longer has access to {request.account.name}.")
    if membership.user_id == request.user.pk:
        return redirect("crmsync:settings_home")
    return redirect("crmsync:members", account_slug=request.account.slug)
