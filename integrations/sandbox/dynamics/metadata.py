"""Entity and attribute metadata of the Dataverse emulator (crm-reference §5.3).

Answers ``EntityDefinitions(LogicalName='contact')/Attributes`` the way the Web API does: each
attribute carries ``@odata.type`` (``#Microsoft.Dynamics.CRM.StringAttributeMetadata`` …),
``LogicalName``, ``SchemaName``, ``AttributeType``, ``AttributeTypeName``, ``DisplayName`` (a
localised label), ``RequiredLevel`` (a managed property), ``IsCustomAttribute``,
``IsValidForCreate``/``Update``/``Read``, ``MaxLength`` on strings and memos, and ``OptionSet``
with integer option values on picklists (expanded only when asked with ``$expand=OptionSet``).
Custom attributes are created by POSTing attribute metadata to the collection; their names
carry a publisher prefix (``new_``).
"""

from __future__ import annotations

import copy
import uuid
from typing import Any

TYPE_NAMES = {
    "String": "StringType",
    "Memo": "MemoType",
    "Integer": "IntegerType",
    "Decimal": "DecimalType",
    "Double": "DoubleType",
    "Money": "MoneyType",
    "Boolean": "BooleanType",
    "DateTime": "DateTimeType",
    "Picklist": "PicklistType",
    "Lookup": "LookupType",
    "Owner": "OwnerType",
    "Customer": "CustomerType",
    "Uniqueidentifier": "UniqueidentifierType",
    "State": "StateType",
    "Status": "StatusType",
}
METADATA_CLASS = {
    "String": "StringAttributeMetadata",
    "Memo": "MemoAttributeMetadata",
    "Integer": "IntegerAttributeMetadata",
    "Decimal": "DecimalAttributeMetadata",
    "Double": "DoubleAttributeMetadata",
    "Money": "MoneyAttributeMetadata",
    "Boolean": "BooleanAttributeMetadata",
    "DateTime": "DateTimeAttributeMetadata",
    "Picklist": "PicklistAttributeMetadata",
    "Lookup": "LookupAttributeMetadata",
    "Owner": "LookupAttributeMetadata",
    "Customer": "LookupAttributeMetadata",
    "Uniqueidentifier": "UniqueidentifierAttributeMetadata",
    "State": "StateAttributeMetadata",
    "Status": "StatusAttributeMetadata",
}
CLASS_TYPE = {cls: kind for kind, cls in METADATA_CLASS.items() if kind not in ("Owner", "Customer")}


def label(text: str) -> dict[str, Any]:
    localized = {"Label": text, "LanguageCode": 1033}
    return {"LocalizedLabels": [localized], "UserLocalizedLabel": localized}


def attribute(
    name: str,
    kind: str,
    display: str,
    *,
    required: str = "None",
    max_length: int | None = None,
    options: dict[int, str] | None = None,
    custom: bool = False,
    create: bool = True,
    update: bool = True,
    targets: tuple[str, ...] = (),
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "@odata.type": f"#Microsoft.Dynamics.CRM.{METADATA_CLASS[kind]}",
        "MetadataId": str(uuid.uuid5(uuid.NAMESPACE_URL, f"dataverse:{name}:{kind}")),
        "LogicalName": name,
        "SchemaName": name if not custom else name[:4] + name[4:].capitalize(),
        "AttributeType": kind,
        "AttributeTypeName": {"Value": TYPE_NAMES[kind]},
        "DisplayName": label(display),
        "RequiredLevel": {
            "Value": required,
            "CanBeChanged": True,
            "ManagedPropertyLogicalName": "canmodifyrequirementlevelsettings",
        },
        "IsCustomAttribute": custom,
        "IsValidForCreate": create,
        "IsValidForUpdate": update,
        "IsValidForRead": True,
    }
    if kind in ("String", "Memo"):
        meta["MaxLength"] = max_length or (100 if kind == "String" else 2000)
    if kind in ("Picklist", "State", "Status", "Boolean"):
        meta["OptionSet"] = {
            "Name": name,
            "OptionSetType": kind if kind != "Boolean" else "Boolean",
            "Options": [{"Value": v, "Label": label(t)} for v, t in (options or {0: "No", 1: "Yes"}).items()],
        }
    if targets:
        meta["Targets"] = list(targets)
    return meta


def _system(name: str, kind: str, display: str, **kw: Any) -> dict[str, Any]:
    return attribute(name, kind, display, create=False, update=False, **kw)


def _common(entity: str, primary: str) -> list[dict[str, Any]]:
    return [
        attribute(primary, "Uniqueidentifier", f"{entity.capitalize()}", required="SystemRequired", update=False),
        _system("createdon", "DateTime", "Created On"),
        _system("modifiedon", "DateTime", "Modified On"),
        _system("createdby", "Lookup", "Created By", targets=("systemuser",)),
        _system("modifiedby", "Lookup", "Modified By", targets=("systemuser",)),
        attribute("ownerid", "Owner", "Owner", required="SystemRequired", targets=("systemuser", "team")),
        _system("versionnumber", "Integer", "Version Number"),
    ]


LEAD_SOURCES = {1: "Advertisement", 2: "Employee Referral", 3: "External Referral", 4: "Partner", 8: "Web", 10: "Other"}
PERSON = [
    ("firstname", "String", "First Name", {"max_length": 50}),
    ("lastname", "String", "Last Name", {"max_length": 50, "required": "ApplicationRequired"}),
    ("fullname", "String", "Full Name", {"max_length": 160, "create": False, "update": False}),
    ("emailaddress1", "String", "Email", {"max_length": 100}),
    ("telephone1", "String", "Business Phone", {"max_length": 50}),
    ("mobilephone", "String", "Mobile Phone", {"max_length": 50}),
    ("jobtitle", "String", "Job Title", {"max_length": 100}),
    ("websiteurl", "String", "Website", {"max_length": 200}),
    ("address1_city", "String", "City", {"max_length": 80}),
    ("address1_country", "String", "Country/Region", {"max_length": 80}),
    ("description", "Memo", "Description", {"max_length": 2000}),
    ("donotemail", "Boolean", "Do not allow Emails", {"options": {0: "Allow", 1: "Do Not Allow"}}),
    ("donotphone", "Boolean", "Do not allow Phone Calls", {"options": {0: "Allow", 1: "Do Not Allow"}}),
    ("leadsourcecode", "Picklist", "Lead Source", {"options": LEAD_SOURCES}),
]


def _build(entity: str, primary: str, extra: list[tuple[str, str, str, dict[str, Any]]]) -> list[dict[str, Any]]:
    return _common(entity, primary) + [attribute(name, kind, display, **kw) for name, kind, display, kw in extra]


def standard_entities() -> dict[str, dict[str, Any]]:
    """logical name → {EntitySetName, PrimaryIdAttribute, attributes: {logical: metadata}}"""
    rating = {1: "Hot", 2: "Warm", 3: "Cold"}
    regarding = ("contact", "lead", "account", "opportunity")
    specs: dict[str, tuple[str, str, list]] = {
        "contact": (
            "contacts",
            "contactid",
            [
                *PERSON,
                ("department", "String", "Department", {"max_length": 100}),
                ("parentcustomerid", "Customer", "Company Name", {"targets": ("account", "contact")}),
            ],
        ),
        "lead": (
            "leads",
            "leadid",
            [
                *PERSON,
                ("subject", "String", "Topic", {"max_length": 300, "required": "ApplicationRequired"}),
                ("companyname", "String", "Company Name", {"max_length": 100}),
                (
                    "industrycode",
                    "Picklist",
                    "Industry",
                    {"options": {1: "Accounting", 7: "Consulting", 33: "Technology"}},
                ),
                ("leadqualitycode", "Picklist", "Rating", {"options": rating}),
            ],
        ),
        "task": (
            "tasks",
            "activityid",
            [
                ("subject", "String", "Subject", {"max_length": 200, "required": "ApplicationRequired"}),
                ("description", "Memo", "Description", {"max_length": 100000}),
                ("scheduledend", "DateTime", "Due", {}),
                ("actualend", "DateTime", "Actual End", {}),
                ("prioritycode", "Picklist", "Priority", {"options": {0: "Low", 1: "Normal", 2: "High"}}),
                ("statecode", "State", "Activity Status", {"options": {0: "Open", 1: "Completed", 2: "Canceled"}}),
                (
                    "statuscode",
                    "Status",
                    "Status Reason",
                    {"options": {2: "Not Started", 3: "In Progress", 5: "Completed"}},
                ),
                ("regardingobjectid", "Lookup", "Regarding", {"targets": regarding}),
            ],
        ),
        "phonecall": (
            "phonecalls",
            "activityid",
            [
                ("subject", "String", "Subject", {"max_length": 200, "required": "ApplicationRequired"}),
                ("description", "Memo", "Description", {"max_length": 100000}),
                ("phonenumber", "String", "Phone Number", {"max_length": 200}),
                ("directioncode", "Boolean", "Direction", {"options": {0: "Incoming", 1: "Outgoing"}}),
                ("actualend", "DateTime", "Actual End", {}),
                ("statecode", "State", "Activity Status", {"options": {0: "Open", 1: "Completed", 2: "Canceled"}}),
                ("regardingobjectid", "Lookup", "Regarding", {"targets": regarding}),
            ],
        ),
        "annotation": (
            "annotations",
            "annotationid",
            [
                ("subject", "String", "Title", {"max_length": 500}),
                ("notetext", "Memo", "Description", {"max_length": 100000}),
                ("objectid", "Lookup", "Regarding", {"targets": regarding}),
            ],
        ),
        "opportunity": (
            "opportunities",
            "opportunityid",
            [
                ("name", "String", "Topic", {"max_length": 300, "required": "ApplicationRequired"}),
                ("estimatedvalue", "Money", "Est. Revenue", {}),
                ("estimatedclosedate", "DateTime", "Est. Close Date", {}),
                ("stepname", "String", "Pipeline Phase", {"max_length": 200}),
                ("description", "Memo", "Description", {"max_length": 2000}),
                ("parentcontactid", "Lookup", "Contact", {"targets": ("contact",)}),
                ("customerid", "Customer", "Potential Customer", {"targets": ("account", "contact")}),
                ("originatingleadid", "Lookup", "Originating Lead", {"targets": ("lead",)}),
                ("statecode", "State", "Status", {"options": {0: "Open", 1: "Won", 2: "Lost"}}),
            ],
        ),
        "account": ("accounts", "accountid", [("name", "String", "Account Name", {"max_length": 160})]),
    }
    return {
        entity: {
            "EntitySetName": entity_set,
            "PrimaryIdAttribute": primary,
            "attributes": {a["LogicalName"]: a for a in _build(entity, primary, extra)},
        }
        for entity, (entity_set, primary, extra) in specs.items()
    }


def public(meta: dict[str, Any], *, expand_options: bool, select: list[str] | None) -> dict[str, Any]:
    """An attribute as the collection answers it: OptionSet only when expanded, $select honoured."""
    out = copy.deepcopy(meta)
    if not expand_options:
        out.pop("OptionSet", None)
    if select:
        keep = set(select) | {"@odata.type", "MetadataId"} | ({"OptionSet"} if expand_options else set())
        out = {k: v for k, v in out.items() if k in keep}
    return out


def from_definition(body: dict[str, Any]) -> dict[str, Any]:
    """A custom attribute from the metadata POSTed to the Attributes collection."""
    odata_type = str(body.get("@odata.type") or "").rsplit(".", 1)[-1]
    kind = CLASS_TYPE.get(odata_type)
    if kind is None or kind in ("Lookup", "Uniqueidentifier", "State", "Status"):
        raise ValueError(f"'{odata_type}' is not an attribute type that can be created here")
    name = str(body.get("SchemaName") or "").lower()
    if "_" not in name or not name.split("_", 1)[1]:
        raise ValueError("SchemaName must start with the publisher's customization prefix, e.g. new_")
    display = ((body.get("DisplayName") or {}).get("LocalizedLabels") or [{}])[0].get("Label") or name
    required = ((body.get("RequiredLevel") or {}).get("Value")) or "None"
    options = None
    if kind in ("Picklist", "Boolean"):
        raw = (body.get("OptionSet") or {}).get("Options") or []
        if kind == "Boolean":
            raw = [(body.get("OptionSet") or {}).get("FalseOption"), (body.get("OptionSet") or {}).get("TrueOption")]
            raw = [o for o in raw if o] or [{"Value": 0, "Label": label("No")}, {"Value": 1, "Label": label("Yes")}]
        options = {}
        for position, option in enumerate(raw):
            value = option.get("Value")
            text = ((option.get("Label") or {}).get("LocalizedLabels") or [{}])[0].get("Label") or str(value)
            options[int(value) if value is not None else 100_000_000 + position] = text
    meta = attribute(
        name, kind, display, required=required, max_length=body.get("MaxLength"), options=options, custom=True
    )
    meta["SchemaName"] = body.get("SchemaName")
    return meta
