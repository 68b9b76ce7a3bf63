"""Fields that differ on both sides: each conflict policy decides, every conflict is recorded and shown."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from crmsync.models import Prospect
from integrations.models import SyncConflict
from mapping.models import FieldMapping

pytestmark = pytest.mark.django_db


def _title_change(event_id: int, value: str, at: dt.datetime) -> dict:
    return {
        "eventId": event_id,
        "portalId": 62515,
        "occurredAt": int(at.timestamp() * 1000),
        "subscriptionType": "contact.propertyChange",
        "objectId": 101,
        "changeSource": "CRM_UI",
        "propertyName": "jobtitle",
        "propertyValue": value,
    }


def _policy(hub, policy: str) -> None:
    FieldMapping.objects.filter(connection=hub.connection, target_field="jobtitle").update(conflict_policy=policy)


def _conflicts(hub) -> list[tuple]:
    return list(
        SyncConflict.objects.filter(prospect=hub.prospect).values_list(
            "source_key", "crm_field", "capsule_value", "crm_value", "policy", "winner"
        )
    )


def test_crm_wins_takes_the_crm_value_and_records_the_conflict(hub):
    _policy(hub, "crm_wins")
    hub.post([_title_change(1, "VP Engineering", timezone.now())])
    hub.process()
    assert hub.crm_fields() == {"job_title": "VP Engineering"}
    assert _conflicts(hub) == [("job_title", "jobtitle", "CTO", "VP Engineering", "crm_wins", "crm")]


def test_capsule_wins_keeps_the_capsule_value_and_records_the_conflict(hub):
    _policy(hub, "capsule_wins")
    hub.post([_title_change(1, "VP Engineering", timezone.now())])
    hub.process()
    assert hub.crm_fields() == {}
    assert _conflicts(hub) == [("job_title", "jobtitle", "CTO", "VP Engineering", "capsule_wins", "capsule")]


def test_newest_wins_takes_a_crm_change_made_after_the_prospect_changed(hub):
    _policy(hub, "newest_wins")
    Prospect.objects.filter(pk=hub.prospect.pk).update(updated_at=timezone.now() - dt.timedelta(hours=1))
    hub.post([_title_change(1, "VP Engineering", timezone.now())])
    hub.process()
    assert hub.crm_fields() == {"job_title": "VP Engineering"}
    assert [c[-1] for c in _conflicts(hub)] == ["crm"]


def test_newest_wins_keeps_a_capsule_value_changed_after_the_crm_change(hub):
    _policy(hub, "newest_wins")
    Prospect.objects.filter(pk=hub.prospect.pk).update(updated_at=timezone.now())
    hub.post([_title_change(1, "VP Engineering", timezone.now() - dt.timedelta(hours=1))])
    hub.process()
    assert hub.crm_fields() == {}
    assert [c[-1] for c in _conflicts(hub)] == ["capsule"]


def test_a_value_taken_from_the_crm_is_the_capsule_value_in_later_conflicts(hub):
    Prospect.objects.filter(pk=hub.prospect.pk).update(updated_at=timezone.now() - dt.timedelta(days=1))
    now = timezone.now()
    hub.post([_title_change(1, "VP Engineering", now - dt.timedelta(hours=2))])
    hub.process()
    _policy(hub, "capsule_wins")
    hub.post([_title_change(2, "Head of Platform", now - dt.timedelta(hours=1))])
    hub.process()
    assert _conflicts(hub)[-1] == (
        "job_title",
        "jobtitle",
        "VP Engineering",
        "Head of Platform",
        "capsule_wins",
        "capsule",
    )
    assert hub.crm_fields() == {"job_title": "VP Engineering"}


def test_an_empty_capsule_value_takes_the_crm_value_without_a_conflict(hub):
    Prospect.objects.filter(pk=hub.prospect.pk).update(job_title="")
    hub.post([_title_change(1, "VP Engineering", timezone.now())])
    hub.process()
    assert (hub.crm_fields(), _conflicts(hub)) == ({"job_title": "VP Engineering"}, [])


def test_a_crm_value_equal_to_the_capsule_value_is_no_conflict(hub):
    hub.post([_title_change(1, "CTO", timezone.now())])
    hub.process()
    assert (hub.crm_fields(), _conflicts(hub)) == ({}, [])


def test_a_late_older_change_does_not_overwrite_a_newer_one(hub):
    now = timezone.now()
    hub.post([_title_change(2, "Head of Platform", now)])
    hub.post([_title_change(1, "VP Engineering", now - dt.timedelta(minutes=5))])
    hub.process()
    assert hub.crm_fields() == {"job_title": "Head of Platform"}


def test_a_field_mapped_to_the_crm_only_is_not_taken_from_it(hub):
    FieldMapping.objects.filter(connection=hub.connection, target_field="jobtitle").update(direction="to_crm")
    hub.post([_title_change(1, "VP Engineering", timezone.now())])
    hub.process()
    assert hub.crm_fields() == {}
    assert hub.reasons() == [("ignored", "not_mapped")]


# -- the conflicts page ---------------------------------------------------------------------------------


def test_the_conflicts_page_lists_the_accounts_conflicts(hub, owner):
    hub.post([_title_change(1, "VP Engineering", timezone.now())])
    hub.process()
    hub.client.force_login(owner)
    page = hub.client.get(reverse("integrations:sync_conflicts", kwargs={"account_slug": hub.connection.account.slug}))
    assert page.status_code == 200
    assert "VP Engineering" in page.content.decode()
    assert "ann@example.com" in page.content.decode()


def test_the_conflicts_page_of_another_account_is_404(hub, make_account, make_member):
    hub.post([_title_change(1, "VP Engineering", timezone.now())])
    hub.process()
    stranger = make_member(make_account("Other Corp"))
    hub.client.force_login(stranger)
    url = reverse("integrations:sync_conflicts", kwargs={"account_slug": hub.connection.account.slug})
    assert hub.client.get(url).status_code == 404


def test_the_conflicts_page_shows_no_other_accounts_conflicts(hub, make_account, make_member):
    hub.post([_title_change(1, "VP Engineering", timezone.now())])
    hub.process()
    other = make_account("Other Corp")
    hub.client.force_login(make_member(other))
    page = hub.client.get(reverse("integrations:sync_conflicts", kwargs={"account_slug": other.slug}))
    assert page.status_code == 200
    assert "VP Engineering" not in page.content.decode()
