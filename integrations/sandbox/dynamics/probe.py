"""Reading the Dataverse sandbox the provider-neutral way (integrations.sandbox.probes).

People are the org's contacts and leads; engagement is tasks and opportunities keyed by our custom
attributes (``new_capsuleeventid``, ``new_capsuleconversionid``) and annotations whose title carries
the key (``[capsule-evt-12] Capsule note``) — see integrations.providers.dynamics.keyed.

``first_name``, ``add_unique_field`` and ``batch_write_path`` answer what the e2e tests ask per provider.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


def note_key(title: str | None) -> str | None:
    if title and title.startswith("[") and "]" in title:
        return title[1 : title.index("]")]
    return None


@dataclass(frozen=True)
class DynamicsProbe:
    provider: str = "dynamics"
    batch_write_path: str = "/api/data/v9.2/$batch"

    def people(self, app: Any) -> list[tuple[str, str]]:
        return [
            (r[f"{entity}id"], str(r.get("emailaddress1") or "").lower())
            for entity in ("contact", "lead")
            for r in app.records(entity)
        ]

    def engagement_keys(self, app: Any) -> list[str]:
        keys = [r.get("new_capsuleeventid") for r in app.records("task")]
        keys += [r.get("new_capsuleconversionid") for r in app.records("opportunity")]
        keys += [note_key(r.get("subject")) for r in app.records("annotation")]
        return [k for k in keys if k]

    def token(self, app: Any) -> str:
        return app.issue_token().access_token

    def api_calls(self, app: Any) -> int:
        return app.api_calls

    def rate_limited(self, app: Any) -> int:
        return app.rate_limited_count

    def first_name(self, app: Any, crm_id: str) -> str | None:
        record = app.get("contact", crm_id) or app.get("lead", crm_id)
        return record.get("firstname") if record else None

    def add_unique_field(self, app: Any, entity: str = "contact") -> str:
        """A custom column with an alternate key on it: a second row with its value is refused (412)."""
        app.add_custom_attribute(entity, "new_externalref", "String", max_length=40, display="External Ref")
        app.add_alternate_key(entity, "new_externalref")
        return "new_externalref"
