"""Our field names ↔ Close's contact shape (crm-reference §8.2, §8.3).

Close contacts hold ``name``, ``title`` and arrays of ``emails`` / ``phones`` / ``urls`` objects;
custom values are ``custom.cf_<id>`` keys. A mapping writes flat names, which this module turns
into that shape and back:

- ``email`` → the first of ``emails``; ``phone`` / ``mobile_phone`` → ``phones`` of type office /
  mobile; ``url`` → ``urls``. Writing merges: our value goes first, the addresses and numbers a
  rep added stay (a changed capsule e-mail becomes the primary one, the old one stays listed).
- ``lead_name``, ``lead_url``, ``lead_description``, ``lead_city``, ``lead_state``,
  ``lead_zipcode``, ``lead_country``: the lead (company) made with a new contact. Close's lead is
  the company, shared by every contact of it, so these are written once, when we create the lead;
  later edits belong to the sales team.
- A custom field by its Close name (``Capsule score``), or a literal ``custom.cf_<id>`` key.
- Read back flat: the same names, plus ``email_unsubscribed`` (the primary address's flag),
  ``lead_id``, ``display_name``, ``date_created`` and ``date_updated``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from integrations.errors import RecordError

API_PATH = "/api/v1"
CONTACT_SCALARS = ("name", "title")
PHONE_TYPES = {"phone": "office", "mobile_phone": "mobile"}
LEAD_SCALARS = {"lead_name": "name", "lead_url": "url", "lead_description": "description"}
LEAD_ADDRESS = {"lead_city": "city", "lead_state": "state", "lead_zipcode": "zipcode", "lead_country": "country"}
READ_ONLY = ("id", "lead_id", "display_name", "date_created", "date_updated", "email_unsubscribed")


def api_base(url: str) -> str:
    """Close's API root for a base URL: an override naming only a host gets ``/api/v1``."""
    parts = urlsplit(url.rstrip("/"))
    if parts.path in ("", "/"):
        parts = parts._replace(path=API_PATH)
    return urlunsplit(parts)


def parse_time(value: Any) -> dt.datetime | None:
    if not value:
        return None
    try:
        moment = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def to_wire(value: Any) -> Any:
    """A mapped value as Close takes it: ISO instants with an offset, ``YYYY-MM-DD`` dates, numbers."""
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).astimezone(dt.UTC).isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, list | tuple):
        return [to_wire(v) for v in value]
    return value


def _same(a: str, b: str) -> bool:
    return a.strip().lower() == b.strip().lower()


def merged_emails(email: str, existing: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """``email`` first, then the contact's other addresses as they were."""
    mine = next((dict(e) for e in existing if _same(str(e.get("email") or ""), email)), None)
    first = mine or {"email": email, "type": "office"}
    return [first] + [dict(e) for e in existing if not _same(str(e.get("email") or ""), email)]


def _digits(phone: str) -> str:
    return "".join(ch for ch in phone if ch.isdigit())


def merged_phones(wanted: Mapping[str, str], existing: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Each of our numbers first in its type, the others kept."""
    phones = [{"phone": p.get("phone"), "type": p.get("type") or "office"} for p in existing]
    for number, kind in reversed(list(wanted.items())):
        phones = [p for p in phones if _digits(str(p["phone"] or "")) != _digits(number)]
        phones.insert(0, {"phone": number, "type": kind})
    return phones


def merged_urls(url: str, existing: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    others = [{"url": u.get("url"), "type": u.get("type") or "url"} for u in existing if u.get("url") != url]
    return [{"url": url, "type": "url"}, *others]


def split_fields(
    fields: Mapping[str, Any], custom_ids: Mapping[str, str]
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(contact scalars and custom keys, contact list values, lead values) of mapped fields.

    Unknown names raise RecordError naming the field: the mapping points at a field Close does
    not have (it was deleted or renamed in Close).
    """
    contact: dict[str, Any] = {}
    lists: dict[str, Any] = {}
    lead: dict[str, Any] = {}
    for name, raw in fields.items():
        value = to_wire(raw)
        if name in CONTACT_SCALARS:
            contact[name] = value if value not in ("",) else None
        elif name == "email" or name in PHONE_TYPES or name == "url":
            if value not in (None, ""):
                lists[name] = str(value).strip()
        elif name in LEAD_SCALARS or name in LEAD_ADDRESS:
            if value not in (None, ""):
                lead[name] = value
        elif name.startswith("custom.cf_"):
            contact[name] = value
        elif name in custom_ids:
            contact[f"custom.{custom_ids[name]}"] = value
        elif name in READ_ONLY:
            continue  # Close computes these; a mapping cannot write them
        else:
            raise RecordError(f"Close has no contact field “{name}”", code="unknown_field", field=name)
    return contact, lists, lead


def contact_body(
    fields: Mapping[str, Any], custom_ids: Mapping[str, str], email: str, existing: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The POST (``existing`` None) or partial PUT body of a contact for mapped ``fields``."""
    body, lists, _lead = split_fields(fields, custom_ids)
    current = existing or {}
    address = lists.get("email") or email
    if address:
        body["emails"] = merged_emails(address, current.get("emails") or [])
    numbers = {lists[name]: kind for name, kind in PHONE_TYPES.items() if name in lists}
    if numbers:
        body["phones"] = merged_phones(numbers, current.get("phones") or [])
    if "url" in lists:
        body["urls"] = merged_urls(lists["url"], current.get("urls") or [])
    if existing is None and not body.get("name"):
        body["name"] = None
    return body


def lead_body(fields: Mapping[str, Any], contact: Mapping[str, Any], email: str) -> dict[str, Any]:
    """A new lead for a new contact: the company's name, else the person's, else the address."""
    lead = split_fields({k: v for k, v in fields.items() if k in LEAD_SCALARS or k in LEAD_ADDRESS}, {})[2]
    body: dict[str, Any] = {LEAD_SCALARS[k]: v for k, v in lead.items() if k in LEAD_SCALARS}
    body["name"] = body.get("name") or contact.get("name") or email
    address = {LEAD_ADDRESS[k]: v for k, v in lead.items() if k in LEAD_ADDRESS}
    if address:
        body["addresses"] = [{"label": "business", **address}]
    body["contacts"] = [dict(contact)]
    return body


def flatten(contact: Mapping[str, Any], custom_names: Mapping[str, str]) -> dict[str, Any]:
    """A Close contact as flat fields (see the module docstring)."""
    emails = contact.get("emails") or []
    phones = contact.get("phones") or []
    urls = contact.get("urls") or []
    flat: dict[str, Any] = {
        key: contact.get(key)
        for key in ("id", "lead_id", "name", "title", "display_name", "date_created", "date_updated")
    }
    flat["email"] = emails[0].get("email") if emails else None
    flat["email_unsubscribed"] = bool(emails[0].get("is_unsubscribed")) if emails else False
    flat["phone"] = next((p.get("phone") for p in phones if p.get("type") != "mobile"), None)
    flat["mobile_phone"] = next((p.get("phone") for p in phones if p.get("type") == "mobile"), None)
    flat["url"] = urls[0].get("url") if urls else None
    for key, value in contact.items():
        if key.startswith("custom.cf_"):
            flat[key] = value
            name = custom_names.get(key[len("custom.") :])
            if name and name not in flat:
                flat[name] = value
    return flat
