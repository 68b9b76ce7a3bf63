"""Reading the Copper sandbox the provider-neutral way (integrations.sandbox.probes).

People are People and Leads; engagement is activities whose ``details`` end with our key line
and tasks/opportunities whose key custom field holds it (integrations.providers.copper.keys).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from integrations.providers.copper.keys import CONVERSION_KEY_FIELD, EVENT_KEY_FIELD, key_in


def _primary_email(record: dict[str, Any]) -> str:
    if "emails" in record:
        return str(((record.get("emails") or [{}])[0]).get("email") or "").lower()
    return str((record.get("email") or {}).get("email") or "").lower()


def _key_values(app: Any, resource: str, field_name: str) -> list[str]:
    definition_ids = {d["id"] for d in app.store.definitions.values() if d["name"] == field_name}
    values = []
    for record in app.records(resource):
        for item in record.get("custom_fields") or []:
            if item["custom_field_definition_id"] in definition_ids and item.get("value"):
                values.append(str(item["value"]))
    return values


@dataclass(frozen=True)
class CopperProbe:
    provider: str = "copper"
    # People are written one call each: creates go to /people, updates to /people/{id}.
    batch_write_path: str = "/developer_api/v1/people"

    def people(self, app: Any) -> list[tuple[str, str]]:
        return [(str(r["id"]), _primary_email(r)) for resource in ("people", "leads") for r in app.records(resource)]

    def engagement_keys(self, app: Any) -> list[str]:
        keys = [key_in(a.get("details")) for a in app.records("activities")]
        keys += _key_values(app, "tasks", EVENT_KEY_FIELD)
        keys += _key_values(app, "opportunities", CONVERSION_KEY_FIELD)
        return [k for k in keys if k]

    def token(self, app: Any) -> str:
        """A partner-app OAuth token: it travels as a Bearer header and needs no user e-mail, so a
        token connection made without extras works (API keys need ``extra["user_email"]``)."""
        return app.issue_oauth_token().access_token

    def api_calls(self, app: Any) -> int:
        return app.api_calls

    def rate_limited(self, app: Any) -> int:
        return app.rate_limited_count

    def first_name(self, app: Any, crm_id: str) -> str | None:
        record = app.get("people", crm_id) or app.get("leads", crm_id) or {}
        return record.get("first_name")

    def add_unique_field(self, app: Any) -> str:
        """A text field on people with the sandbox-only uniqueness rule (Copper has no unique custom
        fields; the rule stands in for any record Copper refuses), named as the mapping targets it."""
        app.add_custom_field("External ref", "String", ["person", "lead"], unique=True)
        return "cf_external_ref"
