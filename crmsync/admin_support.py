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

from crmsync import audit

# Bookkeeping fields of inline forms, not data of the row.
_FORMSET_FIELDS = frozenset({"id", "DELETE", "ORDER"})

# Below this many rows an exact COUNT(*) is cheap enough to always be used.
ESTIMATE_COUNTS_ABOVE = 100_000


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
    """Counts exactly when the list is filtered (the filters use indexes); for an unfiltered list
    of a large PostgreSQL table it uses the planner's row estimate, since COUNT(*) over millions
    of event rows takes seconds on every change-list page."""

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        query = getattr(queryset, "query", None)
        if query is not None and not query.where:
            connection = connections[queryset.db]
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute(
                        "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass",
                        [queryset.model._meta.db_table],
                    )
                    row = cursor.fetchone()
                if row and row[0] > ESTIMATE_COUNTS_ABOVE:
                    return int(row[0])
        return super().count


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
