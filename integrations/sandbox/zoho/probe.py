"""Reading the Zoho sandbox the provider-neutral way (integrations.sandbox.probes).

People are the org's Contacts and Leads; engagement is Tasks and Deals keyed by our custom fields
(``Capsule_Event_Id``, ``Capsule_Conversion_Id``) and Notes whose title carries the key
(``[capsule-evt-12] Capsule note``) — see integrations.providers.zoho.keyed.

The e2e tests also ask, per provider, for a person's first name, a unique custom field and the
path of batch person writes; ``first_name``, ``add_unique_field`` and ``batch_write_path`` answer
those for Zoho.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


def note_key(title: str | None) -> str | None:
    # "[capsule-evt-12] Capsule note" -> "capsule-evt-12"
    if title and title.startswith("[") and "]" in title:
        return title[1 : title.index("]")]
    return None


@dataclass(frozen=True)
class ZohoProbe:
    provider: str = "zoho"
    person_modules: tuple[str, ...] = ("Contacts", "Leads")
    batch_write_path: str = "/crm/v8/Contacts/upsert"

    def people(self, app: Any) -> list[tuple[str, str]]:
        return [(r["id"], str(r.get("Email") or "").lower()) for m in self.person_modules for r in app.records(m)]

    def engagement_keys(self, app: Any) -> list[str]:
        keys = [r.get("Capsule_Event_Id") for r in app.records("Tasks")]
        keys += [r.get("Capsule_Conversion_Id") for r in app.records("Deals")]
        keys += [note_key(r.get("Note_Title")) for r in app.records("Notes")]
        return [k for k in keys if k]

    def token(self, app: Any) -> str:
        return app.issue_token().access_token

    def api_calls(self, app: Any) -> int:
        return app.api_calls

    def first_name(self, app: Any, crm_id: str) -> str | None:
        record = app.get("Contacts", crm_id) or app.get("Leads", crm_id)
        return record.get("First_Name") if record else None

    def add_unique_field(self, app: Any, module: str = "Contacts") -> str:
        return app.add_custom_field(module, "External Ref", "text", unique=True, length=40)

    def rate_limited(self, app: Any) -> int:
        """429s for either limit: concurrency (TOO_MANY_REQUESTS) or spent credits (LIMIT_EXCEEDED)."""
        return app.rate_limited_count
