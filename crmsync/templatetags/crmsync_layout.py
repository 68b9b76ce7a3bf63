"""Template tags of the page layout: the account navigation, the account switcher, sign-up state."""

from __future__ import annotations

from dataclasses import dataclass

from allauth.account.adapter import get_adapter
from django import template
from django.urls import reverse

from crmsync import navigation
from crmsync.models import Membership

register = template.Library()


@dataclass(frozen=True)
class NavLink:
    label: str
    url: str
    url_name: str
    current: bool


@register.simple_tag(takes_context=True)
def account_nav(context: template.Context) -> list[NavLink]:
    """The registered pages (crmsync.navigation) the current member's role may open."""
    request = context.get("request")
    account = context.get("current_account")
    membership = context.get("current_membership")
    if request is None or account is None or membership is None:
        return []
    current_name = request.resolver_match.view_name if request.resolver_match else ""
    return [
        NavLink(
            entry.label,
            # A registered name that does not reverse is a programming error: let it show.
            reverse(entry.url_name, kwargs={"account_slug": account.slug}),
            entry.url_name,
            entry.url_name == current_name,
        )
        for entry in navigation.entries()
        if membership.has_role(entry.min_role)
    ]


@register.simple_tag(takes_context=True)
def user_memberships(context: template.Context) -> list[Membership]:
    """Every account the signed-in user belongs to, for the account switcher."""
    request = context.get("request")
    if request is None or not request.user.is_authenticated:
        return []
    return list(Membership.objects.filter(user=request.user).select_related("account").order_by("account__name"))


@register.simple_tag(takes_context=True)
def signup_open(context: template.Context) -> bool:
    request = context.get("request")
    return request is not None and get_adapter(request).is_open_for_signup(request)
