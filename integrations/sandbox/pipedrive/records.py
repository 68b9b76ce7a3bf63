"""The sandbox company's records: persons, organizations, deals and activities in their v2 shape,
v1 notes, leads and webhooks, users and activity types, and the change log webhooks are made from.

Bodies are checked as strictly as Pipedrive's v2 schema validation (crm-reference §3.2 to §3.4;
client-nodejs v2 models ``AddPersonRequest``, ``AddDealRequest``, ``AddActivityRequest``): unknown
properties, missing required ones, bad ids and bad custom field values are 400s with Pipedrive's
error body. Callers hold the emulator's lock.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from integrations.sandbox.pipedrive.fields import FieldBook
from integrations.sandbox.pipedrive.wire import ApiError, contact_values, now, primary_value, v1_time, v2_time

INVALID = "ERR_SCHEMA_VALIDATION_FAILED"
MARKETING_STATUSES = ("no_consent", "unsubscribed", "subscribed", "archived")
DEAL_STATUSES = ("open", "won", "lost")
WRITABLE = {
    "person": {
        "name",
        "owner_id",
        "org_id",
        "emails",
        "phones",
        "visible_to",
        "label_ids",
        "marketing_status",
        "add_time",
        "update_time",
        "custom_fields",
    },
    "organization": {
        "name",
        "owner_id",
        "address",
        "visible_to",
        "label_ids",
        "add_time",
        "update_time",
        "custom_fields",
    },
    "deal": {
        "title",
        "owner_id",
        "person_id",
        "org_id",
        "pipeline_id",
        "stage_id",
        "value",
        "currency",
        "status",
        "probability",
        "lost_reason",
        "visible_to",
        "close_time",
        "won_time",
        "lost_time",
        "expected_close_date",
        "label_ids",
        "custom_fields",
        "is_archived",
    },
    "activity": {
        "subject",
        "type",
        "owner_id",
        "deal_id",
        "lead_id",
        "person_id",
        "org_id",
        "project_id",
        "due_date",
        "due_time",
        "duration",
        "busy",
        "done",
        "location",
        "participants",
        "attendees",
        "public_description",
        "priority",
        "note",
    },
}
REQUIRED = {"person": "name", "organization": "name", "deal": "title"}
STAGES = [
    {"id": i, "name": name, "pipeline_id": 1, "order_nr": i}
    for i, name in enumerate(
        ("Qualified", "Contact made", "Demo scheduled", "Proposal made", "Negotiations started"), 1
    )
]
DEFAULT_ACTIVITY_TYPES = ("call", "meeting", "task", "deadline", "email", "lunch")


@dataclass
class Change:
    """One write, for webhooks: who made it (``change_source`` "api" or "app") and what changed."""

    entity: str
    entity_id: Any
    action: str  # create, change, delete
    change_source: str
    user_id: int
    data: dict[str, Any]
    previous: dict[str, Any] | None
    at: dt.datetime = field(default_factory=now)


class Records:
    def __init__(self, company_id: int, users: list[dict[str, Any]], currencies: tuple[str, ...]) -> None:
        self.company_id = company_id
        self.users = {u["id"]: u for u in users}
        self.currencies = currencies
        self.fields = FieldBook()
        self.items: dict[str, dict[int, dict[str, Any]]] = {
            e: {} for e in ("person", "organization", "deal", "activity")
        }
        self._ids = {
            e: itertools.count(1)
            for e in ("person", "organization", "deal", "activity", "note", "webhook", "activity_type")
        }
        self.notes: dict[int, dict[str, Any]] = {}
        self.leads: dict[str, dict[str, Any]] = {}
        self.webhooks: dict[int, dict[str, Any]] = {}
        self.changes: list[Change] = []
        stamp = v1_time(now())
        self.activity_types = [
            {
                "id": next(self._ids["activity_type"]),
                "name": key.title(),
                "icon_key": key if key != "deadline" else "downarrow",
                "color": None,
                "order_nr": n,
                "key_string": key,
                "active_flag": True,
                "is_custom_flag": False,
                "add_time": stamp,
                "update_time": stamp,
            }
            for n, key in enumerate(DEFAULT_ACTIVITY_TYPES, 1)
        ]

    # -- helpers ---------------------------------------------------------------------------------
    def live(self, entity: str) -> list[dict[str, Any]]:
        return [r for r in self.items[entity].values() if not r.get("is_deleted")]

    def get(self, entity: str, ident: Any) -> dict[str, Any]:
        try:
            record = self.items[entity].get(int(ident))
        except (TypeError, ValueError):
            record = None
        if record is None or record.get("is_deleted"):
            raise ApiError(404, f"{entity.title()} not found", code="ERR_NOT_FOUND")
        return record

    def _id_of(self, entity: str, value: Any, name: str) -> int | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise ApiError(400, f"'{name}' must be an integer", code=INVALID)
        if entity == "user":
            if value not in self.users:
                raise ApiError(400, f"User with id {value} not found", code=INVALID)
        elif value not in self.items[entity] or self.items[entity][value].get("is_deleted"):
            # A body naming a record that does not exist is a bad request, not a missing route.
            raise ApiError(400, f"{entity.title()} with id {value} not found", code=INVALID)
        return value

    def _log(
        self,
        entity: str,
        record: dict[str, Any],
        action: str,
        source: str,
        user_id: int,
        previous: dict[str, Any] | None,
    ) -> None:
        self.changes.append(Change(entity, record["id"], action, source, user_id, dict(record), previous))

    # -- writes ----------------------------------------------------------------------------------
    def write(self, entity: str, body: Any, *, user_id: int, source: str, ident: Any = None) -> dict[str, Any]:
        """Create (``ident`` None) or patch one v2 record; returns it."""
        if not isinstance(body, dict):
            raise ApiError(400, "Request body must be a JSON object", code=INVALID)
        unknown = sorted(set(body) - WRITABLE[entity])
        if unknown:
            raise ApiError(400, f"Unknown or read-only properties: {', '.join(unknown)}", code=INVALID)
        record = self.get(entity, ident) if ident is not None else None
        values = getattr(self, f"_{entity}_values")(body, record)
        if "custom_fields" in body:
            custom = self.fields.check(entity, body["custom_fields"])
            self._check_unique(entity, custom, record)
            values["custom_fields"] = custom
        stamp = v2_time(now())
        if record is None:
            required = REQUIRED.get(entity)
            if required and not str(values.get(required) or "").strip():
                raise ApiError(400, f"'{required}' is a required field", code=INVALID)
            record = self._new(entity, user_id, stamp)
            record.update({k: v for k, v in values.items() if k != "custom_fields"})
            if "custom_fields" in record:
                record["custom_fields"].update(values.get("custom_fields") or {})
            self._derive(entity, record)
            self._log(entity, record, "create", source, user_id, None)
            return record
        previous: dict[str, Any] = {}
        for key, value in values.items():
            if key == "custom_fields":
                for code, new in value.items():
                    if record["custom_fields"].get(code) != new:
                        previous.setdefault("custom_fields", {})[code] = record["custom_fields"].get(code)
                        record["custom_fields"][code] = new
            elif record.get(key) != value:
                previous[key] = record.get(key)
                record[key] = value
        if previous:
            record["update_time"] = stamp if "update_time" not in body else record["update_time"]
            self._derive(entity, record)
            self._log(entity, record, "change", source, user_id, previous)
        return record

    def delete(self, entity: str, ident: Any, *, user_id: int, source: str) -> dict[str, Any]:
        record = self.get(entity, ident)
        record["is_deleted"] = True
        record["update_time"] = v2_time(now())
        self._log(entity, record, "delete", source, user_id, None)
        return record

    def _new(self, entity: str, user_id: int, stamp: str) -> dict[str, Any]:
        ident = next(self._ids[entity])
        record: dict[str, Any] = {
            "id": ident,
            "owner_id": user_id,
            "add_time": stamp,
            "update_time": stamp,
            "is_deleted": False,
            "visible_to": 3,
            "label_ids": [],
        }
        if entity in ("person", "deal", "organization"):
            record["custom_fields"] = {code: None for code in self.fields.custom(entity)}
        else:
            record["custom_fields"] = {}
        if entity == "person":
            record.update(
                name="",
                first_name="",
                last_name="",
                org_id=None,
                emails=[],
                phones=[],
                marketing_status="no_consent",
                picture_id=None,
            )
        elif entity == "deal":
            record.update(
                title="",
                person_id=None,
                org_id=None,
                pipeline_id=1,
                stage_id=1,
                value=0,
                currency=self.currencies[0],
                status="open",
                probability=None,
                lost_reason=None,
                expected_close_date=None,
                won_time=None,
                lost_time=None,
                close_time=None,
                creator_user_id=user_id,
                is_archived=False,
            )
        elif entity == "activity":
            record.update(
                subject="",
                type="task",
                creator_user_id=user_id,
                deal_id=None,
                lead_id=None,
                person_id=None,
                org_id=None,
                project_id=None,
                due_date=None,
                due_time=None,
                duration=None,
                busy=False,
                done=False,
                marked_as_done_time=None,
                location=None,
                participants=[],
                attendees=[],
                public_description=None,
                priority=None,
                note=None,
            )
            del record["custom_fields"], record["visible_to"], record["label_ids"]
        elif entity == "organization":
            record.update(name="", address=None)
        self.items[entity][ident] = record
        return record

    def _derive(self, entity: str, record: dict[str, Any]) -> None:
        if entity == "person":
            first, _, last = str(record.get("name") or "").strip().partition(" ")
            record["first_name"], record["last_name"] = first, last.strip()
        if entity == "activity":
            record["participants"] = (
                [{"person_id": record["person_id"], "primary": True}] if record.get("person_id") else []
            )
            if record.get("done") and not record.get("marked_as_done_time"):
                record["marked_as_done_time"] = v2_time(now())
        if entity == "deal" and record.get("status") == "won" and not record.get("won_time"):
            record["won_time"] = record["close_time"] = v2_time(now())

    def _check_unique(self, entity: str, custom: dict[str, Any], record: dict[str, Any] | None) -> None:
        for code, value in custom.items():
            if value is None or not self.fields.unique.get((entity, code)):
                continue
            for other in self.live(entity):
                if other is not record and other["custom_fields"].get(code) == value:
                    name = self.fields.find(entity, code)["field_name"]
                    raise ApiError(
                        400, f"Value of field '{name}' must be unique; {other['id']} has it already", code=INVALID
                    )

    # -- per-entity value checks ------------------------------------------------------------------
    @staticmethod
    def _text(body: dict[str, Any], name: str, values: dict[str, Any], limit: int = 255) -> None:
        if name in body:
            value = body[name]
            if value is not None and not isinstance(value, str):
                raise ApiError(400, f"'{name}' must be a string", code=INVALID)
            if value and len(value) > limit:
                raise ApiError(400, f"'{name}' is longer than {limit} characters", code=INVALID)
            values[name] = value

    def _common(self, body: dict[str, Any], values: dict[str, Any]) -> None:
        if "owner_id" in body:
            values["owner_id"] = self._id_of("user", body["owner_id"], "owner_id")
        if "org_id" in body:
            values["org_id"] = self._id_of("organization", body["org_id"], "org_id")
        for key in ("visible_to", "label_ids", "add_time", "update_time", "address"):
            if key in body:
                values[key] = body[key]

    def _person_values(self, body: dict[str, Any], record: dict[str, Any] | None) -> dict[str, Any]:
        values: dict[str, Any] = {}
        self._text(body, "name", values)
        self._common(body, values)
        for kind in ("emails", "phones"):
            if kind in body:
                values[kind] = contact_values(body[kind], kind)
        if "marketing_status" in body:
            if body["marketing_status"] not in MARKETING_STATUSES:
                raise ApiError(400, f"marketing_status must be one of {', '.join(MARKETING_STATUSES)}", code=INVALID)
            values["marketing_status"] = body["marketing_status"]
        return values

    def _organization_values(self, body: dict[str, Any], record: dict[str, Any] | None) -> dict[str, Any]:
        values: dict[str, Any] = {}
        self._text(body, "name", values)
        self._common(body, values)
        return values

    def _deal_values(self, body: dict[str, Any], record: dict[str, Any] | None) -> dict[str, Any]:
        values: dict[str, Any] = {}
        self._text(body, "title", values)
        self._text(body, "lost_reason", values)
        self._common(body, values)
        if "person_id" in body:
            values["person_id"] = self._id_of("person", body["person_id"], "person_id")
        if "stage_id" in body:
            if body["stage_id"] not in {s["id"] for s in STAGES}:
                raise ApiError(400, f"Stage with id {body['stage_id']} not found", code=INVALID)
            values["stage_id"] = body["stage_id"]
        if "value" in body:
            if isinstance(body["value"], bool) or not isinstance(body["value"], int | float):
                raise ApiError(400, "'value' must be a number", code=INVALID)
            values["value"] = body["value"]
        if "currency" in body:
            if body["currency"] not in self.currencies:
                raise ApiError(400, f"Currency {body['currency']} is not enabled in this company", code=INVALID)
            values["currency"] = body["currency"]
        if "status" in body:
            if body["status"] not in DEAL_STATUSES:
                raise ApiError(400, f"status must be one of {', '.join(DEAL_STATUSES)}", code=INVALID)
            values["status"] = body["status"]
        for key in ("expected_close_date",):
            if key in body and body[key] is not None:
                try:
                    values[key] = dt.date.fromisoformat(str(body[key])).isoformat()
                except ValueError:
                    raise ApiError(400, f"'{key}' must be a date (YYYY-MM-DD)", code=INVALID) from None
        for key in ("probability", "pipeline_id", "is_archived", "won_time", "lost_time", "close_time"):
            if key in body:
                values[key] = body[key]
        return values

    def _activity_values(self, body: dict[str, Any], record: dict[str, Any] | None) -> dict[str, Any]:
        values: dict[str, Any] = {}
        self._text(body, "subject", values)
        self._text(body, "note", values, limit=100_000)
        self._text(body, "public_description", values, limit=100_000)
        if "owner_id" in body:
            values["owner_id"] = self._id_of("user", body["owner_id"], "owner_id")
        for name, entity in (("person_id", "person"), ("deal_id", "deal"), ("org_id", "organization")):
            if name in body:
                values[name] = self._id_of(entity, body[name], name)
        if "lead_id" in body and body["lead_id"] is not None and body["lead_id"] not in self.leads:
            raise ApiError(400, f"Lead with id {body['lead_id']} not found", code=INVALID)
        if "type" in body:
            keys = {t["key_string"] for t in self.activity_types if t["active_flag"]}
            if body["type"] not in keys:
                raise ApiError(400, f"Activity type '{body['type']}' does not exist", code=INVALID)
            values["type"] = body["type"]
        if body.get("due_date") is not None:
            try:
                values["due_date"] = dt.date.fromisoformat(str(body["due_date"])).isoformat()
            except ValueError:
                raise ApiError(400, "'due_date' must be a date (YYYY-MM-DD)", code=INVALID) from None
        if body.get("due_time") is not None:
            if not re.fullmatch(r"\d\d:\d\d", str(body["due_time"])):
                raise ApiError(400, "'due_time' must be HH:MM", code=INVALID)
            values["due_time"] = body["due_time"]
        for key in ("duration", "busy", "done", "location", "attendees", "priority", "project_id", "lead_id"):
            if key in body:
                values[key] = body[key]
        if record is None and not values.get("subject"):
            values["subject"] = next(
                (t["name"] for t in self.activity_types if t["key_string"] == values.get("type", "task")), "Task"
            )
        return values

    # -- search --------------------------------------------------------------------------------------
    def search(self, entity: str, term: str, fields: list[str], exact: bool) -> list[tuple[float, dict[str, Any]]]:
        """(result_score, record) of live records matching ``term`` in ``fields``, best first."""
        needle = term.strip().casefold()
        found = []
        for record in self.live(entity):
            texts: list[str] = []
            if "name" in fields:
                texts.append(str(record.get("name") or record.get("title") or ""))
            if "email" in fields:
                texts += [e["value"] for e in record.get("emails") or []]
            if "phone" in fields:
                texts += [p["value"] for p in record.get("phones") or []]
            if "custom_fields" in fields:
                texts += [str(v) for v in (record.get("custom_fields") or {}).values() if isinstance(v, str)]
            hits = [t for t in texts if (t.casefold() == needle if exact else needle in t.casefold())]
            if hits:
                found.append((1.0 if any(t.casefold() == needle for t in hits) else 0.5, record))
        found.sort(key=lambda pair: (-pair[0], pair[1]["id"]))
        return found

    # -- v1 objects -----------------------------------------------------------------------------------
    def add_note(self, body: Any, *, user_id: int, source: str) -> dict[str, Any]:
        if not isinstance(body, dict) or not str(body.get("content") or "").strip():
            raise ApiError(400, "Content is required", code=INVALID)
        links = {k: body.get(k) for k in ("person_id", "deal_id", "org_id", "lead_id", "project_id")}
        if not any(v is not None for v in links.values()):
            raise ApiError(
                400, "At least one of person_id, deal_id, org_id, lead_id or project_id is required", code=INVALID
            )
        for name, entity in (("person_id", "person"), ("deal_id", "deal"), ("org_id", "organization")):
            if links[name] is not None:
                self._id_of(entity, links[name], name)
        if links["lead_id"] is not None and links["lead_id"] not in self.leads:
            raise ApiError(400, f"Lead with id {links['lead_id']} not found", code=INVALID)
        added = body.get("add_time") or v1_time(now())
        note = {
            "id": next(self._ids["note"]),
            "user_id": body.get("user_id") or user_id,
            "content": body["content"],
            "add_time": added,
            "update_time": v1_time(now()),
            "active_flag": True,
            "pinned_to_person_flag": bool(body.get("pinned_to_person_flag")),
            "pinned_to_deal_flag": bool(body.get("pinned_to_deal_flag")),
            "pinned_to_organization_flag": False,
            "pinned_to_lead_flag": False,
            "last_update_user_id": user_id,
            **links,
        }
        person = self.items["person"].get(links["person_id"]) if links["person_id"] else None
        note["person"] = {"name": person["name"]} if person else None
        user = self.users[note["user_id"]] if note["user_id"] in self.users else self.users[user_id]
        note["user"] = {"email": user["email"], "name": user["name"], "icon_url": None, "is_you": True}
        self.notes[note["id"]] = note
        self.changes.append(Change("note", note["id"], "create", source, user_id, dict(note), None))
        return note

    def add_lead(self, body: Any, *, user_id: int) -> dict[str, Any]:
        if not isinstance(body, dict) or not str(body.get("title") or "").strip():
            raise ApiError(400, "title is required", code=INVALID)
        if body.get("person_id") is None and body.get("organization_id") is None:
            raise ApiError(400, "A lead must be linked to a person or an organization", code=INVALID)
        person_id = self._id_of("person", body.get("person_id"), "person_id")
        org_id = self._id_of("organization", body.get("organization_id"), "organization_id")
        stamp = now().isoformat().replace("+00:00", "Z")
        lead = {
            "id": str(uuid.uuid4()),
            "title": body["title"],
            "owner_id": body.get("owner_id") or user_id,
            "creator_id": user_id,
            "label_ids": list(body.get("label_ids") or []),
            "person_id": person_id,
            "organization_id": org_id,
            "source_name": "API",
            "origin": "API",
            "origin_id": None,
            "channel": None,
            "channel_id": None,
            "source_deal_id": None,
            "is_archived": False,
            "was_seen": bool(body.get("was_seen")),
            "value": body.get("value"),
            "expected_close_date": body.get("expected_close_date"),
            "next_activity_id": None,
            "add_time": stamp,
            "update_time": stamp,
            "visible_to": "3",
            "cc_email": "leads@sandbox.example",
        }
        self.leads[lead["id"]] = lead
        return lead

    def person_summary(self, person: dict[str, Any]) -> dict[str, Any]:
        return {"id": person["id"], "name": person["name"], "email": primary_value(person["emails"])}
