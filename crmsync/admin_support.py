"""Building blocks of the ops admin: an audit trail for every change, read-only admins, confirmed
actions and a paginator that does not count millions of rows.

Other apps' admins use them too::

    from crmsync.admin_support import AuditedAdminMixin, ReadOnlyAdminMixin

    @admin.register(FieldMapping)
    class FieldMappingAdmin(AuditedAdminMixin, admin.ModelAdmin):
        ...
"""

from __future__ import annotations

import datetime
import decimal
import json
import uuid
from collections.abc import Iterable
from functools import cached_property
from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.admin import helpers
from django.core.paginator import Paginator
from django.db import connections, models
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils.html import format_html

from crmsync import audit
from crmsync.lookups import table_estimate

# Bookkeeping fields of inline forms, not data of the row.
_FORMSET_FIELDS = frozenset({"id", "DELETE", "ORDER"})

# Below this many rows an exact COUNT(*) is cheap enough to always be used.
ESTIMATE_COUNTS_ABOVE = 100_000
# A filtered change list is counted exactly up to this many rows, then estimated.
EXACT_COUNT_CAP = 1_000
# Page links of a big change list stop here (the admin pages by OFFSET).
MAX_PAGES = 200
LARGE_TABLE_PAGE_SIZE = 50
# A filter of the column's values lists at most this many.
MAX_FILTER_VALUES = 200
# An e-mail search of rows that point at prospects matches at most this many prospects.
MAX_SEARCHED_PROSPECTS = 1_000


def jsonable(value: Any) -> Any:
    """A form value as JSON for the audit log: model instances by primary key, dates as ISO text."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, models.Model):
        return value.pk
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, Iterable):
        return [jsonable(item) for item in value]
    return str(value)


class PseudonymousRef:
    """Stands in for a row of personal data in ``audit.record``: its type, id and account, not its
    name. The audit log is append-only and outlives an erasure, so it must never hold a prospect's
    e-mail address (which is what ``str(prospect)`` gives)."""

    def __init__(self, obj: models.Model) -> None:
        self._meta = obj._meta
        self.pk = obj.pk
        self.account = getattr(obj, "account", None)

    def __str__(self) -> str:
        return f"{self._meta.verbose_name} #{self.pk}"


class AuditedAdminMixin:
    """Writes an audit entry for every add, change and delete made through this admin, inlines
    included, so Django's own LogEntry is not the only trail.

    Actions are named ``admin.<model_name>.created|changed|deleted``; ``changes`` holds
    ``{field: {"before": …, "after": …}}``. Set ``audit_personal_data = True`` on admins of
    models that hold personal data: then only the names of changed fields are recorded and the
    object appears as "<model> #<id>".
    """

    audit_personal_data = False

    def save_model(self, request: HttpRequest, obj: models.Model, form: forms.ModelForm, change: bool) -> None:
        super().save_model(request, obj, form, change)
        self.audit_form(request, obj, form, "changed" if change else "created")

    def delete_model(self, request: HttpRequest, obj: models.Model) -> None:
        self.audit_object(request, obj, "deleted")  # first, while the object still has its id
        super().delete_model(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: models.QuerySet) -> None:
        for obj in queryset:
            self.audit_object(request, obj, "deleted")
        super().delete_queryset(request, queryset)

    def save_formset(self, request: HttpRequest, form: forms.ModelForm, formset, change: bool) -> None:
        for deleted_form in formset.deleted_forms:
            if deleted_form.instance.pk is not None:
                self.audit_object(request, deleted_form.instance, "deleted")
        super().save_formset(request, form, formset, change)
        form_of = {id(inline_form.instance): inline_form for inline_form in formset.forms}
        for obj in formset.new_objects:
            self.audit_form(request, obj, form_of.get(id(obj)), "created")
        for obj, _fields in formset.changed_objects:
            self.audit_form(request, obj, form_of.get(id(obj)), "changed")

    def audit_form(self, request: HttpRequest, obj: models.Model, form: forms.ModelForm | None, verb: str) -> None:
        if form is None:
            fields: list[str] = []
        elif verb == "created":
            # Everything a new row was given, defaults included: "role: viewer" is worth knowing.
            fields = [name for name in form.fields if name in form.cleaned_data and name not in _FORMSET_FIELDS]
        else:
            fields = list(form.changed_data)
        if verb == "changed" and not fields:
            return  # a save without changes changes nothing worth a line in the log
        if self.audit_personal_data:
            changes: dict[str, Any] = {"fields": fields}
        elif verb == "created":
            changes = {name: jsonable(form.cleaned_data[name]) for name in fields}
        else:
            changes = {
                name: {"before": jsonable(form.initial.get(name)), "after": jsonable(form.cleaned_data.get(name))}
                for name in fields
            }
        self.audit_object(request, obj, verb, changes)

    def audit_object(self, request: HttpRequest, obj: models.Model, verb: str, changes: dict | None = None) -> None:
        subject = PseudonymousRef(obj) if self.audit_personal_data else obj
        audit.record(f"admin.{obj._meta.model_name}.{verb}", request=request, obj=subject, changes=changes)


class ReadOnlyAdminMixin:
    """Rows that only the system writes (events, suppressions, the audit log): ops can look, not touch."""

    def has_add_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False


class EstimatedCountPaginator(Paginator):
    """A change list's paginator for tables of millions of rows, where ``COUNT(*)`` takes seconds.

    On PostgreSQL:

    - an unfiltered list of a large table is counted by the planner's row estimate
      (``pg_class.reltuples``, kept fresh by autovacuum's ANALYZE);
    - a filtered or searched list is counted exactly up to ``EXACT_COUNT_CAP`` rows, walking the
      rows in the list's own order (so along the same index as the page itself), and above that
      by the planner's estimate for the filtered query (its EXPLAIN);
    - page links stop at ``MAX_PAGES``: the admin pages by OFFSET, and reading past a million
      rows to show page 20,000 takes seconds (filter or search to get further).

    On SQLite (the embedded default) it counts as Django does.
    """

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        query = getattr(queryset, "query", None)
        if query is None or connections[queryset.db].vendor != "postgresql":
            return super().count
        if not query.where:
            estimate = table_estimate(queryset)
            return estimate if estimate > ESTIMATE_COUNTS_ABOVE else super().count
        capped = queryset.values("pk")[: EXACT_COUNT_CAP + 1].count()
        if capped <= EXACT_COUNT_CAP:
            return capped
        return max(capped, planner_estimate(queryset))

    @cached_property
    def num_pages(self) -> int:
        return min(super().num_pages, MAX_PAGES)


def planner_estimate(queryset: models.QuerySet) -> int:
    """The rows PostgreSQL's planner expects ``queryset`` to return (EXPLAIN, nothing is run)."""
    sql, params = queryset.order_by().values("pk").query.sql_with_params()
    with connections[queryset.db].cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])


class IndexedValuesListFilter(admin.AllValuesFieldListFilter):
    """Django's "all values" filter, without its ``SELECT DISTINCT`` over every row.

    On PostgreSQL the values are read from the column's index by a loose index scan (a recursive
    query that jumps from one value to the next: one index probe per distinct value, however
    many rows there are); at most ``MAX_FILTER_VALUES`` of them. The column needs an index whose
    first column it is. Elsewhere it is Django's filter.
    """

    def __init__(self, field, request, params, model, model_admin, field_path) -> None:
        super().__init__(field, request, params, model, model_admin, field_path)
        if connections[model._default_manager.db].vendor == "postgresql" and "__" not in field_path:
            self.lookup_choices = distinct_indexed_values(model, field.column)


def distinct_indexed_values(model: type[models.Model], column: str, limit: int = MAX_FILTER_VALUES) -> list:
    connection = connections[model._default_manager.db]
    table, col = connection.ops.quote_name(model._meta.db_table), connection.ops.quote_name(column)
    sql = f"""
        WITH RECURSIVE distinct_values(value) AS (
            (SELECT {col} FROM {table} WHERE {col} IS NOT NULL ORDER BY {col} LIMIT 1)
            UNION ALL
            SELECT (SELECT {col} FROM {table} WHERE {col} > d.value ORDER BY {col} LIMIT 1)
            FROM distinct_values d WHERE d.value IS NOT NULL
        )
        SELECT value FROM distinct_values WHERE value IS NOT NULL LIMIT %s
    """  # noqa: S608 - names are our models' own, quoted; the limit is a parameter
    with connection.cursor() as cursor:
        cursor.execute(sql, [limit])
        return [row[0] for row in cursor.fetchall()]


def in_every_account(queryset: models.QuerySet, account_field: str = "account") -> models.QuerySet:
    """``queryset`` limited to ``account IN (every account id)``: a no-op for the result, but it
    lets a lookup on the second column of an ``(account, x)`` index use that index (one probe
    per account) instead of scanning every row for ``x``."""
    from crmsync.models import Account

    ids = list(Account.objects.order_by("pk").values_list("pk", flat=True))
    return queryset.filter(**{f"{account_field}__in": ids})


def prefix_q(field: str, prefix: str, using: str = "default") -> models.Q:
    """``field`` starts with ``prefix`` (case-sensitive), if possible as a range an index can serve.

    PostgreSQL serves ``LIKE 'x%'`` from a btree index only under the C collation. Under a
    collation that orders by code point (C.UTF-8, the default of our databases) ``field >= 'x'
    AND field < 'x' || U+10FFFF`` selects exactly the same rows and is an index range; under a
    linguistic collation (en_US…) it might not, so there it is the plain ``LIKE``."""
    q = models.Q(**{f"{field}__startswith": prefix})
    if _orders_by_code_point(using):
        q &= models.Q(**{f"{field}__gte": prefix, f"{field}__lt": prefix + "\U0010ffff"})
    return q


_CODE_POINT_COLLATIONS = {"c", "posix", "c.utf-8", "c.utf8"}
_collation_cache: dict[str, bool] = {}


def _orders_by_code_point(using: str) -> bool:
    connection = connections[using]
    if connection.vendor != "postgresql":
        return False
    if using not in _collation_cache:
        with connection.cursor() as cursor:
            cursor.execute("SELECT datcollate FROM pg_database WHERE datname = current_database()")
            row = cursor.fetchone()
        _collation_cache[using] = bool(row) and row[0].lower() in _CODE_POINT_COLLATIONS
    return _collation_cache[using]


def prospects_by_email(term: str, limit: int = MAX_SEARCHED_PROSPECTS) -> list[int]:
    """Ids of the prospects whose address is ``term`` or starts with it (at most ``limit``): index
    ranges of (account, email), one per account, for admins of rows that point at prospects,
    rather than a join that reads every prospect."""
    from crmsync.models import Prospect, normalise_email

    matching = in_every_account(Prospect.objects.all()).filter(prefix_q("email", normalise_email(term)))
    return list(matching.order_by().values_list("pk", flat=True)[:limit])


class LargeTableAdminMixin:
    """Change-list settings of the big tables: estimated counts, no full count, 50 rows a page
    (rendering a row costs more than reading it), and a plain checkbox per row instead of a
    rendered form widget."""

    show_full_result_count = False
    paginator = EstimatedCountPaginator
    list_per_page = LARGE_TABLE_PAGE_SIZE

    def action_checkbox(self, obj: models.Model) -> str:
        # What Django renders through a form widget and its template, written out: a fifth of a
        # 100-row page's rendering time otherwise.
        return format_html(
            '<input type="checkbox" name="{}" value="{}" class="action-select" aria-label="Select this object '
            'for an action - {}">',
            helpers.ACTION_CHECKBOX_NAME,
            obj.pk,
            obj,
        )


def confirm_action(
    model_admin: admin.ModelAdmin,
    request: HttpRequest,
    queryset: models.QuerySet,
    *,
    action: str,
    title: str,
    explanation: str,
    button: str,
) -> TemplateResponse:
    """The intermediate "are you sure?" page of an admin action; it posts the action back with
    ``confirmed=yes`` and the same selection."""
    opts = model_admin.model._meta
    return TemplateResponse(
        request,
        "admin/crmsync/confirm_action.html",
        {
            **model_admin.admin_site.each_context(request),
            "title": title,
            "explanation": explanation,
            "button": button,
            "action": action,
            "objects": queryset,
            "opts": opts,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "media": model_admin.media,
        },
    )


def is_confirmed(request: HttpRequest) -> bool:
    return request.POST.get("confirmed") == "yes"
