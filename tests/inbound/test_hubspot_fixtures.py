"""One recorded HubSpot webhook per event type, delivered through the real receiver (zulip style)."""

from __future__ import annotations

import pytest

from integrations.inbound.deals import record_deal_link

pytestmark = pytest.mark.django_db


def test_contact_property_change_updates_the_mapped_field(hub):
    assert hub.deliver("contact.propertyChange").json() == {"received": 1, "duplicates": 0}
    assert hub.crm_fields() == {"job_title": "Chief Technology Officer"}


def test_contact_creation_fetches_the_record_and_takes_its_mapped_values(hub):
    hub.deliver("contact.creation")
    assert hub.crm_fields() == {"company": "Northwind Traders"}


def test_contact_deletion_marks_the_link_deleted(hub):
    hub.deliver("contact.deletion")
    assert hub.link_state() == ("deleted", "101")


def test_contact_merge_points_the_link_at_the_surviving_contact(hub):
    hub.deliver("contact.merge")
    assert hub.link_state() == ("relinked", "205")


def test_deal_stage_change_updates_the_prospects_deal_stage(hub, hubspot_profile):
    deal_id = hub.emulator.create_record("deals", {"dealname": "Northwind – Enterprise", "dealstage": "qualifiedtobuy"})
    record_deal_link(hub.connection.pk, hub.prospect.pk, deal_id)  # as the engine records its conversion deals
    hub.deliver("deal.propertyChange")
    assert (hub.data().deal_crm_id, hub.data().deal_stage) == ("102", "contractsent")


def test_an_unknown_event_type_is_answered_200_ignored(hub):
    assert hub.deliver("unknown").json() == {"ignored": True}
