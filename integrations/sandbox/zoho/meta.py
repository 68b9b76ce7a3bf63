"""Field, user and org metadata (crm-reference §4.3; spec fields.json, users.json).

``GET /settings/fields?module=…`` answers every field with the keys fields.json marks required:
Zoho's live answers leave many of them ``null`` where the spec's schema (which points at objects
that are not nullable) does not allow it, so this emulator sends the empty object the spec
describes instead — the connector reads only ``api_name``, ``field_label``/``display_label``,
``data_type``, ``json_type``, ``length``, ``read_only``, ``system_mandatory``, ``custom_field``,
``unique`` and ``pick_list_values``.

``POST /settings/fields?module=…`` creates custom fields (``field_label``, ``data_type``,
``length``, ``pick_list_values``, ``unique``; an ``api_name`` is derived from the label unless the
body gives one — whether Zoho honours a given ``api_name`` is **UNVERIFIED**).

``/org`` is not in the copied specs; its shape follows Zoho's Org API docs (``org[]`` with ``id``,
``company_name``, ``primary_email``, ``domain_name``, ``zgid``, ``currency``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from integrations.sandbox.core import Request, Response
from integrations.sandbox.zoho import errors
from integrations.sandbox.zoho.errors import ZohoError
from integrations.sandbox.zoho.schema import JSON_TYPES, FieldDef, Module, custom_api_name

if TYPE_CHECKING:
    from integrations.sandbox.zoho.app import ZohoEmulator

CREATABLE_TYPES = {
    "text",
    "textarea",
    "email",
    "phone",
    "website",
    "picklist",
    "integer",
    "bigint",
    "double",
    "currency",
    "boolean",
    "date",
    "datetime",
}
_EMPTY_MODULE = {"api_name": None, "id": None}


def field_json(module: Module, definition: FieldDef) -> dict[str, Any]:
    """One field as fields.json's ``fields`` schema has it (every required key present)."""
    options = [
        {
            "display_value": value,
            "actual_value": value,
            "id": f"{definition.id}{index:03d}",
            "sequence_number": index,
            "type": "used",
            "colour_code": None,
        }
        for index, value in enumerate(definition.options, start=1)
    ]
    lookup: dict[str, Any] | None = None
    if definition.data_type == "lookup" and definition.lookup_module:
        lookup = {"module": {"api_name": definition.lookup_module, "id": None}, "api_name": definition.api_name}
    editable = not definition.read_only
    return {
        "associated_module": dict(_EMPTY_MODULE),
        "data_type": definition.data_type,
        "operation_type": {
            "web_update": editable,
            "api_create": editable,
            "web_create": editable,
            "api_update": editable,
        },
        "system_mandatory": definition.mandatory,
        "webhook": True,
        "blueprint_supported": False,
        "virtual_field": False,
        "field_read_only": definition.read_only,
        "customizable_properties": [],
        "read_only": definition.read_only,
        "custom_field": definition.custom,
        "businesscard_supported": False,
        "filterable": True,
        "visible": True,
        "available_in_user_layout": True,
        "display_field": definition.api_name in ("Last_Name", "Deal_Name", "Subject", "Account_Name"),
        "pick_list_values_sorted_lexically": False,
        "sortable": True,
        "layout_associations": [{"api_name": "Standard", "name": "Standard", "id": f"{module.id}1"}],
        "separator": False,
        "searchable": True,
        "enable_colour_code": False,
        "mass_update": editable,
        "json_type": JSON_TYPES.get(definition.data_type, "string"),
        "created_source": "crm" if definition.custom else "default",
        "type": "used",
        "display_label": definition.label,
        "field_label": definition.label,
        "column_name": definition.api_name.upper(),
        "api_name": definition.api_name,
        "display_type": -1,
        "ui_type": 1,
        "colour_code_enabled_by_system": None,
        "length": definition.max_length,
        "decimal_place": 2 if definition.data_type in ("double", "currency") else None,
        "quick_sequence_number": "1",
        "email_parser": {"fields_update_supported": None, "record_operations_supported": None},
        "rollup_summary": None,
        "refer_from_field": {"id": None, "api_name": None},
        "created_time": None,
        "modified_time": None,
        "show_type": 7,
        "category": 0,
        "id": definition.id,
        "multi_module_lookup": None,
        "sharing_properties": {},
        "currency": {} if definition.data_type == "currency" else None,
        "file_upolad_optionlist": [],
        "lookup": lookup,
        "profiles": [{"name": "Administrator", "id": "5725767000000026011", "permission_type": "read_write"}],
        "view_type": {"view": True, "edit": editable, "quick_create": editable, "create": editable},
        "unique": {"casesensitive": "false"} if definition.unique else None,
        "sub_module": dict(_EMPTY_MODULE),
        "subform": None,
        "external": {"show": False, "type": None},
        "formula": None,
        "convert_mapping": {},
        "multiselectlookup": None,
        "multiuserlookup": {
            "display_label": None,
            "linking_module": dict(_EMPTY_MODULE),
            "connected_module": dict(_EMPTY_MODULE),
            "lookup_apiname": None,
            "api_name": None,
            "connectedfield_apiname": None,
            "connectedlookup_apiname": None,
            "id": None,
            "record_access": None,
        },
        "autonumber": {"starting_number_length": 0, "prefix": None, "suffix": None, "start_number": None},
        "auto_number": None,
        "pick_list_values": options,
        "crypt": {"mode": None, "status": None},
        "tooltip": {"name": "", "value": ""},
        "history_tracking": {"module": {}, "duration_configured_field": dict(_EMPTY_MODULE)},
        "association_details": {"related_field": dict(_EMPTY_MODULE), "lookup_field": dict(_EMPTY_MODULE)},
        "allowed_modules": [],
        "additional_column": None,
        "common.picklist": None,
        "hipaa_compliance_enabled": None,
        "hipaa_compliance": {"restricted_in_export": None, "restricted": None},
        "_update_existing_records": False,
        "number_separator": False,
        "textarea": {"type": "large"} if definition.data_type == "textarea" else {},
        "static_field": False,
    }


class MetaRoutes:
    def __init__(self, app: ZohoEmulator) -> None:
        self.app = app

    def register(self) -> None:
        api, app = r"/crm/v(?:[2-8])(?:\.\d)?", self.app
        app.api("GET", rf"{api}/settings/fields", self.list_fields)
        app.api("POST", rf"{api}/settings/fields", self.create_fields)
        app.api("GET", rf"{api}/users", self.users)
        app.api("GET", rf"{api}/org", self.org)

    def _module(self, request: Request) -> Module:
        name = request.arg("module")
        if not name:
            raise ZohoError(
                400, "REQUIRED_PARAM_MISSING", "One of the expected parameter is missing", {"param_name": "module"}
            )
        module = self.app.store.modules.get(name)
        if module is None:
            raise ZohoError(400, "INVALID_MODULE", "The module name given seems to be invalid", {"api_name": name})
        return module

    def list_fields(self, request: Request) -> Response:
        module = self._module(request)
        kind = request.arg("type", "all")
        fields = [field_json(module, d) for d in module.fields.values()]
        if kind == "unused":
            fields = []
        if not fields:
            return Response(204, b"", {})
        return Response.json({"fields": fields})

    def create_fields(self, request: Request) -> Response:
        module = self._module(request)
        if not self.app.can_create_fields:
            raise errors.no_permission("Customize Zoho CRM")
        body = self.app.body(request)
        items = body.get("fields") if isinstance(body, dict) else None
        if not isinstance(items, list) or not items:
            raise ZohoError(
                400, "REQUIRED_PARAM_MISSING", "One of the expected parameter is missing", {"param_name": "fields"}
            )
        results, failed = [], False
        for index, item in enumerate(items):
            try:
                definition = self._definition(module, item, index)
            except ZohoError as exc:
                results.append(exc.body())
                failed = True
                continue
            module.add(definition)
            results.append(
                {"code": "SUCCESS", "details": {"id": definition.id}, "message": "field created", "status": "success"}
            )
        if failed:
            return Response.json({"fields": [r for r in results if r["status"] == "error"]}, status=400)
        return Response.json({"fields": results}, status=201)

    def _definition(self, module: Module, item: Any, index: int) -> FieldDef:
        def bad(name: str, code: str = "INVALID_DATA", message: str = "invalid data") -> ZohoError:
            return ZohoError(400, code, message, {"api_name": name, "json_path": f"$.fields[{index}].{name}"})

        if not isinstance(item, dict):
            raise bad("fields")
        label = item.get("field_label")
        if not isinstance(label, str) or not label.strip():
            raise bad("field_label", "MANDATORY_NOT_FOUND", "required field not found")
        data_type = item.get("data_type")
        if data_type not in CREATABLE_TYPES:
            raise bad(
                "data_type",
                "MANDATORY_NOT_FOUND" if data_type is None else "INVALID_DATA",
                "required field not found" if data_type is None else "invalid data",
            )
        api_name = str(item.get("api_name") or custom_api_name(label))
        if api_name in module.fields or any(f.label.lower() == label.lower() for f in module.fields.values()):
            raise bad("field_label", message="a field with that label already exists")
        options = item.get("pick_list_values") or []
        values = tuple(str(o.get("actual_value") or o.get("display_value")) for o in options if isinstance(o, dict))
        length = item.get("length")
        if length is not None and (not isinstance(length, int) or not 1 <= length <= 32000):
            raise bad("length")
        return FieldDef(
            api_name,
            label.strip(),
            data_type,
            custom=True,
            unique=bool(item.get("unique")),
            length=length,
            options=values,
            id=self.app.store.next_id(),
        )

    def _user(self, user: dict[str, str]) -> dict[str, Any]:
        first, _, last = user["name"].partition(" ")
        admin = user is self.app.integration_user
        return {
            "id": user["id"],
            "full_name": user["name"],
            "first_name": first,
            "last_name": last,
            "email": user["email"],
            "status": "active",
            "confirm": True,
            "zuid": f"{user['id'][-8:]}",
            "role": {"name": "CEO" if admin else "Manager", "id": "5725767000000026005"},
            "profile": {"name": "Administrator" if admin else "Standard", "id": "5725767000000026011"},
            "country_locale": "en_US",
            "language": "en_US",
            "locale": "en_US",
        }

    def users(self, request: Request) -> Response:
        everyone = [self.app.integration_user, self.app.ui_user]
        chosen = {
            "CurrentUser": [self.app.integration_user],  # the token's own user
            "AdminUsers": [self.app.integration_user],
            "AllUsers": everyone,
            "ActiveUsers": everyone,
        }.get(request.arg("type", "AllUsers") or "AllUsers")
        if chosen is None:
            raise errors.invalid_param("type")
        body = [self._user(u) for u in chosen]
        info = {"per_page": 200, "count": len(body), "page": 1, "more_records": False}
        return Response.json({"users": body, "info": info})

    def org(self, request: Request) -> Response:
        return Response.json(
            {
                "org": [
                    {
                        "id": f"{self.app.org_id}000000000001",
                        "company_name": self.app.company_name,
                        "domain_name": f"org{self.app.org_id}",
                        "primary_email": self.app.integration_user["email"],
                        "zgid": self.app.org_id,
                        "currency": self.app.currencies[0] if self.app.currencies else "USD",
                        "currency_symbol": "$",
                        "time_zone": "UTC",
                        "country_code": "US",
                        "type": "production",
                    }
                ]
            }
        )
