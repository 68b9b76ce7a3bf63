"""Echo suppression: what we wrote to the CRM does not come back as a CRM change; a person's edit does."""

from __future__ import annotations

import pytest

from crmsync.models import Prospect
from integrations.connector import InboundChange
from integrations.inbound import jobs, polling
from integrations.inbound.echo import matches_last_sent, same_value
from integrations.models import InboundEvent, RecordLink
from integrations.sync.jobs import sync_now
from tests.inbound.connectors import HubSpotWithInbound

pytestmark = pytest.mark.django_db


def _our_write_through_the_engine(hub) -> int:
    """Change the prospect in capsule and let the real outbound engine write it to HubSpot."""
    Prospect.objects.filter(pk=hub.prospect.pk).update(job_title="VP Sales", first_name="Annie")
    mark = len(hub.emulator.changes)
    sync_now(hub.connection.pk, [hub.prospect.pk])
    return mark


def test_the_webhooks_of_our_own_write_are_ignored_as_echoes(hub):
    mark = _our_write_through_the_engine(hub)
    ours = hub.emulator.changes[mark:]
    assert {c.property for c in ours} >= {"jobtitle", "firstname"}  # the engine did write them
    hub.post(hub.emulator.events_for_changes(ours))
    hub.process()
    assert set(hub.reasons()) == {("ignored", "echo")}
    assert hub.crm_fields() == {}


def test_a_person_editing_the_same_record_afterwards_is_applied(hub):
    _our_write_through_the_engine(hub)
    mark = len(hub.emulator.changes)
    hub.emulator.edit_in_ui("contacts", "101", {"jobtitle": "Chief Revenue Officer"})
    hub.post(hub.emulator.events_for_changes(hub.emulator.changes[mark:]))
    hub.process()
    assert hub.reasons() == [("processed", "")]
    assert hub.crm_fields() == {"job_title": "Chief Revenue Officer"}


def test_a_person_setting_a_value_we_never_sent_is_applied(hub):
    RecordLink.objects.filter(pk=hub.link.pk).update(last_sent_fields={"jobtitle": "CTO"})
    mark = len(hub.emulator.changes)
    hub.emulator.edit_in_ui("contacts", "101", {"jobtitle": "VP Engineering"})
    hub.post(hub.emulator.events_for_changes(hub.emulator.changes[mark:]))
    hub.process()
    assert hub.crm_fields() == {"job_title": "VP Engineering"}


def test_a_write_the_crm_says_is_ours_is_an_echo_even_when_we_did_not_record_it(hub, hubspot_profile, monkeypatch):
    token_app = hub.emulator.private_apps[hub.connection.access_token].app_id
    monkeypatch.setattr(HubSpotWithInbound, "own_app_ids", {str(token_app)})
    mark = len(hub.emulator.changes)
    hub.connection.connector().set_fields("contact", "101", {"jobtitle": "Set by a capsule script"})
    hub.post(hub.emulator.events_for_changes(hub.emulator.changes[mark:]))
    hub.process()
    assert (hub.reasons(), hub.crm_fields()) == ([("ignored", "echo")], {})


def test_without_the_crms_signal_an_unrecorded_write_of_ours_is_applied(hub):
    mark = len(hub.emulator.changes)
    hub.connection.connector().set_fields("contact", "101", {"jobtitle": "Set by a capsule script"})
    hub.post(hub.emulator.events_for_changes(hub.emulator.changes[mark:]))
    hub.process()
    assert hub.crm_fields() == {"job_title": "Set by a capsule script"}


def test_values_compare_as_the_crm_spells_them():
    assert same_value(True, "true") and same_value(42, "42.0") and same_value(None, "")
    assert not same_value("CTO", "cto")


def test_a_change_is_an_echo_only_when_every_changed_field_is_what_we_sent():
    sent = {"jobtitle": "CTO", "firstname": "Ann"}
    assert matches_last_sent({"jobtitle": "CTO"}, sent)
    assert not matches_last_sent({"jobtitle": "CTO", "lastname": "Lee"}, sent)
    assert not matches_last_sent({}, sent)


def test_the_crms_signal_names_the_app_that_wrote(monkeypatch):
    monkeypatch.setattr(HubSpotWithInbound, "own_app_ids", {"777"})
    change = InboundChange("1", "contact", "101", "property", source="INTEGRATION:777")
    assert HubSpotWithInbound.is_own_change(change, None)
    assert not HubSpotWithInbound.is_own_change(InboundChange("2", "contact", "101", "property", source="CRM_UI"), None)


# -- Salesforce (polled) ----------------------------------------------------------------------------------


@pytest.fixture
def salesforce_contact(account, make_salesforce_connection, salesforce_emulator):
    from integrations.models import Direction
    from tests.inbound.conftest import map_field

    connection = make_salesforce_connection(account)
    connection.direction = Direction.BOTH
    connection.save(update_fields=["direction", "updated_at"])
    map_field(connection, "job_title", "Title")
    crm_id = salesforce_emulator.create("Contact", {"LastName": "Lee", "Email": "ann@example.com", "Title": "CTO"})
    prospect = Prospect.objects.create(account=account, email="ann@example.com", job_title="CTO")
    link = RecordLink.objects.create(connection=connection, prospect=prospect, crm_object_type="contact", crm_id=crm_id)
    polling.poll_connection(connection.pk)
    jobs.process_pending(connection.pk)
    return link


def _poll_and_apply(link) -> list[tuple[str, str]]:
    mark = InboundEvent.objects.count()
    polling.poll_connection(link.connection_id)
    jobs.process_pending(link.connection_id)
    return [(e.state, e.reason) for e in InboundEvent.objects.order_by("id")[mark:]]


def test_our_own_salesforce_write_seen_by_polling_is_an_echo(salesforce_contact):
    link = salesforce_contact
    RecordLink.objects.filter(pk=link.pk).update(last_sent_fields={"Title": "VP Sales"})
    link.connection.connector().set_fields("contact", link.crm_id, {"Title": "VP Sales"})
    assert _poll_and_apply(link) == [("ignored", "echo")]


def test_a_salesforce_users_edit_seen_by_polling_is_applied(salesforce_contact, salesforce_emulator):
    link = salesforce_contact
    RecordLink.objects.filter(pk=link.pk).update(last_sent_fields={"Title": "VP Sales"})
    salesforce_emulator.simulate_user_edit("Contact", link.crm_id, {"Title": "Chief Technology Officer"})
    assert _poll_and_apply(link) == [("processed", "")]


def test_salesforce_says_who_wrote_it_when_the_connector_reads_last_modified_by(
    salesforce_contact, salesforce_emulator, salesforce_profile, monkeypatch
):
    from tests.inbound.connectors import SalesforceWithInbound

    monkeypatch.setattr(SalesforceWithInbound, "integration_user_ids", {salesforce_emulator.integration_user_id})
    link = salesforce_contact
    link.connection.connector().set_fields("contact", link.crm_id, {"Title": "Written by a capsule script"})
    assert _poll_and_apply(link) == [("ignored", "echo")]
