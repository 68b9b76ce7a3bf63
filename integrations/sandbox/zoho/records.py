"""The records API and COQL (crm-reference §4.2, §4.4; spec record.json, notes.json, coql.json).

Writes take ``{"data": [...]}`` of at most 100 records and answer one result per record, in input
order: ``{"code": "SUCCESS", "details": {id, Created_Time, …}, "message": "record added",
"status": "success"}`` (upserts add ``action`` and, for updates, ``duplicate_field``) or the
record's error object. HTTP status of a write: 200 when at least one record was written, 400 when
none was (record.json models only 200; the 201/202 pairing is **UNVERIFIED**, §12); Notes
answer 202 when any note failed, as notes.json declares. Reads of nothing answer 204 No Content.

The spec's ``Success_Response.duplicate_field`` is a string, so inserts leave it out (Zoho's docs
show ``null`` there); updates name the field that matched.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from integrations.sandbox.core import Request, Response
from integrations.sandbox.zoho import coql, errors
from integrations.sandbox.zoho.errors import ZohoError
from integrations.sandbox.zoho.schema import SYSTEM_DUPLICATE_FIELDS, Module, parse_time
from integrations.sandbox.zoho.store import Rec, Store

if TYPE_CHECKING:
    from integrations.sandbox.zoho.app import ZohoEmulator

MAX_WRITE = 100
MAX_PER_PAGE = 200
MAX_FIELDS = 50
RESERVED = r"(?!(?:settings|users|org|actions|coql)(?:/|$))"


def no_content() -> Response:
    return Response(204, b"", {})


def _int(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.arg(name)
    if raw is None:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise errors.invalid_param(name)
    return int(raw)


class RecordRoutes:
    def __init__(self, app: ZohoEmulator) -> None:
        self.app = app

    @property
    def store(self) -> Store:  # reset() replaces the store: always the current one
        return self.app.store

    def register(self) -> None:
        api, app = r"/crm/v(?:[2-8])(?:\.\d)?", self.app
        module, rid = rf"(?P<module>{RESERVED}[A-Za-z_]+)", r"(?P<record_id>\d+)"
        app.api("POST", rf"{api}/coql", self.coql)
        app.api("GET", rf"{api}/{module}/search", self.search)
        app.api("POST", rf"{api}/{module}/upsert", lambda r: self.write(r, "upsert"))
        app.api("POST", rf"{api}/{module}/{rid}/Notes", self.related_note)
        app.api("GET", rf"{api}/{module}/{rid}", self.read)
        app.api("PUT", rf"{api}/{module}/{rid}", lambda r: self.write(r, "update", r.params["record_id"]))
        app.api("DELETE", rf"{api}/{module}/{rid}", self.delete)
        app.api("GET", rf"{api}/{module}", self.list)
        app.api("POST", rf"{api}/{module}", lambda r: self.write(r, "insert"))
        app.api("PUT", rf"{api}/{module}", lambda r: self.write(r, "update"))
        app.api("DELETE", rf"{api}/{module}", self.delete)

    @property
    def user(self) -> dict[str, str]:
        return self.app.integration_user

    # -- writing --------------------------------------------------------------------------------------
    def _items(self, request: Request) -> list[Any]:
        body = self.app.body(request)
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list) or not data:
            raise errors.bad_body()
        if len(data) > MAX_WRITE:
            raise errors.too_many_records(MAX_WRITE)
        return data

    def _check_fields(self, module: Module, body: Any) -> list[str]:
        names = body.get("duplicate_check_fields") if isinstance(body, dict) else None
        allowed = [
            *SYSTEM_DUPLICATE_FIELDS.get(module.api_name, ()),
            *(f.api_name for f in module.fields.values() if f.unique),
        ]
        if names is None:
            return allowed
        if not isinstance(names, list) or not names:
            raise errors.invalid_param("duplicate_check_fields")
        for name in names:
            if name not in allowed:
                raise ZohoError(
                    400,
                    "INVALID_DATA",
                    "invalid data",
                    {"api_name": str(name), "json_path": "$.duplicate_check_fields"},
                )
        return [str(n) for n in names]

    def write(self, request: Request, mode: str, record_id: str | None = None) -> Response:
        module = self.app.module(request.params["module"])
        items = self._items(request)
        if mode == "upsert" and module.api_name in self.app.upsert_refused_modules:
            raise ZohoError(
                400, "NOT_SUPPORTED", "upsert is not supported for this module", {"module": module.api_name}
            )
        check_fields = self._check_fields(module, self.app.body(request)) if mode == "upsert" else []
        results = [self._one(module, item, index, mode, check_fields, record_id) for index, item in enumerate(items)]
        written = sum(1 for r in results if r["status"] == "success")
        if module.api_name == "Notes":
            return Response.json({"data": results}, status=200 if written == len(results) else 202)
        return Response.json({"data": results}, status=200 if written else 400)

    def _one(
        self, module: Module, item: Any, index: int, mode: str, check_fields: list[str], record_id: str | None
    ) -> dict[str, Any]:
        try:
            if mode == "update":
                target_id = record_id or (item.get("id") if isinstance(item, dict) else None)
                if not target_id:
                    raise errors.mandatory(index, "id")
                rec = self.store.get(module.api_name, str(target_id))
                if rec is None:
                    raise errors.invalid_id(index)
                return self._saved(
                    self.store.update(rec, self.store.clean(module, item, index, rec), self.user), "record updated"
                )
            if mode == "upsert":
                for name in check_fields:
                    value = item.get(name) if isinstance(item, dict) else None
                    match = self.store.match(module.api_name, name, value) if value not in (None, "") else None
                    if match is not None:
                        cleaned = self.store.clean(module, item, index, match)
                        rec = self.store.update(match, cleaned, self.user)
                        return {**self._saved(rec, "record updated"), "action": "update", "duplicate_field": name}
            rec = self.store.insert(module, self.store.clean(module, item, index, None), self.user)
            saved = self._saved(rec, "record added")
            return {**saved, "action": "insert"} if mode == "upsert" else saved
        except ZohoError as exc:
            return exc.body()

    @staticmethod
    def _saved(rec: Rec, message: str) -> dict[str, Any]:
        wire = rec.wire()
        details = {name: wire[name] for name in ("Modified_Time", "Modified_By", "Created_Time", "Created_By")}
        return {"code": "SUCCESS", "details": {"id": rec.id, **details}, "message": message, "status": "success"}

    def related_note(self, request: Request) -> Response:
        parent = self.store.get(self.app.module(request.params["module"]).api_name, request.params["record_id"])
        if parent is None:
            raise errors.ZohoError(400, "INVALID_DATA", "the id given seems to be invalid", {"api_name": "id"})
        items = self._items(request)
        notes = self.store.modules["Notes"]
        link = {"module": {"api_name": parent.module}, "id": parent.id}
        results = []
        for index, item in enumerate(items):
            merged = {**item, "Parent_Id": link} if isinstance(item, dict) else item
            results.append(self._one(notes, merged, index, "insert", [], None))
        written = sum(1 for r in results if r["status"] == "success")
        return Response.json({"data": results}, status=200 if written == len(results) else 202)

    def delete(self, request: Request) -> Response:
        module = self.app.module(request.params["module"])
        ids = [request.params["record_id"]] if "record_id" in request.params else (request.arg("ids") or "").split(",")
        ids = [i for i in ids if i]
        if not ids:
            raise errors.required_param("ids")
        if len(ids) > MAX_WRITE:
            raise errors.too_many_records(MAX_WRITE)
        results = []
        for index, record_id in enumerate(ids):
            rec = self.store.get(module.api_name, record_id)
            if rec is None:
                results.append(errors.invalid_id(index).body())
                continue
            self.store.delete(rec, self.user)
            results.append(
                {"code": "SUCCESS", "details": {"id": rec.id}, "message": "record deleted", "status": "success"}
            )
        return Response.json({"data": results})

    # -- reading --------------------------------------------------------------------------------------
    def _fields(self, request: Request, module: Module, required: bool) -> list[str] | None:
        raw = request.arg("fields")
        if not raw:
            if required:  # API v8 requires `fields` on list calls (crm-reference §4.2)
                raise errors.required_param("fields")
            return None
        names = [n.strip() for n in raw.split(",") if n.strip()]
        if len(names) > MAX_FIELDS:
            raise errors.invalid_param("fields", "Max field limit exceeded")
        return names

    def read(self, request: Request) -> Response:
        module = self.app.module(request.params["module"])
        rec = self.store.get(module.api_name, request.params["record_id"])
        if rec is None:
            return no_content()
        return Response.json({"data": [rec.wire(self._fields(request, module, False))]})

    def list(self, request: Request) -> Response:
        module = self.app.module(request.params["module"])
        names = self._fields(request, module, True)
        page = _int(request, "page", 1, 1, 10_000)
        per_page = _int(request, "per_page", MAX_PER_PAGE, 1, MAX_PER_PAGE)
        sort_by = request.arg("sort_by", "id")
        if sort_by not in ("id", "Created_Time", "Modified_Time"):
            raise errors.invalid_param("sort_by")
        descending = request.arg("sort_order", "desc") == "desc"
        rows = self.store.live(module.api_name)
        if request.arg("ids"):
            wanted = set((request.arg("ids") or "").split(","))
            rows = [r for r in rows if r.id in wanted]
        since = request.header("if-modified-since")
        if since:
            try:
                moment = parse_time(since)
            except ValueError:
                raise errors.invalid_param("If-Modified-Since") from None
            rows = [r for r in rows if r.modified > moment]
        key = {
            "id": lambda r: int(r.id),
            "Created_Time": lambda r: (r.created, int(r.id)),
            "Modified_Time": lambda r: (r.modified, int(r.id)),
        }[sort_by]
        rows.sort(key=key, reverse=descending)
        chunk = rows[(page - 1) * per_page : page * per_page]
        if not chunk:
            return no_content()
        info = {
            "per_page": per_page,
            "count": len(chunk),
            "page": page,
            "sort_by": sort_by,
            "sort_order": "desc" if descending else "asc",
            "more_records": len(rows) > page * per_page,
        }
        return Response.json({"data": [r.wire(names) for r in chunk], "info": info})

    def search(self, request: Request) -> Response:
        module = self.app.module(request.params["module"])
        rows = self.store.live(module.api_name)
        if request.arg("email"):
            email = (request.arg("email") or "").strip().lower()
            emails = [f.api_name for f in module.fields.values() if f.data_type == "email"]
            rows = [r for r in rows if any(str(r.values.get(n) or "").lower() == email for n in emails)]
        elif request.arg("phone"):
            phone = request.arg("phone") or ""
            rows = [r for r in rows if phone in (str(r.values.get("Phone") or ""), str(r.values.get("Mobile") or ""))]
        elif request.arg("criteria"):
            condition = parse_criteria(request.arg("criteria") or "", module)
            rows = [r for r in rows if condition(r)]
        elif request.arg("word"):
            word = (request.arg("word") or "").lower()
            rows = [r for r in rows if any(word in str(v).lower() for v in r.values.values() if isinstance(v, str))]
        else:
            raise errors.required_param("criteria")
        page = _int(request, "page", 1, 1, 10)
        per_page = _int(request, "per_page", MAX_PER_PAGE, 1, MAX_PER_PAGE)
        chunk = rows[(page - 1) * per_page : page * per_page]
        if not chunk:
            return no_content()
        info = {"per_page": per_page, "count": len(chunk), "page": page, "more_records": len(rows) > page * per_page}
        return Response.json({"data": [r.wire() for r in chunk], "info": info})

    def coql(self, request: Request) -> Response:
        body = self.app.body(request)
        text = body.get("select_query") if isinstance(body, dict) else None
        if not isinstance(text, str) or not text.strip():
            raise errors.required_param("select_query")
        query = coql.Parser(text, self.store.modules).parse()
        rows, more = coql.run(query, self.store.live(query.module))
        if not rows:
            return no_content()
        return Response.json({"data": rows, "info": {"count": len(rows), "more_records": more}})


_CRITERION = re.compile(r"^(?P<field>[A-Za-z0-9_$.]+):(?P<op>[a-z_]+):(?P<value>.*)$", re.S)


def parse_criteria(text: str, module: Module):
    """``(Field:op:value)`` joined by ``and``/``or`` with parentheses (equals, not_equal,
    starts_with, in); ``\\(`` ``\\)`` and ``\\,`` escape those characters in values."""
    position = 0

    def group():
        nonlocal position
        if text[position : position + 1] != "(":
            raise errors.invalid_param("criteria")
        position += 1
        if text[position : position + 1] == "(":
            parts, joins = [group()], []
            while text[position : position + 1] != ")":
                for word in ("and", "or"):
                    if text[position : position + len(word)].lower() == word:
                        joins.append(word)
                        position += len(word)
                        break
                else:
                    raise errors.invalid_param("criteria")
                parts.append(group())
            position += 1
            if "or" in joins:
                return lambda rec: any(p(rec) for p in parts)
            return lambda rec: all(p(rec) for p in parts)
        end = position
        while end < len(text) and not (text[end] == ")" and text[end - 1] != "\\"):
            end += 1
        found = _CRITERION.match(text[position:end])
        position = end + 1
        if found is None:
            raise errors.invalid_param("criteria")
        name, op, raw = found["field"], found["op"], found["value"]
        if name != "id" and name not in module.fields:
            raise errors.invalid_param("criteria")
        values = [re.sub(r"\\(.)", r"\1", v).strip().lower() for v in re.split(r"(?<!\\),", raw)]

        def test(rec: Rec) -> bool:
            stored = str(rec.id if name == "id" else (rec.values.get(name) or "")).lower()
            if op == "equals":
                return stored == values[0]
            if op == "not_equal":
                return stored != values[0]
            if op == "starts_with":
                return stored.startswith(values[0])
            if op == "in":
                return stored in values
            raise errors.invalid_param("criteria")

        return test

    condition = group()
    if position != len(text):
        raise errors.invalid_param("criteria")
    return condition
