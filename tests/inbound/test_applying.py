"""What comes back and what it does: links, contact preferences, owner, deal stage, outgoing webhooks."""

from __future__ import annotations

import time

import pytest
from django.utils import timezone

from crmsync.models import Prospect
from integrations.connector import DEAL, InboundChange
from integrations.inbound import jobs
from integrations.inbound.apply import Applier
from integrations.inbound.deals import record_deal_link
from integrations.inbound.preferences import blocks_outbound
from integrations.inbound.store import store_changes
from integrations.models import (
    DealLink,
    Direction,
    InboundEvent,
    InboundState,
    LinkState,
    ProspectCrmData,
    WebhookDelivery,
    WebhookSubscription,
)
from integrations.sandbox.hubspot import _definition
from tests.inbound.conftest import map_field

pytestmark = pytest.mark.django_db


def _ui_edit(hub, object_type: str, object_id: str, properties: dict) -> None:
    """A HubSpot user edits a record; HubSpot sends its webhooks; the job processes them."""
    mark = len(hub.emulator.changes)
    hub.emulator.edit_in_ui(object_type, object_id, properties)
    hub.post(hub.emulator.events_for_changes(hub.emulator.changes[mark:]))
    hub.process()


def _subscribe(account, *events: str) -> WebhookSubscription:
    return WebhookSubscription.objects.create(
        account=account, target_url="https://hooks.example.com/capsule", events=list(events), secret="whsec_dGVzdA=="
    )


@pytest.fixture
def preference_properties(hub) -> None:
    # hs_email_optout is a HubSpot-defined contact property the emulator does not list yet; a
    # portal's own do-not-contact property is added as an admin would.
    with hub.emulator.lock:
        hub.emulator.properties["contacts"]["hs_email_optout"] = _definition(
            "hs_email_optout", "Unsubscribed from all email", "bool", "booleancheckbox", "contactinformation"
        )
    hub.emulator.add_custom_property("contacts", "capsule_do_not_contact", "bool", "booleancheckbox")


# -- contact preferences --------------------------------------------------------------------------------


def test_do_not_contact_is_recorded_and_blocks_outbound(hub, hubspot_profile, preference_properties):
    other = Prospect.objects.create(account=hub.prospect.account, email="bo@example.com")
    _ui_edit(hub, "contacts", "101", {"capsule_do_not_contact": "true"})
    assert hub.data().do_not_contact is True
    assert blocks_outbound([hub.prospect.pk, other.pk]) == {hub.prospect.pk}


def test_do_not_contact_can_be_lifted(hub, hubspot_profile, preference_properties):
    _ui_edit(hub, "contacts", "101", {"capsule_do_not_contact": "true"})
    _ui_edit(hub, "contacts", "101", {"capsule_do_not_contact": "false"})
    assert blocks_outbound([hub.prospect.pk]) == set()


def test_an_email_opt_out_is_recorded_as_unsubscribed(hub, hubspot_profile, preference_properties):
    _ui_edit(hub, "contacts", "101", {"hs_email_optout": "true"})
    assert (hub.data().unsubscribed, hub.data().do_not_contact) == (True, False)


def test_preferences_are_recorded_even_for_connections_sending_to_the_crm_only(
    hub, hubspot_profile, preference_properties
):
    hub.connection.direction = Direction.TO_CRM
    hub.connection.save(update_fields=["direction", "updated_at"])
    _ui_edit(hub, "contacts", "101", {"capsule_do_not_contact": "true", "jobtitle": "VP"})
    assert (hub.data().do_not_contact, hub.crm_fields()) == (True, {})


def test_blocks_outbound_of_nobody_is_empty():
    assert blocks_outbound([]) == set()


def test_a_connector_without_preference_fields_records_none(hub, preference_properties, monkeypatch):
    from tests.inbound.conftest import use_connector

    use_connector(monkeypatch, "hubspot", "tests.inbound.connectors.HubSpotWithoutPreferences")
    _ui_edit(hub, "contacts", "101", {"capsule_do_not_contact": "true"})
    assert blocks_outbound([hub.prospect.pk]) == set()


# -- owner ----------------------------------------------------------------------------------------------


def test_an_owner_change_is_recorded(hub, hubspot_profile):
    owner_id = hub.emulator.owners[1]["id"]
    _ui_edit(hub, "contacts", "101", {"hubspot_owner_id": owner_id})
    assert hub.data().owner_id == owner_id


# -- links ----------------------------------------------------------------------------------------------


def test_a_contact_merged_in_hubspot_moves_the_link_to_the_survivor(hub):
    survivor = hub.emulator.create_record("contacts", {"email": "ann.lee@example.com"})
    mark = len(hub.emulator.changes)
    hub.connection.connector().http.json(
        "POST", "/crm/v3/objects/contacts/merge", json={"primaryObjectId": survivor, "objectIdToMerge": "101"}
    )
    hub.post(hub.emulator.events_for_changes(hub.emulator.changes[mark:]))
    hub.process()
    assert hub.link_state() == (LinkState.RELINKED, survivor)


def test_a_change_for_a_merged_away_id_follows_the_crm_to_the_survivor(hub):
    survivor = hub.emulator.create_record("contacts", {"email": "ann.lee@example.com"})
    hub.connection.connector().http.json(
        "POST", "/crm/v3/objects/contacts/merge", json={"primaryObjectId": survivor, "objectIdToMerge": "101"}
    )
    store_changes(hub.connection, [InboundChange("late-1", "contact", "101", "created")])
    hub.process()
    assert hub.link_state() == (LinkState.RELINKED, survivor)


def test_a_contact_we_never_linked_is_ignored(hub):
    store_changes(hub.connection, [InboundChange("x-1", "contact", "999", "property", properties={"jobtitle": "VP"})])
    hub.process()
    assert hub.reasons() == [("ignored", "not_linked")]


def test_changes_of_an_erased_prospect_are_ignored(hub):
    Prospect.objects.filter(pk=hub.prospect.pk).update(erased=True)
    store_changes(hub.connection, [InboundChange("x-1", "contact", "101", "property", properties={"jobtitle": "VP"})])
    hub.process()
    assert (hub.reasons(), ProspectCrmData.objects.count()) == ([("ignored", "not_linked")], 0)


# -- deals ----------------------------------------------------------------------------------------------


def _deal(hub, stage: str = "qualifiedtobuy") -> str:
    return hub.emulator.create_record(
        "deals",
        {"dealname": "Northwind – Enterprise", "dealstage": stage, "amount": "48000"},
        associations=[
            {"to": {"id": "101"}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 3}]}
        ],
    )


def test_a_deals_people_are_found_through_the_connector_and_remembered(hub, hubspot_profile):
    deal_id = _deal(hub)
    _ui_edit(hub, "deals", deal_id, {"dealstage": "contractsent"})
    assert hub.data().deal_stage == "contractsent"
    assert list(DealLink.objects.values_list("crm_id", "prospect_id")) == [(deal_id, hub.prospect.pk)]


def test_a_deals_people_named_in_the_change_are_used(hub, hubspot_profile):
    change = InboundChange(
        "d-1", DEAL, "7001", "property", properties={"dealstage": "closedwon", "associated_people": ["101"]}
    )
    store_changes(hub.connection, [change])
    hub.process()
    assert (hub.data().deal_crm_id, hub.data().deal_stage) == ("7001", "closedwon")


def test_a_deal_stage_change_emits_crm_deal_stage_changed(hub, hubspot_profile):
    _subscribe(hub.prospect.account, "crm.deal.stage_changed")
    deal_id = _deal(hub)
    record_deal_link(hub.connection.pk, hub.prospect.pk, deal_id)
    _ui_edit(hub, "deals", deal_id, {"dealstage": "contractsent"})
    data = WebhookDelivery.objects.get(event_type="crm.deal.stage_changed").payload["data"]
    assert (data["stage"], data["crm"]["id"], data["prospect"]["id"]) == ("contractsent", deal_id, hub.prospect.pk)


def test_a_deal_without_a_stage_field_is_not_tracked(hub, monkeypatch):
    from tests.inbound.conftest import use_connector

    use_connector(monkeypatch, "hubspot", "tests.inbound.connectors.HubSpotPlain")
    deal_id = _deal(hub)
    record_deal_link(hub.connection.pk, hub.prospect.pk, deal_id)
    _ui_edit(hub, "deals", deal_id, {"dealstage": "contractsent"})
    assert (hub.reasons(), hub.data().deal_stage) == ([("ignored", "not_mapped")], "")


def test_a_deleted_deal_is_forgotten(hub, hubspot_profile):
    record_deal_link(hub.connection.pk, hub.prospect.pk, "7001")
    store_changes(hub.connection, [InboundChange("d-1", DEAL, "7001", "deleted")])
    hub.process()
    assert not DealLink.objects.exists()


def test_fields_mapped_from_the_deal_land_on_the_prospect(hub, hubspot_profile):
    map_field(hub.connection, "attr.deal_size", "amount", target_object="deal", direction="from_crm")
    deal_id = _deal(hub)
    record_deal_link(hub.connection.pk, hub.prospect.pk, deal_id)
    _ui_edit(hub, "deals", deal_id, {"amount": "52000"})
    assert hub.crm_fields() == {"attr.deal_size": "52000"}


# -- outgoing webhooks and reprocessing ------------------------------------------------------------------


def test_an_applied_contact_change_emits_crm_contact_updated(hub):
    _subscribe(hub.prospect.account, "crm.contact.updated")
    _ui_edit(hub, "contacts", "101", {"jobtitle": "VP Engineering"})
    data = WebhookDelivery.objects.get(event_type="crm.contact.updated").payload["data"]
    assert data["changed_fields"] == {"jobtitle": {"from": None, "to": "VP Engineering"}}
    assert (data["crm"], data["prospect"]["email"]) == (
        {"provider": "hubspot", "object_type": "contact", "id": "101"},
        "ann@example.com",
    )


def test_applying_an_event_again_emits_nothing_new(hub):
    _subscribe(hub.prospect.account, "crm.contact.updated")
    _ui_edit(hub, "contacts", "101", {"jobtitle": "VP Engineering"})
    event = InboundEvent.objects.get(connection=hub.connection)
    ProspectCrmData.objects.filter(prospect=hub.prospect).update(crm_seen={})  # as if the first apply was lost
    Applier(hub.connection).apply(event)
    assert WebhookDelivery.objects.filter(event_type="crm.contact.updated").count() == 1


# -- failures -------------------------------------------------------------------------------------------


def test_a_crm_outage_while_fetching_leaves_the_event_for_a_retry(hub):
    store_changes(hub.connection, [InboundChange("c-1", "contact", "101", "created")])
    hub.emulator.faults.inject("server_error", count=2, path_prefix="/crm/v3/objects/contacts/101")
    hub.process()
    event = InboundEvent.objects.get(connection=hub.connection)
    assert (event.state, event.attempts, event.next_attempt_at > timezone.now()) == (InboundState.PENDING, 1, True)
    assert "500" in event.error
    hub.emulator.faults.clear()
    InboundEvent.objects.filter(pk=event.pk).update(next_attempt_at=timezone.now())
    hub.process()
    assert hub.crm_fields() == {"company": "Northwind Traders"}


def test_an_event_that_keeps_failing_ends_failed(hub, settings):
    settings.SYNC_MAX_ATTEMPTS = 1
    store_changes(hub.connection, [InboundChange("c-1", "contact", "101", "created")])
    hub.emulator.faults.inject("server_error", count=2, path_prefix="/crm/v3/objects/contacts/101")
    hub.process()
    assert hub.reasons() == [(InboundState.FAILED, "error")]


def test_the_tick_rekicks_connections_whose_events_wait(hub):
    store_changes(hub.connection, [InboundChange("c-1", "contact", "101", "property", properties={"jobtitle": "X"})])
    InboundEvent.objects.update(received_at=timezone.now() - jobs.STALE_PENDING * 2)
    assert jobs.tick()["kicked"] == 1


def test_the_tick_forgets_handled_events_past_the_retention(hub):
    store_changes(hub.connection, [InboundChange("c-1", "contact", "999", "deleted")])
    hub.process()
    InboundEvent.objects.update(received_at=timezone.now() - jobs.RETENTION * 2)
    assert (jobs.tick()["forgotten"], InboundEvent.objects.count()) == (1, 0)


@pytest.mark.django_db(transaction=True)
def test_a_webhook_delivery_is_processed_end_to_end_by_the_kicked_job(hub, settings):
    settings.REDIS_URL = None  # jobs run in-process after commit (JOBS_RUN_INLINE in tests)
    assert hub.post([_change_event()]).status_code == 200
    assert hub.crm_fields() == {"job_title": "Head of Data"}


def _change_event() -> dict:
    return {
        "eventId": 30,
        "portalId": 62515,
        "occurredAt": int(time.time() * 1000),
        "subscriptionType": "contact.propertyChange",
        "objectId": 101,
        "changeSource": "CRM_UI",
        "propertyName": "jobtitle",
        "propertyValue": "Head of Data",
    }


def test_an_event_claimed_by_a_worker_that_died_is_applied_once_its_lease_runs_out(hub):
    store_changes(hub.connection, [InboundChange("k-1", "contact", "101", "property", properties={"jobtitle": "VP"})])
    claimed = jobs._claim(hub.connection.pk)  # ... and the worker is killed here
    assert hub.process() == {}  # not due while the lease runs
    InboundEvent.objects.filter(pk=claimed.pk).update(next_attempt_at=timezone.now())
    assert hub.process() == {InboundState.PROCESSED: 1}
    assert hub.crm_fields() == {"job_title": "VP"}


def test_a_connection_taking_nothing_from_the_crm_spends_no_call_on_a_change(hub, monkeypatch):
    from tests.inbound.conftest import use_connector

    # (A connector that tracks contact preferences does read the record: they apply whatever the direction.)
    use_connector(monkeypatch, "hubspot", "tests.inbound.connectors.HubSpotPlain")
    hub.connection.direction = Direction.TO_CRM
    hub.connection.save(update_fields=["direction", "updated_at"])
    store_changes(hub.connection, [InboundChange("c-1", "contact", "101", "created")])
    hub.process()
    assert hub.reasons() == [("ignored", "not_mapped")]
    assert hub.emulator.requests_to("GET", r"/crm/v3/objects/contacts/101") == []


def test_a_second_deletion_of_the_same_contact_changes_nothing(hub):
    store_changes(hub.connection, [InboundChange("del-1", "contact", "101", "deleted")])
    store_changes(hub.connection, [InboundChange("del-2", "contact", "101", "deleted")])
    hub.process()
    assert hub.reasons() == [("processed", ""), ("ignored", "unchanged")]


def test_a_merged_deal_passes_its_prospects_to_the_survivor(hub, hubspot_profile):
    record_deal_link(hub.connection.pk, hub.prospect.pk, "7001")
    store_changes(hub.connection, [InboundChange("m-1", DEAL, "7001", "merged", merged_into="7002")])
    hub.process()
    assert list(DealLink.objects.values_list("crm_id", flat=True)) == ["7002"]
