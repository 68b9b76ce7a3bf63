"""Standard mappings and industry templates: the YAML loads, applies, versions and audits."""

from __future__ import annotations

import pytest

from crmsync.models import AuditEntry
from integrations.connector import FieldSchema
from mapping import presets, sources
from mapping.models import FieldMapping, MappingVersion
from mapping.presets import PresetError, parse_industry, parse_standard
from mapping.rows import rows_for
from mapping.service import apply_standard_mapping, apply_template, problems_for
from tests.mapping.conftest import HUBSPOT_CONTACT, SALESFORCE_CONTACT, SALESFORCE_LEAD, cache_schema

INDUSTRIES = ["agencies", "b2b_saas", "education", "financial_services", "healthcare", "real_estate"]


def every_row():
    for provider, standard in presets.standard_mappings().items():
        for object_kind, preset in standard.objects.items():
            for row in preset.rows:
                yield f"standard/{provider}.yaml {object_kind}", row
    for name, template in presets.industry_templates().items():
        for provider, objects in template.providers.items():
            for object_kind, rows in objects.items():
                for row in rows:
                    yield f"industry/{name}.yaml {provider} {object_kind}", row


def test_every_preset_file_parses():
    from integrations.registry import providers

    standard = set(presets.standard_mappings())
    # Every standard mapping belongs to a registered CRM, and the tier-1 CRMs all have one.
    assert standard <= set(providers())
    assert {"hubspot", "salesforce"} <= standard
    assert sorted(presets.industry_templates()) == INDUSTRIES
    for template in presets.industry_templates().values():
        assert template.label and template.description
        # Each industry template covers every CRM that has a standard mapping.
        assert set(template.providers) == standard


def test_every_rows_source_key_is_in_the_catalogue(score_group):
    index = sources.catalogue_index()
    checked = 0
    for where, row in every_row():
        for key in row.source_keys():
            assert sources.resolve(key, index) is not None, f"{where}: {key}"
            checked += 1
    assert checked > 50


def test_the_salesforce_standard_mapping_states_its_requirements_and_defaults():
    lead = presets.object_preset("salesforce", "lead")
    assert set(lead.required) == {"LastName", "Company"}
    by_target = {row.target_field: row for row in lead.rows}
    assert by_target["LastName"].default == "Unknown" and by_target["Company"].default == "Unknown"
    assert (by_target["LeadSource"].source_kind, by_target["LeadSource"].constant) == ("constant", "Web")
    assert {spec.name for spec in lead.custom_fields} == {
        "Capsule_Score__c",
        "Capsule_Grade__c",
        "Capsule_Last_Engaged__c",
        "Capsule_Time_Spent__c",
        "Capsule_Last_Capsule_URL__c",
    }


def test_hubspot_datetimes_are_sent_as_epoch_ms_by_the_standard_mapping():
    rows = {row.target_field: row for row in presets.object_preset("hubspot", "contact").rows}
    assert rows["capsule_last_engaged"].transform == "datetime"
    assert rows["capsule_last_engaged"].transform_options == {"format": "epoch_ms"}


def test_a_provider_without_a_file_gets_no_standard_mapping():
    assert presets.standard_mapping("nocrm") is None
    assert presets.object_preset("nocrm", "contact").rows == ()
    assert presets.template_rows("nocrm", "contact", presets.industry_template("b2b_saas")) == []


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"provider": "x", "objects": {"contact": {"rows": [{"target": "a"}]}}}, "exactly one of"),
        ({"provider": "x", "objects": {"contact": {"rows": [{"source": "email"}]}}}, "target"),
        (
            {"provider": "x", "objects": {"contact": {"rows": [{"source": "email", "target": "a", "colour": 1}]}}},
            "unknown keys",
        ),
        (
            {"provider": "x", "objects": {"contact": {"rows": [{"source": "email", "target": "a", "update": "x"}]}}},
            "update",
        ),
        ({"provider": "x", "objects": {"person": {"rows": []}}}, "contact, lead or deal"),
        (
            {"provider": "x", "objects": {"contact": {"custom_fields": [{"name": "a", "label": "A", "type": "blob"}]}}},
            "type",
        ),
        ({"objects": {}}, "provider and objects"),
    ],
)
def test_a_malformed_standard_file_is_refused_with_its_place(data, message):
    with pytest.raises(PresetError, match=message) as error:
        parse_standard(data, "broken.yaml")
    assert "broken.yaml" in str(error.value)


def test_a_malformed_template_is_refused():
    with pytest.raises(PresetError, match="name, label"):
        parse_industry({"label": "No name", "providers": {}}, "t.yaml")
    with pytest.raises(PresetError, match="row 1"):
        parse_industry(
            {"name": "t", "label": "T", "providers": {"hubspot": {"contact": {"rows": [{"x": 1}]}}}}, "t.yaml"
        )


# -- applying --------------------------------------------------------------------------------------


def test_a_new_connection_gets_the_standard_mapping_once(account, make_connection):
    connection = make_connection(account, "salesforce", "lead")
    rows = rows_for(connection)
    assert [row.target_field for row in rows][:4] == ["Email", "FirstName", "LastName", "Company"]
    version = MappingVersion.objects.get(connection=connection)
    assert version.number == 1 and "standard" in version.summary
    assert AuditEntry.objects.filter(action="mapping.changed", object_id=str(connection.pk)).count() == 1
    # Applying again (the connect flow does) changes nothing.
    report = apply_standard_mapping(connection)
    assert not report.changed
    assert MappingVersion.objects.filter(connection=connection).count() == 1


def test_rows_for_missing_custom_fields_start_switched_off(account, make_connection):
    connection = make_connection(account, "hubspot", "contact")  # no schema cached yet
    rows = {row.target_field: row for row in rows_for(connection)}
    assert rows["email"].enabled and rows["phone"].enabled
    assert not rows["capsule_time_spent_seconds"].enabled
    assert not rows["capsule_last_engaged"].enabled


def test_a_template_replaces_the_mapping_in_one_versioned_audited_step(hubspot_connection, owner, score_group):
    report = apply_template(hubspot_connection, "b2b_saas", owner)
    assert report.changed
    targets = [row.target_field for row in rows_for(hubspot_connection)]
    assert targets[:6] == ["email", "firstname", "lastname", "phone", "company", "jobtitle"]
    assert {"website", "lifecyclestage", "hs_lead_status"} <= set(targets)
    version = MappingVersion.objects.filter(connection=hubspot_connection).first()
    assert version.changed_by == owner and "B2B SaaS" in version.summary
    entry = AuditEntry.objects.filter(action="mapping.changed", object_id=str(hubspot_connection.pk)).first()
    assert entry.actor_label == owner.get_username()
    assert "hubspot" not in entry.changes["diff"]["removed"]
    assert "contact.website" in entry.changes["diff"]["added"]
    assert len(entry.changes["after"]) == len(targets)
    # The same template again: nothing to change, no new version.
    assert not apply_template(hubspot_connection, "b2b_saas", owner).changed


def test_merge_keeps_the_current_rows_and_lays_the_template_over_them(hubspot_connection, owner):
    FieldMapping.objects.filter(connection=hubspot_connection).delete()
    FieldMapping.objects.create(connection=hubspot_connection, source_key="attr.city", target_field="city")
    FieldMapping.objects.create(connection=hubspot_connection, source_key="attr.site", target_field="website")
    apply_template(hubspot_connection, "real_estate", owner, mode="merge")
    rows = {row.target_field: row for row in rows_for(hubspot_connection)}
    assert rows["website"].source_key == "attr.site"  # kept: the template does not write website
    assert rows["city"].source_key == "attr.city"
    assert rows["mobilephone"].transform == "phone_e164"
    assert "email" not in rows  # merge does not bring the standard rows back


def test_an_unknown_template_is_a_lookup_error(hubspot_connection):
    with pytest.raises(LookupError, match="b2b_saas"):
        apply_template(hubspot_connection, "space_mining")


@pytest.mark.parametrize("name", INDUSTRIES)
@pytest.mark.parametrize(
    ("provider", "record_type", "schema"),
    [
        ("hubspot", "contact", HUBSPOT_CONTACT),
        ("salesforce", "lead", SALESFORCE_LEAD),
        ("salesforce", "contact", SALESFORCE_CONTACT),
    ],
)
def test_every_template_validates_against_a_schema_with_the_capsule_fields(
    account, make_connection, score_group, name, provider, record_type, schema
):
    connection = make_connection(account, provider, record_type)
    custom = presets.object_preset(provider, record_type).custom_fields
    present = {field.name for field in schema}
    fields = schema + [
        FieldSchema(spec.name, spec.label, spec.type, custom=True) for spec in custom if spec.name not in present
    ]
    cache_schema(connection, record_type, fields)
    report = apply_template(connection, name)
    assert report.waiting == []
    assert problems_for(connection) == [], [str(p) for p in problems_for(connection)]
