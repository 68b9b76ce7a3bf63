"""Reading a sandbox CRM's records the same way for every provider (tests, benchmarks, chaos).

A probe answers: which people exist (CRM id and e-mail), which capsule event keys reached the
CRM as activities, notes or deals, and how to get a token for a token connection. Each
provider's probe knows where its emulator keeps those.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from integrations.sandbox.close.probe import CloseProbe
from integrations.sandbox.copper.probe import CopperProbe
from integrations.sandbox.dynamics.probe import DynamicsProbe
from integrations.sandbox.freshsales.probe import FreshsalesProbe
from integrations.sandbox.pipedrive.probe import PipedriveProbe
from integrations.sandbox.zoho.probe import ZohoProbe


class Probe(Protocol):
    provider: str

    def people(self, app: Any) -> list[tuple[str, str]]:
        """(CRM id, lower-cased e-mail) of every live person record."""

    def engagement_keys(self, app: Any) -> list[str]:
        """Our idempotency keys of every activity/note/task/deal the CRM holds (duplicates kept)."""

    def token(self, app: Any) -> str:
        """A token for a token connection (private-app token, session id)."""

    def api_calls(self, app: Any) -> int:
        """API calls the emulator served (excluding OAuth and the control API)."""

    def rate_limited(self, app: Any) -> int:
        """How many times the emulator refused a call for its rate limit (429 or the vendor's kind)."""

    def first_name(self, app: Any, crm_id: str) -> str | None:
        """The person record's first name."""

    def add_unique_field(self, app: Any) -> str:
        """Add a custom unique text field to the person object (contacts); return its API name."""

    # The path prefix of batch person writes (tests make it slow to kill a worker mid-batch).
    batch_write_path: str


def _prop(record: dict, name: str) -> Any:
    return (record.get("properties") or {}).get(name)


@dataclass(frozen=True)
class HubSpotProbe:
    provider: str = "hubspot"
    batch_write_path: str = "/crm/v3/objects/contacts/batch"
    engagement_types: tuple[str, ...] = ("notes", "tasks", "calls", "meetings")

    def people(self, app: Any) -> list[tuple[str, str]]:
        return [(r["id"], str(_prop(r, "email") or "").lower()) for r in app.objects("contacts")]

    def engagement_keys(self, app: Any) -> list[str]:
        keys = [_prop(r, "capsule_event_id") for t in self.engagement_types for r in app.objects(t)]
        keys += [_prop(r, "capsule_conversion_id") for r in app.objects("deals")]
        return [k for k in keys if k]

    def token(self, app: Any) -> str:
        return app.issue_private_app_token()

    def api_calls(self, app: Any) -> int:
        return app.api_calls

    def rate_limited(self, app: Any) -> int:
        return app.rate_limited_count

    def first_name(self, app: Any, crm_id: str) -> str | None:
        record = app.get("contacts", crm_id)
        return _prop(record, "firstname") if record else None

    def add_unique_field(self, app: Any) -> str:
        app.add_custom_property("contacts", "external_ref", "string", "text", hasUniqueValue=True)
        return "external_ref"


@dataclass(frozen=True)
class SalesforceProbe:
    """People are Leads and Contacts; engagement is Tasks and Opportunities keyed by our external
    ids, and legacy Notes whose Title carries the key (see the Salesforce connector)."""

    provider: str = "salesforce"
    batch_write_path: str = "/services/data/"

    def people(self, app: Any) -> list[tuple[str, str]]:
        return [
            (r["Id"], str(r.get("Email") or "").lower())
            for sobject in ("Contact", "Lead")
            for r in app.records(sobject)
            if not (sobject == "Lead" and r.get("IsConverted"))
        ]

    def engagement_keys(self, app: Any) -> list[str]:
        keys = [r.get("Capsule_Event_Id__c") for r in app.records("Task")]
        keys += [r.get("Capsule_Conversion_Id__c") for r in app.records("Opportunity")]
        keys += [_note_key(r.get("Title")) for r in app.records("Note")]
        return [k for k in keys if k]

    def token(self, app: Any) -> str:
        return app.issue_token().access_token

    def api_calls(self, app: Any) -> int:
        return app.counters.api_calls

    def rate_limited(self, app: Any) -> int:
        return app.counters.limit_refusals

    def first_name(self, app: Any, crm_id: str) -> str | None:
        record = app.get("Contact", crm_id) or app.get("Lead", crm_id)
        return record.get("FirstName") if record else None

    def add_unique_field(self, app: Any) -> str:
        app.add_custom_field("Contact", "External_Ref__c", "string", length=40, unique=True)
        return "External_Ref__c"


def _note_key(title: str | None) -> str | None:
    # "[capsule-evt-12] Question asked" → "capsule-evt-12"
    if title and title.startswith("[") and "]" in title:
        return title[1 : title.index("]")]
    return None


PROBES: dict[str, Probe] = {
    "hubspot": HubSpotProbe(),
    "salesforce": SalesforceProbe(),
    "pipedrive": PipedriveProbe(),
    "zoho": ZohoProbe(),
    "close": CloseProbe(),
    "copper": CopperProbe(),
    "freshsales": FreshsalesProbe(),
    "dynamics": DynamicsProbe(),
}


def duplicates(values: Iterable[str]) -> int:
    """How many values appear more than once (each extra copy counts)."""
    seen: set[str] = set()
    extra = 0
    for value in values:
        if value in seen:
            extra += 1
        seen.add(value)
    return extra
