"""Deal changes: a deal's stage (and fields mapped from the deal) land on the prospects it belongs to.

A deal is tied to prospects through, in order:

1. ``DealLink`` rows: recorded by :func:`record_deal_link` (the outbound engine calls it when it
   writes a conversion's deal) and cached here whenever 2 or 3 found the deal's people;
2. the change's own ``associated_people`` property (a connector's parser or poller may fill it);
3. the connector's optional ``people_of_deal(crm_id)`` (one CRM call).

The people's CRM ids are then resolved through ``RecordLink``. A prospect keeps one deal stage:
that of the deal whose stage changed last. A stage change emits ``crm.deal.stage_changed``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.utils import timezone

from crmsync.models import Prospect
from integrations.connector import DEAL, InboundChange
from integrations.inbound import echo, extensions, outgoing
from integrations.inbound.records import apply_mapped, changed_prospect, fresh_changes, locked_data, seen_key
from integrations.models import DealLink, InboundEvent, LinkState

if TYPE_CHECKING:
    from integrations.inbound.apply import Applier, Outcome


def record_deal_link(connection_id: int, prospect_id: int, crm_deal_id: str) -> None:
    """Remember that a CRM deal belongs to a prospect (idempotent). For the outbound engine."""
    DealLink.objects.bulk_create(
        [DealLink(connection_id=connection_id, prospect_id=prospect_id, crm_id=str(crm_deal_id)[:100])],
        ignore_conflicts=True,
    )


def _people(applier: Applier, crm_id: str, properties: dict[str, Any]) -> list[Prospect]:
    connection = applier.connection
    linked = list(
        Prospect.objects.select_related("account").filter(
            crm_deal_links__connection=connection, crm_deal_links__crm_id=crm_id, erased=False
        )
    )
    if linked:
        return linked
    if extensions.ASSOCIATED_PEOPLE in properties:
        person_ids = extensions.people_of_deal(None, crm_id, properties)
    elif hasattr(applier.connector_class, "people_of_deal"):
        person_ids = applier.crm.call(lambda c: extensions.people_of_deal(c, crm_id, properties))
    else:
        person_ids = []
    if not person_ids:
        return []
    prospects = list(
        Prospect.objects.select_related("account")
        .filter(
            crm_links__connection=connection,
            crm_links__crm_id__in=person_ids,
            erased=False,
        )
        .exclude(crm_links__state=LinkState.ERASED)
        .distinct()
    )
    for prospect in prospects:
        record_deal_link(connection.pk, prospect.pk, crm_id)
    return prospects


def _merged(applier: Applier, crm_id: str, survivor: str) -> Outcome:
    """The deal's prospects now own the surviving deal."""
    from integrations.inbound.apply import PROCESSED, ignored

    links = DealLink.objects.filter(connection=applier.connection, crm_id=crm_id)
    prospect_ids = list(links.values_list("prospect_id", flat=True))
    if not prospect_ids:
        return ignored("not_linked")
    with transaction.atomic():
        for prospect_id in prospect_ids:
            record_deal_link(applier.connection.pk, prospect_id, survivor)
        links.delete()
    return PROCESSED


def apply_deal(applier: Applier, event: InboundEvent, change: InboundChange) -> Outcome:
    from integrations.inbound.apply import PROCESSED, ignored

    if change.change == "deleted":
        # Nothing personal to undo: the stage stays as it was last seen. Forget the deal's links.
        removed, _ = DealLink.objects.filter(connection=applier.connection, crm_id=event.crm_id).delete()
        return PROCESSED if removed else ignored("not_linked")
    if change.change == "merged" and change.merged_into and change.merged_into != event.crm_id:
        return _merged(applier, event.crm_id, change.merged_into)
    if not applier.takes_fields:
        return ignored("direction")
    stage_field = extensions.deal_stage_field(applier.connector_class)
    wanted = applier.wanted_fields(DEAL)
    if not wanted:
        return ignored("not_mapped")
    if echo.is_own_by_source(applier.connection, change):
        return ignored(echo.ECHO)
    values: dict[str, Any] = dict(change.properties)
    if change.change == "property" and not (set(values) & wanted):
        return ignored("not_mapped")
    prospects = _people(applier, event.crm_id, values)
    if not prospects:
        return ignored("not_linked")
    if not (set(values) & wanted) or change.change in ("created", "merged"):
        record = applier.fetch(DEAL, event.crm_id)
        if record is None:
            return ignored("gone")
        values = {**record.fields, **values} if change.change == "property" else dict(record.fields)
    relevant = {name: value for name, value in values.items() if name in wanted}
    outcomes = [_apply_to(applier, event, prospect, relevant, stage_field) for prospect in prospects]
    return PROCESSED if any(outcomes) else ignored("unchanged")


def _apply_to(
    applier: Applier, event: InboundEvent, prospect: Prospect, values: dict[str, Any], stage_field: str
) -> bool:
    connection = applier.connection
    at = event.occurred_at or event.received_at
    detail = {role: values.get(name) for name, role in extensions.deal_fields(applier.connector_class).items()}
    mapped_fields = {row.target_field for row in applier.rows(DEAL)}
    tracked = {name: value for name, value in values.items() if name == stage_field or name in mapped_fields}
    with transaction.atomic():
        data = locked_data(prospect)
        changed = fresh_changes(data, seen_key(connection.pk, DEAL, event.crm_id), tracked, at)
        effects = 0
        if stage_field and stage_field in changed:
            stage = str(changed[stage_field].after or "")[:100]
            newer = data.deal_stage_changed_at is None or at >= data.deal_stage_changed_at
            if newer and (stage != data.deal_stage or data.deal_crm_id != event.crm_id):
                data.deal_crm_id, data.deal_stage, data.deal_stage_changed_at = event.crm_id[:100], stage, at
                effects += 1
                outgoing.deal_stage_changed(
                    connection,
                    prospect,
                    crm_id=event.crm_id,
                    deal=detail,
                    previous_stage=str(changed[stage_field].before or ""),
                    stage=stage,
                    changed_at=at,
                    key=f"inbound:{event.pk}:{prospect.pk}",
                )
        mapped = {name: c.after for name, c in changed.items() if name != stage_field}
        updated, conflicts = apply_mapped(connection, prospect, data, applier.rows(DEAL), mapped, at, event)
        effects += len(updated) + conflicts
        if effects:
            data.updated_at = timezone.now()
            changed_prospect(prospect.pk)
        data.save()
    return effects > 0


__all__ = ["apply_deal", "record_deal_link"]
