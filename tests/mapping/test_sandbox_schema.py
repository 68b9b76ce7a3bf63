"""Against the sandbox CRMs through the real connectors: the fields each CRM describes, every
template validating against them, capsule fields created in the CRM and seen after a refresh."""

from __future__ import annotations

import pytest
import requests
from django.test import override_settings
from django.urls import reverse

from crmsync.models import Prospect
from integrations.sandbox.core import EmulatorServer
from integrations.sandbox.hubspot import HubSpotEmulator
from integrations.sandbox.salesforce import SalesforceEmulator
from mapping import presets
from mapping.apply import build_payload
from mapping.provisioning import provision_fields
from mapping.rows import rows_for
from mapping.schema import refresh_schema, schema_for
from mapping.service import apply_template, problems_for
from mapping.sources import load_snapshots

INDUSTRIES = sorted(presets.industry_templates())


@pytest.fixture
def hubspot_sandbox():
    app = HubSpotEmulator()
    with (
        EmulatorServer(app) as server,
        override_settings(CRM_ENDPOINTS={"hubspot": {"api_url": server.url, "oauth_url": server.url}}),
    ):
        yield app, server


@pytest.fixture
def salesforce_sandbox(tmp_path):
    app = SalesforceEmulator()
    server = app.serve()
    try:
        with override_settings(
            CRM_CA_BUNDLE=str(app.ca.ca_path),
            CRM_ENDPOINTS={"salesforce": {"api_url": server.url, "oauth_url": server.url}},
        ):
            yield app, server
    finally:
        server.stop()


@pytest.fixture
def hubspot_live(account, make_connection, hubspot_sandbox, score_group):
    app, _server = hubspot_sandbox
    return make_connection(
        account, "hubspot", "contact", access_token=app.issue_private_app_token(), auth_kind="private_app_token"
    )


@pytest.fixture(params=["lead", "contact"])
def salesforce_live(request, account, make_connection, salesforce_sandbox, score_group):
    app, server = salesforce_sandbox
    return make_connection(
        account,
        "salesforce",
        request.param,
        access_token=app.issue_token().access_token,
        auth_kind="private_app_token",
        api_base_url=server.url,
    )


def test_the_hubspot_contact_fields_come_from_the_sandbox(hubspot_live):
    cached = refresh_schema(hubspot_live, "contact")
    fields = cached.field_schemas()
    assert {"email", "firstname", "lastname", "phone", "company", "jobtitle", "lifecyclestage"} <= set(fields)
    assert "lead" in fields["lifecyclestage"].options
    assert fields["hs_object_id"].read_only


def test_the_salesforce_fields_come_from_the_sandbox(salesforce_live):
    fields = refresh_schema(salesforce_live, salesforce_live.record_type).field_schemas()
    assert fields["LastName"].required and "Web" in fields["LeadSource"].options
    if salesforce_live.record_type == "lead":
        assert fields["Company"].required


@pytest.mark.parametrize("name", INDUSTRIES)
def test_every_template_validates_against_the_hubspot_sandbox(hubspot_live, name):
    refresh_schema(hubspot_live, "contact")
    apply_template(hubspot_live, name)
    assert problems_for(hubspot_live) == [], [str(p) for p in problems_for(hubspot_live)]


@pytest.mark.parametrize("name", INDUSTRIES)
def test_every_template_validates_against_the_salesforce_sandbox(salesforce_live, name):
    refresh_schema(salesforce_live, salesforce_live.record_type)
    apply_template(salesforce_live, name)
    assert problems_for(salesforce_live) == [], [str(p) for p in problems_for(salesforce_live)]


def test_capsule_fields_are_created_in_hubspot_and_their_rows_switched_on(hubspot_live):
    before = provision_fields(hubspot_live)  # not confirmed: a plan only
    assert {spec.name for spec in before.missing} == {
        "capsule_score",
        "capsule_grade",
        "capsule_last_engaged",
        "capsule_time_spent_seconds",
        "capsule_last_capsule_url",
    }
    assert not rows_for(hubspot_live)[6].enabled
    report = provision_fields(hubspot_live, confirmed=True)
    assert report.supported and report.complete
    assert {spec.name for spec in report.created} == {spec.name for spec in before.missing}
    assert set(report.enabled_rows) == {spec.name for spec in before.missing}
    schema = schema_for(hubspot_live, "contact")
    assert schema["capsule_score"].type == "number" and schema["capsule_score"].custom
    assert problems_for(hubspot_live) == []
    prospect = Prospect.objects.create(account=hubspot_live.account, email="ada@example.com", first_name="Ada")
    snapshot = load_snapshots(hubspot_live.account, [prospect.pk])[prospect.pk]
    payload = build_payload(snapshot, rows_for(hubspot_live), schema)
    assert payload.fields["capsule_time_spent_seconds"] == 0
    # Again: everything exists, nothing is created twice.
    again = provision_fields(hubspot_live, confirmed=True)
    assert again.created == [] and len(again.existing) == 5


def test_a_field_created_in_hubspot_appears_after_a_refresh(hubspot_live, hubspot_sandbox, client, owner):
    _app, server = hubspot_sandbox
    refresh_schema(hubspot_live, "contact")
    assert "favourite_capsule" not in schema_for(hubspot_live, "contact")
    created = requests.post(
        f"{server.url}/crm/v3/properties/contacts",
        json={
            "name": "favourite_capsule",
            "label": "Favourite capsule",
            "type": "string",
            "fieldType": "text",
            "groupName": "contactinformation",
        },
        headers={"Authorization": f"Bearer {hubspot_live.access_token}"},
        timeout=10,
    )
    assert created.status_code == 201
    client.force_login(owner)
    response = client.post(
        reverse(
            "mapping:refresh_fields",
            kwargs={"account_slug": hubspot_live.account.slug, "connection_id": hubspot_live.pk},
        )
    )
    assert response.status_code == 302
    assert schema_for(hubspot_live, "contact")["favourite_capsule"].custom


def test_capsule_fields_are_created_in_salesforce_and_their_rows_switched_on(salesforce_live):
    names = {
        "Capsule_Score__c",
        "Capsule_Grade__c",
        "Capsule_Last_Engaged__c",
        "Capsule_Time_Spent__c",
        "Capsule_Last_Capsule_URL__c",
    }
    report = provision_fields(salesforce_live, confirmed=True)
    assert report.supported and report.complete
    assert {spec.name for spec in report.created} == names
    assert set(report.enabled_rows) == names
    schema = schema_for(salesforce_live, salesforce_live.record_type)
    assert schema["Capsule_Last_Engaged__c"].type == "datetime" and schema["Capsule_Score__c"].custom
    assert problems_for(salesforce_live) == []


def test_the_admin_refresh_action_reloads_a_cached_schema(hubspot_live, admin_client):
    from mapping.models import CrmSchema

    cached = refresh_schema(hubspot_live, "contact")
    CrmSchema.objects.filter(pk=cached.pk).update(fields=[])
    response = admin_client.post(
        reverse("admin:mapping_crmschema_changelist"), {"action": "refresh", "_selected_action": [cached.pk]}
    )
    assert response.status_code == 302
    assert "email" in schema_for(hubspot_live, "contact")
