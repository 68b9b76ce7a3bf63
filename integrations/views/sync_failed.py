"""The owner's failed records: what did not reach the CRM and why, in the CRM's own words.
Retry one, retry all (the filtered set), skip one (after a confirmation).

The list stays fast at millions of rows: it pages by keyset, newest first on (updated_at, id),
so page 500 costs what page 1 costs, and the count at the top stops at 1,000 ("1,000+").
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django import forms
from django.contrib import messages
from django.db.models import Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from crmsync.tenancy import account_view, get_for_account
from integrations import sync_actions
from integrations.dashboard import ERROR_KINDS, bounded_count
from integrations.models import Connection, OutboxItem, OutboxKind, OutboxState

PAGE_SIZE = 50
COUNT_CAP = 1_000
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
# The columns the list shows: the payload and the prospect's other fields stay in the database.
LIST_FIELDS = (
    "pk",
    "kind",
    "state",
    "attempts",
    "last_error",
    "last_error_kind",
    "created_at",
    "updated_at",
    "connection_id",
    "prospect_id",
    "prospect__email",
    "prospect__erased",
)


class FailedFilterForm(forms.Form):
    connection = forms.TypedChoiceField(label="CRM", required=False, coerce=int, empty_value=None)
    kind = forms.ChoiceField(label="What", required=False, choices=[("", "Everything"), *OutboxKind.choices])
    error_kind = forms.ChoiceField(
        label="Error kind", required=False, choices=[("", "Any error"), *ERROR_KINDS.items()]
    )

    def __init__(self, data, *, connections: list[Connection]) -> None:
        super().__init__(data)
        self.fields["connection"].choices = [("", "All CRMs"), *((c.pk, c.spec.label) for c in connections)]


@dataclass(frozen=True)
class Cursor:
    """A position in the newest-first list: (updated_at, id) of a row, as "<microseconds>-<id>"."""

    updated_at: dt.datetime
    pk: int

    def __str__(self) -> str:
        delta = self.updated_at - EPOCH
        return f"{(delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds}-{self.pk}"

    @classmethod
    def parse(cls, value: str | None) -> Cursor | None:
        """A cursor from a URL; anything malformed is treated as "from the start"."""
        if not value:
            return None
        micros, _, pk = value.partition("-")
        if not (micros.isdigit() and pk.isdigit()) or len(micros) > 18 or len(pk) > 18:
            return None
        return cls(EPOCH + dt.timedelta(microseconds=int(micros)), int(pk))

    @classmethod
    def of(cls, item: OutboxItem) -> Cursor:
        return cls(item.updated_at, item.pk)


@dataclass
class Page:
    rows: list[OutboxItem]
    newer: Cursor | None  # ?after= for the page before (newer rows)
    older: Cursor | None  # ?before= for the page after (older rows)


def live_connections(request: HttpRequest) -> list[Connection]:
    return list(Connection.objects.filter(account=request.account).live().order_by("provider", "pk"))


def filtered_failed(request: HttpRequest, data, connections: list[Connection]) -> tuple[FailedFilterForm, QuerySet]:
    """The filter form bound to ``data`` and the failed rows it selects, in this account only.

    A connection id that is not one of the account's live connections answers 404, as any other
    account's object does."""
    if data.get("connection") and data["connection"] not in {str(c.pk) for c in connections}:
        raise Http404("No such connection.")
    form = FailedFilterForm(data, connections=connections)
    filters = form.cleaned_data if form.is_valid() else {}
    chosen = filters.get("connection")
    ids = [chosen] if chosen else [c.pk for c in connections]
    queryset = OutboxItem.objects.filter(connection_id__in=ids, state=OutboxState.FAILED)
    if filters.get("kind"):
        queryset = queryset.filter(kind=filters["kind"])
    if filters.get("error_kind"):
        queryset = queryset.filter(last_error_kind=filters["error_kind"])
    return form, queryset


def page_of(queryset: QuerySet[OutboxItem], *, before: Cursor | None, after: Cursor | None) -> Page:
    """One keyset page, newest first. ``after`` walks back towards newer rows."""
    rows_qs = queryset.select_related("prospect").only(*LIST_FIELDS)
    if after is not None:
        newer_than = Q(updated_at__gt=after.updated_at) | Q(updated_at=after.updated_at, pk__gt=after.pk)
        rows = list(rows_qs.filter(newer_than).order_by("updated_at", "pk")[: PAGE_SIZE + 1])
        more_newer = len(rows) > PAGE_SIZE
        rows = rows[:PAGE_SIZE][::-1]
        return Page(rows, Cursor.of(rows[0]) if more_newer and rows else None, Cursor.of(rows[-1]) if rows else None)
    if before is not None:
        rows_qs = rows_qs.filter(
            Q(updated_at__lt=before.updated_at) | Q(updated_at=before.updated_at, pk__lt=before.pk)
        )
    rows = list(rows_qs.order_by("-updated_at", "-pk")[: PAGE_SIZE + 1])
    more_older = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    newer = Cursor.of(rows[0]) if before is not None and rows else None
    return Page(rows, newer, Cursor.of(rows[-1]) if more_older else None)


def _failed_url(request: HttpRequest) -> str:
    return reverse("integrations:sync_failed", kwargs={"account_slug": request.account.slug})


def _safe_next(request: HttpRequest, target: str) -> str:
    """``target`` if it is a page of this account's failed list (its filters and page), else the list."""
    base = _failed_url(request)
    safe = url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    return target if safe and target.startswith(base) else base


def _back(request: HttpRequest) -> HttpResponse:
    return redirect(_safe_next(request, request.POST.get("next", "")))


# -- the views -------------------------------------------------------------------------------------


@require_GET
@account_view()
def failed_records(request: HttpRequest) -> HttpResponse:
    connections = live_connections(request)
    form, queryset = filtered_failed(request, request.GET, connections)
    page = page_of(
        queryset, before=Cursor.parse(request.GET.get("before")), after=Cursor.parse(request.GET.get("after"))
    )
    labels = {c.pk: c.spec.label for c in connections}
    for row in page.rows:
        row.connection_label = labels.get(row.connection_id, "")
    return render(
        request,
        "integrations/sync_failed.html",
        {
            "form": form,
            "page": page,
            "total": bounded_count(queryset, COUNT_CAP),
            "connections": connections,
            "error_kinds": ERROR_KINDS,
            "can_act": request.membership.has_role("admin"),
        },
    )


@require_POST
@account_view(min_role="admin")
def retry_item(request: HttpRequest, item_id: int) -> HttpResponse:
    item = get_for_account(OutboxItem, request, account_path="connection__account", pk=item_id)
    outcome = sync_actions.retry(OutboxItem.objects.filter(pk=item.pk), request=request, via="owner page")
    if outcome.count:
        messages.success(request, "Queued again: it goes to the CRM with the next sync.")
    else:
        messages.info(request, f"Nothing to retry: this record is {item.get_state_display().lower()}.")
    return _back(request)


@require_POST
@account_view(min_role="admin")
def retry_all(request: HttpRequest) -> HttpResponse:
    form, queryset = filtered_failed(request, request.POST, live_connections(request))
    filters = {key: value for key, value in (form.cleaned_data if form.is_valid() else {}).items() if value}
    outcome = sync_actions.retry(queryset, request=request, via="owner page", extra={"filters": filters})
    if outcome.more_left:
        messages.warning(
            request,
            f"Queued {outcome.count:,} failed records again. More are left: press “Retry all” again for the next "
            f"{sync_actions.RETRY_LIMIT:,}.",
        )
    elif outcome.count:
        messages.success(request, f"Queued {outcome.count:,} failed record{'s' if outcome.count != 1 else ''} again.")
    else:
        messages.info(request, "There was nothing to retry.")
    return _back(request)


@account_view(min_role="admin")
def skip_item(request: HttpRequest, item_id: int) -> HttpResponse:
    """GET asks "are you sure?"; only a POST skips."""
    queryset = OutboxItem.objects.select_related("prospect", "connection")
    item = get_for_account(queryset, request, account_path="connection__account", pk=item_id)
    if request.method != "POST":
        return render(
            request,
            "integrations/sync_skip_confirm.html",
            {"item": item, "next": _safe_next(request, request.GET.get("next", ""))},
        )
    outcome = sync_actions.skip(OutboxItem.objects.filter(pk=item.pk), request=request, via="owner page", limit=1)
    if outcome.count:
        messages.success(request, "Skipped: this record will not be sent to the CRM.")
    else:
        messages.info(request, f"Nothing to skip: this record is {item.get_state_display().lower()}.")
    return _back(request)
