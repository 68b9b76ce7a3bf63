""" "Send test record": one tagged record written to the CRM through the real sync path.

The test prospect is a real prospect of the account, marked with the attribute
``capsule_test_record`` and an address at example.com, so it is easy to recognise in the CRM and
cannot be confused with a person. Writing it runs the same manual sync as "Sync now" (mapping,
dedupe, connector, record link). Deleting it removes it from the CRM (where the CRM's API can)
and from the account.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction

from crmsync.audit import record
from crmsync.models import Prospect
from integrations.credentials import connector_for
from integrations.errors import CrmError
from integrations.models import Connection, OutboxItem, OutboxKind, RecordLink, SyncRun
from integrations.sync.jobs import sync_now

TEST_ATTRIBUTE = "capsule_test_record"


def tagged_email(connection: Connection) -> str:
    return f"capsule-test-record+{connection.pk}@example.com"


@dataclass(frozen=True)
class TestRecordResult:
    ok: bool
    crm_id: str = ""
    created: bool = False
    message: str = ""


def tagged_prospect(connection: Connection) -> Prospect | None:
    return Prospect.objects.filter(account=connection.account, email=tagged_email(connection)).first()


def send_test_record(connection: Connection, *, request=None) -> TestRecordResult:
    """Create (or reuse) the tagged test prospect and sync it now; say what the CRM answered."""
    with transaction.atomic():
        prospect, _ = Prospect.objects.get_or_create(
            account=connection.account,
            email=tagged_email(connection),
            defaults={
                "first_name": "Capsule",
                "last_name": "Test record",
                "company": "Capsule CRM Sync test",
                "job_title": "Test record",
                "consent_granted": True,
                "consent_source": "test record",
                "attributes": {TEST_ATTRIBUTE: True},
            },
        )
        record("mapping.test_record_sent", request=request, obj=connection, changes={"prospect_id": prospect.pk})
    run = SyncRun.objects.get(
        pk=sync_now(connection.pk, [prospect.pk], getattr(getattr(request, "user", None), "pk", None))
    )
    link = RecordLink.objects.filter(connection=connection, prospect=prospect).first()
    item = OutboxItem.objects.filter(connection=connection, prospect=prospect, kind=OutboxKind.PERSON, run=run).first()
    if link is not None and (item is None or item.state == "done"):
        return TestRecordResult(ok=True, crm_id=link.crm_id, created=run.created > 0)
    reason = (item.last_error or item.hold_reason) if item is not None else "the sync did not run"
    return TestRecordResult(ok=False, message=reason or "the CRM did not accept the record")


def delete_test_record(connection: Connection, *, request=None) -> TestRecordResult:
    """Delete the test record in the CRM and the test prospect here. If the CRM's API cannot
    delete, the prospect stays linked and the message says what to delete by hand."""
    prospect = tagged_prospect(connection)
    if prospect is None:
        return TestRecordResult(ok=True, message="There is no test record.")
    link = RecordLink.objects.filter(connection=connection, prospect=prospect).first()
    if link is not None:
        try:
            connector_for(connection).delete_person(link.crm_object_type, link.crm_id)
        except CrmError as exc:
            return TestRecordResult(
                ok=False,
                crm_id=link.crm_id,
                message=f"{exc}. Delete record {link.crm_id} in {connection.spec.label} by hand.",
            )
    with transaction.atomic():
        record(
            "mapping.test_record_deleted",
            request=request,
            obj=connection,
            changes={"crm_id": link.crm_id if link else ""},
        )
        prospect.delete()
    return TestRecordResult(ok=True, crm_id=link.crm_id if link else "")
