"""The owner pages: steps, tenant isolation, roles, saving with errors beside the rows, versions,
templates, test with sample data, activation."""

from __future__ import annotations

import pytest
from django.urls import reverse

from crmsync.models import AuditEntry, Prospect, Role
from mapping.models import FieldMapping, MappingVersion
from mapping.rows import rows_for

STEPS = ["fields", "map", "templates", "test", "activate", "history", "provision"]


def url(name: str, connection=None, account=None) -> str:
    slug = (account or connection.account).slug
    if connection is None:
        return reverse(f"mapping:{name}", kwargs={"account_slug": slug})
    return reverse(f"mapping:{name}", kwargs={"account_slug": slug, "connection_id": connection.pk})


@pytest.fixture
def as_owner(client, owner):
    client.force_login(owner)
    return client


@pytest.fixture
def as_viewer(client, viewer):
    client.force_login(viewer)
    return client


def form_data(rows: list[dict], prefix: str = "rows") -> dict:
    data = {
        f"{prefix}-TOTAL_FORMS": str(len(rows)),
        f"{prefix}-INITIAL_FORMS": "0",
        f"{prefix}-MIN_NUM_FORMS": "0",
        f"{prefix}-MAX_NUM_FORMS": "1000",
    }
    for index, row in enumerate(rows):
        values = {
            "enabled": "on",
            "update_policy": "overwrite",
            "direction": "to_crm",
            "conflict_policy": "crm_wins",
            "target_object": "",
            **row,
        }
        for key, value in values.items():
            if value is not None:
                data[f"{prefix}-{index}-{key}"] = value
    return data


VALID_ROWS = [
    {"source": "email", "target_field": "email", "transform": "lower"},
    {"source": "first_name", "target_field": "firstname"},
    {"source": "__constant__", "value": "lead", "target_field": "lifecyclestage", "update_policy": "if_empty"},
    {"source": "__template__", "value": "{{ first_name }} at {{ company }}", "target_field": "city"},
    {"source": "", "target_field": ""},  # an empty extra row is ignored
]


def test_the_home_step_lists_the_accounts_connections(as_owner, hubspot_connection):
    page = as_owner.get(url("home", account=hubspot_connection.account))
    assert page.status_code == 200
    body = page.content.decode()
    assert url("fields", hubspot_connection) in body
    assert "Field mapping" in body  # the navigation entry


@pytest.mark.parametrize("step", STEPS)
def test_every_step_opens_for_a_viewer_with_the_stepper(as_viewer, hubspot_connection, step):
    page = as_viewer.get(url(step, hubspot_connection))
    assert page.status_code == 200
    body = page.content.decode()
    assert 'aria-label="Field mapping steps"' in body
    assert url("activate", hubspot_connection) in body


@pytest.mark.parametrize("step", STEPS)
def test_another_accounts_connection_is_not_found(client, make_account, make_member, make_connection, step):
    mine, theirs = make_account("Mine"), make_account("Theirs")
    client.force_login(make_member(mine, Role.OWNER))
    foreign = make_connection(theirs)
    forged = reverse(f"mapping:{step}", kwargs={"account_slug": mine.slug, "connection_id": foreign.pk})
    assert client.get(forged).status_code == 404
    assert client.get(url(step, foreign)).status_code == 404  # and their account's URL is not ours to open


def test_a_disconnected_connection_is_not_found(as_owner, hubspot_connection):
    hubspot_connection.status = "disconnected"
    hubspot_connection.save()
    assert as_owner.get(url("map", hubspot_connection)).status_code == 404


@pytest.mark.parametrize(
    ("step", "data"),
    [
        ("map", form_data(VALID_ROWS)),
        ("templates", {"template": "b2b_saas", "mode": "replace", "confirm": "on"}),
        ("activate", {"action": "activate"}),
        ("refresh_fields", {}),
        ("provision", {"confirm": "yes"}),
    ],
)
def test_a_viewer_cannot_change_anything(as_viewer, hubspot_connection, step, data):
    before = [row.as_dict() for row in rows_for(hubspot_connection)]
    assert as_viewer.post(url(step, hubspot_connection), data).status_code == 403
    assert [row.as_dict() for row in rows_for(hubspot_connection)] == before
    hubspot_connection.refresh_from_db()
    assert hubspot_connection.activated_at is None


def test_the_map_step_shows_the_saved_rows_and_their_problems(as_owner, hubspot_connection):
    FieldMapping.objects.create(
        connection=hubspot_connection, source_key="first_name", target_field="nosuchfield", order=99
    )
    body = as_owner.get(url("map", hubspot_connection)).content.decode()
    assert "First Name (firstname)" in body
    assert "has no field “nosuchfield”" in body
    assert "HubSpot requires" not in body  # email is mapped by the standard mapping


def test_saving_valid_rows_writes_a_version_and_an_audit_entry(as_owner, owner, hubspot_connection):
    versions = MappingVersion.objects.filter(connection=hubspot_connection).count()
    response = as_owner.post(url("map", hubspot_connection), form_data(VALID_ROWS))
    assert response.status_code == 302
    rows = rows_for(hubspot_connection)
    assert [(r.source_kind, r.target_field) for r in rows] == [
        ("field", "email"),
        ("field", "firstname"),
        ("constant", "lifecyclestage"),
        ("template", "city"),
    ]
    assert rows[3].template == "{{ first_name }} at {{ company }}"
    version = MappingVersion.objects.filter(connection=hubspot_connection).first()
    assert version.number == versions + 1 and version.changed_by == owner
    entry = AuditEntry.objects.filter(action="mapping.changed").first()
    assert entry.actor == owner
    assert entry.changes["version"] == version.number
    assert "contact.city" in entry.changes["diff"]["added"]


def test_saving_invalid_rows_shows_errors_beside_the_rows_and_writes_nothing(as_owner, hubspot_connection):
    before = [row.as_dict() for row in rows_for(hubspot_connection)]
    versions = MappingVersion.objects.count()
    audits = AuditEntry.objects.count()
    rows = [
        {"source": "email", "target_field": "email"},
        {"source": "first_name", "target_field": "capsule_score"},  # text into a number field
        {"source": "__constant__", "value": "prospect", "target_field": "lifecyclestage"},  # no such option
        {"source": "views", "target_field": "hs_object_id"},  # read-only
    ]
    response = as_owner.post(url("map", hubspot_connection), form_data(rows))
    assert response.status_code == 200
    formset = response.context["formset"]
    assert formset.forms[0].errors == {}
    assert "type clash" in " ".join(formset.forms[1].errors["transform"])
    assert "no option “prospect”" in " ".join(formset.forms[2].errors["value"])
    assert "read-only" in " ".join(formset.forms[3].errors["target_field"])
    body = response.content.decode()
    assert body.index("type clash") > body.index("Row 2") > body.index("Row 1")
    assert [row.as_dict() for row in rows_for(hubspot_connection)] == before
    assert MappingVersion.objects.count() == versions
    assert AuditEntry.objects.count() == audits


def test_a_row_missing_its_target_is_refused_beside_it(as_owner, hubspot_connection):
    response = as_owner.post(
        url("map", hubspot_connection),
        form_data([{"source": "email", "target_field": "email"}, {"source": "first_name", "target_field": ""}]),
    )
    assert response.status_code == 200
    assert response.context["formset"].forms[1].errors["target_field"] == ["choose the CRM field"]


def test_an_unmapped_required_field_is_shown_above_the_rows(as_owner, hubspot_connection):
    response = as_owner.post(
        url("map", hubspot_connection), form_data([{"source": "first_name", "target_field": "firstname"}])
    )
    assert response.status_code == 200
    assert any("requires" in message and "email" in message for message in response.context["general_problems"])


def test_applying_a_template_needs_confirmation_and_is_versioned(as_owner, hubspot_connection):
    versions = MappingVersion.objects.filter(connection=hubspot_connection).count()
    refused = as_owner.post(url("templates", hubspot_connection), {"template": "real_estate", "mode": "replace"})
    assert refused.status_code == 200 and refused.context["form"].errors["confirm"]
    assert MappingVersion.objects.filter(connection=hubspot_connection).count() == versions
    done = as_owner.post(
        url("templates", hubspot_connection), {"template": "real_estate", "mode": "replace", "confirm": "on"}
    )
    assert done.status_code == 302
    assert "mobilephone" in [row.target_field for row in rows_for(hubspot_connection)]
    assert MappingVersion.objects.filter(connection=hubspot_connection).count() == versions + 1


def test_the_test_step_shows_the_payload_for_a_chosen_prospect(as_viewer, hubspot_connection):
    Prospect.objects.create(
        account=hubspot_connection.account, email="ada@example.com", first_name="Ada", phone="not a number"
    )
    response = as_viewer.get(url("test", hubspot_connection), {"email": "ADA@example.com"})
    assert response.status_code == 200
    result = response.context["result"]
    assert result.fields["email"] == "ada@example.com" and result.fields["firstname"] == "Ada"
    assert [p.field for p in result.problems] == ["phone"]
    body = response.content.decode()
    assert "&quot;firstname&quot;: &quot;Ada&quot;" in body
    assert "not a phone number" in body


def test_the_test_step_offers_a_generated_sample_and_reports_unknown_emails(as_viewer, hubspot_connection):
    sample = as_viewer.get(url("test", hubspot_connection), {"email": ""})
    assert sample.context["result"].fields["firstname"] == "Ada"
    assert "generated sample" in sample.content.decode()
    unknown = as_viewer.get(url("test", hubspot_connection), {"email": "nobody@example.com"})
    assert unknown.context["result"] is None
    assert unknown.context["form"].errors["email"]


def test_a_prospect_of_another_account_cannot_be_tested(as_viewer, hubspot_connection, make_account):
    Prospect.objects.create(account=make_account("Other"), email="theirs@example.com", first_name="Theirs")
    response = as_viewer.get(url("test", hubspot_connection), {"email": "theirs@example.com"})
    assert response.context["result"] is None
    assert "Theirs" not in response.content.decode()


def test_activation_is_refused_while_the_mapping_has_errors(as_owner, hubspot_connection):
    FieldMapping.objects.create(
        connection=hubspot_connection, source_key="first_name", target_field="capsule_score", order=99
    )
    response = as_owner.post(url("activate", hubspot_connection), {"action": "activate"})
    assert response.status_code == 409
    assert "type clash" in response.content.decode()
    hubspot_connection.refresh_from_db()
    assert hubspot_connection.activated_at is None
    assert AuditEntry.objects.filter(action="mapping.activation_refused").exists()


def test_activation_is_refused_before_the_fields_are_loaded(as_owner, account, make_connection):
    connection = make_connection(account, "salesforce", "lead")
    response = as_owner.post(url("activate", connection), {"action": "activate"})
    assert response.status_code == 409
    assert "not loaded" in response.content.decode()


def test_activation_with_a_clean_mapping_is_audited(as_owner, owner, hubspot_connection):
    response = as_owner.post(url("activate", hubspot_connection), {"action": "activate"})
    assert response.status_code == 302
    hubspot_connection.refresh_from_db()
    assert hubspot_connection.activated_at is not None
    entry = AuditEntry.objects.get(action="connection.activated")
    assert entry.actor == owner
    as_owner.post(url("activate", hubspot_connection), {"action": "deactivate"})
    hubspot_connection.refresh_from_db()
    assert hubspot_connection.activated_at is None


def test_the_fields_step_shows_the_schema_and_the_capsule_fields(as_viewer, hubspot_connection):
    body = as_viewer.get(url("fields", hubspot_connection)).content.decode()
    assert "<code>capsule_score</code>" in body
    assert "Read-only" in body  # hs_object_id
    assert "subscriber, lead, customer" in body  # picklist options
    assert "Refresh fields" not in body  # viewers get no refresh button


def test_the_history_lists_versions(as_owner, hubspot_connection):
    as_owner.post(url("map", hubspot_connection), form_data(VALID_ROWS))
    body = as_owner.get(url("history", hubspot_connection)).content.decode()
    assert "standard HubSpot mapping applied" in body
    assert "added contact.city" in body


def test_the_fields_step_says_which_capsule_rows_are_switched_off(as_viewer, account, make_connection):
    from tests.mapping.conftest import HUBSPOT_CONTACT, cache_schema

    connection = make_connection(account, "hubspot", "contact")  # mapping applied before the fields were loaded
    cache_schema(connection, "contact", HUBSPOT_CONTACT)
    body = as_viewer.get(url("fields", connection)).content.decode()
    assert "are switched off" in body and "<code>capsule_score</code>" in body
    assert "Check the fields and switch those rows on" in body


def test_the_home_step_without_a_connection_points_to_connecting_one(as_owner, account):
    body = as_owner.get(url("home", account=account)).content.decode()
    assert reverse("integrations:connections", kwargs={"account_slug": account.slug}) in body
