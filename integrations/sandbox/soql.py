"""The SOQL (and a sliver of SOSL) that the Salesforce sandbox understands: parse, check, evaluate.

The subset is what sync work needs (crm-reference.md §1.2, §1.7):

    SELECT f1, Rel.f2 | COUNT() FROM Obj
      [WHERE cond [AND cond]... | cond [OR cond]...]     -- parentheses to mix AND and OR, as SOQL demands
      [ORDER BY f [ASC|DESC] [NULLS FIRST|LAST], ...] [LIMIT n] [OFFSET n]

    cond := f (= | != | <> | < | <= | > | >=) literal | f [NOT] IN (literal, ...) | f LIKE 'pat%' | NOT cond

Literals: 'quoted strings' (backslash escapes), numbers, true/false, null, datetimes
(2024-01-01T00:00:00Z, with optional .mmm and ±hh:mm), dates (2024-01-01) and the date literals
TODAY, YESTERDAY, TOMORROW, LAST_N_DAYS:n, NEXT_N_DAYS:n. As in Salesforce, text comparisons are
case-insensitive, datetimes must not be quoted and strings must be, ids may be given in 15 or 18
characters, and mixing AND with OR without parentheses is a MALFORMED_QUERY.

This module knows no schema: the emulator passes a ``resolve`` callback that turns a field path into
its type and a getter, and raises ``SoqlError`` for unknown fields.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

TEXT_TYPES = frozenset(
    {"string", "email", "phone", "url", "textarea", "picklist", "multipicklist", "combobox", "encryptedstring"}
)
ID_TYPES = frozenset({"id", "reference"})
NUMBER_TYPES = frozenset({"int", "double", "currency", "percent", "long"})
UNFILTERABLE_TYPES = frozenset({"base64"})

KEYWORDS = frozenset(
    {
        "SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "IN", "LIKE", "ORDER", "BY", "ASC", "DESC", "NULLS",
        "FIRST", "LAST", "LIMIT", "OFFSET", "NULL", "TRUE", "FALSE", "GROUP", "HAVING", "WITH", "FOR",
        "USING", "TYPEOF", "RETURNING", "FIND", "FIELDS", "INCLUDES", "EXCLUDES",
    }
)  # fmt: skip
DATE_LITERALS = frozenset({"TODAY", "YESTERDAY", "TOMORROW"})
DATE_N_LITERALS = frozenset({"LAST_N_DAYS", "NEXT_N_DAYS"})


class SoqlError(Exception):
    """A query Salesforce would refuse; ``code`` is the errorCode of the 400 answer."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# ---------------------------------------------------------------------------------------------
# Tokens

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?(?:Z|[+-]\d{2}:?\d{2}))
  | (?P<date>\d{4}-\d{2}-\d{2})
  | (?P<number>-?\d+(?:\.\d+)?)
  | (?P<string>'(?:[^'\\]|\\.)*')
  | (?P<op><=|>=|!=|<>|=|<|>)
  | (?P<punct>[(),:])
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class Token:
    kind: str  # datetime, date, number, string, op, punct, ident, end
    value: str
    pos: int

    def is_keyword(self, *words: str) -> bool:
        return self.kind == "ident" and self.value.upper() in words


def tokenize(text: str, start: int = 0) -> list[Token]:
    tokens: list[Token] = []
    pos = start
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            snippet = text[pos : pos + 10]
            if snippet.startswith("'"):
                raise SoqlError("MALFORMED_QUERY", error_at(text, pos, "unterminated string literal"))
            raise SoqlError("MALFORMED_QUERY", error_at(text, pos, f"unexpected token: {snippet.split()[0]}"))
        kind = match.lastgroup or ""
        if kind != "ws":
            tokens.append(Token(kind, match.group(), pos))
        pos = match.end()
    tokens.append(Token("end", "", len(text)))
    return tokens


def error_at(text: str, pos: int, message: str) -> str:
    """Salesforce's query-error text: the query, a caret under the culprit, its row and column."""
    row = text.count("\n", 0, pos) + 1
    line_start = text.rfind("\n", 0, pos) + 1
    line_end = text.find("\n", pos)
    line = text[line_start : line_end if line_end != -1 else len(text)]
    column = pos - line_start + 1
    return f"\n{line}\n{' ' * (column - 1)}^\nERROR at Row:{row}:Column:{column}\n{message}"


# ---------------------------------------------------------------------------------------------
# The syntax tree


@dataclass(frozen=True)
class FieldRef:
    path: tuple[str, ...]
    pos: int

    @property
    def text(self) -> str:
        return ".".join(self.path)


@dataclass(frozen=True)
class Literal:
    kind: str  # string, number, boolean, null, datetime, date, date_literal
    value: Any
    pos: int
    raw: str = ""  # the source text (LIKE keeps its \% and \_ escapes)


@dataclass(frozen=True)
class Comparison:
    field: FieldRef
    op: str  # = != < <= > >= LIKE IN NOT IN
    value: Literal | tuple[Literal, ...]


@dataclass(frozen=True)
class BoolOp:
    op: str  # AND, OR
    items: tuple[Any, ...]


@dataclass(frozen=True)
class Not:
    item: Any


@dataclass(frozen=True)
class OrderItem:
    field: FieldRef
    descending: bool = False
    nulls_first: bool | None = None  # None: Salesforce's default (first when ascending)


@dataclass
class Query:
    text: str
    sobject: str
    sobject_pos: int
    fields: list[FieldRef] = field(default_factory=list)
    count_only: bool = False
    where: Any = None
    order_by: list[OrderItem] = field(default_factory=list)
    limit: int | None = None
    offset: int | None = None


@dataclass
class SoslReturning:
    sobject: str
    sobject_pos: int
    fields: list[FieldRef] = field(default_factory=list)
    where: Any = None
    order_by: list[OrderItem] = field(default_factory=list)
    limit: int | None = None


@dataclass
class SoslQuery:
    text: str
    term: str
    scope: str = "ALL"  # ALL, NAME, EMAIL, PHONE
    returning: list[SoslReturning] = field(default_factory=list)
    limit: int | None = None


# ---------------------------------------------------------------------------------------------
# Parsing


class _Parser:
    def __init__(self, text: str, tokens: list[Token], error_code: str = "MALFORMED_QUERY") -> None:
        self.text, self.tokens, self.i, self.error_code = text, tokens, 0, error_code

    # -- cursor -----------------------------------------------------------------------------------
    def peek(self, ahead: int = 0) -> Token:
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def next(self) -> Token:
        token = self.peek()
        self.i += 1
        return token

    def fail(self, token: Token, message: str | None = None) -> SoqlError:
        shown = token.value or "<EOF>"
        return SoqlError(self.error_code, error_at(self.text, token.pos, message or f"unexpected token: {shown}"))

    def accept(self, *words: str) -> bool:
        if self.peek().is_keyword(*words):
            self.i += 1
            return True
        return False

    def expect(self, word: str) -> Token:
        token = self.next()
        if not token.is_keyword(word):
            raise self.fail(token)
        return token

    def expect_punct(self, char: str) -> Token:
        token = self.next()
        if token.kind != "punct" or token.value != char:
            raise self.fail(token)
        return token

    def at_punct(self, char: str) -> bool:
        token = self.peek()
        return token.kind == "punct" and token.value == char

    # -- pieces ------------------------------------------------------------------------------------
    def field_ref(self) -> FieldRef:
        token = self.next()
        if token.kind != "ident" or token.value.upper() in KEYWORDS:
            raise self.fail(token)
        if self.at_punct("("):
            raise self.fail(token, f"the sandbox supports no SOQL functions other than COUNT(): {token.value}")
        return FieldRef(tuple(token.value.split(".")), token.pos)

    def field_list(self, stop_words: tuple[str, ...]) -> list[FieldRef]:
        fields: list[FieldRef] = []
        seen: set[str] = set()
        while True:
            if self.at_punct("("):
                raise self.fail(self.peek(), "the sandbox supports no relationship subqueries")
            ref = self.field_ref()
            if ref.text.lower() in seen:
                raise self.fail(self.tokens[self.i - 1], f"duplicate field selected: {ref.text}")
            seen.add(ref.text.lower())
            fields.append(ref)
            if self.at_punct(","):
                self.i += 1
                continue
            if self.peek().is_keyword(*stop_words) or self.peek().kind == "end" or self.at_punct(")"):
                return fields
            raise self.fail(self.peek())

    def integer(self) -> int:
        token = self.next()
        if token.kind != "number" or not token.value.isdigit():
            raise self.fail(token)
        return int(token.value)

    def sobject_name(self) -> Token:
        token = self.next()
        if token.kind != "ident" or "." in token.value or token.value.upper() in KEYWORDS:
            raise self.fail(token)
        return token

    def order_by(self) -> list[OrderItem]:
        items: list[OrderItem] = []
        while True:
            ref = self.field_ref()
            descending = False
            if self.accept("DESC"):
                descending = True
            else:
                self.accept("ASC")
            nulls_first: bool | None = None
            if self.accept("NULLS"):
                if self.accept("FIRST"):
                    nulls_first = True
                elif self.accept("LAST"):
                    nulls_first = False
                else:
                    raise self.fail(self.peek())
            items.append(OrderItem(ref, descending, nulls_first))
            if not self.at_punct(","):
                return items
            self.i += 1

    # -- conditions --------------------------------------------------------------------------------
    def expression(self) -> Any:
        first = self.unary()
        if not self.peek().is_keyword("AND", "OR"):
            return first
        op = self.peek().value.upper()
        items = [first]
        while self.peek().is_keyword("AND", "OR"):
            token = self.next()
            if token.value.upper() != op:
                # SOQL has no precedence between AND and OR: mixing them needs parentheses.
                raise self.fail(token)
            items.append(self.unary())
        return BoolOp(op, tuple(items))

    def unary(self) -> Any:
        if self.accept("NOT"):
            return Not(self.unary())
        if self.at_punct("("):
            self.i += 1
            inner = self.expression()
            self.expect_punct(")")
            return inner
        return self.condition()

    def condition(self) -> Comparison:
        ref = self.field_ref()
        token = self.next()
        if token.kind == "op":
            op = "!=" if token.value == "<>" else token.value
            return Comparison(ref, op, self.literal())
        if token.is_keyword("LIKE"):
            value = self.literal()
            if value.kind != "string":
                raise self.fail(self.tokens[self.i - 1])
            return Comparison(ref, "LIKE", value)
        if token.is_keyword("IN"):
            return Comparison(ref, "IN", self.literal_list())
        if token.is_keyword("NOT") and self.accept("IN"):
            return Comparison(ref, "NOT IN", self.literal_list())
        raise self.fail(token)

    def literal_list(self) -> tuple[Literal, ...]:
        self.expect_punct("(")
        values = [self.literal()]
        while self.at_punct(","):
            self.i += 1
            values.append(self.literal())
        self.expect_punct(")")
        return tuple(values)

    def literal(self) -> Literal:
        token = self.next()
        if token.kind == "string":
            return Literal("string", unescape(token.value[1:-1]), token.pos, token.value[1:-1])
        if token.kind == "number":
            number: int | float = float(token.value) if "." in token.value else int(token.value)
            return Literal("number", number, token.pos, token.value)
        if token.kind == "datetime":
            return Literal("datetime", parse_datetime_literal(token.value), token.pos, token.value)
        if token.kind == "date":
            try:
                return Literal("date", date.fromisoformat(token.value), token.pos, token.value)
            except ValueError:
                raise self.fail(token, f"invalid date: {token.value}") from None
        if token.kind == "ident":
            word = token.value.upper()
            if word == "NULL":
                return Literal("null", None, token.pos, token.value)
            if word in ("TRUE", "FALSE"):
                return Literal("boolean", word == "TRUE", token.pos, token.value)
            if word in DATE_LITERALS:
                return Literal("date_literal", (word, 0), token.pos, token.value)
            if word in DATE_N_LITERALS:
                self.expect_punct(":")
                return Literal("date_literal", (word, self.integer()), token.pos, token.value)
        raise self.fail(token)


def unescape(text: str) -> str:
    """SOQL string escapes; \\% and \\_ stay escaped here because only LIKE gives them meaning."""
    out: list[str] = []
    i = 0
    simple = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f", "'": "'", '"': '"', "\\": "\\"}
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            out.append(simple.get(nxt, "\\" + nxt))
            i += 2
            continue
        out.append(char)
        i += 1
    return "".join(out)


def parse_datetime_literal(text: str) -> datetime:
    value = text.replace("Z", "+00:00")
    if re.search(r"[+-]\d{4}$", value):  # +0000 → +00:00
        value = value[:-2] + ":" + value[-2:]
    return datetime.fromisoformat(value).astimezone(UTC)


def parse(text: str) -> Query:
    """Parse a SOQL query of the supported subset, or raise ``SoqlError`` (MALFORMED_QUERY)."""
    if not text or not text.strip():
        raise SoqlError("MALFORMED_QUERY", "A query string is required (the q parameter)")
    parser = _Parser(text, tokenize(text))
    parser.expect("SELECT")
    query = Query(text=text, sobject="", sobject_pos=0)
    if parser.peek().is_keyword("COUNT") and parser.peek(1).kind == "punct" and parser.peek(1).value == "(":
        parser.i += 1
        parser.expect_punct("(")
        parser.expect_punct(")")
        query.count_only = True
    else:
        query.fields = parser.field_list(("FROM",))
    parser.expect("FROM")
    name = parser.sobject_name()
    query.sobject, query.sobject_pos = name.value, name.pos
    if parser.accept("WHERE"):
        query.where = parser.expression()
    if parser.accept("ORDER"):
        parser.expect("BY")
        query.order_by = parser.order_by()
    if parser.accept("LIMIT"):
        query.limit = parser.integer()
    if parser.accept("OFFSET"):
        query.offset = parser.integer()
    if parser.peek().kind != "end":
        raise parser.fail(parser.peek())
    return query


def parse_sosl(text: str) -> SoslQuery:
    """``FIND {term} [IN ALL|NAME|EMAIL|PHONE FIELDS] [RETURNING Obj[(fields [WHERE …] [LIMIT n])], …] [LIMIT n]``."""
    match = re.match(r"\s*FIND\s*\{((?:[^}\\]|\\.)*)\}", text or "", re.IGNORECASE)
    if match is None:
        raise SoqlError("MALFORMED_SEARCH", "No search term found. The search term must be enclosed in braces.")
    term = unescape(match.group(1)).strip().strip('"')
    if len(term.replace("*", "").replace("?", "")) < 2:
        raise SoqlError("MALFORMED_SEARCH", "search term must be longer than one character: " + term)
    parser = _Parser(text, tokenize(text, match.end()), error_code="MALFORMED_SEARCH")
    sosl = SoslQuery(text=text, term=term)
    if parser.accept("IN"):
        scope = parser.next()
        if not scope.is_keyword("ALL", "NAME", "EMAIL", "PHONE"):
            raise parser.fail(scope)
        sosl.scope = scope.value.upper()
        parser.expect("FIELDS")
    if parser.accept("RETURNING"):
        while True:
            name = parser.sobject_name()
            item = SoslReturning(name.value, name.pos)
            if parser.at_punct("("):
                parser.i += 1
                item.fields = parser.field_list(("WHERE", "ORDER", "LIMIT"))
                if parser.accept("WHERE"):
                    item.where = parser.expression()
                if parser.accept("ORDER"):
                    parser.expect("BY")
                    item.order_by = parser.order_by()
                if parser.accept("LIMIT"):
                    item.limit = parser.integer()
                parser.expect_punct(")")
            sosl.returning.append(item)
            if not parser.at_punct(","):
                break
            parser.i += 1
    if parser.accept("LIMIT"):
        sosl.limit = parser.integer()
    if parser.peek().kind != "end":
        raise parser.fail(parser.peek())
    return sosl


# ---------------------------------------------------------------------------------------------
# Evaluation


@dataclass(frozen=True)
class ResolvedField:
    """A field path checked against the schema: its canonical path, type and how to read it."""

    path: tuple[str, ...]
    type: str
    get: Callable[[Any], Any]
    filterable: bool = True


Resolver = Callable[[FieldRef], ResolvedField]


def _type_error(text: str, literal: Literal, name: str, type_name: str, quoted: bool) -> SoqlError:
    should = "should" if quoted else "should not"
    return SoqlError(
        "INVALID_QUERY_FILTER_OPERATOR",
        error_at(
            text,
            literal.pos,
            f"value of filter criterion for field '{name}' must be of type {type_name} "
            f"and {should} be enclosed in quotes",
        ),
    )


def _date_range(literal: Literal, now: datetime) -> tuple[datetime, datetime]:
    """The [start, end) of a date literal, in UTC (the integration user's time zone here)."""
    word, n = literal.value
    today = datetime.combine(now.astimezone(UTC).date(), time(), tzinfo=UTC)
    day = timedelta(days=1)
    if word == "TODAY":
        return today, today + day
    if word == "YESTERDAY":
        return today - day, today
    if word == "TOMORROW":
        return today + day, today + 2 * day
    if word == "LAST_N_DAYS":
        return today - n * day, today + day
    return today, today + (n + 1) * day  # NEXT_N_DAYS


class _Operand:
    """A literal converted to the field's type (or a date range) for comparisons."""

    def __init__(self, value: Any = None, is_null: bool = False, span: tuple[Any, Any] | None = None) -> None:
        self.value, self.is_null, self.span = value, is_null, span


def _normalise(value: Any, type_name: str) -> Any:
    if value is None:
        return None
    if type_name in TEXT_TYPES:
        return str(value).casefold()
    return value


def _operand(
    text: str, rf: ResolvedField, literal: Literal, normalize_id: Callable[[str], str | None], now: datetime
) -> _Operand:
    name, kind = rf.path[-1], rf.type
    if literal.kind == "null" or (kind in TEXT_TYPES and literal.kind == "string" and literal.value == ""):
        # Salesforce stores an empty text value as null, so '' and null select the same rows.
        return _Operand(is_null=True)
    if kind in TEXT_TYPES:
        if literal.kind != "string":
            raise _type_error(text, literal, name, "string", quoted=True)
        return _Operand(literal.value.casefold())
    if kind in ID_TYPES:
        if literal.kind != "string":
            raise _type_error(text, literal, name, "id", quoted=True)
        normalised = normalize_id(literal.value)
        if normalised is None:
            raise SoqlError(
                "INVALID_QUERY_FILTER_OPERATOR", error_at(text, literal.pos, f"invalid ID field: {literal.value}")
            )
        return _Operand(normalised)
    if kind == "boolean":
        if literal.kind != "boolean":
            raise _type_error(text, literal, name, "boolean", quoted=False)
        return _Operand(literal.value)
    if kind in NUMBER_TYPES:
        if literal.kind != "number":
            raise _type_error(text, literal, name, "double" if kind != "int" else "int", quoted=False)
        return _Operand(literal.value)
    if kind == "date":
        if literal.kind == "date_literal":
            start, end = _date_range(literal, now)
            return _Operand(span=(start.date(), end.date()))
        if literal.kind != "date":
            raise _type_error(text, literal, name, "date", quoted=False)
        return _Operand(literal.value)
    if kind == "datetime":
        if literal.kind == "date_literal":
            return _Operand(span=_date_range(literal, now))
        if literal.kind != "datetime":
            raise _type_error(text, literal, name, "dateTime", quoted=False)
        return _Operand(literal.value)
    raise SoqlError("INVALID_FIELD", error_at(text, literal.pos, f"field '{name}' can not be filtered in a query call"))


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def _span_test(op: str, value: Any, span: tuple[Any, Any]) -> bool:
    start, end = span
    return {
        "=": start <= value < end,
        "!=": not (start <= value < end),
        "<": value < start,
        "<=": value < end,
        ">": value >= end,
        ">=": value >= start,
    }[op]


def like_regex(pattern: str) -> re.Pattern[str]:
    out: list[str] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if char == "%" else "." if char == "_" else re.escape(char))
        i += 1
    return re.compile("".join(out), re.IGNORECASE | re.DOTALL)


def compile_filter(
    query_text: str, expr: Any, resolve: Resolver, normalize_id: Callable[[str], str | None], now: datetime
) -> Callable[[Any], bool]:
    """Turn a WHERE tree into a predicate over records, checking every field and literal first."""
    if expr is None:
        return lambda record: True
    if isinstance(expr, BoolOp):
        parts = [compile_filter(query_text, item, resolve, normalize_id, now) for item in expr.items]
        if expr.op == "AND":
            return lambda record: all(part(record) for part in parts)
        return lambda record: any(part(record) for part in parts)
    if isinstance(expr, Not):
        inner = compile_filter(query_text, expr.item, resolve, normalize_id, now)
        return lambda record: not inner(record)
    return _compile_comparison(query_text, expr, resolve, normalize_id, now)


def _compile_comparison(
    text: str, cond: Comparison, resolve: Resolver, normalize_id: Callable[[str], str | None], now: datetime
) -> Callable[[Any], bool]:
    rf = resolve(cond.field)
    if not rf.filterable or rf.type in UNFILTERABLE_TYPES:
        raise SoqlError(
            "INVALID_FIELD",
            error_at(text, cond.field.pos, f"field '{rf.path[-1]}' can not be filtered in a query call"),
        )
    get, kind = rf.get, rf.type
    if cond.op in ("IN", "NOT IN"):
        assert isinstance(cond.value, tuple)
        operands = [_operand(text, rf, lit, normalize_id, now) for lit in cond.value]
        wanted = {op.value for op in operands if not op.is_null and op.span is None}
        spans = [op.span for op in operands if op.span is not None]
        with_null = any(op.is_null for op in operands)

        def member(record: Any) -> bool:
            value = _normalise(get(record), kind)
            if value is None:
                return with_null
            return value in wanted or any(_span_test("=", value, span) for span in spans)

        if cond.op == "IN":
            return member
        return lambda record: not member(record)
    assert isinstance(cond.value, Literal)
    if cond.op == "LIKE":
        if kind not in TEXT_TYPES:
            raise SoqlError(
                "INVALID_QUERY_FILTER_OPERATOR",
                error_at(text, cond.field.pos, f"invalid operator on {kind} field: LIKE"),
            )
        regex = like_regex(cond.value.raw)
        return lambda record: (value := get(record)) is not None and regex.fullmatch(str(value)) is not None
    operand = _operand(text, rf, cond.value, normalize_id, now)
    op = cond.op
    if operand.is_null:
        if op == "=":
            return lambda record: get(record) is None
        if op == "!=":
            return lambda record: get(record) is not None
        return lambda record: False
    if kind == "boolean" and op not in ("=", "!="):
        raise SoqlError(
            "INVALID_QUERY_FILTER_OPERATOR", error_at(text, cond.field.pos, f"invalid operator on boolean field: {op}")
        )
    if operand.span is not None:
        span = operand.span
        return lambda record: (value := get(record)) is not None and _span_test(op, value, span)
    compare, target = _COMPARE[op], operand.value

    def test(record: Any) -> bool:
        value = _normalise(get(record), kind)
        if value is None:
            return op == "!="  # SOQL keeps null rows for != (they differ from the value)
        return compare(value, target)

    return test


def sort_records(records: list[Any], order_by: Iterable[OrderItem], resolve: Resolver) -> list[Any]:
    """ORDER BY with Salesforce's null placement: first when ascending, last when descending."""
    ordered = list(records)
    for item in reversed(list(order_by)):
        rf = resolve(item.field)
        nulls_first = (not item.descending) if item.nulls_first is None else item.nulls_first
        # With reverse=True the flag order flips too, so pick the flag that lands nulls where wanted.
        null_flag = 1 if nulls_first == item.descending else 0

        def key(record: Any, rf: ResolvedField = rf, null_flag: int = null_flag) -> tuple[int, Any]:
            value = _normalise(rf.get(record), rf.type)
            return (null_flag, None) if value is None else (1 - null_flag, value)

        ordered.sort(key=key, reverse=item.descending)
    return ordered
