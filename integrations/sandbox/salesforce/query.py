"""SOQL and SOSL over the store: field resolution, projection, paging cursors (crm-reference §1.2, §1.7).

``soql.py`` parses and evaluates; this module knows the schema. Answers have Salesforce's shape:
``{"totalSize", "done", "nextRecordsUrl"?, "records": [{"attributes": {"type", "url"}, …}]}``,
relationship fields nest as ``{"Account": {"attributes": …, "Name": …}}`` (or ``null``), and the
next page is read from ``/query/{locator}`` where the locator is ``<cursor id>-<offset>``.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from integrations.sandbox import soql
from integrations.sandbox.salesforce.errors import SfError
from integrations.sandbox.salesforce.ids import normalize_id
from integrations.sandbox.salesforce.schema import TEXT_TYPES, Field, SObject
from integrations.sandbox.salesforce.store import Store
from integrations.sandbox.salesforce.wire import to_wire

SEARCH_DEFAULTS = ("Account", "Contact", "Lead", "Opportunity")
NAME_FIELDS = frozenset({"Name", "FirstName", "LastName", "Company", "Title", "Subject"})
MAX_OFFSET = 2000


@dataclass
class Column:
    """One selected or filtered field path: the relationship hops, then the field."""

    hops: tuple[Field, ...]
    name: str
    type: str

    def target(self, store: Store, record: dict[str, Any]) -> dict[str, Any] | None:
        current: dict[str, Any] | None = record
        for hop in self.hops:
            found = store.locate(current.get(hop.name) or "") if current else None
            current = found[1] if found and not found[1]["IsDeleted"] else None
        return current

    def get(self, store: Store, record: dict[str, Any]) -> Any:
        target = self.target(store, record)
        return None if target is None else target.get(self.name)


class QueryEngine:
    def __init__(self, store: Store, batch_size: int = 2000, max_open_cursors: int = 10) -> None:
        self.store = store
        self.batch_size = batch_size
        # Salesforce keeps a handful of open query cursors per user and releases the oldest first.
        self.max_open_cursors = max_open_cursors
        self.cursors: OrderedDict[str, tuple[list[dict[str, Any]], int]] = OrderedDict()  # id → (rows, batch)

    def reset(self) -> None:
        self.cursors.clear()

    # -- field resolution --------------------------------------------------------------------------
    def column(self, sobject: SObject, text: str, ref: soql.FieldRef) -> Column:
        path = list(ref.path)
        if len(path) > 1 and path[0].lower() == sobject.name.lower():
            path = path[1:]  # SOQL lets a path start with the object's own name
        candidates, hops = [sobject], []
        for part in path[:-1]:
            hop = next((c.relationship(part) for c in candidates if c.relationship(part)), None)
            if hop is None:
                raise soql.SoqlError(
                    "INVALID_FIELD",
                    soql.error_at(
                        text,
                        ref.pos,
                        f"Didn't understand relationship '{part}' in field path. If you are attempting to use a "
                        "custom relationship, be sure to append the '__r' after the custom relationship name.",
                    ),
                )
            hops.append(hop)
            candidates = [self.store.schema[t] for t in hop.reference_to if t in self.store.schema]
        f = next((c.field(path[-1]) for c in candidates if c.field(path[-1])), None)
        if f is None:
            raise soql.SoqlError(
                "INVALID_FIELD",
                soql.error_at(
                    text,
                    ref.pos,
                    f"No such column '{path[-1]}' on entity '{candidates[0].name}'. If you are attempting to use a "
                    "custom field, be sure to append the '__c' after the custom field name.",
                ),
            )
        return Column(tuple(hops), f.name, f.type)

    def resolver(self, sobject: SObject, text: str) -> soql.Resolver:
        def resolve(ref: soql.FieldRef) -> soql.ResolvedField:
            col = self.column(sobject, text, ref)
            path = (*(h.relationship_name or h.name for h in col.hops), col.name)
            return soql.ResolvedField(path, col.type, lambda record: col.get(self.store, record))

        return resolve

    # -- SOQL ----------------------------------------------------------------------------------------
    def run(self, text: str, include_deleted: bool, base: str) -> tuple[soql.Query, list[dict[str, Any]]]:
        """Parse, check and evaluate a query; return it and its projected rows (all of them)."""
        query = soql.parse(text)
        sobject = self.store.sobject(query.sobject)
        if sobject is None:
            raise soql.SoqlError(
                "INVALID_TYPE",
                soql.error_at(
                    text,
                    query.sobject_pos,
                    f"sObject type '{query.sobject}' is not supported. If you are attempting to use a custom object, "
                    "be sure to append the '__c' after the entity name.",
                ),
            )
        if query.offset is not None and query.offset > MAX_OFFSET:
            raise SfError(400, "NUMBER_OUTSIDE_VALID_RANGE", f"Maximum SOQL offset allowed is {MAX_OFFSET}")
        columns = [self.column(sobject, text, ref) for ref in query.fields]
        resolve = self.resolver(sobject, text)
        keep = soql.compile_filter(text, query.where, resolve, normalize_id, datetime.now(UTC))
        rows = [r for r in self.store.rows(sobject.name, include_deleted) if keep(r)]
        rows = soql.sort_records(rows, query.order_by, resolve)
        rows = rows[query.offset or 0 :]
        if query.limit is not None:
            rows = rows[: query.limit]
        if query.count_only:
            return query, [{} for _ in rows]
        return query, [self.project(sobject, r, columns, base) for r in rows]

    def project(self, sobject: SObject, record: dict[str, Any], columns: list[Column], base: str) -> dict[str, Any]:
        out: dict[str, Any] = {"attributes": self._attributes(sobject, record, base)}
        for col in columns:
            node, current = out, record
            for hop in col.hops:
                key = hop.relationship_name or hop.name
                found = self.store.locate(current.get(hop.name) or "")
                if found is None or found[1]["IsDeleted"]:
                    node[key] = None
                    break
                target_sobject, current = found
                child = node.get(key)
                if not isinstance(child, dict):
                    child = node[key] = {"attributes": self._attributes(target_sobject, current, base)}
                node = child
            else:
                value = current.get(col.name)
                if col.type == "base64":
                    node[col.name] = f"{node['attributes']['url']}/{col.name}" if value else None
                else:
                    node[col.name] = to_wire(value, col.type)
        return out

    @staticmethod
    def _attributes(sobject: SObject, record: dict[str, Any], base: str) -> dict[str, str]:
        return {"type": sobject.name, "url": f"{base}/sobjects/{sobject.name}/{record['Id']}"}

    def first_page(self, text: str, include_deleted: bool, base: str, kind: str, batch: int | None) -> dict:
        query, rows = self.run(text, include_deleted, base)
        if query.count_only:
            return {"totalSize": len(rows), "done": True, "records": []}
        size = batch or self.batch_size
        if len(rows) <= size:
            return {"totalSize": len(rows), "done": True, "records": rows}
        cursor = self.store.ids.new("01g")
        self.cursors[cursor] = (rows, size)
        while len(self.cursors) > self.max_open_cursors:
            self.cursors.popitem(last=False)
        return self._page(cursor, 0, size, base, kind)

    def next_page(self, locator: str, base: str, kind: str) -> dict:
        cursor, _, offset = locator.rpartition("-")
        if cursor not in self.cursors or not offset.isdigit():
            raise SfError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        self.cursors.move_to_end(cursor)
        return self._page(cursor, int(offset), self.cursors[cursor][1], base, kind)

    def _page(self, cursor: str, start: int, size: int, base: str, kind: str) -> dict:
        rows = self.cursors[cursor][0]
        page = rows[start : start + size]
        done = start + size >= len(rows)
        body: dict[str, Any] = {"totalSize": len(rows), "done": done}
        if done:
            self.cursors.pop(cursor, None)
        else:
            body["nextRecordsUrl"] = f"{base}/{kind}/{cursor}-{start + size}"
        body["records"] = page
        return body

    # -- SOSL ----------------------------------------------------------------------------------------
    def search(self, text: str, base: str) -> dict[str, Any]:
        sosl = soql.parse_sosl(text)
        targets = sosl.returning or [soql.SoslReturning(name, 0) for name in SEARCH_DEFAULTS]
        words = sosl.term.split()  # every word must match somewhere in the searched fields
        patterns = [re.compile(re.escape(w).replace(r"\*", ".*").replace(r"\?", "."), re.IGNORECASE) for w in words]
        found: list[dict[str, Any]] = []
        for item in targets:
            sobject = self.store.sobject(item.sobject)
            if sobject is None:
                raise SfError(400, "INVALID_TYPE", f"sObject type '{item.sobject}' is not supported.")
            fields = [f for f in sobject.fields.values() if self._in_scope(f, sosl.scope)]
            columns = [self.column(sobject, text, ref) for ref in item.fields] or [Column((), "Id", "id")]
            resolve = self.resolver(sobject, text)
            keep = soql.compile_filter(text, item.where, resolve, normalize_id, datetime.now(UTC))
            rows = [
                r
                for r in self.store.rows(sobject.name)
                if keep(r) and all(any(p.search(str(r.get(f.name) or "")) for f in fields) for p in patterns)
            ]
            rows = soql.sort_records(rows, item.order_by, resolve)[: item.limit or 2000]
            found += [self.project(sobject, r, columns, base) for r in rows]
        return {"searchRecords": found[: sosl.limit or 2000]}

    @staticmethod
    def _in_scope(f: Field, scope: str) -> bool:
        if scope == "EMAIL":
            return f.type == "email"
        if scope == "PHONE":
            return f.type == "phone"
        if scope == "NAME":
            return f.name in NAME_FIELDS or f.name_field
        return f.type in TEXT_TYPES

    def parameterized(self, params: dict[str, Any], base: str) -> dict[str, Any]:
        """``parameterizedSearch``: the same search, built from parameters instead of SOSL text."""
        term = str(params.get("q") or "").replace("}", "\\}")
        scope = str(params.get("in") or "ALL").upper()
        default_fields = params.get("fields") or ["Id"]
        returning = []
        for spec in params.get("sobjects") or [{"name": n} for n in SEARCH_DEFAULTS]:
            fields = spec.get("fields") or default_fields
            limit = spec.get("limit") or params.get("defaultLimit")
            returning.append(f"{spec['name']}({', '.join(fields)}{f' LIMIT {int(limit)}' if limit else ''})")
        text = f"FIND {{{term}}} IN {scope} FIELDS RETURNING {', '.join(returning)}"
        if params.get("overallLimit"):
            text += f" LIMIT {int(params['overallLimit'])}"
        return self.search(text, base)
