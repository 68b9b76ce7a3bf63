"""The ops admin: secrets never shown, read-only logs, bounded change lists, audited changes, erasure."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone

from crmsync import audit
from crmsync.models import (
    Account,
    ApiKey,
    AuditEntry,
    Capsule,
    Event,
    EventType,
    Membership,
    Prospect,
    Role,
    Suppression,
)


@pytest.fixture
def staff(db):
    return get_user_model().objects.create_superuser("ops@example.com", "ops@example.com", "ops password 123")


@pytest.fixture
def ops(client, staff):
    client.force_login(staff)
    return client


def _changelist(model) -> str:
    return reverse(f"admin:crmsync_{model._meta.model_name}_changelist")


def _change(obj) -> str:
    return reverse(f"admin:crmsync_{obj._meta.model_name}_change", args=[obj.pk])


def _make_prospects(account, count: int, **fields) -> list[Prospect]:
    now = timezone.now()
    return Prospect.objects.bulk_create(
        Prospect(account=account, email=f"person{n}@example.com", company=f"Company {n}", last_event_at=now, **fields)
        for n in range(count)
    )


def _make_events(account, prospect, count: int, capsule=None) -> list[Event]:
    start = timezone.now() - timedelta(hours=count)
    return Event.objects.bulk_create(
        Event(
            account=account,
            prospect=prospect,
            capsule=capsule,
            external_id=f"ev-{prospect.pk if prospect else 'x'}-{n}",
            type=EventType.QUESTION_ASKED,
            occurred_at=start + timedelta(hours=n),
            data={"question": f"Q number {n}"},
        )
        for n in range(count)
    )


# --- change lists load, with a bounded number of queries -------------------------------------------


def test_prospect_change_list_of_50_rows_has_bounded_queries(ops, account, make_account, django_assert_max_num_queries):
    _make_prospects(account, 25)
    _make_prospects(make_account("Other Co"), 25)

    with django_assert_max_num_queries(12):
        response = ops.get(_changelist(Prospect))

    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == 50
    assert "person0@example.com" in response.content.decode()


def test_event_change_list_of_50_rows_has_bounded_queries(ops, account, django_assert_max_num_queries):
    capsule = Capsule.objects.create(account=account, external_id="cap-1", title="Pricing capsule")
    prospects = _make_prospects(account, 50)
    for prospect in prospects:
        _make_events(account, prospect, 1, capsule=capsule)

    with django_assert_max_num_queries(14):
        response = ops.get(_changelist(Event))

    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == 50
    assert "Pricing capsule" in response.content.decode()


def test_audit_entry_change_list_of_50_rows_has_bounded_queries(ops, account, django_assert_max_num_queries):
    for n in range(50):
        audit.record(f"test.action_{n % 5}", account=account, actor_label=f"actor-{n}")

    with django_assert_max_num_queries(12):
        response = ops.get(_changelist(AuditEntry))

    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == 50


@pytest.mark.parametrize("model", [Account, Membership, ApiKey, Capsule, Prospect, Event, AuditEntry, Suppression])
def test_every_change_list_loads_for_staff(ops, account, owner, model):
    ApiKey.issue(account, "k")
    _make_prospects(account, 2)

    assert ops.get(_changelist(model)).status_code == 200


def test_visitor_change_list_loads_for_staff(ops, account):
    from crmsync.models import Visitor

    Visitor.objects.create(account=account, visitor_id="v-1")

    assert ops.get(_changelist(Visitor)).status_code == 200


def test_change_lists_do_not_count_the_whole_table_twice():
    for model in (Prospect, Event, AuditEntry):
        assert admin.site._registry[model].show_full_result_count is False


# --- prospect search and filters ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("term", "found"),
    [
        ("PERSON1@Example.com", ["person1@example.com"]),
        ("person1", ["person1@example.com"]),
        ('"company 2"', []),  # e-mail only: no index serves a name or company search over a million rows
        ("example.com", []),  # prefix lookups only: no substring scan over every row
    ],
)
def test_prospect_search_uses_prefixes_and_ignores_case(ops, account, term, found):
    _make_prospects(account, 3)

    response = ops.get(_changelist(Prospect), {"q": term})

    assert sorted(p.email for p in response.context["cl"].result_list) == found


def test_prospects_filter_by_account_erased_and_consent(ops, account, make_account):
    other = make_account("Other Co")
    _make_prospects(account, 2, consent_granted=True)
    Prospect.objects.create(account=other, email="other@example.com", consent_granted=False)

    by_account = ops.get(_changelist(Prospect), {"account__id__exact": other.pk}).context["cl"].result_list
    by_consent = ops.get(_changelist(Prospect), {"consent_granted__exact": "1"}).context["cl"].result_list
    by_erased = ops.get(_changelist(Prospect), {"erased__exact": "1"}).context["cl"].result_list

    assert [p.email for p in by_account] == ["other@example.com"]
    assert len(by_consent) == 2
    assert list(by_erased) == []


# --- the event timeline on the prospect page -----------------------------------------------------------


def test_prospect_page_shows_the_latest_100_events_newest_first(ops, account, django_assert_max_num_queries):
    capsule = Capsule.objects.create(account=account, external_id="cap-1", title="Demo capsule")
    prospect = _make_prospects(account, 1)[0]
    _make_events(account, prospect, 120, capsule=capsule)

    with django_assert_max_num_queries(15):
        response = ops.get(_change(prospect))

    html = response.content.decode()
    assert response.status_code == 200
    shown = re.findall(r"question: Q number (\d+)", html)
    assert shown == [str(n) for n in range(119, 19, -1)]  # 100 rows, newest first
    assert "Demo capsule" in html and "Question asked" in html
    assert f"?prospect__id__exact={prospect.pk}" in html


def test_the_all_events_link_filters_the_event_list_to_the_prospect(ops, account):
    first, second = _make_prospects(account, 2)
    _make_events(account, first, 3)
    _make_events(account, second, 2)

    response = ops.get(_changelist(Event), {"prospect__id__exact": first.pk})

    assert response.status_code == 200
    assert {event.prospect_id for event in response.context["cl"].result_list} == {first.pk}


def test_prospects_are_neither_added_nor_deleted_in_the_admin(staff, account):
    prospect_admin = admin.site._registry[Prospect]
    request = RequestFactory().get("/")
    request.user = staff

    assert not prospect_admin.has_add_permission(request)
    assert not prospect_admin.has_delete_permission(request, _make_prospects(account, 1)[0])


def test_a_prospect_change_is_audited_without_personal_data(ops, staff, account):
    prospect = Prospect.objects.create(account=account, email="ann@example.com", first_name="Ann")

    response = ops.post(
        _change(prospect),
        {
            "email": "ann@example.com",
            "first_name": "Anne",
            "last_name": "",
            "phone": "",
            "company": "",
            "job_title": "",
            "attributes": "{}",
            "utm": "{}",
            "consent_granted": "unknown",
            "consent_source": "",
            # the hidden initial values a browser sends back for fields with a callable default
            "initial-attributes": "{}",
            "initial-utm": "{}",
        },
    )

    assert response.status_code == 302, response.context["adminform"].form.errors
    prospect.refresh_from_db()
    assert prospect.first_name == "Anne"
    entry = AuditEntry.objects.get(action="admin.prospect.changed")
    assert entry.actor == staff and entry.account == account
    assert entry.changes == {"fields": ["first_name"]}
    assert entry.object_id == str(prospect.pk) and entry.object_type == "crmsync.Prospect"
    assert "ann@" not in entry.object_repr and "Ann" not in str(entry.changes)


# --- the GDPR erasure action ------------------------------------------------------------------------


def test_erasing_prospects_asks_first_then_erases(ops, staff, account):
    keep, erase = _make_prospects(account, 2)
    _make_events(account, erase, 3)
    _make_events(account, keep, 2)
    action = {"action": "erase_selected", "_selected_action": [erase.pk]}

    confirm = ops.post(_changelist(Prospect), action)

    assert confirm.status_code == 200
    assert "Yes, erase them" in confirm.content.decode() and erase.email in confirm.content.decode()
    erase.refresh_from_db()
    assert not erase.erased and erase.events.count() == 3

    done = ops.post(_changelist(Prospect), {**action, "confirmed": "yes"})

    assert done.status_code == 302
    erase.refresh_from_db()
    assert erase.erased and erase.email != "person1@example.com"
    assert not Event.objects.filter(prospect_id=erase.pk).exists()
    assert Suppression.is_suppressed(account, "person1@example.com")
    assert AuditEntry.objects.filter(object_type="crmsync.Prospect", object_id=str(erase.pk)).exists()
    keep.refresh_from_db()
    assert not keep.erased and keep.events.count() == 2


def test_an_erased_prospect_can_no_longer_be_edited(staff, account):
    prospect = Prospect.objects.create(account=account, email=None, erased=True, erased_at=timezone.now())
    request = RequestFactory().get("/")
    request.user = staff

    read_only = admin.site._registry[Prospect].get_readonly_fields(request, prospect)

    assert {"email", "first_name", "last_name", "phone", "company", "attributes"} <= set(read_only)


# --- API keys in the admin ---------------------------------------------------------------------------


def test_the_key_hash_is_never_shown(ops, account):
    key, raw_key = ApiKey.issue(account, "Website")

    pages = ops.get(_changelist(ApiKey)).content.decode() + ops.get(_change(key)).content.decode()

    assert key.prefix in pages
    assert key.key_hash not in pages and raw_key not in pages


def test_adding_a_key_in_the_admin_shows_the_raw_key_once(ops, staff, account):
    response = ops.post(reverse("admin:crmsync_apikey_add"), {"account": account.pk, "name": "From ops"}, follow=True)

    key = ApiKey.objects.get(name="From ops")
    raw_key = re.search(r"(csk_[A-Za-z0-9_-]{20,})", response.content.decode()).group(1)
    assert ApiKey.authenticate(raw_key) == key
    assert key.created_by == staff and key.account == account
    assert ApiKey.objects.count() == 1
    assert raw_key not in ops.get(_change(key)).content.decode()
    assert raw_key not in ops.get(_changelist(ApiKey)).content.decode()
    entry = AuditEntry.objects.get(action="api_key.created")
    assert entry.actor == staff and raw_key not in str(entry.changes)


def test_revoking_keys_in_the_admin_is_confirmed_and_audited(ops, staff, account):
    key, raw_key = ApiKey.issue(account, "Website")
    action = {"action": "revoke_keys", "_selected_action": [key.pk]}

    confirm = ops.post(_changelist(ApiKey), action)
    assert confirm.status_code == 200 and "Yes, revoke them" in confirm.content.decode()
    assert ApiKey.authenticate(raw_key) == key

    ops.post(_changelist(ApiKey), {**action, "confirmed": "yes"})

    assert ApiKey.authenticate(raw_key) is None
    entry = AuditEntry.objects.get(action="api_key.revoked")
    assert entry.actor == staff and entry.object_id == str(key.pk)


def test_keys_are_revoked_not_deleted(staff, account):
    request = RequestFactory().get("/")
    request.user = staff

    assert not admin.site._registry[ApiKey].has_delete_permission(request, ApiKey.issue(account, "k")[0])


# --- audit entries are append-only ----------------------------------------------------------------------


def test_audit_entries_cannot_be_changed_or_deleted_in_the_admin(ops, staff, account):
    entry = audit.record("test.thing", account=account, actor_label="someone")
    entry_admin = admin.site._registry[AuditEntry]
    request = RequestFactory().get("/")
    request.user = staff

    assert not entry_admin.has_add_permission(request)
    assert not entry_admin.has_change_permission(request, entry)
    assert not entry_admin.has_delete_permission(request, entry)
    assert ops.post(_change(entry), {"action": "edited"}).status_code == 403
    assert ops.post(reverse("admin:crmsync_auditentry_delete", args=[entry.pk]), {"post": "yes"}).status_code == 403
    assert ops.get(reverse("admin:crmsync_auditentry_add")).status_code == 403
    assert ops.get(_change(entry)).status_code == 200  # ops can read it
    entry.refresh_from_db()
    assert entry.action == "test.thing"


def test_audit_entries_cannot_be_changed_or_deleted_through_the_model(account):
    entry = audit.record("test.thing", account=account, actor_label="someone")

    with pytest.raises(PermissionError):
        entry.save()
    with pytest.raises(PermissionError):
        entry.delete()
    with pytest.raises(PermissionError):
        AuditEntry.objects.filter(pk=entry.pk).update(action="x")
    with pytest.raises(PermissionError):
        AuditEntry.objects.filter(pk=entry.pk).delete()


def test_audit_log_search_finds_actor_and_object(ops, account):
    audit.record("test.one", account=account, actor_label="alice@example.com")
    audit.record("test.two", account=account, actor_label="bob@example.com", obj=account)

    by_actor = ops.get(_changelist(AuditEntry), {"q": "alice"}).context["cl"].result_list
    by_object = ops.get(_changelist(AuditEntry), {"q": str(account.pk)}).context["cl"].result_list
    by_action = ops.get(_changelist(AuditEntry), {"action": "test.two"}).context["cl"].result_list

    assert [e.action for e in by_actor] == ["test.one"]
    assert [e.action for e in by_object] == ["test.two"]
    assert [e.actor_label for e in by_action] == ["bob@example.com"]


@pytest.mark.parametrize("model", [Event, AuditEntry, Suppression])
def test_system_written_rows_are_read_only(staff, model):
    model_admin = admin.site._registry[model]
    request = RequestFactory().get("/")
    request.user = staff

    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_change_permission(request)
    assert not model_admin.has_delete_permission(request)


# --- every admin change is audited --------------------------------------------------------------------


def test_changing_an_account_in_the_admin_is_audited_with_before_and_after(ops, staff, account):
    response = ops.post(
        _change(account),
        {
            "name": "Acme Corporation",
            "slug": account.slug,
            "require_consent": "on",
            "notification_email": "",
            "memberships-TOTAL_FORMS": "0",
            "memberships-INITIAL_FORMS": "0",
            "memberships-MIN_NUM_FORMS": "0",
            "memberships-MAX_NUM_FORMS": "1000",
        },
        REMOTE_ADDR="198.51.100.7",
    )

    assert response.status_code == 302
    entry = AuditEntry.objects.get(action="admin.account.changed")
    assert entry.actor == staff and entry.ip_address == "198.51.100.7" and entry.account == account
    assert entry.changes == {
        "name": {"before": "Acme Corp", "after": "Acme Corporation"},
        "require_consent": {"before": False, "after": True},
    }


def test_memberships_added_through_the_account_inline_are_audited(ops, staff, account, db):
    user = get_user_model().objects.create_user("new@example.com", "new@example.com", "pw 123 long enough")

    response = ops.post(
        _change(account),
        {
            "name": account.name,
            "slug": account.slug,
            "notification_email": "",
            "memberships-TOTAL_FORMS": "1",
            "memberships-INITIAL_FORMS": "0",
            "memberships-MIN_NUM_FORMS": "0",
            "memberships-MAX_NUM_FORMS": "1000",
            "memberships-0-user": user.pk,
            "memberships-0-role": Role.ADMIN,
            "memberships-0-account": account.pk,
        },
    )

    assert response.status_code == 302
    membership = Membership.objects.get(account=account, user=user)
    entry = AuditEntry.objects.get(action="admin.membership.created")
    assert entry.object_id == str(membership.pk) and entry.account == account and entry.actor == staff
    assert entry.changes["role"] == "admin" and entry.changes["user"] == user.pk


def test_deleting_a_membership_in_the_admin_is_audited(ops, staff, account, owner):
    membership = Membership.objects.get(user=owner)

    response = ops.post(reverse("admin:crmsync_membership_delete", args=[membership.pk]), {"post": "yes"})

    assert response.status_code == 302
    assert not Membership.objects.filter(pk=membership.pk).exists()
    entry = AuditEntry.objects.get(action="admin.membership.deleted")
    assert entry.object_id == str(membership.pk) and entry.account == account and entry.actor == staff


def test_an_unchanged_save_writes_no_audit_entry(ops, account):
    capsule = Capsule.objects.create(account=account, external_id="cap-1", title="Same")

    response = ops.post(_change(capsule), {"account": account.pk, "external_id": "cap-1", "title": "Same", "url": ""})

    assert response.status_code == 302
    assert not AuditEntry.objects.filter(action__startswith="admin.").exists()
