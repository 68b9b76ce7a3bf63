"""The source catalogue and snapshots: every group, custom attributes, engagement aggregates in a
constant number of queries, and the registry other apps extend."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from django.db import connection as db
from django.test.utils import CaptureQueriesContext

from crmsync.models import Capsule, Event, EventType, Prospect
from mapping import sources

UTC = dt.UTC
T0 = dt.datetime(2025, 1, 10, 9, 0, tzinfo=UTC)
_ids = itertools.count(1)


def event(prospect: Prospect, type_: str, minutes: int, capsule: Capsule | None = None, **data) -> Event:
    return Event.objects.create(
        account=prospect.account,
        prospect=prospect,
        type=type_,
        capsule=capsule,
        external_id=f"ev-{next(_ids)}",
        occurred_at=T0 + dt.timedelta(minutes=minutes),
        data=data,
    )


@pytest.fixture
def prospect(account) -> Prospect:
    return Prospect.objects.create(
        account=account,
        email="ada@example.com",
        first_name="Ada",
        last_name="Lovelace",
        phone="+44 20 7946 0958",
        company="Analytical Engines",
        job_title="Head of Research",
        consent_granted=True,
        consent_at=T0,
        consent_source="capsule form",
        attributes={"industry": "fintech", "seats": 40},
        utm={"source": "linkedin", "medium": "social", "campaign": "spring"},
    )


@pytest.fixture
def engaged(prospect) -> Prospect:
    tour = Capsule.objects.create(
        account=prospect.account, external_id="c1", title="Product tour", url="https://capsules.example.com/c/tour"
    )
    pricing = Capsule.objects.create(
        account=prospect.account, external_id="c2", title="", url="https://capsules.example.com/c/pricing"
    )
    event(prospect, EventType.CAPSULE_VIEWED, 0, tour)
    event(prospect, EventType.CAPSULE_VIEWED, 5, tour)
    event(prospect, EventType.QUESTION_ASKED, 6, tour, text="What does it cost?")
    event(prospect, EventType.QUESTION_ASKED, 9, tour, text="Does it integrate with our CRM?")
    event(prospect, EventType.TIME_SPENT, 10, tour, seconds=300)
    event(prospect, EventType.TIME_SPENT, 11, tour, seconds=45)
    event(prospect, EventType.CONTENT_ACCESSED, 12, tour, content_id="d1", content_title="Pricing guide")
    event(prospect, EventType.CONTENT_ACCESSED, 13, tour, content_id="d1", content_title="Pricing guide")
    event(prospect, EventType.CONTENT_ACCESSED, 14, tour, content_id="d2")
    event(prospect, EventType.CONTENT_DOWNLOADED, 15, tour, content_id="d1", content_title="Pricing guide")
    event(prospect, EventType.CTA_CLICKED, 16, tour, cta_id="demo", label="Book a demo")
    event(prospect, EventType.CONVERSION, 17, tour, value=1200.5, currency="EUR")
    event(prospect, EventType.CONVERSION, 18, tour, value=99, currency="EUR")
    event(prospect, EventType.SENTIMENT, 19, None, score=0.8, label="positive")
    event(prospect, EventType.CAPSULE_VIEWED, 20, pricing)  # the latest capsule: untitled, so its id
    return prospect


def test_the_catalogue_lists_every_builtin_group_with_types():
    index = sources.catalogue_index()
    expected = {
        "email": "email",
        "first_name": "string",
        "full_name": "string",
        "phone": "phone",
        "consent_granted": "boolean",
        "consent_at": "datetime",
        "created_at": "datetime",
        "capsule_prospect_id": "integer",
        "utm_source": "string",
        "utm_content": "string",
        "views": "integer",
        "last_question": "text",
        "total_time_seconds": "integer",
        "content_accessed": "list",
        "last_capsule_url": "url",
        "last_engaged_at": "datetime",
        "converted": "boolean",
        "conversion_value": "number",
    }
    assert {key: index[key].type for key in expected} == expected
    assert [g.name for g in sources.groups()][:3] == ["prospect", "utm", "engagement"]
    assert all(field.type in sources.SOURCE_TYPES for field in sources.catalogue())


def test_the_account_catalogue_adds_its_custom_attribute_keys_with_guessed_types(account, prospect, make_account):
    Prospect.objects.create(account=account, email="b@example.com", attributes={"industry": "retail", "vip": True})
    other = make_account("Other")
    Prospect.objects.create(account=other, email="c@example.com", attributes={"secret_key": "x"})
    attributes = {f.key: f.type for f in sources.catalogue(account) if f.key.startswith("attr.")}
    assert attributes == {"attr.industry": "string", "attr.seats": "number", "attr.vip": "boolean"}
    assert "attr.secret_key" not in {f.key for f in sources.catalogue(account)}
    assert not any(f.key.startswith("attr.") for f in sources.catalogue())


def test_attribute_discovery_is_one_query(account, prospect):
    for n in range(30):
        Prospect.objects.create(account=account, email=f"p{n}@example.com", attributes={f"k{n % 5}": n})
    with CaptureQueriesContext(db) as queries:
        keys = [f.key for f in sources.catalogue(account) if f.key.startswith("attr.")]
    assert len(queries) == 1
    assert {"attr.k0", "attr.k4", "attr.industry"} <= set(keys)


def test_a_snapshot_of_a_prospect_without_events(prospect):
    snapshot = sources.load_snapshots(prospect.account, [prospect.pk])[prospect.pk]
    assert snapshot["email"] == "ada@example.com"
    assert snapshot["full_name"] == "Ada Lovelace"
    assert snapshot["capsule_prospect_id"] == prospect.pk
    assert snapshot["consent_granted"] is True and snapshot["consent_at"] == T0
    assert snapshot["attr.industry"] == "fintech" and snapshot["attr.seats"] == 40
    assert (snapshot["utm_source"], snapshot["utm_campaign"], snapshot["utm_term"]) == ("linkedin", "spring", None)
    assert (snapshot["views"], snapshot["questions_asked"], snapshot["total_time_seconds"]) == (0, 0, 0)
    assert snapshot["content_accessed"] == [] and snapshot["converted"] is False
    assert snapshot["last_engaged_at"] is None and snapshot["last_capsule"] is None
    # Every static catalogue key is present, even those no loader filled.
    assert {f.key for f in sources.catalogue()} <= snapshot.keys()


def test_engagement_aggregates_from_every_event_type(engaged):
    snapshot = sources.load_snapshots(engaged.account, [engaged.pk])[engaged.pk]
    assert snapshot["views"] == 3
    assert snapshot["questions_asked"] == 2
    assert snapshot["last_question"] == "Does it integrate with our CRM?"
    assert snapshot["total_time_seconds"] == 345
    assert snapshot["content_accessed"] == ["Pricing guide", "d2"]
    assert snapshot["downloads"] == 1
    assert snapshot["cta_clicks"] == 1
    assert snapshot["converted"] is True
    assert snapshot["conversion_value"] == pytest.approx(1299.5)
    assert snapshot["last_engaged_at"] == T0 + dt.timedelta(minutes=20)
    assert snapshot["last_capsule"] == "c2"
    assert snapshot["last_capsule_url"] == "https://capsules.example.com/c/pricing"


def test_snapshots_leave_out_other_accounts_prospects(engaged, make_account):
    other = make_account("Other")
    theirs = Prospect.objects.create(account=other, email="x@example.com")
    assert set(sources.load_snapshots(engaged.account, [engaged.pk, theirs.pk, 999_999])) == {engaged.pk}
    assert sources.load_snapshots(other, [engaged.pk]) == {}
    assert sources.load_snapshots(other, []) == {}


def _make_engaged_prospects(account, count: int) -> list[int]:
    capsule = Capsule.objects.create(account=account, external_id=f"cap-{count}", title="Tour")
    prospects = Prospect.objects.bulk_create(
        [Prospect(account=account, email=f"bulk{count}-{n}@example.com") for n in range(count)]
    )
    events = []
    for p in prospects:
        for minute, (type_, data) in enumerate(
            [
                (EventType.CAPSULE_VIEWED, {}),
                (EventType.QUESTION_ASKED, {"text": "q"}),
                (EventType.TIME_SPENT, {"seconds": 10}),
                (EventType.CONTENT_ACCESSED, {"content_id": "d"}),
                (EventType.CONVERSION, {"value": 5, "currency": "EUR"}),
            ]
        ):
            events.append(
                Event(
                    account=account,
                    prospect=p,
                    type=type_,
                    capsule=capsule,
                    data=data,
                    external_id=f"bulk-{p.pk}-{minute}",
                    occurred_at=T0 + dt.timedelta(minutes=minute),
                )
            )
    Event.objects.bulk_create(events)
    return [p.pk for p in prospects]


def test_loading_snapshots_costs_the_same_queries_for_3_or_300_prospects(account, django_assert_max_num_queries):
    few = _make_engaged_prospects(account, 3)
    many = _make_engaged_prospects(account, 300)
    with CaptureQueriesContext(db) as small:
        sources.load_snapshots(account, few)
    with django_assert_max_num_queries(len(small.captured_queries)):
        snapshots = sources.load_snapshots(account, many)
    assert len(small.captured_queries) <= 8
    assert len(snapshots) == 300
    assert all(s["views"] == 1 and s["total_time_seconds"] == 10 and s["converted"] for s in snapshots.values())


def test_iter_snapshots_streams_in_batches(account):
    ids = _make_engaged_prospects(account, 7)
    batches = list(sources.iter_snapshots(account, iter(ids), batch_size=3))
    assert [len(batch) for batch in batches] == [3, 3, 1]
    assert {pk for batch in batches for pk in batch} == set(ids)


def test_another_app_registers_a_group_that_the_catalogue_and_snapshots_include(prospect):
    calls = []

    def load(account, ids):
        calls.append(list(ids))
        return {pk: {"test_widget": f"w{pk}"} for pk in ids}

    sources.register_source_group(
        "test_group", [sources.SourceField("test_widget", "Widget", "string", "test_group")], load, label="Testing"
    )
    try:
        assert sources.catalogue_index()["test_widget"].group == "test_group"
        assert sources.group_label("test_group") == "Testing"
        snapshot = sources.load_snapshots(prospect.account, [prospect.pk])[prospect.pk]
        assert snapshot["test_widget"] == f"w{prospect.pk}"
        assert calls == [[prospect.pk]]
        assert not sources.is_writable("test_widget")
    finally:
        sources.unregister_source_group("test_group")
    assert "test_widget" not in sources.catalogue_index()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ([sources.SourceField("x_key", "X", "string", "elsewhere")], "says group"),
        ([sources.SourceField("x_key", "X", "decimal", "bad_group")], "has type"),
        ([sources.SourceField("email", "E-mail again", "email", "bad_group")], "already registered"),
    ],
)
def test_bad_registrations_are_refused(fields, message):
    with pytest.raises(ValueError, match=message):
        sources.register_source_group("bad_group", fields, lambda account, ids: {})
    assert "bad_group" not in {g.name for g in sources.groups()}


def test_writable_sources_are_the_prospects_own_fields_and_attributes():
    assert sources.is_writable("first_name") and sources.is_writable("attr.anything")
    assert not sources.is_writable("email")  # the identity stays the capsule's
    assert not sources.is_writable("consent_granted") and not sources.is_writable("full_name")
    assert not sources.is_writable("views") and not sources.is_writable("utm_source")
    assert not sources.is_writable("no_such_key")


def test_the_score_group_is_in_the_catalogue_with_its_documented_keys(score_group):
    index = sources.catalogue_index()
    assert (index["lead_score"].type, index["lead_grade"].type, index["score_top_contributors"].type) == (
        "integer",
        "string",
        "string",
    )
    assert index["lead_score"].group == "score"
