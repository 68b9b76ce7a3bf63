"""Entity metadata → ``FieldSchema`` and custom attributes (crm-reference §5.3).

``describe`` costs four calls: the Attributes collection, the String and Memo casts (only derived
types carry ``MaxLength``) and the Picklist cast with ``$expand=OptionSet`` for option labels.
Custom attributes (ours and the mapping's) are created by POSTing attribute metadata; their
names carry the publisher prefix ``new_``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from integrations.connector import FieldSchema
from integrations.errors import NotFound, RecordError
from integrations.http import CrmHttp
from integrations.providers.dynamics import wire

TYPES = {
    "String": "string",
    "Memo": "text",
    "Integer": "number",
    "BigInt": "number",
    "Decimal": "number",
    "Double": "number",
    "Money": "number",
    "Boolean": "boolean",
    "DateTime": "datetime",
    "Picklist": "picklist",
    "State": "picklist",
    "Status": "picklist",
    "Virtual": "other",
}
EMAIL_FIELDS = {"emailaddress1", "emailaddress2", "emailaddress3", "internalemailaddress"}
PHONE_FIELDS = {"telephone1", "telephone2", "telephone3", "mobilephone", "fax", "phonenumber"}
URL_FIELDS = {"websiteurl"}
LOOKUPS = {"Lookup", "Owner", "Customer"}


def _label(value: Any, fallback: str) -> str:
    return str(((value or {}).get("UserLocalizedLabel") or {}).get("Label") or fallback)


def _path(entity_name: str, rest: str = "") -> str:
    return wire.api(f"EntityDefinitions(LogicalName='{entity_name}')/Attributes{rest}")


def describe(http: CrmHttp, entity_name: str) -> list[FieldSchema]:
    select = "LogicalName,AttributeType,DisplayName,RequiredLevel,IsCustomAttribute,IsValidForCreate,IsValidForUpdate"
    attributes = http.json("GET", _path(entity_name), params={"$select": select}, headers=wire.HEADERS) or {}
    lengths: dict[str, int] = {}
    for cast in ("StringAttributeMetadata", "MemoAttributeMetadata"):
        answer = (
            http.json(
                "GET",
                _path(entity_name, f"/Microsoft.Dynamics.CRM.{cast}"),
                params={"$select": "LogicalName,MaxLength"},
                headers=wire.HEADERS,
            )
            or {}
        )
        lengths.update({a["LogicalName"]: a.get("MaxLength") for a in answer.get("value", [])})
    picklists = (
        http.json(
            "GET",
            _path(entity_name, "/Microsoft.Dynamics.CRM.PicklistAttributeMetadata"),
            params={"$select": "LogicalName", "$expand": "OptionSet"},
            headers=wire.HEADERS,
        )
        or {}
    )
    options = {
        p["LogicalName"]: tuple(
            _label(o.get("Label"), str(o.get("Value"))) for o in (p.get("OptionSet") or {}).get("Options", [])
        )
        for p in picklists.get("value", [])
    }
    fields = []
    for meta in attributes.get("value", []):
        name, kind = meta["LogicalName"], meta.get("AttributeType") or "Virtual"
        if kind in LOOKUPS:
            # Lookups are written as "<name>@odata.bind" and read as "_<name>_value"; we offer the owner only.
            if name != "ownerid":
                continue
            ftype = "other"
        elif name in EMAIL_FIELDS:
            ftype = "email"
        elif name in PHONE_FIELDS:
            ftype = "phone"
        elif name in URL_FIELDS:
            ftype = "url"
        else:
            ftype = TYPES.get(kind, "other")
        required = (meta.get("RequiredLevel") or {}).get("Value") in ("ApplicationRequired", "SystemRequired")
        writable = bool(meta.get("IsValidForCreate") or meta.get("IsValidForUpdate"))
        fields.append(
            FieldSchema(
                name=name,
                label=_label(meta.get("DisplayName"), name),
                type=ftype,
                custom=bool(meta.get("IsCustomAttribute")),
                required=required and writable,
                read_only=not writable or kind == "Uniqueidentifier",
                options=options.get(name, ()),
                max_length=lengths.get(name),
            )
        )
    return fields


def _localized(text: str) -> dict[str, Any]:
    return {
        "@odata.type": "Microsoft.Dynamics.CRM.Label",
        "LocalizedLabels": [
            {"@odata.type": "Microsoft.Dynamics.CRM.LocalizedLabel", "Label": text, "LanguageCode": 1033}
        ],
    }


def attribute_definition(
    schema_name: str,
    label: str,
    kind: str,
    *,
    max_length: int = 100,
    options: tuple[str, ...] = (),
    description: str = "",
) -> dict[str, Any]:
    """Attribute metadata to POST; ``kind`` is our vocabulary (string, text, number, …)."""
    base: dict[str, Any] = {
        "SchemaName": schema_name,
        "DisplayName": _localized(label),
        "Description": _localized(description or label),
        "RequiredLevel": {
            "Value": "None",
            "CanBeChanged": True,
            "ManagedPropertyLogicalName": "canmodifyrequirementlevelsettings",
        },
    }
    ns = "Microsoft.Dynamics.CRM."
    if kind == "text":
        return {**base, "@odata.type": ns + "MemoAttributeMetadata", "MaxLength": 4000, "Format": "TextArea"}
    if kind == "number":
        return {
            **base,
            "@odata.type": ns + "IntegerAttributeMetadata",
            "Format": "None",
            "MinValue": -2147483648,
            "MaxValue": 2147483647,
        }
    if kind == "boolean":
        return {
            **base,
            "@odata.type": ns + "BooleanAttributeMetadata",
            "OptionSet": {
                "TrueOption": {"Value": 1, "Label": _localized("Yes")},
                "FalseOption": {"Value": 0, "Label": _localized("No")},
                "OptionSetType": "Boolean",
            },
        }
    if kind in ("date", "datetime"):
        return {
            **base,
            "@odata.type": ns + "DateTimeAttributeMetadata",
            "Format": "DateOnly" if kind == "date" else "DateAndTime",
        }
    if kind == "picklist":
        return {
            **base,
            "@odata.type": ns + "PicklistAttributeMetadata",
            "OptionSet": {
                "@odata.type": ns + "OptionSetMetadata",
                "IsGlobal": False,
                "OptionSetType": "Picklist",
                "Options": [{"Value": 100_000_000 + i, "Label": _localized(o)} for i, o in enumerate(options)],
            },
        }
    fmt = "Url" if kind == "url" else "Text"
    return {
        **base,
        "@odata.type": ns + "StringAttributeMetadata",
        "MaxLength": 2000 if kind == "url" else max_length,
        "FormatName": {"Value": fmt},
    }


def exists(http: CrmHttp, entity_name: str, logical_name: str) -> bool:
    try:
        http.json(
            "GET",
            _path(entity_name, f"(LogicalName='{logical_name}')"),
            params={"$select": "LogicalName"},
            headers=wire.HEADERS,
        )
    except NotFound:
        return False
    return True


def create(http: CrmHttp, entity_name: str, definition: Mapping[str, Any]) -> None:
    """POST the attribute; one that is already there counts as made."""
    try:
        http.request(
            "POST",
            _path(entity_name),
            json=dict(definition),
            headers={**wire.HEADERS, "Content-Type": "application/json"},
        )
    except RecordError as exc:
        if "already exists" not in exc.message:
            raise
