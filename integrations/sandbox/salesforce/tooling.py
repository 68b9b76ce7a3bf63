"""Tooling API ``CustomField``: create a custom field the way a connector does at set-up time
(crm-reference §1.3), e.g. ``{"FullName": "Contact.Capsule_Score__c", "Metadata": {"type": "Number", …}}``.

The field then appears in describe and can be written and queried. Creating fields needs the
"Customize Application" permission; without it (a constructor flag) the answer is 403.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from integrations.sandbox.core import Request, Response
from integrations.sandbox.salesforce.errors import SfError, not_found
from integrations.sandbox.salesforce.schema import Field, custom_field

if TYPE_CHECKING:
    from integrations.sandbox.salesforce.app import SalesforceEmulator

V = r"/services/data/v(?P<version>\d+\.\d+)"
# Metadata API field types → describe types
FIELD_TYPES = {
    "Text": "string",
    "TextArea": "textarea",
    "LongTextArea": "textarea",
    "Number": "double",
    "Currency": "currency",
    "Percent": "percent",
    "Checkbox": "boolean",
    "Date": "date",
    "DateTime": "datetime",
    "Email": "email",
    "Phone": "phone",
    "Url": "url",
    "Picklist": "picklist",
    "MultiselectPicklist": "multipicklist",
}


def _integrity(message: str) -> SfError:
    return SfError(400, "FIELD_INTEGRITY_EXCEPTION", message, [])


def field_from_metadata(name: str, metadata: dict[str, Any]) -> Field:
    """Check a CustomField definition and build the field it describes."""
    kind = metadata.get("type")
    if kind not in FIELD_TYPES:
        raise _integrity(f"Invalid or unsupported field type: {kind}")
    if not metadata.get("label"):
        raise SfError(400, "REQUIRED_FIELD_MISSING", "Required fields are missing: [Label]", ["Label"])
    type_ = FIELD_TYPES[kind]
    length = metadata.get("length")
    if kind == "Text" and not (isinstance(length, int) and 1 <= length <= 255):
        raise _integrity("Length: a Text field needs a length between 1 and 255")
    if kind == "LongTextArea" and not (isinstance(length, int) and 256 <= length <= 131072):
        raise _integrity("Length: a Long Text Area needs a length between 256 and 131,072")
    precision, scale = metadata.get("precision"), metadata.get("scale")
    if kind in ("Number", "Currency", "Percent"):
        if not isinstance(precision, int) or not 1 <= precision <= 18:
            raise _integrity("Precision: must be between 1 and 18")
        scale = scale if isinstance(scale, int) else 0
        if not 0 <= scale <= precision:
            raise _integrity("Scale: must be between 0 and the precision")
    values: list[str] = []
    if type_ in ("picklist", "multipicklist"):
        definition = ((metadata.get("valueSet") or {}).get("valueSetDefinition") or {}).get("value") or []
        values = [str(v.get("fullName") or v.get("label")) for v in definition if isinstance(v, dict)]
        if not values:
            raise _integrity("Values: a picklist needs at least one value")
    default = str(metadata.get("defaultValue", "false")).lower() == "true" if type_ == "boolean" else None
    return custom_field(
        name,
        type_,
        length=length if isinstance(length, int) else None,
        picklist=values,
        external_id=bool(metadata.get("externalId")),
        unique=bool(metadata.get("unique")),
        label=str(metadata["label"]),
        precision=precision,
        scale=scale,
        default=default,
    )


class ToolingRoutes:
    def __init__(self, app: SalesforceEmulator) -> None:
        self.app = app

    def register(self) -> None:
        base = rf"{V}/tooling/sobjects/CustomField"
        self.app.api("POST", rf"{base}/?", self.create)
        self.app.api("GET", rf"{base}/(?P<field_id>[^/]+)/?", self.read)

    def create(self, request: Request) -> Response:
        if not self.app.customize_application:
            raise SfError(
                403,
                "INSUFFICIENT_ACCESS",
                "You do not have the permission required to create custom fields (Customize Application)",
            )
        body = self.app.json_body(request)
        if not isinstance(body, dict) or not body.get("FullName"):
            raise SfError(400, "REQUIRED_FIELD_MISSING", "Required fields are missing: [FullName]", ["FullName"])
        object_name, _, name = str(body["FullName"]).partition(".")
        sobject = self.app.store.sobject(object_name)
        if sobject is None or not name:
            raise _integrity(f"Invalid FullName {body['FullName']}: expected <Object>.<Field>__c")
        if not name.endswith("__c"):
            raise _integrity(f"Custom field names end in __c: {name}")
        if sobject.field(name) is not None:
            raise SfError(400, "DUPLICATE_DEVELOPER_NAME", f"This field name is already in use on {sobject.name}")
        metadata = body.get("Metadata")
        if not isinstance(metadata, dict):
            raise SfError(400, "REQUIRED_FIELD_MISSING", "Required fields are missing: [Metadata]", ["Metadata"])
        new = field_from_metadata(name, metadata)
        field_id = self.app.ids.new("00N")
        sobject.add(new)
        self.app.custom_fields[field_id] = {
            "Id": field_id,
            "DeveloperName": name.removesuffix("__c"),
            "TableEnumOrId": sobject.name,
            "FullName": f"{sobject.name}.{name}",
            "Metadata": metadata,
        }
        return Response.json({"id": field_id, "success": True, "errors": [], "warnings": [], "infos": []}, 201)

    def read(self, request: Request) -> Response:
        entry = self.app.custom_fields.get(request.params["field_id"])
        if entry is None:
            raise not_found()
        url = f"{self.app.base(request)}/tooling/sobjects/CustomField/{entry['Id']}"
        return Response.json({"attributes": {"type": "CustomField", "url": url}, **entry})
