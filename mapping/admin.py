"""The ops admin of field mapping: a connection's rows inline (validated, versioned, audited), an
"apply template" action, a payload preview for a chosen prospect; version history and the
schema cache read-only, with a "refresh" action."""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from crmsync import audit
from crmsync.admin_support import ReadOnlyAdminMixin
from crmsync.models import Prospect, normalise_email
from integrations.errors import CrmError
from mapping import sources
from mapping.apply import build_payload
from mapping.forms import ApplyTemplateForm
from mapping.models import ConnectionMapping, CrmSchema, FieldMapping, MappingVersion
from mapping.rows import MappingRow, rows_for
from mapping.samples import sample_snapshot
from mapping.schema import refresh_schema, schema_for
from mapping.service import apply_template, problems_for, record_change


class FieldMappingInlineFormSet(forms.BaseInlineFormSet):
    """Refuses rows with validation errors, each shown on its row (warnings are allowed)."""

    def clean(self) -> None:
        super().clean()
        if any(form.errors for form in self.forms):
            return
        kept = [
            form
            for form in self.forms
            if form.cleaned_data and not form.cleaned_data.get("DELETE") and form.cleaned_data.get("target_field")
        ]
        ordered = sorted(kept, key=lambda f: f.cleaned_data.get("order") or 0)
        rows = [_row_from_form(form) for form in ordered]
        problems = [problem for problem in problems_for(self.instance, rows) if problem.is_error]
        general = []
        for problem in problems:
            if problem.row_index is None:
                general.append(problem.message)
            else:
                ordered[problem.row_index].add_error(None, problem.message)
        if general:
            raise ValidationError(general)
        if problems:
            raise ValidationError("The mapping has errors: see the rows marked.")


def _row_from_form(form: forms.ModelForm) -> MappingRow:
    data = {name: value for name, value in form.cleaned_data.items() if name in MappingRow.__dataclass_fields__}
    data["transform_options"] = data.get("transform_options") or {}
    return MappingRow.from_dict({**form.initial, **data})


class FieldMappingInline(admin.TabularInline):
    model = FieldMapping
    formset = FieldMappingInlineFormSet
    fk_name = "connection"
    extra = 0
    fields = (
        "order",
        "enabled",
        "source_kind",
        "source_key",
        "constant",
        "template",
        "target_object",
        "target_field",
        "transform",
        "transform_options",
        "default",
        "update_policy",
        "direction",
        "conflict_policy",
    )


@admin.register(ConnectionMapping)
class ConnectionMappingAdmin(admin.ModelAdmin):
    list_display = ("__str__", "account", "provider", "record_type", "row_count", "activated_at")
    list_filter = ("provider", "record_type")
    search_fields = ("account__name", "account__slug", "crm_account_name")
    list_select_related = ("account",)
    fields = ("account", "provider", "record_type", "activated_at", "preview_link")
    readonly_fields = fields
    inlines = (FieldMappingInline,)
    actions = ("apply_template_action",)

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).live().annotate(rows=Count("field_mappings"))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False  # connections are disconnected from the CRM connection admin

    @admin.display(description="rows", ordering="rows")
    def row_count(self, obj: ConnectionMapping) -> int:
        return obj.rows

    @admin.display(description="Preview")
    def preview_link(self, obj: ConnectionMapping) -> str:
        if obj.pk is None:
            return ""
        return format_html(
            '<a href="{}">Preview the payload for a prospect</a>',
            reverse("admin:mapping_connectionmapping_preview", args=[obj.pk]),
        )

    # -- versioning of inline saves -------------------------------------------------------------
    def save_related(self, request: HttpRequest, form, formsets, change: bool) -> None:
        before = rows_for(form.instance)
        super().save_related(request, form, formsets, change)
        version = record_change(
            form.instance, before, rows_for(form.instance), request=request, summary="changed in the ops admin"
        )
        if version is not None:
            messages.info(request, f"Mapping saved as version {version.number}.")

    # -- apply a template -----------------------------------------------------------------------
    @admin.action(description="Apply an industry template")
    def apply_template_action(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        form = ApplyTemplateForm(request.POST if "apply" in request.POST else None)
        if "apply" in request.POST and form.is_valid():
            for connection in queryset:
                report = apply_template(
                    connection,
                    form.cleaned_data["template"],
                    request.user,
                    mode=form.cleaned_data["mode"],
                    request=request,
                )
                waiting = f" ({len(report.waiting)} rows switched off until possible)" if report.waiting else ""
                outcome = f"version {report.version.number}" if report.changed else "no change"
                messages.success(request, f"{connection}: {outcome}{waiting}.")
            return None
        return TemplateResponse(
            request,
            "admin/mapping/apply_template.html",
            {
                **self.admin_site.each_context(request),
                "title": "Apply an industry template",
                "form": form,
                "objects": queryset,
                "opts": self.model._meta,
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            },
        )

    # -- preview --------------------------------------------------------------------------------
    def get_urls(self):
        return [
            path(
                "<int:object_id>/preview/",
                self.admin_site.admin_view(self.preview_view),
                name="mapping_connectionmapping_preview",
            ),
            *super().get_urls(),
        ]

    def preview_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        connection = get_object_or_404(self.get_queryset(request), pk=object_id)
        if not self.has_view_permission(request, connection):
            raise PermissionDenied
        email = (request.GET.get("email") or "").strip()
        prospect = None
        error = ""
        if email:
            prospect = Prospect.objects.filter(account=connection.account, email=normalise_email(email)).first()
            if prospect is None:
                error = "No prospect of this account has that e-mail address."
        snapshot = (
            sources.load_snapshots(connection.account, [prospect.pk]).get(prospect.pk)
            if prospect is not None
            else sample_snapshot(connection.account)
        )
        result = build_payload(
            snapshot,
            rows_for(connection),
            schema_for(connection, connection.record_type) or {},
            object_kind=connection.record_type,
        )
        return TemplateResponse(
            request,
            "admin/mapping/preview.html",
            {
                **self.admin_site.each_context(request),
                "title": f"Payload preview: {connection}",
                "opts": self.model._meta,
                "original": connection,
                "email": email,
                "error": error,
                "prospect": prospect,
                "result": result,
                "payload_json": json.dumps(result.fields, indent=2, ensure_ascii=False, sort_keys=True),
                "mapping_problems": problems_for(connection),
            },
        )


@admin.register(MappingVersion)
class MappingVersionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("connection", "number", "changed_at", "changed_by_label", "summary")
    list_filter = ("connection__provider",)
    search_fields = ("connection__account__name", "summary", "changed_by_label")
    list_select_related = ("connection", "connection__account")
    readonly_fields = ("connection", "number", "changed_at", "changed_by", "changed_by_label", "summary", "rows")


@admin.register(CrmSchema)
class CrmSchemaAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("connection", "object_kind", "field_count", "fetched_at")
    list_filter = ("object_kind", "connection__provider")
    search_fields = ("connection__account__name",)
    list_select_related = ("connection", "connection__account")
    readonly_fields = ("connection", "object_kind", "fetched_at", "fields")
    actions = ("refresh",)

    @admin.display(description="fields")
    def field_count(self, obj: CrmSchema) -> int:
        return len(obj.fields)

    @admin.action(description="Refresh from the CRM")
    def refresh(self, request: HttpRequest, queryset: QuerySet[CrmSchema]) -> None:
        for cached in queryset.select_related("connection"):
            try:
                fresh = refresh_schema(cached.connection, cached.object_kind)
            except CrmError as exc:
                messages.error(request, f"{cached}: {exc}")
                continue
            audit.record(
                "mapping.schema_refreshed",
                request=request,
                obj=cached.connection,
                changes={"object_kind": fresh.object_kind, "fields": len(fresh.fields)},
            )
            messages.success(request, f"{cached}: {len(fresh.fields)} fields.")
