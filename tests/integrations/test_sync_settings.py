"""A connection's sync settings page: who may read and change them, validation beside each field,
the audit trail of every change, and real time sending waiting work at once."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

from crmsync.models import AuditEntry, Role
from integrations.models import (
    BatchSchedule,
    Connection,
    ConnectionStatus,
    Direction,
    LeadCreation,
    RecordType,
    SyncMode,
)
from tests.integrations.test_sync_dashboard import make_connection


@pytest.fixture
def hubspot(account) -> Connection:
    return make_connection(account, "hubspot", sync_mode=SyncMode.BATCH)


@pytest.fixture
def salesforce(account) -> Connection:
    return make_connection(account, "salesforce", record_type=RecordType.LEAD)


@pytest.fixture
def as_role(account, make_member, client):
    def log_in(role: str) -> Client:
        client.force_login(make_member(account, role))
        return client

    return log_in


def settings_url(connection: Connection) -> str:
    return reverse(
        "integrations:sync_settings",
        kwargs={"account_slug": connection.account.slug, "connection_id": connection.pk},
    )


def form_data(connection: Connection, **changes) -> dict:
    data = {
        "sync_mode": connection.sync_mode,
        "batch_schedule": connection.batch_schedule,
        "direction": connection.direction,
        "record_type": connection.record_type,
        "lead_creation": connection.lead_creation,
        "score_threshold": connection.score_threshold,
    }
    data.update(changes)
    return data


def field_group(html: str, name: str) -> str:
    """The markup of one field's group (label, help, errors, widget), up to the next field."""
    groups = html.split('<div class="field field--')[1:]
    return next(group for group in groups if f'name="{name}"' in group)


def test_an_admin_changes_the_settings_and_the_change_is_audited_before_and_after(hubspot, as_role):
    response = as_role(Role.ADMIN).post(
        settings_url(hubspot),
        form_data(hubspot, batch_schedule=BatchSchedule.DAILY, lead_creation=LeadCreation.ON_SCORE, score_threshold=40),
    )

    assert response.status_code == 302 and response["Location"] == settings_url(hubspot)
    hubspot.refresh_from_db()
    assert (hubspot.batch_schedule, hubspot.lead_creation, hubspot.score_threshold) == ("daily", "on_score", 40)
    entry = AuditEntry.objects.get(action="connection.sync_settings_changed")
    assert entry.account == hubspot.account and entry.object_id == str(hubspot.pk)
    assert entry.changes == {
        "batch_schedule": {"before": "hourly", "after": "daily"},
        "lead_creation": {"before": "on_identify", "after": "on_score"},
        "score_threshold": {"before": 0, "after": 40},
    }


def test_saving_writes_only_the_settings_so_a_status_set_meanwhile_survives(hubspot, as_role):
    client = as_role(Role.ADMIN)
    client.get(settings_url(hubspot))
    # A worker marks the connection as needing re-authentication while the owner edits.
    Connection.objects.filter(pk=hubspot.pk).update(status=ConnectionStatus.NEEDS_REAUTH)

    client.post(settings_url(hubspot), form_data(hubspot, direction=Direction.BOTH))

    hubspot.refresh_from_db()
    assert (hubspot.direction, hubspot.status) == (Direction.BOTH, ConnectionStatus.NEEDS_REAUTH)


def test_switching_to_real_time_kicks_the_connection_after_commit(
    hubspot, as_role, django_capture_on_commit_callbacks, monkeypatch
):
    kicked = []
    monkeypatch.setattr("integrations.sync.jobs.kick", kicked.append)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        as_role(Role.ADMIN).post(settings_url(hubspot), form_data(hubspot, sync_mode=SyncMode.REALTIME))

    hubspot.refresh_from_db()
    assert hubspot.sync_mode == SyncMode.REALTIME
    assert len(callbacks) == 1
    assert kicked == [hubspot.pk]


def test_other_changes_do_not_kick(hubspot, as_role, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        response = as_role(Role.ADMIN).post(settings_url(hubspot), form_data(hubspot, sync_mode=SyncMode.MANUAL))

    assert response.status_code == 302
    assert callbacks == []


def test_a_save_without_changes_writes_no_audit_entry(hubspot, as_role):
    response = as_role(Role.ADMIN).post(settings_url(hubspot), form_data(hubspot), follow=True)

    assert "Nothing changed." in response.content.decode()
    assert not AuditEntry.objects.filter(action="connection.sync_settings_changed").exists()


def test_a_score_threshold_is_required_when_leads_wait_for_a_score(hubspot, as_role):
    response = as_role(Role.ADMIN).post(
        settings_url(hubspot), form_data(hubspot, lead_creation=LeadCreation.ON_SCORE, score_threshold=0)
    )

    assert response.status_code == 400
    html = response.content.decode()
    assert "Enter a score above 0" in field_group(html, "score_threshold")
    assert 'aria-invalid="true"' in field_group(html, "score_threshold")
    hubspot.refresh_from_db()
    assert hubspot.lead_creation == LeadCreation.ON_IDENTIFY
    assert not AuditEntry.objects.filter(action="connection.sync_settings_changed").exists()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("sync_mode", "hourly", "Select a valid choice"),
        ("score_threshold", "-5", "greater than or equal to 0"),
        ("score_threshold", "1000001", "at most 100,000"),
        ("record_type", "account", "Select a valid choice"),
    ],
)
def test_a_bad_value_is_refused_with_the_error_beside_its_field(salesforce, as_role, field, value, message):
    response = as_role(Role.OWNER).post(settings_url(salesforce), form_data(salesforce, **{field: value}))

    assert response.status_code == 400
    assert message in field_group(response.content.decode(), field)
    salesforce.refresh_from_db()
    assert salesforce.sync_mode == SyncMode.REALTIME and salesforce.score_threshold == 0


def test_record_type_is_offered_only_where_the_crm_has_leads_and_contacts(hubspot, salesforce, as_role):
    client = as_role(Role.ADMIN)

    hubspot_page = client.get(settings_url(hubspot)).content.decode()
    salesforce_page = client.get(settings_url(salesforce)).content.decode()

    assert 'name="record_type"' not in hubspot_page
    assert len(re.findall(r'name="record_type" value="(lead|contact)"', salesforce_page)) == 2
    assert re.search(r'name="record_type" value="lead"[^>]*checked', salesforce_page)


def test_every_setting_has_a_label_and_help_text(salesforce, as_role):
    html = as_role(Role.ADMIN).get(settings_url(salesforce)).content.decode()

    for name in ("sync_mode", "batch_schedule", "direction", "record_type", "lead_creation", "score_threshold"):
        group = field_group(html, name)
        assert re.search(r"<legend[^>]*>|<label[^>]*for=", group), name
        assert 'class="helptext"' in group, name


def test_a_viewer_reads_the_settings_but_cannot_change_them(hubspot, as_role):
    client = as_role(Role.VIEWER)

    page = client.get(settings_url(hubspot))
    refused = client.post(settings_url(hubspot), form_data(hubspot, sync_mode=SyncMode.REALTIME))

    assert page.status_code == 200
    assert "Save sync settings" not in page.content.decode()
    assert page.content.decode().count("disabled") >= 6
    assert refused.status_code == 403
    hubspot.refresh_from_db()
    assert hubspot.sync_mode == SyncMode.BATCH
    assert not AuditEntry.objects.filter(action="connection.sync_settings_changed").exists()


def test_a_disconnected_connection_has_no_settings_page(account, as_role):
    gone = make_connection(account, "hubspot", status=ConnectionStatus.DISCONNECTED)

    assert as_role(Role.OWNER).get(settings_url(gone)).status_code == 404
