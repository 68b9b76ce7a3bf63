"""Owners hear about failed records once per digest, not once per record, and see a banner."""

from __future__ import annotations

from django.core import mail
from django.utils import timezone

from crmsync.models import Prospect
from integrations.models import Connection, OutboxItem, OutboxKind, OutboxState
from integrations.sync.digest import send_failure_digests


def fail(connection, prospect, reason: str, n: int) -> None:
    for i in range(n):
        OutboxItem.objects.create(
            connection=connection,
            prospect=prospect,
            kind=OutboxKind.ACTIVITY,
            dedupe_key=f"activity:{reason}:{i}",
            state=OutboxState.FAILED,
            last_error=reason,
            last_error_kind="record",
            updated_at=timezone.now(),
        )


def setup(account, owner):
    connection = Connection.objects.create(
        account=account, provider="hubspot", access_token="x", activated_at=timezone.now()
    )
    prospect = Prospect.objects.create(account=account, email="p@example.com")
    return connection, prospect


def test_one_digest_lists_counts_and_reasons_then_stays_quiet(account, owner, django_capture_on_commit_callbacks):
    connection, prospect = setup(account, owner)
    fail(connection, prospect, "INVALID_OPTION: lifecyclestage", 3)
    fail(connection, prospect, "PROPERTY_DOESNT_EXIST: foo", 1)
    with django_capture_on_commit_callbacks(execute=True):
        assert send_failure_digests() == 1
    assert len(mail.outbox) == 1
    body = mail.outbox[0].body
    assert "HubSpot: 4 records failed" in body
    assert "INVALID_OPTION: lifecyclestage (3×)" in body
    assert f"/a/{account.slug}/sync/failed/" in body
    assert mail.outbox[0].to == [owner.email]
    with django_capture_on_commit_callbacks(execute=True):
        assert send_failure_digests() == 0
    assert len(mail.outbox) == 1


def test_a_new_failure_after_a_digest_is_reported_next_time(account, owner, django_capture_on_commit_callbacks):
    connection, prospect = setup(account, owner)
    fail(connection, prospect, "first", 1)
    with django_capture_on_commit_callbacks(execute=True):
        send_failure_digests()
    fail(connection, prospect, "second", 2)
    with django_capture_on_commit_callbacks(execute=True):
        assert send_failure_digests() == 1
    assert "2 records failed" in mail.outbox[-1].body and "second" in mail.outbox[-1].body


def test_the_settings_pages_show_a_banner_while_records_have_failed(account, owner, client):
    connection, prospect = setup(account, owner)
    client.force_login(owner)
    page = client.get(f"/a/{account.slug}/").content.decode()
    assert "could not be synced" not in page
    fail(connection, prospect, "boom", 1)
    page = client.get(f"/a/{account.slug}/").content.decode()
    assert "Some records could not be synced to your CRM." in page
    assert f"/a/{account.slug}/sync/failed/" in page
