"""crmsync.tenancy: account_view, require_role, get_for_account, account_queryset."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.test import RequestFactory

from crmsync.models import ApiKey, Role
from crmsync.tenancy import account_queryset, account_view, get_for_account, require_role


def _request(user, path: str = "/a/x/page/"):
    request = RequestFactory().get(path)
    request.user = user
    return request


@account_view(min_role=Role.ADMIN)
def _admin_page(request, item_id: int) -> HttpResponse:
    return HttpResponse(f"{request.account.slug}|{request.membership.role}|{item_id}")


@account_view()
def _any_member_page(request) -> HttpResponse:
    return HttpResponse(request.account.name)


def test_anonymous_visitor_is_sent_to_sign_in_and_back(account):
    response = _any_member_page(_request(AnonymousUser(), "/a/acme-corp/"), account_slug=account.slug)

    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/a/acme-corp/"


def test_member_gets_account_and_membership_on_the_request(account, make_member):
    user = make_member(account, Role.ADMIN)
    request = _request(user)

    response = _admin_page(request, account_slug=account.slug, item_id=7)

    assert response.content.decode() == f"{account.slug}|admin|7"
    assert request.account == account
    assert request.membership.user == user


def test_user_without_membership_gets_404_not_403(account, make_account, make_member):
    outsider = make_member(make_account("Other Co"), Role.OWNER)

    with pytest.raises(Http404):
        _any_member_page(_request(outsider), account_slug=account.slug)


def test_unknown_account_slug_gets_404(owner):
    with pytest.raises(Http404):
        _any_member_page(_request(owner), account_slug="no-such-account")


def test_member_below_the_minimum_role_gets_403(account, make_member):
    viewer = make_member(account, Role.VIEWER)

    with pytest.raises(PermissionDenied):
        _admin_page(_request(viewer), account_slug=account.slug, item_id=1)


@pytest.mark.parametrize(
    ("role", "minimum", "allowed"),
    [
        (Role.VIEWER, Role.VIEWER, True),
        (Role.VIEWER, Role.ADMIN, False),
        (Role.ADMIN, Role.ADMIN, True),
        (Role.ADMIN, Role.OWNER, False),
        (Role.OWNER, Role.OWNER, True),
        (Role.OWNER, Role.VIEWER, True),
    ],
)
def test_require_role_ranks_viewer_below_admin_below_owner(account, make_member, role, minimum, allowed):
    request = _request(make_member(account, role))
    _any_member_page(request, account_slug=account.slug)  # sets request.membership

    if allowed:
        require_role(request, minimum)
    else:
        with pytest.raises(PermissionDenied):
            require_role(request, minimum)


def test_a_misspelt_role_fails_when_the_view_is_declared():
    with pytest.raises(ValueError):
        account_view(min_role="admn")


def test_helpers_refuse_a_request_that_was_not_scoped():
    request = RequestFactory().get("/")

    with pytest.raises(RuntimeError, match="account_view"):
        account_queryset(ApiKey, request)
    with pytest.raises(RuntimeError, match="account_view"):
        require_role(request, Role.VIEWER)


@pytest.fixture
def scoped_request(account, owner):
    request = _request(owner)
    _any_member_page(request, account_slug=account.slug)
    return request


def test_get_for_account_returns_the_accounts_own_object(scoped_request, account):
    key, _raw = ApiKey.issue(account, "mine")

    assert get_for_account(ApiKey, scoped_request, pk=key.pk) == key
    assert get_for_account(ApiKey.objects.active(), scoped_request, pk=key.pk) == key


def test_get_for_account_answers_404_for_another_accounts_object(scoped_request, make_account):
    theirs, _raw = ApiKey.issue(make_account("Other Co"), "theirs")

    with pytest.raises(Http404):
        get_for_account(ApiKey, scoped_request, pk=theirs.pk)


def test_get_for_account_answers_404_for_a_missing_or_malformed_id(scoped_request):
    with pytest.raises(Http404):
        get_for_account(ApiKey, scoped_request, pk=999_999)
    with pytest.raises(Http404):
        get_for_account(ApiKey, scoped_request, pk="not-a-number")


def test_get_for_account_keeps_the_querysets_own_filters(scoped_request, account):
    key, _raw = ApiKey.issue(account, "revoked")
    key.revoke()

    with pytest.raises(Http404):
        get_for_account(ApiKey.objects.active(), scoped_request, pk=key.pk)


def test_account_queryset_and_account_path_follow_a_relation(scoped_request, account, make_account):
    from crmsync.models import Capsule, Event

    mine = Capsule.objects.create(account=account, external_id="c1")
    theirs = Capsule.objects.create(account=make_account("Other Co"), external_id="c1")
    for capsule in (mine, theirs):
        Event.objects.create(
            account=capsule.account,
            external_id=f"e-{capsule.pk}",
            type="capsule_viewed",
            occurred_at="2025-01-01T00:00:00Z",
            capsule=capsule,
        )

    assert list(account_queryset(Capsule, scoped_request)) == [mine]
    assert [event.capsule for event in account_queryset(Event, scoped_request, account_path="capsule__account")] == [
        mine
    ]
    with pytest.raises(Http404):
        get_for_account(Event, scoped_request, account_path="capsule__account", external_id=f"e-{theirs.pk}")
