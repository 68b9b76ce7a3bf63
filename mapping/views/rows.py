"""Step 3: map fields (the rows formset); step 4: apply an industry template; and the history."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from crmsync.models import Role
from crmsync.tenancy import account_view, require_role
from mapping import sources
from mapping.forms import ApplyTemplateForm, RowFormSet, initial_for, source_choices, target_choices
from mapping.models import MappingVersion
from mapping.presets import industry_templates
from mapping.rows import rows_for
from mapping.schema import schema_for
from mapping.service import apply_template, problems_for, save_mapping
from mapping.views.common import connection_for, page_context


def _formset(request: HttpRequest, connection, data=None) -> RowFormSet:
    current = rows_for(connection)
    schema = schema_for(connection, connection.record_type) or {}
    posted_sources = [value for key, value in (data or {}).items() if key.endswith("-source")]
    posted_targets = [value for key, value in (data or {}).items() if key.endswith("-target_field")]
    return RowFormSet(
        data,
        initial=[initial_for(row) for row in current] if data is None else None,
        prefix="rows",
        source_options=source_choices(
            sources.catalogue(request.account), [row.source_key for row in current] + posted_sources
        ),
        target_options=target_choices(schema, [row.target_field for row in current] + posted_targets),
    )


@require_http_methods(["GET", "POST"])
@account_view()
def map_rows(request: HttpRequest, connection_id: int) -> HttpResponse:
    connection = connection_for(request, connection_id)
    if request.method == "POST":
        require_role(request, Role.ADMIN)
        formset = _formset(request, connection, request.POST)
        general: list[str] = []
        if formset.is_valid():
            kept = formset.rows(connection.record_type)
            problems = problems_for(connection, [row for _form, row in kept])
            for problem in problems:
                if problem.row_index is None:
                    general.append(problem.message)
                else:
                    kept[problem.row_index][0].show_problem(problem)
            errors = [problem for problem in problems if problem.is_error]
            if not errors:
                version = save_mapping(connection, [row for _form, row in kept], request=request)
                if version is None:
                    messages.info(request, "Nothing changed.")
                else:
                    messages.success(request, f"Saved as version {version.number}.")
                return redirect("mapping:map", account_slug=request.account.slug, connection_id=connection.pk)
            messages.error(
                request,
                f"Not saved: {len(errors)} problem{'s' if len(errors) != 1 else ''} to fix (shown beside each row).",
            )
        return render(
            request,
            "mapping/map.html",
            page_context(
                request,
                "map",
                connection,
                formset=formset,
                general_problems=general,
                problems=None,
            ),
            status=200,
        )
    formset = _formset(request, connection)
    problems = problems_for(connection)
    general = [problem.message for problem in problems if problem.row_index is None]
    for problem in problems:
        # The saved rows' problems, beside their rows (forms are in the rows' order).
        if problem.row_index is not None and problem.row_index < len(formset.forms):
            form = formset.forms[problem.row_index]
            (form.saved_problems if problem.is_error else form.warnings).append(problem.message)
    return render(
        request,
        "mapping/map.html",
        page_context(
            request,
            "map",
            connection,
            formset=formset,
            general_problems=general,
            problems=problems,
        ),
    )


@require_http_methods(["GET", "POST"])
@account_view()
def templates(request: HttpRequest, connection_id: int) -> HttpResponse:
    connection = connection_for(request, connection_id)
    form = ApplyTemplateForm(request.POST or None, initial={"template": request.GET.get("template")})
    if request.method == "POST":
        require_role(request, Role.ADMIN)
        if form.is_valid():
            report = apply_template(
                connection, form.cleaned_data["template"], request.user, mode=form.cleaned_data["mode"], request=request
            )
            if report.changed:
                messages.success(request, f"Template applied: mapping version {report.version.number}.")
            else:
                messages.info(request, "The mapping already matched the template: nothing changed.")
            for row, reason in report.waiting:
                messages.warning(request, f"“{row.target_field}” is switched off for now: {reason}.")
            return redirect("mapping:map", account_slug=request.account.slug, connection_id=connection.pk)
    available = [
        (template, bool(template.rows_for(connection.provider, connection.record_type)))
        for template in industry_templates().values()
    ]
    return render(
        request,
        "mapping/templates.html",
        page_context(
            request,
            "templates",
            connection,
            form=form,
            available=available,
        ),
    )


@account_view()
def history(request: HttpRequest, connection_id: int) -> HttpResponse:
    connection = connection_for(request, connection_id)
    versions = MappingVersion.objects.filter(connection=connection).select_related("changed_by")[:100]
    return render(request, "mapping/history.html", page_context(request, "map", connection, versions=versions))
