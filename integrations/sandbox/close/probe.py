"""How tests and benchmarks read the Close sandbox (integrations.sandbox.probes.Probe).

People are contacts (their primary e-mail). Engagement keys are where the Close connector keeps
them: the "Capsule event ID" field of Custom Activities, the ``[key]`` that starts a note's title
or a task's text, and the "Capsule conversion ID" field of opportunities.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_KEY_PREFIX = re.compile(r"^\[([^\]\s]+)\]")
EVENT_KEY_FIELD = "Capsule event ID"
DEAL_KEY_FIELD = "Capsule conversion ID"


def _prefix_key(text: Any) -> str | None:
    match = _KEY_PREFIX.match(str(text or ""))
    return match.group(1) if match else None


def _field_ids(app: Any, object_type: str, name: str) -> set[str]:
    return {d["id"] for d in app.custom_fields(object_type) if d["name"] == name}


@dataclass(frozen=True)
class CloseProbe:
    provider: str = "close"
    # Close has no batch writes: a new person is one POST /lead/ with the contact inline.
    batch_write_path: str = "/api/v1/lead/"

    def people(self, app: Any) -> list[tuple[str, str]]:
        return [(c["id"], (c["emails"][0]["email"] if c["emails"] else "").lower()) for c in app.contacts()]

    def engagement_keys(self, app: Any) -> list[str]:
        event_fields = _field_ids(app, "activity", EVENT_KEY_FIELD)
        keys = [a.get(f"custom.{f}") for a in app.activities("CustomActivity") for f in event_fields]
        keys += [_prefix_key(a.get("title")) for a in app.activities("Note")]
        keys += [_prefix_key(t.get("text")) for t in app.tasks()]
        deal_fields = _field_ids(app, "opportunity", DEAL_KEY_FIELD)
        keys += [o.get(f"custom.{f}") for o in app.opportunities() for f in deal_fields]
        return [k for k in keys if k]

    def token(self, app: Any) -> str:
        return app.issue_api_key()

    def api_calls(self, app: Any) -> int:
        return app.api_calls

    def rate_limited(self, app: Any) -> int:
        return app.rate_limited_count

    def first_name(self, app: Any, crm_id: str) -> str | None:
        """Close contacts have one ``name``; the standard mapping writes "first last" into it."""
        contact = app.contact(crm_id)
        name = (contact or {}).get("name") or ""
        return name.split()[0] if name.split() else None

    def add_unique_field(self, app: Any) -> str:
        """A contact text field with the sandbox-only uniqueness rule (Close has no unique custom
        fields; the rule stands in for any record Close refuses), named as the mapping targets it."""
        app.add_custom_field("contact", "external_ref", "text", unique=True)
        return "external_ref"
