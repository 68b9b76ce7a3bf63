"""Reading the Pipedrive sandbox the way integrations.sandbox.probes reads every CRM.

People are persons (id, primary e-mail). Engagement keys are where the Pipedrive connector keeps
them (integrations.providers.pipedrive): the ``[capsule:<key>]`` marker at the end of an activity's
or note's HTML, and the "Capsule conversion id" custom field of deals.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from integrations.sandbox.pipedrive.wire import primary_value

MARKER = re.compile(r"\[capsule:([^\]\s]+)\]")
CONVERSION_FIELD = "Capsule conversion id"


def marker_key(html: str | None) -> str | None:
    found = MARKER.findall(html or "")
    return found[-1] if found else None


@dataclass(frozen=True)
class PipedriveProbe:
    provider: str = "pipedrive"
    # Person writes: the e-mail search and the create (Pipedrive has no batch endpoint).
    batch_write_path: str = "/api/v2/persons"

    def people(self, app: Any) -> list[tuple[str, str]]:
        return [(str(p["id"]), primary_value(p["emails"]).lower()) for p in app.persons()]

    def engagement_keys(self, app: Any) -> list[str]:
        keys = [marker_key(a.get("note")) for a in app.activities()]
        keys += [marker_key(n.get("content")) for n in app.notes()]
        with app.lock:
            codes = [
                f["field_code"]
                for f in app.records.fields.fields["deal"]
                if f["is_custom_field"] and f["field_name"].casefold() == CONVERSION_FIELD.casefold()
            ]
        keys += [d["custom_fields"].get(code) for d in app.deals() for code in codes]
        return [k for k in keys if k]

    def token(self, app: Any) -> str:
        return app.issue_api_token()

    def api_calls(self, app: Any) -> int:
        return app.api_calls

    def rate_limited(self, app: Any) -> int:
        return app.rate_limited_count

    def first_name(self, app: Any, crm_id: str) -> str | None:
        person = next((p for p in app.persons() if str(p["id"]) == str(crm_id)), None)
        return person["first_name"] if person else None

    def add_unique_field(self, app: Any) -> str:
        """A custom text field whose values the sandbox keeps unique (a test aid: Pipedrive has no
        unique fields); its name for the mapping is its 40-character hash."""
        return app.add_custom_field("person", "External ref", "varchar", unique=True)["field_code"]
