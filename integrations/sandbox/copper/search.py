"""``POST /<resource>/search``: filters, sorting and page_number paging (crm-reference §6.2).

Copper's search pages with ``page_number`` (1-based) and ``page_size`` (default 20, at most
200), sorts by ``sort_by``/``sort_direction`` and ANDs every criterion. The answer is a JSON
array; the total goes in the ``X-PW-TOTAL`` header. Records that share a sort value come back
in id order (Copper promises no order among ties; a fixed one keeps paging repeatable here).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from integrations.sandbox.copper.errors import invalid
from integrations.sandbox.copper.fields import matches as custom_fields_match

MAX_PAGE_SIZE = 200
DEFAULT_PAGE_SIZE = 20

Record = Mapping[str, Any]
Filter = Callable[[Record, Any], bool]


def _int(body: Mapping[str, Any], name: str, default: int) -> int:
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid(f"{name} must be an integer")
    return value


def _between(record_value: Any, low: Any, high: Any) -> bool:
    if low is not None and (record_value is None or record_value < low):
        return False
    return not (high is not None and (record_value is None or record_value > high))


def _text_contains(value: Any, wanted: Any) -> bool:
    return str(wanted).strip().lower() in str(value or "").lower()


def _any_of(values: Any, wanted: Any) -> bool:
    items = wanted if isinstance(wanted, list) else [wanted]
    return bool(set(values or []) & set(items))


COMMON_FILTERS: dict[str, Filter] = {
    "name": lambda r, w: _text_contains(r.get("name"), w),
    "assignee_ids": lambda r, w: (r.get("assignee_id") or -2) in (w if isinstance(w, list) else [w]),
    "tags": lambda r, w: _any_of(r.get("tags"), w),
    "custom_fields": lambda r, w: custom_fields_match(r.get("_custom") or {}, w),
}
RANGES = {
    "created": "date_created",
    "modified": "date_modified",
}


@dataclass(frozen=True)
class SearchSpec:
    """What one resource's search understands."""

    sort_keys: Mapping[str, Callable[[Record], Any]]
    default_sort: str
    filters: Mapping[str, Filter] = field(default_factory=dict)
    ranges: Mapping[str, str] = field(default_factory=lambda: dict(RANGES))
    default_direction: str = "asc"


def search(records: list[Record], body: Any, spec: SearchSpec) -> tuple[list[Record], int]:
    """One page of matching records and the total number that match."""
    if body is None:
        body = {}
    if not isinstance(body, Mapping):
        raise invalid("the search body must be a JSON object")
    page_number = _int(body, "page_number", 1)
    page_size = _int(body, "page_size", DEFAULT_PAGE_SIZE)
    if page_number < 1:
        raise invalid("page_number must be 1 or more")
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise invalid(f"page_size must be between 1 and {MAX_PAGE_SIZE}")
    sort_by = body.get("sort_by") or spec.default_sort
    if sort_by not in spec.sort_keys:
        raise invalid(f"sort_by must be one of {', '.join(spec.sort_keys)}")
    direction = str(body.get("sort_direction") or spec.default_direction).lower()
    if direction not in ("asc", "desc"):
        raise invalid("sort_direction must be asc or desc")
    filters = {**COMMON_FILTERS, **spec.filters}
    chosen = [(filters[name], body[name]) for name in filters if body.get(name) not in (None, [], "")]
    bounds = []
    for word, attribute in spec.ranges.items():
        low, high = body.get(f"minimum_{word}_date"), body.get(f"maximum_{word}_date")
        for name, value in ((f"minimum_{word}_date", low), (f"maximum_{word}_date", high)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
                raise invalid(f"{name} must be a Unix timestamp in seconds")
        if low is not None or high is not None:
            bounds.append((attribute, low, high))
    hits = [
        r
        for r in records
        if all(check(r, wanted) for check, wanted in chosen)
        and all(_between(r.get(attribute), low, high) for attribute, low, high in bounds)
    ]
    key = spec.sort_keys[sort_by]
    hits.sort(key=lambda r: (_sortable(key(r)), r["id"]), reverse=direction == "desc")
    start = (page_number - 1) * page_size
    return hits[start : start + page_size], len(hits)


def _sortable(value: Any) -> tuple[int, Any]:
    # Nulls sort first; text case-insensitively.
    if value is None:
        return (0, "")
    if isinstance(value, str):
        return (1, value.lower())
    return (1, value)
