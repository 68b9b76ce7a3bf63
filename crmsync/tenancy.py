"""Scoping every owner-facing page to one account, and to the signed-in member's role.

Every view whose URL carries ``<slug:account_slug>`` is wrapped in :func:`account_view`; every
object it loads from a URL comes through :func:`get_for_account` (or a queryset from
:func:`account_queryset`). Together they keep one account's data out of another's pages::

    from crmsync.tenancy import account_view, get_for_account, require_role

    @account_view(min_role="admin")
    def connection_detail(request, connection_id: int):
        connection = get_for_account(Connection, request, pk=connection_id)
        ...

Another account's slug or object answers 404, never 403, so a URL cannot tell an outsider
whether an account or object exists. A member whose role is too low gets 403: they know the
account exists, they just may not do this.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.db import models
from django.http import Http404, HttpRequest, HttpResponse

from crmsync.models import Account, Membership, Role

ModelT = TypeVar("ModelT", bound=models.Model)
View = Callable[..., HttpResponse]


def account_view(min_role: str = Role.VIEWER) -> Callable[[View], View]:
    """Decorate a function view whose URL has ``account_slug``.

    - Anonymous users are redirected to the sign-in page (and back afterwards).
    - A user with no membership in that account gets 404.
    - A member whose role ranks below ``min_role`` ("viewer" < "admin" < "owner") gets 403.
    - Otherwise ``request.account`` and ``request.membership`` are set and the view is called
      **without** ``account_slug`` (every other URL kwarg is passed on): use ``request.account``.

    For pages that anyone in the account may read but only some may change, decorate with the
    lower role and call :func:`require_role` on the write path.
    """
    Role(min_role)  # a typo in a role name fails at import time, not on the first request

    def decorator(view: View) -> View:
        @wraps(view)
        def wrapper(request: HttpRequest, account_slug: str, *args: Any, **kwargs: Any) -> HttpResponse:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            membership = (
                Membership.objects.select_related("account")
                .filter(account__slug=account_slug, user=request.user)
                .first()
            )
            if membership is None:
                raise Http404("No such account.")
            request.account = membership.account
            request.membership = membership
            require_role(request, min_role)
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


def require_role(request: HttpRequest, min_role: str) -> None:
    """Raise PermissionDenied (403) unless the member ranks at least ``min_role``.

    Only valid inside an :func:`account_view`.
    """
    if not _membership(request).has_role(min_role):
        raise PermissionDenied("Your role in this account does not allow this.")


def account_queryset(
    queryset_or_model: type[ModelT] | models.QuerySet[ModelT],
    request: HttpRequest,
    account_path: str = "account",
) -> models.QuerySet[ModelT]:
    """The rows of ``request.account`` only.

    ``account_path`` is the lookup from the model to its Account, for models that reach it
    through another row (``account_path="connection__account"``).
    """
    queryset = (
        queryset_or_model._default_manager.all() if isinstance(queryset_or_model, type) else queryset_or_model.all()
    )
    return queryset.filter(**{account_path: _account(request)})


def get_for_account(
    queryset_or_model: type[ModelT] | models.QuerySet[ModelT],
    request: HttpRequest,
    *,
    account_path: str = "account",
    **lookup: Any,
) -> ModelT:
    """The one object matching ``lookup`` inside ``request.account``, or Http404.

    An object that exists but belongs to another account is answered exactly like one that does
    not exist. ``account_path`` as for :func:`account_queryset`.
    """
    queryset = account_queryset(queryset_or_model, request, account_path)
    try:
        return queryset.get(**lookup)
    except (queryset.model.DoesNotExist, ValueError) as exc:
        # ValueError: a malformed id from the URL; for the visitor it is just "not found".
        raise Http404(f"No {queryset.model._meta.verbose_name} found.") from exc


def _account(request: HttpRequest) -> Account:
    account = getattr(request, "account", None)
    if account is None:
        raise RuntimeError("request.account is not set: wrap the view in crmsync.tenancy.account_view")
    return account


def _membership(request: HttpRequest) -> Membership:
    membership = getattr(request, "membership", None)
    if membership is None:
        raise RuntimeError("request.membership is not set: wrap the view in crmsync.tenancy.account_view")
    return membership
