"""Advanced Filtering: ``POST /data/search/`` — the subset the connector and tests use (crm-reference §8.2).

The endpoint and the ``and`` / ``object_type`` / ``field_condition`` shapes are in Close's
tutorial; ``has_related`` with ``contact_email`` and the ``term`` condition follow third-party
code and are UNVERIFIED there. The archived OpenAPI copy has no ``/data/search/``, so answers are
checked against those facts, not the spec. Supported:

- queries: ``and``, ``or``, ``not``, ``object_type`` (lead, contact), ``field_condition`` on a
  ``regular_field`` or ``custom_field``, ``has_related`` (contact → contact_email, contact_phone,
  lead; lead → contact);
- conditions: ``text`` (modes ``exact_value`` / ``exact``, ``full_words``, ``phrase``,
  ``beginning_of_words``; case-insensitive), ``term`` (``values``: any of them exactly),
  ``moment_range`` (``on_or_after`` / ``after`` / ``before`` / ``on_or_before`` with ``fixed_utc``
  values), ``number_range``, ``exists``, ``boolean``;
- ``sort`` (a list of field sorts), ``_limit`` (at most 200), ``cursor`` paging, ``results_limit``,
  ``_fields`` per object type (without it only ``id`` and ``__object_type`` come back).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from typing import Any

from integrations.sandbox.close import wire
from integrations.sandbox.close.errors import CloseError
from integrations.sandbox.close.people import _body
from integrations.sandbox.close.store import Store
from integrations.sandbox.core import Request, Response

MAX_LIMIT = 200
DEFAULT_LIMIT = 10


def _norm(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


class Search:
    def __init__(self, store: Store) -> None:
        self.store = store

    def routes(self) -> list[tuple[str, str, Callable[[Request], Response]]]:
        return [("POST", r"/api/v1/data/search/", self.search)]

    # -- objects ---------------------------------------------------------------------------------------
    def _objects(self) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
        """(object type, stored record, wire record) of every lead and contact."""
        rows = [("lead", lead, self.store.lead_wire(lead)) for lead in self.store.leads.values()]
        rows += [("contact", c, self.store.contact_wire(c)) for c in self.store.contacts.values()]
        return rows

    def _related(self, object_type: str, record: dict[str, Any], related: str) -> list[tuple[str, dict, dict]]:
        if object_type == "contact" and related == "contact_email":
            return [("contact_email", e, e) for e in record.get("emails") or []]
        if object_type == "contact" and related == "contact_phone":
            return [("contact_phone", p, p) for p in record.get("phones") or []]
        if object_type == "contact" and related == "lead":
            lead = self.store.leads.get(record["lead_id"])
            return [("lead", lead, self.store.lead_wire(lead))] if lead else []
        if object_type == "lead" and related == "contact":
            return [
                ("contact", c, self.store.contact_wire(c))
                for c in self.store.contacts.values()
                if c["lead_id"] == record["id"]
            ]
        raise CloseError(400, f"has_related from {object_type} to {related} is not supported by the sandbox")

    # -- evaluation ------------------------------------------------------------------------------------
    def matches(self, query: Any, object_type: str, record: dict[str, Any], rendered: dict[str, Any]) -> bool:
        if not isinstance(query, dict):
            raise CloseError(400, "Every query must be an object with a type")
        kind = query.get("type")
        if kind == "and":
            return all(self.matches(q, object_type, record, rendered) for q in query.get("queries") or [])
        if kind == "or":
            return any(self.matches(q, object_type, record, rendered) for q in query.get("queries") or [])
        if kind == "not":
            return not self.matches(query.get("query"), object_type, record, rendered)
        if kind == "object_type":
            return query.get("object_type") == object_type
        if kind == "has_related":
            if query.get("this_object_type") not in (None, object_type):
                return False
            related = self._related(object_type, record, str(query.get("related_object_type")))
            return any(self.matches(query.get("related_query"), t, r, w) for t, r, w in related)
        if kind == "field_condition":
            return self._field_condition(query, object_type, record, rendered)
        raise CloseError(400, f"Unsupported query type {kind!r}")

    def _field_condition(self, query: dict, object_type: str, record: dict, rendered: dict) -> bool:
        field = query.get("field") or {}
        if field.get("object_type") not in (None, object_type):
            return False
        if field.get("type") == "regular_field":
            value = rendered.get(field.get("field_name"))
        elif field.get("type") == "custom_field":
            value = (record.get("custom") or {}).get(field.get("custom_field_id"))
        else:
            raise CloseError(400, f"Unsupported field type {field.get('type')!r}")
        return self._condition(query.get("condition") or {}, value)

    def _condition(self, condition: dict[str, Any], value: Any) -> bool:
        kind = condition.get("type")
        values = value if isinstance(value, list) else [value]
        if kind == "text":
            wanted = _norm(str(condition.get("value") or ""))
            mode = condition.get("mode", "full_words")
            for item in values:
                text = _norm(str(item or ""))
                if mode in ("exact_value", "exact") and text == wanted:
                    return True
                if mode == "phrase" and wanted in text:
                    return True
                if mode == "full_words" and all(word in text.split() for word in wanted.split()):
                    return True
                if mode == "beginning_of_words" and any(w.startswith(wanted) for w in text.split()):
                    return True
            return False
        if kind == "term":
            wanted_set = {_norm(v) for v in condition.get("values") or []}
            return any(_norm(item) in wanted_set for item in values)
        if kind == "exists":
            return any(item not in (None, "", []) for item in values)
        if kind == "boolean":
            return any(bool(item) == bool(condition.get("value")) for item in values)
        if kind == "number_range":
            return any(self._in_range(item, condition, float) for item in values if item is not None)
        if kind == "moment_range":
            return any(self._in_range(item, condition, wire.parse_time) for item in values if item is not None)
        raise CloseError(400, f"Unsupported condition type {kind!r}")

    @staticmethod
    def _in_range(value: Any, condition: dict[str, Any], parse: Callable[[Any], Any]) -> bool:
        try:
            actual = parse(value)
        except (TypeError, ValueError):
            return False
        if actual is None:
            return False
        checks = {
            "on_or_after": lambda b: actual >= b,
            "gte": lambda b: actual >= b,
            "after": lambda b: actual > b,
            "gt": lambda b: actual > b,
            "before": lambda b: actual < b,
            "lt": lambda b: actual < b,
            "on_or_before": lambda b: actual <= b,
            "lte": lambda b: actual <= b,
        }
        for key, check in checks.items():
            bound = condition.get(key)
            if bound is None:
                continue
            raw = bound.get("value") if isinstance(bound, dict) else bound
            parsed = parse(raw)
            if parsed is None:
                raise CloseError(400, f"{key} is not a valid bound")
            if not check(parsed):
                return False
        return True

    # -- the endpoint ------------------------------------------------------------------------------------
    def _sorted(self, rows: list[tuple[str, dict, dict]], sort: Any) -> list[tuple[str, dict, dict]]:
        if not sort:
            return sorted(rows, key=lambda row: (row[2].get("date_created") or "", row[2]["id"]))
        if not isinstance(sort, list):
            raise CloseError(400, "sort must be a list")
        ordered = sorted(rows, key=lambda row: row[2]["id"])
        for rule in reversed(sort):
            field = (rule or {}).get("field") or {}
            name = field.get("field_name") or field.get("custom_field_id")
            reverse = (rule or {}).get("direction", "asc") == "desc"

            def key(row: tuple[str, dict, dict], name: Any = name, custom: bool = field.get("type") == "custom_field"):
                value = row[1]["custom"].get(name) if custom else row[2].get(name)
                return (value is None, str(value if value is not None else ""))

            ordered = sorted(ordered, key=key, reverse=reverse)
        return ordered

    def search(self, request: Request) -> Response:
        body = _body(request)
        query = body.get("query")
        if query is None:
            raise CloseError(400, "query is required")
        limit = body.get("_limit", DEFAULT_LIMIT)
        if not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
            raise CloseError(400, f"_limit must be an integer from 1 to {MAX_LIMIT}")
        fingerprint = hashlib.sha256(json.dumps([query, body.get("sort")], sort_keys=True).encode()).hexdigest()[:16]
        offset = self._offset(body.get("cursor"), fingerprint)
        hits = [row for row in self._objects() if self.matches(query, row[0], row[1], row[2])]
        hits = self._sorted(hits, body.get("sort"))
        if isinstance(body.get("results_limit"), int):
            hits = hits[: body["results_limit"]]
        chunk = hits[offset : offset + limit]
        wanted = body.get("_fields") or {}
        data = []
        for object_type, _record, rendered in chunk:
            names = wanted.get(object_type) if isinstance(wanted, dict) else None
            item = {"__object_type": object_type, "id": rendered["id"]}
            if names:
                item.update({name: rendered[name] for name in names if name in rendered})
            data.append(item)
        more = offset + limit < len(hits)
        cursor = base64.urlsafe_b64encode(json.dumps({"o": offset + limit, "h": fingerprint}).encode()).decode()
        answer: dict[str, Any] = {"data": data, "cursor": cursor if more else None}
        if body.get("include_counts"):
            answer["count"] = {"total": len(hits)}
        return Response.json(answer)

    @staticmethod
    def _offset(cursor: Any, fingerprint: str) -> int:
        if not cursor:
            return 0
        try:
            state = json.loads(base64.urlsafe_b64decode(str(cursor).encode()))
            offset, owner = int(state["o"]), state["h"]
        except (ValueError, KeyError, TypeError):
            raise CloseError(400, "Invalid cursor") from None
        if owner != fingerprint:
            raise CloseError(400, "The cursor belongs to another query")
        return offset
