"""The sandbox org's sObjects: field metadata, the standard objects sync touches, and describe.

Field properties follow the describe shape in crm-reference §1.3 (name, label, type, length, custom,
createable, updateable, nillable, defaultedOnCreate, externalId, unique, picklistValues, referenceTo).
The standard objects carry the fields a sync reads and writes (§1.2, §1.4); the required-field lists
for Task, Event and Opportunity are the commonly documented ones (§12 marks them UNVERIFIED).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

TEXT_TYPES = frozenset({"string", "email", "phone", "url", "textarea", "picklist", "multipicklist", "combobox"})
NUMBER_TYPES = frozenset({"int", "double", "currency", "percent"})
SOAP_TYPES = {
    "id": "tns:ID",
    "reference": "tns:ID",
    "boolean": "xsd:boolean",
    "date": "xsd:date",
    "datetime": "xsd:dateTime",
    "double": "xsd:double",
    "currency": "xsd:double",
    "percent": "xsd:double",
    "int": "xsd:int",
    "base64": "xsd:base64Binary",
}


def label_for(name: str) -> str:
    """``LastName`` → ``Last Name``; ``Capsule_Score__c`` → ``Capsule Score``; ``AccountId`` → ``Account ID``."""
    base = name.removesuffix("__c").replace("_", " ")
    spaced = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", base)
    return re.sub(r"\bId$", "ID", spaced)


@dataclass
class Field:
    name: str
    type: str
    label: str = ""
    length: int = 0
    custom: bool = False
    createable: bool = True
    updateable: bool = True
    nillable: bool = True
    defaulted: bool = False
    default: Any = None
    external_id: bool = False
    unique: bool = False
    case_sensitive: bool = False
    picklist: tuple[str, ...] = ()
    restricted: bool = False
    reference_to: tuple[str, ...] = ()
    relationship_name: str | None = None
    cascade_delete: bool = False  # deleting the referenced record deletes this one
    precision: int = 0
    scale: int = 0
    filterable: bool = True
    name_field: bool = False

    def __post_init__(self) -> None:
        self.label = self.label or label_for(self.name)
        if self.type == "reference" and self.relationship_name is None:
            self.relationship_name = self.name[:-3] + "__r" if self.custom else self.name.removesuffix("Id")

    @property
    def required(self) -> bool:
        """What an insert must supply: createable, not nillable and not defaulted by the platform."""
        return self.createable and not self.nillable and not self.defaulted and self.type != "boolean"

    def describe(self) -> dict[str, Any]:
        text = self.type in TEXT_TYPES or self.type in ("id", "reference")
        return {
            "name": self.name,
            "label": self.label,
            "type": self.type,
            "soapType": SOAP_TYPES.get(self.type, "xsd:string"),
            "length": self.length if text else 0,
            "byteLength": self.length * 3 if text else 0,
            "precision": self.precision,
            "scale": self.scale,
            "digits": self.precision if self.type == "int" else 0,
            "custom": self.custom,
            "createable": self.createable,
            "updateable": self.updateable,
            "nillable": self.nillable,
            "defaultedOnCreate": self.defaulted,
            "defaultValue": self.default if self.type in ("boolean",) else None,
            "externalId": self.external_id,
            "unique": self.unique,
            "caseSensitive": self.case_sensitive,
            "idLookup": self.type == "id" or self.external_id or self.name in ("Email", "Name"),
            "nameField": self.name_field,
            "calculated": not self.createable and not self.updateable and self.name_field,
            "filterable": self.filterable and self.type != "base64",
            "sortable": self.type not in ("base64", "textarea", "multipicklist"),
            "groupable": self.type not in ("base64", "textarea", "double", "currency", "percent", "datetime"),
            "autoNumber": False,
            "restrictedPicklist": self.restricted,
            "picklistValues": [
                {"value": v, "label": v, "active": True, "defaultValue": v == self.default, "validFor": None}
                for v in self.picklist
            ],
            "referenceTo": list(self.reference_to),
            "relationshipName": self.relationship_name,
            "cascadeDelete": self.cascade_delete,
            "htmlFormatted": False,
            "inlineHelpText": None,
        }


@dataclass
class SObject:
    name: str
    key_prefix: str
    label: str = ""
    label_plural: str = ""
    createable: bool = True
    updateable: bool = True
    deletable: bool = True
    custom: bool = False
    searchable: bool = True
    fields: dict[str, Field] = field(default_factory=dict)  # keyed by lower-case name

    def __post_init__(self) -> None:
        self.label = self.label or label_for(self.name)
        self.label_plural = self.label_plural or self.label + "s"

    def add(self, *fields: Field) -> None:
        for f in fields:
            self.fields[f.name.lower()] = f

    def field(self, name: str) -> Field | None:
        return self.fields.get(name.lower())

    def relationship(self, name: str) -> Field | None:
        lowered = name.lower()
        for f in self.fields.values():
            if f.relationship_name and f.relationship_name.lower() == lowered:
                return f
        return None

    def urls(self, base: str) -> dict[str, str]:
        path = f"{base}/sobjects/{self.name}"
        return {"sobject": path, "describe": f"{path}/describe", "rowTemplate": f"{path}/{{ID}}"}

    def summary(self, base: str) -> dict[str, Any]:
        """The describe-global entry (crm-reference §1.3)."""
        return {
            "name": self.name,
            "label": self.label,
            "labelPlural": self.label_plural,
            "keyPrefix": self.key_prefix,
            "custom": self.custom,
            "createable": self.createable,
            "updateable": self.updateable,
            "deletable": self.deletable,
            "queryable": True,
            "retrieveable": True,
            "searchable": self.searchable,
            "layoutable": self.createable,
            "replicateable": True,
            "triggerable": True,
            "undeletable": self.deletable,
            "mergeable": self.name in MERGEABLE,
            "customSetting": False,
            "deprecatedAndHidden": False,
            "urls": self.urls(base),
        }

    def describe(self, base: str, schema: dict[str, SObject]) -> dict[str, Any]:
        children = [
            {
                "childSObject": other.name,
                "field": f.name,
                "cascadeDelete": f.cascade_delete,
                "relationshipName": None,
            }
            for other in schema.values()
            for f in other.fields.values()
            if f.type == "reference" and self.name in f.reference_to
        ]
        return {
            **self.summary(base),
            "fields": [f.describe() for f in self.fields.values()],
            "childRelationships": children,
            "recordTypeInfos": [
                {
                    "name": "Master",
                    "developerName": "Master",
                    "recordTypeId": "012000000000000AAA",
                    "available": True,
                    "defaultRecordTypeMapping": True,
                    "master": True,
                }
            ],
            "supportedScopes": [{"name": "everything", "label": "All " + self.label_plural}],
        }


MERGEABLE = frozenset({"Account", "Contact", "Lead"})

# ---------------------------------------------------------------------------------------------
# Field constructors (short, so the object tables below read like a describe)


def text(name: str, length: int = 255, **kw: Any) -> Field:
    return Field(name, kw.pop("type", "string"), length=length, **kw)


def required(name: str, length: int = 255, **kw: Any) -> Field:
    return Field(name, kw.pop("type", "string"), length=length, nillable=False, **kw)


def pick(name: str, values: tuple[str, ...], default: str | None = None, restricted: bool = False, **kw: Any) -> Field:
    return Field(
        name,
        kw.pop("type", "picklist"),
        length=255,
        picklist=values,
        default=default,
        defaulted=default is not None,
        restricted=restricted,
        **kw,
    )


def ref(name: str, *to: str, **kw: Any) -> Field:
    return Field(name, "reference", length=18, reference_to=tuple(to), **kw)


def flag(name: str, default: bool = False, **kw: Any) -> Field:
    return Field(name, "boolean", nillable=False, defaulted=True, default=default, **kw)


def readonly(name: str, type_: str, **kw: Any) -> Field:
    return Field(name, type_, createable=False, updateable=False, **kw)


def system_fields() -> list[Field]:
    """Id and the audit fields every object carries (crm-reference §1.7 polls on SystemModstamp)."""
    return [
        Field("Id", "id", length=18, createable=False, updateable=False, nillable=False, defaulted=True),
        readonly("IsDeleted", "boolean", nillable=False, defaulted=True, default=False),
        readonly("CreatedDate", "datetime", nillable=False, defaulted=True),
        readonly("CreatedById", "reference", length=18, reference_to=("User",), nillable=False, defaulted=True),
        readonly("LastModifiedDate", "datetime", nillable=False, defaulted=True),
        readonly("LastModifiedById", "reference", length=18, reference_to=("User",), nillable=False, defaulted=True),
        readonly("SystemModstamp", "datetime", nillable=False, defaulted=True),
    ]


def owner() -> Field:
    return ref("OwnerId", "User", nillable=False, defaulted=True)


def custom_field(
    name: str,
    type_: str,
    length: int | None = None,
    picklist: tuple[str, ...] | list[str] | None = None,
    external_id: bool = False,
    unique: bool = False,
    label: str | None = None,
    precision: int | None = None,
    scale: int | None = None,
    default: Any = None,
) -> Field:
    """A custom field as an admin (or the Tooling API) would define it; ``name`` must end in ``__c``."""
    if not name.endswith("__c"):
        raise ValueError(f"custom field names end in __c: {name!r}")
    if type_ == "boolean":
        return Field(name, type_, label=label or "", custom=True, nillable=False, defaulted=True, default=bool(default))
    if type_ in ("picklist", "multipicklist"):
        return Field(name, type_, label=label or "", custom=True, length=255, picklist=tuple(picklist or ()))
    if type_ in ("double", "currency", "percent", "int"):
        return Field(
            name,
            type_,
            label=label or "",
            custom=True,
            external_id=external_id,
            unique=unique,
            precision=precision if precision is not None else 18,
            scale=scale if scale is not None else (0 if type_ == "int" else 2),
        )
    default_length = {"textarea": 32768, "email": 80, "phone": 40, "url": 255}.get(type_, 255)
    sized = type_ in TEXT_TYPES or type_ == "string"
    return Field(
        name,
        type_,
        label=label or "",
        custom=True,
        length=(length or default_length) if sized else 0,
        external_id=external_id,
        unique=unique,
    )


# ---------------------------------------------------------------------------------------------
# The standard objects

LEAD_SOURCES = ("Web", "Phone Inquiry", "Partner Referral", "Purchased List", "Other")
LEAD_STATUSES = ("Open - Not Contacted", "Working - Contacted", "Closed - Converted", "Closed - Not Converted")
TASK_STATUSES = ("Not Started", "In Progress", "Completed", "Waiting on someone else", "Deferred")
OPPORTUNITY_STAGES = {  # stage → default probability
    "Prospecting": 10,
    "Qualification": 10,
    "Needs Analysis": 20,
    "Value Proposition": 50,
    "Id. Decision Makers": 60,
    "Perception Analysis": 70,
    "Proposal/Price Quote": 75,
    "Negotiation/Review": 90,
    "Closed Won": 100,
    "Closed Lost": 0,
}
CONTACT_ROLES = (
    "Business User",
    "Decision Maker",
    "Economic Buyer",
    "Economic Decision Maker",
    "Evaluator",
    "Executive Sponsor",
    "Influencer",
    "Technical Buyer",
    "Other",
)


def _person_fields() -> list[Field]:
    return [
        pick("Salutation", ("Mr.", "Ms.", "Mrs.", "Dr.", "Prof.")),
        text("FirstName", 40),
        required("LastName", 80),
        readonly("Name", "string", length=121, name_field=True),
        text("Email", 80, type="email"),
        text("Phone", 40, type="phone"),
        text("MobilePhone", 40, type="phone"),
        text("Title", 128),
        pick("LeadSource", LEAD_SOURCES),
        flag("HasOptedOutOfEmail"),
        flag("DoNotCall"),
        text("Description", 32000, type="textarea"),
        owner(),
        custom_field("Capsule_Prospect_Id__c", "string", 255, external_id=True, unique=True),
    ]


def standard_objects() -> dict[str, SObject]:
    user = SObject("User", "005", createable=False, deletable=False)
    user.add(
        *system_fields(),
        required("Username", 80),
        text("FirstName", 40),
        required("LastName", 80),
        readonly("Name", "string", length=121, name_field=True),
        required("Email", 128, type="email"),
        required("Alias", 8),
        flag("IsActive", True),
        pick("UserType", ("Standard", "AutomatedProcess"), "Standard", restricted=True),
    )
    account = SObject("Account", "001")
    account.add(
        *system_fields(),
        required("Name", 255, name_field=True),
        text("Website", 255, type="url"),
        text("Phone", 40, type="phone"),
        pick("Industry", ("Technology", "Finance", "Healthcare", "Retail", "Education", "Other")),
        pick("Type", ("Prospect", "Customer - Direct", "Customer - Channel", "Partner", "Other")),
        text("BillingCity", 40),
        text("BillingCountry", 80),
        Field("NumberOfEmployees", "int", precision=8),
        Field("AnnualRevenue", "currency", precision=18, scale=0),
        text("Description", 32000, type="textarea"),
        owner(),
        readonly("MasterRecordId", "reference", length=18, reference_to=("Account",)),
    )
    contact = SObject("Contact", "003")
    contact.add(
        *system_fields(),
        *_person_fields(),
        ref("AccountId", "Account", cascade_delete=True),
        text("Department", 80),
        text("MailingCity", 40),
        text("MailingCountry", 80),
        readonly("MasterRecordId", "reference", length=18, reference_to=("Contact",)),
    )
    lead = SObject("Lead", "00Q")
    lead.add(
        *system_fields(),
        *_person_fields(),
        required("Company", 255),
        pick("Status", LEAD_STATUSES, "Open - Not Contacted", restricted=True),
        pick("Rating", ("Hot", "Warm", "Cold")),
        pick("Industry", ("Technology", "Finance", "Healthcare", "Retail", "Education", "Other")),
        text("Website", 255, type="url"),
        readonly("IsConverted", "boolean", nillable=False, defaulted=True, default=False),
        readonly("ConvertedDate", "date"),
        readonly("ConvertedContactId", "reference", length=18, reference_to=("Contact",)),
        readonly("ConvertedAccountId", "reference", length=18, reference_to=("Account",)),
        readonly("MasterRecordId", "reference", length=18, reference_to=("Lead",)),
    )
    task = SObject("Task", "00T", label_plural="Tasks")
    task.add(
        *system_fields(),
        text("Subject", 255, type="combobox", picklist=("Call", "Send Letter", "Send Quote", "Other")),
        pick("Status", TASK_STATUSES, "Not Started", restricted=True, nillable=False),
        pick("Priority", ("High", "Normal", "Low"), "Normal", restricted=True, nillable=False),
        Field("ActivityDate", "date"),
        text("Description", 32000, type="textarea"),
        ref("WhoId", "Contact", "Lead", cascade_delete=True),
        ref("WhatId", "Account", "Opportunity", cascade_delete=True),
        pick("TaskSubtype", ("Task", "Email", "ListEmail", "Cadence", "Call", "LinkedIn"), "Task", updateable=False),
        pick("Type", ("Call", "Email", "Meeting", "Other")),
        readonly("IsClosed", "boolean", nillable=False, defaulted=True, default=False),
        owner(),
        custom_field("Capsule_Event_Id__c", "string", 255, external_id=True, unique=True),
    )
    event = SObject("Event", "00U")
    event.add(
        *system_fields(),
        text("Subject", 255, type="combobox", picklist=("Call", "Meeting", "Other")),
        Field("StartDateTime", "datetime"),
        Field("EndDateTime", "datetime"),
        Field("ActivityDateTime", "datetime"),
        Field("ActivityDate", "date"),
        Field("DurationInMinutes", "int", precision=8),
        flag("IsAllDayEvent"),
        text("Location", 255),
        text("Description", 32000, type="textarea"),
        ref("WhoId", "Contact", "Lead", cascade_delete=True),
        ref("WhatId", "Account", "Opportunity", cascade_delete=True),
        owner(),
        custom_field("Capsule_Event_Id__c", "string", 255, external_id=True, unique=True),
    )
    note = SObject("Note", "002")
    note.add(
        *system_fields(),
        ref(
            "ParentId",
            "Account",
            "Contact",
            "Lead",
            "Opportunity",
            nillable=False,
            updateable=False,
            cascade_delete=True,
        ),
        required("Title", 80, name_field=True),
        text("Body", 32000, type="textarea"),
        flag("IsPrivate"),
        owner(),
    )
    content_note = SObject("ContentNote", "069", label="Note", label_plural="Notes")
    content_note.add(
        *system_fields(),
        required("Title", 255, name_field=True),
        Field("Content", "base64"),
        readonly("TextPreview", "string", length=255),
        readonly("FileType", "string", length=20),
        readonly("FileExtension", "string", length=40),
        readonly("ContentSize", "int"),
        readonly("LatestPublishedVersionId", "reference", length=18, reference_to=("ContentVersion",)),
        owner(),
    )
    content_document = SObject("ContentDocument", "069", createable=False, updateable=False, searchable=False)
    content_document.add(
        *system_fields(),
        readonly("Title", "string", length=255, name_field=True),
        readonly("FileType", "string", length=20),
        readonly("ContentSize", "int"),
        readonly("OwnerId", "reference", length=18, reference_to=("User",)),
    )
    link = SObject("ContentDocumentLink", "06A", searchable=False)
    link.add(
        *system_fields(),
        ref("ContentDocumentId", "ContentDocument", nillable=False, updateable=False, cascade_delete=True),
        ref(
            "LinkedEntityId",
            "Account",
            "Contact",
            "Lead",
            "Opportunity",
            "User",
            nillable=False,
            updateable=False,
            cascade_delete=True,
        ),
        pick("ShareType", ("V", "C", "I"), "V", restricted=True, nillable=False),
        pick("Visibility", ("AllUsers", "InternalUsers", "SharedUsers"), "AllUsers", restricted=True),
    )
    opportunity = SObject("Opportunity", "006", label_plural="Opportunities")
    opportunity.add(
        *system_fields(),
        required("Name", 120, name_field=True),
        pick("StageName", tuple(OPPORTUNITY_STAGES), restricted=True, nillable=False),
        Field("CloseDate", "date", nillable=False),
        Field("Amount", "currency", precision=18, scale=2),
        Field("Probability", "percent", precision=3, scale=0, defaulted=True),
        ref("AccountId", "Account", cascade_delete=True),
        pick("LeadSource", LEAD_SOURCES),
        pick("Type", ("New Business", "Existing Business")),
        text("Description", 32000, type="textarea"),
        readonly("IsClosed", "boolean", nillable=False, defaulted=True, default=False),
        readonly("IsWon", "boolean", nillable=False, defaulted=True, default=False),
        owner(),
        custom_field("Capsule_Conversion_Id__c", "string", 255, external_id=True, unique=True),
    )
    # 00K is OpportunityContactRole's key prefix (00k, lower-case, belongs to OpportunityLineItem).
    role = SObject("OpportunityContactRole", "00K", searchable=False)
    role.add(
        *system_fields(),
        ref("OpportunityId", "Opportunity", nillable=False, updateable=False, cascade_delete=True),
        ref("ContactId", "Contact", nillable=False, cascade_delete=True),
        pick("Role", CONTACT_ROLES),
        flag("IsPrimary"),
    )
    objects = (user, account, contact, lead, task, event, note, content_note, content_document, link, opportunity, role)
    return {o.name: o for o in objects}
