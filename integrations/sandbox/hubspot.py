"""HubSpot sandbox: a loopback emulator of one HubSpot portal (CRM v3 objects, v4 associations, OAuth).

Built on ``integrations.sandbox.core``. The wire format follows HubSpot's OpenAPI documents in
``shared/specs/hubspot`` (paths, envelopes, response shapes; the tests validate every answer
against them) and the facts in ``shared/crm-reference.md`` §2:

- OAuth 2 (§2.1): ``/oauth/authorize`` consent page, ``/oauth/v1/token`` and ``/oauth/v3/token``
  (code with PKCE, refresh, optional rotation), v3 introspect/revoke, and the v1 token-info routes
  the connector reads the portal identity from. Private-app tokens never expire.
- CRM objects (§2.2, §2.4): contacts, companies, deals, notes, tasks, calls, meetings, emails and
  leads under ``/crm/v3/objects/{type}`` (by name or type id such as ``0-1``): CRUD, search,
  batch create/read/update/upsert/archive (≤100 inputs, 207 on partial failure), merge,
  GDPR delete. Every property value on the wire is a string; ids are numeric strings.
- Properties (§2.3) with HubSpot-defined and custom definitions; writes are validated against them.
- Associations v4 with HubSpot-defined type ids, owners, deal and lead pipelines.
- Account information (``/account-info/v3/details``): the portal of any token, private-app ones
  included.
- Rate limits (§2.5): a rolling 10-second window per app (OAuth) or per private-app token, a daily
  budget per portal, and the tighter search limit; ``X-HubSpot-RateLimit-*`` headers.
- Webhooks (§2.7): signed (v3 and v1) event batches sent to a target URL, and a change log that
  says who wrote each property value, for echo suppression.

Where HubSpot's behaviour is not documented (see crm-reference §12) the choice made here is
written next to the code.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import hmac
import itertools
import json
import math
import re
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlencode

from integrations.sandbox.core import (
    EmulatorApp,
    IssuedToken,
    OAuthClient,
    OAuthServer,
    Request,
    Response,
    SlidingWindowLimiter,
)

# ---------------------------------------------------------------------------------------------
# Object types


@dataclass(frozen=True)
class ObjectType:
    name: str  # plural, as in /crm/v3/objects/{name}
    type_id: str  # HubSpot's object type id, e.g. "0-1"
    singular: str  # webhook subscriptionType prefix and association type names
    label: str  # HubSpot's upper-case name, used in error messages
    modified_property: str  # contacts keep "lastmodifieddate", every other object "hs_lastmodifieddate"
    default_properties: tuple[str, ...]  # returned when a read names no properties
    scope: str  # the scope family: engagements use the contacts scopes [spec: notes.json security]

    @property
    def group(self) -> str:
        return f"{self.singular}information"

    @property
    def always_returned(self) -> tuple[str, ...]:
        """Returned on every read even when ``properties`` names others (HubSpot's record identity and times)."""
        created = "createdate" if self.name in HAS_CREATEDATE else "hs_createdate"
        return (created, "hs_object_id", self.modified_property)


_ENGAGEMENT_DEFAULTS = ("hs_createdate", "hs_lastmodifieddate", "hs_object_id")
OBJECT_TYPES: dict[str, ObjectType] = {
    t.name: t
    for t in (
        ObjectType(
            "contacts",
            "0-1",
            "contact",
            "CONTACT",
            "lastmodifieddate",
            ("createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname"),
            "contacts",
        ),
        ObjectType(
            "companies",
            "0-2",
            "company",
            "COMPANY",
            "hs_lastmodifieddate",
            ("createdate", "domain", "hs_lastmodifieddate", "hs_object_id", "name"),
            "companies",
        ),
        ObjectType(
            "deals",
            "0-3",
            "deal",
            "DEAL",
            "hs_lastmodifieddate",
            (
                "amount",
                "closedate",
                "createdate",
                "dealname",
                "dealstage",
                "hs_lastmodifieddate",
                "hs_object_id",
                "pipeline",
            ),
            "deals",
        ),
        ObjectType("notes", "0-46", "note", "NOTE", "hs_lastmodifieddate", _ENGAGEMENT_DEFAULTS, "contacts"),
        ObjectType("tasks", "0-27", "task", "TASK", "hs_lastmodifieddate", _ENGAGEMENT_DEFAULTS, "contacts"),
        ObjectType("calls", "0-48", "call", "CALL", "hs_lastmodifieddate", _ENGAGEMENT_DEFAULTS, "contacts"),
        ObjectType(
            "meetings", "0-47", "meeting", "MEETING_EVENT", "hs_lastmodifieddate", _ENGAGEMENT_DEFAULTS, "contacts"
        ),
        ObjectType("emails", "0-49", "email", "EMAIL", "hs_lastmodifieddate", _ENGAGEMENT_DEFAULTS, "contacts"),
        ObjectType("leads", "0-136", "lead", "LEAD", "hs_lastmodifieddate", _ENGAGEMENT_DEFAULTS, "leads"),
    )
}
ENGAGEMENTS = ("notes", "tasks", "calls", "meetings", "emails")
# HubSpot's own option values of the task property hs_task_type; "TODO" is the to-do task type,
# not a marker of unfinished work (https://developers.hubspot.com/docs/api/crm/tasks).
HS_TASK_TYPES = ("TODO", "CALL", "EMAIL", "LINKED_IN")
# Contacts, companies and deals carry `createdate`; every object but contacts carries `hs_createdate`.
HAS_CREATEDATE = ("contacts", "companies", "deals")
# HubSpot accepts the plural, the singular and the type id wherever an object type is named.
_TYPE_ALIASES: dict[str, str] = {
    alias: t.name for t in OBJECT_TYPES.values() for alias in (t.name, t.singular, t.type_id, t.label.lower())
}

# ---------------------------------------------------------------------------------------------
# Association types (HubSpot-defined ids; GET /crm/v4/associations/{from}/{to}/labels lists them)


@dataclass(frozen=True)
class AssociationType:
    from_type: str
    to_type: str
    type_id: int
    inverse_id: int
    label: str | None = None  # None: the pair's unlabeled default
    category: str = "HUBSPOT_DEFINED"


# (from, to, id, inverse id, label). Ids as HubSpot documents them; lead ids come from the leads
# guide (578) with the inverse and company pair assumed (crm-reference §12 lists ids as UNVERIFIED).
_HUBSPOT_DEFINED = [
    ("contacts", "companies", 279, 280, None),
    ("contacts", "companies", 1, 2, "Primary"),
    ("deals", "contacts", 3, 4, None),
    ("deals", "companies", 341, 342, None),
    ("deals", "companies", 5, 6, "Primary"),
    ("notes", "contacts", 202, 201, None),
    ("notes", "companies", 190, 189, None),
    ("notes", "deals", 214, 213, None),
    ("tasks", "contacts", 204, 203, None),
    ("tasks", "companies", 192, 191, None),
    ("tasks", "deals", 216, 215, None),
    ("calls", "contacts", 194, 193, None),
    ("calls", "companies", 182, 181, None),
    ("calls", "deals", 206, 205, None),
    ("meetings", "contacts", 200, 199, None),
    ("meetings", "companies", 188, 187, None),
    ("meetings", "deals", 212, 211, None),
    ("emails", "contacts", 198, 197, None),
    ("emails", "companies", 186, 185, None),
    ("emails", "deals", 210, 209, None),
    ("leads", "contacts", 578, 579, "Primary"),
    ("leads", "companies", 580, 581, "Primary"),
]


def _builtin_association_types() -> list[AssociationType]:
    types = []
    for from_type, to_type, type_id, inverse_id, label in _HUBSPOT_DEFINED:
        types.append(AssociationType(from_type, to_type, type_id, inverse_id, label))
        types.append(AssociationType(to_type, from_type, inverse_id, type_id, label))
    return types


# ---------------------------------------------------------------------------------------------
# Property definitions (the Properties API's `Property` shape, spec: properties.json)

PROPERTY_TYPES = {
    # type -> the fieldTypes HubSpot allows with it
    "string": {"text", "textarea", "html", "phonenumber", "file"},
    "number": {"number", "calculation_equation"},
    "date": {"date"},
    "datetime": {"date"},
    "enumeration": {"select", "radio", "checkbox", "booleancheckbox", "calculation_equation"},
    "bool": {"booleancheckbox", "calculation_equation"},
    "phone_number": {"phonenumber"},
}
# The operators of the spec's Filter schema (contacts.json).
SEARCH_OPERATORS = frozenset(
    "EQ NEQ LT LTE GT GTE BETWEEN IN NOT_IN HAS_PROPERTY NOT_HAS_PROPERTY CONTAINS_TOKEN NOT_CONTAINS_TOKEN".split()
)
_PROPERTY_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_EMAIL = re.compile(r"^[^@\s\"]+@[^@\s\"]+\.[A-Za-z]{2,}$")
EPOCH = "1970-01-01T00:00:00.000Z"


def _options(*values: str | tuple[str, str]) -> list[dict[str, Any]]:
    result = []
    for order, value in enumerate(values):
        name, label = value if isinstance(value, tuple) else (value, value.replace("_", " ").title())
        result.append({"label": label, "value": name, "displayOrder": order, "hidden": False, "description": ""})
    return result


def _definition(
    name: str,
    label: str,
    type_: str,
    field_type: str,
    group: str,
    *,
    options: list | None = None,
    read_only: bool = False,
    calculated: bool = False,
    unique: bool = False,
    external_options: bool = False,
    referenced: str | None = None,
    hubspot_defined: bool = True,
    description: str = "",
    display_order: int = -1,
) -> dict[str, Any]:
    definition = {
        "name": name,
        "label": label,
        "type": type_,
        "fieldType": field_type,
        "description": description,
        "groupName": group,
        "options": options or [],
        "displayOrder": display_order,
        "calculated": calculated,
        "externalOptions": external_options,
        "hasUniqueValue": unique,
        "hidden": False,
        "hubspotDefined": hubspot_defined,
        "formField": not read_only,
        "archived": False,
        "createdAt": EPOCH,
        "updatedAt": EPOCH,
        "modificationMetadata": {
            "archivable": not hubspot_defined,
            "readOnlyDefinition": hubspot_defined,
            "readOnlyValue": read_only or calculated,
        },
        "dataSensitivity": "non_sensitive",
    }
    if referenced:
        definition["referencedObjectType"] = referenced
    return definition


LIFECYCLE_STAGES = _options(
    ("subscriber", "Subscriber"),
    ("lead", "Lead"),
    ("marketingqualifiedlead", "Marketing Qualified Lead"),
    ("salesqualifiedlead", "Sales Qualified Lead"),
    ("opportunity", "Opportunity"),
    ("customer", "Customer"),
    ("evangelist", "Evangelist"),
    ("other", "Other"),
)


def _standard_properties(otype: ObjectType) -> dict[str, dict[str, Any]]:
    g = otype.group
    text = "string", "text"
    area = "string", "textarea"
    when = "datetime", "date"
    props: list[dict[str, Any]] = [
        _definition("hs_object_id", "Record ID", "number", "number", g, read_only=True),
        _definition(
            "hubspot_owner_id",
            f"{otype.singular.title()} owner",
            "enumeration",
            "select",
            g,
            external_options=True,
            referenced="OWNER",
        ),
        _definition(otype.modified_property, "Last Modified Date", *when, g, read_only=True),
    ]
    if otype.name in HAS_CREATEDATE:
        props.append(_definition("createdate", "Create Date", *when, g))
    if otype.name != "contacts":
        props.append(_definition("hs_createdate", "Created at", *when, g, read_only=True))
    if otype.name == "contacts":
        props += [
            _definition("firstname", "First Name", *text, g),
            _definition("lastname", "Last Name", *text, g),
            _definition("email", "Email", *text, g, unique=True),
            _definition("phone", "Phone Number", "string", "phonenumber", g),
            _definition("mobilephone", "Mobile Phone Number", "string", "phonenumber", g),
            _definition("company", "Company Name", *text, g),
            _definition("jobtitle", "Job Title", *text, g),
            _definition("website", "Website URL", *text, g),
            _definition("address", "Street Address", *text, g),
            _definition("city", "City", *text, g),
            _definition("state", "State/Region", *text, g),
            _definition("zip", "Postal Code", *text, g),
            _definition("country", "Country/Region", *text, g),
            _definition("lifecyclestage", "Lifecycle Stage", "enumeration", "radio", g, options=LIFECYCLE_STAGES),
            _definition(
                "hs_lead_status",
                "Lead Status",
                "enumeration",
                "select",
                g,
                options=_options(
                    "NEW",
                    "OPEN",
                    "IN_PROGRESS",
                    "OPEN_DEAL",
                    "UNQUALIFIED",
                    "ATTEMPTED_TO_CONTACT",
                    "CONNECTED",
                    "BAD_TIMING",
                ),
            ),
            _definition(
                "hs_additional_emails", "Additional email addresses", "enumeration", "checkbox", g, read_only=True
            ),
            _definition("hs_merged_object_ids", "Merged Contact IDs", "enumeration", "checkbox", g, read_only=True),
            _definition("num_associated_deals", "Associated Deals", "number", "number", g, calculated=True),
        ]
    elif otype.name == "companies":
        props += [
            _definition("name", "Company name", *text, g),
            _definition("domain", "Company Domain Name", *text, g),
            _definition("website", "Website URL", *text, g),
            _definition("phone", "Phone Number", "string", "phonenumber", g),
            _definition("city", "City", *text, g),
            _definition("country", "Country/Region", *text, g),
            _definition("industry", "Industry", *text, g),
            _definition("numberofemployees", "Number of Employees", "number", "number", g),
            _definition("annualrevenue", "Annual Revenue", "number", "number", g),
            _definition("lifecyclestage", "Lifecycle Stage", "enumeration", "radio", g, options=LIFECYCLE_STAGES),
            _definition("hs_merged_object_ids", "Merged Company IDs", "enumeration", "checkbox", g, read_only=True),
        ]
    elif otype.name == "deals":
        props += [
            _definition("dealname", "Deal Name", *text, g),
            _definition("amount", "Amount", "number", "number", g),
            _definition("closedate", "Close Date", *when, g),
            _definition("pipeline", "Pipeline", "enumeration", "select", g, external_options=True),
            _definition("dealstage", "Deal Stage", "enumeration", "radio", g, external_options=True),
            # The portal's currencies (company currency plus the additional ones set on the instance).
            _definition("deal_currency_code", "Currency", "enumeration", "select", g, options=_options("USD")),
            _definition(
                "dealtype",
                "Deal Type",
                "enumeration",
                "radio",
                g,
                options=_options(("newbusiness", "New Business"), ("existingbusiness", "Existing Business")),
            ),
            _definition("description", "Deal Description", *area, g),
            _definition(
                "hs_is_closed",
                "Is Deal Closed?",
                "bool",
                "booleancheckbox",
                g,
                calculated=True,
                options=_options(("true", "Yes"), ("false", "No")),
            ),
            _definition("hs_merged_object_ids", "Merged Deal IDs", "enumeration", "checkbox", g, read_only=True),
        ]
    elif otype.name == "leads":
        props += [
            _definition("hs_lead_name", "Lead name", *text, g),
            _definition(
                "hs_lead_type",
                "Lead type",
                "enumeration",
                "select",
                g,
                options=_options(
                    ("NEW_BUSINESS", "New Business"), ("UPSELL", "Upsell"), ("RE_ATTEMPTING", "Re-attempting")
                ),
            ),
            _definition(
                "hs_lead_label", "Lead label", "enumeration", "select", g, options=_options("HOT", "WARM", "COLD")
            ),
            _definition("hs_pipeline", "Pipeline", "enumeration", "select", g, external_options=True),
            _definition("hs_pipeline_stage", "Lead stage", "enumeration", "select", g, external_options=True),
        ]
    else:  # engagements share hs_timestamp (required) [crm-reference §2.4]
        props.append(_definition("hs_timestamp", "Activity date", *when, g))
        props.append(_definition("hs_attachment_ids", "Attached file IDs", "enumeration", "checkbox", g))
        props += {
            "notes": [_definition("hs_note_body", "Note body", "string", "html", g)],
            "tasks": [
                _definition("hs_task_subject", "Task Title", *text, g),
                _definition("hs_task_body", "Notes", "string", "html", g),
                _definition(
                    "hs_task_status",
                    "Task Status",
                    "enumeration",
                    "select",
                    g,
                    options=_options("NOT_STARTED", "IN_PROGRESS", "WAITING", "COMPLETED", "DEFERRED"),
                ),
                _definition(
                    "hs_task_priority",
                    "Priority",
                    "enumeration",
                    "select",
                    g,
                    options=_options("NONE", "LOW", "MEDIUM", "HIGH"),
                ),
                _definition(
                    "hs_task_type",
                    "Task Type",
                    "enumeration",
                    "select",
                    g,
                    options=_options(*HS_TASK_TYPES),
                ),
            ],
            "calls": [
                _definition("hs_call_title", "Call Title", *text, g),
                _definition("hs_call_body", "Call notes", "string", "html", g),
                _definition("hs_call_duration", "Call duration (ms)", "number", "number", g),
                _definition(
                    "hs_call_direction",
                    "Call direction",
                    "enumeration",
                    "select",
                    g,
                    options=_options("INBOUND", "OUTBOUND"),
                ),
                _definition(
                    "hs_call_status",
                    "Call status",
                    "enumeration",
                    "select",
                    g,
                    options=_options(
                        "BUSY",
                        "CALLING_CRM_USER",
                        "CANCELED",
                        "COMPLETED",
                        "CONNECTING",
                        "FAILED",
                        "IN_PROGRESS",
                        "NO_ANSWER",
                        "QUEUED",
                        "RINGING",
                    ),
                ),
                _definition("hs_call_disposition", "Call outcome", *text, g),
                _definition("hs_call_from_number", "From number", *text, g),
                _definition("hs_call_to_number", "To number", *text, g),
            ],
            "meetings": [
                _definition("hs_meeting_title", "Meeting name", *text, g),
                _definition("hs_meeting_body", "Meeting description", "string", "html", g),
                _definition("hs_internal_meeting_notes", "Internal notes", "string", "html", g),
                _definition("hs_meeting_external_url", "External URL", *text, g),
                _definition("hs_meeting_location", "Location", *text, g),
                _definition("hs_meeting_start_time", "Start Time", *when, g),
                _definition("hs_meeting_end_time", "End Time", *when, g),
                _definition(
                    "hs_meeting_outcome",
                    "Meeting outcome",
                    "enumeration",
                    "select",
                    g,
                    options=_options("SCHEDULED", "COMPLETED", "RESCHEDULED", "NO_SHOW", "CANCELED"),
                ),
            ],
            "emails": [
                _definition("hs_email_subject", "Email subject", *text, g),
                _definition("hs_email_text", "Email body (text)", *area, g),
                _definition("hs_email_html", "Email body (HTML)", "string", "html", g),
                _definition(
                    "hs_email_direction",
                    "Email direction",
                    "enumeration",
                    "select",
                    g,
                    options=_options("EMAIL", "INCOMING_EMAIL", "FORWARDED_EMAIL"),
                ),
                _definition(
                    "hs_email_status",
                    "Email send status",
                    "enumeration",
                    "select",
                    g,
                    options=_options("BOUNCED", "FAILED", "SCHEDULED", "SENDING", "SENT"),
                ),
            ],
        }[otype.name]
    for order, definition in enumerate(props):
        definition["displayOrder"] = order
    return {d["name"]: d for d in props}


# Required on create: engagements need hs_timestamp [crm-reference §2.4]; leads need a name and a
# contact association [doc: developers.hubspot.com crm-leads-v3 guide].
REQUIRED_ON_CREATE = {**{name: ("hs_timestamp",) for name in ENGAGEMENTS}, "leads": ("hs_lead_name",)}

# ---------------------------------------------------------------------------------------------
# Owners and pipelines


def default_owners() -> list[dict[str, Any]]:
    people = [("Ava", "Hart", "ava.hart"), ("Ben", "Okafor", "ben.okafor"), ("Chloe", "Martin", "chloe.martin")]
    return [
        {
            "id": str(75_000_001 + n),
            "email": f"{handle}@capsule-sandbox.example.com",
            "firstName": first,
            "lastName": last,
            "userId": 9_100_001 + n,
            "userIdIncludingInactive": 9_100_001 + n,
            "type": "PERSON",
            "createdAt": "2024-01-02T09:00:00.000Z",
            "updatedAt": "2024-01-02T09:00:00.000Z",
            "archived": False,
            "teams": [{"id": "4100", "name": "Sales", "primary": True}],
        }
        for n, (first, last, handle) in enumerate(people)
    ]


def _stage(stage_id: str, label: str, order: int, metadata: dict[str, str]) -> dict[str, Any]:
    return {
        "id": stage_id,
        "label": label,
        "displayOrder": order,
        "metadata": metadata,
        "createdAt": EPOCH,
        "updatedAt": EPOCH,
        "archived": False,
        "writePermissions": "CRM_PERMISSIONS_ENFORCEMENT",
    }


def default_pipelines() -> dict[str, list[dict[str, Any]]]:
    deal_stages = [
        ("appointmentscheduled", "Appointment Scheduled", "0.2"),
        ("qualifiedtobuy", "Qualified To Buy", "0.4"),
        ("presentationscheduled", "Presentation Scheduled", "0.6"),
        ("decisionmakerboughtin", "Decision Maker Bought-In", "0.8"),
        ("contractsent", "Contract Sent", "0.9"),
        ("closedwon", "Closed Won", "1.0"),
        ("closedlost", "Closed Lost", "0.0"),
    ]
    lead_stages = [
        ("new-stage-id", "New"),
        ("attempting-stage-id", "Attempting"),
        ("connected-stage-id", "Connected"),
        ("qualified-stage-id", "Qualified"),
        ("unqualified-stage-id", "Disqualified"),
    ]
    return {
        "deals": [
            {
                "id": "default",
                "label": "Sales Pipeline",
                "displayOrder": 0,
                "archived": False,
                "createdAt": EPOCH,
                "updatedAt": EPOCH,
                "stages": [
                    _stage(sid, label, n, {"isClosed": str(sid.startswith("closed")).lower(), "probability": prob})
                    for n, (sid, label, prob) in enumerate(deal_stages)
                ],
            }
        ],
        "leads": [
            {
                "id": "lead-pipeline-id",
                "label": "Lead pipeline",
                "displayOrder": 0,
                "archived": False,
                "createdAt": EPOCH,
                "updatedAt": EPOCH,
                "stages": [
                    _stage(sid, label, n, {"isClosed": str(n >= 3).lower()})
                    for n, (sid, label) in enumerate(lead_stages)
                ],
            }
        ],
    }


# ---------------------------------------------------------------------------------------------
# Small helpers


def now_ms() -> int:
    return int(time.time() * 1000)


def iso(ms: int) -> str:
    """HubSpot's timestamp format: ISO-8601 UTC with milliseconds and ``Z``."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def parse_time_ms(value: str) -> int | None:
    """Epoch milliseconds from an epoch-ms string, an ISO date or an ISO date-time (None if neither)."""
    value = value.strip()
    if re.fullmatch(r"-?\d+", value):
        return int(value)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


def _whole(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def correlation_id() -> str:
    return str(uuid.uuid4())


class ApiError(Exception):
    """A HubSpot error answer (spec `Error`); batch routes turn it into a `StandardError` entry."""

    def __init__(
        self,
        status: int,
        category: str,
        message: str,
        *,
        context: dict[str, list[str]] | None = None,
        errors: list[dict[str, Any]] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.category, self.message = status, category, message
        self.context, self.errors, self.extra = context or {}, errors or [], extra or {}

    def response(self, headers: dict[str, str] | None = None) -> Response:
        body: dict[str, Any] = {
            "status": "error",
            "message": self.message,
            "correlationId": correlation_id(),
            "category": self.category,
        }
        if self.context:
            body["context"] = self.context
        if self.errors:
            body["errors"] = self.errors
        body.update(self.extra)
        return Response.json(body, status=self.status, headers=headers)

    def standard_error(self, context: dict[str, list[str]]) -> dict[str, Any]:
        return {
            "status": "error",
            "category": self.category,
            "message": self.message,
            "context": {**self.context, **context},
            "errors": self.errors,
            "links": {},
        }


@dataclass
class PropertyProblem:
    name: str
    error: str  # HubSpot's code: PROPERTY_DOESNT_EXIST, INVALID_OPTION, INVALID_EMAIL, ...
    message: str


def validation_error(problems: list[PropertyProblem], portal_id: int) -> ApiError:
    """HubSpot's "Property values were not valid" answer: a JSON list inside the message, plus errors[]."""
    results = [
        {
            "isValid": False,
            "message": p.message,
            "error": p.error,
            "name": p.name,
            "localizedErrorMessage": p.message,
            "portalId": portal_id,
        }
        for p in problems
    ]
    return ApiError(
        400,
        "VALIDATION_ERROR",
        "Property values were not valid: " + json.dumps(results, separators=(",", ":")),
        context={"propertyName": sorted({p.name for p in problems})},
        errors=[{"message": p.message, "code": p.error, "context": {"propertyName": [p.name]}} for p in problems],
    )


def sign_v3(client_secret: str, method: str, uri: str, body: bytes | str, timestamp_ms: int) -> str:
    """X-HubSpot-Signature-v3: base64(HMAC-SHA256(secret, METHOD + URI + body + timestamp)) [crm-ref §2.7].

    HubSpot decodes a few percent-escapes in the URI before signing; we sign the same decoded form.
    """
    for escaped, char in (
        ("%3A", ":"),
        ("%2F", "/"),
        ("%3F", "?"),
        ("%40", "@"),
        ("%21", "!"),
        ("%24", "$"),
        ("%27", "'"),
        ("%28", "("),
        ("%29", ")"),
        ("%2A", "*"),
        ("%2C", ","),
        ("%3B", ";"),
    ):
        uri = uri.replace(escaped, char).replace(escaped.lower(), char)
    raw = body.decode() if isinstance(body, bytes) else body
    message = f"{method.upper()}{uri}{raw}{timestamp_ms}".encode()
    return base64.b64encode(hmac.new(client_secret.encode(), message, hashlib.sha256).digest()).decode()


# ---------------------------------------------------------------------------------------------
# Records, tokens, changes


@dataclass
class _Record:
    id: str
    object_type: str
    properties: dict[str, str]
    created_ms: int
    updated_ms: int
    archived: bool = False
    archived_ms: int | None = None
    history: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


@dataclass(frozen=True)
class PrivateApp:
    token: str
    app_id: int
    scopes: tuple[str, ...]


@dataclass(frozen=True)
class Change:
    """One write seen by the portal, with who made it (for echo suppression of inbound webhooks)."""

    object_type: str
    object_id: str
    property: str | None  # None for creation/deletion/merge/privacyDeletion
    value: str | None
    source: str  # "INTEGRATION" for API writes, "CRM_UI" for edit_in_ui()
    source_id: str | None  # the writing app's id (API) or "userId:N" (UI)
    at: int  # epoch ms
    kind: str = "propertyChange"  # creation | propertyChange | deletion | merge | privacyDeletion
    extra: tuple[tuple[str, Any], ...] = ()


DEFAULT_SCOPES = (
    "oauth",
    "crm.objects.contacts.read",
    "crm.objects.contacts.write",
    "crm.objects.companies.read",
    "crm.objects.companies.write",
    "crm.objects.deals.read",
    "crm.objects.deals.write",
    "crm.objects.leads.read",
    "crm.objects.leads.write",
    "crm.objects.owners.read",
    "crm.schemas.contacts.read",
    "crm.schemas.contacts.write",
    "crm.schemas.companies.read",
    "crm.schemas.companies.write",
    "crm.schemas.deals.read",
    "crm.schemas.deals.write",
)

_OAUTH_ERRORS = {
    # core error code -> (HubSpot status, message) [3p: HubSpot token endpoint answers seen in the wild]
    "invalid_client": ("BAD_CLIENT_ID", "missing or unknown client id"),
    "unsupported_grant_type": ("BAD_GRANT_TYPE", "missing or unknown grant type"),
}


class HubSpotEmulator(EmulatorApp):
    """One HubSpot portal on loopback. See the module docstring for what it covers.

    Constructor options (all keyword-only; defaults from crm-reference §2.5 and §2.1):
    hub_id, hub_domain, app_id, client_id, client_secret, redirect_uris, user_email, user_id,
    access_token_ttl (s), rotate_refresh_tokens, oauth_limit and private_app_limit (requests per
    ``window_seconds``), daily_limit, search_limit (requests per ``search_window`` seconds per
    token), max_batch_inputs, enforce_scopes (403 MISSING_SCOPES on CRM and schema routes),
    unset_properties_as_null (answer requested-but-empty properties as null, as HubSpot's docs say,
    instead of leaving them out as the spec's string-only schema implies), owners,
    server_error_status (500 or 502 for injected server errors), company_currency and
    additional_currencies (the options of deals' ``deal_currency_code``), time_zone,
    search_tie_order ("id", or "reverse_id" to return search results that share a sort value in
    descending id order: HubSpot promises no order among them).

    Counters for tests and benchmarks: ``api_calls``, ``calls_by_kind``, ``rate_limited_count``;
    the change log is ``changes``; ``gdpr_deleted`` holds erased or blocklisted emails.
    """

    name = "hubspot"
    display_name = "HubSpot"

    def __init__(
        self,
        *,
        hub_id: int = 62515,
        hub_domain: str | None = None,
        app_id: int = 1_234_567,
        client_id: str = "capsule-sandbox-client",
        client_secret: str = "capsule-sandbox-secret",
        redirect_uris: Iterable[str] = ("http://127.0.0.1:8000/oauth/callback/hubspot/",),
        user_email: str = "sandbox-admin@capsule-sandbox.example.com",
        user_id: int = 9_100_001,
        access_token_ttl: float = 1800,
        rotate_refresh_tokens: bool = False,
        oauth_limit: int = 100,
        private_app_limit: int = 190,
        window_seconds: float = 10.0,
        daily_limit: int = 250_000,
        search_limit: int = 5,
        search_window: float = 1.0,
        max_batch_inputs: int = 100,
        enforce_scopes: bool = False,
        unset_properties_as_null: bool = False,
        owners: list[dict[str, Any]] | None = None,
        server_error_status: int = 500,
        company_currency: str = "USD",
        additional_currencies: Iterable[str] = ("EUR", "GBP"),
        time_zone: str = "UTC",
        search_tie_order: str = "id",
    ) -> None:
        super().__init__()
        self.hub_id, self.app_id = hub_id, app_id
        self.hub_domain = hub_domain or f"capsule-sandbox-{hub_id}.hubspot.example.com"
        self.user_email, self.user_id = user_email, user_id
        self.oauth = OAuthServer(
            self, access_token_ttl=access_token_ttl, rotate_refresh_tokens=rotate_refresh_tokens, token_prefix="hs-"
        )
        self.client = self.register_client(client_id, client_secret, list(redirect_uris))
        self.oauth_limit, self.private_app_limit, self.window_seconds = oauth_limit, private_app_limit, window_seconds
        self.daily_limit, self.search_limit, self.search_window = daily_limit, search_limit, search_window
        self.max_batch_inputs = max_batch_inputs
        self.enforce_scopes = enforce_scopes
        self.unset_properties_as_null = unset_properties_as_null
        self.server_error_status = server_error_status
        self._initial_owners = owners
        self.company_currency, self.time_zone = company_currency, time_zone
        if search_tie_order not in ("id", "reverse_id"):
            raise ValueError("search_tie_order is 'id' or 'reverse_id'")
        self.search_tie_order = search_tie_order
        self.additional_currencies = [c for c in additional_currencies if c != company_currency]
        self.private_apps: dict[str, PrivateApp] = {}
        self._limiter_lock = threading.Lock()
        self._state_init()
        self._register_routes()

    # -- state -------------------------------------------------------------------------------------
    def _state_init(self) -> None:
        """Everything ``reset()`` forgets: records, custom definitions, counters, windows."""
        with self.lock:
            self._ids = itertools.count(101)  # one sequence for every type, so ids never collide across types
            self.records: dict[str, dict[str, _Record]] = {name: {} for name in OBJECT_TYPES}
            self.properties: dict[str, dict[str, dict[str, Any]]] = {
                name: _standard_properties(t) for name, t in OBJECT_TYPES.items()
            }
            self.properties["deals"]["deal_currency_code"]["options"] = _options(
                *((code, code) for code in (self.company_currency, *self.additional_currencies))
            )
            self.groups: dict[str, dict[str, dict[str, Any]]] = {
                name: {
                    t.group: {
                        "name": t.group,
                        "label": f"{t.singular.title()} information",
                        "displayOrder": 0,
                        "archived": False,
                    }
                }
                for name, t in OBJECT_TYPES.items()
            }
            self._unique: dict[tuple[str, str], dict[str, str]] = {}  # (type, property) -> value -> id
            self._merged_into: dict[str, str] = {}
            self.association_types: list[AssociationType] = _builtin_association_types()
            self._label_ids = itertools.count(1001)
            self._associations: dict[tuple[str, str, str, str], set[tuple[str, int]]] = {}
            self.owners = [dict(o) for o in (self._initial_owners or default_owners())]
            self.pipelines = default_pipelines()
            self.changes: list[Change] = []
            self.gdpr_deleted: set[str] = set()
            self._event_ids = itertools.count(1)
        with self._limiter_lock:
            # Rolling windows [crm-reference §2.5]: OAuth apps per app, private apps per token, search per token.
            self._oauth_window = SlidingWindowLimiter(self.oauth_limit, self.window_seconds)
            self._private_window = SlidingWindowLimiter(self.private_app_limit, self.window_seconds)
            self._search_window = SlidingWindowLimiter(self.search_limit, self.search_window)
            self._daily_count, self._daily_day = 0, self._today()
            self.api_calls = 0
            self.calls_by_kind: Counter[str] = Counter()
            self.rate_limited_count = 0

    def reset(self) -> None:
        """Forget records, custom properties, changes, counters and rate windows; keep clients and tokens."""
        super().reset()
        self._state_init()

    def state(self) -> dict[str, Any]:
        with self.lock:
            counts = {name: sum(1 for r in recs.values() if not r.archived) for name, recs in self.records.items()}
            changes = len(self.changes)
        with self._limiter_lock:
            calls = {
                "api_calls": self.api_calls,
                "calls_by_kind": dict(self.calls_by_kind),
                "rate_limited": self.rate_limited_count,
                "daily_used": self._daily_count,
            }
        return {**super().state(), "hub_id": self.hub_id, "objects": counts, "changes": changes, **calls}

    # -- routes ------------------------------------------------------------------------------------
    def _api(self, method: str, pattern: str, handler: Callable[[Request], Response], *, auth: bool = True) -> None:
        """Register a handler that runs under the store lock and answers ApiError in HubSpot's shape."""

        def run(request: Request) -> Response:
            try:
                with self.lock:
                    return handler(request)
            except ApiError as exc:
                return exc.response()

        self.route(method, pattern, run, auth=auth)

    def _register_routes(self) -> None:
        t, oid = r"(?P<object_type>[^/]+)", r"(?P<object_id>[^/]+)"
        # OAuth [crm-reference §2.1; spec oauth.json, oauth-v3/oauth.json]
        self._api("GET", r"/oauth/authorize", self._authorize, auth=False)
        self._api("POST", r"/oauth/authorize", self._authorize, auth=False)
        self._api("POST", r"/oauth/v(?:1|3)/token", self._token, auth=False)
        self._api("POST", r"/oauth/v3/token/introspect", self._introspect, auth=False)
        self._api("POST", r"/oauth/v3/token/revoke", self._revoke, auth=False)
        self._api("GET", r"/oauth/v1/access-tokens/(?P<token>[^/]+)", self._access_token_info, auth=False)
        self._api("GET", r"/oauth/v1/refresh-tokens/(?P<token>[^/]+)", self._refresh_token_info, auth=False)
        self._api("DELETE", r"/oauth/v1/refresh-tokens/(?P<token>[^/]+)", self._delete_refresh_token, auth=False)
        # CRM objects: the literal sub-paths first, then the {id} routes
        base = rf"/crm/v3/objects/{t}"
        self._api("POST", rf"{base}/search", self._search)
        self._api("POST", rf"{base}/batch/(?P<action>create|read|update|upsert|archive)", self._batch)
        self._api("POST", rf"{base}/merge", self._merge)
        self._api("POST", rf"{base}/gdpr-delete", self._gdpr_delete)
        self._api("GET", base, self._list)
        self._api("POST", base, self._create)
        self._api("GET", rf"{base}/{oid}", self._read)
        self._api("PATCH", rf"{base}/{oid}", self._update)
        self._api("DELETE", rf"{base}/{oid}", self._archive)
        # Properties
        props = rf"/crm/v3/properties/{t}"
        self._api("GET", rf"{props}/groups", self._list_groups)
        self._api("POST", rf"{props}/groups", self._create_group)
        self._api("GET", rf"{props}/groups/(?P<group>[^/]+)", self._get_group)
        self._api("POST", rf"{props}/batch/(?P<action>read|create|archive)", self._batch_properties)
        self._api("GET", props, self._list_properties)
        self._api("POST", props, self._create_property)
        self._api("GET", rf"{props}/(?P<name>[^/]+)", self._get_property)
        self._api("PATCH", rf"{props}/(?P<name>[^/]+)", self._update_property)
        self._api("DELETE", rf"{props}/(?P<name>[^/]+)", self._archive_property)
        # Associations v4 (labels also on the associations-schema path the spec uses)
        pair = r"(?P<from_type>[^/]+)/(?P<to_type>[^/]+)"
        self._api("GET", rf"/crm/v4/associations/{pair}/labels", self._labels)
        self._api("GET", rf"/crm/associations/v4/{pair}/labels", self._labels)
        self._api(
            "POST",
            rf"/crm/v4/associations/{pair}/batch/(?P<action>create|read|archive|associate/default"
            r"|labels/archive)",
            self._batch_associations,
        )
        obj = r"/crm/v4/objects/(?P<from_type>[^/]+)/(?P<from_id>[^/]+)/associations"
        self._api("PUT", rf"{obj}/default/(?P<to_type>[^/]+)/(?P<to_id>[^/]+)", self._associate_default)
        self._api("PUT", rf"{obj}/(?P<to_type>[^/]+)/(?P<to_id>[^/]+)", self._associate_labels)
        self._api("DELETE", rf"{obj}/(?P<to_type>[^/]+)/(?P<to_id>[^/]+)", self._dissociate)
        self._api("GET", rf"{obj}/(?P<to_type>[^/]+)", self._list_associations)
        # Account information: the portal a token (OAuth or private app) belongs to
        self._api("GET", r"/account-info/v3/details", self._account_details)
        # Owners and pipelines
        self._api("GET", r"/crm/v3/owners/?", self._list_owners)
        self._api("GET", r"/crm/v3/owners/(?P<owner_id>[^/]+)", self._get_owner)
        self._api("GET", rf"/crm/v3/pipelines/{t}", self._list_pipelines)
        self._api("GET", rf"/crm/v3/pipelines/{t}/(?P<pipeline>[^/]+)", self._get_pipeline)
        self._api("GET", rf"/crm/v3/pipelines/{t}/(?P<pipeline>[^/]+)/stages", self._list_stages)
        self._api("GET", rf"/crm/v3/pipelines/{t}/(?P<pipeline>[^/]+)/stages/(?P<stage>[^/]+)", self._get_stage)

    def not_found(self, request: Request) -> Response:
        return ApiError(404, "OBJECT_NOT_FOUND", f"Unknown path {request.method} {request.path}").response()

    # =============================================================================================
    # Authentication, rate limits and the fault hooks

    def register_client(self, client_id: str, client_secret: str, redirect_uris: list[str]) -> OAuthClient:
        """Register another OAuth app on this portal (pass-through to the OAuth server)."""
        return self.oauth.register_client(client_id, client_secret, redirect_uris)

    def issue_oauth_token(self, scopes: Iterable[str] | None = None, client_id: str | None = None) -> IssuedToken:
        """An access + refresh token as if the consent flow had run (for tests that skip the browser)."""
        return self.oauth.issue(
            client_id or self.client.client_id, list(scopes or DEFAULT_SCOPES), account_ref=str(self.hub_id)
        )

    def issue_private_app_token(self, scopes: Iterable[str] | None = None) -> str:
        """A static private-app bearer token: never expires, private-app rate limits [crm-ref §2.1, §2.5]."""
        token = "pat-na1-" + str(uuid.uuid4())
        with self.lock:
            self.private_apps[token] = PrivateApp(
                token, self.app_id + 1 + len(self.private_apps), tuple(scopes or DEFAULT_SCOPES)
            )
        self.secrets_issued.append(token)
        return token

    @staticmethod
    def _bearer(request: Request) -> str | None:
        auth = request.header("authorization", "") or ""
        if not auth.lower().startswith("bearer "):
            return None
        return auth[7:].strip() or None

    def authenticate(self, request: Request) -> Response | None:
        token = self._bearer(request)
        if token and token in self.private_apps:
            request.token = token
            return None
        status = self.oauth.token_state(token)
        if status == "expired":
            return self.expired_token(request)
        if status != "ok":
            return ApiError(
                401,
                "INVALID_AUTHENTICATION",
                "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find "
                "more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
            ).response()
        request.token = token
        return None

    def _scopes_of(self, token: str | None) -> set[str]:
        if token in self.private_apps:
            return set(self.private_apps[token].scopes)
        issued = self.oauth.token_for(token or "")
        return set(issued.scopes) if issued else set()

    def _app_id_of(self, token: str | None) -> int:
        return self.private_apps[token].app_id if token in self.private_apps else self.app_id

    def _require_scope(self, request: Request, *alternatives: str) -> None:
        """403 MISSING_SCOPES unless the token holds one of ``alternatives`` (only with enforce_scopes)."""
        if not self.enforce_scopes or self._scopes_of(request.token) & set(alternatives):
            return
        raise ApiError(
            403,
            "MISSING_SCOPES",
            "This app hasn't been granted all required scopes to make this call. Read more about required scopes "
            "here: https://developers.hubspot.com/scopes.",
            errors=[
                {
                    "message": "One or more of the following scopes are required.",
                    "context": {"requiredGranularScopes": list(alternatives)},
                }
            ],
            extra={"links": {"scopes": "https://developers.hubspot.com/scopes"}},
        )

    def _require_object_scope(self, request: Request, otype: ObjectType, write: bool) -> None:
        if write:
            self._require_scope(request, f"crm.objects.{otype.scope}.write")
        else:
            self._require_scope(request, f"crm.objects.{otype.scope}.read", f"crm.objects.{otype.scope}.write")

    # -- rate limits [crm-reference §2.5] ----------------------------------------------------------
    @staticmethod
    def _today() -> str:
        # HubSpot resets at midnight in the portal's time zone; the sandbox portal lives in UTC.
        return datetime.now(UTC).strftime("%Y-%m-%d")

    @staticmethod
    def route_kind(path: str) -> str:
        """Which family a CRM path belongs to (the key of ``calls_by_kind``)."""
        if path.startswith("/crm/v3/objects/"):
            if path.endswith("/search"):
                return "search"
            return "batch" if "/batch/" in path else "objects"
        for prefix, kind in (
            ("/crm/v3/properties", "properties"),
            ("/crm/v4/", "associations"),
            ("/crm/associations/", "associations"),
            ("/crm/v3/owners", "owners"),
            ("/crm/v3/pipelines", "pipelines"),
        ):
            if path.startswith(prefix):
                return kind
        return "other"

    def handle(self, request: Request) -> Response:
        # Count every CRM request, including those answered by an injected fault or a 401.
        if request.path.startswith("/crm/"):
            with self._limiter_lock:
                self.api_calls += 1
                self.calls_by_kind[self.route_kind(request.path)] += 1
        return super().handle(request)

    def _window_key(self, token: str | None) -> str:
        # Private apps are limited per token; OAuth apps per app and portal, so a refresh (a new access
        # token) does not open a fresh window.
        if token in self.private_apps:
            return f"private:{token}"
        issued = self.oauth.token_for(token or "")
        return f"app:{issued.client_id if issued else token}"

    def _limit_for(self, token: str | None) -> int:
        return self.private_app_limit if token in self.private_apps else self.oauth_limit

    def check_rate_limit(self, request: Request) -> Response | None:
        token = request.token
        search = request.method == "POST" and self.route_kind(request.path) == "search"
        with self._limiter_lock:
            if self._daily_day != self._today():
                self._daily_count, self._daily_day = 0, self._today()
            if search:
                # The search endpoints have their own per-token limit and send no rate headers.
                allowed, _remaining, _reset = self._search_window.hit(token or "")
                if not allowed:
                    return self._too_many(request, "SECONDLY", headers=False)
            else:
                window = self._private_window if token in self.private_apps else self._oauth_window
                allowed, remaining, _reset = window.hit(self._window_key(token))
                if not allowed:
                    return self._too_many(request, "TEN_SECONDLY_ROLLING")
                request.hubspot_remaining = remaining  # read by add_rate_headers
            if self._daily_count >= self.daily_limit:
                return self._too_many(request, "DAILY", headers=not search)
            self._daily_count += 1
            request.hubspot_daily_remaining = self.daily_limit - self._daily_count
        return None

    def _rate_headers(self, token: str | None, remaining: int, daily_remaining: int | None) -> dict[str, str]:
        headers = {
            "X-HubSpot-RateLimit-Max": str(self._limit_for(token)),
            "X-HubSpot-RateLimit-Remaining": str(remaining),
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(self.window_seconds * 1000)),
        }
        if token in self.private_apps:  # the daily headers are not sent on OAuth calls [crm-ref §2.5]
            headers["X-HubSpot-RateLimit-Daily"] = str(self.daily_limit)
            headers["X-HubSpot-RateLimit-Daily-Remaining"] = str(
                daily_remaining if daily_remaining is not None else max(0, self.daily_limit - self._daily_count)
            )
        return headers

    def add_rate_headers(self, request: Request, response: Response) -> None:
        remaining = getattr(request, "hubspot_remaining", None)
        if remaining is None:  # search answers carry no rate headers
            return
        response.headers.update(
            self._rate_headers(request.token, remaining, getattr(request, "hubspot_daily_remaining", None))
        )

    def _too_many(self, request: Request, policy: str, *, headers: bool = True) -> Response:
        self.rate_limited_count += 1
        message = {"DAILY": "daily", "SECONDLY": "secondly"}.get(policy, policy.lower())
        body = {
            "status": "error",
            "message": f"You have reached your {message} limit.",
            "errorType": "RATE_LIMIT",
            "correlationId": correlation_id(),
            "policyName": policy,
            "requestId": correlation_id(),
        }
        token = request.token or self._bearer(request)
        extra = self._rate_headers(token, 0, 0 if policy == "DAILY" else None) if headers else {}
        return Response.json(body, status=429, headers=extra)

    # -- the core's fault hooks in HubSpot's shapes ------------------------------------------------
    def rate_limited(self, request: Request) -> Response:
        with self._limiter_lock:
            return self._too_many(request, "TEN_SECONDLY_ROLLING")

    def server_error(self, request: Request) -> Response:
        message = "internal error" if self.server_error_status == 500 else "Bad Gateway"
        return ApiError(self.server_error_status, "INTERNAL_ERROR", message).response()

    def expired_token(self, request: Request) -> Response:
        """401 EXPIRED_AUTHENTICATION. An OAuth token stays expired afterwards, as a real one would."""
        return self._expired(self._bearer(request))

    def _expired(self, token: str | None) -> Response:
        issued = self.oauth.token_for(token or "")
        minutes = 1
        if issued is not None:
            if issued.expires_at is not None and issued.expires_at < time.time():
                minutes = max(1, int((time.time() - issued.expires_at) // 60))
            else:
                self.oauth.expire(token or "")
        return ApiError(
            401, "EXPIRED_AUTHENTICATION", f"The OAuth token used to make this call expired {minutes} minute(s) ago."
        ).response()

    # =============================================================================================
    # OAuth endpoints [crm-reference §2.1]

    def _authorize(self, request: Request) -> Response:
        if request.method == "POST":
            # HubSpot grants `optional_scope` alongside `scope` when the portal has them; the sandbox has all.
            form = request.form()
            if form.get("optional_scope"):
                form["scope"] = " ".join(filter(None, [form.get("scope", ""), form["optional_scope"]]))
                request = Request(
                    request.method, request.path, request.query, request.headers, urlencode(form).encode()
                )
        return self.oauth.authorize(request)

    def _token(self, request: Request) -> Response:
        form = request.form()
        if (
            form.get("client_id")
            and form["client_id"] in self.oauth.clients
            and form.get("client_secret") != (self.oauth.clients[form["client_id"]].client_secret)
        ):
            with self.oauth.lock:
                self.oauth.token_calls += 1
            return self._oauth_error("BAD_CLIENT_SECRET", "invalid_client", "missing or invalid client secret")
        issued, error, description = self.oauth.exchange(request)
        if issued is None:
            grant = form.get("grant_type")
            if error in _OAUTH_ERRORS:
                status, message = _OAUTH_ERRORS[error]
            elif grant == "refresh_token":
                status, message = "BAD_REFRESH_TOKEN", "missing or invalid refresh token"
            elif "redirect_uri" in (description or ""):
                status, message = "BAD_REDIRECT_URI", "redirect_uri does not match the one used to get the code"
            elif "PKCE" in (description or ""):
                status, message = "BAD_AUTH_CODE", "code_verifier does not match the code_challenge"
            else:
                status, message = "BAD_AUTH_CODE", "missing or unknown auth code"
            return self._oauth_error(status, error or "invalid_request", message)
        issued.account_ref = str(self.hub_id)
        # spec AccessTokenResponse (oauth-v3/oauth.json); v1 answers the same fields.
        return Response.json(
            {
                "token_type": "bearer",
                "access_token": issued.access_token,
                "refresh_token": issued.refresh_token,
                "expires_in": int(self.oauth.access_token_ttl or 0),
                "token_use": "access_token",
                "hub_id": self.hub_id,
                "user_id": self.user_id,
                "scopes": issued.scopes,
            }
        )

    @staticmethod
    def _oauth_error(status: str, error: str, message: str) -> Response:
        # HubSpot answers token errors with HTTP 400 and {"status": "BAD_…", "message": …}; the spec's Error
        # fields (category, correlationId) and the RFC 6749 `error` are added so every client can read it.
        return Response.json(
            {
                "status": status,
                "message": message,
                "correlationId": correlation_id(),
                "category": "VALIDATION_ERROR",
                "error": error,
                "error_description": message,
            },
            status=400,
        )

    def _client_ok(self, form: dict[str, str]) -> bool:
        client = self.oauth.clients.get(form.get("client_id", ""))
        return client is not None and hmac.compare_digest(
            client.client_secret.encode(), form.get("client_secret", "").encode()
        )

    def _token_info(self, issued: IssuedToken, token: str, kind: str) -> dict[str, Any]:
        info: dict[str, Any] = {
            "token": token,
            "token_type": kind,
            "client_id": issued.client_id,
            "app_id": self.app_id,
            "hub_id": self.hub_id,
            "hub_domain": self.hub_domain,
            "user": self.user_email,
            "user_id": self.user_id,
            "scopes": list(issued.scopes),
        }
        if kind == "access":
            expires_at = issued.expires_at or (time.time() + 10 * 365 * 86400)
            info["expires_in"] = max(0, int(expires_at - time.time()))
            info["is_private_distribution"] = False
        return info

    def _signed_access_token(self, issued: IssuedToken) -> dict[str, Any]:
        scopes = ",".join(issued.scopes)
        return {
            "appId": self.app_id,
            "appInstallId": f"{self.app_id}-{self.hub_id}",
            "audience": "api.hubapi.com",
            "expiresAt": int((issued.expires_at or 0) * 1000),
            "hubId": self.hub_id,
            "hublet": "na1",
            "installingUserId": self.user_id,
            "isPrivateDistribution": False,
            "isServiceAccount": False,
            "isUserLevel": False,
            "newSignature": "",
            "scopeToScopeGroupPks": "",
            "scopes": scopes,
            "signature": hashlib.sha256(issued.access_token.encode()).hexdigest(),
            "trialScopeToScopeGroupPks": "",
            "trialScopes": "",
            "userId": self.user_id,
        }

    def _introspect(self, request: Request) -> Response:
        """POST /oauth/v3/token/introspect: PublicAccessTokenInfoResponse / PublicRefreshTokenInfoResponse."""
        form = request.form()
        if not self._client_ok(form):
            return self._oauth_error("BAD_CLIENT_ID", "invalid_client", "missing or unknown client id")
        token = form.get("token", "")
        with self.oauth.lock:
            refresh = self.oauth.refresh_tokens.get(token)
            access = self.oauth.access_tokens.get(token)
        if refresh is not None:  # access and refresh tokens never share a value
            info = self._token_info(refresh, token, "refresh")
            return Response.json({**info, "active": not refresh.revoked, "token_use": "refresh_token"})
        if access is not None:
            info = self._token_info(access, token, "access")
            info.update(
                active=self.oauth.token_state(token) == "ok",
                token_use="access_token",
                signed_access_token=self._signed_access_token(access),
            )
            return Response.json(info)
        # RFC 7662: an unknown token is simply inactive.
        return Response.json({"active": False})

    def _revoke(self, request: Request) -> Response:
        """POST /oauth/v3/token/revoke (RFC 7009): a refresh token dies and live access tokens run to their
        expiry [crm-reference §2.1]; an access token given here dies alone. Unknown tokens are not an error."""
        form = request.form()
        if not self._client_ok(form):
            return self._oauth_error("BAD_CLIENT_ID", "invalid_client", "missing or unknown client id")
        token = form.get("token", "")
        if not self._forget_refresh_token(token):
            with self.oauth.lock:
                self.oauth.access_tokens.pop(token, None)
        return Response(200)

    def _forget_refresh_token(self, token: str) -> bool:
        with self.oauth.lock:
            return self.oauth.refresh_tokens.pop(token, None) is not None

    def _access_token_info(self, request: Request) -> Response:
        """GET /oauth/v1/access-tokens/{token}: who and which portal the token belongs to."""
        token = unquote(request.params["token"])
        status = self.oauth.token_state(token)
        if status == "expired":
            return self._expired(token)
        issued = self.oauth.token_for(token)
        if status != "ok" or issued is None:
            raise ApiError(404, "OBJECT_NOT_FOUND", "Token not found")
        return Response.json(self._token_info(issued, token, "access"))

    def _refresh_token_info(self, request: Request) -> Response:
        token = unquote(request.params["token"])
        with self.oauth.lock:
            issued = self.oauth.refresh_tokens.get(token)
        if issued is None:
            raise ApiError(404, "OBJECT_NOT_FOUND", "Token not found")
        info = self._token_info(issued, token, "refresh")
        return Response.json(info)

    def _delete_refresh_token(self, request: Request) -> Response:
        if not self._forget_refresh_token(unquote(request.params["token"])):
            raise ApiError(404, "OBJECT_NOT_FOUND", "Token not found")
        return Response(204)

    # =============================================================================================
    # CRM objects [crm-reference §2.2, §2.4; spec contacts.json and siblings]

    def object_type(self, name: str) -> ObjectType:
        key = _TYPE_ALIASES.get(unquote(name).lower())
        if key is None:
            raise ApiError(400, "VALIDATION_ERROR", f"Unable to infer object type from: {unquote(name)}")
        return OBJECT_TYPES[key]

    @staticmethod
    def _json(request: Request) -> Any:
        try:
            return request.json()
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(400, "VALIDATION_ERROR", f"Invalid input JSON: {exc}") from exc

    def _body_dict(self, request: Request) -> dict[str, Any]:
        body = self._json(request)
        if not isinstance(body, dict):
            raise ApiError(400, "VALIDATION_ERROR", "Invalid input JSON: expected an object")
        return body

    @staticmethod
    def _list_arg(request: Request, name: str) -> list[str] | None:
        """A multi-valued query argument: repeated (?a=x&a=y) and/or comma separated (?a=x,y)."""
        values = request.query.get(name)
        if values is None:
            return None
        return [item.strip() for value in values for item in value.split(",") if item.strip()]

    @staticmethod
    def _names(body: dict[str, Any], key: str) -> list[str]:
        """A list of property names from a JSON body (``properties``, ``propertiesWithHistory``)."""
        value = body.get(key) or []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ApiError(400, "VALIDATION_ERROR", f"{key} must be a list of property names")
        return value

    def _inputs(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        inputs = body.get("inputs")
        if not isinstance(inputs, list) or not all(isinstance(i, dict) for i in inputs):
            raise ApiError(400, "VALIDATION_ERROR", "Invalid input JSON: `inputs` must be a list of objects")
        # 100 per batch: not in the official spec, taken from HubSpot's docs [crm-reference §2.2, §11.2].
        if len(inputs) > self.max_batch_inputs:
            raise ApiError(
                400,
                "VALIDATION_ERROR",
                f"Too many inputs in a batch request: {len(inputs)} (the limit is {self.max_batch_inputs})",
                context={"limit": [str(self.max_batch_inputs)], "count": [str(len(inputs))]},
            )
        return inputs

    # -- wire shapes ---------------------------------------------------------------------------------
    def _wire(
        self,
        rec: _Record,
        names: Iterable[str] | None = None,
        *,
        history: Iterable[str] | None = None,
        associations: Iterable[str] | None = None,
        trace_id: str | None = None,
    ) -> dict[str, Any]:
        """A record as SimplePublicObject(WithAssociations); ``names`` None means the type's defaults."""
        otype = OBJECT_TYPES[rec.object_type]
        wanted = list(otype.default_properties if names is None else [*names, *otype.always_returned])
        defined = self.properties[rec.object_type]
        props: dict[str, Any] = {}
        for name in wanted:
            if name in rec.properties:
                props[name] = rec.properties[name]
            elif self.unset_properties_as_null and name in defined:
                props[name] = None
        body: dict[str, Any] = {
            "id": rec.id,
            "properties": props,
            "createdAt": iso(rec.created_ms),
            "updatedAt": iso(rec.updated_ms),
            "archived": rec.archived,
        }
        if rec.archived and rec.archived_ms is not None:
            body["archivedAt"] = iso(rec.archived_ms)
        if history:
            body["propertiesWithHistory"] = {
                name: list(reversed(rec.history.get(name, []))) for name in history if name in defined
            }
        if associations:
            body["associations"] = self._v3_associations(rec, associations)
        if trace_id:
            body["objectWriteTraceId"] = trace_id
        return body

    def _wire_all(self, rec: _Record, **kwargs: Any) -> dict[str, Any]:
        return self._wire(rec, sorted(rec.properties), **kwargs)

    @staticmethod
    def _batch_body(results: list[dict[str, Any]], errors: list[dict[str, Any]], started: int) -> dict[str, Any]:
        body: dict[str, Any] = {
            "status": "COMPLETE",
            "results": results,
            "startedAt": iso(started),
            "completedAt": iso(now_ms()),
        }
        if errors:
            body["numErrors"] = len(errors)
            body["errors"] = errors
        return body

    # -- lookups ---------------------------------------------------------------------------------
    def _unique_names(self, otype: str) -> list[str]:
        return [name for name, d in self.properties[otype].items() if d["hasUniqueValue"] and not d["archived"]]

    @staticmethod
    def _unique_key(name: str, value: str) -> str:
        return value.strip().lower() if name == "email" else value

    def _lookup(
        self, otype: ObjectType, ident: str, id_property: str | None = None, *, include_archived: bool = False
    ) -> _Record | None:
        ident = unquote(str(ident))
        if not id_property or id_property == "hs_object_id":
            rec = self.records[otype.name].get(self._merged_into.get(ident, ident))
        else:
            definition = self.properties[otype.name].get(id_property)
            if definition is None or not definition["hasUniqueValue"] or definition["archived"]:
                raise ApiError(
                    400,
                    "VALIDATION_ERROR",
                    f"Property {id_property} is not a unique-value property of {otype.name}; "
                    "idProperty must be email (contacts) or a property with hasUniqueValue",
                )
            found = self._unique.get((otype.name, id_property), {}).get(self._unique_key(id_property, ident))
            rec = self.records[otype.name].get(found) if found else None
        if rec is None or (rec.archived and not include_archived):
            return None
        return rec

    def _must_find(
        self, otype: ObjectType, ident: str, id_property: str | None = None, *, include_archived: bool = False
    ) -> _Record:
        rec = self._lookup(otype, ident, id_property, include_archived=include_archived)
        if rec is None:
            raise ApiError(
                404,
                "OBJECT_NOT_FOUND",
                "Object not found.  objectId are usually numeric.",
                context={"id": [unquote(str(ident))]},
            )
        return rec

    # -- property validation -----------------------------------------------------------------------
    def _external_options(self, otype: str, name: str) -> list[str] | None:
        if name == "hubspot_owner_id":
            return [o["id"] for o in self.owners]
        if (otype, name) in (("deals", "pipeline"), ("leads", "hs_pipeline")):
            return [p["id"] for p in self.pipelines.get(otype, [])]
        if (otype, name) in (("deals", "dealstage"), ("leads", "hs_pipeline_stage")):
            return [s["id"] for p in self.pipelines.get(otype, []) for s in p["stages"]]
        return None

    def _normalise(self, otype: str, name: str, raw: Any) -> tuple[str | None, PropertyProblem | None]:
        """Validate one value against its definition; return (stored string or None to clear, problem)."""
        definition = self.properties[otype].get(name)
        if definition is None or definition["archived"]:
            return None, PropertyProblem(name, "PROPERTY_DOESNT_EXIST", f'Property "{name}" does not exist')
        meta = definition["modificationMetadata"]
        if meta["readOnlyValue"] or definition["calculated"]:
            return None, PropertyProblem(
                name, "READ_ONLY_VALUE", f'"{name}" is a read only property; its value cannot be set.'
            )
        if raw is None:
            return None, None
        value = ("true" if raw else "false") if isinstance(raw, bool) else str(raw)
        if value == "":  # an empty string clears the property
            return None, None
        kind = definition["type"]
        if kind == "number":
            try:
                number = float(value)
            except ValueError:
                number = math.nan
            if not math.isfinite(number):
                return None, PropertyProblem(name, "INVALID_INTEGER", f"{value} is not a valid number")
        elif kind in ("date", "datetime"):
            ms = parse_time_ms(value)
            if ms is None:
                return None, PropertyProblem(name, "INVALID_DATE", f"{value} is not a valid date")
            if kind == "date":
                if ms % 86_400_000:
                    return None, PropertyProblem(name, "INVALID_DATE", f"{value} is at a time other than midnight UTC")
                value = iso(ms)[:10]
            else:
                value = iso(ms)
        elif kind == "bool":
            if value.lower() not in ("true", "false"):
                return None, PropertyProblem(name, "INVALID_BOOLEAN", f"{value} is not a valid boolean")
            value = value.lower()
        elif kind == "enumeration":
            # Owners, pipelines and stages live outside the definition; an enumeration without options
            # (hs_attachment_ids and the like) takes any value.
            allowed = self._external_options(otype, name)
            if allowed is None and definition["options"]:
                allowed = [o["value"] for o in definition["options"]]
            chosen = value.split(";") if definition["fieldType"] == "checkbox" else [value]
            bad = [c for c in chosen if allowed is not None and c not in allowed]
            if bad:
                return None, PropertyProblem(
                    name, "INVALID_OPTION", f"{bad[0]} was not one of the allowed options: [{', '.join(allowed or [])}]"
                )
        if name == "email" and otype == "contacts":
            if not _EMAIL.match(value):
                return None, PropertyProblem(name, "INVALID_EMAIL", f"Email address {value} is invalid")
            value = value.lower()
        return value, None

    def _validate(self, otype: str, properties: Any) -> dict[str, str | None]:
        if properties is None:
            properties = {}
        if not isinstance(properties, dict):
            raise ApiError(400, "VALIDATION_ERROR", "Invalid input JSON: `properties` must be an object")
        clean: dict[str, str | None] = {}
        problems = []
        for name, raw in properties.items():
            value, problem = self._normalise(otype, str(name), raw)
            if problem:
                problems.append(problem)
            else:
                clean[str(name)] = value
        if problems:
            raise validation_error(problems, self.hub_id)
        return clean

    def _check_unique(self, otype: ObjectType, values: dict[str, str | None], own_id: str | None) -> None:
        for name in self._unique_names(otype.name):
            value = values.get(name)
            if not value:
                continue
            existing = self._unique.get((otype.name, name), {}).get(self._unique_key(name, value))
            if existing and existing != own_id:
                what = (
                    "Contact"
                    if otype.name == "contacts" and name == "email"
                    else (f"A {otype.singular} with {name} {value!r}")
                )
                raise ApiError(
                    409, "CONFLICT", f"{what} already exists. Existing ID: {existing}", context={"id": [existing]}
                )

    # -- writes ------------------------------------------------------------------------------------
    def _source(self, request: Request | None) -> tuple[str, str | None]:
        if request is None:
            return "CRM_UI", f"userId:{self.user_id}"
        return "INTEGRATION", str(self._app_id_of(request.token))

    def _set(self, rec: _Record, values: dict[str, str | None], at: int, source: tuple[str, str | None]) -> bool:
        """Apply validated values; keep the unique indexes, history and change log. True if anything changed."""
        unique = set(self._unique_names(rec.object_type))
        changed = False
        for name, value in values.items():
            old = rec.properties.get(name)
            if old == value:
                continue
            if name in unique:
                index = self._unique.setdefault((rec.object_type, name), {})
                if old is not None and index.get(self._unique_key(name, old)) == rec.id:
                    del index[self._unique_key(name, old)]
                if value is not None:
                    index[self._unique_key(name, value)] = rec.id
            if value is None:
                rec.properties.pop(name, None)
            else:
                rec.properties[name] = value
            rec.history.setdefault(name, []).append(
                {
                    "value": value or "",
                    "timestamp": iso(at),
                    "sourceType": source[0],
                    "sourceId": source[1] or "",
                }
            )
            self.changes.append(Change(rec.object_type, rec.id, name, value or "", source[0], source[1], at))
            changed = True
        if changed:
            rec.updated_ms = at
            rec.properties[OBJECT_TYPES[rec.object_type].modified_property] = iso(at)
        return changed

    def _create_record(
        self, otype: ObjectType, values: dict[str, str | None], associations: Any, source: tuple[str, str | None]
    ) -> _Record:
        """Create after validation: required properties, associations, unique values (409)."""
        missing = [name for name in REQUIRED_ON_CREATE.get(otype.name, ()) if not values.get(name)]
        if missing:
            raise validation_error(
                [PropertyProblem(n, "REQUIRED_PROPERTY", f"The required property {n} is missing") for n in missing],
                self.hub_id,
            )
        links = self._parse_inline_associations(otype, associations)
        if otype.name == "leads" and not any(to_type == "contacts" for to_type, _, _ in links):
            raise ApiError(
                400,
                "VALIDATION_ERROR",
                "A lead must be associated with an existing contact",
                context={"associations": ["contacts"]},
            )
        self._check_unique(otype, values, None)
        at = now_ms()
        rec = _Record(str(next(self._ids)), otype.name, {}, at, at)
        if otype.name == "deals" and not values.get("pipeline"):
            values = {**values, "pipeline": "default"}  # HubSpot files a deal without one in the default pipeline
        self.records[otype.name][rec.id] = rec
        self.changes.append(Change(otype.name, rec.id, None, None, source[0], source[1], at, "creation"))
        system = {"hs_object_id": rec.id}
        if otype.name in HAS_CREATEDATE:
            system["createdate"] = iso(at)
        if otype.name != "contacts":
            system["hs_createdate"] = iso(at)
        rec.properties.update(system)
        self._set(rec, {k: v for k, v in values.items() if v is not None}, at, source)
        rec.properties[otype.modified_property] = iso(at)
        for to_type, to_id, assoc in links:
            self._link(otype.name, rec.id, to_type, to_id, assoc)
        return rec

    def _update_record(self, rec: _Record, values: dict[str, str | None], source: tuple[str, str | None]) -> None:
        self._check_unique(OBJECT_TYPES[rec.object_type], values, rec.id)
        self._set(rec, values, now_ms(), source)

    def _archive_record(self, rec: _Record, source: tuple[str, str | None]) -> None:
        if rec.archived:
            return
        at = now_ms()
        rec.archived, rec.archived_ms, rec.updated_ms = True, at, at
        for name in self._unique_names(rec.object_type):
            value = rec.properties.get(name)
            index = self._unique.get((rec.object_type, name), {})
            if value is not None and index.get(self._unique_key(name, value)) == rec.id:
                del index[self._unique_key(name, value)]
        self.changes.append(Change(rec.object_type, rec.id, None, None, source[0], source[1], at, "deletion"))

    # -- single-record routes ------------------------------------------------------------------------
    def _create(self, request: Request) -> Response:
        otype = self.object_type(request.params["object_type"])
        self._require_object_scope(request, otype, write=True)
        body = self._body_dict(request)
        values = self._validate(otype.name, body.get("properties"))
        rec = self._create_record(otype, values, body.get("associations"), self._source(request))
        return Response.json(self._wire_all(rec), status=201)

    def _read(self, request: Request) -> Response:
        otype = self.object_type(request.params["object_type"])
        self._require_object_scope(request, otype, write=False)
        rec = self._must_find(
            otype,
            request.params["object_id"],
            request.arg("idProperty"),
            include_archived=request.arg("archived") == "true",
        )
        return Response.json(
            self._wire(
                rec,
                self._list_arg(request, "properties"),
                history=self._list_arg(request, "propertiesWithHistory"),
                associations=self._list_arg(request, "associations"),
            )
        )

    def _update(self, request: Request) -> Response:
        otype = self.object_type(request.params["object_type"])
        self._require_object_scope(request, otype, write=True)
        rec = self._must_find(otype, request.params["object_id"], request.arg("idProperty"))
        body = self._body_dict(request)
        self._update_record(rec, self._validate(otype.name, body.get("properties")), self._source(request))
        return Response.json(self._wire_all(rec))

    def _archive(self, request: Request) -> Response:
        otype = self.object_type(request.params["object_type"])
        self._require_object_scope(request, otype, write=True)
        rec = self._lookup(otype, request.params["object_id"])
        if rec is not None:  # HubSpot answers 204 for an id that is already gone
            self._archive_record(rec, self._source(request))
        return Response(204)

    def _list(self, request: Request) -> Response:
        otype = self.object_type(request.params["object_type"])
        self._require_object_scope(request, otype, write=False)
        limit = self._int_arg(request, "limit", 10, 1, 100)
        archived = request.arg("archived") == "true"
        after = request.arg("after") or "0"
        first_id = int(after) if after.isdigit() else 0
        rows = sorted(
            (r for r in self.records[otype.name].values() if r.archived == archived and int(r.id) >= first_id),
            key=lambda r: int(r.id),
        )
        page, rest = rows[:limit], rows[limit:]
        names, assoc = self._list_arg(request, "properties"), self._list_arg(request, "associations")
        body: dict[str, Any] = {"results": [self._wire(r, names, associations=assoc) for r in page]}
        if rest:
            body["paging"] = {
                "next": {"after": rest[0].id, "link": f"{self.base_url}{request.path}?after={rest[0].id}"}
            }
        return Response.json(body)

    @staticmethod
    def _int_arg(request: Request, name: str, default: int, low: int, high: int) -> int:
        raw = request.arg(name)
        if raw is None:
            return default
        if not raw.isdigit() or not low <= int(raw) <= high:
            raise ApiError(400, "VALIDATION_ERROR", f"{name} must be a whole number from {low} to {high}")
        return int(raw)

    # -- batch ----------------------------------------------------------------------------------------
    def _batch(self, request: Request) -> Response:
        otype = self.object_type(request.params["object_type"])
        action = request.params["action"]
        self._require_object_scope(request, otype, write=action != "read")
        body = self._body_dict(request)
        inputs = self._inputs(body)
        started = now_ms()
        if action == "archive":
            for item in inputs:
                rec = self._lookup(otype, str(item.get("id", "")))
                if rec is not None:
                    self._archive_record(rec, self._source(request))
            return Response(204)
        if action == "read":
            return self._batch_read(otype, body, inputs, started)
        if action in ("update", "upsert"):
            self._reject_duplicate_ids(inputs)
            for item in inputs:  # a non-unique idProperty fails the whole request, not one input
                if item.get("idProperty") not in (None, "hs_object_id"):
                    self._lookup(otype, str(item.get("id", "")), item.get("idProperty"))
        results: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        source = self._source(request)
        for index, item in enumerate(inputs):
            trace = item.get("objectWriteTraceId")
            try:
                if action == "create":
                    values = self._validate(otype.name, item.get("properties"))
                    rec = self._create_record(otype, values, item.get("associations"), source)
                    results.append(self._wire_all(rec, trace_id=trace))
                elif action == "update":
                    rec = self._must_find(otype, str(item.get("id", "")), item.get("idProperty"))
                    self._update_record(rec, self._validate(otype.name, item.get("properties")), source)
                    results.append(self._wire_all(rec, trace_id=trace))
                else:
                    rec, created = self._upsert_one(otype, item, source)
                    results.append({**self._wire_all(rec, trace_id=trace), "new": created})
            except ApiError as exc:
                context = {"ids": [str(item["id"])]} if "id" in item else {"inputIndex": [str(index)]}
                if trace:
                    context["objectWriteTraceId"] = [str(trace)]
                errors.append(exc.standard_error(context))
        status = 207 if errors else (201 if action == "create" else 200)
        return Response.json(self._batch_body(results, errors, started), status=status)

    @staticmethod
    def _reject_duplicate_ids(inputs: list[dict[str, Any]]) -> None:
        counts = Counter(str(item.get("id", "")).lower() for item in inputs)
        duplicates = sorted(ident for ident, n in counts.items() if n > 1)
        if duplicates:
            raise ApiError(
                400,
                "VALIDATION_ERROR",
                f"Duplicate IDs found in batch input: [{', '.join(duplicates)}]. IDs must be unique",
                context={"ids": duplicates},
            )

    def _upsert_one(
        self, otype: ObjectType, item: dict[str, Any], source: tuple[str, str | None]
    ) -> tuple[_Record, bool]:
        """Update the record whose idProperty has this value, or create it with that value [crm-ref §2.2]."""
        ident, id_property = str(item.get("id", "")), item.get("idProperty")
        values = self._validate(otype.name, item.get("properties"))
        rec = self._lookup(otype, ident, id_property)
        if rec is not None:
            self._update_record(rec, values, source)
            return rec, False
        if not id_property or id_property == "hs_object_id":
            raise ApiError(
                404, "OBJECT_NOT_FOUND", f"Could not find a {otype.singular} with id {ident}", context={"ids": [ident]}
            )
        key_value, problem = self._normalise(otype.name, id_property, ident)
        if problem:
            raise validation_error([problem], self.hub_id)
        return self._create_record(otype, {**values, id_property: key_value}, None, source), True

    def _batch_read(
        self, otype: ObjectType, body: dict[str, Any], inputs: list[dict[str, Any]], started: int
    ) -> Response:
        history = self._names(body, "propertiesWithHistory")
        if history and len(inputs) > 50:
            raise ApiError(400, "VALIDATION_ERROR", "Batch read with propertiesWithHistory is limited to 50 inputs")
        names = self._names(body, "properties") or None
        results, missing = [], []
        for item in inputs:
            rec = self._lookup(
                otype, str(item.get("id", "")), body.get("idProperty"), include_archived=bool(body.get("archived"))
            )
            if rec is None:
                missing.append(str(item.get("id", "")))
            else:
                results.append(self._wire(rec, names, history=history))
        errors = []
        if missing:
            errors.append(
                ApiError(
                    404,
                    "OBJECT_NOT_FOUND",
                    f"Could not get some {otype.label} objects, they may be deleted or not exist. "
                    "Check that ids are valid.",
                ).standard_error({"ids": missing})
            )
        return Response.json(self._batch_body(results, errors, started), status=207 if errors else 200)

    # -- search ---------------------------------------------------------------------------------------
    def _search(self, request: Request) -> Response:
        """POST …/search: filterGroups (OR of ANDed filters), query, sorts, limit ≤ 200, after [spec]."""
        otype = self.object_type(request.params["object_type"])
        self._require_object_scope(request, otype, write=False)
        body = self._body_dict(request)
        limit = body.get("limit", 10)
        if not isinstance(limit, int) or not 0 <= limit <= 200:
            raise ApiError(400, "VALIDATION_ERROR", "limit must be between 0 and 200", context={"limit": [str(limit)]})
        groups = body.get("filterGroups") or []
        if not isinstance(groups, list) or not all(
            isinstance(g, dict) and all(isinstance(f, dict) for f in g.get("filters") or []) for g in groups
        ):
            raise ApiError(400, "VALIDATION_ERROR", "filterGroups must be a list of {filters: [...]} objects")
        # Spec: up to 6 groups; HubSpot's guide: at most 6 filters per group and 18 in all.
        if (
            len(groups) > 6
            or any(len(g.get("filters") or []) > 6 for g in groups)
            or sum(len(g.get("filters") or []) for g in groups) > 18
        ):
            raise ApiError(
                400,
                "VALIDATION_ERROR",
                "Too many filters: up to 6 filterGroups with 6 filters each and 18 filters in total",
            )
        defined = self.properties[otype.name]
        for group in groups:
            for f in group.get("filters") or []:
                if f.get("operator", "EQ") not in SEARCH_OPERATORS:
                    raise ApiError(
                        400,
                        "VALIDATION_ERROR",
                        f"Unknown filter operator {f.get('operator')!r}",
                        context={"operator": [str(f.get("operator"))]},
                    )
                if f.get("propertyName") not in defined:
                    raise ApiError(
                        400,
                        "VALIDATION_ERROR",
                        f"There was a problem with the request: property {f.get('propertyName')!r} "
                        f"does not exist on {otype.name}",
                        context={"propertyName": [str(f.get("propertyName"))]},
                    )
        query = str(body.get("query") or "").strip().lower()
        rows = [
            r
            for r in self.records[otype.name].values()
            if not r.archived
            and (not groups or any(all(self._matches(r, f) for f in g.get("filters") or []) for g in groups))
            and (not query or any(query in v.lower() for v in r.properties.values()))
        ]
        rows = self._sorted(otype, rows, body.get("sorts") or [])
        after = str(body.get("after") or "0")
        offset = int(after) if after.isdigit() else 0
        if offset + limit > 10_000:  # HubSpot caps a query at 10,000 results (crm-reference §2.2, UNVERIFIED)
            raise ApiError(400, "VALIDATION_ERROR", "Search results are limited to 10,000 per query")
        page = rows[offset : offset + limit]
        names = self._names(body, "properties") or None
        result: dict[str, Any] = {"total": len(rows), "results": [self._wire(r, names) for r in page]}
        if offset + limit < len(rows):
            result["paging"] = {"next": {"after": str(offset + limit)}}
        return Response.json(result)

    def _typed(self, otype: str, name: str, value: str | None) -> Any:
        """A comparable form of a value: number, epoch ms, or lower-cased text."""
        if value is None:
            return None
        kind = "number" if name == "hs_object_id" else self.properties[otype].get(name, {}).get("type", "string")
        if kind == "number":
            try:
                return float(value)
            except ValueError:
                return None
        if kind in ("date", "datetime"):
            return parse_time_ms(value)
        return value.lower()

    def _matches(self, rec: _Record, f: dict[str, Any]) -> bool:
        name, op = str(f.get("propertyName")), str(f.get("operator", "EQ"))
        raw = rec.properties.get(name)
        if op == "HAS_PROPERTY":
            return raw is not None
        if op == "NOT_HAS_PROPERTY":
            return raw is None
        have = self._typed(rec.object_type, name, raw)
        if op in ("IN", "NOT_IN"):
            wanted = [self._typed(rec.object_type, name, str(v)) for v in f.get("values") or []]
            if op == "NOT_IN":
                return have not in wanted
            if raw is not None and self.properties[rec.object_type].get(name, {}).get("fieldType") == "checkbox":
                return any(self._typed(rec.object_type, name, part) in wanted for part in raw.split(";"))
            return have in wanted
        if op in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
            found = raw is not None and self._contains_token(raw, str(f.get("value", "")))
            return found if op == "CONTAINS_TOKEN" else not found
        value = self._typed(rec.object_type, name, str(f.get("value", "")))
        if op == "EQ":
            return have is not None and have == value
        if op == "NEQ":
            return have != value
        if have is None or value is None:
            return False
        if op == "BETWEEN":
            high = self._typed(rec.object_type, name, str(f.get("highValue", "")))
            return high is not None and value <= have <= high
        return {"GT": have > value, "GTE": have >= value, "LT": have < value, "LTE": have <= value}[op]

    @staticmethod
    def _contains_token(value: str, pattern: str) -> bool:
        value, pattern = value.lower(), pattern.lower().strip()
        tokens = {value, *value.split(), *(t for t in re.split(r"[^a-z0-9]+", value) if t)}
        if "*" in pattern:
            return any(fnmatch.fnmatchcase(token, pattern) for token in tokens)
        return pattern in tokens

    def _sorted(self, otype: ObjectType, rows: list[_Record], sorts: list[Any]) -> list[_Record]:
        # Records with equal sort values come in id order, or reversed with search_tie_order="reverse_id":
        # HubSpot promises no order among ties, and a client must not depend on one.
        rows = sorted(rows, key=lambda r: int(r.id), reverse=self.search_tie_order == "reverse_id")
        for sort in reversed(sorts):
            if isinstance(sort, dict):
                name, descending = str(sort.get("propertyName")), str(sort.get("direction", "")).upper() == "DESCENDING"
            else:
                name, descending = str(sort).lstrip("-"), str(sort).startswith("-")
            present = [r for r in rows if r.properties.get(name) is not None]
            absent = [r for r in rows if r.properties.get(name) is None]
            present.sort(key=lambda r, n=name: self._typed(otype.name, n, r.properties[n]), reverse=descending)
            rows = present + absent
        return rows

    # -- merge and GDPR delete --------------------------------------------------------------------------
    def _merge(self, request: Request) -> Response:
        """POST …/merge: the secondary's values fill the primary's blanks; the secondary's id redirects."""
        otype = self.object_type(request.params["object_type"])
        self._require_object_scope(request, otype, write=True)
        body = self._body_dict(request)
        primary_id, secondary_id = str(body.get("primaryObjectId", "")), str(body.get("objectIdToMerge", ""))
        if not primary_id or not secondary_id or primary_id == secondary_id:
            raise ApiError(400, "VALIDATION_ERROR", "primaryObjectId and objectIdToMerge must be two different ids")
        primary, secondary = self._must_find(otype, primary_id), self._must_find(otype, secondary_id)
        source = self._source(request)
        at = now_ms()
        system = {"hs_object_id", "createdate", "hs_createdate", otype.modified_property, "hs_merged_object_ids"}
        unique = set(self._unique_names(otype.name))
        fill = {
            k: v
            for k, v in secondary.properties.items()
            if k not in system and k not in unique and primary.properties.get(k) is None
        }
        self._archive_record(secondary, source)
        self._set(primary, fill, at, source)
        merged = [*filter(None, primary.properties.get("hs_merged_object_ids", "").split(";")), secondary.id]
        primary.properties["hs_merged_object_ids"] = ";".join(merged)
        if otype.name == "contacts" and secondary.properties.get("email"):
            email = secondary.properties["email"]
            extra = [*filter(None, primary.properties.get("hs_additional_emails", "").split(";")), email]
            primary.properties["hs_additional_emails"] = ";".join(extra)
            self._unique.setdefault(("contacts", "email"), {})[email] = primary.id
        for (from_type, from_id, to_type, to_id), kinds in list(self._associations.items()):
            if from_type == otype.name and from_id == secondary.id:
                for category, type_id in kinds:
                    self._link(otype.name, primary.id, to_type, to_id, (category, type_id))
                self._unlink(otype.name, secondary.id, to_type, to_id)
        self._merged_into[secondary.id] = primary.id
        for old, new in list(self._merged_into.items()):
            if new == secondary.id:
                self._merged_into[old] = primary.id
        self.changes.append(
            Change(
                otype.name,
                primary.id,
                None,
                None,
                source[0],
                source[1],
                at,
                "merge",
                (
                    ("mergedObjectIds", [int(secondary.id)]),
                    ("primaryObjectId", int(primary.id)),
                    ("newObjectId", int(primary.id)),
                ),
            )
        )
        return Response.json(self._wire_all(primary))

    def _gdpr_delete(self, request: Request) -> Response:
        """POST /crm/v3/objects/contacts/gdpr-delete: erase for good; an unknown email is blocklisted."""
        otype = self.object_type(request.params["object_type"])
        if otype.name != "contacts":
            raise ApiError(404, "OBJECT_NOT_FOUND", f"Unknown path {request.method} {request.path}")
        self._require_object_scope(request, otype, write=True)
        body = self._body_dict(request)
        ident, id_property = str(body.get("objectId", "")), body.get("idProperty")
        rec = self._lookup(otype, ident, id_property, include_archived=True)
        if rec is None:
            if id_property == "email":
                self.gdpr_deleted.add(ident.lower())
                return Response(204)
            raise ApiError(
                404, "OBJECT_NOT_FOUND", "Object not found.  objectId are usually numeric.", context={"id": [ident]}
            )
        self._archive_record(rec, self._source(request))
        if rec.properties.get("email"):
            self.gdpr_deleted.add(rec.properties["email"])
        for key in [k for k in self._associations if (k[0], k[1]) == ("contacts", rec.id)]:
            self._unlink(*key)
        del self.records["contacts"][rec.id]
        source = self._source(request)
        self.changes.append(Change("contacts", rec.id, None, None, source[0], source[1], now_ms(), "privacyDeletion"))
        return Response(204)

    # =============================================================================================
    # Properties API [crm-reference §2.3; spec properties.json]

    def _require_schema_write(self, request: Request, otype: ObjectType) -> None:
        self._require_scope(request, f"crm.schemas.{otype.scope}.write")

    def _defined(self, otype: ObjectType, name: str, *, include_archived: bool = False) -> dict[str, Any]:
        definition = self.properties[otype.name].get(unquote(name))
        if definition is None or (definition["archived"] and not include_archived):
            raise ApiError(
                404,
                "OBJECT_NOT_FOUND",
                f"Unable to find property {unquote(name)} on {otype.name}",
                context={"propertyName": [unquote(name)]},
            )
        return definition

    def _list_properties(self, request: Request) -> Response:
        otype = self.object_type(request.params["object_type"])
        archived = request.arg("archived") == "true"
        return Response.json(
            {"results": [dict(d) for d in self.properties[otype.name].values() if d["archived"] == archived]}
        )

    def _get_property(self, request: Request) -> Response:
        otype = self.object_type(request.params["object_type"])
        return Response.json(
            self._defined(otype, request.params["name"], include_archived=request.arg("archived") == "true")
        )

    def _create_property(self, request: Request) -> Response:
        otype = self.object_type(request.params["object_type"])
        self._require_schema_write(request, otype)
        definition = self._new_property(otype, self._body_dict(request))
        location = f"{self.base_url}/crm/v3/properties/{otype.name}/{definition['name']}"
        return Response.json(definition, status=201, headers={"Location": location})

    def _new_property(self, otype: ObjectType, body: dict[str, Any]) -> dict[str, Any]:
        """Validate a PropertyCreate and store the custom definition (hubspotDefined false)."""
        missing = [k for k in ("name", "label", "type", "fieldType", "groupName") if not body.get(k)]
        if missing:
            raise ApiError(
                400,
                "VALIDATION_ERROR",
                f"Missing required fields: {', '.join(missing)}",
                context={"missingFields": missing},
            )
        name, kind, field_type = str(body["name"]), str(body["type"]), str(body["fieldType"])
        if not _PROPERTY_NAME.match(name) or name.startswith("hs_"):
            raise ApiError(
                400,
                "VALIDATION_ERROR",
                f"Property name {name!r} is not valid: use lower-case letters, digits and underscores, "
                "start with a letter, and do not start with hs_",
                context={"name": [name]},
            )
        if kind not in PROPERTY_TYPES:
            raise ApiError(400, "VALIDATION_ERROR", f"Unknown property type {kind!r}", context={"type": [kind]})
        if field_type not in PROPERTY_TYPES[kind]:
            raise ApiError(
                400,
                "VALIDATION_ERROR",
                f"fieldType {field_type!r} is not valid for type {kind!r}",
                context={"fieldType": [field_type]},
            )
        if str(body["groupName"]) not in self.groups[otype.name]:
            raise ApiError(
                400,
                "VALIDATION_ERROR",
                f"Property group {body['groupName']!r} does not exist",
                context={"groupName": [str(body["groupName"])]},
            )
        if name in self.properties[otype.name]:
            raise ApiError(
                409, "OBJECT_ALREADY_EXISTS", f"A property named {name!r} already exists.", context={"name": [name]}
            )
        options = self._clean_options(kind, field_type, body.get("options"))
        definition = _definition(
            name,
            str(body["label"]),
            kind,
            field_type,
            str(body["groupName"]),
            options=options,
            unique=bool(body.get("hasUniqueValue")),
            hubspot_defined=False,
            description=str(body.get("description") or ""),
            display_order=_whole(body.get("displayOrder"), -1),
        )
        definition["hidden"] = bool(body.get("hidden", False))
        definition["formField"] = bool(body.get("formField", True))
        definition["createdAt"] = definition["updatedAt"] = iso(now_ms())
        self.properties[otype.name][name] = definition
        return definition

    @staticmethod
    def _clean_options(kind: str, field_type: str, raw: Any) -> list[dict[str, Any]]:
        if raw is None:
            raw = []
        if not isinstance(raw, list) or not all(isinstance(o, dict) and "value" in o and "label" in o for o in raw):
            raise ApiError(400, "VALIDATION_ERROR", "options must be a list of {label, value} objects")
        if kind == "bool" and not raw:
            raw = [{"label": "Yes", "value": "true"}, {"label": "No", "value": "false"}]
        if kind == "enumeration" and field_type != "booleancheckbox" and not raw:
            raise ApiError(
                400, "VALIDATION_ERROR", "An enumeration property needs at least one option", context={"options": []}
            )
        values = [str(o["value"]) for o in raw]
        if len(set(values)) != len(values):
            raise ApiError(400, "VALIDATION_ERROR", "Option values must be unique", context={"options": values})
        return [
            {
                "label": str(o["label"]),
                "value": str(o["value"]),
                "displayOrder": _whole(o.get("displayOrder"), n),
                "hidden": bool(o.get("hidden", False)),
                "description": str(o.get("description") or ""),
            }
            for n, o in enumerate(raw)
        ]

    def _update_property(self, request: Request) -> Response:
        otype = self.object_type(request.params["object_type"])
        self._require_schema_write(request, otype)
        definition = self._defined(otype, request.params["name"])
        body = self._body_dict(request)
        editable = {"label", "description", "groupName", "options", "hidden", "displayOrder", "formField"}
        if definition["hubspotDefined"] and set(body) - {"options", "label", "description", "displayOrder"}:
            raise ApiError(400, "VALIDATION_ERROR", f"The definition of {definition['name']} is read only")
        unknown = set(body) - editable - {"type", "fieldType"}
        if unknown:
            raise ApiError(400, "VALIDATION_ERROR", f"Unknown fields: {', '.join(sorted(unknown))}")
        kind, field_type = (
            str(body.get("type", definition["type"])),
            str(body.get("fieldType", definition["fieldType"])),
        )
        if kind not in PROPERTY_TYPES or field_type not in PROPERTY_TYPES[kind]:
            raise ApiError(400, "VALIDATION_ERROR", f"fieldType {field_type!r} is not valid for type {kind!r}")
        if "groupName" in body and body["groupName"] not in self.groups[otype.name]:
            raise ApiError(400, "VALIDATION_ERROR", f"Property group {body['groupName']!r} does not exist")
        if "options" in body:
            definition["options"] = self._clean_options(kind, field_type, body["options"])
        for key, cast in (
            ("label", str),
            ("description", str),
            ("groupName", str),
            ("hidden", bool),
            ("formField", bool),
            ("displayOrder", lambda v: _whole(v, -1)),
        ):
            if key in body:
                definition[key] = cast(body[key])
        definition["type"], definition["fieldType"] = kind, field_type
        definition["updatedAt"] = iso(now_ms())
        return Response.json(definition)

    def _archive_property(self, request: Request) -> Response:
        otype = self.object_type(request.params["object_type"])
        self._require_schema_write(request, otype)
        definition = self._defined(otype, request.params["name"])
        if not definition["modificationMetadata"]["archivable"]:
            raise ApiError(
                400, "VALIDATION_ERROR", f"{definition['name']} is a HubSpot-defined property and cannot be archived"
            )
        definition["archived"] = True
        definition["archivedAt"] = iso(now_ms())
        return Response(204)

    def _batch_properties(self, request: Request) -> Response:
        otype = self.object_type(request.params["object_type"])
        action = request.params["action"]
        if action != "read":
            self._require_schema_write(request, otype)
        body = self._body_dict(request)
        inputs = self._inputs(body)
        started = now_ms()
        results, errors = [], []
        for item in inputs:
            try:
                if action == "read":
                    results.append(
                        self._defined(otype, str(item.get("name", "")), include_archived=bool(body.get("archived")))
                    )
                elif action == "create":
                    results.append(self._new_property(otype, item))
                else:
                    definition = self._defined(otype, str(item.get("name", "")))
                    if definition["modificationMetadata"]["archivable"]:
                        definition["archived"] = True
            except ApiError as exc:
                errors.append(exc.standard_error({"name": [str(item.get("name", ""))]}))
        if action == "archive":
            return Response(204)
        status = 207 if errors else (201 if action == "create" else 200)
        return Response.json(self._batch_body(results, errors, started), status=status)

    def _list_groups(self, request: Request) -> Response:
        otype = self.object_type(request.params["object_type"])
        return Response.json({"results": list(self.groups[otype.name].values())})

    def _get_group(self, request: Request) -> Response:
        otype = self.object_type(request.params["object_type"])
        group = self.groups[otype.name].get(unquote(request.params["group"]))
        if group is None:
            raise ApiError(404, "OBJECT_NOT_FOUND", f"Unable to find property group {request.params['group']}")
        return Response.json(group)

    def _create_group(self, request: Request) -> Response:
        otype = self.object_type(request.params["object_type"])
        self._require_schema_write(request, otype)
        body = self._body_dict(request)
        name, label = str(body.get("name") or ""), str(body.get("label") or "")
        if not _PROPERTY_NAME.match(name) or not label:
            raise ApiError(400, "VALIDATION_ERROR", "A property group needs a valid name and a label")
        if name in self.groups[otype.name]:
            raise ApiError(409, "OBJECT_ALREADY_EXISTS", f"A property group named {name!r} already exists.")
        group = {"name": name, "label": label, "displayOrder": _whole(body.get("displayOrder"), -1), "archived": False}
        self.groups[otype.name][name] = group
        return Response.json(
            group, status=201, headers={"Location": f"{self.base_url}/crm/v3/properties/{otype.name}/groups/{name}"}
        )

    # =============================================================================================
    # Associations v4 [crm-reference §2.4; spec associations.json, associationsSchema.json]

    def _types_between(self, from_type: str, to_type: str) -> list[AssociationType]:
        return [a for a in self.association_types if a.from_type == from_type and a.to_type == to_type]

    def _default_type(self, from_type: str, to_type: str) -> AssociationType:
        types = self._types_between(from_type, to_type)
        if not types:
            raise ApiError(400, "VALIDATION_ERROR", f"There are no association types between {from_type} and {to_type}")
        return next((a for a in types if a.label is None), types[0])

    def _association_type(self, from_type: str, to_type: str, category: str, type_id: int) -> AssociationType:
        for a in self._types_between(from_type, to_type):
            if a.type_id == type_id and a.category == category:
                return a
        raise ApiError(
            400,
            "VALIDATION_ERROR",
            f"{category} association type {type_id} is not valid from {from_type} to {to_type}",
            context={"associationTypeId": [str(type_id)]},
        )

    def _link(self, from_type: str, from_id: str, to_type: str, to_id: str, kind: tuple[str, int]) -> None:
        """Store an association and its inverse; a labeled HubSpot pair also implies the unlabeled one."""
        assoc = self._association_type(from_type, to_type, *kind)
        wanted = [assoc]
        if assoc.label is not None and assoc.category == "HUBSPOT_DEFINED":
            unlabeled = next((a for a in self._types_between(from_type, to_type) if a.label is None), None)
            if unlabeled:
                wanted.append(unlabeled)
        for a in wanted:
            self._associations.setdefault((from_type, from_id, to_type, to_id), set()).add((a.category, a.type_id))
            self._associations.setdefault((to_type, to_id, from_type, from_id), set()).add((a.category, a.inverse_id))

    def _unlink(
        self, from_type: str, from_id: str, to_type: str, to_id: str, only: set[tuple[str, int]] | None = None
    ) -> None:
        forward = self._associations.get((from_type, from_id, to_type, to_id), set())
        removing = forward if only is None else forward & only
        backward = self._associations.get((to_type, to_id, from_type, from_id), set())
        for category, type_id in list(removing):
            forward.discard((category, type_id))
            inverse = next(
                (
                    a.inverse_id
                    for a in self._types_between(from_type, to_type)
                    if a.type_id == type_id and a.category == category
                ),
                None,
            )
            backward.discard((category, inverse))
        for key, kinds in (
            ((from_type, from_id, to_type, to_id), forward),
            ((to_type, to_id, from_type, from_id), backward),
        ):
            if not kinds:
                self._associations.pop(key, None)

    def _parse_inline_associations(self, otype: ObjectType, raw: Any) -> list[tuple[str, str, tuple[str, int]]]:
        """Validate create-time ``associations`` [{to: {id}, types: [{associationCategory, associationTypeId}]}]."""
        if raw is None:
            return []
        if not isinstance(raw, list):
            raise ApiError(400, "VALIDATION_ERROR", "associations must be a list")
        links = []
        for item in raw:
            if not (
                isinstance(item, dict)
                and isinstance(item.get("to"), dict)
                and isinstance(item.get("types"), list)
                and all(isinstance(spec, dict) for spec in item["types"])
            ):
                raise ApiError(400, "VALIDATION_ERROR", "Each association needs to: {id} and a list of types")
            to_id = str(item["to"].get("id", ""))
            for spec in item["types"]:
                category = str(spec.get("associationCategory", "HUBSPOT_DEFINED"))
                type_id = _whole(spec.get("associationTypeId"), -1)
                assoc = next(
                    (
                        a
                        for a in self.association_types
                        if a.from_type == otype.name and a.type_id == type_id and a.category == category
                    ),
                    None,
                )
                if assoc is None:
                    raise ApiError(
                        400,
                        "VALIDATION_ERROR",
                        f"{category} association type {type_id} is not valid for {otype.name}",
                        context={"associationTypeId": [str(type_id)]},
                    )
                if self._lookup(OBJECT_TYPES[assoc.to_type], to_id) is None:
                    raise ApiError(
                        400,
                        "VALIDATION_ERROR",
                        f"Cannot associate to {assoc.to_type} {to_id}: the object does not exist",
                        context={"toObjectId": [to_id]},
                    )
                links.append((assoc.to_type, to_id, (category, type_id)))
        return links

    def _spec_with_label(self, from_type: str, to_type: str, category: str, type_id: int) -> dict[str, Any]:
        spec: dict[str, Any] = {"category": category, "typeId": type_id}
        assoc = next(
            (a for a in self._types_between(from_type, to_type) if a.type_id == type_id and a.category == category),
            None,
        )
        if assoc is not None and assoc.label is not None:
            spec["label"] = assoc.label
        return spec

    def _v3_associations(self, rec: _Record, wanted: Iterable[str]) -> dict[str, Any]:
        """The ``associations`` of a v3 read: {toType: {results: [{id, type}]}}."""
        out: dict[str, Any] = {}
        for name in wanted:
            try:
                to_type = self.object_type(name)
            except ApiError:
                continue
            results = []
            for (ft, fid, tt, tid), kinds in sorted(self._associations.items()):
                if (ft, fid, tt) != (rec.object_type, rec.id, to_type.name):
                    continue
                for category, type_id in sorted(kinds):
                    results.append({"id": tid, "type": self._v3_type_name(ft, tt, category, type_id)})
            if results:
                out[to_type.name] = {"results": results}
        return out

    def _v3_type_name(self, from_type: str, to_type: str, category: str, type_id: int) -> str:
        stem = f"{OBJECT_TYPES[from_type].singular}_to_{OBJECT_TYPES[to_type].singular}"
        types = self._types_between(from_type, to_type)
        assoc = next((a for a in types if a.type_id == type_id and a.category == category), None)
        if assoc is None or assoc.category != "HUBSPOT_DEFINED":
            return re.sub(r"[^a-z0-9]+", "_", (assoc.label if assoc and assoc.label else stem).lower())
        if assoc.label is None and any(a.label for a in types):
            return f"{stem}_unlabeled"
        return stem

    def _pair(self, request: Request) -> tuple[ObjectType, ObjectType]:
        return self.object_type(request.params["from_type"]), self.object_type(request.params["to_type"])

    def _labels(self, request: Request) -> Response:
        from_t, to_t = self._pair(request)
        return Response.json(
            {
                "results": [
                    self._spec_with_label(from_t.name, to_t.name, a.category, a.type_id)
                    for a in self._types_between(from_t.name, to_t.name)
                ]
            }
        )

    def _existing(self, otype: ObjectType, ident: str) -> str:
        rec = self._lookup(otype, ident)
        if rec is None:
            raise ApiError(
                400,
                "VALIDATION_ERROR",
                f"{otype.singular.title()} {unquote(ident)} does not exist",
                context={"objectId": [unquote(ident)]},
            )
        return rec.id

    def _associate_default(self, request: Request) -> Response:
        from_t, to_t = self._pair(request)
        self._require_object_scope(request, from_t, write=True)
        from_id = self._existing(from_t, request.params["from_id"])
        to_id = self._existing(to_t, request.params["to_id"])
        started = now_ms()
        assoc = self._default_type(from_t.name, to_t.name)
        self._link(from_t.name, from_id, to_t.name, to_id, (assoc.category, assoc.type_id))
        return Response.json(self._batch_body(self._default_results(assoc, from_id, to_id), [], started))

    @staticmethod
    def _default_results(assoc: AssociationType, from_id: str, to_id: str) -> list[dict[str, Any]]:
        return [
            {
                "from": {"id": from_id},
                "to": {"id": to_id},
                "associationSpec": {"associationCategory": assoc.category, "associationTypeId": assoc.type_id},
            },
            {
                "from": {"id": to_id},
                "to": {"id": from_id},
                "associationSpec": {"associationCategory": assoc.category, "associationTypeId": assoc.inverse_id},
            },
        ]

    def _labels_between(self, from_t: ObjectType, from_id: str, to_t: ObjectType, to_id: str) -> dict[str, Any]:
        labels = sorted(
            self._spec_with_label(from_t.name, to_t.name, c, t).get("label", "")
            for c, t in self._associations.get((from_t.name, from_id, to_t.name, to_id), set())
        )
        return {
            "fromObjectTypeId": from_t.type_id,
            "fromObjectId": from_id,
            "toObjectTypeId": to_t.type_id,
            "toObjectId": to_id,
            "labels": [label for label in labels if label],
        }

    def _parse_specs(self, raw: Any) -> list[tuple[str, int]]:
        if not isinstance(raw, list) or not raw:
            raise ApiError(400, "VALIDATION_ERROR", "Expected a non-empty list of association specs")
        try:
            return [(str(s.get("associationCategory", "HUBSPOT_DEFINED")), int(s["associationTypeId"])) for s in raw]
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise ApiError(
                400, "VALIDATION_ERROR", "Each association spec needs associationCategory and associationTypeId"
            ) from exc

    def _associate_labels(self, request: Request) -> Response:
        from_t, to_t = self._pair(request)
        self._require_object_scope(request, from_t, write=True)
        specs = self._parse_specs(self._json(request))
        from_id = self._existing(from_t, request.params["from_id"])
        to_id = self._existing(to_t, request.params["to_id"])
        for kind in specs:
            self._association_type(from_t.name, to_t.name, *kind)  # all valid before any is stored
        for kind in specs:
            self._link(from_t.name, from_id, to_t.name, to_id, kind)
        return Response.json(self._labels_between(from_t, from_id, to_t, to_id), status=201)

    def _dissociate(self, request: Request) -> Response:
        from_t, to_t = self._pair(request)
        self._require_object_scope(request, from_t, write=True)
        self._unlink(from_t.name, unquote(request.params["from_id"]), to_t.name, unquote(request.params["to_id"]))
        return Response(204)

    def _targets(self, from_t: ObjectType, from_id: str, to_t: ObjectType) -> list[dict[str, Any]]:
        rows = [
            (tid, kinds)
            for (ft, fid, tt, tid), kinds in self._associations.items()
            if (ft, fid, tt) == (from_t.name, from_id, to_t.name) and kinds
        ]
        return [
            {
                "toObjectId": tid,
                "associationTypes": [self._spec_with_label(from_t.name, to_t.name, c, t) for c, t in sorted(kinds)],
            }
            for tid, kinds in sorted(rows, key=lambda row: int(row[0]) if row[0].isdigit() else 0)
        ]

    def _list_associations(self, request: Request) -> Response:
        from_t, to_t = self._pair(request)
        self._require_object_scope(request, from_t, write=False)
        from_id = unquote(request.params["from_id"])
        limit = self._int_arg(request, "limit", 500, 1, 500)
        after = request.arg("after") or "0"
        offset = int(after) if after.isdigit() else 0
        rows = self._targets(from_t, from_id, to_t)
        body: dict[str, Any] = {"results": rows[offset : offset + limit]}
        if offset + limit < len(rows):
            body["paging"] = {"next": {"after": str(offset + limit)}}
        return Response.json(body)

    def _batch_associations(self, request: Request) -> Response:
        from_t, to_t = self._pair(request)
        action = request.params["action"]
        self._require_object_scope(request, from_t, write=action != "read")
        inputs = self._inputs(self._body_dict(request))
        started = now_ms()
        results: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        for item in inputs:
            # batch/read names the source as {"id"}; the other actions as {"from": {"id"}}
            from_id = str(item.get("id", "") if action == "read" else (item.get("from") or {}).get("id", ""))
            try:
                if action == "read":
                    targets = self._targets(from_t, from_id, to_t)
                    if not targets:
                        raise ApiError(
                            404, "OBJECT_NOT_FOUND", f"No {to_t.name} are associated with {from_t.singular} {from_id}."
                        )
                    results.append({"from": {"id": from_id}, "to": targets})
                elif action == "archive":
                    for target in item.get("to") or []:
                        self._unlink(from_t.name, from_id, to_t.name, str(target.get("id", "")))
                elif action == "labels/archive":
                    only = set(self._parse_specs(item.get("types")))
                    self._unlink(from_t.name, from_id, to_t.name, str((item.get("to") or {}).get("id", "")), only)
                else:
                    fid = self._existing(from_t, from_id)
                    tid = self._existing(to_t, str((item.get("to") or {}).get("id", "")))
                    if action == "create":
                        kinds = self._parse_specs(item.get("types"))
                        for kind in kinds:
                            self._association_type(from_t.name, to_t.name, *kind)
                        for kind in kinds:
                            self._link(from_t.name, fid, to_t.name, tid, kind)
                        results.append(self._labels_between(from_t, fid, to_t, tid))
                    else:
                        assoc = self._default_type(from_t.name, to_t.name)
                        self._link(from_t.name, fid, to_t.name, tid, (assoc.category, assoc.type_id))
                        results.extend(self._default_results(assoc, fid, tid))
            except ApiError as exc:
                errors.append(exc.standard_error({"fromObjectId": [from_id]}))
        if action in ("archive", "labels/archive"):
            return Response(204)
        if action == "associate/default":  # one answer shape for both outcomes [spec]
            return Response.json(self._batch_body(results, errors, started), status=200)
        status = 207 if errors else (201 if action == "create" else 200)
        return Response.json(self._batch_body(results, errors, started), status=status)

    # =============================================================================================
    # Account information [doc: developers.hubspot.com api-reference account-info-v3 "Get account details"]

    def _account_details(self, request: Request) -> Response:
        """GET /account-info/v3/details: the portal of the calling token. Private-app tokens have no
        entry at /oauth/v1/access-tokens/{token}, so this is how their portal is read."""
        return Response.json(
            {
                "portalId": self.hub_id,
                "accountType": "STANDARD",
                "timeZone": self.time_zone,
                "companyCurrency": self.company_currency,
                "additionalCurrencies": list(self.additional_currencies),
                "utcOffset": "+00:00",
                "utcOffsetMilliseconds": 0,
                "uiDomain": "app.hubspot.com",
                "dataHostingLocation": "na1",
            }
        )

    # =============================================================================================
    # Owners and pipelines [spec crmOwners.json, pipelines.json]

    def _list_owners(self, request: Request) -> Response:
        self._require_scope(request, "crm.objects.owners.read")
        email = (request.arg("email") or "").lower()
        rows = [o for o in self.owners if not email or o["email"].lower() == email]
        limit = self._int_arg(request, "limit", 100, 1, 500)
        after = request.arg("after") or "0"
        offset = int(after) if after.isdigit() else 0
        body: dict[str, Any] = {"results": rows[offset : offset + limit]}
        if offset + limit < len(rows):
            body["paging"] = {"next": {"after": str(offset + limit)}}
        return Response.json(body)

    def _get_owner(self, request: Request) -> Response:
        self._require_scope(request, "crm.objects.owners.read")
        key = "userId" if request.arg("idProperty") == "userId" else "id"
        owner = next((o for o in self.owners if str(o[key]) == request.params["owner_id"]), None)
        if owner is None:
            raise ApiError(404, "OBJECT_NOT_FOUND", f"Owner {request.params['owner_id']} not found")
        return Response.json(owner)

    def _pipeline(self, request: Request) -> dict[str, Any]:
        otype = self.object_type(request.params["object_type"])
        pipeline = next((p for p in self.pipelines.get(otype.name, []) if p["id"] == request.params["pipeline"]), None)
        if pipeline is None:
            raise ApiError(404, "OBJECT_NOT_FOUND", f"Unable to find pipeline {request.params['pipeline']}")
        return pipeline

    def _list_pipelines(self, request: Request) -> Response:
        otype = self.object_type(request.params["object_type"])
        return Response.json({"results": self.pipelines.get(otype.name, [])})

    def _get_pipeline(self, request: Request) -> Response:
        return Response.json(self._pipeline(request))

    def _list_stages(self, request: Request) -> Response:
        return Response.json({"results": self._pipeline(request)["stages"]})

    def _get_stage(self, request: Request) -> Response:
        stage = next((s for s in self._pipeline(request)["stages"] if s["id"] == request.params["stage"]), None)
        if stage is None:
            raise ApiError(404, "OBJECT_NOT_FOUND", f"Unable to find stage {request.params['stage']}")
        return Response.json(stage)

    # =============================================================================================
    # Webhooks out [crm-reference §2.7]

    def webhook_event(
        self,
        subscription_type: str,
        object_id: str | int,
        *,
        property_name: str | None = None,
        property_value: str | None = None,
        change_source: str = "CRM_UI",
        source_id: str | None = None,
        occurred_at: int | None = None,
        attempt_number: int = 0,
        subscription_id: int = 4_100_001,
        **extra: Any,
    ) -> dict[str, Any]:
        """One event as HubSpot sends it; ``changeFlag`` follows the subscription type."""
        event: dict[str, Any] = {
            "eventId": next(self._event_ids),
            "subscriptionId": subscription_id,
            "portalId": self.hub_id,
            "appId": self.app_id,
            "occurredAt": occurred_at if occurred_at is not None else now_ms(),
            "subscriptionType": subscription_type,
            "attemptNumber": attempt_number,
            "objectId": int(object_id),
            "changeSource": change_source,
        }
        flag = {"creation": "NEW", "deletion": "DELETED", "merge": "MERGED", "privacyDeletion": "PRIVACY_DELETED"}.get(
            subscription_type.split(".")[-1]
        )
        if flag:
            event["changeFlag"] = flag
        if property_name is not None:
            event["propertyName"] = property_name
            event["propertyValue"] = property_value if property_value is not None else ""
        if source_id is not None:
            event["sourceId"] = source_id
        event.update(extra)
        return event

    def events_for_changes(self, changes: Iterable[Change] | None = None) -> list[dict[str, Any]]:
        """Webhook events for entries of the change log (all of it by default)."""
        with self.lock:
            chosen = list(self.changes if changes is None else changes)
            return [
                self.webhook_event(
                    f"{OBJECT_TYPES[c.object_type].singular}.{c.kind}",
                    c.object_id,
                    property_name=c.property,
                    property_value=c.value,
                    change_source=c.source,
                    source_id=c.source_id,
                    occurred_at=c.at,
                    **dict(c.extra),
                )
                for c in chosen
            ]

    def make_webhook_request(
        self,
        target_url: str,
        events: list[dict[str, Any]],
        client_secret: str | None = None,
        *,
        method: str = "POST",
        timestamp_ms: int | None = None,
    ) -> tuple[dict[str, str], bytes]:
        """The headers and body of a signed webhook delivery, without sending it.

        Signed with v3 (``X-HubSpot-Signature-v3`` over method + URL + body + timestamp) and, as
        HubSpot also does, v1 (hex SHA-256 of secret + body) [crm-reference §2.7].
        """
        secret = client_secret if client_secret is not None else self.client.client_secret
        body = json.dumps(events, separators=(",", ":")).encode()
        timestamp = timestamp_ms if timestamp_ms is not None else now_ms()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "HubSpot Connect 2.0 (http://dev.hubspot.com/) (namespace: webhooks-nexus)",
            "X-HubSpot-Request-Timestamp": str(timestamp),
            "X-HubSpot-Signature-v3": sign_v3(secret, method, target_url, body, timestamp),
            "X-HubSpot-Signature": hashlib.sha256(secret.encode() + body).hexdigest(),
            "X-HubSpot-Signature-Version": "v1",
        }
        return headers, body

    def send_webhook(
        self, target_url: str, events: list[dict[str, Any]], client_secret: str | None = None, *, timeout: float = 5.0
    ) -> tuple[int, bytes]:
        """POST a signed batch of events to ``target_url``; return (status, body). Never raises on HTTP errors."""
        headers, body = self.make_webhook_request(target_url, events, client_secret)
        request = urllib.request.Request(target_url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:
                return answer.status, answer.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    # =============================================================================================
    # Inspection and set-up helpers for tests (thread-safe)

    def _record_dict(self, rec: _Record) -> dict[str, Any]:
        return {
            "id": rec.id,
            "properties": dict(rec.properties),
            "createdAt": iso(rec.created_ms),
            "updatedAt": iso(rec.updated_ms),
            "archived": rec.archived,
        }

    def objects(self, object_type: str, *, include_archived: bool = False) -> list[dict[str, Any]]:
        """Records of a type as plain dicts (id, properties, createdAt, updatedAt, archived), by id."""
        otype = self.object_type(object_type)
        with self.lock:
            return [
                self._record_dict(r)
                for r in sorted(self.records[otype.name].values(), key=lambda r: int(r.id))
                if include_archived or not r.archived
            ]

    def get(self, object_type: str, object_id: str | int) -> dict[str, Any] | None:
        otype = self.object_type(object_type)
        with self.lock:
            rec = self.records[otype.name].get(str(object_id))
            return self._record_dict(rec) if rec else None

    def find_contact(self, email: str) -> dict[str, Any] | None:
        with self.lock:
            rec = self._lookup(OBJECT_TYPES["contacts"], email.strip().lower(), "email")
            return self._record_dict(rec) if rec else None

    def associations_of(
        self, object_type: str, object_id: str | int, to_type: str | None = None
    ) -> list[dict[str, Any]]:
        """[{toObjectType, toObjectId, associationTypeId, category, label}] for one record."""
        otype = self.object_type(object_type)
        wanted = self.object_type(to_type).name if to_type else None
        with self.lock:
            rows = []
            for (ft, fid, tt, tid), kinds in sorted(self._associations.items()):
                if ft != otype.name or fid != str(object_id) or (wanted and tt != wanted):
                    continue
                for category, type_id in sorted(kinds):
                    label = self._spec_with_label(ft, tt, category, type_id).get("label")
                    rows.append(
                        {
                            "toObjectType": tt,
                            "toObjectId": tid,
                            "associationTypeId": type_id,
                            "category": category,
                            "label": label,
                        }
                    )
            return rows

    def add_custom_property(
        self,
        object_type: str,
        name: str,
        type: str,
        fieldType: str,
        options: list[dict[str, Any]] | None = None,
        hasUniqueValue: bool = False,
        label: str | None = None,
        groupName: str | None = None,
    ) -> dict[str, Any]:
        """Define a custom property as an admin would (names as in the Properties API)."""
        otype = self.object_type(object_type)
        with self.lock:
            return dict(
                self._new_property(
                    otype,
                    {
                        "name": name,
                        "label": label or name.replace("_", " ").title(),
                        "type": type,
                        "fieldType": fieldType,
                        "groupName": groupName or otype.group,
                        "options": options,
                        "hasUniqueValue": hasUniqueValue,
                    },
                )
            )

    def add_association_label(self, from_type: str, to_type: str, label: str) -> int:
        """A USER_DEFINED association label between two types (both directions); returns its type id."""
        from_t, to_t = self.object_type(from_type), self.object_type(to_type)
        with self.lock:
            type_id, inverse_id = next(self._label_ids), next(self._label_ids)
            self.association_types.append(
                AssociationType(from_t.name, to_t.name, type_id, inverse_id, label, "USER_DEFINED")
            )
            self.association_types.append(
                AssociationType(to_t.name, from_t.name, inverse_id, type_id, label, "USER_DEFINED")
            )
            return type_id

    def create_record(
        self, object_type: str, properties: dict[str, Any], associations: list[dict[str, Any]] | None = None
    ) -> str:
        """Create a record as a user would in HubSpot (validated; change source CRM_UI); returns its id."""
        otype = self.object_type(object_type)
        with self.lock:
            return self._create_record(
                otype, self._validate(otype.name, properties), associations, self._source(None)
            ).id

    def edit_in_ui(self, object_type: str, object_id: str | int, properties: dict[str, Any]) -> None:
        """Change properties as a HubSpot user would (source CRM_UI), e.g. to drive inbound-sync tests."""
        otype = self.object_type(object_type)
        with self.lock:
            rec = self._must_find(otype, str(object_id))
            self._update_record(rec, self._validate(otype.name, properties), self._source(None))

    def set_modified(self, object_type: str, object_ids: Iterable[str | int], at_ms: int) -> None:
        """Give records one modification time, as a bulk import or workflow does (to test paging
        over records that share a ``lastmodifieddate``)."""
        otype = self.object_type(object_type)
        with self.lock:
            for object_id in object_ids:
                rec = self._must_find(otype, str(object_id))
                rec.updated_ms = at_ms
                rec.properties[otype.modified_property] = iso(at_ms)

    def changes_since(self, at_ms: int = 0, source: str | None = None) -> list[Change]:
        with self.lock:
            return [c for c in self.changes if c.at >= at_ms and (source is None or c.source == source)]


def build(**options: Any) -> HubSpotEmulator:
    """A HubSpot emulator with ``options`` passed to the constructor (see HubSpotEmulator)."""
    return HubSpotEmulator(**options)
