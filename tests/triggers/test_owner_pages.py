"""The owner pages of workflow triggers: roles, tenancy, CSRF, validation beside the field, audit."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

from crmsync.models import AuditEntry, Role
from scoring.models_triggers import TriggerFiring, TriggerRule
from tests.triggers.conftest import evt


@pytest.fixture
def as_role(account, make_member, client):
    def log_in(role: str):
        client.force_login(make_member(account, role))
        return client

    return log_in


def url(name: str, account, **kwargs) -> str:
    return reverse(f"triggers:{name}", kwargs={"account_slug": account.slug, **kwargs})


def rule_form(**changes) -> dict:
    """The add/edit page's POST: a question rule with one note action and a blank extra row."""
    data = {
        "name": "Pricing question",
        "enabled": "on",
        "condition_type": "question_asked",
        "question_asked__keyword": "",
        "question_asked__pattern": r"pric(e|ing)",
        "negative_sentiment__max_score": "-0.3",
        "negative_sentiment__negative_label": "on",
        "grade_crossed__upwards_only": "on",
        "actions-TOTAL_FORMS": "2",
        "actions-INITIAL_FORMS": "0",
        "actions-MIN_NUM_FORMS": "0",
        "actions-MAX_NUM_FORMS": "10",
        "actions-0-type": "add_note",
        "actions-0-body": "{{ first_name }} asked about pricing",
        "actions-0-ORDER": "1",
        "actions-1-type": "",
        "actions-1-ORDER": "",
    }
    data.update(changes)
    return {key: value for key, value in data.items() if value is not None}


def field_error(response, field: str) -> str:
    """The error list Django renders beside ``field`` (its id ties it to the input), as text."""
    match = re.search(rf'<ul class="errorlist" id="id_{field}_error">(.*?)</ul>', response.content.decode(), re.S)
    assert match, f"no error beside {field}"
    return re.sub(r"<[^>]+>", "", match.group(1)).strip()


def a_rule(account, make_rule) -> TriggerRule:
    return make_rule(account, "cta_clicked", {"cta_id": "book-demo"}, name="Demo request")


def test_admins_add_a_rule_and_it_is_audited(account, as_role):
    client = as_role(Role.ADMIN)

    response = client.post(url("rule_create", account), rule_form())

    assert response.status_code == 302
    rule = TriggerRule.objects.get(account=account)
    assert rule.condition_type == "question_asked"
    assert rule.condition_options == {"pattern": r"pric(e|ing)"}
    assert rule.actions == [{"type": "add_note", "body": "{{ first_name }} asked about pricing"}]
    entry = AuditEntry.objects.get(action="triggers.rule_created")
    assert entry.object_id == str(rule.pk)
    assert entry.changes["condition_options"] == {"pattern": r"pric(e|ing)"}
    assert entry.changes["actions"] == rule.actions


def test_an_invalid_pattern_is_shown_beside_its_field_and_nothing_is_written(account, as_role):
    client = as_role(Role.ADMIN)

    response = client.post(url("rule_create", account), rule_form(**{"question_asked__pattern": "pric(e"}))

    assert response.status_code == 200
    assert "not a valid regular expression" in field_error(response, "question_asked__pattern")
    assert not TriggerRule.objects.exists()
    assert not AuditEntry.objects.filter(action__startswith="triggers.").exists()


def test_an_invalid_action_is_shown_beside_its_field(account, as_role):
    client = as_role(Role.ADMIN)

    response = client.post(
        url("rule_create", account),
        rule_form(**{"actions-1-type": "send_email", "actions-1-to": "manager-at-example"}),
    )

    assert field_error(response, "actions-1-to") == "Enter a valid e-mail address."
    assert not TriggerRule.objects.exists()


def test_a_rule_needs_an_action(account, as_role):
    client = as_role(Role.ADMIN)

    response = client.post(url("rule_create", account), rule_form(**{"actions-0-type": "", "actions-0-body": ""}))

    assert "Add at least one action" in response.content.decode()
    assert not TriggerRule.objects.exists()


def test_options_of_other_condition_types_are_not_stored(account, as_role):
    client = as_role(Role.ADMIN)

    client.post(url("rule_create", account), rule_form(**{"cta_clicked__cta_id": "ignored"}))

    assert TriggerRule.objects.get().condition_options == {"pattern": r"pric(e|ing)"}


def test_round_robin_owners_are_entered_comma_separated(account, as_role):
    client = as_role(Role.ADMIN)

    client.post(
        url("rule_create", account),
        rule_form(**{"actions-1-type": "assign_owner", "actions-1-owner_ids": "101, 102 103", "actions-1-ORDER": "2"}),
    )

    assert TriggerRule.objects.get().actions[1] == {"type": "assign_owner", "owner_ids": ["101", "102", "103"]}


def test_actions_keep_the_order_of_their_position(account, as_role):
    client = as_role(Role.ADMIN)

    client.post(
        url("rule_create", account),
        rule_form(**{"actions-1-type": "send_webhook", "actions-1-ORDER": "0"}),
    )

    assert [action["type"] for action in TriggerRule.objects.get().actions] == ["send_webhook", "add_note"]


def test_editing_a_rule_shows_its_values_and_audits_the_change(account, as_role, make_rule):
    rule = a_rule(account, make_rule)
    client = as_role(Role.ADMIN)

    page = client.get(url("rule_edit", account, rule_id=rule.pk)).content.decode()
    assert 'value="book-demo"' in page
    assert "Rule fired for {{ email }}" in page
    response = client.post(
        url("rule_edit", account, rule_id=rule.pk),
        rule_form(
            name="Demo request",
            condition_type="cta_clicked",
            cta_clicked__cta_id="book-a-demo",
            **{"actions-INITIAL_FORMS": "1"},
        ),
    )

    assert response.status_code == 302
    rule.refresh_from_db()
    assert rule.condition_options == {"cta_id": "book-a-demo"}
    entry = AuditEntry.objects.get(action="triggers.rule_changed")
    assert entry.changes["condition_options"] == {"before": {"cta_id": "book-demo"}, "after": {"cta_id": "book-a-demo"}}
    assert set(entry.changes) == {"condition_options", "actions"}


def test_saving_without_changes_writes_no_audit_entry(account, as_role, make_rule):
    rule = make_rule(
        account,
        "question_asked",
        {"pattern": r"pric(e|ing)"},
        [{"type": "add_note", "body": "{{ first_name }} asked about pricing"}],
        name="Pricing question",
    )
    client = as_role(Role.ADMIN)

    client.post(url("rule_edit", account, rule_id=rule.pk), rule_form(**{"actions-INITIAL_FORMS": "1"}))

    assert not AuditEntry.objects.filter(action="triggers.rule_changed").exists()


def test_toggling_and_deleting_are_audited(account, as_role, make_rule):
    rule = a_rule(account, make_rule)
    client = as_role(Role.ADMIN)

    client.post(url("rule_toggle", account, rule_id=rule.pk))
    rule.refresh_from_db()
    assert rule.enabled is False
    confirm = client.get(url("rule_delete", account, rule_id=rule.pk))
    assert "Delete the trigger “Demo request”?" in confirm.content.decode()
    assert TriggerRule.objects.filter(pk=rule.pk).exists()  # asking is not deleting
    client.post(url("rule_delete", account, rule_id=rule.pk))

    assert not TriggerRule.objects.filter(pk=rule.pk).exists()
    assert list(
        AuditEntry.objects.filter(action__startswith="triggers.").order_by("pk").values_list("action", flat=True)
    ) == ["triggers.rule_disabled", "triggers.rule_deleted"]


def test_viewers_read_rules_and_firings_but_change_nothing(account, as_role, make_rule, ingest):
    rule = a_rule(account, make_rule)
    ingest(account, evt("cta_clicked", cta_id="book-demo"))
    client = as_role(Role.VIEWER)

    page = client.get(url("rules", account)).content.decode()
    assert "Demo request" in page
    assert "CTA clicked: cta id book-demo" in page
    assert "ann@example.com" in page  # the recent firing
    assert url("rule_edit", account, rule_id=rule.pk) not in page
    assert client.get(url("firings", account) + f"?rule={rule.pk}").status_code == 200
    assert client.get(url("rule_create", account)).status_code == 403
    assert client.post(url("rule_create", account), rule_form()).status_code == 403
    assert client.post(url("rule_toggle", account, rule_id=rule.pk)).status_code == 403
    assert client.post(url("rule_delete", account, rule_id=rule.pk)).status_code == 403
    rule.refresh_from_db()
    assert rule.enabled is True
    assert TriggerRule.objects.count() == 1


def test_the_navigation_links_the_page(account, as_role):
    page = as_role(Role.VIEWER).get(reverse("crmsync:overview", kwargs={"account_slug": account.slug}))

    assert f'href="{url("rules", account)}"' in page.content.decode()
    assert "Workflow triggers" in page.content.decode()


def test_the_form_lists_every_condition_without_javascript(account, as_role):
    page = as_role(Role.ADMIN).get(url("rule_create", account)).content.decode()

    for condition_type in ("capsule_viewed", "high_engagement", "low_engagement", "grade_crossed"):
        assert f'data-condition="{condition_type}"' in page
    assert '<option value="hot">hot</option>' in page  # the account's grade bands


def test_another_accounts_rules_and_pages_are_not_found(account, make_account, make_member, make_rule, client):
    other = make_account("Other Co")
    theirs = a_rule(other, make_rule)
    client.force_login(make_member(account, Role.OWNER))

    assert client.get(url("rules", other)).status_code == 404
    assert client.get(url("rule_edit", account, rule_id=theirs.pk)).status_code == 404
    assert client.post(url("rule_toggle", account, rule_id=theirs.pk)).status_code == 404
    assert client.post(url("rule_delete", account, rule_id=theirs.pk)).status_code == 404
    assert client.get(url("firings", account) + f"?rule={theirs.pk}").status_code == 404
    assert TriggerRule.objects.get(pk=theirs.pk).enabled is True


def test_the_firing_log_shows_only_this_accounts_firings(account, make_account, make_rule, ingest, as_role):
    other = make_account("Other Co")
    make_rule(other, "cta_clicked")
    ingest(other, evt("cta_clicked", "secret@other.example"))
    assert TriggerFiring.objects.count() == 1

    page = as_role(Role.VIEWER).get(url("firings", account)).content.decode()

    assert "secret@other.example" not in page
    assert "No rule has fired yet." in page


def test_anonymous_visitors_are_sent_to_sign_in(account, client):
    response = client.get(url("rules", account))

    assert response.status_code == 302
    assert reverse("account_login") in response["Location"]


def test_posts_without_a_csrf_token_are_refused(account, make_member):
    client = Client(enforce_csrf_checks=True)
    client.force_login(make_member(account, Role.ADMIN))

    response = client.post(url("rule_create", account), rule_form())

    assert response.status_code == 403
    assert not TriggerRule.objects.exists()
