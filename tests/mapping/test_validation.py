"""Each validation error against the CRM's schema, named with its row and reason."""

from __future__ import annotations

import pytest

from mapping import sources
from mapping.rows import MappingRow
from mapping.validation import validate
from tests.mapping.conftest import HUBSPOT_CONTACT, SALESFORCE_LEAD, schema_dict

HUBSPOT = schema_dict(HUBSPOT_CONTACT)
SALESFORCE = schema_dict(SALESFORCE_LEAD)
LEAD_BASE = [
    MappingRow("LastName", source_key="last_name", target_object="lead", default="Unknown"),
    MappingRow("Company", source_key="company", target_object="lead", default="Unknown"),
]


def row(target: str, source: str = "", **kw) -> MappingRow:
    kw.setdefault("target_object", "contact")
    return MappingRow(target_field=target, source_key=source, **kw)


def hubspot_problems(*rows: MappingRow, **kw):
    return validate(list(rows), HUBSPOT, record_type="contact", **kw)


def lead_problems(*rows: MappingRow, **kw):
    return validate(LEAD_BASE + list(rows), SALESFORCE, record_type="lead", **kw)


def test_a_good_mapping_has_no_problems():
    assert (
        hubspot_problems(
            row("email", "email", transform="lower"),
            row("phone", "phone", transform="phone_e164"),
            row("capsule_score", "views"),
            row(
                "capsule_last_engaged",
                "last_engaged_at",
                transform="datetime",
                transform_options={"format": "epoch_ms"},
            ),
            row("capsule_topics", "content_accessed"),
            row("city", source_kind="template", template="{{ first_name }} in {{ attr.city }}"),
            row("lifecyclestage", source_kind="constant", constant="lead"),
        )
        == []
    )


ERROR_CASES = [
    # (rows, row index, column, words in the message)
    ([row("nosuch", "email")], 0, "target_field", "has no field “nosuch”"),
    ([row("hs_object_id", "views")], 0, "target_field", "read-only"),
    ([row("capsule_score", "first_name")], 0, "transform", "type clash"),
    ([row("capsule_score", "first_name")], 0, "transform", "use the number transform"),
    ([row("capsule_last_engaged", "consent_granted")], 0, "transform", "boolean value"),
    ([row("capsule_first_seen", "last_engaged_at")], 0, "transform", "use the date transform"),
    ([row("firstname", "content_accessed")], 0, "transform", "use the join transform"),
    ([row("lifecyclestage", source_kind="constant", constant="prospect")], 0, "source", "no option “prospect”"),
    ([row("lifecyclestage", "attr.stage", default="visitor")], 0, "default", "no option “visitor”"),
    (
        [row("hs_lead_status", "attr.tier", transform="picklist_map", transform_options={"map": {"gold": "VIP"}})],
        0,
        "source",
        "no option “VIP”",
    ),
    ([row("firstname", "first_name"), row("firstname", "full_name")], 1, "target_field", "row 1 already writes"),
    ([row("firstname", "no_such_source")], 0, "source", "not a capsule field"),
    ([row("firstname", source_kind="template", template="Hi {{ nickname }}")], 0, "source", "“nickname”"),
    ([row("firstname", source_kind="template", template="Hi {{ first name }}")], 0, "source", "one field key"),
    ([row("firstname", source_kind="constant", constant=" ")], 0, "source", "constant is empty"),
    ([row("firstname", "first_name", transform="rot13")], 0, "transform", "no transform"),
    ([row("firstname", "full_name", transform="split_full_name")], 0, "transform", "part"),
    ([row("capsule_score", "consent_granted", transform="phone_e164")], 0, "transform", "does not take"),
    ([row("firstname", "first_name", update_policy="append")], None, None, None),  # text fields may append
    ([row("capsule_score", "views", update_policy="append")], 0, "update_policy", "multi-value"),
    ([row("firstname", "views", direction="from_crm")], 0, "direction", "computed by capsule"),
    ([row("firstname", source_kind="constant", constant="x", direction="both")], 0, "direction", "only a field row"),
    ([row("firstname", "first_name", update_policy="sometimes")], 0, "update_policy", "not one of"),
    ([row("firstname", "first_name", target_object="lead")], 0, "target_object", "syncs contacts, not leads"),
    ([row("firstname", "")], 0, "source", "choose the capsule field"),
]


@pytest.mark.parametrize(("rows", "index", "column", "words"), ERROR_CASES)
def test_validation_error(rows, index, column, words):
    problems = [p for p in hubspot_problems(*rows) if p.is_error]
    if words is None:
        assert problems == []
        return
    matching = [p for p in problems if words in p.message]
    assert matching, [p.message for p in problems]
    assert matching[0].row_index == index
    assert matching[0].column == column
    assert str(matching[0]).startswith(f"Row {index + 1}: ")


def test_a_required_salesforce_lead_field_left_unmapped_is_an_error():
    problems = validate([row("Email", "email", target_object="lead")], SALESFORCE, record_type="lead")
    missing = sorted(p.field for p in problems if p.row_index is None)
    assert missing == ["Company", "LastName"]
    assert all("requires" in p.message for p in problems if p.row_index is None)


def test_required_overrides_add_provider_facts_to_the_schema():
    problems = hubspot_problems(row("firstname", "first_name"), required_overrides=["email"])
    assert [(p.row_index, p.field) for p in problems] == [(None, "email")]
    assert hubspot_problems(row("email", "email"), required_overrides=["email"]) == []


def test_a_disabled_row_neither_errs_nor_satisfies_a_requirement():
    problems = validate(
        [
            row("LastName", "last_name", target_object="lead", enabled=False),
            row("nosuch", "x", enabled=False, target_object="lead"),
            row("Company", "company", target_object="lead"),
        ],
        SALESFORCE,
        record_type="lead",
    )
    assert [(p.row_index, p.field) for p in problems] == [(None, "LastName")]


def test_an_inbound_only_row_does_not_satisfy_a_requirement_or_clash():
    problems = lead_problems(row("Rating", "attr.rating", direction="from_crm", target_object="lead"))
    assert problems == []
    problems = validate(
        [
            row("LastName", "last_name", direction="from_crm", target_object="lead"),
            row("Company", "company", target_object="lead"),
        ],
        SALESFORCE,
        record_type="lead",
    )
    assert [(p.row_index, p.field) for p in problems] == [(None, "LastName")]


def test_long_text_into_a_limited_field_is_a_warning_only():
    problems = lead_problems(row("Title", "last_question", target_object="lead"))
    assert [p.severity for p in problems] == ["warning"]
    assert lead_problems(row("Title", "last_question", target_object="lead", transform="truncate")) == []


def test_deal_rows_without_a_deal_schema_are_a_warning_and_checked_when_one_is_given():
    deal = row("dealname", "company", target_object="deal")
    (problem,) = hubspot_problems(deal)
    assert problem.severity == "warning" and "not loaded" in problem.message
    deals = {"dealname": HUBSPOT["firstname"].__class__("dealname", "Deal Name", "string")}
    assert hubspot_problems(deal, other_schemas={"deal": deals}) == []
    assert (
        "no field"
        in hubspot_problems(row("amount", "conversion_value", target_object="deal"), other_schemas={"deal": deals})[
            0
        ].message
    )


def test_source_keys_of_the_account_catalogue_and_any_attribute_are_accepted():
    index = {
        **sources.catalogue_index(),
        "custom.key": sources.SourceField("custom.key", "Custom", "string", "prospect"),
    }
    assert hubspot_problems(row("firstname", "custom.key"), source_index=index) == []
    assert hubspot_problems(row("firstname", "attr.never_seen_yet")) == []
    assert hubspot_problems(row("firstname", "custom.key"))[0].column == "source"
