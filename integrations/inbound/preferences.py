"""Contact preferences recorded from the CRMs, as the outbound engine needs them."""

from __future__ import annotations

from collections.abc import Iterable

from integrations.models import ProspectCrmData


def blocks_outbound(prospect_ids: Iterable[int]) -> set[int]:
    """The prospects among ``prospect_ids`` whose CRM record says "do not contact": the outbound
    engine writes no engagement (activities, notes, tasks, deals, field writes) for them. One query."""
    ids = list(set(prospect_ids))
    if not ids:
        return set()
    return set(
        ProspectCrmData.objects.filter(prospect_id__in=ids, do_not_contact=True).values_list("prospect_id", flat=True)
    )
