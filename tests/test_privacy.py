"""Erasure, suppression and consent (crmsync.privacy, Prospect.may_sync)."""

from __future__ import annotations

import json

import pytest

from crmsync.ingest import ingest_events
from crmsync.models import AuditEntry, Event, Prospect, Suppression, Visitor, suppression_hash
from crmsync.privacy import erase_by_email, erase_prospect
from tests.ingest_factories import event, validated

pytestmark = pytest.mark.django_db

EMAIL = "ann.lee@example.com"


def ingest(account, *payloads):
    return ingest_events(account, validated(*payloads), actor_label="test")


@pytest.fixture
def ann(account):
    ingest(
        account,
        event(email=None, visitor_id="vis-1", event_id="anon"),
        event(
            "question_asked",
            email=EMAIL,
            visitor_id="vis-1",
            event_id="q",
            prospect={
                "full_name": "Ann Lee",
                "phone": "+44 20 1234",
                "company": "Northwind",
                "job_title": "CTO",
                "attributes": {"plan": "pro"},
                "utm": {"source": "newsletter"},
                "consent": {"granted": True, "source": "form"},
            },
        ),
    )
    return Prospect.objects.get(account=account, email=EMAIL)


def test_erasure_deletes_events_and_visitors_and_anonymises_the_row(account, ann):
    erasure = erase_prospect(ann, actor_label="ops@example.com")

    assert (erasure.events_deleted, erasure.visitors_deleted) == (2, 1)
    assert not Event.objects.exists()
    assert not Visitor.objects.exists()
    row = Prospect.objects.get(pk=ann.pk)  # kept, for CRM-side erasure
    assert row.email is None
    assert (row.first_name, row.last_name, row.phone, row.company, row.job_title) == ("", "", "", "", "")
    assert (row.attributes, row.utm) == ({}, {})
    assert (row.consent_granted, row.consent_source, row.consent_at) == (None, "", None)
    assert row.erased is True
    assert row.erased_at is not None
    assert ann.erased is True  # the caller's instance is refreshed


def test_erasure_keeps_a_suppression_of_the_address(account, ann):
    erase_prospect(ann, actor_label="ops@example.com")

    assert Suppression.is_suppressed(account, EMAIL)
    assert Suppression.is_suppressed(account, " Ann.Lee@Example.com ")
    assert EMAIL not in Suppression.objects.get().email_hash


def test_erasure_is_audited_without_the_address(account, ann):
    erase_prospect(ann, actor_label="ops@example.com")

    entry = AuditEntry.objects.get(action="prospect.erased")
    assert (entry.account, entry.actor_label, entry.object_id) == (account, "ops@example.com", str(ann.pk))
    assert entry.changes == {"events_deleted": 2, "visitors_deleted": 1}
    everything = json.dumps(
        [entry.actor_label, entry.object_type, entry.object_id, entry.object_repr, entry.changes, entry.user_agent]
    ).lower()
    assert "ann" not in everything
    assert "example.com" not in everything.replace("ops@example.com", "")


def test_a_suppressed_address_later_event_writes_nothing(account, ann):
    erase_prospect(ann, actor_label="ops@example.com")

    result = ingest(account, event(email="ANN.LEE@example.com", visitor_id="vis-1", event_id="after"))

    assert result.outcomes[0].status == "suppressed"
    assert not Event.objects.exists()
    assert not Visitor.objects.exists()
    assert list(Prospect.objects.values_list("email", flat=True)) == [None]


def test_erasing_twice_changes_nothing_more(account, ann):
    erase_prospect(ann, actor_label="ops@example.com")
    erasure = erase_prospect(ann, actor_label="ops@example.com")

    assert (erasure.events_deleted, erasure.visitors_deleted) == (0, 0)
    assert AuditEntry.objects.filter(action="prospect.erased").count() == 1
    assert Suppression.objects.count() == 1


def test_erasure_leaves_other_prospects_and_accounts_alone(account, ann, make_account):
    other = make_account("Other Co")
    ingest(other, event(email=EMAIL, event_id="theirs"))
    ingest(account, event(email="bob@example.com", event_id="bob"))

    erase_prospect(ann, actor_label="ops@example.com")

    assert Prospect.objects.get(account=other).email == EMAIL
    assert set(Event.objects.values_list("external_id", flat=True)) == {"theirs", "bob"}
    assert not Suppression.is_suppressed(other, EMAIL)


def test_erase_by_email_finds_any_spelling(account, ann):
    erasure = erase_by_email(account, "  ANN.LEE@EXAMPLE.COM", actor_label="cli")

    assert erasure.prospect_id == ann.pk
    assert Prospect.objects.get(pk=ann.pk).erased


def test_erase_by_email_of_an_unknown_address_is_none(account, ann):
    assert erase_by_email(account, "nobody@example.com", actor_label="cli") is None
    assert not Suppression.objects.exists()


def test_suppression_hashes_are_salted_per_account(account, make_account):
    other = make_account("Other Co")
    assert suppression_hash(account, EMAIL) != suppression_hash(other, EMAIL)


# --- consent: Prospect.may_sync --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("require_consent", "granted", "may_sync"),
    [
        (True, True, True),
        (True, None, False),
        (True, False, False),
        (False, True, True),
        (False, None, True),
        (False, False, False),
    ],
)
def test_may_sync_follows_the_accounts_consent_rule(account, require_consent, granted, may_sync):
    account.require_consent = require_consent
    account.save()
    consent = {} if granted is None else {"consent": {"granted": granted, "source": "form"}}
    ingest(account, event(prospect=consent))

    assert Prospect.objects.get().may_sync() is may_sync


@pytest.mark.parametrize("require_consent", [True, False])
def test_an_erased_prospect_may_never_sync(account, ann, require_consent):
    account.require_consent = require_consent
    account.save()
    erase_prospect(ann, actor_label="ops@example.com")

    assert Prospect.objects.get(pk=ann.pk).may_sync() is False


def test_a_prospect_without_an_address_may_not_sync(account):
    prospect = Prospect.objects.create(account=account, email=None, consent_granted=True)
    assert prospect.may_sync() is False
