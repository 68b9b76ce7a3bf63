"""Notes, tasks, sales activities, deals and the selectors (crm-reference §7.4).

- ``POST /notes`` ``{"note": {description, targetable_type: "Contact", targetable_id}}`` → 201.
- ``POST /tasks`` ``{"task": {title, description, due_date, targetable_type, targetable_id,
  owner_id}}`` → 201; ``GET|PUT /tasks/{id}``.
- ``POST /sales_activities`` ``{"sales_activity": {title, notes, sales_activity_type_id,
  start_date, end_date, targetable_type, targetable_id, owner_id}}`` → 201 (body partly UNVERIFIED).
- ``POST /deals`` ``{"deal": {name, amount, deal_stage_id, expected_close, contacts_added_list,
  custom_field}}`` → 201; ``GET|PUT|DELETE /deals/{id}``.
- ``GET /selector/owners`` → ``{"users": […]}``, ``/selector/sales_activity_types``,
  ``/selector/deal_stages``.

Notes, tasks and sales activities must target an existing contact (404 otherwise).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from integrations.sandbox.core import Request, Response
from integrations.sandbox.freshsales.contacts import apply_custom, body_of
from integrations.sandbox.freshsales.errors import FreshsalesError, not_found

if TYPE_CHECKING:
    from integrations.sandbox.freshsales.app import FreshsalesEmulator

DEAL_WRITABLE = {
    "name",
    "amount",
    "deal_stage_id",
    "expected_close",
    "owner_id",
    "currency_id",
    "custom_field",
    "contacts_added_list",
    "sales_account_id",
}
ENGAGEMENT = {
    "notes": ("note", {"description"}, set()),
    "tasks": ("task", {"title", "due_date"}, {"description", "owner_id", "status"}),
    "sales_activities": (
        "sales_activity",
        {"title", "sales_activity_type_id", "start_date", "end_date"},
        {"notes", "owner_id"},
    ),
}


def _time(value: Any, name: str) -> str:
    try:
        return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00")).isoformat()
    except ValueError:
        raise FreshsalesError(400, f"{name} is not a valid date") from None


class EngagementRoutes:
    def __init__(self, app: FreshsalesEmulator) -> None:
        self.app = app
        self.store = app.store

    def register(self, p: str) -> None:
        route = self.app.route
        for resource in ENGAGEMENT:
            route("POST", p + f"/{resource}", lambda r, res=resource: self.create(r, res))
            route("GET", p + f"/{resource}/(?P<id>\\d+)", lambda r, res=resource: self.show(r, res))
        route("PUT", p + r"/tasks/(?P<id>\d+)", self.update_task)
        route("POST", p + r"/deals", self.create_deal)
        route("GET", p + r"/deals/(?P<id>\d+)", lambda r: self.show(r, "deals"))
        route("PUT", p + r"/deals/(?P<id>\d+)", self.update_deal)
        route("DELETE", p + r"/deals/(?P<id>\d+)", self.delete_deal)
        route("GET", p + r"/selector/owners", self.owners)
        route("GET", p + r"/selector/sales_activity_types", self.activity_types)
        route("GET", p + r"/selector/deal_stages", self.deal_stages)

    def _find(self, resource: str, record_id: str) -> dict[str, Any]:
        record = self.store.records[resource].get(int(record_id))
        if record is None:
            raise not_found(self.app.root(resource).replace("_", " ").capitalize())
        return record

    def show(self, request: Request, resource: str) -> Response:
        with self.app.lock:
            record = dict(self._find(resource, request.params["id"]))
        return Response.json({self.app.root(resource): record})

    def create(self, request: Request, resource: str) -> Response:
        root, required, optional = ENGAGEMENT[resource]
        attrs = body_of(request, root)[root]
        missing = sorted(name for name in required if attrs.get(name) in (None, ""))
        if missing:
            raise FreshsalesError(400, f"{missing[0]} can't be blank")
        unknown = sorted(set(attrs) - required - optional - {"targetable_type", "targetable_id"})
        if unknown:
            raise FreshsalesError(400, f"Unknown attribute {unknown[0]}")
        if attrs.get("targetable_type") != "Contact":
            raise FreshsalesError(400, "targetable_type must be Contact")
        user = self.app.user_of(request)
        with self.app.lock:
            if not str(attrs.get("targetable_id") or "").isdigit() or (
                int(attrs["targetable_id"]) not in self.store.records["contacts"]
            ):
                raise not_found("Contact")
            if attrs.get("owner_id") is not None and self.store.user(attrs["owner_id"]) is None:
                raise FreshsalesError(400, "Owner is invalid")
            if resource == "sales_activities":
                if not any(str(t["id"]) == str(attrs["sales_activity_type_id"]) for t in self.store.activity_types):
                    raise FreshsalesError(400, "Sales activity type is invalid")
                attrs = {
                    **attrs,
                    "start_date": _time(attrs["start_date"], "start_date"),
                    "end_date": _time(attrs["end_date"], "end_date"),
                }
            if resource == "tasks":
                attrs = {**attrs, "due_date": _time(attrs["due_date"], "due_date"), "status": attrs.get("status", 0)}
            now = self.store.now()
            record = {
                **attrs,
                "id": self.store.next_id(),
                "targetable_id": int(attrs["targetable_id"]),
                "creater_id": user.id,
                "owner_id": attrs.get("owner_id") or user.id,
                "created_at": now,
                "updated_at": now,
            }
            self.store.records[resource][record["id"]] = record
        return Response.json({root: dict(record)}, status=201)

    def update_task(self, request: Request) -> Response:
        attrs = body_of(request, "task")["task"]
        with self.app.lock:
            record = self._find("tasks", request.params["id"])
            record.update({k: v for k, v in attrs.items() if k in {"title", "description", "status", "due_date"}})
            record["updated_at"] = self.store.now()
        return Response.json({"task": dict(record)})

    # -- deals -----------------------------------------------------------------------------------------
    def _write_deal(self, request: Request, attrs: dict[str, Any], record: dict[str, Any] | None) -> dict[str, Any]:
        unknown = sorted(set(attrs) - DEAL_WRITABLE)
        if unknown:
            raise FreshsalesError(400, f"Unknown attribute {unknown[0]}")
        target = dict(record or {"id": 0, "custom_field": {}, "contact_ids": []})
        if record is None and not attrs.get("name"):
            raise FreshsalesError(400, "Name can't be blank")
        if attrs.get("amount") not in (None, ""):
            try:
                float(attrs["amount"])
            except (TypeError, ValueError):
                raise FreshsalesError(400, "Deal value is not a number") from None
        stage = attrs.get("deal_stage_id")
        if stage is not None and not any(str(s["id"]) == str(stage) for s in self.store.deal_stages):
            raise FreshsalesError(400, "Deal stage is invalid")
        contacts = attrs.get("contacts_added_list") or []
        for contact_id in contacts:
            if not str(contact_id).isdigit() or int(contact_id) not in self.store.records["contacts"]:
                raise FreshsalesError(400, f"Contact {contact_id} does not exist")
        apply_custom(self.app, "deals", target, attrs.get("custom_field"))
        target.update({k: v for k, v in attrs.items() if k not in {"custom_field", "contacts_added_list"}})
        target["contact_ids"] = sorted({*target["contact_ids"], *(int(c) for c in contacts)})
        user, now = self.app.user_of(request), self.store.now()
        if record is None:
            target.update(id=self.store.next_id(), created_at=now, creater_id=user.id)
            target.setdefault("owner_id", user.id)
            target.setdefault("deal_stage_id", self.store.deal_stages[0]["id"])
        target.update(updated_at=now, updater_id=user.id)
        self.store.records["deals"][target["id"]] = target
        return target

    def create_deal(self, request: Request) -> Response:
        attrs = body_of(request, "deal")["deal"]
        with self.app.lock:
            record = self._write_deal(request, attrs, None)
        return Response.json({"deal": dict(record)}, status=201)

    def update_deal(self, request: Request) -> Response:
        attrs = body_of(request, "deal")["deal"]
        with self.app.lock:
            record = self._write_deal(request, attrs, self._find("deals", request.params["id"]))
        return Response.json({"deal": dict(record)})

    def delete_deal(self, request: Request) -> Response:
        with self.app.lock:
            self._find("deals", request.params["id"])
            del self.store.records["deals"][int(request.params["id"])]
        return Response.json(True)

    # -- selectors -------------------------------------------------------------------------------------
    def owners(self, request: Request) -> Response:
        users = [
            {"id": u.id, "display_name": u.display_name, "email": u.email, "is_active": True} for u in self.store.users
        ]
        return Response.json({"users": users})

    def activity_types(self, request: Request) -> Response:
        with self.app.lock:
            return Response.json({"sales_activity_types": [dict(t) for t in self.store.activity_types]})

    def deal_stages(self, request: Request) -> Response:
        with self.app.lock:
            return Response.json({"deal_stages": [dict(s) for s in self.store.deal_stages]})
