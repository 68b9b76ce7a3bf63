"""The ops admin: inline rows validated and versioned, apply-template action, preview, read-only
history and schema cache."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from crmsync.models import AuditEntry, Prospect
from mapping.models import FieldMapping, MappingVersion
from mapping.rows import rows_for


def inline_data(connection, rows: list[FieldMapping], changes: dict[int, dict] | None = None) -> dict:
    prefix = "field_mappings"
    data = {
        f"{prefix}-TOTAL_FORMS": str(len(rows)),
        f"{prefix}-INITIAL_FORMS": str(len(rows)),
        f"{prefix}-MIN_NUM_FORMS": "0",
        f"{prefix}-MAX_NUM_FORMS": "1000",
    }
    for index, row in enumerate(rows):
        values = {
            "id": row.pk,
            "connection": connection.pk,
            "order": row.order,
            "enabled": "on" if row.enabled else "",
            "source_kind": row.source_kind,
            "source_key": row.source_key,
            "constant": row.constant,
            "template": row.template,
            "target_object": row.target_object,
            "target_field": row.target_field,
            "transform": row.transform,
            "transform_options": json.dumps(row.transform_options or {}),
            "default": row.default,
            "update_policy": row.update_policy,
            "direction": row.direction,
            "conflict_policy": row.conflict_policy,
        }
        values.update((changes or {}).get(index, {}))
        for key, value in values.items():
            if key == "enabled" and not value:
                continue
            data[f"{prefix}-{index}-{key}"] = value
    return data


def change_url(connection) -> str:
    return reverse("admin:mapping_connectionmapping_change", args=[connection.pk])


def test_the_connection_mapping_admin_lists_live_connections(admin_client, hubspot_connection):
    page = admin_client.get(reverse("admin:mapping_connectionmapping_changelist"))
    assert page.status_code == 200
    assert change_url(hubspot_connection) in page.content.decode()


def test_an_inline_change_is_versioned_and_audited(admin_client, hubspot_connection):
    rows = list(FieldMapping.objects.filter(connection=hubspot_connection).order_by("order", "id"))
    versions = MappingVersion.objects.filter(connection=hubspot_connection).count()
    response = admin_client.post(
        change_url(hubspot_connection), inline_data(hubspot_connection, rows, {1: {"default": "Friend"}})
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert rows_for(hubspot_connection)[1].default == "Friend"
    version = MappingVersion.objects.filter(connection=hubspot_connection).first()
    assert version.number == versions + 1 and "ops admin" in version.summary
    entry = AuditEntry.objects.filter(action="mapping.changed").first()
    assert entry.changes["diff"]["changed"] == ["contact.firstname"]


def test_an_inline_change_with_errors_is_refused_on_its_row(admin_client, hubspot_connection):
    rows = list(FieldMapping.objects.filter(connection=hubspot_connection).order_by("order", "id"))
    before = [row.as_dict() for row in rows_for(hubspot_connection)]
    response = admin_client.post(
        change_url(hubspot_connection), inline_data(hubspot_connection, rows, {1: {"target_field": "capsule_score"}})
    )
    assert response.status_code == 200
    formset = response.context["inline_admin_formsets"][0].formset
    assert "type clash" in " ".join(formset.forms[1].non_field_errors())
    assert [row.as_dict() for row in rows_for(hubspot_connection)] == before


def test_the_apply_template_action_asks_then_applies(admin_client, hubspot_connection):
    changelist = reverse("admin:mapping_connectionmapping_changelist")
    ask = admin_client.post(
        changelist, {"action": "apply_template_action", "_selected_action": [hubspot_connection.pk]}
    )
    assert ask.status_code == 200 and "Apply the template" in ask.content.decode()
    done = admin_client.post(
        changelist,
        {
            "action": "apply_template_action",
            "_selected_action": [hubspot_connection.pk],
            "apply": "yes",
            "template": "agencies",
            "mode": "replace",
            "confirm": "on",
        },
    )
    assert done.status_code == 302
    assert "website" in [row.target_field for row in rows_for(hubspot_connection)]
    assert "Agencies" in MappingVersion.objects.filter(connection=hubspot_connection).first().summary


def test_the_preview_shows_the_payload_for_a_chosen_prospect(admin_client, hubspot_connection):
    Prospect.objects.create(
        account=hubspot_connection.account, email="ada@example.com", first_name="Ada", job_title="Head of Research"
    )
    preview = reverse("admin:mapping_connectionmapping_preview", args=[hubspot_connection.pk])
    response = admin_client.get(preview, {"email": "ada@example.com"})
    assert response.status_code == 200
    assert response.context["result"].fields["jobtitle"] == "Head of Research"
    assert "for ada@example.com" in response.content.decode()
    sample = admin_client.get(preview)
    assert sample.context["result"].fields["firstname"] == "Ada"  # the generated sample


@pytest.mark.parametrize("model", ["mappingversion", "crmschema"])
def test_history_and_schema_cache_are_read_only(admin_client, hubspot_connection, model):
    listing = admin_client.get(reverse(f"admin:mapping_{model}_changelist"))
    assert listing.status_code == 200
    assert admin_client.get(reverse(f"admin:mapping_{model}_add")).status_code == 403
