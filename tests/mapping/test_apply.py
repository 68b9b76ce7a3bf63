"""build_payload, payload_hash and apply_inbound: the pure functions the sync engines call."""

from __future__ import annotations

import datetime as dt

import pytest

from integrations.connector import FieldSchema
from mapping.apply import FieldTimes, apply_inbound, build_payload, payload_hash
from mapping.rows import MappingRow
from tests.mapping.conftest import HUBSPOT_CONTACT, SALESFORCE_LEAD, schema_dict

HUBSPOT = schema_dict(HUBSPOT_CONTACT)
SALESFORCE = schema_dict(SALESFORCE_LEAD)
UTC = dt.UTC

SNAPSHOT = {
    "email": "Ada.Lovelace@Example.com",
    "first_name": "Ada",
    "last_name": "Lovelace",
    "full_name": "Ada Lovelace",
    "phone": "+44 20 7946 0958",
    "company": "Analytical Engines",
    "job_title": "Head of Research",
    "consent_granted": True,
    "created_at": dt.datetime(2025, 1, 2, 9, 0, tzinfo=UTC),
    "views": 7,
    "questions_asked": 3,
    "last_question": "Does it integrate with our CRM?",
    "total_time_seconds": 845,
    "content_accessed": ["pricing", "security"],
    "last_capsule_url": "https://capsules.example.com/c/tour",
    "last_engaged_at": dt.datetime(2025, 1, 31, 14, 5, tzinfo=UTC),
    "lead_score": 72,
    "lead_grade": "B",
    "attr.industry": "fintech",
}


def row(target: str, source: str = "", **kw) -> MappingRow:
    return MappingRow(target_field=target, source_key=source, **kw)


def test_a_realistic_hubspot_contact_payload():
    rows = [
        row("email", "email", transform="lower"),
        row("firstname", "first_name"),
        row("lastname", "last_name"),
        row("phone", "phone", transform="phone_e164"),
        row("company", "company"),
        row("jobtitle", "job_title"),
        row("capsule_score", "lead_score"),
        row("capsule_grade", "lead_grade"),
        row("capsule_last_engaged", "last_engaged_at", transform="datetime", transform_options={"format": "epoch_ms"}),
        row("capsule_first_seen", "created_at", transform="date", transform_options={"format": "epoch_ms"}),
        row("capsule_time_spent_seconds", "total_time_seconds"),
        row("capsule_last_capsule_url", "last_capsule_url"),
        row("capsule_topics", "content_accessed", transform="join"),
        row("lifecyclestage", source_kind="constant", constant="lead"),
        row("city", source_kind="template", template="{{ first_name }} at {{ company }}"),
        row("website", "attr.website", enabled=False),
        row("country", "attr.country", direction="from_crm"),  # inbound only: never sent
    ]
    result = build_payload(SNAPSHOT, rows, HUBSPOT)
    assert result.problems == []
    assert result.fields == {
        "email": "ada.lovelace@example.com",
        "firstname": "Ada",
        "lastname": "Lovelace",
        "phone": "+442079460958",
        "company": "Analytical Engines",
        "jobtitle": "Head of Research",
        "capsule_score": 72,
        "capsule_grade": "B",
        "capsule_last_engaged": 1738332300000,
        "capsule_first_seen": 1735776000000,  # 2025-01-02 midnight UTC, as HubSpot date properties want
        "capsule_time_spent_seconds": 845,
        "capsule_last_capsule_url": "https://capsules.example.com/c/tour",
        "capsule_topics": "pricing;security",
        "lifecyclestage": "lead",
        "city": "Ada at Analytical Engines",
    }


def test_a_salesforce_lead_with_empty_name_and_company_gets_the_defaults():
    rows = [
        row("LastName", "last_name", default="Unknown"),
        row("Company", "company", default="Unknown"),
        row("Email", "email", transform="lower"),
        row("Title", "job_title"),
    ]
    result = build_payload({"email": "x@example.com", "last_name": " ", "company": None}, rows, SALESFORCE)
    assert result.fields == {"LastName": "Unknown", "Company": "Unknown", "Email": "x@example.com"}
    assert result.problems == []


def test_a_required_field_left_empty_without_default_is_a_problem():
    result = build_payload({"last_name": ""}, [row("LastName", "last_name")], SALESFORCE)
    assert result.fields == {}
    assert [p.field for p in result.problems] == ["LastName"]
    assert "required" in result.problems[0].message and "default" in result.problems[0].message


def test_datetimes_without_a_transform_are_sent_as_iso_utc():
    result = build_payload(SNAPSHOT, [row("capsule_last_engaged", "last_engaged_at")], HUBSPOT)
    assert result.fields == {"capsule_last_engaged": "2025-01-31T14:05:00Z"}


@pytest.mark.parametrize(
    ("rows", "snapshot", "expected_field", "words"),
    [
        ([row("nosuchfield", "email")], SNAPSHOT, "nosuchfield", "no field"),
        ([row("hs_object_id", "views")], SNAPSHOT, "hs_object_id", "read-only"),
        ([row("phone", "phone", transform="phone_e164")], {"phone": "12"}, "phone", "phone number"),
        ([row("lifecyclestage", source_kind="constant", constant="prospect")], {}, "lifecyclestage", "no option"),
        (
            [row("capsule_topics", "content_accessed")],
            {"content_accessed": ["pricing", "gossip"]},
            "capsule_topics",
            "'gossip'",
        ),
        ([row("capsule_score", "lead_score", transform="rot13")], SNAPSHOT, "capsule_score", "unknown transform"),
        ([row("capsule_score", "first_name")], SNAPSHOT, "capsule_score", "takes a number"),
        ([row("capsule_score", "consent_granted")], SNAPSHOT, "capsule_score", "takes a number"),
    ],
)
def test_a_value_that_cannot_be_sent_is_a_problem_and_left_out(rows, snapshot, expected_field, words):
    result = build_payload(snapshot, rows, HUBSPOT)
    assert expected_field not in result.fields
    assert [p.field for p in result.problems] == [expected_field]
    assert words in result.problems[0].message
    assert result.problems[0].is_error


def test_one_bad_value_does_not_stop_the_others():
    rows = [row("phone", "phone", transform="phone_e164"), row("firstname", "first_name")]
    result = build_payload({"phone": "nonsense", "first_name": "Ada"}, rows, HUBSPOT)
    assert result.fields == {"firstname": "Ada"}
    assert len(result.problems) == 1


def test_text_longer_than_the_field_is_cut_with_a_warning():
    result = build_payload({"first_name": "A" * 50}, [row("FirstName", "first_name")], SALESFORCE)
    assert result.fields == {"FirstName": "A" * 40}
    (problem,) = result.problems
    assert problem.severity == "warning" and "40" in problem.message and "50" in problem.message


def test_empty_values_are_never_sent_so_crm_data_is_not_blanked():
    rows = [row("firstname", "first_name"), row("capsule_topics", "content_accessed"), row("company", "company")]
    result = build_payload({"first_name": "", "content_accessed": [], "company": None}, rows, HUBSPOT)
    assert result.fields == {}
    assert result.problems == []


def test_rows_of_another_object_are_left_out_when_an_object_kind_is_given():
    rows = [row("firstname", "first_name"), row("dealname", "company", target_object="deal")]
    assert build_payload(SNAPSHOT, rows, HUBSPOT, object_kind="contact").fields == {"firstname": "Ada"}


# -- update policies --------------------------------------------------------------------------------

POLICY_CASES = [
    # (policy, crm_current, previously_sent, expected fields, expected create_only)
    ("overwrite", None, None, {"firstname": "Ada"}, set()),
    ("overwrite", {"firstname": "Augusta"}, {"firstname": "Ada"}, {"firstname": "Ada"}, set()),
    ("if_empty", {"firstname": "Augusta"}, None, {}, set()),
    ("if_empty", {"firstname": ""}, None, {"firstname": "Ada"}, set()),
    ("if_empty", {}, None, {"firstname": "Ada"}, set()),
    ("if_empty", None, None, {"firstname": "Ada"}, {"firstname"}),  # unknown CRM values: create only
    ("never_overwrite", None, None, {"firstname": "Ada"}, set()),
    ("never_overwrite", None, {"firstname": "Ada"}, {}, set()),
    ("never_overwrite", {"firstname": "Augusta"}, {}, {}, set()),
    ("never_overwrite", {"firstname": None}, {"lastname": "x"}, {"firstname": "Ada"}, set()),
]


@pytest.mark.parametrize(("policy", "crm_current", "previously_sent", "expected", "create_only"), POLICY_CASES)
def test_update_policy(policy, crm_current, previously_sent, expected, create_only):
    rows = [row("firstname", "first_name", update_policy=policy)]
    result = build_payload(
        {"first_name": "Ada"}, rows, HUBSPOT, crm_current=crm_current, previously_sent=previously_sent
    )
    assert result.fields == expected
    assert set(result.create_only) == create_only


def test_create_only_fields_are_left_out_of_updates():
    rows = [row("firstname", "first_name", update_policy="if_empty"), row("lastname", "last_name")]
    result = build_payload({"first_name": "Ada", "last_name": "Lovelace"}, rows, HUBSPOT)
    assert result.for_update() == {"lastname": "Lovelace"}


APPEND_CASES = [
    (None, ["pricing"], "pricing"),
    ({"capsule_topics": "security;api"}, ["pricing", "api"], "security;api;pricing"),
    ({"capsule_topics": ""}, "pricing", "pricing"),
    ({"capsule_topics": "pricing"}, ["pricing"], "pricing"),
]


@pytest.mark.parametrize(("crm_current", "value", "expected"), APPEND_CASES)
def test_append_merges_into_the_crm_multi_value(crm_current, value, expected):
    rows = [row("capsule_topics", "content_accessed", update_policy="append")]
    result = build_payload({"content_accessed": value}, rows, HUBSPOT, crm_current=crm_current)
    assert result.fields == {"capsule_topics": expected}


# -- payload hash --------------------------------------------------------------------------------


def test_payload_hash_ignores_key_order_and_sees_every_value_change():
    one = payload_hash({"a": 1, "b": "x", "c": [1, 2]})
    assert one == payload_hash({"c": [1, 2], "b": "x", "a": 1})
    assert one != payload_hash({"a": 1, "b": "y", "c": [1, 2]})
    assert one != payload_hash({"a": "1", "b": "x", "c": [1, 2]})
    assert len(one) == 64 and int(one, 16) >= 0


def test_payload_hash_is_stable_across_runs():
    # A fixed value: a change to the encoding would make every record look changed after a deploy.
    fields = {"email": "ada@example.com", "capsule_score": 72, "when": dt.datetime(2025, 1, 31, 14, 5, tzinfo=UTC)}
    assert payload_hash(fields) == payload_hash(
        {"when": "2025-01-31T14:05:00Z", "capsule_score": 72, "email": "ada@example.com"}
    )
    # sha256 of the sorted, compact JSON: {"capsule_score":72,"email":"ada@example.com","when":"2025-01-31T14:05:00Z"}
    assert payload_hash(fields) == "4560d512433b04330937a00ee9d94ae8fac8e93d4800c89d56def8ac39216dbe"


def test_equal_snapshots_give_equal_hashes_and_a_changed_value_another():
    rows = [row("firstname", "first_name"), row("capsule_score", "lead_score")]
    first = payload_hash(build_payload(SNAPSHOT, rows, HUBSPOT).fields)
    assert first == payload_hash(build_payload(dict(SNAPSHOT), rows, HUBSPOT).fields)
    assert first != payload_hash(build_payload({**SNAPSHOT, "lead_score": 73}, rows, HUBSPOT).fields)
    # A changed value that no row maps changes nothing.
    assert first == payload_hash(build_payload({**SNAPSHOT, "views": 99}, rows, HUBSPOT).fields)


# -- inbound ---------------------------------------------------------------------------------------

EARLY = dt.datetime(2025, 1, 1, tzinfo=UTC)
LATE = dt.datetime(2025, 2, 1, tzinfo=UTC)

CONFLICT_CASES = [
    # (policy, times, expected update, expected winner)
    ("crm_wins", None, "Augusta", "crm"),
    ("capsule_wins", None, None, "capsule"),
    ("newest_wins", FieldTimes(crm=LATE, capsule=EARLY), "Augusta", "crm"),
    ("newest_wins", FieldTimes(crm=EARLY, capsule=LATE), None, "capsule"),
    ("newest_wins", FieldTimes(crm=None, capsule=EARLY), None, "capsule"),
    ("newest_wins", FieldTimes(crm=EARLY, capsule=None), "Augusta", "crm"),
    ("newest_wins", FieldTimes(crm=EARLY, capsule=EARLY), "Augusta", "crm"),  # a tie goes to the CRM
    ("newest_wins", None, "Augusta", "crm"),
]


@pytest.mark.parametrize(("policy", "times", "expected", "winner"), CONFLICT_CASES)
def test_conflict_policy(policy, times, expected, winner):
    rows = [row("firstname", "first_name", direction="both", conflict_policy=policy)]
    result = apply_inbound(
        {"firstname": "Augusta"}, rows, {"first_name": "Ada"}, field_timestamps={"first_name": times} if times else {}
    )
    assert result.updates == ({"first_name": expected} if expected else {})
    (conflict,) = result.conflicts
    assert (conflict.crm_value, conflict.capsule_value, conflict.winner) == ("Augusta", "Ada", winner)


def test_inbound_takes_crm_values_for_empty_capsule_values_without_conflict():
    rows = [row("firstname", "first_name", direction="from_crm"), row("city", "attr.city", direction="both")]
    result = apply_inbound({"firstname": "Ada", "city": "London"}, rows, {"first_name": "", "attr.city": None})
    assert result.updates == {"first_name": "Ada", "attr.city": "London"}
    assert result.conflicts == []


def test_inbound_ignores_equal_values_empty_crm_values_and_outbound_rows():
    rows = [
        row("capsule_score", "lead_score", direction="both"),
        row("firstname", "first_name", direction="both"),
        row("lastname", "last_name"),  # to_crm only
        row("company", "company", direction="from_crm", enabled=False),
    ]
    crm = {"capsule_score": "72", "firstname": "", "lastname": "Byron", "company": "Other"}
    result = apply_inbound(crm, rows, {"lead_score": 72, "first_name": "Ada", "last_name": "Lovelace", "company": "AE"})
    assert result.updates == {}
    assert result.conflicts == []


def test_inbound_values_go_through_the_inverse_transform():
    rows = [
        row(
            "capsule_first_seen",
            "attr.first_seen",
            direction="from_crm",
            transform="date",
            transform_options={"format": "epoch_ms"},
        ),
        row(
            "hs_lead_status",
            "attr.tier",
            direction="from_crm",
            transform="picklist_map",
            transform_options={"map": {"enterprise": "OPEN"}},
        ),
    ]
    result = apply_inbound({"capsule_first_seen": "1738281600000", "hs_lead_status": "OPEN"}, rows, {})
    assert result.updates == {"attr.first_seen": "2025-01-31", "attr.tier": "enterprise"}


def test_a_crm_value_the_inverse_cannot_read_is_a_problem():
    rows = [row("capsule_first_seen", "attr.first_seen", direction="from_crm", transform="date")]
    result = apply_inbound({"capsule_first_seen": "someday"}, rows, {})
    assert result.updates == {}
    assert [p.field for p in result.problems] == ["capsule_first_seen"]


def test_numeric_text_and_true_false_text_pass_the_type_check():
    rows = [row("NumberOfStaff", "n"), row("HasOptedOutOfEmail", "b")]
    schema = {**SALESFORCE, "NumberOfStaff": FieldSchema("NumberOfStaff", "Staff", "number")}
    result = build_payload({"n": "40", "b": "false"}, rows, schema)
    assert result.fields == {"NumberOfStaff": "40", "HasOptedOutOfEmail": "false"}
    assert build_payload({"b": "maybe"}, [row("HasOptedOutOfEmail", "b")], SALESFORCE).fields == {}


def test_field_schema_max_length_none_means_no_cut():
    schema = {"note": FieldSchema("note", "Note", "text")}
    assert build_payload({"t": "x" * 5000}, [row("note", "t")], schema).fields == {"note": "x" * 5000}
