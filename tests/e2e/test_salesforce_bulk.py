"""The sync engine switches to Salesforce Bulk API 2.0 above the connection's bulk threshold.

Batch and manual runs with more person rows due than ``bulk_threshold`` hand them to the
connector in jobs of up to ``bulk_job_rows``; fewer go through 200-record collections, and real
time never waits on a bulk job. Runs against the Salesforce sandbox over loopback HTTP.
"""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from crmsync.models import Prospect
from integrations.models import LinkState, OutboxItem, OutboxKind, OutboxState, RecordLink, SyncMode
from integrations.sync.claim import LEASE
from integrations.sync.engine import Flusher
from integrations.sync.jobs import sync_now
from integrations.sync.outbox import enqueue_prospects
from tests.e2e.conftest import sandbox

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def salesforce(tmp_path):
    with sandbox("salesforce", tmp_path) as running:
        yield running


def _prospects(account, count: int) -> list[Prospect]:
    return Prospect.objects.bulk_create(
        [
            Prospect(
                account=account,
                email=f"bulk{i}@example.com",
                first_name="Bulk",
                last_name=f"No{i}",
                company="Bulk Co",
                consent_granted=True,
            )
            for i in range(count)
        ]
    )


def _kinds(app) -> dict[str, int]:
    return dict(app.counters.calls_by_kind)


def test_a_manual_run_above_the_threshold_writes_people_in_bulk_jobs(salesforce, account):
    connection = salesforce.connect(
        account, mode=SyncMode.MANUAL, provider_settings={"bulk_threshold": 200, "bulk_job_rows": 250}
    )
    _prospects(account, 620)

    sync_now(connection.pk)

    app = salesforce.app
    # 620 due: two jobs of 250 (each above the threshold of 200); the last 120 are not above it
    # and go as one collection call. Either way every person lands once.
    assert len(app.jobs) == 2, _kinds(app)
    assert all(job.operation == "upsert" and job.state == "JobComplete" for job in app.jobs.values())
    assert app.counters.bulk_records == 500
    assert _kinds(app).get("collections", 0) == 1
    emails = salesforce.emails()
    assert len(emails) == 620 and len(set(emails)) == 620
    links = RecordLink.objects.filter(connection=connection, state=LinkState.LINKED)
    assert links.count() == 620 and not links.filter(crm_id="").exists()
    assert {link.crm_id for link in links} == {crm_id for crm_id, _email in salesforce.people()}
    assert not OutboxItem.objects.filter(connection=connection).exclude(state=OutboxState.DONE).exists()

    calls_before = app.counters.api_calls
    sync_now(connection.pk)
    assert app.counters.api_calls == calls_before  # unchanged: no job, no call
    assert len(app.jobs) == 2


def test_changed_people_above_the_threshold_are_updated_by_one_update_job(salesforce, account):
    connection = salesforce.connect(
        account, mode=SyncMode.MANUAL, provider_settings={"bulk_threshold": 200, "bulk_job_rows": 1000}
    )
    prospects = _prospects(account, 250)
    sync_now(connection.pk)
    assert len(salesforce.app.jobs) == 1
    Prospect.objects.filter(pk__in=[p.pk for p in prospects]).update(last_name="Renamed")

    sync_now(connection.pk)

    jobs = list(salesforce.app.jobs.values())
    assert [job.operation for job in jobs] == ["upsert", "update"]
    assert len(salesforce.emails()) == 250
    assert [record["LastName"] for record in salesforce.app.records("Contact")] == ["Renamed"] * 250


def test_below_the_threshold_people_go_through_collections(salesforce, account):
    connection = salesforce.connect(account, mode=SyncMode.MANUAL, provider_settings={"bulk_threshold": 500})
    _prospects(account, 120)

    sync_now(connection.pk)

    assert salesforce.app.jobs == {}
    assert _kinds(salesforce.app).get("collections", 0) == 1  # 120 creates in one 200-record call
    assert len(salesforce.emails()) == 120


def test_real_time_flushes_never_wait_on_a_bulk_job(salesforce, account):
    connection = salesforce.connect(account, mode=SyncMode.REALTIME, provider_settings={"bulk_threshold": 200})
    prospects = _prospects(account, 450)
    enqueue_prospects(connection, [p.pk for p in prospects])

    Flusher(connection.pk, worker_id="rt-test").flush(drain=False)

    assert salesforce.app.jobs == {}
    assert _kinds(salesforce.app).get("collections", 0) == 3  # 200 + 200 + 50
    assert len(salesforce.emails()) == 450


def test_a_bulk_claim_holds_its_rows_for_the_job_time_limit(salesforce, account):
    connection = salesforce.connect(
        account, mode=SyncMode.MANUAL, provider_settings={"bulk_threshold": 200, "bulk_max_wait_seconds": 600}
    )
    prospects = _prospects(account, 212)
    enqueue_prospects(connection, [p.pk for p in prospects])
    flusher = Flusher(connection.pk, worker_id="lease-test")
    flusher.connector = flusher._make_connector()

    size, lease = flusher._person_claim(200, drain=True)

    assert size == 212 and lease.total_seconds() == 900  # the 600 s job limit plus 300 s around it
    assert flusher._person_claim(200, drain=False) == (200, LEASE)
    OutboxItem.objects.filter(connection=connection, kind=OutboxKind.PERSON).update(state=OutboxState.DONE)
    assert flusher._person_claim(200, drain=True) == (200, LEASE)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"bulk_treshold": 5}, "provider_settings.bulk_treshold: Salesforce has no such setting"),
        ({"bulk_threshold": 50}, "provider_settings.bulk_threshold: must be between 200 and"),
        ({"bulk_threshold": "many"}, "provider_settings.bulk_threshold: must be a whole number"),
        ({"bulk_max_wait_seconds": 5}, "provider_settings.bulk_max_wait_seconds: must be between 30 and"),
    ],
)
def test_bad_provider_settings_are_refused_by_name(salesforce, account, settings, message):
    connection = salesforce.connect(account, mode=SyncMode.MANUAL)
    connection.provider_settings = settings
    with pytest.raises(ValidationError) as raised:
        connection.full_clean()
    assert any(message in text for text in raised.value.message_dict["provider_settings"])


def test_provider_settings_are_stored_as_numbers(salesforce, account):
    connection = salesforce.connect(account, mode=SyncMode.MANUAL)
    connection.provider_settings = {"bulk_threshold": "25000", "bulk_job_rows": ""}
    connection.full_clean()
    assert connection.provider_settings == {"bulk_threshold": 25000}
    assert connection.connector().bulk_people_write().threshold == 25000


def test_the_admin_form_refuses_an_unknown_setting_by_name(salesforce, account, rf, admin_user):
    from django.contrib.admin.sites import site
    from django.forms.models import model_to_dict

    from integrations.models import Connection

    connection = salesforce.connect(account, mode=SyncMode.MANUAL)
    model_admin = site._registry[Connection]
    request = rf.get("/")
    request.user = admin_user
    form_class = model_admin.get_form(request, connection, change=True)
    assert "bulk_threshold" in form_class.base_fields["provider_settings"].help_text
    data = {k: v for k, v in model_to_dict(connection).items() if v is not None}
    form = form_class(data={**data, "provider_settings": '{"bulk_size": 5}'}, instance=connection)
    assert not form.is_valid()
    assert "provider_settings.bulk_size: Salesforce has no such setting" in form.errors["provider_settings"][0]
    form = form_class(data={**data, "provider_settings": '{"bulk_threshold": 20000}'}, instance=connection)
    assert form.is_valid(), form.errors
    form.save()
    connection.refresh_from_db()
    assert connection.provider_settings == {"bulk_threshold": 20000}
