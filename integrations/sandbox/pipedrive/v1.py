"""The API v1 routes of the sandbox: the supported ones and the deprecated ones.

Still v1 and supported (crm-reference §3 intro, §3.4, §3.7): notes, leads (UUID ids), webhooks,
users and activity types, under ``/api/v1/…`` (the official SDKs) and ``/v1/…`` (the path
pipedrive-python-lib builds from ``Client(domain=…)``, §10.2).

Deprecated since 2025-04-14 and out of support since 2026-08-01: the v1 routes of persons, deals,
activities, organizations, their fields and search. They answer in the v1 shape by default;
``v1_deprecated_gone`` turns every one of them into **410 Gone**, as Pipedrive may at any time,
and ``v1_calls`` counts the calls they received either way — so a test can prove a client never
uses them.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from integrations.sandbox.core import Request, Response
from integrations.sandbox.pipedrive.fields import FIELD_ROUTES
from integrations.sandbox.pipedrive.records import WRITABLE
from integrations.sandbox.pipedrive.wire import ApiError, int_arg, now, ok, parse_time, v1_page, v1_time

V1 = r"(?:/api)?/v1"
DEPRECATED_COLLECTIONS = {
    "persons": "person",
    "deals": "deal",
    "activities": "activity",
    "organizations": "organization",
}
WEBHOOK_ACTIONS = ("create", "change", "delete", "*", "added", "updated", "deleted", "merged")
WEBHOOK_OBJECTS = (
    "activity",
    "deal",
    "lead",
    "note",
    "organization",
    "person",
    "pipeline",
    "product",
    "stage",
    "user",
    "*",
)
MAX_WEBHOOKS = 40  # per user [crm-reference §3.7]
GONE = (
    "This endpoint has been deprecated and is no longer available. Use the corresponding API v2 endpoint: "
    "https://developers.pipedrive.com/changelog/post/deprecation-of-selected-api-v1-endpoints"
)


def is_deprecated_v1(path: str) -> bool:
    """Whether ``path`` is one of the deprecated v1 routes (persons, deals, activities, orgs, fields, search)."""
    rest = path.removeprefix("/api").removeprefix("/v1/") if path.startswith(("/v1/", "/api/v1/")) else None
    if rest is None:
        return False
    head = rest.split("/", 1)[0]
    return head in DEPRECATED_COLLECTIONS or head in FIELD_ROUTES or head == "itemSearch"


class V1Routes:
    records: Any
    api: Callable[..., None]
    actor: Callable[[Request], tuple[int, str]]
    require_admin: Callable[[Request], None]
    user: dict[str, Any]
    company_name: str
    company_domain: str
    base_url: str

    def register_v1(self) -> None:
        self.api("GET", rf"{V1}/users/me", self._me)
        self.api("GET", rf"{V1}/notes", self._list_notes)
        self.api("POST", rf"{V1}/notes", self._add_note)
        self.api("GET", rf"{V1}/notes/(?P<ident>\d+)", self._read_note)
        self.api("PUT", rf"{V1}/notes/(?P<ident>\d+)", self._update_note)
        self.api("DELETE", rf"{V1}/notes/(?P<ident>\d+)", self._delete_note)
        self.api("GET", rf"{V1}/leads/archived", self._list_leads)
        self.api("GET", rf"{V1}/leads", self._list_leads)
        self.api("POST", rf"{V1}/leads", self._add_lead)
        self.api("GET", rf"{V1}/leads/(?P<ident>[0-9a-f-]{{36}})", self._read_lead)
        self.api("PATCH", rf"{V1}/leads/(?P<ident>[0-9a-f-]{{36}})", self._update_lead)
        self.api("DELETE", rf"{V1}/leads/(?P<ident>[0-9a-f-]{{36}})", self._delete_lead)
        self.api("GET", rf"{V1}/webhooks", self._list_webhooks)
        self.api("POST", rf"{V1}/webhooks", self._add_webhook)
        self.api("DELETE", rf"{V1}/webhooks/(?P<ident>\d+)", self._delete_webhook)
        self.api("GET", rf"{V1}/activityTypes", self._list_activity_types)
        self.api("POST", rf"{V1}/activityTypes", self._add_activity_type)
        # Deprecated (answer until v1_deprecated_gone is set; see the module docstring).
        names = "|".join(DEPRECATED_COLLECTIONS)
        self.api("GET", rf"{V1}/(?P<collection>persons|deals|organizations)/search", self._v1_search)
        self.api("GET", rf"{V1}/itemSearch", self._v1_item_search)
        self.api("GET", rf"{V1}/(?P<collection>{names})", self._v1_list)
        self.api("POST", rf"{V1}/(?P<collection>{names})", self._v1_create)
        self.api("GET", rf"{V1}/(?P<collection>{names})/(?P<ident>\d+)", self._v1_read)
        self.api("PUT", rf"{V1}/(?P<collection>{names})/(?P<ident>\d+)", self._v1_update)
        self.api("DELETE", rf"{V1}/(?P<collection>{names})/(?P<ident>\d+)", self._v1_delete)
        self.api("GET", rf"{V1}/(?P<route>{'|'.join(FIELD_ROUTES)})", self._v1_fields)

    # -- users ---------------------------------------------------------------------------------------
    def _me(self, request: Request) -> Response:
        user_id, _source = self.actor(request)
        user = dict(self.records.users[user_id])
        user.update(
            company_id=self.records.company_id,
            company_name=self.company_name,
            company_domain=self.company_domain,
            company_country="EE",
            company_industry="Software",
            is_you=True,
            language={"language_code": "en", "country_code": "US"},
        )
        return ok(user)

    # -- notes [crm-reference §3.4] ------------------------------------------------------------------
    def _list_notes(self, request: Request) -> Response:
        notes = [n for n in self.records.notes.values() if n["active_flag"]]
        for name in ("user_id", "deal_id", "person_id", "org_id"):
            if request.arg(name):
                wanted = int_arg(request.arg(name), 0, 0, 2**31, name)
                notes = [n for n in notes if n.get(name) == wanted]
        if request.arg("lead_id"):
            notes = [n for n in notes if n.get("lead_id") == request.arg("lead_id")]
        if request.arg("start_date"):
            notes = [n for n in notes if n["add_time"][:10] >= str(request.arg("start_date"))]
        if request.arg("end_date"):
            notes = [n for n in notes if n["add_time"][:10] <= str(request.arg("end_date"))]
        if request.arg("updated_since"):
            since = parse_time(request.arg("updated_since"))
            notes = [n for n in notes if since is None or (parse_time(n["update_time"]) or since) >= since]
        notes.sort(key=lambda n: (n["add_time"], n["id"]))
        start = int_arg(request.arg("start"), 0, 0, 2**31, "start")
        limit = int_arg(request.arg("limit"), 100, 1, 500, "limit")
        chunk, extra = v1_page(notes, start, limit)
        # v1 lists answer data null, not [], when nothing matches.
        return ok(copy.deepcopy(chunk) or None, extra)

    def _note(self, request: Request) -> dict[str, Any]:
        note = self.records.notes.get(int(request.params["ident"]))
        if note is None or not note["active_flag"]:
            raise ApiError(404, "Note not found", code="ERR_NOT_FOUND")
        return note

    def _add_note(self, request: Request) -> Response:
        user_id, source = self.actor(request)
        return ok(copy.deepcopy(self.records.add_note(request.json(), user_id=user_id, source=source)), status=201)

    def _read_note(self, request: Request) -> Response:
        return ok(copy.deepcopy(self._note(request)))

    def _update_note(self, request: Request) -> Response:
        note = self._note(request)
        body = request.json() or {}
        if "content" in body:
            if not str(body["content"] or "").strip():
                raise ApiError(400, "Content is required", code="ERR_SCHEMA_VALIDATION_FAILED")
            note["content"] = body["content"]
        note["update_time"] = v1_time(now())
        return ok(copy.deepcopy(note))

    def _delete_note(self, request: Request) -> Response:
        note = self._note(request)
        note["active_flag"] = False
        return ok(True)

    # -- leads [crm-reference §3.2] ------------------------------------------------------------------
    def _list_leads(self, request: Request) -> Response:
        archived = request.path.endswith("/archived")
        leads = [lead for lead in self.records.leads.values() if lead["is_archived"] == archived]
        for name in ("owner_id", "person_id", "organization_id"):
            if request.arg(name):
                wanted = int_arg(request.arg(name), 0, 0, 2**31, name)
                leads = [lead for lead in leads if lead.get(name) == wanted]
        leads.sort(key=lambda lead: lead["add_time"])
        start = int_arg(request.arg("start"), 0, 0, 2**31, "start")
        limit = int_arg(request.arg("limit"), 100, 1, 500, "limit")
        chunk, extra = v1_page(leads, start, limit)
        return ok(copy.deepcopy(chunk), extra)

    def _lead(self, request: Request) -> dict[str, Any]:
        lead = self.records.leads.get(request.params["ident"])
        if lead is None:
            raise ApiError(404, "Lead not found", code="ERR_NOT_FOUND")
        return lead

    def _add_lead(self, request: Request) -> Response:
        user_id, _source = self.actor(request)
        return ok(copy.deepcopy(self.records.add_lead(request.json(), user_id=user_id)), status=201)

    def _read_lead(self, request: Request) -> Response:
        return ok(copy.deepcopy(self._lead(request)))

    def _update_lead(self, request: Request) -> Response:
        lead = self._lead(request)
        body = request.json() or {}
        for key in ("title", "owner_id", "value", "expected_close_date", "is_archived", "was_seen", "label_ids"):
            if key in body:
                lead[key] = body[key]
        return ok(copy.deepcopy(lead))

    def _delete_lead(self, request: Request) -> Response:
        lead = self._lead(request)
        del self.records.leads[lead["id"]]
        return ok({"id": lead["id"]})

    # -- webhooks [crm-reference §3.7] ---------------------------------------------------------------
    def _list_webhooks(self, request: Request) -> Response:
        self.require_admin(request)
        return ok([copy.deepcopy(w) for w in self.records.webhooks.values()], extra={"status": "ok"})

    def _add_webhook(self, request: Request) -> Response:
        self.require_admin(request)
        user_id, _source = self.actor(request)
        body = request.json()
        if not isinstance(body, dict):
            raise ApiError(400, "Request body must be a JSON object", code="ERR_SCHEMA_VALIDATION_FAILED")
        url = str(body.get("subscription_url") or "")
        problems = []
        if not url.startswith(("https://", "http://")):
            problems.append("subscription_url must be a valid URL")
        if body.get("event_action") not in WEBHOOK_ACTIONS:
            problems.append(f"event_action must be one of {', '.join(WEBHOOK_ACTIONS)}")
        if body.get("event_object") not in WEBHOOK_OBJECTS:
            problems.append(f"event_object must be one of {', '.join(WEBHOOK_OBJECTS)}")
        if str(body.get("version") or "2.0") not in ("1.0", "2.0"):
            problems.append("version must be 1.0 or 2.0")
        if problems:
            raise ApiError(400, "; ".join(problems), code="ERR_SCHEMA_VALIDATION_FAILED")
        if sum(1 for w in self.records.webhooks.values() if w["user_id"] == user_id) >= MAX_WEBHOOKS:
            raise ApiError(422, f"The limit of {MAX_WEBHOOKS} webhooks per user is reached")
        ident = next(self.records._ids["webhook"])
        webhook = {
            "id": ident,
            "company_id": self.records.company_id,
            "owner_id": user_id,
            "user_id": body.get("user_id") or user_id,
            "event_action": body["event_action"],
            "event_object": body["event_object"],
            "subscription_url": url,
            "version": str(body.get("version") or "2.0"),
            "is_active": 1,
            "add_time": v1_time(now()),
            "remove_time": None,
            "type": "general",
            "http_auth_user": body.get("http_auth_user"),
            "http_auth_password": body.get("http_auth_password"),
            "remove_reason": None,
            "last_delivery_time": None,
            "last_http_status": None,
            "admin_id": user_id,
            "name": body.get("name") or f"Webhook {ident}",
        }
        self.records.webhooks[ident] = webhook
        return ok(copy.deepcopy(webhook), status=201, extra={"status": "ok"})

    def _delete_webhook(self, request: Request) -> Response:
        self.require_admin(request)
        if self.records.webhooks.pop(int(request.params["ident"]), None) is None:
            raise ApiError(404, "Webhook not found", code="ERR_NOT_FOUND")
        return ok({"id": int(request.params["ident"])}, extra={"status": "ok"})

    # -- activity types ------------------------------------------------------------------------------
    def _list_activity_types(self, request: Request) -> Response:
        return ok(copy.deepcopy(self.records.activity_types))

    def _add_activity_type(self, request: Request) -> Response:
        self.require_admin(request)
        body = request.json() or {}
        name = str(body.get("name") or "").strip()
        if not name or not body.get("icon_key"):
            raise ApiError(400, "name and icon_key are required", code="ERR_SCHEMA_VALIDATION_FAILED")
        keys = {t["key_string"] for t in self.records.activity_types}
        key, n = "".join(c for c in name.lower() if c.isalnum()) or "custom", 1
        while key in keys:  # Pipedrive numbers a clashing key_string
            key, n = f"{key.rstrip('0123456789')}{n}", n + 1
        stamp = v1_time(now())
        made = {
            "id": next(self.records._ids["activity_type"]),
            "name": name,
            "icon_key": body["icon_key"],
            "color": body.get("color"),
            "order_nr": len(self.records.activity_types) + 1,
            "key_string": key,
            "active_flag": True,
            "is_custom_flag": True,
            "add_time": stamp,
            "update_time": stamp,
        }
        self.records.activity_types.append(made)
        return ok(copy.deepcopy(made))

    # -- deprecated v1: persons, deals, activities, organizations, fields, search -----------------------
    def _v1_shape(self, entity: str, record: dict[str, Any]) -> dict[str, Any]:
        shaped = {k: v for k, v in record.items() if k not in ("custom_fields", "emails", "phones", "is_deleted")}
        shaped.update(record.get("custom_fields") or {})  # v1 puts custom values at the top level (§3.3)
        if entity == "person":
            shaped["email"], shaped["phone"] = record["emails"], record["phones"]
        for key in ("add_time", "update_time"):
            if parse_time(record.get(key)):
                shaped[key] = v1_time(parse_time(record[key]))
        shaped["active_flag"] = not record.get("is_deleted")
        return copy.deepcopy(shaped)

    def _v1_body(self, entity: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise ApiError(400, "Request body must be a JSON object")
        custom = set(self.records.fields.custom(entity))
        converted: dict[str, Any] = {"custom_fields": {k: v for k, v in body.items() if k in custom}}
        for key, value in body.items():
            key = {"email": "emails", "phone": "phones"}.get(key, key)
            if key in WRITABLE[entity] and key != "custom_fields":
                converted[key] = bool(value) if key in ("done", "busy") else value
        if not converted["custom_fields"]:
            del converted["custom_fields"]
        return converted

    def _v1_list(self, request: Request) -> Response:
        entity = DEPRECATED_COLLECTIONS[request.params["collection"]]
        items = sorted(self.records.live(entity), key=lambda r: r["id"])
        start = int_arg(request.arg("start"), 0, 0, 2**31, "start")
        limit = int_arg(request.arg("limit"), 100, 1, 500, "limit")
        chunk, extra = v1_page(items, start, limit)
        return ok([self._v1_shape(entity, r) for r in chunk] or None, extra)

    def _v1_create(self, request: Request) -> Response:
        entity = DEPRECATED_COLLECTIONS[request.params["collection"]]
        user_id, source = self.actor(request)
        record = self.records.write(entity, self._v1_body(entity, request.json()), user_id=user_id, source=source)
        return ok(self._v1_shape(entity, record), status=201)

    def _v1_read(self, request: Request) -> Response:
        entity = DEPRECATED_COLLECTIONS[request.params["collection"]]
        return ok(self._v1_shape(entity, self.records.get(entity, request.params["ident"])))

    def _v1_update(self, request: Request) -> Response:
        entity = DEPRECATED_COLLECTIONS[request.params["collection"]]
        user_id, source = self.actor(request)
        record = self.records.write(
            entity, self._v1_body(entity, request.json()), user_id=user_id, source=source, ident=request.params["ident"]
        )
        return ok(self._v1_shape(entity, record))

    def _v1_delete(self, request: Request) -> Response:
        entity = DEPRECATED_COLLECTIONS[request.params["collection"]]
        user_id, source = self.actor(request)
        record = self.records.delete(entity, request.params["ident"], user_id=user_id, source=source)
        return ok({"id": record["id"]})

    def _v1_search(self, request: Request) -> Response:
        entity = DEPRECATED_COLLECTIONS[request.params["collection"]]
        term = request.arg("term") or ""
        if len(term.strip()) < 2:
            raise ApiError(400, "The search term must be at least 2 characters long")
        fields = (request.arg("fields") or "name,email,phone,custom_fields").split(",")
        found = self.records.search(entity, term, fields, (request.arg("exact_match") or "").lower() == "true")
        items = [
            {"result_score": s, "item": {"id": r["id"], "type": entity, "name": r.get("name") or r.get("title")}}
            for s, r in found
        ]
        return ok({"items": items}, {"pagination": {"start": 0, "limit": 100, "more_items_in_collection": False}})

    def _v1_item_search(self, request: Request) -> Response:
        term = request.arg("term") or ""
        items = (
            [
                {"result_score": s, "item": {"id": r["id"], "type": "person", "name": r["name"]}}
                for s, r in self.records.search("person", term, ["name", "email"], False)
            ]
            if len(term) >= 2
            else []
        )
        return ok({"items": items, "related_items": []})

    def _v1_fields(self, request: Request) -> Response:
        entity = FIELD_ROUTES[request.params["route"]]
        shaped = [
            {
                "id": n,
                "key": f["field_code"],
                "name": f["field_name"],
                "field_type": f["field_type"],
                "options": f["options"],
                "edit_flag": f["is_custom_field"],
                "active_flag": True,
            }
            for n, f in enumerate(self.records.fields.fields[entity], 1)
        ]
        return ok(shaped)
