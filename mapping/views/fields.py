"""Step 2: the CRM's fields (cached schema), refreshing them, and creating the capsule fields."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from crmsync import audit
from crmsync.models import Role
from crmsync.tenancy import account_view, require_role
from integrations.errors import CrmError
from mapping.provisioning import CREATE_METHOD, provision_fields, required_fields
from mapping.rows import rows_for
from mapping.schema import cached_schema, refresh_schema
from mapping.views.common import connection_for, page_context


def _can_create_fields(connection) -> bool:
    try:
        return callable(getattr(connection.spec.connector_class(), CREATE_METHOD, None))
    except ImportError:
        return False


@account_view()
def fields(request: HttpRequest, connection_id: int) -> HttpResponse:
    connection = connection_for(request, connection_id)
    cached = cached_schema(connection, connection.record_type)
    schema = cached.field_schemas() if cached else {}
    capsule_fields = [(spec, spec.name in schema) for spec in required_fields(connection)]
    existing = {spec.name for spec, exists in capsule_fields if exists}
    waiting_rows = [
        row.target_field for row in rows_for(connection) if not row.enabled and row.target_field in existing
    ]
    return render(
        request,
        "mapping/fields.html",
        page_context(
            request,
            "fields",
            connection,
            cached=cached,
            schema_fields=sorted(schema.values(), key=lambda f: (not f.required, f.label.lower())),
            capsule_fields=capsule_fields,
            capsule_fields_missing=sum(1 for _spec, exists in capsule_fields if not exists),
            waiting_rows=waiting_rows,
        ),
    )


@require_POST
@account_view(min_role=Role.ADMIN)
def refresh_fields(request: HttpRequest, connection_id: int) -> HttpResponse:
    connection = connection_for(request, connection_id)
    try:
        cached = refresh_schema(connection, connection.record_type)
    except CrmError as exc:
        messages.error(request, f"{connection.spec.label} did not give its fields: {exc}")
    else:
        audit.record(
            "mapping.schema_refreshed",
            request=request,
            obj=connection,
            changes={"object_kind": cached.object_kind, "fields": len(cached.fields)},
        )
        messages.success(
            request, f"Loaded {len(cached.fields)} {connection.record_type} fields from {connection.spec.label}."
        )
    return redirect("mapping:fields", account_slug=request.account.slug, connection_id=connection.pk)


@require_http_methods(["GET", "POST"])
@account_view()
def provision(request: HttpRequest, connection_id: int) -> HttpResponse:
    """GET: which capsule fields the CRM lacks (from the cached fields) and what will happen.
    POST (admin, confirmed): create them where the connector can, and report."""
    connection = connection_for(request, connection_id)
    report = None
    if request.method == "POST":
        require_role(request, Role.ADMIN)
        if request.POST.get("confirm") != "yes":
            messages.error(request, "Tick the confirmation to create the fields.")
        else:
            try:
                report = provision_fields(connection, confirmed=True, request=request)
            except CrmError as exc:
                messages.error(request, f"{connection.spec.label} refused: {exc}")
    cached = cached_schema(connection, connection.record_type)
    schema = cached.field_schemas() if cached else {}
    specs = [(spec, spec.name in schema) for spec in required_fields(connection)]
    return render(
        request,
        "mapping/provision.html",
        page_context(
            request,
            "fields",
            connection,
            specs=specs,
            report=report,
            supported=_can_create_fields(connection),
            loaded=cached is not None,
        ),
    )
