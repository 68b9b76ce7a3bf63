"""What a rule may store: condition options and actions checked per type, placeholders, the model's clean."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from scoring.models_triggers import TriggerRule
from scoring.triggers.action_types import validate_actions
from scoring.triggers.conditions import validate_condition
from scoring.triggers.placeholders import render


def errors_of(call, *args) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as caught:
        call(*args)
    return caught.value.message_dict


def test_options_get_their_defaults():
    assert validate_condition("negative_sentiment", {}) == {"max_score": -0.3, "negative_label": True}
    assert validate_condition("capsule_viewed", {}) == {"first_view_only": False}
    assert validate_condition("grade_crossed", {"to_grade": "hot"}) == {
        "to_grade": "hot",
        "upwards_only": True,
        "on_recompute": False,
    }


@pytest.mark.parametrize(
    ("condition_type", "options", "key", "message"),
    [
        ("question_asked", {"pattern": "pric(e"}, "pattern", "not a valid regular expression"),
        ("question_asked", {}, "keyword", "Give a keyword, a pattern, or both."),
        ("question_asked", {"pattern": "x" * 201}, "pattern", "at most 200 characters"),
        ("high_engagement", {}, "min_seconds", "Give a total time, a lead score, or both."),
        ("high_engagement", {"min_seconds": 1.5}, "min_seconds", "whole number"),
        ("high_engagement", {"min_seconds": True}, "min_seconds", "whole number"),
        ("negative_sentiment", {"max_score": -2}, "max_score", "at least -1"),
        ("grade_crossed", {}, "to_grade", "required"),
        ("grade_crossed", {"to_grade": "very hot"}, "to_grade", "letters, digits"),
        ("low_engagement", {"days": 0, "max_score": 10}, "days", "at least 1"),
        ("capsule_viewed", {"first_view_only": "yes"}, "first_view_only", "true or false"),
        ("cta_clicked", {"colour": "red"}, "colour", "not an option of cta clicked rules"),
    ],
)
def test_bad_condition_options_are_named(condition_type, options, key, message):
    errors = errors_of(validate_condition, condition_type, options)

    assert message in " ".join(errors[key])


def test_an_unknown_condition_type_is_refused():
    assert "condition_type" in errors_of(validate_condition, "moon_phase", {})


def test_actions_are_cleaned_in_order():
    actions = validate_actions(
        [
            {"type": "create_task", "subject": " Call {{ first_name }} "},
            {"type": "assign_owner", "owner_ids": [101, "102"]},
            {"type": "send_webhook"},
        ]
    )

    assert actions == [
        {"type": "create_task", "subject": "Call {{ first_name }}", "due_in_days": 1},
        {"type": "assign_owner", "owner_ids": ["101", "102"]},
        {"type": "send_webhook"},
    ]


@pytest.mark.parametrize(
    ("actions", "message"),
    [
        ([], "Add at least one action."),
        ([{"type": "fax"}], "Action 1, type: “fax” is not an action type."),
        ([{"type": "create_task"}], "Action 1, subject: This option is required."),
        ([{"type": "create_task", "subject": "Hi {{ nickname }}"}], "Unknown placeholder {{ nickname }}"),
        ([{"type": "send_email", "to": "not-an-address"}], "Action 1, to: Enter a valid e-mail address."),
        ([{"type": "assign_owner", "owner_ids": ["7", "7"]}], "7 is repeated"),
        ([{"type": "assign_owner", "owner_ids": ["a b"]}], "is not a CRM id"),
        ([{"type": "set_field", "field": "x", "colour": 1}], "“colour” is not an option"),
        ([{"type": "send_webhook"}, {"type": "send_webhook"}], "only one “Send an outgoing webhook” action"),
        ([{"type": "add_note", "body": "x"}] * 11, "at most 10 actions"),
    ],
)
def test_bad_actions_are_named_by_position(actions, message):
    with pytest.raises(ValidationError) as caught:
        validate_actions(actions)

    assert message in " ".join(caught.value.messages)


def test_placeholders_are_plain_substitution():
    values = {"first_name": "Ann", "company": "Acme"}

    assert render("Call {{first_name}} at {{ company }}{{ grade }}", values) == "Call Ann at Acme"
    assert render("{% load x %}{{ first_name|upper }}", values) == "{% load x %}{{ first_name|upper }}"


def test_the_model_refuses_invalid_json_from_anywhere(account):
    rule = TriggerRule(
        account=account,
        name="Broken",
        condition_type="question_asked",
        condition_options={"pattern": "(("},
        actions=[{"type": "add_note"}],
    )

    errors = errors_of(rule.full_clean)

    assert "pattern:" in errors["condition_options"][0]
    assert errors["actions"] == ["Action 1, body: This option is required."]
