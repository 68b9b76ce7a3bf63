"""Changed prospects are found by the database, streamed in chunks."""

from __future__ import annotations

from django.utils import timezone

from crmsync.models import Prospect
from integrations.models import Connection, RecordLink
from integrations.sync.changes import changed_prospect_ids


def test_new_and_updated_prospects_are_selected_and_synced_ones_are_not(account):
    connection = Connection.objects.create(
        account=account, provider="hubspot", access_token="x", activated_at=timezone.now()
    )
    earlier = timezone.now() - timezone.timedelta(hours=2)
    synced, changed, new, evented = (
        Prospect.objects.create(account=account, email=f"{name}@example.com", updated_at=earlier)
        for name in ("synced", "changed", "new", "evented")
    )
    Prospect.objects.create(account=account, email=None, erased=True)
    for prospect in (synced, changed, evented):
        RecordLink.objects.create(
            connection=connection,
            prospect=prospect,
            crm_object_type="contact",
            crm_id=str(prospect.pk),
            last_synced_at=earlier + timezone.timedelta(minutes=5),
        )
    Prospect.objects.filter(pk=changed.pk).update(updated_at=timezone.now())
    Prospect.objects.filter(pk=evented.pk).update(last_event_at=timezone.now())

    chunks = list(changed_prospect_ids(connection, chunk=2))

    assert [pk for chunk in chunks for pk in chunk] == sorted([changed.pk, new.pk, evented.pk])
    assert all(len(chunk) <= 2 for chunk in chunks)
