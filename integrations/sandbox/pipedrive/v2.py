"""The API v2 routes of the sandbox: persons, organizations, deals, activities, search and fields.

Paths, parameters and shapes follow crm-reference §3.2 to §3.4 and the client-nodejs v2 APIs
(``persons-api.ts``, ``deals-api.ts``, ``activities-api.ts``, ``organizations-api.ts``,
``*-fields-api.ts``): lists page with ``limit`` (default 100, at most 500) and an opaque ``cursor``
handed out in ``additional_data.next_cursor`` (null at the end); updates are PATCH.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from integrations.sandbox.core import Request, Response
from integrations.sandbox.pipedrive.fields import CREATABLE, FIELD_ROUTES, time_filter
from integrations.sandbox.pipedrive.wire import ApiError, bool_arg, int_arg, ok, page

# URL segment -> entity.
COLLECTIONS = {"persons": "person", "organizations": "organization", "deals": "deal", "activities": "activity"}
SEARCHABLE = {
    "persons": ("name", "email", "phone", "custom_fields", "notes"),
    "organizations": ("name", "address", "custom_fields", "notes"),
    "deals": ("title", "custom_fields", "notes"),
}
SORTS = {"id", "update_time", "add_time", "due_date"}
# List filters each collection takes, with the record key they compare.
FILTERS = {
    "person": ("owner_id", "org_id"),
    "organization": ("owner_id",),
    "deal": ("owner_id", "person_id", "org_id", "stage_id", "pipeline_id"),
    "activity": ("owner_id", "person_id", "deal_id", "org_id"),
}


class V2Routes:
    """Mixed into PipedriveEmulator: ``api(method, pattern, handler)`` registers a route."""

    records: Any
    api: Callable[..., None]
    actor: Callable[[Request], tuple[int, str]]
    require_admin: Callable[[Request], None]

    def register_v2(self) -> None:
        names = "|".join(COLLECTIONS)
        self.api("GET", r"/api/v2/(?P<collection>persons|organizations|deals)/search", self._search)
        self.api("GET", rf"/api/v2/(?P<collection>{names})", self._list)
        self.api("POST", rf"/api/v2/(?P<collection>{names})", self._create)
        self.api("GET", rf"/api/v2/(?P<collection>{names})/(?P<ident>\d+)", self._read)
        self.api("PATCH", rf"/api/v2/(?P<collection>{names})/(?P<ident>\d+)", self._update)
        self.api("DELETE", rf"/api/v2/(?P<collection>{names})/(?P<ident>\d+)", self._delete)
        fields = "|".join(FIELD_ROUTES)
        self.api("GET", rf"/api/v2/(?P<route>{fields})", self._list_fields)
        self.api("POST", rf"/api/v2/(?P<route>{fields})", self._create_field)
        self.api("GET", rf"/api/v2/(?P<route>{fields})/(?P<code>[A-Za-z0-9_]+)", self._read_field)

    # -- records ------------------------------------------------------------------------------------
    @staticmethod
    def _entity(request: Request) -> str:
        return COLLECTIONS[request.params["collection"]]

    def _list(self, request: Request) -> Response:
        entity = self._entity(request)
        items = self.records.live(entity)
        for name in FILTERS[entity]:
            wanted = request.arg(name)
            if wanted not in (None, ""):
                number = int_arg(wanted, 0, 0, 2**31, name)
                items = [r for r in items if r.get(name) == number]
        if entity == "activity" and bool_arg(request.arg("done")) is not None:
            items = [r for r in items if bool(r.get("done")) == bool_arg(request.arg("done"))]
        if request.arg("ids"):
            try:
                ids = {int(i) for i in str(request.arg("ids")).split(",") if i.strip()}
            except ValueError:
                raise ApiError(
                    400, "ids must be comma-separated integers", code="ERR_SCHEMA_VALIDATION_FAILED"
                ) from None
            items = [r for r in items if r["id"] in ids]
        items = time_filter(items, request.arg("updated_since"), request.arg("updated_until"))
        sort_by = request.arg("sort_by", "id") or "id"
        if sort_by not in SORTS:
            raise ApiError(
                400, f"sort_by must be one of {', '.join(sorted(SORTS))}", code="ERR_SCHEMA_VALIDATION_FAILED"
            )
        descending = (request.arg("sort_direction", "asc") or "asc").lower() == "desc"
        # Ties keep id order, so a sort by update_time pages the same way every time.
        items = sorted(items, key=lambda r: (str(r.get(sort_by) or ""), r["id"]), reverse=descending)
        limit = int_arg(request.arg("limit"), 100, 1, 500, "limit")
        chunk, cursor = page(items, request.arg("cursor"), limit)
        return ok([copy.deepcopy(r) for r in chunk], {"next_cursor": cursor})

    def _create(self, request: Request) -> Response:
        user_id, source = self.actor(request)
        record = self.records.write(self._entity(request), request.json(), user_id=user_id, source=source)
        return ok(copy.deepcopy(record))

    def _read(self, request: Request) -> Response:
        return ok(copy.deepcopy(self.records.get(self._entity(request), request.params["ident"])))

    def _update(self, request: Request) -> Response:
        user_id, source = self.actor(request)
        record = self.records.write(
            self._entity(request), request.json(), user_id=user_id, source=source, ident=request.params["ident"]
        )
        return ok(copy.deepcopy(record))

    def _delete(self, request: Request) -> Response:
        user_id, source = self.actor(request)
        record = self.records.delete(self._entity(request), request.params["ident"], user_id=user_id, source=source)
        return ok({"id": record["id"]})

    # -- search [crm-reference §3.2] ---------------------------------------------------------------------
    def _search(self, request: Request) -> Response:
        collection = request.params["collection"]
        term = request.arg("term") or ""
        exact = bool(bool_arg(request.arg("exact_match")))
        if len(term.strip()) < (1 if exact else 2):
            raise ApiError(
                400,
                "The search term must be at least 2 characters long (1 with exact_match)",
                code="ERR_SCHEMA_VALIDATION_FAILED",
            )
        allowed = SEARCHABLE[collection]
        fields = [f.strip() for f in (request.arg("fields") or ",".join(allowed)).split(",") if f.strip()]
        if any(f not in allowed for f in fields):
            raise ApiError(400, f"fields must be among {', '.join(allowed)}", code="ERR_SCHEMA_VALIDATION_FAILED")
        entity = COLLECTIONS[collection]
        if "title" in fields:
            fields.append("name")
        limit = int_arg(request.arg("limit"), 100, 1, 500, "limit")
        found = self.records.search(entity, term, fields, exact)
        chunk, cursor = page(found, request.arg("cursor"), limit)
        items = [{"result_score": score, "item": self._search_item(entity, record)} for score, record in chunk]
        return ok({"items": items}, {"next_cursor": cursor})

    def _search_item(self, entity: str, record: dict[str, Any]) -> dict[str, Any]:
        owner = {"id": record.get("owner_id")}
        org = self.records.items["organization"].get(record.get("org_id")) if record.get("org_id") else None
        organization = {"id": org["id"], "name": org["name"], "address": org.get("address")} if org else None
        if entity == "person":
            return {
                "id": record["id"],
                "type": "person",
                "name": record["name"],
                "phones": [p["value"] for p in record["phones"]],
                "emails": [e["value"] for e in record["emails"]],
                "visible_to": record["visible_to"],
                "owner": owner,
                "organization": organization,
                "custom_fields": [v for v in record["custom_fields"].values() if isinstance(v, str)],
                "notes": [],
            }
        if entity == "deal":
            return {
                "id": record["id"],
                "type": "deal",
                "title": record["title"],
                "value": record["value"],
                "currency": record["currency"],
                "status": record["status"],
                "visible_to": record["visible_to"],
                "owner": owner,
                "stage": {"id": record["stage_id"]},
                "person": {"id": record["person_id"]},
                "organization": organization,
                "custom_fields": [v for v in record["custom_fields"].values() if isinstance(v, str)],
                "notes": [],
            }
        return {
            "id": record["id"],
            "type": "organization",
            "name": record["name"],
            "address": record.get("address"),
            "visible_to": record["visible_to"],
            "owner": owner,
            "custom_fields": [v for v in record["custom_fields"].values() if isinstance(v, str)],
            "notes": [],
        }

    # -- fields [crm-reference §3.3] ------------------------------------------------------------------------
    def _list_fields(self, request: Request) -> Response:
        entity = FIELD_ROUTES[request.params["route"]]
        limit = int_arg(request.arg("limit"), 100, 1, 500, "limit")
        chunk, cursor = page(self.records.fields.fields[entity], request.arg("cursor"), limit)
        return ok(copy.deepcopy(chunk), {"next_cursor": cursor})

    def _read_field(self, request: Request) -> Response:
        entity = FIELD_ROUTES[request.params["route"]]
        field = self.records.fields.find(entity, request.params["code"])
        if field is None:
            raise ApiError(404, "Field not found", code="ERR_NOT_FOUND")
        return ok(copy.deepcopy(field))

    def _create_field(self, request: Request) -> Response:
        entity = FIELD_ROUTES[request.params["route"]]
        if entity not in CREATABLE:
            # The v2 API has no create endpoint for activity fields (client-nodejs CHANGELOG 30.7.0).
            raise ApiError(404, f"Unknown path POST {request.path}", code="ERR_NOT_FOUND")
        self.require_admin(request)
        body = request.json()
        if not isinstance(body, dict):
            raise ApiError(400, "Request body must be a JSON object", code="ERR_SCHEMA_VALIDATION_FAILED")
        field = self.records.fields.add(entity, body.get("field_name"), body.get("field_type"), body.get("options"))
        if entity in ("person", "deal", "organization"):
            for record in self.records.items[entity].values():
                record["custom_fields"].setdefault(field["field_code"], None)
        return ok(copy.deepcopy(field))
