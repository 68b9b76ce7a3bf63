"""Close fields: standard ones as data, custom ones from ``/custom_field/<type>/`` (crm-reference §8.3).

Custom field definitions are cached per process, API host and credential for a few minutes, so a
flush does not re-read them for every batch; a write refused for a ``custom.cf_…`` key drops the
cache (the field was deleted or changed in Close). A custom field is known to the mapping by its
Close name, which is what an owner sees in Close; ``custom.cf_<id>`` keys also work.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Mapping
from typing import Any

from integrations.connector import ACTIVITY, CONTACT, DEAL, LEAD, NOTE, TASK, FieldSchema
from integrations.errors import ConfigurationError, RecordError
from integrations.http import CrmHttp

CACHE_SECONDS = 300
# Our object kinds → Close's custom field object types.
CUSTOM_TYPE = {CONTACT: "contact", LEAD: "lead", DEAL: "opportunity", ACTIVITY: "activity"}
# Close custom field types → ours (crm-reference §8.3; the list is UNVERIFIED there).
FROM_CLOSE = {
    "text": "string",
    "textarea": "text",
    "hidden": "string",
    "number": "number",
    "date": "date",
    "datetime": "datetime",
    "choices": "picklist",
    "user": "other",
    "contact": "other",
    "url": "url",
}
# Ours → Close, for fields we create (Close has no boolean, e-mail or phone custom field types).
TO_CLOSE = {
    "string": "text",
    "text": "textarea",
    "email": "text",
    "phone": "text",
    "boolean": "text",
    "other": "text",
    "number": "number",
    "integer": "number",
    "date": "date",
    "datetime": "datetime",
    "picklist": "choices",
    "multipicklist": "choices",
    "url": "url",
}


def _f(name: str, label: str, kind: str = "string", **extra: Any) -> FieldSchema:
    return FieldSchema(name=name, label=label, type=kind, **extra)


LEAD_AT_CREATION = "written once, when the capsule creates the lead (Close's lead is the company)"
STANDARD: dict[str, tuple[FieldSchema, ...]] = {
    CONTACT: (
        _f("name", "Name"),
        _f("title", "Title"),
        _f("email", "E-mail (primary)", "email", unique=True),
        _f("phone", "Phone (office)", "phone"),
        _f("mobile_phone", "Mobile phone", "phone"),
        _f("url", "URL", "url"),
        _f("lead_name", f"Company — lead name, {LEAD_AT_CREATION}"),
        _f("lead_url", f"Company website, {LEAD_AT_CREATION}", "url"),
        _f("lead_description", f"Company description, {LEAD_AT_CREATION}", "text"),
        _f("lead_city", f"Company city, {LEAD_AT_CREATION}"),
        _f("lead_state", f"Company state, {LEAD_AT_CREATION}"),
        _f("lead_zipcode", f"Company postal code, {LEAD_AT_CREATION}"),
        _f("lead_country", f"Company country, {LEAD_AT_CREATION}"),
        _f("email_unsubscribed", "Unsubscribed (primary e-mail)", "boolean", read_only=True),
        _f("id", "Contact ID", read_only=True, unique=True),
        _f("lead_id", "Lead ID", read_only=True),
        _f("display_name", "Display name", read_only=True),
        _f("date_created", "Created", "datetime", read_only=True),
        _f("date_updated", "Updated", "datetime", read_only=True),
    ),
    LEAD: (
        _f("name", "Company name"),
        _f("description", "Description", "text"),
        _f("url", "Website", "url"),
        _f("status_label", "Lead status", "picklist", read_only=True),
        _f("id", "Lead ID", read_only=True, unique=True),
        _f("date_updated", "Updated", "datetime", read_only=True),
    ),
    DEAL: (
        _f("note", "Note (the deal's name)", "text"),
        _f("value", "Value (cents)", "number"),
        _f("value_period", "Value period", "picklist", options=("one_time", "monthly", "annual")),
        _f("confidence", "Confidence (%)", "number"),
        _f("status_label", "Status", "picklist"),
        _f("date_won", "Date won", "date"),
        _f("contact_id", "Contact", "other"),
        _f("id", "Opportunity ID", read_only=True, unique=True),
        _f("date_updated", "Updated", "datetime", read_only=True),
    ),
    NOTE: (_f("note", "Note", "text"), _f("title", "Title"), _f("activity_at", "When", "datetime")),
    ACTIVITY: (_f("activity_at", "When", "datetime"),),
    TASK: (
        _f("text", "Text", required=True),
        _f("date", "Due", "date"),
        _f("is_complete", "Done", "boolean"),
        _f("assigned_to", "Assigned to", "other"),
    ),
}

_cache: dict[tuple[str, str, str], tuple[float, list[dict[str, Any]]]] = {}
_cache_lock = threading.Lock()


def forget_all() -> None:
    """Drop every cached definition (tests that reset an organisation)."""
    with _cache_lock:
        _cache.clear()


def to_schema(definition: Mapping[str, Any]) -> FieldSchema:
    kind = FROM_CLOSE.get(str(definition.get("type")), "other")
    if kind == "picklist" and definition.get("accepts_multiple_values"):
        kind = "multipicklist"
    return FieldSchema(
        name=str(definition["name"]),
        label=str(definition["name"]),
        type=kind,
        custom=True,
        required=bool(definition.get("required")),
        options=tuple(str(c) for c in definition.get("choices") or ()),
    )


class CustomFields:
    """The custom field definitions of one organisation, read through ``http``."""

    def __init__(self, http: CrmHttp, token: str, page_size: int) -> None:
        self.http = http
        self.page_size = page_size
        self._fingerprint = hashlib.sha256(token.encode()).hexdigest()[:16]  # never the token itself

    def _key(self, object_type: str) -> tuple[str, str, str]:
        return (self.http.base_url, self._fingerprint, object_type)

    def definitions(self, object_type: str, *, fresh: bool = False) -> list[dict[str, Any]]:
        return self._load(object_type, fresh)[0]

    def _load(self, object_type: str, fresh: bool) -> tuple[list[dict[str, Any]], bool]:
        """(definitions, whether they were read just now)."""
        key = self._key(object_type)
        with _cache_lock:
            cached = _cache.get(key)
        if cached and not fresh and cached[0] > time.monotonic():
            return cached[1], False
        rows: list[dict[str, Any]] = []
        skip = 0
        while True:
            answer = (
                self.http.json("GET", f"custom_field/{object_type}/", params={"_skip": skip, "_limit": self.page_size})
                or {}
            )
            rows += [r for r in answer.get("data") or [] if isinstance(r, Mapping) and r.get("id")]
            if not answer.get("has_more"):
                break
            skip += self.page_size
        with _cache_lock:
            _cache[key] = (time.monotonic() + CACHE_SECONDS, rows)
        return rows, True

    def find(self, object_type: str, name: str, type_id: str | None = None) -> dict[str, Any] | None:
        """The definition named ``name`` (of Custom Activity Type ``type_id``), re-read once when the
        cached list lacks it (another worker may have made it)."""

        def match(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
            return next(
                (d for d in rows if d.get("name") == name and d.get("custom_activity_type_id") == type_id), None
            )

        rows, fetched = self._load(object_type, False)
        found = match(rows)
        if found is None and not fetched:
            found = match(self._load(object_type, True)[0])
        return found

    def forget(self, object_type: str) -> None:
        with _cache_lock:
            _cache.pop(self._key(object_type), None)

    def ids_by_name(self, object_type: str) -> dict[str, str]:
        return {str(d["name"]): str(d["id"]) for d in self.definitions(object_type)}

    def names_by_id(self, object_type: str) -> dict[str, str]:
        return {str(d["id"]): str(d["name"]) for d in self.definitions(object_type)}

    def ensure(self, object_type: str, name: str, close_type: str, **extra: Any) -> dict[str, Any]:
        """The definition named ``name``, created when missing."""
        type_id = extra.get("custom_activity_type_id")
        found = self.find(object_type, name, type_id)
        return found if found is not None else self.ensure_new(object_type, {"name": name, "type": close_type, **extra})

    def ensure_new(self, object_type: str, body: dict[str, Any]) -> dict[str, Any]:
        """Create a field; one another worker made meanwhile (Close refuses a second of one name) is reused."""
        try:
            created = self.http.json("POST", f"custom_field/{object_type}/", json=body)
        except RecordError:
            found = self.find(object_type, body["name"], body.get("custom_activity_type_id"))
            if found is None:
                raise
            return found
        except ConfigurationError as exc:
            raise ConfigurationError(
                f"Close refused to create the {object_type} custom field “{body['name']}” ({exc.message}); "
                "create it in Close (Settings → Custom Fields) or connect with an admin's API key.",
                status=exc.status,
                code="custom_field",
            ) from None
        self.forget(object_type)
        return dict(created or {})


def describe(kind: str, custom: list[dict[str, Any]]) -> list[FieldSchema]:
    standard = list(STANDARD.get(kind, ()))
    taken = {f.name for f in standard}
    return standard + [to_schema(d) for d in custom if str(d.get("name")) not in taken]
