"""Zoho CRM's wire conventions (crm-reference §4.1-§4.4): module names, the auth header, times, values.

- Module API names: ``Leads``, ``Contacts``, ``Deals``, ``Tasks``, ``Calls``, ``Events``, ``Notes``.
- ``Authorization: Zoho-oauthtoken <token>`` — Zoho refuses ``Bearer``.
- Datetimes are ``yyyy-MM-ddTHH:mm:ss±HH:mm`` (whole seconds, an offset, no ``Z``); dates ``yyyy-MM-dd``.
- Lookups are objects ``{"id": …}`` (answers add ``name``); activities link a Contact through
  ``Who_Id`` and anything else (a Lead, a Deal) through ``What_Id`` plus ``$se_module``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

import requests

from integrations.connector import ACTIVITY, CONTACT, DEAL, LEAD, NOTE, TASK, CrmRecord
from integrations.errors import ConfigurationError

MODULES: dict[str, str] = {
    CONTACT: "Contacts",
    LEAD: "Leads",
    DEAL: "Deals",
    ACTIVITY: "Tasks",
    TASK: "Tasks",
    NOTE: "Notes",
    "call": "Calls",
    "event": "Events",
}
ZOHO_MODULES = frozenset(MODULES.values())
KINDS_OF_MODULE = {"Contacts": CONTACT, "Leads": LEAD, "Deals": DEAL}

# Lookup fields answered as {"name", "id", "email"}: readers may ask for "<field>.<key>" (a dotted
# name never collides with a Zoho API name), e.g. the owner's id for inbound sync.
LOOKUP_PARTS = ("id", "name", "email")


class ZohoAuth(requests.auth.AuthBase):
    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Zoho-oauthtoken {self._token}"
        return request

    def __repr__(self) -> str:  # never show the token in a traceback's locals
        return "ZohoAuth([REDACTED])"


def module(kind: str) -> str:
    """The Zoho module for one of our object kinds (or a module API name given as is)."""
    if kind in ZOHO_MODULES:
        return kind
    try:
        return MODULES[kind]
    except KeyError:
        raise ConfigurationError(f"Zoho CRM has no module for {kind!r}", code="unknown_object_kind") from None


def person_module(kind: str) -> str:
    name = module(kind)
    if name not in ("Contacts", "Leads"):
        raise ConfigurationError(f"Zoho CRM people are Contacts or Leads, not {kind}", code="not_a_person")
    return name


def to_datetime(moment: dt.datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC).replace(microsecond=0).isoformat()


def to_date(moment: dt.date | dt.datetime) -> str:
    if isinstance(moment, dt.datetime):
        moment = (moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)).astimezone(dt.UTC).date()
    return moment.isoformat()


def parse_time(value: Any) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def value(raw: Any) -> Any:
    """A value as Zoho's JSON takes it: numbers stay numbers, dates become Zoho's strings."""
    if isinstance(raw, dt.datetime):
        return to_datetime(raw)
    if isinstance(raw, dt.date):
        return raw.isoformat()
    if isinstance(raw, Decimal):
        return float(raw)
    if isinstance(raw, tuple):
        return list(raw)
    return raw


# Lookups that may be given as a bare id (workflow triggers assign an owner by its id): Zoho
# takes lookups as {"id": …}.
ID_LOOKUPS = ("Owner", "Contact_Name")


def values(fields: Mapping[str, Any]) -> dict[str, Any]:
    out = {str(name): value(raw) for name, raw in fields.items()}
    for name in ID_LOOKUPS:
        raw = out.get(name)
        if isinstance(raw, str | int) and not isinstance(raw, bool) and str(raw):
            out[name] = {"id": str(raw)}
    return out


def select(names: Iterable[str]) -> list[str]:
    """The Zoho fields to ask for when a reader wants ``names`` (``Owner.id`` needs ``Owner``)."""
    return sorted({name.split(".", 1)[0] for name in names if name and name != "id"})


def record(raw: Mapping[str, Any]) -> CrmRecord:
    """A Zoho record as a CrmRecord; lookups also answer as ``<field>.id``/``.name``/``.email``."""
    fields: dict[str, Any] = dict(raw)
    for name, item in raw.items():
        if isinstance(item, Mapping):
            for part in LOOKUP_PARTS:
                if part in item:
                    fields[f"{name}.{part}"] = item[part]
    return CrmRecord(crm_id=str(raw.get("id")), fields=fields, modified_at=parse_time(raw.get("Modified_Time")))


def person_link(person_kind: str, person_id: str) -> dict[str, Any]:
    """How an activity points at its person: a Contact through Who_Id, a Lead through What_Id."""
    if person_module(person_kind) == "Contacts":
        return {"Who_Id": {"id": str(person_id)}}
    return {"What_Id": {"id": str(person_id)}, "$se_module": "Leads"}
