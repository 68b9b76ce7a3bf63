"""The modules of the sandbox org and their fields (crm-reference §4.2-§4.4; spec fields.json).

Field ``data_type`` values are Zoho's (text, textarea, email, phone, website, picklist,
multiselectpicklist, integer, bigint, double, currency, boolean, date, datetime, lookup,
ownerlookup; the list is **UNVERIFIED** in the reference). Mandatory fields are those Zoho's
standard layouts require — Leads need Last_Name and Company, Contacts Last_Name, Deals Deal_Name,
Stage and Closing_Date (**UNVERIFIED**), Tasks Subject, Calls Subject, Call_Type and
Call_Start_Time, Events Event_Title, Start_DateTime and End_DateTime, Notes Note_Content and
Parent_Id — reported as ``system_mandatory`` (the layouts API is not emulated).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from integrations.sandbox.zoho.errors import invalid_data

# Zoho's "system-defined duplicate check fields" per module, used by upsert when the body names
# none (help.zoho.com Kaizen #56); user-defined unique fields come after them.
SYSTEM_DUPLICATE_FIELDS = {
    "Leads": ("Email",),
    "Contacts": ("Email",),
    "Accounts": ("Account_Name",),
    "Deals": ("Deal_Name",),
}

JSON_TYPES = {
    "text": "string",
    "textarea": "string",
    "email": "string",
    "phone": "string",
    "website": "string",
    "picklist": "string",
    "date": "string",
    "datetime": "string",
    "integer": "integer",
    "bigint": "integer",
    "double": "double",
    "currency": "double",
    "boolean": "boolean",
    "lookup": "jsonobject",
    "ownerlookup": "jsonobject",
    "multiselectpicklist": "jsonarray",
}
DEFAULT_LENGTHS = {"text": 255, "textarea": 32000, "email": 100, "phone": 30, "website": 255, "picklist": 120}
# Zoho's "yyyy-MM-ddTHH:mm:ss±HH:mm" (no fraction, no "Z").
DATETIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{2}:\d{2}$")
DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass
class FieldDef:
    api_name: str
    label: str
    data_type: str
    mandatory: bool = False
    read_only: bool = False
    custom: bool = False
    unique: bool = False
    length: int | None = None
    options: tuple[str, ...] = ()
    lookup_module: str | None = None
    id: str = ""

    @property
    def json_type(self) -> str:
        return JSON_TYPES.get(self.data_type, "string")

    @property
    def max_length(self) -> int:
        return self.length or DEFAULT_LENGTHS.get(self.data_type, 255)


@dataclass
class Module:
    api_name: str
    singular: str
    id: str
    fields: dict[str, FieldDef] = field(default_factory=dict)

    def add(self, definition: FieldDef) -> FieldDef:
        self.fields[definition.api_name] = definition
        return definition


def _f(api_name: str, data_type: str = "text", **kwargs: Any) -> FieldDef:
    return FieldDef(api_name, kwargs.pop("label", api_name.replace("_", " ")), data_type, **kwargs)


LEAD_SOURCES = (
    "-None-",
    "Advertisement",
    "Cold Call",
    "Employee Referral",
    "External Referral",
    "Online Store",
    "Partner",
    "Public Relations",
    "Sales Email Alias",
    "Seminar Partner",
    "Internal Seminar",
    "Trade Show",
    "Web Download",
    "Web Research",
    "Chat",
)
LEAD_STATUSES = (
    "-None-",
    "Attempted to Contact",
    "Contact in Future",
    "Contacted",
    "Junk Lead",
    "Lost Lead",
    "Not Contacted",
    "Pre-Qualified",
    "Not Qualified",
)
INDUSTRIES = (
    "-None-",
    "ASP (Application Service Provider)",
    "Data/Telecom OEM",
    "ERP (Enterprise Resource Planning)",
    "Government/Military",
    "Large Enterprise",
    "ManagementISV",
    "MSP (Management Service Provider)",
    "Network Equipment Enterprise",
    "Non-management ISV",
    "Optical Networking",
    "Service Provider",
    "Small/Medium Enterprise",
    "Storage Equipment",
    "Storage Service Provider",
    "Systems Integrator",
    "Wireless Industry",
    "Education",
    "Financial Services",
    "Healthcare",
    "Real Estate",
    "Technology",
    "Other",
)
RATINGS = ("-None-", "Acquired", "Active", "Market Failed", "Project Cancelled", "Shut Down")
STAGES = (
    "Qualification",
    "Needs Analysis",
    "Value Proposition",
    "Identify Decision Makers",
    "Proposal/Price Quote",
    "Negotiation/Review",
    "Closed Won",
    "Closed Lost",
    "Closed-Lost to Competition",
)
TASK_STATUSES = ("Not Started", "Deferred", "In Progress", "Completed", "Waiting for input")
PRIORITIES = ("High", "Highest", "Low", "Lowest", "Normal")


def _system_fields() -> list[FieldDef]:
    return [
        _f("Owner", "ownerlookup", label="Owner", lookup_module="users"),
        _f("Created_By", "ownerlookup", read_only=True, lookup_module="users"),
        _f("Modified_By", "ownerlookup", read_only=True, lookup_module="users"),
        _f("Created_Time", "datetime", read_only=True),
        _f("Modified_Time", "datetime", read_only=True),
    ]


def _person_fields(lead: bool) -> list[FieldDef]:
    rows = [
        _f("First_Name", length=40),
        _f("Last_Name", length=80, mandatory=True),
        _f("Full_Name", read_only=True),
        _f("Email", "email"),
        _f("Secondary_Email", "email"),
        _f("Phone", "phone"),
        _f("Mobile", "phone"),
        _f("Lead_Source", "picklist", options=LEAD_SOURCES),
        _f("Description", "textarea"),
        _f("Email_Opt_Out", "boolean"),
    ]
    if lead:
        rows += [
            _f("Company", length=200, mandatory=True),
            _f("Designation", label="Title", length=100),
            _f("Lead_Status", "picklist", options=LEAD_STATUSES),
            _f("Industry", "picklist", options=INDUSTRIES),
            _f("Rating", "picklist", options=RATINGS),
            _f("Website", "website"),
            _f("Annual_Revenue", "currency"),
            _f("No_of_Employees", "integer"),
            _f("City", length=100),
            _f("State", length=100),
            _f("Country", length=100),
        ]
    else:
        rows += [
            _f("Title", length=100),
            _f("Department", length=100),
            _f("Account_Name", "lookup", lookup_module="Accounts"),
            _f("Date_of_Birth", "date"),
            _f("Mailing_City", length=100),
            _f("Mailing_State", length=100),
            _f("Mailing_Country", length=100),
        ]
    return rows


def _activity_links() -> list[FieldDef]:
    # Who_Id is a Contact; What_Id points at the module named by $se_module (Leads, Deals, Accounts…).
    return [
        _f("Who_Id", "lookup", label="Contact Name", lookup_module="Contacts"),
        _f("What_Id", "lookup", label="Related To"),
        _f("$se_module", "text", label="Related Module", length=100),
        _f("Description", "textarea"),
    ]


def standard_modules(next_id: Callable[[], str]) -> dict[str, Module]:
    """Fresh module definitions; ``next_id()`` gives Zoho-style numeric ids."""
    layout: dict[str, list[FieldDef]] = {
        "Leads": _person_fields(lead=True),
        "Contacts": _person_fields(lead=False),
        "Accounts": [
            _f("Account_Name", length=200, mandatory=True),
            _f("Website", "website"),
            _f("Phone", "phone"),
            _f("Industry", "picklist", options=INDUSTRIES),
        ],
        "Deals": [
            _f("Deal_Name", length=120, mandatory=True),
            _f("Stage", "picklist", options=STAGES, mandatory=True),
            _f("Closing_Date", "date", mandatory=True),
            _f("Amount", "currency"),
            _f("Currency", "picklist", options=("USD",)),
            _f("Contact_Name", "lookup", lookup_module="Contacts"),
            _f("Account_Name", "lookup", lookup_module="Accounts"),
            _f("Pipeline", "picklist", options=("Standard (Standard)",)),
            _f("Lead_Source", "picklist", options=LEAD_SOURCES),
            _f("Description", "textarea"),
        ],
        "Tasks": [
            _f("Subject", length=255, mandatory=True),
            _f("Due_Date", "date"),
            _f("Status", "picklist", options=TASK_STATUSES),
            _f("Priority", "picklist", options=PRIORITIES),
            *_activity_links(),
        ],
        "Calls": [
            _f("Subject", length=255, mandatory=True),
            _f("Call_Type", "picklist", options=("Outbound", "Inbound", "Missed"), mandatory=True),
            _f("Call_Start_Time", "datetime", mandatory=True),
            _f("Call_Duration", length=10),
            _f("Call_Purpose", "picklist", options=("-None-", "Prospecting", "Administrative", "Negotiation", "Demo")),
            *_activity_links(),
        ],
        "Events": [
            _f("Event_Title", length=255, mandatory=True),
            _f("Start_DateTime", "datetime", mandatory=True),
            _f("End_DateTime", "datetime", mandatory=True),
            _f("Venue", length=255),
            *_activity_links(),
        ],
        "Notes": [
            _f("Note_Title", length=120),
            _f("Note_Content", "textarea", mandatory=True),
            _f("Parent_Id", "lookup", mandatory=True),
        ],
    }
    singular = {
        "Leads": "Lead",
        "Contacts": "Contact",
        "Accounts": "Account",
        "Deals": "Deal",
        "Tasks": "Task",
        "Calls": "Call",
        "Events": "Event",
        "Notes": "Note",
    }
    modules = {}
    for name, rows in layout.items():
        module = Module(name, singular[name], next_id())
        for definition in [*rows, *_system_fields()]:
            definition.id = next_id()
            module.add(definition)
        modules[name] = module
    return modules


def custom_api_name(label: str) -> str:
    """The API name Zoho derives from a new field's label: words joined by underscores."""
    cleaned = re.sub(r"[^A-Za-z0-9 _]", "", label).strip()
    return re.sub(r"[ _]+", "_", cleaned)


# -- values -----------------------------------------------------------------------------------------------


def _text(definition: FieldDef, value: Any, index: int) -> str:
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise invalid_data(index, definition.api_name, expected_data_type=definition.data_type)
    text = str(value)
    if len(text) > definition.max_length:
        raise invalid_data(index, definition.api_name, maximum_length=str(definition.max_length))
    return text


def check_value(definition: FieldDef, value: Any, index: int) -> Any:
    """The stored form of ``value`` for a field, or the INVALID_DATA Zoho answers for it."""
    kind, name = definition.data_type, definition.api_name
    if value is None or value == "":
        return None
    if kind == "email":
        text = _text(definition, value, index)
        if not EMAIL_RE.match(text):
            raise invalid_data(index, name, expected_data_type="email")
        return text
    if kind == "picklist":
        text = _text(definition, value, index)
        if definition.options and text not in definition.options:
            raise invalid_data(index, name, expected_data_type="picklist")
        return text
    if kind in ("text", "textarea", "phone", "website"):
        return _text(definition, value, index)
    if kind in ("integer", "bigint"):
        if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, str) and value.isdigit())):
            raise invalid_data(index, name, expected_data_type="integer")
        return int(value)
    if kind in ("double", "currency"):
        if isinstance(value, bool):
            raise invalid_data(index, name, expected_data_type=kind)
        try:
            return float(value)
        except (TypeError, ValueError):
            raise invalid_data(index, name, expected_data_type=kind) from None
    if kind == "boolean":
        if not isinstance(value, bool):
            raise invalid_data(index, name, expected_data_type="boolean")
        return value
    if kind == "date":
        if not isinstance(value, str) or not DATE_RE.match(value):
            raise invalid_data(index, name, expected_data_type="date")
        return value
    if kind == "datetime":
        if not isinstance(value, str) or not DATETIME_RE.match(value):
            raise invalid_data(index, name, expected_data_type="datetime")
        return value
    if kind == "multiselectpicklist":
        if not isinstance(value, list) or any(definition.options and v not in definition.options for v in value):
            raise invalid_data(index, name, expected_data_type="multiselectpicklist")
        return list(value)
    return value  # lookups are resolved by the store, which knows the other records


def parse_time(value: str) -> dt.datetime:
    """A Zoho datetime (or COQL literal) as an aware datetime; ValueError when it is not one."""
    moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"{value!r} has no UTC offset")
    return moment


def format_time(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).replace(microsecond=0).isoformat()
