"""Activities, activity types, tasks, opportunities and pipelines (crm-reference §6.4).

- ``POST /activities`` ``{"parent": {"type", "id"}, "type": {"category": "user", "id"}, "details",
  "activity_date"}``; notes are activities of the user type "Note" (id 0 in Copper). ``POST
  /activities/search`` filters by ``parent``, ``activity_types`` and the activity-date range and
  answers newest first. Activities take no custom fields.
- ``/tasks``: ``name``, ``related_resource{type, id}``, ``due_date``, ``status`` Open|Completed,
  ``priority``, ``details``, custom fields.
- ``/opportunities``: ``name``, ``primary_contact_id``, ``pipeline_id``, ``pipeline_stage_id``
  (the account's first pipeline and its first stage when not given), ``monetary_value``,
  ``monetary_unit``, ``close_date`` as ``MM/DD/YYYY``, ``status`` Open|Won|Lost|Abandoned.

The exact bodies are partly UNVERIFIED (§12); referenced records must exist (422 otherwise).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from integrations.sandbox.copper import fields as custom
from integrations.sandbox.copper.errors import invalid, not_found
from integrations.sandbox.copper.records import render
from integrations.sandbox.copper.search import SearchSpec, search
from integrations.sandbox.copper.store import ENTITY_OF, RESOURCE_OF, Store
from integrations.sandbox.core import Request, Response

if TYPE_CHECKING:
    from integrations.sandbox.copper.app import CopperEmulator

PARENT_TYPES = ("person", "lead", "opportunity")
TASK_STATUSES = ("Open", "Completed")
TASK_PRIORITIES = ("None", "High")
OPPORTUNITY_STATUSES = ("Open", "Won", "Lost", "Abandoned")
TASK_KEYS = ("name", "related_resource", "assignee_id", "due_date", "reminder_date", "priority", "status")
TASK_KEYS += ("details", "tags")
OPPORTUNITY_KEYS = ("name", "assignee_id", "close_date", "company_name", "details", "monetary_value")
OPPORTUNITY_KEYS += ("monetary_unit", "pipeline_id", "pipeline_stage_id", "primary_contact_id", "status", "tags")


def _int(name: str, value: Any, *, allow_none: bool = True) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid(f"{name} must be an integer")
    return value


def _text(name: str, value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise invalid(f"{name} must be text")


ACTIVITY_SEARCH = SearchSpec(
    sort_keys={"activity_date": lambda r: r.get("activity_date"), "date_modified": lambda r: r.get("date_modified")},
    default_sort="activity_date",
    default_direction="desc",
    filters={
        "parent": lambda r, w: (
            isinstance(w, Mapping) and r["parent"]["type"] == w.get("type") and r["parent"]["id"] == w.get("id")
        ),
        "activity_types": lambda r, w: any(
            isinstance(t, Mapping) and t.get("category") == r["type"]["category"] and t.get("id") == r["type"]["id"]
            for t in (w if isinstance(w, list) else [w])
        ),
    },
    ranges={"activity": "activity_date", "created": "date_created", "modified": "date_modified"},
)
TASK_SEARCH = SearchSpec(
    sort_keys={
        "name": lambda r: r.get("name"),
        "due_date": lambda r: r.get("due_date"),
        "date_modified": lambda r: r.get("date_modified"),
        "date_created": lambda r: r.get("date_created"),
    },
    default_sort="name",
    filters={"statuses": lambda r, w: r.get("status") in (w if isinstance(w, list) else [w])},
    ranges={"created": "date_created", "modified": "date_modified", "due": "due_date"},
)
OPPORTUNITY_SEARCH = SearchSpec(
    sort_keys={
        "name": lambda r: r.get("name"),
        "monetary_value": lambda r: r.get("monetary_value"),
        "date_modified": lambda r: r.get("date_modified"),
        "date_created": lambda r: r.get("date_created"),
        "status": lambda r: r.get("status"),
    },
    default_sort="name",
    filters={
        "pipeline_ids": lambda r, w: r.get("pipeline_id") in (w if isinstance(w, list) else [w]),
        "pipeline_stage_ids": lambda r, w: r.get("pipeline_stage_id") in (w if isinstance(w, list) else [w]),
        "primary_contact_ids": lambda r, w: r.get("primary_contact_id") in (w if isinstance(w, list) else [w]),
        "statuses": lambda r, w: r.get("status") in (w if isinstance(w, list) else [w]),
    },
)


class EngagementRoutes:
    def __init__(self, app: CopperEmulator) -> None:
        self.app = app

    @property
    def store(self) -> Store:
        return self.app.store

    def register(self, api: Any) -> None:
        api("GET", "activity_types", lambda r: Response.json(self.store.copy(self.store.activity_types)))
        api("POST", "activities/search", lambda r: self._search(r, "activities", ACTIVITY_SEARCH))
        api("POST", "activities", self.create_activity)
        api("GET", r"activities/(?P<id>[^/]+)", lambda r: self._read(r, "activities"))
        api("DELETE", r"activities/(?P<id>[^/]+)", lambda r: self._delete(r, "activities"))
        api("GET", "pipelines", lambda r: Response.json(self.store.copy(self.store.pipelines)))
        for resource, spec in (("tasks", TASK_SEARCH), ("opportunities", OPPORTUNITY_SEARCH)):
            api("POST", f"{resource}/search", lambda r, resource=resource, spec=spec: self._search(r, resource, spec))
            api("POST", resource, lambda r, resource=resource: self._create(r, resource))
            api("GET", rf"{resource}/(?P<id>[^/]+)", lambda r, resource=resource: self._read(r, resource))
            api("PUT", rf"{resource}/(?P<id>[^/]+)", lambda r, resource=resource: self._update(r, resource))
            api("DELETE", rf"{resource}/(?P<id>[^/]+)", lambda r, resource=resource: self._delete(r, resource))

    # -- shared --------------------------------------------------------------------------------------
    def _existing(self, request: Request, resource: str) -> dict[str, Any]:
        record = self.store.get(resource, request.params["id"])
        if record is None:
            raise not_found()
        return record

    def _read(self, request: Request, resource: str) -> Response:
        return Response.json(render(self.store, resource, self._existing(request, resource)))

    def _delete(self, request: Request, resource: str) -> Response:
        record = self._existing(request, resource)
        self.store.remove(resource, record["id"])
        self.app.changed(resource, record["id"], "delete", user_id=self.app.user_of(request))
        return Response.json({"id": record["id"], "is_deleted": True})

    def _search(self, request: Request, resource: str, spec: SearchSpec) -> Response:
        page, total = search(self.store.all(resource), request.json(), spec)
        return Response.json([render(self.store, resource, r) for r in page], headers={"X-PW-TOTAL": str(total)})

    def _reference(self, entity: Any, record_id: Any, what: str) -> None:
        resource = RESOURCE_OF.get(str(entity))
        if resource is None or self.store.get(resource, record_id) is None:
            raise invalid(f"{what} {entity} {record_id!r} does not exist")

    # -- activities ----------------------------------------------------------------------------------
    def create_activity(self, request: Request) -> Response:
        body = request.json()
        if not isinstance(body, Mapping):
            raise invalid("the body must be a JSON object")
        parent, kind = body.get("parent"), body.get("type")
        if not isinstance(parent, Mapping) or parent.get("type") not in PARENT_TYPES:
            raise invalid(f"parent.type must be one of {', '.join(PARENT_TYPES)}")
        self._reference(parent.get("type"), parent.get("id"), "parent")
        if not isinstance(kind, Mapping) or kind.get("category") != "user":
            raise invalid("type must be a user activity type {category: user, id}")
        known = next((t for t in self.store.activity_types["user"] if t["id"] == kind.get("id")), None)
        if known is None or known.get("is_disabled"):
            raise invalid(f"activity type {kind.get('id')!r} does not exist or is disabled")
        now = self.store.now()
        record = {
            "id": self.store.new_id("activities"),
            "parent": {"type": parent["type"], "id": int(parent["id"])},
            "type": {"category": "user", "id": known["id"]},
            "user_id": self.app.user_of(request),
            "details": _text("details", body.get("details")),
            "activity_date": _int("activity_date", body.get("activity_date")) or now,
            "old_value": None,
            "new_value": None,
            "date_created": now,
            "date_modified": now,
        }
        self.store.put("activities", record)
        self.app.changed("activities", record["id"], "new", user_id=record["user_id"])
        return Response.json(render(self.store, "activities", record))

    # -- tasks and opportunities ---------------------------------------------------------------------
    def _apply(self, resource: str, record: dict[str, Any], body: Any) -> None:
        if not isinstance(body, Mapping):
            raise invalid("the body must be a JSON object")
        keys = TASK_KEYS if resource == "tasks" else OPPORTUNITY_KEYS
        for key in keys:
            if key in body:
                record[key] = self._checked(resource, record, key, body[key])
        if resource == "opportunities":
            self._pipeline(record)
        if "custom_fields" in body:
            values = custom.validate_values(self.store, ENTITY_OF[resource], body["custom_fields"])
            record["_custom"] = {**(record.get("_custom") or {}), **values}
        if not str(record.get("name") or "").strip():
            raise invalid("name can't be blank")

    def _checked(self, resource: str, record: dict[str, Any], key: str, value: Any) -> Any:
        if key in ("name", "details", "company_name"):
            return _text(key, value)
        if key in ("due_date", "reminder_date", "pipeline_id", "pipeline_stage_id"):
            return _int(key, value)
        if key == "assignee_id":
            if value is not None and value not in self.store.users:
                raise invalid(f"assignee_id {value!r} is not a user of this account")
            return value
        if key == "tags":
            if value is not None and not (isinstance(value, list) and all(isinstance(t, str) for t in value)):
                raise invalid("tags must be a list of text")
            return list(value or [])
        if key == "related_resource":
            if value is None:
                return None
            if not isinstance(value, Mapping):
                raise invalid("related_resource must be {type, id}")
            self._reference(value.get("type"), value.get("id"), "related_resource")
            return {"type": value["type"], "id": int(value["id"])}
        if key == "status":
            allowed = TASK_STATUSES if resource == "tasks" else OPPORTUNITY_STATUSES
            if value not in allowed:
                raise invalid(f"status must be one of {', '.join(allowed)}")
            return value
        if key == "priority":
            if value not in TASK_PRIORITIES:
                raise invalid(f"priority must be one of {', '.join(TASK_PRIORITIES)}")
            return value
        if key == "primary_contact_id":
            if value is not None:
                self._reference("person", value, "primary_contact_id")
            return value
        if key == "monetary_value":
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
                raise invalid("monetary_value must be a number")
            return value
        if key == "monetary_unit":
            if value is not None and value not in self.app.currencies:
                raise invalid(f"monetary_unit must be one of {', '.join(self.app.currencies)}")
            return value
        if key == "close_date":
            if value is not None:
                try:
                    dt.datetime.strptime(str(value), "%m/%d/%Y")
                except ValueError:
                    raise invalid("close_date must be a date as MM/DD/YYYY") from None
            return value
        return value

    def _pipeline(self, record: dict[str, Any]) -> None:
        pipelines = self.store.pipelines
        pipeline = next((p for p in pipelines if p["id"] == record.get("pipeline_id")), None)
        if record.get("pipeline_id") is None:
            pipeline = pipelines[0]
        if pipeline is None:
            raise invalid(f"pipeline_id {record.get('pipeline_id')!r} does not exist")
        stage_ids = [s["id"] for s in pipeline["stages"]]
        if record.get("pipeline_stage_id") is None:
            record["pipeline_stage_id"] = stage_ids[0]
        elif record["pipeline_stage_id"] not in stage_ids:
            raise invalid(f"pipeline_stage_id {record['pipeline_stage_id']!r} is not a stage of {pipeline['name']}")
        record["pipeline_id"] = pipeline["id"]

    def new_record(self, resource: str, body: Any, *, user_id: int | None) -> dict[str, Any]:
        now = self.store.now()
        record: dict[str, Any] = {"id": 0, "name": None, "assignee_id": None, "details": None, "tags": []}
        if resource == "tasks":
            record.update(related_resource=None, due_date=None, reminder_date=None, completed_date=None)
            record.update(priority="None", status="Open")
        else:
            record.update(close_date=None, company_name=None, monetary_value=None, monetary_unit=None)
            record.update(pipeline_id=None, pipeline_stage_id=None, primary_contact_id=None, status="Open")
        record.update(date_created=now, date_modified=now, _custom={})
        self._apply(resource, record, body)
        record["id"] = self.store.new_id(resource)
        self.store.put(resource, record)
        self.app.changed(resource, record["id"], "new", user_id=user_id)
        return record

    def _create(self, request: Request, resource: str) -> Response:
        record = self.new_record(resource, request.json(), user_id=self.app.user_of(request))
        return Response.json(render(self.store, resource, record))

    def _update(self, request: Request, resource: str) -> Response:
        record = self._existing(request, resource)
        updated = self.store.copy(record)
        self._apply(resource, updated, request.json() or {})
        changed = {k: [record.get(k), v] for k, v in updated.items() if record.get(k) != v}
        if changed:
            if resource == "tasks" and "status" in changed:
                updated["completed_date"] = self.store.now() if updated["status"] == "Completed" else None
            updated["date_modified"] = self.store.now()
            record.clear()
            record.update(updated)
            self.app.changed(resource, record["id"], "update", user_id=self.app.user_of(request), attributes=changed)
        return Response.json(render(self.store, resource, record))
