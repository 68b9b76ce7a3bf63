"""Erasure of a prospect ("right to be forgotten") and the suppression that keeps them forgotten.

Erasing deletes what we hold about a person and keeps a salted hash of their e-mail address on
the account's suppression list, so a later event from the same address is dropped at ingest
(crmsync.ingest) and a sync can never re-create them (DESIGN.md invariant 5). The prospect row
itself stays, anonymised and marked ``erased``: CRM-side erasure needs it to find the records
this prospect was synced to.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from crmsync import audit
from crmsync.models import Account, Event, Prospect, Suppression, Visitor, normalise_email, suppression_hash


@dataclass(frozen=True)
class Erasure:
    prospect_id: int
    events_deleted: int
    visitors_deleted: int


_BLANKED = ("first_name", "last_name", "phone", "company", "job_title", "consent_source")


ErasureHook = Callable[[Prospect], None]
_erasure_hooks: list[ErasureHook] = []


def register_erasure_hook(hook: ErasureHook) -> ErasureHook:
    """Call ``hook(prospect)`` inside every erasure's transaction, before the row is anonymised
    (the CRM sync queues the deletion of the person in each connected CRM). Idempotent."""
    if hook not in _erasure_hooks:
        _erasure_hooks.append(hook)
    return hook


def erase_prospect(prospect: Prospect, *, actor_label: str, request: HttpRequest | None = None) -> Erasure:
    """Erase ``prospect`` in one transaction; erasing an erased prospect again changes nothing.

    The audit entry records who erased which prospect id and how much was deleted, never the address.
    """
    with transaction.atomic():
        # Visitors first, then the prospect: the order ingest locks them in, so the two cannot deadlock.
        visitor_ids = list(
            Visitor.objects.select_for_update().filter(prospect_id=prospect.pk).values_list("visitor_id", flat=True)
        )
        locked = Prospect.objects.select_for_update().select_related("account").get(pk=prospect.pk)
        if locked.email:
            Suppression.objects.get_or_create(
                account=locked.account, email_hash=suppression_hash(locked.account, locked.email)
            )
        # The prospect's events, and any anonymous event of its visitors that was never attached.
        events_deleted, _ = Event.objects.filter(prospect=locked).delete()
        if visitor_ids:
            anonymous, _ = Event.objects.filter(account=locked.account, visitor_id__in=visitor_ids).delete()
            events_deleted += anonymous
        visitors_deleted, _ = Visitor.objects.filter(prospect=locked).delete()
        already_erased = locked.erased
        if not already_erased:
            for hook in list(_erasure_hooks):
                hook(locked)
        _anonymise(locked)
        if not already_erased:
            audit.record(
                "prospect.erased",
                request=request,
                actor_label=actor_label,
                account=locked.account,
                obj=locked,
                changes={"events_deleted": events_deleted, "visitors_deleted": visitors_deleted},
            )
    # The caller's instance shows the erased state too.
    prospect.refresh_from_db()
    return Erasure(prospect.pk, events_deleted, visitors_deleted)


def _anonymise(prospect: Prospect) -> None:
    prospect.email = None
    for name in _BLANKED:
        setattr(prospect, name, "")
    prospect.attributes = {}
    prospect.utm = {}
    prospect.consent_granted = None
    prospect.consent_at = None
    now = timezone.now()
    prospect.erased = True
    prospect.erased_at = prospect.erased_at or now
    prospect.updated_at = now
    prospect.save()


def erase_by_email(
    account: Account, email: str, *, actor_label: str, request: HttpRequest | None = None
) -> Erasure | None:
    """Erase the account's prospect with this address (any spelling); None when there is none."""
    prospect = Prospect.objects.filter(account=account, email=normalise_email(email)).first()
    if prospect is None:
        return None
    return erase_prospect(prospect, actor_label=actor_label, request=request)
