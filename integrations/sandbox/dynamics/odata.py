"""The slice of OData v4 URL syntax the Dataverse emulator understands (crm-reference §5.2).

- ``$filter``: ``eq ne gt ge lt le`` on attributes (strings in single quotes with ``''`` escaping,
  numbers, ``true``/``false``/``null``, unquoted ISO datetimes and GUIDs), ``and``/``or``/``not``,
  parentheses, ``contains``/``startswith``/``endswith``. String comparison is case-insensitive, as
  Dataverse's database collation is.
- Key segments: ``contacts(<guid>)`` and alternate keys ``contacts(emailaddress1='a@b.com')``.
- ``$select``, ``$orderby`` (``asc``/``desc``), ``$top``.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote


class ODataSyntaxError(ValueError):
    pass


_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<lp>\()|(?P<rp>\))|(?P<comma>,)"
    r"|(?P<dt>\d{4}-\d{2}-\d{2}T[0-9:.]+(?:Z|[+-]\d{2}:\d{2})?)"
    r"|(?P<guid>[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})"
    r"|(?P<num>-?\d+(?:\.\d+)?)|(?P<word>[A-Za-z_][A-Za-z0-9_./]*))"
)
COMPARISONS = {"eq", "ne", "gt", "ge", "lt", "le"}
FUNCTIONS = {"contains", "startswith", "endswith"}

Predicate = Callable[[dict[str, Any]], bool]


def parse_datetime(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise ODataSyntaxError(f"Syntax error at position {pos} in '{text}'")
        kind = match.lastgroup or ""
        out.append((kind, match.group(kind)))
        pos = match.end()
    return out


def _literal(kind: str, value: str) -> Any:
    if kind == "str":
        return value[1:-1].replace("''", "'")
    if kind == "num":
        return float(value) if "." in value else int(value)
    if kind == "dt":
        return parse_datetime(value)
    if kind == "guid":
        return value.lower()
    if value == "null":
        return None
    if value in ("true", "false"):
        return value == "true"
    raise ODataSyntaxError(f"'{value}' is not a literal")


def _norm(value: Any) -> Any:
    if isinstance(value, str):
        try:
            if re.fullmatch(r"\d{4}-\d{2}-\d{2}T.*", value):
                return parse_datetime(value)
        except ValueError:
            return value.lower()
        return value.lower()
    return value


def _compare(op: str, left: Any, right: Any) -> bool:
    left, right = _norm(left), _norm(right)
    if op == "eq":
        return left == right
    if op == "ne":
        return left != right
    if left is None or right is None:
        return False
    try:
        return {"gt": left > right, "ge": left >= right, "lt": left < right, "le": left <= right}[op]
    except TypeError:
        return False


class _Parser:
    def __init__(self, text: str, known: Callable[[str], bool]) -> None:
        self.tokens = _tokens(text)
        self.pos = 0
        self.known = known

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, kind: str | None = None, value: str | None = None) -> tuple[str, str]:
        token = self.peek()
        if token is None or (kind and token[0] != kind) or (value and token[1] != value):
            raise ODataSyntaxError(f"expected {value or kind} in $filter")
        self.pos += 1
        return token

    def parse(self) -> Predicate:
        predicate = self.expr()
        if self.peek() is not None:
            raise ODataSyntaxError(f"unexpected '{self.peek()[1]}' in $filter")  # type: ignore[index]
        return predicate

    def expr(self) -> Predicate:
        left = self.term()
        while self.peek() == ("word", "or"):
            self.take()
            right, first = self.term(), left
            left = lambda r, a=first, b=right: a(r) or b(r)  # noqa: E731
        return left

    def term(self) -> Predicate:
        left = self.factor()
        while self.peek() == ("word", "and"):
            self.take()
            right, first = self.factor(), left
            left = lambda r, a=first, b=right: a(r) and b(r)  # noqa: E731
        return left

    def attribute(self) -> str:
        _kind, name = self.take("word")
        if not self.known(name):
            raise ODataSyntaxError(f"Could not find a property named '{name}' on type 'Microsoft.Dynamics.CRM'")
        return name

    def value(self) -> Any:
        kind, value = self.take()
        return _literal(kind, value)

    def factor(self) -> Predicate:
        token = self.peek()
        if token == ("word", "not"):
            self.take()
            inner = self.factor()
            return lambda r: not inner(r)
        if token is not None and token[0] == "lp":
            self.take("lp")
            inner = self.expr()
            self.take("rp")
            return inner
        if token is not None and token[0] == "word" and token[1] in FUNCTIONS:
            function = self.take()[1]
            self.take("lp")
            name = self.attribute()
            self.take("comma")
            needle = str(self.value()).lower()
            self.take("rp")
            ops = {"contains": str.__contains__, "startswith": str.startswith, "endswith": str.endswith}
            return lambda r: isinstance(r.get(name), str) and ops[function](r[name].lower(), needle)
        name = self.attribute()
        _kind, op = self.take("word")
        if op not in COMPARISONS:
            raise ODataSyntaxError(f"'{op}' is not a supported operator")
        right = self.value()
        return lambda r: _compare(op, r.get(name), right)


def parse_filter(text: str, known: Callable[[str], bool]) -> Predicate:
    return _Parser(text, known).parse()


def parse_key(segment: str) -> str | dict[str, str]:
    """``<guid>`` → the id; ``a='x',b='y'`` → an alternate key's values."""
    segment = unquote(segment)
    try:
        return str(uuid.UUID(segment))
    except ValueError:
        pass
    values: dict[str, str] = {}
    for match in re.finditer(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*('(?:[^']|'')*'|[^,]+)\s*(?:,|$)", segment):
        raw = match.group(2)
        values[match.group(1)] = raw[1:-1].replace("''", "'") if raw.startswith("'") else raw
    if not values:
        raise ODataSyntaxError(f"'{segment}' is not a key")
    return values


def parse_orderby(text: str) -> list[tuple[str, bool]]:
    """[(attribute, descending)]"""
    out = []
    for part in text.split(","):
        bits = part.split()
        if not bits:
            continue
        out.append((bits[0], len(bits) > 1 and bits[1].lower() == "desc"))
    return out


def sort_rows(rows: list[dict[str, Any]], orderby: list[tuple[str, bool]]) -> list[dict[str, Any]]:
    for name, descending in reversed(orderby):
        rows.sort(key=lambda r: (r.get(name) is not None, _norm(r.get(name)) or ""), reverse=descending)
    return rows
