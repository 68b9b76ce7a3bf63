"""Leads and contacts: ``/lead/``, ``/lead/{id}/``, ``/contact/``, ``/contact/{id}/`` (crm-reference §8.2).

A lead is the company; contacts belong to a lead (``lead_id``). ``POST /contact/`` without a
``lead_id`` makes a new lead named after the contact; ``POST /lead/`` takes its contacts inline.
Creates answer **200** with the object (not 201); ``PUT`` is a partial update; ``DELETE`` answers
``{}``. E-mails, phones and URLs are arrays of objects; custom values are ``custom.cf_<id>`` keys.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from integrations.sandbox.close import wire
from integrations.sandbox.close.errors import CloseError, invalid, not_found
from integrations.sandbox.close.fields import custom_values
from integrations.sandbox.close.store import Actor, Store, changed_keys
from integrations.sandbox.core import Request, Response

ID = r"(?P<object_id>[^/]+)"
CONTACT_KEYS = ("name", "title", "emails", "phones", "urls", "lead_id")
LEAD_KEYS = ("name", "description", "url", "status_id", "status", "addresses", "contacts")


def _body(request: Request) -> dict[str, Any]:
    try:
        body = request.json()
    except ValueError:
        raise CloseError(400, "The body is not valid JSON") from None
    if not isinstance(body, dict):
        raise CloseError(400, "The body must be a JSON object")
    return body


def _entries(value: Any, key: str, default_type: str, problems: dict[str, str], name: str) -> list[dict[str, Any]]:
    """An ``emails`` / ``phones`` / ``urls`` array, each item an object with ``key`` and a ``type``."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, dict) and item.get(key) for item in value):
        problems[name] = f"Must be a list of objects, each with a {key!r}."
        return []
    items = []
    for item in value:
        entry = {key: str(item[key]).strip(), "type": str(item.get("type") or default_type)}
        if key == "email":
            if "@" not in entry["email"]:
                problems[name] = f"{entry['email']!r} is not a valid e-mail address."
            entry["is_unsubscribed"] = bool(item.get("is_unsubscribed", False))
        if key == "phone":
            entry.update(phone_formatted=entry["phone"], country=None)
        items.append(entry)
    return items


class People:
    def __init__(self, store: Store, actor: Callable[[Request], Actor]) -> None:
        self.store = store
        self.actor = actor

    def routes(self) -> list[tuple[str, str, Callable[[Request], Response]]]:
        return [
            ("GET", r"/api/v1/lead/", self.list_leads),
            ("POST", r"/api/v1/lead/", self.create_lead),
            ("GET", rf"/api/v1/lead/{ID}/", self.get_lead),
            ("PUT", rf"/api/v1/lead/{ID}/", self.update_lead),
            ("DELETE", rf"/api/v1/lead/{ID}/", self.delete_lead),
            ("GET", r"/api/v1/contact/", self.list_contacts),
            ("POST", r"/api/v1/contact/", self.create_contact),
            ("GET", rf"/api/v1/contact/{ID}/", self.get_contact),
            ("PUT", rf"/api/v1/contact/{ID}/", self.update_contact),
            ("DELETE", rf"/api/v1/contact/{ID}/", self.delete_contact),
        ]

    # -- contacts ------------------------------------------------------------------------------------
    def contact_fields(self, body: dict[str, Any], *, creating: bool) -> dict[str, Any]:
        """Validated contact fields of a write body (only the keys it names when updating)."""
        problems: dict[str, str] = {}
        fields: dict[str, Any] = {}
        for key in ("name", "title"):
            if key in body:
                if body[key] is not None and not isinstance(body[key], str):
                    problems[key] = "Must be a string."
                fields[key] = body[key] or None
        for name, key, default in (
            ("emails", "email", "office"),
            ("phones", "phone", "office"),
            ("urls", "url", "url"),
        ):
            if name in body or creating:
                fields[name] = _entries(body.get(name), key, default, problems, name)
        try:
            fields["custom"] = custom_values(self.store.definitions["contact"], body)
        except CloseError as exc:
            problems.update(exc.field_errors)
        if problems:
            raise invalid(problems)
        return fields

    def new_contact(self, body: dict[str, Any], lead_id: str, actor: Actor) -> dict[str, Any]:
        fields = self.contact_fields(body, creating=True)
        clash = self.store.unique_clash("contact", fields["custom"], None)
        if clash:
            raise invalid(clash)
        contact = {
            "id": wire.new_id("cont"),
            "lead_id": lead_id,
            "name": None,
            "title": None,
            "integration_links": [],
            **fields,
        }
        self.store.authored(contact, actor, creating=True)
        self.store.contacts[contact["id"]] = contact
        self.store.emit("created", "contact", None, self.store.contact_wire(contact), actor)
        return contact

    def create_contact(self, request: Request) -> Response:
        body, actor = _body(request), self.actor(request)
        lead_id = body.get("lead_id")
        self.contact_fields(body, creating=True)  # refuse a bad contact before making its lead
        if lead_id is None:
            # No lead given: Close makes one named after the contact (crm-reference §8.2).
            emails = body.get("emails") or [{}]
            lead = self.new_lead({"name": body.get("name") or emails[0].get("email")}, actor)
            lead_id = lead["id"]
        elif lead_id not in self.store.leads:
            raise invalid({"lead_id": "Invalid lead id."})
        contact = self.new_contact(body, lead_id, actor)
        return Response.json(wire.only(self.store.contact_wire(contact), wire.fields_arg(request)))

    def _contact(self, object_id: str) -> dict[str, Any]:
        contact = self.store.contacts.get(object_id)
        if contact is None:
            raise not_found("Contact", object_id)
        return contact

    def get_contact(self, request: Request) -> Response:
        contact = self._contact(request.params["object_id"])
        return Response.json(wire.only(self.store.contact_wire(contact), wire.fields_arg(request)))

    def update_contact(self, request: Request) -> Response:
        contact = self._contact(request.params["object_id"])
        body, actor = _body(request), self.actor(request)
        fields = self.contact_fields(body, creating=False)
        if "lead_id" in body:
            if body["lead_id"] not in self.store.leads:
                raise invalid({"lead_id": "Invalid lead id."})
            fields["lead_id"] = body["lead_id"]
        custom = {**contact["custom"], **fields.pop("custom")}
        clash = self.store.unique_clash("contact", custom, contact["id"])
        if clash:
            raise invalid(clash)
        before = self.store.contact_wire(contact)
        contact.update(fields)
        contact["custom"] = {k: v for k, v in custom.items() if v is not None}
        self.store.authored(contact, actor, creating=False)
        after = self.store.contact_wire(contact)
        if changed_keys(before, after):
            self.store.emit("updated", "contact", before, after, actor)
        return Response.json(wire.only(after, wire.fields_arg(request)))

    def delete_contact(self, request: Request) -> Response:
        contact = self._contact(request.params["object_id"])
        before = self.store.contact_wire(contact)
        del self.store.contacts[contact["id"]]
        self.store.emit("deleted", "contact", before, None, self.actor(request))
        return Response.json({})

    def list_contacts(self, request: Request) -> Response:
        skip, limit = wire.page_args(request)
        lead_id = request.arg("lead_id")
        rows = [
            wire.only(self.store.contact_wire(c), wire.fields_arg(request))
            for c in sorted(self.store.contacts.values(), key=lambda c: (c["date_created"], c["id"]))
            if lead_id is None or c["lead_id"] == lead_id
        ]
        return Response.json(wire.page(rows, skip, limit))

    # -- leads ------------------------------------------------------------------------------------------
    def lead_fields(self, body: dict[str, Any]) -> dict[str, Any]:
        problems: dict[str, str] = {}
        fields: dict[str, Any] = {}
        for key in ("name", "description", "url"):
            if key in body:
                if body[key] is not None and not isinstance(body[key], str):
                    problems[key] = "Must be a string."
                fields[key] = body[key] or None
        if "status_id" in body:
            if self.store.status(body["status_id"], opportunity=False) is None:
                problems["status_id"] = "Invalid status id."
            fields["status_id"] = body["status_id"]
        elif "status" in body:
            match = next((s for s in self.store.lead_statuses if s["label"] == body["status"]), None)
            if match is None:
                problems["status"] = "Invalid status."
            else:
                fields["status_id"] = match["id"]
        if "addresses" in body:
            addresses = body["addresses"]
            if not isinstance(addresses, list) or not all(isinstance(a, dict) for a in addresses):
                problems["addresses"] = "Must be a list of objects."
            else:
                fields["addresses"] = [{"label": a.get("label") or "business", **a} for a in addresses]
        try:
            fields["custom"] = custom_values(self.store.definitions["lead"], body)
        except CloseError as exc:
            problems.update(exc.field_errors)
        if "contacts" in body and not (
            isinstance(body["contacts"], list) and all(isinstance(c, dict) for c in body["contacts"])
        ):
            problems["contacts"] = "Must be a list of contact objects."
        if problems:
            raise invalid(problems)
        return fields

    def new_lead(self, body: dict[str, Any], actor: Actor) -> dict[str, Any]:
        fields = self.lead_fields(body)
        for contact_body in body.get("contacts") or []:
            self.contact_fields(contact_body, creating=True)  # all or nothing: check before writing
            clash = self.store.unique_clash(
                "contact", custom_values(self.store.definitions["contact"], contact_body), None
            )
            if clash:
                raise invalid({f"contacts.{k}": v for k, v in clash.items()})
        lead = {
            "id": wire.new_id("lead"),
            "name": None,
            "description": None,
            "url": None,
            "status_id": self.store.lead_statuses[0]["id"],
            "addresses": [],
            "source": None,
            **fields,
        }
        self.store.authored(lead, actor, creating=True)
        self.store.leads[lead["id"]] = lead
        for contact_body in body.get("contacts") or []:
            self.new_contact(contact_body, lead["id"], actor)
        self.store.emit("created", "lead", None, self.store.lead_wire(lead), actor)
        return lead

    def _lead(self, object_id: str) -> dict[str, Any]:
        lead = self.store.leads.get(object_id)
        if lead is None:
            raise not_found("Lead", object_id)
        return lead

    def create_lead(self, request: Request) -> Response:
        lead = self.new_lead(_body(request), self.actor(request))
        return Response.json(wire.only(self.store.lead_wire(lead), wire.fields_arg(request)))

    def get_lead(self, request: Request) -> Response:
        lead = self._lead(request.params["object_id"])
        return Response.json(wire.only(self.store.lead_wire(lead), wire.fields_arg(request)))

    def update_lead(self, request: Request) -> Response:
        lead = self._lead(request.params["object_id"])
        body, actor = _body(request), self.actor(request)
        if "contacts" in body:
            raise invalid({"contacts": "Contacts are changed through /contact/, not on the lead."})
        fields = self.lead_fields(body)
        before = self.store.lead_wire(lead)
        custom = {**lead["custom"], **fields.pop("custom")}
        lead.update(fields)
        lead["custom"] = {k: v for k, v in custom.items() if v is not None}
        self.store.authored(lead, actor, creating=False)
        after = self.store.lead_wire(lead)
        if changed_keys(before, after):
            self.store.emit("updated", "lead", before, after, actor)
        return Response.json(wire.only(after, wire.fields_arg(request)))

    def delete_lead(self, request: Request) -> Response:
        lead = self._lead(request.params["object_id"])
        actor = self.actor(request)
        before = self.store.lead_wire(lead)
        for contact in [c for c in self.store.contacts.values() if c["lead_id"] == lead["id"]]:
            del self.store.contacts[contact["id"]]
        del self.store.leads[lead["id"]]
        self.store.emit("deleted", "lead", before, None, actor)
        return Response.json({})

    def list_leads(self, request: Request) -> Response:
        skip, limit = wire.page_args(request)
        if request.arg("query"):
            # The lead search language is deprecated for Advanced Filtering (crm-reference §8.2).
            raise CloseError(400, "The sandbox does not support ?query=; use /data/search/")
        rows = [
            wire.only(self.store.lead_wire(lead), wire.fields_arg(request))
            for lead in sorted(self.store.leads.values(), key=lambda r: (r["date_created"], r["id"]))
        ]
        return Response.json(wire.page(rows, skip, limit))
