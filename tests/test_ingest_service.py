"""crmsync.ingest: prospects, visitors, stitching, suppression, de-duplication and the hook registry."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection

from crmsync import audit
from crmsync.ingest import ingest_events, register_ingest_hook, split_full_name, unregister_ingest_hook
from crmsync.models import AuditEntry, Capsule, Event, Prospect, Suppression, Visitor, suppression_hash
from tests.ingest_factories import BASE_TIME, event, validated

pytestmark = pytest.mark.django_db


def ingest(account, *payloads):
    return ingest_events(account, validated(*payloads), actor_label="test")


def test_an_identified_event_creates_capsule_prospect_and_event(account):
    result = ingest(
        account,
        event(
            "time_spent",
            event_id="e1",
            email=" Ann@Example.COM ",
            prospect={"company": "Northwind"},
            capsule={"id": "cap-9", "title": "Tour", "url": "https://c.example.com/9"},
            data={"seconds": 42},
        ),
    )

    prospect = Prospect.objects.get(account=account)
    assert prospect.email == "ann@example.com"
    assert prospect.company == "Northwind"
    assert prospect.last_event_at == BASE_TIME
    stored = Event.objects.get(account=account)
    assert (stored.external_id, stored.type, stored.data, stored.prospect_id) == (
        "e1",
        "time_spent",
        {"seconds": 42},
        prospect.pk,
    )
    assert stored.occurred_at == BASE_TIME
    assert (stored.capsule.external_id, stored.capsule.title, stored.capsule.url) == (
        "cap-9",
        "Tour",
        "https://c.example.com/9",
    )
    assert result.as_dict() == {
        "accepted": 1,
        "duplicates": 0,
        "suppressed": 0,
        "results": [{"event_id": "e1", "status": "created", "prospect_id": prospect.pk}],
    }


def test_non_empty_fields_update_the_prospect_and_empty_ones_keep_it(account):
    ingest(account, event(prospect={"first_name": "Ann", "company": "Northwind", "phone": "+44 20 1234"}))
    ingest(account, event(minutes=5, prospect={"company": "Contoso", "job_title": "CTO", "phone": ""}))

    prospect = Prospect.objects.get(account=account)
    assert (prospect.first_name, prospect.company, prospect.job_title, prospect.phone) == (
        "Ann",
        "Contoso",
        "CTO",
        "+44 20 1234",
    )
    assert prospect.last_event_at == BASE_TIME + timedelta(minutes=5)


def test_a_late_event_fills_empty_fields_but_does_not_overwrite_newer_ones(account):
    ingest(account, event(minutes=10, prospect={"company": "Contoso"}))
    ingest(account, event(minutes=1, prospect={"company": "Old Co", "job_title": "CTO"}))

    prospect = Prospect.objects.get(account=account)
    assert (prospect.company, prospect.job_title) == ("Contoso", "CTO")
    assert prospect.last_event_at == BASE_TIME + timedelta(minutes=10)


def test_full_name_is_split_when_first_and_last_are_absent(account):
    ingest(account, event(prospect={"full_name": "Dr. Ann Marie Lee Jr."}))
    prospect = Prospect.objects.get(account=account)
    assert (prospect.first_name, prospect.last_name) == ("Ann Marie", "Lee Jr.")


def test_full_name_is_ignored_when_a_first_or_last_name_is_given(account):
    ingest(account, event(prospect={"full_name": "Ann Lee", "first_name": "Annie"}))
    prospect = Prospect.objects.get(account=account)
    assert (prospect.first_name, prospect.last_name) == ("Annie", "")


def test_split_full_name_handles_a_single_word():
    assert split_full_name("Cher") == ("Cher", "")


def test_attributes_merge_key_by_key_and_utm_keeps_the_first_touch(account):
    ingest(
        account,
        event(prospect={"attributes": {"plan": "pro", "seats": 5}, "utm": {"source": "newsletter", "campaign": "jan"}}),
    )
    ingest(
        account,
        event(
            minutes=1, prospect={"attributes": {"seats": 40, "sso": True}, "utm": {"source": "google", "medium": "cpc"}}
        ),
    )

    prospect = Prospect.objects.get(account=account)
    assert prospect.attributes == {"plan": "pro", "seats": 40, "sso": True}
    assert prospect.utm == {"source": "newsletter", "campaign": "jan", "medium": "cpc"}


def test_consent_is_recorded_with_its_time_and_source(account):
    ingest(account, event(minutes=3, prospect={"consent": {"granted": True, "source": "capsule form v2"}}))
    prospect = Prospect.objects.get(account=account)
    assert prospect.consent_granted is True
    assert prospect.consent_source == "capsule form v2"
    assert prospect.consent_at == BASE_TIME + timedelta(minutes=3)  # the event's time when "at" is absent

    at = (BASE_TIME + timedelta(minutes=9)).isoformat()
    ingest(account, event(minutes=10, prospect={"consent": {"granted": False, "source": "preferences", "at": at}}))
    prospect.refresh_from_db()
    assert (prospect.consent_granted, prospect.consent_source) == (False, "preferences")
    assert prospect.consent_at == BASE_TIME + timedelta(minutes=9)


def test_an_older_consent_answer_does_not_replace_a_newer_one(account):
    ingest(account, event(minutes=10, prospect={"consent": {"granted": False, "source": "preferences"}}))
    ingest(account, event(minutes=1, prospect={"consent": {"granted": True, "source": "old form"}}))

    prospect = Prospect.objects.get(account=account)
    assert (prospect.consent_granted, prospect.consent_source) == (False, "preferences")


def test_a_replayed_event_changes_nothing(account):
    payload = event("question_asked", event_id="q1", prospect={"company": "Northwind"})
    ingest(account, payload)
    prospect = Prospect.objects.get(account=account)

    replay = dict(payload, prospect={"email": "ann@example.com", "company": "Changed"})
    result = ingest(account, replay)

    assert result.outcomes[0].status == "duplicate"
    assert result.outcomes[0].prospect_id == prospect.pk
    assert Event.objects.count() == 1
    after = Prospect.objects.get(pk=prospect.pk)
    assert (after.company, after.updated_at) == ("Northwind", prospect.updated_at)


def test_a_repeated_event_id_within_one_call_is_stored_once(account):
    result = ingest(account, event(event_id="same"), event(event_id="same", minutes=1), event(event_id="other"))

    assert [o.status for o in result.outcomes] == ["created", "duplicate", "created"]
    assert result.outcomes[1].prospect_id == result.outcomes[0].prospect_id is not None
    assert Event.objects.count() == 2


def test_capsule_title_is_updated_by_a_non_empty_title_only(account):
    ingest(account, event(capsule={"id": "cap-1", "title": "Old"}))
    ingest(account, event(capsule={"id": "cap-1", "title": "New"}))
    ingest(account, event(capsule={"id": "cap-1"}))

    assert list(Capsule.objects.values_list("external_id", "title")) == [("cap-1", "New")]


def test_an_anonymous_event_is_stored_without_prospect_and_records_the_visitor(account):
    result = ingest(account, event(email=None, visitor_id="vis-1"))

    stored = Event.objects.get()
    assert (stored.prospect_id, stored.visitor_id) == (None, "vis-1")
    visitor = Visitor.objects.get(account=account)
    assert (visitor.visitor_id, visitor.prospect_id, visitor.first_seen_at) == ("vis-1", None, BASE_TIME)
    assert result.outcomes[0].prospect_id is None
    assert not Prospect.objects.exists()


def test_identifying_a_visitor_attaches_its_earlier_anonymous_events(account):
    ingest(
        account,
        event(email=None, visitor_id="vis-1", event_id="a1"),
        event(email=None, visitor_id="vis-1", event_id="a2", minutes=1),
    )
    ingest(account, event(email=None, visitor_id="other", event_id="a3"))

    result = ingest(account, event("lead_captured", visitor_id="vis-1", event_id="id1", minutes=2))

    prospect = Prospect.objects.get()
    assert result.outcomes[0].prospect_id == prospect.pk
    assert set(prospect.events.values_list("external_id", flat=True)) == {"a1", "a2", "id1"}
    assert Event.objects.get(external_id="a3").prospect_id is None
    visitor = Visitor.objects.get(visitor_id="vis-1")
    assert visitor.prospect_id == prospect.pk
    assert visitor.identified_at is not None


def test_a_known_visitors_later_anonymous_events_attach_directly(account):
    ingest(account, event(visitor_id="vis-1", event_id="id1"))
    result = ingest(account, event(email=None, visitor_id="vis-1", event_id="later", minutes=30))

    prospect = Prospect.objects.get()
    assert result.outcomes[0].prospect_id == prospect.pk
    assert Event.objects.get(external_id="later").prospect_id == prospect.pk
    assert prospect.last_event_at == BASE_TIME + timedelta(minutes=30)


def test_stitching_within_one_batch(account):
    result = ingest(
        account,
        event(email=None, visitor_id="vis-1", event_id="anon", minutes=0),
        event(visitor_id="vis-1", event_id="named", minutes=1),
        event(email=None, visitor_id="vis-1", event_id="after", minutes=2),
    )

    prospect = Prospect.objects.get()
    assert [o.prospect_id for o in result.outcomes] == [prospect.pk] * 3
    assert Event.objects.filter(prospect=prospect).count() == 3


def test_a_visitor_keeps_its_first_prospect(account):
    ingest(account, event(visitor_id="shared-laptop", email="ann@example.com", event_id="e1"))
    ingest(account, event(visitor_id="shared-laptop", email="bob@example.com", event_id="e2", minutes=1))
    ingest(account, event(email=None, visitor_id="shared-laptop", event_id="e3", minutes=2))

    ann = Prospect.objects.get(email="ann@example.com")
    bob = Prospect.objects.get(email="bob@example.com")
    assert Event.objects.get(external_id="e2").prospect_id == bob.pk
    assert Event.objects.get(external_id="e3").prospect_id == ann.pk
    assert Visitor.objects.get().prospect_id == ann.pk


def test_a_suppressed_email_writes_nothing(account):
    Suppression.objects.create(account=account, email_hash=suppression_hash(account, "gone@example.com"))

    result = ingest(
        account,
        event(email="GONE@example.com", visitor_id="vis-9", capsule={"id": "cap-new"}),
        event(email="ann@example.com", event_id="kept"),
    )

    assert [o.status for o in result.outcomes] == ["suppressed", "created"]
    assert result.outcomes[0].prospect_id is None
    assert list(Prospect.objects.values_list("email", flat=True)) == ["ann@example.com"]
    assert list(Event.objects.values_list("external_id", flat=True)) == ["kept"]
    assert not Visitor.objects.exists()
    assert not Capsule.objects.filter(external_id="cap-new").exists()


def test_suppression_is_per_account(account, make_account):
    other = make_account("Other Co")
    Suppression.objects.create(account=other, email_hash=suppression_hash(other, "ann@example.com"))

    result = ingest(account, event(email="ann@example.com"))

    assert result.outcomes[0].status == "created"


def test_the_same_event_id_in_two_accounts_is_two_events(account, make_account):
    other = make_account("Other Co")
    ingest(account, event(event_id="shared-id"))
    result = ingest(other, event(event_id="shared-id"))

    assert result.outcomes[0].status == "created"
    assert Event.objects.filter(external_id="shared-id").count() == 2
    assert Prospect.objects.filter(email="ann@example.com").count() == 2


@pytest.fixture
def no_hooks(monkeypatch):
    """Count ingest's own queries only, whatever hooks other apps register."""
    monkeypatch.setattr("crmsync.ingest._hooks", [])


def test_a_500_event_batch_takes_a_fixed_number_of_queries(account, no_hooks, django_assert_max_num_queries):
    ingest(account, *[event(email=f"p{n}@example.com", visitor_id=f"v{n}") for n in range(0, 500, 2)])
    ingest(account, *[event(email=None, visitor_id=f"w{n}") for n in range(1, 500, 2)])
    payloads = [  # known and new prospects, anonymous visitors, and visitors identified (stitched) now
        event(
            email=f"p{n}@example.com" if n % 3 else None,
            visitor_id=f"v{n}" if n % 2 == 0 else f"w{n}",
            prospect={"company": f"Co {n}"},
            capsule={"id": f"cap-{n % 7}"},
            minutes=n,
        )
        for n in range(500)
    ]
    events = validated(*payloads)

    # Set-based work: the count does not grow with the batch, new prospects or stitched visitors.
    with django_assert_max_num_queries(12):
        result = ingest_events(account, events, actor_label="test")
    assert result.accepted == 500
    stitched = Event.objects.filter(visitor_id="w1").values_list("prospect__email", flat=True)
    assert list(stitched) == ["p1@example.com", "p1@example.com"]


def test_a_500_event_batch_of_known_prospects_needs_no_per_event_queries(
    account, no_hooks, django_assert_max_num_queries
):
    ingest(account, *[event(email=f"p{n}@example.com", visitor_id=f"v{n}") for n in range(50)])
    events = validated(*[event(email=f"p{n % 50}@example.com", visitor_id=f"v{n % 50}", minutes=n) for n in range(500)])

    with django_assert_max_num_queries(10):
        result = ingest_events(account, events, actor_label="test")
    assert result.accepted == 500


# --- the hook registry ------------------------------------------------------------------------------


@pytest.fixture
def hook():
    registered = []

    def register(fn):
        registered.append(register_ingest_hook(fn))
        return fn

    yield register
    for fn in registered:
        unregister_ingest_hook(fn)


def test_a_hook_writes_in_the_ingest_transaction(account, hook):
    calls = []

    @hook
    def note_events(hook_account, created, prospects):
        assert connection.in_atomic_block
        # The events are already in the database, in this transaction.
        assert Event.objects.filter(pk__in=[e.pk for e in created]).count() == len(created)
        calls.append(([e.external_id for e in created], sorted(prospects)))
        audit.record("test.hook", actor_label="hook", account=hook_account, changes={"events": len(created)})

    ingest(account, event(event_id="x1"), event(event_id="x2", email=None, visitor_id="v"))

    prospect = Prospect.objects.get()
    assert calls == [(["x1", "x2"], [prospect.pk])]
    assert AuditEntry.objects.get(action="test.hook").changes == {"events": 2}


def test_a_hook_sees_prospects_reached_by_stitching(account, hook):
    ingest(account, event(email=None, visitor_id="vis-1", event_id="anon"))
    seen = []
    hook(lambda _account, created, prospects: seen.append({p.email: p.last_event_at for p in prospects.values()}))

    ingest(account, event(visitor_id="vis-1", event_id="named", minutes=5))

    assert seen == [{"ann@example.com": BASE_TIME + timedelta(minutes=5)}]


def test_a_failing_hook_rolls_everything_back(account, hook):
    hook(lambda hook_account, created, prospects: audit.record("test.hook", actor_label="hook", account=hook_account))

    @hook
    def explode(hook_account, created, prospects):
        raise RuntimeError("scoring failed")

    with pytest.raises(RuntimeError, match="scoring failed"):
        ingest(account, event(visitor_id="vis-1"))

    assert not Event.objects.exists()
    assert not Prospect.objects.exists()
    assert not Visitor.objects.exists()
    assert not Capsule.objects.exists()
    assert not AuditEntry.objects.filter(action="test.hook").exists()


def test_hooks_are_not_called_when_nothing_was_stored(account, hook):
    ingest(account, event(event_id="once"))
    calls = []
    hook(lambda *args: calls.append(args))

    ingest(account, event(event_id="once"))

    assert calls == []


def test_an_unregistered_hook_is_not_called(account):
    calls = []

    def note(*args):
        calls.append(args)

    register_ingest_hook(note)
    unregister_ingest_hook(note)
    ingest(account, event())

    assert calls == []


def test_a_late_delivered_earlier_event_moves_the_visitors_first_sighting_back(account):
    ingest(account, event(email=None, visitor_id="vis-1", minutes=30))
    ingest(account, event(email=None, visitor_id="vis-1", minutes=5))
    ingest(account, event(email=None, visitor_id="vis-1", minutes=60))

    assert Visitor.objects.get().first_seen_at == BASE_TIME + timedelta(minutes=5)


_ON_SQLITE = """
import json
import django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from crmsync.models import Account, Event, Prospect, Visitor
from crmsync.ingest import ingest_events
from tests.ingest_factories import event, validated
account = Account.objects.create(name="Lite", slug="lite")
first = ingest_events(account, validated(
    event(email=None, visitor_id="v1", event_id="a"),
    event(event_id="b", prospect={"company": "X", "attributes": {"k": 1}}),
), actor_label="test")
second = ingest_events(account, validated(
    event(event_id="b"),
    event(event_id="c", visitor_id="v1", minutes=3, prospect={"company": "Y"}),
), actor_label="test")
prospect = Prospect.objects.get()
print(json.dumps({
    "statuses": [o.status for o in first.outcomes + second.outcomes],
    "company": prospect.company,
    "attributes": prospect.attributes,
    "events": sorted([external_id, prospect_id == prospect.pk]
                     for external_id, prospect_id in Event.objects.values_list("external_id", "prospect_id")),
    "visitor_attached": Visitor.objects.get().prospect_id == prospect.pk,
}))
"""


def test_ingest_works_on_sqlite_the_embedded_default(tmp_path):
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'lite.sqlite3'}",
        "DJANGO_SETTINGS_MODULE": "tests.settings",
    }
    result = subprocess.run(
        [sys.executable, "-c", _ON_SQLITE],
        cwd=Path(__file__).resolve().parent.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.splitlines()[-1]) == {
        "statuses": ["created", "created", "duplicate", "created"],
        "company": "Y",
        "attributes": {"k": 1},
        "events": [["a", True], ["b", True], ["c", True]],
        "visitor_attached": True,
    }
