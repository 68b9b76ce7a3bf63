"""What the provisioning report tells a person to create by hand."""

from __future__ import annotations

from mapping import presets
from mapping.provisioning import ProvisionReport


def test_manual_steps_name_each_missing_field_with_the_crms_own_type():
    specs = list(presets.object_preset("salesforce", "lead").custom_fields)
    report = ProvisionReport(
        "lead",
        "Salesforce",
        supported=False,
        confirmed=True,
        missing=specs[:2],
        failed=[(specs[2], "INSUFFICIENT_ACCESS")],
    )
    steps = report.manual_steps()
    assert steps == [
        "In Salesforce, create a lead field “Capsule score” with the API name Capsule_Score__c, type Number(18, 0).",
        "In Salesforce, create a lead field “Capsule grade” with the API name Capsule_Grade__c, type Text(10).",
        "In Salesforce, create a lead field “Capsule last engaged” with the API name Capsule_Last_Engaged__c, "
        "type Date/Time.",
    ]
    assert not report.complete
    assert ProvisionReport("lead", "Salesforce", supported=True, confirmed=True, existing=specs).complete


def test_every_standard_mapping_declares_the_capsule_fields_its_rows_write():
    for provider, standard in presets.standard_mappings().items():
        for object_kind, preset in standard.objects.items():
            declared = {spec.name for spec in preset.custom_fields}
            custom_targets = {
                row.target_field
                for row in preset.rows
                if row.source_key
                in {"lead_score", "lead_grade", "last_engaged_at", "total_time_seconds", "last_capsule_url"}
            }
            assert custom_targets == declared, (provider, object_kind)
            assert len(declared) == 5
