"""Reading the Freshsales sandbox the provider-neutral way (integrations.sandbox.probes).

People are contacts; engagement is notes, tasks and sales activities whose text ends with our key
line, and deals whose key custom field holds the conversion key (integrations.providers.freshsales.keys).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from integrations.providers.freshsales.keys import CONVERSION_KEY_FIELD, key_in


@dataclass(frozen=True)
class FreshsalesProbe:
    provider: str = "freshsales"
    # Where people are written: one upsert per contact (the worker-crash test slows it down).
    batch_write_path: str = "/crm/sales/api/contacts/upsert"

    def people(self, app: Any) -> list[tuple[str, str]]:
        return [(str(r["id"]), str(r.get("email") or "").lower()) for r in app.records("contacts")]

    def engagement_keys(self, app: Any) -> list[str]:
        keys = [key_in(r.get("description")) for r in app.records("notes")]
        keys += [key_in(r.get("description")) for r in app.records("tasks")]
        keys += [key_in(r.get("notes")) for r in app.records("sales_activities")]
        keys += [(r.get("custom_field") or {}).get(CONVERSION_KEY_FIELD) for r in app.records("deals")]
        return [k for k in keys if k]

    def token(self, app: Any) -> str:
        return app.issue_api_key()

    def api_calls(self, app: Any) -> int:
        return app.api_calls

    def rate_limited(self, app: Any) -> int:
        return app.rate_limited_count

    def first_name(self, app: Any, crm_id: str) -> str | None:
        return (app.get("contacts", crm_id) or {}).get("first_name")

    def add_unique_field(self, app: Any, object_kind: str = "contact") -> str:
        """A unique text custom field on contacts (Admin settings → Fields → Unique); its API name."""
        return app.add_custom_field("contacts", "External ref", "text", unique=True)["name"]
