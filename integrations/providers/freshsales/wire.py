"""Freshsales' wire format: the account's API base, record bodies and field types (crm-reference §7).

Field names are Freshsales' own: ``first_name``, ``job_title``, ``mobile_number``… at the top of
the record, ``cf_…`` custom fields inside ``custom_field``, and ``email`` for the primary address
(sent as ``emails: [{"value", "is_primary": true}]``; Freshsales keeps the other addresses).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from integrations.connector import CrmRecord, FieldSchema

SUITE_PATH = "/crm/sales/api"  # https://<bundle alias>.myfreshworks.com/crm/sales/api
LEGACY_PATH = "/api"  # https://<domain>.freshsales.io/api
CUSTOM_PREFIX = "cf_"
READ_ONLY = {"id", "created_at", "updated_at", "creater_id", "updater_id", "display_name"}
TYPES = {
    "text": "string",
    "textarea": "text",
    "paragraph": "text",
    "number": "number",
    "dropdown": "picklist",
    "radio": "picklist",
    "multi_select_dropdown": "multipicklist",
    "checkbox": "boolean",
    "date": "date",
    "date_time": "datetime",
    "email": "email",
    "phone_number": "phone",
    "url": "url",
}


def api_base(base: str) -> str:
    """The API root for a connection URL that may name only the account's host."""
    parts = urlsplit(base.rstrip("/"))
    path = parts.path.rstrip("/")
    if not path:
        path = LEGACY_PATH if parts.hostname and parts.hostname.endswith(".freshsales.io") else SUITE_PATH
    return urlunsplit((parts.scheme or "https", parts.netloc, path, "", ""))


def parse_time(value: Any) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def iso(moment: dt.datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC).replace(microsecond=0).isoformat()


def encode(fields: Mapping[str, Any], email: str | None = None) -> dict[str, Any]:
    """A ``contact`` or ``deal`` body from our field names."""
    body: dict[str, Any] = {}
    custom: dict[str, Any] = {}
    for name, value in fields.items():
        if name == "email":
            email = email or (str(value) if value else None)
        elif name.startswith(CUSTOM_PREFIX):
            custom[name] = value
        elif name not in READ_ONLY:
            body[name] = value
    if email:
        body["emails"] = [{"value": email, "is_primary": True}]
    if custom:
        body["custom_field"] = custom
    return body


def flatten(record: Mapping[str, Any]) -> CrmRecord:
    """A record with its custom fields beside the standard ones, and ``email`` the primary address."""
    fields = {k: v for k, v in record.items() if k not in ("custom_field", "emails")}
    fields.update(record.get("custom_field") or {})
    if not fields.get("email"):
        emails = record.get("emails") or []
        primary = next((e for e in emails if e.get("is_primary")), emails[0] if emails else None)
        fields["email"] = primary.get("value") if primary else None
    return CrmRecord(crm_id=str(record["id"]), fields=fields, modified_at=parse_time(record.get("updated_at")))


def field_schema(definition: Mapping[str, Any]) -> FieldSchema:
    name = str(definition["name"])
    if name == "emails":
        name = "email"
    custom = name.startswith(CUSTOM_PREFIX)
    return FieldSchema(
        name=name,
        label=str(definition.get("label") or name),
        type=TYPES.get(str(definition.get("type")), "other"),
        custom=custom,
        required=bool(definition.get("required")),
        read_only=bool(definition.get("read_only")) or name in READ_ONLY,
        options=tuple(str(c.get("value")) for c in definition.get("choices") or [] if c.get("value") is not None),
        unique=bool(definition.get("unique")) or name == "email",
    )


ENGAGEMENT_FIELDS = {
    "note": (FieldSchema("description", "Description", "text", required=True),),
    "activity": (
        FieldSchema("title", "Title", "string", required=True),
        FieldSchema("notes", "Notes", "text"),
        FieldSchema("start_date", "Start", "datetime", required=True),
        FieldSchema("end_date", "End", "datetime", required=True),
    ),
    "task": (
        FieldSchema("title", "Title", "string", required=True),
        FieldSchema("description", "Description", "text"),
        FieldSchema("due_date", "Due date", "datetime", required=True),
        FieldSchema("owner_id", "Owner", "picklist"),
    ),
}
