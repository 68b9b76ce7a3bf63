"""A COQL subset (crm-reference §4.2; spec coql.json): enough for modified-since polling and lookups.

    select Last_Name, Email, Modified_Time from Contacts
    where (Modified_Time > '2025-01-01T00:00:00+00:00') or (Modified_Time = '…' and id > 5725767000000000012)
    order by Modified_Time asc, id asc limit 200

Supported: ``select`` of fields (and ``Lookup.field``), ``from`` one module, ``where`` with
``and``/``or``/parentheses over ``= != > >= < <=``, ``[not] in (…)``, ``[not] like '%…%'``,
``is [not] null`` and ``between … and …``; ``order by`` several fields; ``limit n [offset m]`` or
``limit m, n``. Strings are single-quoted with ``\\'`` escapes; numbers are bare. Keywords are
case-insensitive. ``id`` is always answered. Datetime fields compare as instants, ``id`` and
number fields as numbers, text case-insensitively.

Errors are the spec's: ``SYNTAX_ERROR`` (with ``line``/``column``/``near`` or ``clause``),
``INVALID_QUERY`` (unknown column or module), ``LIMIT_EXCEEDED`` (LIMIT above 2,000).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from integrations.sandbox.zoho.errors import ZohoError
from integrations.sandbox.zoho.schema import Module, parse_time
from integrations.sandbox.zoho.store import Rec

USER_LOOKUPS = ("Owner", "Created_By", "Modified_By")
MAX_LIMIT = 2000
DEFAULT_LIMIT = 200
_TOKEN = re.compile(
    r"\s*(?:(?P<string>'(?:[^'\\]|\\.)*')|(?P<number>-?\d+(?:\.\d+)?)|(?P<op>!=|>=|<=|=|>|<|\(|\)|,)"
    r"|(?P<word>[A-Za-z_$][A-Za-z0-9_$.]*))"
)
_KEYWORDS = {
    "select",
    "from",
    "where",
    "and",
    "or",
    "not",
    "in",
    "like",
    "is",
    "null",
    "order",
    "by",
    "asc",
    "desc",
    "limit",
    "offset",
    "between",
}


def syntax_error(near: str, column: int) -> ZohoError:
    return ZohoError(
        400, "SYNTAX_ERROR", "error occured while parsing the query", {"line": 1, "column": column, "near": near}
    )


def invalid_column(name: str) -> ZohoError:
    return ZohoError(
        400,
        "INVALID_QUERY",
        "column given seems to be invalid",
        {"column_name": name, "reason": "column given seems to be invalid"},
    )


@dataclass
class Token:
    kind: str  # string, number, op, word, end
    text: str
    column: int

    @property
    def keyword(self) -> str:
        return self.text.lower() if self.kind == "word" and self.text.lower() in _KEYWORDS else ""


def tokenize(text: str) -> list[Token]:
    tokens, position = [], 0
    while position < len(text):
        if not text[position:].strip():
            break
        found = _TOKEN.match(text, position)
        if found is None:
            raise syntax_error(text[position : position + 20].strip(), position + 1)
        kind = found.lastgroup or "op"
        value = found.group(kind)
        if kind == "string":
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        tokens.append(Token(kind, value, found.start(kind) + 1))
        position = found.end()
    tokens.append(Token("end", "", len(text) + 1))
    return tokens


Condition = Callable[[Rec], bool]


@dataclass
class Query:
    fields: list[str]
    module: str
    where: Condition | None = None
    order: list[tuple[str, bool, str]] = field(default_factory=list)  # (field, descending, kind)
    limit: int = DEFAULT_LIMIT
    offset: int = 0


class Parser:
    def __init__(self, text: str, modules: dict[str, Module]) -> None:
        self.tokens = tokenize(text)
        self.position = 0
        self.modules = modules
        self.module: Module | None = None

    # -- token helpers --------------------------------------------------------------------------------
    @property
    def token(self) -> Token:
        return self.tokens[self.position]

    def take(self) -> Token:
        token = self.token
        self.position += 1
        return token

    def expect_keyword(self, *words: str) -> str:
        if self.token.keyword not in words:
            raise syntax_error(self.token.text or "end of query", self.token.column)
        return self.take().keyword

    def expect_op(self, op: str) -> None:
        if self.token.kind != "op" or self.token.text != op:
            raise syntax_error(self.token.text or "end of query", self.token.column)
        self.take()

    def field_name(self) -> str:
        token = self.take()
        if token.kind != "word" or token.keyword:
            raise syntax_error(token.text or "end of query", token.column)
        return token.text

    # -- grammar --------------------------------------------------------------------------------------
    def parse(self) -> Query:
        self.expect_keyword("select")
        names = [self.field_name()]
        while self.token.text == ",":
            self.take()
            names.append(self.field_name())
        self.expect_keyword("from")
        module_name = self.field_name()
        self.module = self.modules.get(module_name)
        if self.module is None:
            raise ZohoError(
                400, "INVALID_QUERY", "invalid query formed", {"module": module_name, "reason": "invalid module"}
            )
        for name in names:
            self.check_column(name)
        query = Query(names, module_name)
        if self.token.keyword == "where":
            self.take()
            query.where = self.expression()
        if self.token.keyword == "order":
            self.take()
            self.expect_keyword("by")
            query.order.append(self.order_item())
            while self.token.text == ",":
                self.take()
                query.order.append(self.order_item())
        if self.token.keyword == "limit":
            self.take()
            first = self.number()
            if self.token.text == ",":
                self.take()
                query.offset, query.limit = first, self.number()
            else:
                query.limit = first
                if self.token.keyword == "offset":
                    self.take()
                    query.offset = self.number()
        if self.token.kind != "end":
            raise syntax_error(self.token.text, self.token.column)
        if query.limit > MAX_LIMIT or query.limit < 1:
            raise ZohoError(400, "LIMIT_EXCEEDED", "limit exceeded", {"by": "limit", "limit": MAX_LIMIT})
        return query

    def number(self) -> int:
        token = self.take()
        if token.kind != "number" or "." in token.text:
            raise syntax_error(token.text or "end of query", token.column)
        return int(token.text)

    def order_item(self) -> tuple[str, bool, str]:
        name = self.check_column(self.field_name())
        descending = False
        if self.token.keyword in ("asc", "desc"):
            descending = self.take().keyword == "desc"
        return name, descending, self.kind_of(name)

    def check_column(self, name: str) -> str:
        assert self.module is not None
        base = name.split(".", 1)[0]
        if base != "id" and base not in self.module.fields:
            raise invalid_column(name)
        return name

    def expression(self) -> Condition:
        terms = [self.term()]
        while self.token.keyword == "or":
            self.take()
            terms.append(self.term())
        return terms[0] if len(terms) == 1 else (lambda rec, terms=terms: any(t(rec) for t in terms))

    def term(self) -> Condition:
        factors = [self.factor()]
        while self.token.keyword == "and":
            self.take()
            factors.append(self.factor())
        return factors[0] if len(factors) == 1 else (lambda rec, factors=factors: all(f(rec) for f in factors))

    def factor(self) -> Condition:
        if self.token.text == "(" and self.token.kind == "op":
            self.take()
            inner = self.expression()
            self.expect_op(")")
            return inner
        return self.condition()

    def value(self) -> Any:
        token = self.take()
        if token.kind == "string":
            return token.text
        if token.kind == "number":
            return token.text
        if token.keyword == "null":
            return None
        raise syntax_error(token.text or "end of query", token.column)

    def condition(self) -> Condition:
        name = self.check_column(self.field_name())
        kind = self.kind_of(name)
        negate = False
        if self.token.keyword == "not":
            self.take()
            negate = True
        keyword = self.token.keyword
        if keyword == "in":
            self.take()
            self.expect_op("(")
            values = [self.value()]
            while self.token.text == ",":
                self.take()
                values.append(self.value())
            self.expect_op(")")
            wanted = [_key(kind, v) for v in values]
            return lambda rec: (_key(kind, read(rec, name)) in wanted) != negate
        if keyword == "like":
            self.take()
            pattern = re.compile(
                "^" + ".*".join(re.escape(part) for part in str(self.value()).lower().split("%")) + "$", re.S
            )
            return lambda rec: bool(pattern.match(str(read(rec, name) or "").lower())) != negate
        if keyword == "between":
            self.take()
            low = _key(kind, self.value())
            self.expect_keyword("and")
            high = _key(kind, self.value())
            return lambda rec: (
                _compare(_key(kind, read(rec, name)), low, ">=") and _compare(_key(kind, read(rec, name)), high, "<=")
            )
        if keyword == "is":
            self.take()
            is_not = False
            if self.token.keyword == "not":
                self.take()
                is_not = True
            self.expect_keyword("null")
            return lambda rec: (read(rec, name) in (None, "")) != is_not
        if negate:
            raise syntax_error(self.token.text or "end of query", self.token.column)
        token = self.take()
        if token.kind != "op" or token.text not in ("=", "!=", ">", ">=", "<", "<="):
            raise syntax_error(token.text or "end of query", token.column)
        operand = _key(kind, self.value())
        return lambda rec: _compare(_key(kind, read(rec, name)), operand, token.text)

    def kind_of(self, name: str) -> str:
        assert self.module is not None
        if name == "id" or name.endswith(".id"):
            return "number"
        definition = self.module.fields.get(name)
        if definition is None:
            return "text"
        if definition.data_type == "datetime":
            return "datetime"
        if definition.data_type in ("integer", "bigint", "double", "currency"):
            return "number"
        return "text"


def read(rec: Rec, name: str) -> Any:
    if name == "id":
        return rec.id
    wire = rec.wire()
    base, _, sub = name.partition(".")
    value = wire.get(base)
    if sub:
        return value.get(sub) if isinstance(value, dict) else None
    if isinstance(value, dict):
        return value.get("id")
    return value


def _key(kind: str, value: Any) -> Any:
    if value in (None, ""):
        return None
    try:
        if kind == "datetime":
            return parse_time(str(value))
        if kind == "number":
            return Decimal(str(value))  # 19-digit ids do not fit a float
    except (ValueError, InvalidOperation):
        raise ZohoError(
            400,
            "INVALID_QUERY",
            "value given seems to be invalid for the column",
            {"reason": "value given seems to be invalid for the column"},
        ) from None
    return str(value).lower()


def _compare(left: Any, right: Any, op: str) -> bool:
    if op == "=":
        return left == right
    if op == "!=":
        return left != right
    if left is None or right is None:
        return False
    return {">": left > right, ">=": left >= right, "<": left < right, "<=": left <= right}[op]


def run(query: Query, records: list[Rec]) -> tuple[list[dict[str, Any]], bool]:
    """Rows of the query (``id`` first, then the selected names) and whether more follow."""
    rows = [r for r in records if query.where is None or query.where(r)]
    for name, descending, kind in reversed(query.order):
        rows.sort(key=lambda r, name=name, kind=kind: _sort_key(_key(kind, read(r, name))), reverse=descending)
    page = rows[query.offset : query.offset + query.limit]
    more = len(rows) > query.offset + query.limit
    out = []
    for rec in page:
        wire = rec.wire()
        row: dict[str, Any] = {"id": rec.id}
        for name in query.fields:
            base, _, sub = name.partition(".")
            if name == "id":
                continue
            value = wire.get(base)
            if sub:
                row[name] = value.get(sub) if isinstance(value, dict) else None
            elif isinstance(value, dict) and base in USER_LOOKUPS:
                # record.json's Record makes user lookups Minified_User (name and id required).
                row[name] = {"name": value.get("name"), "id": value.get("id")}
            elif isinstance(value, dict):
                row[name] = {"id": value.get("id")}  # other lookups answer their id only
            else:
                row[name] = value
        out.append(row)
    return out, more


def _sort_key(value: Any) -> tuple[int, Any]:
    if value is None:
        return (0, 0)
    if isinstance(value, dt.datetime):
        return (1, value.timestamp())
    return (1, value)
