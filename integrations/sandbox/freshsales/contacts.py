"""Contacts, the e-mail upsert, lookups, list views, filtered search and field settings (§7.2, §7.3, §7.7).

- ``POST /contacts``, ``GET|PUT|DELETE /contacts/{id}`` (``GET`` takes ``include=notes,tasks,
  sales_activities,deals``: the associations come back beside ``contact``; the include names
  are UNVERIFIED), ``POST /contacts/upsert`` with ``unique_identifier: {"emails": …}`` → 201
  created, 200 updated.
- ``GET /lookup?q=…&f=email&entities=contact`` → ``{"contacts": {"contacts": […]}}``;
  ``GET /search?q=…&include=contact`` → a list of ``{id, name, type, email}``.
- ``GET /{contacts|deals}/filters`` (the views; "All …" first) and ``GET /{…}/view/{id}?page=&
  per_page=&sort=&sort_type=`` → ``{"contacts": […], "meta": {"total", "total_pages"}}``.
- ``POST /filtered_search/{contact|deal}`` with ``filter_rule: [{attribute, operator: "is_in",
  value}]`` (shape UNVERIFIED; used for our key fields).
- ``GET /settings/{contacts|deals}/fields`` → ``{"fields": […]}``. Custom fields cannot be created
  through the API (none is documented): tests add them with ``FreshsalesEmulator.add_custom_field``.

The sandbox is strict where Freshsales' answer is unknown: an attribute it does not know, a
custom field that does not exist, a dropdown value not among its choices, a duplicate e-mail or a
duplicate value of a unique custom field is a 400 with the errors body.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from integrations.sandbox.core import Request, Response
from integrations.sandbox.freshsales.errors import FreshsalesError, not_found
from integrations.sandbox.freshsales.store import CONTACT_FIELDS

if TYPE_CHECKING:
    from integrations.sandbox.freshsales.app import FreshsalesEmulator

WRITABLE = {f["name"] for f in CONTACT_FIELDS if not f.get("read_only")} - {"emails"}
INCLUDES = {"notes": "notes", "tasks": "tasks", "sales_activities": "sales_activities", "deals": "deals"}
VIEWS = {"contacts": [(1, "All Contacts"), (2, "My Contacts")], "deals": [(11, "All Deals"), (12, "My Deals")]}
MAX_PER_PAGE = 100


def body_of(request: Request, root: str) -> dict[str, Any]:
    try:
        payload = request.json()
    except ValueError:
        raise FreshsalesError(400, "The request body is not valid JSON") from None
    if not isinstance(payload, dict) or not isinstance(payload.get(root), dict):
        raise FreshsalesError(400, f"{root} is missing in the request body")
    return payload


def apply_custom(app: FreshsalesEmulator, model: str, record: dict[str, Any], values: Any) -> None:
    """Validate and write ``custom_field`` values (unknown fields, choices, unique values)."""
    if values is None:
        return
    if not isinstance(values, dict):
        raise FreshsalesError(400, "custom_field must be an object")
    definitions = app.store.custom(model)
    current = dict(record.get("custom_field") or {})
    for name, value in values.items():
        definition = definitions.get(name)
        if definition is None:
            raise FreshsalesError(400, f"Invalid custom field {name}")
        choices = [c["value"] for c in definition.get("choices") or []]
        if choices and value not in (None, "") and str(value) not in choices:
            raise FreshsalesError(400, f"{definition['label']} is invalid: {value!r} is not one of its choices")
        if definition.get("type") == "number" and value not in (None, ""):
            try:
                float(value)
            except (TypeError, ValueError):
                raise FreshsalesError(400, f"{definition['label']} is not a number") from None
        if definition.get("unique") and value not in (None, ""):
            for other in app.store.records[model].values():
                if other["id"] != record.get("id") and (other.get("custom_field") or {}).get(name) == value:
                    raise FreshsalesError(400, f"{definition['label']} already exists")
        current[name] = value
    record["custom_field"] = current


def _emails(attrs: dict[str, Any]) -> list[str] | None:
    if "emails" in attrs:
        items = attrs["emails"] or []
        if not isinstance(items, list):
            raise FreshsalesError(400, "emails must be a list")
        ordered = sorted(items, key=lambda e: not (isinstance(e, dict) and e.get("is_primary")))
        return [str(e.get("value") if isinstance(e, dict) else e).strip() for e in ordered]
    if "email" in attrs:
        return [str(attrs["email"] or "").strip()] if attrs["email"] else []
    return None


class ContactRoutes:
    def __init__(self, app: FreshsalesEmulator) -> None:
        self.app = app
        self.store = app.store

    def register(self, p: str) -> None:
        route = self.app.route
        route("POST", p + r"/contacts", self.create)
        route("POST", p + r"/contacts/upsert", self.upsert)
        route("GET", p + r"/contacts/(?P<id>\d+)", self.show)
        route("PUT", p + r"/contacts/(?P<id>\d+)", self.update)
        route("DELETE", p + r"/contacts/(?P<id>\d+)", self.delete)
        route("GET", p + r"/lookup", self.lookup)
        route("GET", p + r"/search", self.search)
        route("GET", p + r"/(?P<model>contacts|deals)/filters", self.filters)
        route("GET", p + r"/(?P<model>contacts|deals)/view/(?P<view>\d+)", self.view)
        route("POST", p + r"/filtered_search/(?P<entity>contact|deal)", self.filtered_search)
        route("GET", p + r"/settings/(?P<model>contacts|deals)/fields", self.fields)

    # -- writing ---------------------------------------------------------------------------------------
    def write(self, request: Request, attrs: dict[str, Any], record: dict[str, Any] | None) -> dict[str, Any]:
        creating = record is None
        user = self.app.user_of(request)
        target = dict(record or {"id": 0, "custom_field": {}, "emails": []})
        unknown = sorted(set(attrs) - WRITABLE - {"emails", "email", "custom_field"})
        if unknown:
            raise FreshsalesError(400, f"Unknown attribute {unknown[0]}")
        if "owner_id" in attrs and attrs["owner_id"] is not None and self.store.user(attrs["owner_id"]) is None:
            raise FreshsalesError(400, "Sales owner is invalid")
        emails = _emails(attrs)
        if emails is not None:
            for value in emails:
                if "@" not in value or value.startswith("@") or value.endswith("@"):
                    raise FreshsalesError(400, f"Email {value!r} is invalid")
            taken = {e.lower() for e in emails}
            for other in self.store.records["contacts"].values():
                if other["id"] != target["id"] and taken & {e["value"].lower() for e in other["emails"]}:
                    raise FreshsalesError(400, "Email already exists")
            kept = [e for e in target["emails"] if e["value"].lower() not in taken]
            fresh = [
                {"id": self.store.next_id(), "value": v, "is_primary": i == 0, "label": None}
                for i, v in enumerate(emails)
            ]
            for old in kept:
                old["is_primary"] = False
            target["emails"] = fresh + kept if fresh else kept
        if creating and not target["emails"] and not (attrs.get("last_name") or attrs.get("mobile_number")):
            raise FreshsalesError(400, "Email, last name or mobile number is required")
        apply_custom(self.app, "contacts", target, attrs.get("custom_field"))
        target.update({k: v for k, v in attrs.items() if k in WRITABLE})
        now = self.store.now()
        if creating:
            target["id"] = self.store.next_id()
            target.update(created_at=now, creater_id=user.id)
            target.setdefault("owner_id", user.id)
        target.update(updated_at=now, updater_id=user.id)
        target["email"] = target["emails"][0]["value"] if target["emails"] else None
        names = [target.get("first_name"), target.get("last_name")]
        target["display_name"] = " ".join(n for n in names if n) or target["email"] or ""
        self.store.records["contacts"][target["id"]] = target
        return target

    def create(self, request: Request) -> Response:
        attrs = body_of(request, "contact")["contact"]
        with self.app.lock:
            record = self.write(request, attrs, None)
        return Response.json({"contact": record}, status=201)

    def upsert(self, request: Request) -> Response:
        payload = body_of(request, "contact")
        unique = payload.get("unique_identifier")
        if not isinstance(unique, dict) or len(unique) != 1:
            raise FreshsalesError(400, "unique_identifier must name exactly one field")
        ((field_name, value),) = unique.items()
        with self.app.lock:
            if field_name == "emails":
                wanted = str(value or "").strip().lower()
                match = next(
                    (
                        r
                        for r in self.store.records["contacts"].values()
                        if wanted in {e["value"].lower() for e in r["emails"]}
                    ),
                    None,
                )
            elif field_name in self.store.custom("contacts"):
                match = next(
                    (
                        r
                        for r in self.store.records["contacts"].values()
                        if (r.get("custom_field") or {}).get(field_name) == value
                    ),
                    None,
                )
            else:
                raise FreshsalesError(400, f"{field_name} cannot be used as a unique identifier")
            attrs = dict(payload["contact"])
            if field_name == "emails" and match is None and "emails" not in attrs and "email" not in attrs:
                attrs["emails"] = [{"value": str(value), "is_primary": True}]
            record = self.write(request, attrs, match)
        return Response.json({"contact": record}, status=200 if match else 201)

    def _get(self, record_id: str) -> dict[str, Any]:
        record = self.store.records["contacts"].get(int(record_id))
        if record is None:
            raise not_found("Contact")
        return record

    def show(self, request: Request) -> Response:
        with self.app.lock:
            record = self._get(request.params["id"])
            answer: dict[str, Any] = {"contact": dict(record)}
            for name in filter(None, (request.arg("include") or "").split(",")):
                resource = INCLUDES.get(name.strip())
                if resource is None:
                    raise FreshsalesError(400, f"include {name} is not supported")
                answer[resource] = [dict(r) for r in self.store.records[resource].values() if _belongs(r, record["id"])]
        return Response.json(answer)

    def update(self, request: Request) -> Response:
        attrs = body_of(request, "contact")["contact"]
        with self.app.lock:
            record = self.write(request, attrs, self._get(request.params["id"]))
        return Response.json({"contact": record})

    def delete(self, request: Request) -> Response:
        with self.app.lock:
            self._get(request.params["id"])
            del self.store.records["contacts"][int(request.params["id"])]
        return Response.json(True)

    # -- reading ---------------------------------------------------------------------------------------
    def lookup(self, request: Request) -> Response:
        query, field_name = (request.arg("q") or "").strip().lower(), request.arg("f") or "email"
        if not query or field_name != "email" or "contact" not in (request.arg("entities") or ""):
            raise FreshsalesError(400, "q, f=email and entities=contact are required")
        with self.app.lock:
            found = [
                dict(r)
                for r in self.store.records["contacts"].values()
                if query in {e["value"].lower() for e in r["emails"]}
            ]
        return Response.json({"contacts": {"contacts": found}})

    def search(self, request: Request) -> Response:
        query = (request.arg("q") or "").strip().lower()
        if len(query) < 2:
            raise FreshsalesError(400, "q must have at least 2 characters")
        with self.app.lock:
            found = [
                {"id": r["id"], "name": r["display_name"], "type": "contact", "email": r["email"]}
                for r in self.store.records["contacts"].values()
                if query in r["display_name"].lower() or any(query in e["value"].lower() for e in r["emails"])
            ]
        return Response.json(found)

    def filters(self, request: Request) -> Response:
        model = request.params["model"]
        kind = "Contact" if model == "contacts" else "Deal"
        views = [
            {"id": vid, "name": name, "model_class_name": kind, "is_default": i == 0}
            for i, (vid, name) in enumerate(VIEWS[model])
        ]
        return Response.json({"filters": views})

    def view(self, request: Request) -> Response:
        model, view_id = request.params["model"], int(request.params["view"])
        views = dict(VIEWS[model])
        if view_id not in views:
            raise not_found("View")
        try:
            page = max(1, int(request.arg("page") or 1))
            per_page = min(MAX_PER_PAGE, max(1, int(request.arg("per_page") or 25)))
        except ValueError:
            raise FreshsalesError(400, "page and per_page must be numbers") from None
        sort, descending = request.arg("sort") or "id", (request.arg("sort_type") or "desc") == "desc"
        user = self.app.user_of(request)
        with self.app.lock:
            rows = [
                dict(r)
                for r in self.store.records[model].values()
                if not views[view_id].startswith("My") or r.get("owner_id") == user.id
            ]
        rows.sort(key=lambda r: (str(r.get(sort) or ""), r["id"]), reverse=descending)
        pages = max(1, math.ceil(len(rows) / per_page))
        chunk = rows[(page - 1) * per_page : page * per_page]
        return Response.json({model: chunk, "meta": {"total": len(rows), "total_pages": pages}})

    def filtered_search(self, request: Request) -> Response:
        entity = request.params["entity"]
        model = entity + "s"
        payload = request.json() or {}
        rules = payload.get("filter_rule")
        if not isinstance(rules, list) or not rules:
            raise FreshsalesError(400, "filter_rule is required")
        with self.app.lock:
            rows = [dict(r) for r in self.store.records[model].values()]
        for rule in rules:
            attribute, operator, value = rule.get("attribute"), rule.get("operator"), rule.get("value")
            if operator != "is_in":
                raise FreshsalesError(400, f"operator {operator} is not supported")
            values = {str(v) for v in (value if isinstance(value, list) else [value])}
            rows = [r for r in rows if str(_attribute(r, str(attribute))) in values]
        rows.sort(key=lambda r: r["id"])
        return Response.json({model: rows, "meta": {"total": len(rows)}})

    def fields(self, request: Request) -> Response:
        with self.app.lock:
            return Response.json({"fields": [dict(f) for f in self.store.fields[request.params["model"]]]})


def _attribute(record: dict[str, Any], name: str) -> Any:
    if name.startswith("cf_"):
        return (record.get("custom_field") or {}).get(name)
    if name == "contact_email.email":
        return record.get("email")
    return record.get(name)


def _belongs(record: dict[str, Any], contact_id: int) -> bool:
    if record.get("targetable_type") == "Contact" and int(record.get("targetable_id") or 0) == contact_id:
        return True
    return contact_id in (record.get("contact_ids") or [])
