"""Copper records ↔ our flat field names (see schema.py for the names).

Reading flattens a person, lead, opportunity or task into a ``CrmRecord``; writing builds the body
of a ``POST``/``PUT`` from mapped fields. List fields (People's ``emails``, everyone's
``phone_numbers`` and ``websites``) are replaced whole by a ``PUT`` (§6.2), so they are not sent
blind: the writer merges our value into the list the record has (``wire.with_first``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from integrations.connector import CONTACT, LEAD, TASK, CrmRecord
from integrations.errors import RecordError
from integrations.providers.copper import wire
from integrations.providers.copper.schema import CUSTOM_PREFIX, CustomFields

TEXT = ("name", "first_name", "last_name", "prefix", "middle_name", "suffix", "title", "company_name", "details")
IDS = {CONTACT: ("assignee_id", "company_id", "contact_type_id"), LEAD: ("assignee_id",)}
ADDRESS = ("street", "city", "state", "postal_code", "country")
READ_ONLY = ("id", "date_created", "date_modified", "interaction_count")
# Flat name → (Copper list field, the entry's value key).
LISTS = {"phone": ("phone_numbers", "number"), "website": ("websites", "url")}
CATEGORY = "work"


@dataclass
class PersonWrite:
    """A person or lead write: the body, plus list values to merge into the record's lists."""

    body: dict[str, Any]
    lists: dict[str, tuple[str, str]] = field(default_factory=dict)  # Copper list field → (value key, value)

    def merged_lists(self, record: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
        """The list fields whose value must change so ours comes first (none when all do)."""
        changes = {}
        for list_field, (inner, value) in self.lists.items():
            merged = wire.with_first(record.get(list_field) or [], inner, value, CATEGORY)
            if merged is not None:
                changes[list_field] = merged
        return changes


def _address(record: Mapping[str, Any]) -> dict[str, Any]:
    address = record.get("address") or {}
    return {f"address_{key}": address.get(key) for key in ADDRESS}


def flatten(object_kind: str, record: Mapping[str, Any], custom: CustomFields) -> CrmRecord:
    """A Copper record as a CrmRecord with our field names."""
    fields: dict[str, Any] = {
        k: v for k, v in record.items() if not isinstance(v, dict | list) or k in ("tags", "emails")
    }
    fields.pop("emails", None)
    if object_kind in (CONTACT, LEAD):
        if object_kind == CONTACT:
            fields["email"] = (wire.first_entry(record.get("emails"), "email") or "").lower() or None
        else:
            fields["email"] = (str((record.get("email") or {}).get("email") or "")).lower() or None
        fields["phone"] = wire.first_entry(record.get("phone_numbers"), "number")
        fields["website"] = wire.first_entry(record.get("websites"), "url")
        fields.update(_address(record))
    if object_kind == TASK and isinstance(record.get("related_resource"), Mapping):
        fields["related_type"] = record["related_resource"].get("type")
        fields["related_id"] = record["related_resource"].get("id")
    fields.update(custom.decode(record.get("custom_fields")))
    return CrmRecord(
        crm_id=str(record.get("id")),
        fields=fields,
        modified_at=wire.from_unix(record.get("date_modified")),
    )


def _composed_name(fields: Mapping[str, Any], email: str) -> str | None:
    parts = [wire.as_text(fields.get(k)) for k in ("first_name", "last_name")]
    joined = " ".join(p.strip() for p in parts if p and p.strip())
    return joined or (email.split("@")[0] if email else None)


def person_write(
    object_kind: str, fields: Mapping[str, Any], email: str, custom: CustomFields, *, creating: bool
) -> PersonWrite:
    """The body of a person/lead write from mapped fields (unknown or read-only ones refused)."""
    entity = wire.entity_for(object_kind)
    write = PersonWrite({})
    body, custom_values = write.body, []
    for name, value in fields.items():
        try:
            if name in TEXT:
                body[name] = wire.as_text(value)
            elif name in IDS.get(object_kind, ()):
                body[name] = wire.as_int(value)
            elif name == "tags":
                body[name] = wire.as_list(value)
            elif name == "email":
                continue  # ``email`` below
            elif name in LISTS:
                if value not in (None, ""):
                    write.lists[LISTS[name][0]] = (LISTS[name][1], str(value).strip())
            elif name.startswith("address_") and name.removeprefix("address_") in ADDRESS:
                body.setdefault("address", {})[name.removeprefix("address_")] = wire.as_text(value)
            elif object_kind == LEAD and name == "status":
                body[name] = wire.as_text(value)
            elif object_kind == LEAD and name == "monetary_value":
                body[name] = wire.as_number(value)
            elif name.startswith(CUSTOM_PREFIX):
                custom_values.append(custom.encode(entity, name, value))
            elif name in READ_ONLY:
                raise RecordError(f"{name} is read-only in Copper", code="read_only", field=name)
            else:
                raise RecordError(f"Copper has no field {name} on {entity}", code="unknown_field", field=name)
        except (TypeError, ValueError) as exc:
            raise RecordError(f"{value!r} does not fit {name}: {exc}", code="bad_value", field=name) from None
    if custom_values:
        body["custom_fields"] = custom_values
    if email:
        if object_kind == LEAD:
            body["email"] = {"email": email, "category": CATEGORY}
        else:
            write.lists["emails"] = ("email", email)
    if "name" not in body and (creating or ("first_name" in body and "last_name" in body)):
        body["name"] = _composed_name(fields, email)
    return write


def create_body(write: PersonWrite) -> dict[str, Any]:
    """A create sends the list values as one-entry lists."""
    body = dict(write.body)
    for list_field, (inner, value) in write.lists.items():
        body[list_field] = [{inner: value, "category": CATEGORY}]
    return body
