"""HubSpot's wire conventions: object type names, property values as strings, times in epoch ms.

Sources: crm-reference.md §2.2 (every property value is a string on the wire; multi-checkbox
values are ``;``-separated; date properties take midnight UTC, as epoch ms or ISO date) and §2.4
(engagement objects and their HubSpot-defined association type ids).
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from integrations.connector import ACTIVITY, CONTACT, DEAL, LEAD, NOTE, TASK
from integrations.errors import ConfigurationError

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
ONE_MS = dt.timedelta(milliseconds=1)

# Our object kinds -> HubSpot object types. HubSpot's person object is the contact (the provider's
# record_types is ("contact",)), so a connection set to "lead" still writes contacts. Activities
# become notes: see HubSpotConnector.log_activities for why.
OBJECT_TYPES: dict[str, str] = {
    CONTACT: "contacts",
    LEAD: "contacts",
    DEAL: "deals",
    ACTIVITY: "notes",
    NOTE: "notes",
    TASK: "tasks",
    "call": "calls",
    "meeting": "meetings",
}
HUBSPOT_TYPES = frozenset(OBJECT_TYPES.values())

# HubSpot-defined default association types to a contact (and deal -> contact), as HubSpot
# documents them for v4 associations [crm-reference §2.4; GET /crm/v4/associations/{from}/{to}/labels].
TO_CONTACT_ASSOCIATION: dict[str, int] = {"notes": 202, "tasks": 204, "meetings": 200, "calls": 194, "deals": 3}

# Contacts keep the legacy name for their modification time; every other object has hs_lastmodifieddate.
MODIFIED_PROPERTY: dict[str, str] = {"contacts": "lastmodifieddate"}

NOTE_BODY_LIMIT = 65_536  # hs_note_body's documented maximum [crm-reference §2.4]


def object_type(kind: str) -> str:
    """The HubSpot object type for one of our kinds (or a HubSpot type name given as is)."""
    if kind in HUBSPOT_TYPES:
        return kind
    try:
        return OBJECT_TYPES[kind]
    except KeyError:
        raise ConfigurationError(f"HubSpot has no object for {kind!r}", code="unknown_object_kind") from None


def modified_property(hubspot_type: str) -> str:
    return MODIFIED_PROPERTY.get(hubspot_type, "hs_lastmodifieddate")


def epoch_ms(value: dt.datetime) -> int:
    """Exact epoch milliseconds (integer arithmetic, no float rounding); naive times are UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return (value - EPOCH) // ONE_MS


def from_epoch_ms(ms: int) -> dt.datetime:
    return EPOCH + ms * ONE_MS


def parse_time(value: Any) -> dt.datetime | None:
    """A HubSpot timestamp (ISO-8601 with ``Z``, or epoch ms as a string) as an aware datetime."""
    if value in (None, ""):
        return None
    text = str(value).strip()
    if text.lstrip("-").isdigit():
        return from_epoch_ms(int(text))
    try:
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def to_wire(value: Any) -> str:
    """One property value as HubSpot wants it: always a string (crm-reference §2.2).

    Booleans are "true"/"false"; numbers their plain decimal text; datetimes epoch ms; dates
    midnight UTC in epoch ms (valid for both date and datetime properties); lists ``;``-joined
    (multi-checkbox); None is "" which clears the property.
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        # Plain decimal text, never exponent notation (1e+20), with no more digits than the float has.
        return format(Decimal(repr(value)).normalize(), "f")
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dt.datetime):
        return str(epoch_ms(value))
    if isinstance(value, dt.date):
        return str(epoch_ms(dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)))
    if isinstance(value, list | tuple | set | frozenset):
        return ";".join(to_wire(item) for item in value)
    return str(value)


def properties(fields: Mapping[str, Any]) -> dict[str, str]:
    return {str(name): to_wire(value) for name, value in fields.items()}


def note_html(subject: str, body: str) -> str:
    """A note body: HubSpot renders hs_note_body as HTML, so plain text needs escaping and <br>s.

    The subject leads in bold; a body whose first line repeats the subject does not repeat it.
    """
    lines = body.splitlines()
    if subject and lines and lines[0].strip() == subject.strip():
        lines = lines[1:]
    parts = [f"<strong>{html.escape(subject)}</strong>"] if subject else []
    parts += [html.escape(line) for line in lines]
    return "<br>".join(parts)[:NOTE_BODY_LIMIT]


def text_html(body: str) -> str:
    return "<br>".join(html.escape(line) for line in body.splitlines())[:NOTE_BODY_LIMIT]
