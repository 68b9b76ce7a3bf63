"""Polling through the real connectors against the real emulators: boundaries, crashes, scheduling."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest
from django.utils import timezone

from crmsync.models import Prospect
from integrations.connector import CONTACT
from integrations.inbound import polling
from integrations.inbound.store import poll_event_id, store_changes
from integrations.models import Direction, InboundEvent, InboundVia, PollCursor, PollSchedule, RecordLink
from integrations.providers.salesforce.wire import parse_datetime, record_fields
from integrations.sandbox.hubspot import now_ms
from tests.inbound.conftest import load_fixture, map_field

pytestmark = pytest.mark.django_db


def _link_contacts(connection, crm_ids: list[str]) -> list[Prospect]:
    prospects = []
    for n, crm_id in enumerate(crm_ids):
        prospect = Prospect.objects.create(account=connection.account, email=f"p{n}-{crm_id}@example.com")
        RecordLink.objects.create(connection=connection, prospect=prospect, crm_object_type="contact", crm_id=crm_id)
        prospects.append(prospect)
    return prospects


def _polled_ids(connection) -> Counter:
    return Counter(
        InboundEvent.objects.filter(connection=connection, via=InboundVia.POLL, object_kind=CONTACT).values_list(
            "crm_id", flat=True
        )
    )


# -- HubSpot ------------------------------------------------------------------------------------------


@pytest.fixture
def hubspot_contacts(hub) -> list[str]:
    """Seven more linked contacts that all share one lastmodifieddate, as after a bulk import."""
    ids = [
        hub.emulator.create_record("contacts", {"email": f"c{n}@example.com", "jobtitle": "Buyer"}) for n in range(7)
    ]
    _link_contacts(hub.connection, ids)
    hub.emulator.set_modified("contacts", ids, now_ms())
    return ids


def test_records_sharing_a_modified_time_across_pages_are_all_read_once(hub, hubspot_contacts):
    result = polling.poll_connection(hub.connection.pk, page_size=3)
    assert result.errors == []
    assert _polled_ids(hub.connection) == Counter({crm_id: 1 for crm_id in ["101", *hubspot_contacts]})


def test_a_second_poll_finds_nothing_new(hub, hubspot_contacts):
    polling.poll_connection(hub.connection.pk, page_size=3)
    assert polling.poll_connection(hub.connection.pk, page_size=3).stored == 0


def test_a_poll_that_fails_mid_way_resumes_from_the_stored_cursor(hub, hubspot_contacts):
    polling.poll_connection(hub.connection.pk, page_size=3, max_pages=1)
    cursor = PollCursor.objects.get(connection=hub.connection, object_kind=CONTACT)
    read_first = set(_polled_ids(hub.connection))
    assert cursor.last_id in read_first and 0 < len(read_first) < 8
    hub.emulator.faults.inject("server_error", count=5, path_prefix="/crm/v3/objects/contacts/search")
    failed = polling.poll_connection(hub.connection.pk, page_size=3)
    assert failed.errors and set(_polled_ids(hub.connection)) == read_first
    assert PollCursor.objects.get(pk=cursor.pk).last_id == cursor.last_id  # not moved by the failure
    hub.emulator.faults.clear()
    polling.poll_connection(hub.connection.pk, page_size=3)
    assert _polled_ids(hub.connection) == Counter({crm_id: 1 for crm_id in ["101", *hubspot_contacts]})


def test_a_users_edit_found_by_polling_is_applied(hub):
    polling.poll_connection(hub.connection.pk)
    hub.process()
    hub.emulator.edit_in_ui("contacts", "101", {"jobtitle": "VP Engineering"})
    polling.poll_connection(hub.connection.pk)
    hub.process()
    assert hub.crm_fields()["job_title"] == "VP Engineering"


def test_polling_reads_the_mapped_properties(hub):
    polling.poll_connection(hub.connection.pk)
    event = InboundEvent.objects.get(connection=hub.connection, crm_id="101")
    assert {"jobtitle", "firstname", "company"} <= set(event.properties)


def test_unlinked_contacts_are_not_stored(hub):
    hub.emulator.create_record("contacts", {"email": "stranger@example.com"})
    polling.poll_connection(hub.connection.pk)
    assert set(_polled_ids(hub.connection)) == {"101"}


# -- Salesforce ---------------------------------------------------------------------------------------


@pytest.fixture
def salesforce(account, make_salesforce_connection, salesforce_emulator):
    connection = make_salesforce_connection(account)
    connection.direction = Direction.FROM_CRM
    connection.save(update_fields=["direction", "updated_at"])
    map_field(connection, "job_title", "Title", direction="from_crm")
    return connection


def test_salesforce_contacts_split_across_pages_are_all_read_once(salesforce, salesforce_emulator):
    ids = [
        salesforce_emulator.create("Contact", {"LastName": f"Lee {n}", "Email": f"l{n}@example.com"}) for n in range(5)
    ]
    _link_contacts(salesforce, ids)
    assert polling.poll_connection(salesforce.pk, page_size=2).errors == []
    assert _polled_ids(salesforce) == Counter({crm_id: 1 for crm_id in ids})
    for crm_id in ids[:3]:
        salesforce_emulator.simulate_user_edit("Contact", crm_id, {"Title": "Buyer"})
    polling.poll_connection(salesforce.pk, page_size=2)
    assert _polled_ids(salesforce) == Counter({crm_id: 1 for crm_id in ids} | {crm_id: 2 for crm_id in ids[:3]})


def test_a_salesforce_poll_that_fails_resumes_without_missing_or_repeating(salesforce, salesforce_emulator):
    ids = [
        salesforce_emulator.create("Contact", {"LastName": f"Lee {n}", "Email": f"l{n}@example.com"}) for n in range(5)
    ]
    _link_contacts(salesforce, ids)
    polling.poll_connection(salesforce.pk, page_size=2, max_pages=1)
    salesforce_emulator.faults.inject("server_error", path_prefix="/services/data/v59.0/query")
    assert polling.poll_connection(salesforce.pk, page_size=2).errors
    polling.poll_connection(salesforce.pk, page_size=2)
    assert _polled_ids(salesforce) == Counter({crm_id: 1 for crm_id in ids})


def test_a_salesforce_users_edit_is_applied(salesforce, salesforce_emulator):
    crm_id = salesforce_emulator.create("Contact", {"LastName": "Lee", "Email": "ann@example.com", "Title": "CTO"})
    prospect = _link_contacts(salesforce, [crm_id])[0]
    Prospect.objects.filter(pk=prospect.pk).update(job_title="CTO")
    salesforce_emulator.simulate_user_edit("Contact", crm_id, {"Title": "Chief Technology Officer"})
    polling.poll_connection(salesforce.pk)
    from integrations.inbound.jobs import process_pending

    process_pending(salesforce.pk)
    assert prospect.crm_data.fields == {"job_title": "Chief Technology Officer"}


def _replay_recorded_page(connection, name: str) -> None:
    """Store a recorded SOQL page as the poller stores what changes_since returns."""
    page = load_fixture("salesforce", name)
    records = [record_fields(raw) for raw in page["records"]]
    from integrations.connector import InboundChange

    changes = [
        InboundChange(
            event_id=poll_event_id(CONTACT, r["Id"], parse_datetime(r["SystemModstamp"])),
            object_kind=CONTACT,
            crm_id=r["Id"],
            change="updated",
            occurred_at=parse_datetime(r["SystemModstamp"]),
            properties=r,
        )
        for r in records
    ]
    store_changes(connection, changes, via=InboundVia.POLL)


def test_a_recorded_salesforce_page_applies_title_and_do_not_call(salesforce, salesforce_profile):
    ann = _link_contacts(salesforce, ["0038d0000000005AAA"])[0]
    Prospect.objects.filter(pk=ann.pk).update(job_title="CTO")
    _replay_recorded_page(salesforce, "contact.query_page")
    from integrations.inbound.jobs import process_pending

    process_pending(salesforce.pk)
    ann.crm_data.refresh_from_db()
    assert (ann.crm_data.fields, ann.crm_data.do_not_contact) == ({"job_title": "Chief Technology Officer"}, True)


# -- scheduling ---------------------------------------------------------------------------------------


def test_a_due_connection_is_polled_once_per_interval(hub, django_capture_on_commit_callbacks):
    assert polling.dispatch_due_polls() == 1
    assert polling.dispatch_due_polls() == 0
    schedule = PollSchedule.objects.get(pk=hub.connection.pk)
    assert schedule.next_poll_at - timezone.now() > dt.timedelta(minutes=4)


def test_two_schedulers_racing_for_one_window_get_one_winner(hub):
    polling.dispatch_due_polls()
    schedule = PollSchedule.objects.get(pk=hub.connection.pk)
    PollSchedule.objects.filter(pk=schedule.pk).update(next_poll_at=timezone.now(), lease_until=None)
    schedule.refresh_from_db()
    assert [polling.claim_poll_window(schedule), polling.claim_poll_window(schedule)] == [True, False]


def test_a_connection_sending_to_the_crm_only_is_not_polled(hub):
    hub.connection.direction = Direction.TO_CRM
    hub.connection.save(update_fields=["direction", "updated_at"])
    assert polling.dispatch_due_polls() == 0


def test_the_poll_job_releases_its_lease_and_records_errors(hub):
    polling.dispatch_due_polls()
    hub.emulator.faults.inject("server_error", count=5, path_prefix="/crm/v3/objects/contacts/search")
    polling.run_poll(hub.connection.pk)
    schedule = PollSchedule.objects.get(pk=hub.connection.pk)
    assert schedule.lease_until is None and "contact" in schedule.last_error
