"""Custom field definitions, Custom Activity Types, statuses and pipelines (crm-reference §8.3, §8.4).

- ``/custom_field/{lead,contact,opportunity,activity}/`` (+ ``/{id}/``): list, create (200), get,
  update, delete. Activity custom fields need the ``custom_activity_type_id`` of their type.
- ``/custom_activity/`` (+ ``/{id}/``): Custom Activity Types, each listed with its fields; a type
  is created with 201 (spec ``custom_activity_types_create_Response_201``).
- ``/status/opportunity/``, ``/status/lead/``, ``/pipeline/``: read-only here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from integrations.sandbox.close import wire
from integrations.sandbox.close.errors import invalid, not_found
from integrations.sandbox.close.fields import new_definition
from integrations.sandbox.close.people import _body
from integrations.sandbox.close.store import Actor, Store
from integrations.sandbox.core import Request, Response

KIND = r"(?P<kind>lead|contact|opportunity|activity)"
ID = r"(?P<object_id>[^/]+)"


class Schema:
    def __init__(self, store: Store, actor: Callable[[Request], Actor]) -> None:
        self.store = store
        self.actor = actor

    def routes(self) -> list[tuple[str, str, Callable[[Request], Response]]]:
        return [
            ("GET", rf"/api/v1/custom_field/{KIND}/", self.list_fields),
            ("POST", rf"/api/v1/custom_field/{KIND}/", self.create_field),
            ("GET", rf"/api/v1/custom_field/{KIND}/{ID}/", self.get_field),
            ("PUT", rf"/api/v1/custom_field/{KIND}/{ID}/", self.update_field),
            ("DELETE", rf"/api/v1/custom_field/{KIND}/{ID}/", self.delete_field),
            ("GET", r"/api/v1/custom_activity/", self.list_types),
            ("POST", r"/api/v1/custom_activity/", self.create_type),
            ("GET", rf"/api/v1/custom_activity/{ID}/", self.get_type),
            ("GET", r"/api/v1/status/opportunity/", self.opportunity_statuses),
            ("GET", r"/api/v1/status/lead/", self.lead_statuses),
            ("GET", r"/api/v1/pipeline/", self.list_pipelines),
        ]

    # -- custom fields ---------------------------------------------------------------------------------
    def field_wire(self, definition: dict[str, Any]) -> dict[str, Any]:
        return {**definition, "organization_id": self.store.org_id}

    def add_field(self, kind: str, body: dict[str, Any], actor: Actor | None = None) -> dict[str, Any]:
        definition = new_definition(kind, body, set(self.store.activity_types))
        if actor is not None:
            definition["created_by"] = definition["updated_by"] = actor.user_id
        self.store.definitions[kind][definition["id"]] = definition
        return definition

    def _field(self, kind: str, object_id: str) -> dict[str, Any]:
        definition = self.store.definitions[kind].get(object_id)
        if definition is None:
            raise not_found("CustomField", object_id)
        return definition

    def list_fields(self, request: Request) -> Response:
        skip, limit = wire.page_args(request)
        kind = request.params["kind"]
        rows = [
            self.field_wire(d) for d in sorted(self.store.definitions[kind].values(), key=lambda d: d["date_created"])
        ]
        return Response.json(wire.page([wire.only(r, wire.fields_arg(request)) for r in rows], skip, limit))

    def create_field(self, request: Request) -> Response:
        kind = request.params["kind"]
        body = _body(request)
        duplicate = next(
            (
                d
                for d in self.store.definitions[kind].values()
                if d["name"] == str(body.get("name") or "").strip()
                and d.get("custom_activity_type_id") == body.get("custom_activity_type_id")
            ),
            None,
        )
        if duplicate is not None:
            raise invalid({"name": "A custom field with this name already exists."})
        return Response.json(self.field_wire(self.add_field(kind, body, self.actor(request))))

    def get_field(self, request: Request) -> Response:
        return Response.json(self.field_wire(self._field(request.params["kind"], request.params["object_id"])))

    def update_field(self, request: Request) -> Response:
        definition = self._field(request.params["kind"], request.params["object_id"])
        body = _body(request)
        if "type" in body and body["type"] != definition["type"]:
            raise invalid({"type": "The type of a custom field cannot be changed."})
        for key in ("name", "description", "choices", "required"):
            if key in body:
                definition[key] = body[key]
        definition["date_updated"] = self.store.stamp()
        return Response.json(self.field_wire(definition))

    def delete_field(self, request: Request) -> Response:
        kind, object_id = request.params["kind"], request.params["object_id"]
        self._field(kind, object_id)
        del self.store.definitions[kind][object_id]
        records = {
            "lead": self.store.leads,
            "contact": self.store.contacts,
            "opportunity": self.store.opportunities,
            "activity": self.store.activities,
        }[kind]
        for record in records.values():
            record["custom"].pop(object_id, None)
        return Response.json({})

    # -- custom activity types ------------------------------------------------------------------------------
    def type_wire(self, activity_type: dict[str, Any]) -> dict[str, Any]:
        fields = [
            self.field_wire(d)
            for d in self.store.definitions["activity"].values()
            if d.get("custom_activity_type_id") == activity_type["id"]
        ]
        return {**activity_type, "fields": fields, "organization_id": self.store.org_id}

    def add_type(self, body: dict[str, Any], actor: Actor | None = None) -> dict[str, Any]:
        name = body.get("name")
        if not isinstance(name, str) or not name.strip():
            raise invalid({"name": "This field is required."})
        if any(t["name"] == name.strip() for t in self.store.activity_types.values()):
            raise invalid({"name": "A custom activity type with this name already exists."})
        stamp = self.store.stamp()
        activity_type = {
            "id": wire.new_id("actitype", 22),
            "name": name.strip(),
            "description": body.get("description") or "",
            "api_create_only": bool(body.get("api_create_only", False)),
            "editable_with_roles": body.get("editable_with_roles") or [],
            "is_archived": False,
            "date_created": stamp,
            "date_updated": stamp,
            "created_by": actor.user_id if actor else None,
            "updated_by": actor.user_id if actor else None,
        }
        self.store.activity_types[activity_type["id"]] = activity_type
        return activity_type

    def list_types(self, request: Request) -> Response:
        rows = [self.type_wire(t) for t in sorted(self.store.activity_types.values(), key=lambda t: t["date_created"])]
        return Response.json({"data": rows, "has_more": False})

    def create_type(self, request: Request) -> Response:
        return Response.json(self.type_wire(self.add_type(_body(request), self.actor(request))), status=201)

    def get_type(self, request: Request) -> Response:
        activity_type = self.store.activity_types.get(request.params["object_id"])
        if activity_type is None:
            raise not_found("CustomActivityType", request.params["object_id"])
        return Response.json(self.type_wire(activity_type))

    # -- statuses and pipelines -------------------------------------------------------------------------------
    def opportunity_statuses(self, request: Request) -> Response:
        return Response.json({"data": list(self.store.opportunity_statuses), "has_more": False})

    def lead_statuses(self, request: Request) -> Response:
        rows = [{**s, "organization_id": self.store.org_id} for s in self.store.lead_statuses]
        return Response.json({"data": rows, "has_more": False})

    def list_pipelines(self, request: Request) -> Response:
        rows = [
            {**p, "statuses": [s for s in self.store.opportunity_statuses if s["pipeline_id"] == p["id"]]}
            for p in self.store.pipelines
        ]
        return Response.json({"data": rows, "has_more": False})
