"""Step 5: test with sample data — the exact payload a prospect (or a generated sample) would send."""

from __future__ import annotations

import json

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from crmsync.models import Prospect, Role, normalise_email
from crmsync.tenancy import account_view
from mapping import sources
from mapping.apply import build_payload
from mapping.forms import SampleForm
from mapping.rows import rows_for
from mapping.samples import sample_snapshot
from mapping.schema import schema_for
from mapping.service import problems_for
from mapping.test_record import delete_test_record, send_test_record, tagged_prospect
from mapping.views.common import connection_for, page_context


@account_view()
def test_payload(request: HttpRequest, connection_id: int) -> HttpResponse:
    connection = connection_for(request, connection_id)
    form = SampleForm(request.GET or None)
    result = snapshot = prospect = None
    if request.GET and form.is_valid():
        email = form.cleaned_data["email"]
        if email:
            prospect = Prospect.objects.filter(account=request.account, email=normalise_email(email)).first()
            if prospect is None:
                form.add_error("email", "No prospect of this account has that e-mail address.")
            else:
                snapshot = sources.load_snapshots(request.account, [prospect.pk]).get(prospect.pk)
        else:
            snapshot = sample_snapshot(request.account)
    if snapshot is not None:
        schema = schema_for(connection, connection.record_type) or {}
        result = build_payload(snapshot, rows_for(connection), schema, object_kind=connection.record_type)
    return render(
        request,
        "mapping/test.html",
        page_context(
            request,
            "test",
            connection,
            form=form,
            prospect=prospect,
            snapshot=sorted((snapshot or {}).items()),
            result=result,
            payload_json=json.dumps(result.fields, indent=2, ensure_ascii=False, sort_keys=True) if result else "",
            mapping_problems=problems_for(connection),
            test_record=tagged_prospect(connection),
        ),
    )


@require_POST
@account_view(min_role=Role.ADMIN)
def send_test(request: HttpRequest, connection_id: int) -> HttpResponse:
    """Write one tagged test record through the real sync path."""
    connection = connection_for(request, connection_id)
    result = send_test_record(connection, request=request)
    if result.ok:
        verb = "created" if result.created else "updated"
        messages.success(
            request,
            f"Test record {verb} in {connection.spec.label}: id {result.crm_id}. "
            "Delete it below when you have looked at it.",
        )
    else:
        messages.error(request, f"{connection.spec.label} did not take the test record: {result.message}")
    return redirect("mapping:test", account_slug=request.account.slug, connection_id=connection.pk)


@require_POST
@account_view(min_role=Role.ADMIN)
def delete_test(request: HttpRequest, connection_id: int) -> HttpResponse:
    connection = connection_for(request, connection_id)
    result = delete_test_record(connection, request=request)
    if result.ok:
        messages.success(request, f"Test record deleted{f' ({result.crm_id})' if result.crm_id else ''}.")
    else:
        messages.error(request, result.message)
    return redirect("mapping:test", account_slug=request.account.slug, connection_id=connection.pk)
