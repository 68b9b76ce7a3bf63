"""Applying one stored change (an ``InboundEvent``) to the capsule side.

For a contact or lead, the prospect is found through its ``RecordLink`` (connection, CRM id):

- deleted in the CRM → the link is marked ``deleted`` (the engine matches or creates again);
- merged → the link points at the surviving record (``relinked``);
- otherwise the record's values (from the change, or fetched when the change carries none) are
  compared with the values last seen on that record; what is new and not an echo is applied:
  contact preferences (unsubscribed, do not contact) and owner through the connector's tables,
  and fields mapped "from CRM"/"both" through ``mapping.apply.apply_inbound`` with each field's
  conflict policy. Conflicts are recorded (``SyncConflict``).

Fields, owner and deal stage are personalisation data and flow only for connections whose
direction is "from CRM" or "both"; link upkeep and contact preferences apply to every connection,
because the outbound engine and compliance depend on them.

Every applied change emits ``crm.contact.updated`` (keyed by the inbound event) and drops the
prospect's cached personalisation. Deals are handled in integrations.inbound.deals.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from crmsync.models import Prospect
from integrations.connector import DEAL, CrmRecord, InboundChange
from integrations.inbound import echo, extensions, outgoing
from integrations.inbound.crm import InboundCrm
from integrations.inbound.records import (
    FieldChange,
    apply_mapped,
    changed_prospect,
    fresh_changes,
    locked_data,
    seen_key,
    truthy,
)
from integrations.models import (
    Connection,
    Direction,
    InboundEvent,
    InboundState,
    LinkState,
    ProspectCrmData,
    RecordLink,
)
from mapping.rows import MappingRow, rows_for

INBOUND_DIRECTIONS = (Direction.FROM_CRM, Direction.BOTH)
# Changes that carry the record's new values, or whose values must be fetched.
VALUE_CHANGES = ("created", "updated", "property", "merged")


@dataclass(frozen=True)
class Outcome:
    state: str
    reason: str = ""


PROCESSED = Outcome(InboundState.PROCESSED)


def ignored(reason: str) -> Outcome:
    return Outcome(InboundState.IGNORED, reason)


def as_change(event: InboundEvent) -> InboundChange:
    return InboundChange(
        event_id=event.event_id,
        object_kind=event.object_kind,
        crm_id=event.crm_id,
        change=event.change,
        occurred_at=event.occurred_at,
        properties=dict(event.properties or {}),
        source=event.source,
        merged_into=event.merged_into or None,
    )


class Applier:
    """Applies the events of one connection; shares one CRM client and the mapping rows between them."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.crm = InboundCrm(connection)
        self.connector_class = self.crm.connector_class
        self._rows: dict[str, list[MappingRow]] = {}

    @property
    def takes_fields(self) -> bool:
        return self.connection.direction in INBOUND_DIRECTIONS

    def rows(self, object_kind: str) -> list[MappingRow]:
        """Enabled field rows mapped "from CRM" or "both" for one CRM object."""
        if object_kind not in self._rows:
            self._rows[object_kind] = [row for row in rows_for(self.connection, object_kind) if row.inbound]
        return self._rows[object_kind]

    def wanted_fields(self, object_kind: str) -> set[str]:
        """The CRM fields inbound sync reads on this kind of record."""
        wanted = {row.target_field for row in self.rows(object_kind)} if self.takes_fields else set()
        if object_kind == DEAL:
            stage = extensions.deal_stage_field(self.connector_class)
            if stage and self.takes_fields:
                wanted |= {stage, *extensions.deal_fields(self.connector_class)}
            return wanted
        wanted |= set(extensions.preference_fields(self.connector_class))
        if self.takes_fields:
            wanted |= set(extensions.owner_fields(self.connector_class))
        return wanted

    def read_fields(self, object_kind: str) -> set[str]:
        """What inbound reads of this kind ask the CRM for: the wanted fields and what echo checks read."""
        return self.wanted_fields(object_kind) | set(extensions.echo_fields(self.connector_class))

    def fetch(self, object_kind: str, crm_id: str) -> CrmRecord | None:
        """The record as the CRM has it now (None when gone)."""
        wanted = sorted(self.read_fields(object_kind))
        return self.crm.call(
            lambda c: c.find_by_id(object_kind, crm_id, **extensions.field_kwargs(c.find_by_id, wanted))
        )

    # -- entry point --------------------------------------------------------------------------------
    def apply(self, event: InboundEvent) -> Outcome:
        if not self.connection.is_live:
            return ignored("disconnected")
        change = as_change(event)
        if event.object_kind in extensions.PERSON_KINDS:
            return self._person(event, change)
        if event.object_kind == DEAL:
            from integrations.inbound.deals import apply_deal

            return apply_deal(self, event, change)
        return ignored("unsupported_object")

    # -- people -------------------------------------------------------------------------------------
    def _links(self, crm_id: str) -> list[RecordLink]:
        return list(
            RecordLink.objects.select_related("prospect", "prospect__account")
            .filter(connection=self.connection, crm_id=crm_id)
            .exclude(state=LinkState.ERASED)
            .filter(prospect__erased=False)
        )

    def _person(self, event: InboundEvent, change: InboundChange) -> Outcome:
        links = self._links(event.crm_id)
        if not links:
            return ignored("not_linked")
        if change.change == "deleted":
            return self._deleted(event, links)
        if change.change == "merged" and change.merged_into and change.merged_into != event.crm_id:
            return self._merged(event, links, change.merged_into)
        if change.change not in VALUE_CHANGES:
            return ignored("unknown_change")
        if echo.is_own_by_source(self.connection, change):
            return ignored(echo.ECHO)
        if not self.wanted_fields(event.object_kind) and change.change != "merged":
            return ignored("not_mapped")  # nothing to read: spare the CRM call
        values: Mapping[str, Any] = change.properties
        if not values or change.change in ("created", "merged"):
            record = self.fetch(event.object_kind, event.crm_id)
            if record is None:
                return ignored("gone")  # its deletion arrives as a change of its own
            if record.crm_id != event.crm_id:  # the CRM answered with the record it was merged into
                return self._merged(event, links, record.crm_id)
            values = record.fields
        outcomes = [self._apply_person(event, link, values) for link in links]
        return next((o for o in outcomes if o.state == InboundState.PROCESSED), outcomes[0])

    def _at(self, event: InboundEvent) -> dt.datetime:
        return event.occurred_at or event.received_at

    def _apply_person(self, event: InboundEvent, link: RecordLink, values: Mapping[str, Any]) -> Outcome:
        wanted = self.wanted_fields(link.crm_object_type)
        relevant = {name: value for name, value in values.items() if name in wanted}
        if not relevant:
            return ignored("not_mapped")
        prospect, at = link.prospect, self._at(event)
        with transaction.atomic():
            data = locked_data(prospect)
            changed = fresh_changes(data, seen_key(self.connection.pk, link.crm_object_type, link.crm_id), relevant, at)
            if not changed:
                data.save(update_fields=["crm_seen"])
                return ignored("unchanged")
            if echo.matches_last_sent({k: c.after for k, c in changed.items()}, link.last_sent_fields or {}):
                data.save(update_fields=["crm_seen"])
                return ignored(echo.ECHO)
            effects = self._preferences(data, changed)
            if self.takes_fields:
                effects += self._owner(data, changed)
                updated, conflicts = apply_mapped(
                    self.connection,
                    prospect,
                    data,
                    self.rows(link.crm_object_type),
                    {k: c.after for k, c in changed.items()},
                    at,
                    event,
                )
                effects += len(updated) + conflicts
            if not effects:
                data.save(update_fields=["crm_seen"])
                return ignored("no_effect")
            data.updated_at = timezone.now()
            data.save()
            outgoing.contact_updated(
                self.connection,
                prospect,
                object_kind=link.crm_object_type,
                crm_id=link.crm_id,
                change=event.change,
                changed_fields={name: c.as_dict() for name, c in changed.items()},
                changed_at=at,
                key=f"inbound:{event.pk}:{prospect.pk}",
            )
            changed_prospect(prospect.pk)
        return PROCESSED

    def _preferences(self, data: ProspectCrmData, changed: Mapping[str, FieldChange]) -> int:
        effects = 0
        for name, role in extensions.preference_fields(self.connector_class).items():
            if name in changed and getattr(data, role) != truthy(changed[name].after):
                setattr(data, role, truthy(changed[name].after))
                effects += 1
        return effects

    def _owner(self, data: ProspectCrmData, changed: Mapping[str, FieldChange]) -> int:
        effects = 0
        limits = {extensions.OWNER_ID: 100, extensions.OWNER_NAME: 200}
        for name, role in extensions.owner_fields(self.connector_class).items():
            if name in changed:
                value = str(changed[name].after or "")[: limits[role]]
                if getattr(data, role) != value:
                    setattr(data, role, value)
                    effects += 1
        return effects

    # -- link upkeep ----------------------------------------------------------------------------------
    def _deleted(self, event: InboundEvent, links: list[RecordLink]) -> Outcome:
        links = [link for link in links if link.state != LinkState.DELETED]
        if not links:
            return ignored("unchanged")
        with transaction.atomic():
            RecordLink.objects.filter(pk__in=[link.pk for link in links]).update(state=LinkState.DELETED)
            for link in links:
                self._link_changed(event, link, "deleted", None)
        return PROCESSED

    def _merged(self, event: InboundEvent, links: list[RecordLink], survivor: str) -> Outcome:
        links = [link for link in links if link.crm_id != survivor]
        if not links:
            return ignored("unchanged")
        with transaction.atomic():
            # A cleared payload hash makes the engine write the whole record to the survivor next time.
            RecordLink.objects.filter(pk__in=[link.pk for link in links]).update(
                crm_id=survivor[:100], state=LinkState.RELINKED, last_payload_hash=""
            )
            for link in links:
                self._link_changed(event, link, "merged", survivor)
        return PROCESSED

    def _link_changed(self, event: InboundEvent, link: RecordLink, change: str, survivor: str | None) -> None:
        prospect: Prospect = link.prospect
        outgoing.contact_updated(
            self.connection,
            prospect,
            object_kind=link.crm_object_type,
            crm_id=link.crm_id,
            change=change,
            changed_fields={},
            changed_at=self._at(event),
            key=f"inbound:{event.pk}:{prospect.pk}",
            merged_into=survivor,
        )
        changed_prospect(prospect.pk)
