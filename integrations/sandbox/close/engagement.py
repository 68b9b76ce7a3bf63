"""Activities, tasks and opportunities (crm-reference §8.4; spec close-openapi.yml).

- ``/activity/`` lists every type; per its documentation ``contact_id``, ``contact_id__in``,
  ``user_id``, ``user_id__in``, ``_type`` and ``_type__in`` only work for a single ``lead_id``
  (400 otherwise); ``lead_id__in`` and the ``date_created`` / ``activity_at`` / ``date_updated``
  ranges work across leads. ``_type`` takes ``Custom`` or a Custom Activity Type id for custom
  activities.
- Typed endpoints: notes and calls can be created; meetings are only listed (they are synced from
  calendars; the spec has no create); custom activities (``/activity/custom/``) carry the
  activity custom fields of their type, whose required ones must be set when published.
- ``/task/`` (lead tasks: ``lead_id``, ``text``, ``date``, ``assigned_to``, ``is_complete``; the
  body is untyped in the spec, names per crm-reference §8.4) and ``/opportunity/`` (``value`` in
  cents, ``value_period``, ``status_id`` defaulting to the pipeline's first status).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from integrations.sandbox.close import wire
from integrations.sandbox.close.errors import CloseError, invalid, not_found
from integrations.sandbox.close.fields import custom_values, wire_values
from integrations.sandbox.close.people import _body
from integrations.sandbox.close.store import Actor, Store, changed_keys
from integrations.sandbox.core import Request, Response

ID = r"(?P<object_id>[^/]+)"
# Activity _type per typed endpoint, and the event log's object_type for each.
TYPED = {"note": "Note", "call": "Call", "meeting": "Meeting", "custom": "CustomActivity"}
EVENT_OBJECT = {
    "Note": "activity.note",
    "Call": "activity.call",
    "Meeting": "activity.meeting",
    "CustomActivity": "activity.custom_activity",
}
SINGLE_LEAD_FILTERS = ("contact_id", "contact_id__in", "user_id", "user_id__in", "_type", "_type__in")
VALUE_PERIODS = ("one_time", "monthly", "annual")
CALL_STATUSES = ("created", "in-progress", "completed", "cancel", "no-answer", "busy", "failed", "timeout")


def _range_filters(request: Request, field: str) -> list[Callable[[dict[str, Any]], bool]]:
    """``<field>__gt|gte|lt|lte`` query arguments as predicates on a record's timestamp."""
    tests = []
    for op in ("gt", "gte", "lt", "lte"):
        raw = request.arg(f"{field}__{op}")
        if raw is None:
            continue
        bound = wire.parse_time(raw)
        if bound is None:
            raise CloseError(400, f"{field}__{op} is not a date and time")

        def test(record: dict[str, Any], op: str = op, bound: Any = bound) -> bool:
            value = wire.parse_time(record.get(field))
            if value is None:
                return False
            return {"gt": value > bound, "gte": value >= bound, "lt": value < bound, "lte": value <= bound}[op]

        tests.append(test)
    return tests


def _ordered(rows: list[dict[str, Any]], order_by: str | None, default: str) -> list[dict[str, Any]]:
    key = (order_by or default).strip()
    field, reverse = key.lstrip("-"), key.startswith("-")
    return sorted(rows, key=lambda r: (str(r.get(field) or ""), r["id"]), reverse=reverse)


class Engagement:
    def __init__(self, store: Store, actor: Callable[[Request], Actor]) -> None:
        self.store = store
        self.actor = actor

    def routes(self) -> list[tuple[str, str, Callable[[Request], Response]]]:
        routes: list[tuple[str, str, Callable[[Request], Response]]] = [("GET", r"/api/v1/activity/", self.list_all)]
        for name in TYPED:
            routes.append(("GET", rf"/api/v1/activity/{name}/", self._typed(self.list_typed, name)))
            routes.append(("GET", rf"/api/v1/activity/{name}/{ID}/", self._typed(self.get_activity, name)))
            routes.append(("DELETE", rf"/api/v1/activity/{name}/{ID}/", self._typed(self.delete_activity, name)))
            if name != "meeting":
                routes.append(("POST", rf"/api/v1/activity/{name}/", self._typed(self.create_activity, name)))
                routes.append(("PUT", rf"/api/v1/activity/{name}/{ID}/", self._typed(self.update_activity, name)))
        routes += [
            ("GET", r"/api/v1/task/", self.list_tasks),
            ("POST", r"/api/v1/task/", self.create_task),
            ("GET", rf"/api/v1/task/{ID}/", self.get_task),
            ("PUT", rf"/api/v1/task/{ID}/", self.update_task),
            ("DELETE", rf"/api/v1/task/{ID}/", self.delete_task),
            ("GET", r"/api/v1/opportunity/", self.list_opportunities),
            ("POST", r"/api/v1/opportunity/", self.create_opportunity),
            ("GET", rf"/api/v1/opportunity/{ID}/", self.get_opportunity),
            ("PUT", rf"/api/v1/opportunity/{ID}/", self.update_opportunity),
            ("DELETE", rf"/api/v1/opportunity/{ID}/", self.delete_opportunity),
        ]
        return routes

    @staticmethod
    def _typed(handler: Callable[[Request, str], Response], name: str) -> Callable[[Request], Response]:
        return lambda request: handler(request, TYPED[name])

    # -- shared checks -------------------------------------------------------------------------------
    def _lead_and_contact(self, body: dict[str, Any], problems: dict[str, str], *, lead_required: bool) -> None:
        lead_id, contact_id = body.get("lead_id"), body.get("contact_id")
        if lead_id is None and contact_id in self.store.contacts:
            body["lead_id"] = lead_id = self.store.contacts[contact_id]["lead_id"]
        if lead_id is None:
            if lead_required:
                problems["lead_id"] = "This field is required."
        elif lead_id not in self.store.leads:
            problems["lead_id"] = "Invalid lead id."
        if contact_id is not None:
            contact = self.store.contacts.get(contact_id)
            if contact is None:
                problems["contact_id"] = "Invalid contact id."
            elif lead_id is not None and contact["lead_id"] != lead_id:
                problems["contact_id"] = "The contact does not belong to this lead."

    def _when(self, body: dict[str, Any], key: str, problems: dict[str, str]) -> str | None:
        if body.get(key) in (None, ""):
            return None
        moment = wire.parse_time(body[key])
        if moment is None:
            problems[key] = "Not a valid date and time."
            return None
        return wire.iso(moment)

    # -- activities -----------------------------------------------------------------------------------
    def activity_wire(self, activity: dict[str, Any]) -> dict[str, Any]:
        body = {k: copy.deepcopy(v) for k, v in activity.items() if k != "custom"}
        body["organization_id"] = self.store.org_id
        body.update(wire_values(activity["custom"]))
        return body

    def _activity_fields(self, kind: str, body: dict[str, Any], problems: dict[str, str]) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        if kind in ("Note", "Call"):
            for key in ("note", "note_html", "title") if kind == "Note" else ("note", "note_html", "phone"):
                if key in body:
                    fields[key] = body[key]
            if kind == "Note" and "note_html" in body and "note" not in body:
                fields["note"] = body["note_html"]
        if kind == "Call":
            if body.get("direction", "outbound") not in ("inbound", "outbound"):
                problems["direction"] = "Must be inbound or outbound."
            if body.get("status", "completed") not in CALL_STATUSES:
                problems["status"] = f"Must be one of: {', '.join(CALL_STATUSES)}."
            fields.update(
                direction=body.get("direction", "outbound"),
                status=body.get("status", "completed"),
                duration=int(body.get("duration") or 0),
                source="External",
                outcome_id=None,
            )
        if "pinned" in body:
            fields["pinned"] = bool(body["pinned"])
        return fields

    def _custom_activity(self, body: dict[str, Any], problems: dict[str, str], existing: dict | None) -> dict:
        type_id = body.get("custom_activity_type_id", existing and existing["custom_activity_type_id"])
        activity_type = self.store.activity_types.get(type_id or "")
        if activity_type is None:
            problems["custom_activity_type_id"] = "Invalid custom activity type id."
            return {}
        definitions = {
            fid: d
            for fid, d in self.store.definitions["activity"].items()
            if d.get("custom_activity_type_id") == type_id
        }
        try:
            values = custom_values(definitions, body)
        except CloseError as exc:
            problems.update(exc.field_errors)
            return {}
        merged = {**(existing["custom"] if existing else {}), **values}
        status = body.get("status", existing["status"] if existing else "published")
        if status not in ("published", "draft"):
            problems["status"] = "Must be published or draft."
        if status == "published":
            for fid, definition in definitions.items():
                if definition.get("required") and merged.get(fid) in (None, "", []):
                    problems[f"custom.{fid}"] = "This field is required to publish the activity."
        return {"custom_activity_type_id": type_id, "status": status, "custom": merged}

    def create_activity(self, request: Request, kind: str) -> Response:
        body, actor = _body(request), self.actor(request)
        problems: dict[str, str] = {}
        self._lead_and_contact(body, problems, lead_required=True)
        fields = self._activity_fields(kind, body, problems)
        custom = self._custom_activity(body, problems, None) if kind == "CustomActivity" else {}
        activity_at = self._when(body, "activity_at", problems)
        if problems:
            raise invalid(problems)
        activity = {
            "id": wire.new_id("acti"),
            "_type": kind,
            "lead_id": body["lead_id"],
            "contact_id": body.get("contact_id"),
            "user_id": body.get("user_id") or actor.user_id,
            "user_name": self.store.user_name(),
            "users": [],
            "custom": {},
            **fields,
            **custom,
        }
        self.store.authored(activity, actor, creating=True)
        activity["activity_at"] = activity_at or activity["date_created"]
        self.store.activities[activity["id"]] = activity
        rendered = self.activity_wire(activity)
        self.store.emit("created", EVENT_OBJECT[kind], None, rendered, actor)
        return Response.json(rendered)

    def _activity(self, object_id: str, kind: str) -> dict[str, Any]:
        activity = self.store.activities.get(object_id)
        if activity is None or activity["_type"] != kind:
            raise not_found(kind, object_id)
        return activity

    def get_activity(self, request: Request, kind: str) -> Response:
        return Response.json(self.activity_wire(self._activity(request.params["object_id"], kind)))

    def update_activity(self, request: Request, kind: str) -> Response:
        activity = self._activity(request.params["object_id"], kind)
        body, actor = _body(request), self.actor(request)
        problems: dict[str, str] = {}
        fields = self._activity_fields(kind, body, problems) if kind != "Call" else {}
        custom = self._custom_activity(body, problems, activity) if kind == "CustomActivity" else {}
        activity_at = self._when(body, "activity_at", problems)
        if problems:
            raise invalid(problems)
        before = self.activity_wire(activity)
        activity.update(fields)
        activity.update(custom)
        if activity_at:
            activity["activity_at"] = activity_at
        self.store.authored(activity, actor, creating=False)
        after = self.activity_wire(activity)
        if changed_keys(before, after):
            self.store.emit("updated", EVENT_OBJECT[kind], before, after, actor)
        return Response.json(after)

    def delete_activity(self, request: Request, kind: str) -> Response:
        activity = self._activity(request.params["object_id"], kind)
        before = self.activity_wire(activity)
        del self.store.activities[activity["id"]]
        self.store.emit("deleted", EVENT_OBJECT[kind], before, None, self.actor(request))
        return Response.json({})

    def _matches_type(self, activity: dict[str, Any], wanted: list[str]) -> bool:
        for name in wanted:
            if activity["_type"] == name or (name == "Custom" and activity["_type"] == "CustomActivity"):
                return True
            if activity.get("custom_activity_type_id") == name:
                return True
        return False

    def _activities(self, request: Request, kind: str | None) -> list[dict[str, Any]]:
        lead_id, lead_ids = request.arg("lead_id"), wire.csv_arg(request, "lead_id__in")
        if kind is None and lead_id is None:
            single_only = [name for name in SINGLE_LEAD_FILTERS if request.arg(name) is not None]
            if single_only:
                raise CloseError(400, f"{', '.join(single_only)} can only be used together with lead_id")
        tests = _range_filters(request, "date_created") + _range_filters(request, "activity_at")
        tests += _range_filters(request, "date_updated")
        contact_ids = wire.csv_arg(request, "contact_id__in") or (
            [request.arg("contact_id")] if request.arg("contact_id") else None
        )
        types = wire.csv_arg(request, "_type__in") or ([request.arg("_type")] if request.arg("_type") else None)
        user_ids = wire.csv_arg(request, "user_id__in") or (
            [request.arg("user_id")] if request.arg("user_id") else None
        )
        ids = wire.csv_arg(request, "id__in")
        rows = []
        for activity in self.store.activities.values():
            if (kind and activity["_type"] != kind) or (lead_id and activity["lead_id"] != lead_id):
                continue
            if (lead_ids and activity["lead_id"] not in lead_ids) or (ids and activity["id"] not in ids):
                continue
            if contact_ids and activity.get("contact_id") not in contact_ids:
                continue
            if (types and not self._matches_type(activity, types)) or (
                user_ids and activity["user_id"] not in user_ids
            ):
                continue
            if all(test(activity) for test in tests):
                rows.append(self.activity_wire(activity))
        return _ordered(rows, request.arg("_order_by"), "-date_created")

    def list_all(self, request: Request) -> Response:
        skip, limit = wire.page_args(request)
        fields = wire.fields_arg(request)
        rows = [wire.only(row, fields) for row in self._activities(request, None)]
        return Response.json(wire.page(rows, skip, limit))

    def list_typed(self, request: Request, kind: str) -> Response:
        skip, limit = wire.page_args(request)
        fields = wire.fields_arg(request)
        rows = [wire.only(row, fields) for row in self._activities(request, kind)]
        return Response.json(wire.page(rows, skip, limit))

    # -- tasks --------------------------------------------------------------------------------------------
    def task_wire(self, task: dict[str, Any]) -> dict[str, Any]:
        body = copy.deepcopy(task)
        lead = self.store.leads.get(task["lead_id"]) or {}
        body.update(organization_id=self.store.org_id, lead_name=lead.get("name"), due_date=task["date"])
        return body

    def _task_fields(self, body: dict[str, Any], problems: dict[str, str], *, creating: bool) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        if creating or "text" in body:
            if not isinstance(body.get("text"), str) or not body["text"].strip():
                problems["text"] = "This field is required."
            fields["text"] = body.get("text")
        if "date" in body:
            date = wire.parse_time(body["date"]) if "T" in str(body["date"]) else wire.parse_date(body["date"])
            if date is None:
                problems["date"] = "Not a valid date."
            fields["date"] = wire.iso(date) if "T" in str(body["date"]) else (date.isoformat() if date else None)
        if "assigned_to" in body:
            if body["assigned_to"] != self.store.user["id"]:
                problems["assigned_to"] = "Invalid user id."
            fields["assigned_to"] = body["assigned_to"]
        if "is_complete" in body:
            fields["is_complete"] = bool(body["is_complete"])
        return fields

    def create_task(self, request: Request) -> Response:
        body, actor = _body(request), self.actor(request)
        problems: dict[str, str] = {}
        if body.get("_type", "lead") != "lead":
            problems["_type"] = "Only lead tasks can be created through the API."
        self._lead_and_contact({"lead_id": body.get("lead_id")}, problems, lead_required=True)
        fields = self._task_fields(body, problems, creating=True)
        if problems:
            raise invalid(problems)
        task = {
            "id": wire.new_id("task"),
            "_type": "lead",
            "lead_id": body["lead_id"],
            "assigned_to": actor.user_id,
            "assigned_to_name": self.store.user_name(),
            "date": None,
            "is_complete": False,
            "is_dateless": "date" not in body,
            "view": "inbox",
            **fields,
        }
        self.store.authored(task, actor, creating=True)
        self.store.tasks[task["id"]] = task
        rendered = self.task_wire(task)
        self.store.emit("created", "task.lead", None, rendered, actor)
        return Response.json(wire.only(rendered, wire.fields_arg(request)))

    def _task(self, object_id: str) -> dict[str, Any]:
        task = self.store.tasks.get(object_id)
        if task is None:
            raise not_found("Task", object_id)
        return task

    def get_task(self, request: Request) -> Response:
        return Response.json(
            wire.only(self.task_wire(self._task(request.params["object_id"])), wire.fields_arg(request))
        )

    def update_task(self, request: Request) -> Response:
        task = self._task(request.params["object_id"])
        body, actor = _body(request), self.actor(request)
        problems: dict[str, str] = {}
        fields = self._task_fields(body, problems, creating=False)
        if problems:
            raise invalid(problems)
        before = self.task_wire(task)
        task.update(fields)
        self.store.authored(task, actor, creating=False)
        after = self.task_wire(task)
        if changed_keys(before, after):
            self.store.emit("completed" if fields.get("is_complete") else "updated", "task.lead", before, after, actor)
        return Response.json(after)

    def delete_task(self, request: Request) -> Response:
        task = self._task(request.params["object_id"])
        before = self.task_wire(task)
        del self.store.tasks[task["id"]]
        self.store.emit("deleted", "task.lead", before, None, self.actor(request))
        return Response.json({})

    def list_tasks(self, request: Request) -> Response:
        skip, limit = wire.page_args(request)
        tests = _range_filters(request, "date_created") + _range_filters(request, "date_updated")
        lead_id, ids = request.arg("lead_id"), wire.csv_arg(request, "id__in")
        complete = request.arg("is_complete")
        rows = []
        for task in self.store.tasks.values():
            if (lead_id and task["lead_id"] != lead_id) or (ids and task["id"] not in ids):
                continue
            if request.arg("_type") not in (None, task["_type"]):
                continue
            if complete is not None and task["is_complete"] != (complete.lower() in ("true", "1")):
                continue
            if all(test(task) for test in tests):
                rows.append(self.task_wire(task))
        fields = wire.fields_arg(request)
        rows = [wire.only(row, fields) for row in _ordered(rows, request.arg("_order_by"), "date_created")]
        return Response.json(wire.page(rows, skip, limit))

    # -- opportunities -------------------------------------------------------------------------------------
    def opportunity_wire(self, opportunity: dict[str, Any]) -> dict[str, Any]:
        body = {k: copy.deepcopy(v) for k, v in opportunity.items() if k != "custom"}
        status = self.store.status(opportunity["status_id"], opportunity=True) or self.store.opportunity_statuses[0]
        pipeline = next((p for p in self.store.pipelines if p["id"] == status["pipeline_id"]), self.store.pipelines[0])
        lead = self.store.leads.get(opportunity["lead_id"]) or {}
        contact = self.store.contacts.get(opportunity.get("contact_id") or "") or {}
        value, period, confidence = opportunity["value"], opportunity["value_period"], opportunity["confidence"]
        annualized = None if value is None else value * (12 if period == "monthly" else 1)
        body.update(
            status_label=status["label"],
            status_display_name=status["label"],
            status_type=status["type"],
            pipeline_id=pipeline["id"],
            pipeline_name=pipeline["name"],
            lead_name=lead.get("name"),
            contact_name=contact.get("name"),
            organization_id=self.store.org_id,
            annualized_value=annualized,
            expected_value=None if value is None else value * confidence // 100,
            annualized_expected_value=None if annualized is None else annualized * confidence // 100,
            value_formatted=None if value is None else f"${value / 100:,.2f}",
            value_currency="USD" if value is not None else None,
        )
        body.update(wire_values(opportunity["custom"]))
        return body

    def _opportunity_fields(self, body: dict[str, Any], problems: dict[str, str]) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        if "value" in body:
            if body["value"] is not None and (isinstance(body["value"], bool) or not isinstance(body["value"], int)):
                problems["value"] = "Must be an integer (cents)."
            fields["value"] = body["value"]
        if "value_period" in body:
            if body["value_period"] not in VALUE_PERIODS:
                problems["value_period"] = f"Must be one of: {', '.join(VALUE_PERIODS)}."
            fields["value_period"] = body["value_period"]
        if "confidence" in body:
            confidence = body["confidence"]
            if not isinstance(confidence, int) or not 0 <= confidence <= 100:
                problems["confidence"] = "Must be an integer from 0 to 100."
            fields["confidence"] = confidence
        if "status_id" in body:
            status = self.store.status(body["status_id"], opportunity=True)
            if status is None:
                problems["status_id"] = "Invalid status id."
            else:
                fields["status_id"] = status["id"]
                if status["type"] != "won":
                    fields["date_won"] = None
        if body.get("date_won") not in (None, ""):
            date = wire.parse_date(body["date_won"])
            if date is None:
                problems["date_won"] = "Not a valid date."
            fields["date_won"] = date.isoformat() if date else None
        for key in ("note", "contact_id"):
            if key in body:
                fields[key] = body[key]
        try:
            fields["custom"] = custom_values(self.store.definitions["opportunity"], body)
        except CloseError as exc:
            problems.update(exc.field_errors)
        return fields

    def create_opportunity(self, request: Request) -> Response:
        body, actor = _body(request), self.actor(request)
        problems: dict[str, str] = {}
        self._lead_and_contact(body, problems, lead_required=True)
        fields = self._opportunity_fields(body, problems)
        if problems:
            raise invalid(problems)
        opportunity = {
            "id": wire.new_id("oppo"),
            "lead_id": body["lead_id"],
            "contact_id": None,
            "user_id": actor.user_id,
            "user_name": self.store.user_name(),
            "status_id": self.store.opportunity_statuses[0]["id"],
            "value": None,
            "value_period": "one_time",
            "confidence": 0,
            "note": None,
            "date_won": None,
            "date_lost": None,
            "is_stalled": False,
            "attachments": [],
            "integration_links": [],
            **fields,
        }
        if (
            self.store.status(opportunity["status_id"], opportunity=True)["type"] == "won"
            and not opportunity["date_won"]
        ):
            opportunity["date_won"] = self.store.clock().date().isoformat()
        self.store.authored(opportunity, actor, creating=True)
        self.store.opportunities[opportunity["id"]] = opportunity
        rendered = self.opportunity_wire(opportunity)
        self.store.emit("created", "opportunity", None, rendered, actor)
        return Response.json(rendered)

    def _opportunity(self, object_id: str) -> dict[str, Any]:
        opportunity = self.store.opportunities.get(object_id)
        if opportunity is None:
            raise not_found("Opportunity", object_id)
        return opportunity

    def get_opportunity(self, request: Request) -> Response:
        rendered = self.opportunity_wire(self._opportunity(request.params["object_id"]))
        return Response.json(wire.only(rendered, wire.fields_arg(request)))

    def update_opportunity(self, request: Request) -> Response:
        opportunity = self._opportunity(request.params["object_id"])
        body, actor = _body(request), self.actor(request)
        problems: dict[str, str] = {}
        fields = self._opportunity_fields(body, problems)
        if problems:
            raise invalid(problems)
        before = self.opportunity_wire(opportunity)
        custom = {**opportunity["custom"], **fields.pop("custom")}
        opportunity.update(fields)
        opportunity["custom"] = {k: v for k, v in custom.items() if v is not None}
        self.store.authored(opportunity, actor, creating=False)
        after = self.opportunity_wire(opportunity)
        if changed_keys(before, after):
            self.store.emit("updated", "opportunity", before, after, actor)
        return Response.json(after)

    def delete_opportunity(self, request: Request) -> Response:
        opportunity = self._opportunity(request.params["object_id"])
        before = self.opportunity_wire(opportunity)
        del self.store.opportunities[opportunity["id"]]
        self.store.emit("deleted", "opportunity", before, None, self.actor(request))
        return Response.json({})

    def list_opportunities(self, request: Request) -> Response:
        skip, limit = wire.page_args(request)
        tests = _range_filters(request, "date_created") + _range_filters(request, "date_updated")
        lead_id, status_type = request.arg("lead_id"), request.arg("status_type")
        rows = []
        for opportunity in self.store.opportunities.values():
            if lead_id and opportunity["lead_id"] != lead_id:
                continue
            rendered = self.opportunity_wire(opportunity)
            if status_type and rendered["status_type"] != status_type:
                continue
            if all(test(rendered) for test in tests):
                rows.append(rendered)
        fields = wire.fields_arg(request)
        rows = [wire.only(row, fields) for row in _ordered(rows, request.arg("_order_by"), "date_created")]
        return Response.json(wire.page(rows, skip, limit))
