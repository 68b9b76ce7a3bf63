"""The state of one sandbox Close organisation, and its event log (crm-reference §8).

Records are plain dicts holding their wire fields plus ``custom`` ({cf id: value}); the route
modules render them. Every change made through the API or a test helper is written to the event
log the way Close's Event Log / webhooks describe it (§8.7): ``action``, ``object_type``,
``object_id``, ``lead_id``, ``user_id``, ``request_id``, ``api_key_id`` or ``oauth_client_id``,
``changed_fields``, ``previous_data``, ``data`` and ``meta``.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from integrations.sandbox.close import wire
from integrations.sandbox.close.fields import OBJECT_TYPES, wire_values

# What a new organisation has (names as Close's defaults; ids are ours).
DEFAULT_LEAD_STATUSES = ("Potential", "Bad Fit", "Qualified", "Customer")
DEFAULT_OPPORTUNITY_STATUSES = (("Active", "active"), ("Won", "won"), ("Lost", "lost"))
# Keys that change on every write and so never count as a changed field by themselves.
BOOKKEEPING = frozenset({"date_updated", "updated_by", "updated_by_name"})


def changed_keys(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    return sorted(k for k in set(before) | set(after) if k not in BOOKKEEPING and before.get(k) != after.get(k))


@dataclass(frozen=True)
class Actor:
    """Who made a change: the event log's ``user_id`` and the credential that was used."""

    user_id: str
    api_key_id: str | None = None
    oauth_client_id: str | None = None
    method: str = ""
    path: str = ""
    request_id: str = ""


class Store:
    def __init__(self, org_id: str, org_name: str, user: dict[str, Any]) -> None:
        self.org_id = org_id
        self.org_name = org_name
        self.user = user
        self.clock: Callable[[], dt.datetime] = wire.now
        self.reset()

    def reset(self) -> None:
        self.leads: dict[str, dict[str, Any]] = {}
        self.contacts: dict[str, dict[str, Any]] = {}
        self.activities: dict[str, dict[str, Any]] = {}
        self.tasks: dict[str, dict[str, Any]] = {}
        self.opportunities: dict[str, dict[str, Any]] = {}
        self.definitions: dict[str, dict[str, dict[str, Any]]] = {kind: {} for kind in OBJECT_TYPES}
        self.activity_types: dict[str, dict[str, Any]] = {}
        self.unique_fields: set[str] = set()  # sandbox-only rule, see fields.py
        self.webhooks: dict[str, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self.deliveries: list[tuple[str, dict[str, Any]]] = []  # (subscription id, event) not yet sent
        self.lead_statuses = [{"id": wire.new_id("stat"), "label": label} for label in DEFAULT_LEAD_STATUSES]
        pipeline = {"id": wire.new_id("pipe"), "name": "Sales", "organization_id": self.org_id}
        self.pipelines = [pipeline]
        self.opportunity_statuses = [
            {
                "id": wire.new_id("stat"),
                "label": label,
                "type": kind,
                "pipeline_id": pipeline["id"],
                "organization_id": self.org_id,
            }
            for label, kind in DEFAULT_OPPORTUNITY_STATUSES
        ]

    # -- time and authorship ---------------------------------------------------------------------
    def stamp(self) -> str:
        return wire.iso(self.clock()) or ""

    def authored(self, record: dict[str, Any], actor: Actor, *, creating: bool) -> None:
        now = self.stamp()
        if creating:
            record["date_created"] = now
            record["created_by"] = actor.user_id
            record["created_by_name"] = self.user_name()
        record["date_updated"] = now
        record["updated_by"] = actor.user_id
        record["updated_by_name"] = self.user_name()

    def user_name(self) -> str:
        return f"{self.user['first_name']} {self.user['last_name']}"

    # -- lookups ------------------------------------------------------------------------------------
    def status(self, status_id: str | None, *, opportunity: bool) -> dict[str, Any] | None:
        statuses = self.opportunity_statuses if opportunity else self.lead_statuses
        return next((s for s in statuses if s["id"] == status_id), None)

    def unique_clash(self, object_type: str, custom: dict[str, Any], own_id: str | None) -> dict[str, str]:
        """Field errors for values of sandbox-unique fields another record already holds."""
        records = self.contacts if object_type == "contact" else self.leads
        problems = {}
        for field_id, value in custom.items():
            if field_id not in self.unique_fields or value in (None, ""):
                continue
            if any(r["id"] != own_id and r["custom"].get(field_id) == value for r in records.values()):
                problems[f"custom.{field_id}"] = f"Another {object_type} already has the value {value!r}."
        return problems

    # -- the event log --------------------------------------------------------------------------------
    def emit(
        self,
        action: str,
        object_type: str,
        rendered_before: dict[str, Any] | None,
        rendered_after: dict[str, Any] | None,
        actor: Actor,
    ) -> dict[str, Any]:
        """Record one event; ``changed_fields`` lists the top-level keys whose values differ."""
        after = rendered_after or {}
        before = rendered_before or {}
        changed = changed_keys(before, after)
        subject = after or before
        stamp = self.stamp()
        event: dict[str, Any] = {
            "id": wire.new_id("ev", 22),
            "date_created": stamp,
            "date_updated": stamp,
            "action": action,
            "object_type": object_type,
            "object_id": subject.get("id"),
            "lead_id": subject.get("lead_id") if object_type != "lead" else subject.get("id"),
            "organization_id": self.org_id,
            "user_id": actor.user_id,
            "request_id": actor.request_id or None,
            "changed_fields": changed if action == "updated" else [],
            "previous_data": {k: before.get(k) for k in changed} if action == "updated" else {},
            "data": copy.deepcopy(after) if action != "deleted" else {},
            "meta": {"request_method": actor.method, "request_path": actor.path} if actor.method else {},
        }
        if actor.api_key_id:
            event["api_key_id"] = actor.api_key_id
        if actor.oauth_client_id:
            event["oauth_client_id"] = actor.oauth_client_id
        if action == "deleted":
            event["previous_data"] = copy.deepcopy(before)
        self.events.append(event)
        for subscription in self.webhooks.values():
            wanted = subscription["events"]
            if subscription["status"] == "active" and any(
                e.get("object_type") == object_type and e.get("action") == action for e in wanted
            ):
                self.deliveries.append((subscription["id"], event))
        return event

    # -- rendering shared by the route modules ------------------------------------------------------
    def contact_wire(self, contact: dict[str, Any]) -> dict[str, Any]:
        body = {k: copy.deepcopy(v) for k, v in contact.items() if k != "custom"}
        body["display_name"] = contact.get("name") or (contact["emails"][0]["email"] if contact["emails"] else "")
        body["organization_id"] = self.org_id
        body.update(wire_values(contact["custom"]))
        return body

    def lead_wire(self, lead: dict[str, Any]) -> dict[str, Any]:
        contacts = [self.contact_wire(c) for c in self.contacts.values() if c["lead_id"] == lead["id"]]
        status = self.status(lead["status_id"], opportunity=False) or self.lead_statuses[0]
        body = {k: copy.deepcopy(v) for k, v in lead.items() if k != "custom"}
        emails = [e for c in contacts for e in c.get("emails") or []]
        phones = [p for c in contacts for p in c.get("phones") or []]
        body.update(
            {
                "display_name": lead.get("name") or (contacts[0]["display_name"] if contacts else ""),
                "status_label": status["label"],
                "contacts": contacts,
                "contact_ids": [c["id"] for c in contacts],
                "organization_id": self.org_id,
                "html_url": f"https://app.close.com/lead/{lead['id']}/",
                "primary_email": emails[0] if emails else None,
                "primary_phone": phones[0] if phones else None,
                "opportunities": [],
                "tasks": [],
                "integration_links": [],
            }
        )
        body.update(wire_values(lead["custom"]))
        return body
