"""Pipedrive's wire conventions, client side (crm-reference.md §3).

- Paths: API v2 under ``/api/v2/`` for persons, organizations, deals, activities, search and fields
  (the v1 versions are deprecated and out of support, §3); v1 only where v1 is the supported API
  (notes, leads, webhooks, users, activity types), sent through ``integrations.providers.pipedrive.v1``.
- Envelopes: ``{"success": true, "data": …, "additional_data": {"next_cursor": …}}`` (v2) or
  ``{"pagination": {…}}`` (v1); v1 lists answer ``data: null`` when empty.
- Times: v2 RFC 3339 with seconds; v1 ``YYYY-MM-DD HH:MM:SS`` in UTC.
- E-mails and phones are arrays of ``{value, primary, label}`` (§3.2).
- API tokens are 40 hex characters; OAuth access tokens are not (they are longer and carry a
  version prefix such as ``v1u:``), which is how a connection's credential kind is told apart.
"""

from __future__ import annotations

import datetime as dt
import html
import re
from collections.abc import Iterable, Mapping
from typing import Any

from integrations.connector import ACTIVITY, CONTACT, DEAL, LEAD, TASK
from integrations.errors import ConfigurationError, RetryableError

V2 = "/api/v2"
# Our object kinds -> Pipedrive entities. People are persons whatever the record type (a lead
# connection also files a lead on the person); activities and tasks are activities.
ENTITIES = {
    CONTACT: "person",
    LEAD: "person",
    DEAL: "deal",
    ACTIVITY: "activity",
    TASK: "activity",
    "organization": "organization",
}
COLLECTIONS = {"person": "persons", "deal": "deals", "activity": "activities", "organization": "organizations"}
FIELD_ROUTES = {
    "person": "personFields",
    "deal": "dealFields",
    "activity": "activityFields",
    "organization": "organizationFields",
}

API_TOKEN = re.compile(r"^[0-9a-f]{40}$")
MARKER = re.compile(r"\[capsule:([^\]\s]+)\]")
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def entity(kind: str) -> str:
    try:
        return ENTITIES[kind]
    except KeyError:
        raise ConfigurationError(f"Pipedrive has no object for {kind!r}", code="unknown_object_kind") from None


def is_api_token(token: str) -> bool:
    return bool(API_TOKEN.match(token or ""))


def data_of(answer: Any) -> Any:
    """The ``data`` of a success envelope; a 2xx answer without one is a transient fault."""
    if not isinstance(answer, Mapping) or answer.get("success") is False:
        raise RetryableError("Pipedrive answered without its success envelope", code="bad_body")
    return answer.get("data")


def next_cursor(answer: Any) -> str | None:
    extra = answer.get("additional_data") if isinstance(answer, Mapping) else None
    cursor = extra.get("next_cursor") if isinstance(extra, Mapping) else None
    return str(cursor) if cursor else None


def next_start(answer: Any) -> int | None:
    """v1 paging: ``additional_data.pagination.next_start`` while more items wait."""
    extra = answer.get("additional_data") if isinstance(answer, Mapping) else None
    pagination = extra.get("pagination") if isinstance(extra, Mapping) else None
    if isinstance(pagination, Mapping) and pagination.get("more_items_in_collection"):
        start = pagination.get("next_start")
        return int(start) if isinstance(start, int) else None
    return None


def parse_time(value: Any) -> dt.datetime | None:
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def rfc3339(moment: dt.datetime) -> str:
    """Whole seconds, UTC: Pipedrive's ``updated_since`` takes RFC 3339 (§3.7)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def v1_time(moment: dt.datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def primary(values: Any) -> str:
    """The primary value of an e-mail/phone array (v2 objects), or the first of a string list (search items)."""
    if isinstance(values, str):
        return values
    if not isinstance(values, list) or not values:
        return ""
    for entry in values:
        if isinstance(entry, Mapping) and entry.get("primary"):
            return str(entry.get("value") or "")
    first = values[0]
    return str(first.get("value") or "") if isinstance(first, Mapping) else str(first)


def values_of(values: Any) -> list[str]:
    if not isinstance(values, list):
        return []
    return [str(e.get("value") if isinstance(e, Mapping) else e) for e in values if e]


def _same(kind: str, a: str, b: str) -> bool:
    if kind == "phones":
        return re.sub(r"[^\d+]", "", a) == re.sub(r"[^\d+]", "", b)
    return a.strip().casefold() == b.strip().casefold()


def merged_contacts(kind: str, current: Any, ours: str) -> list[dict[str, Any]] | None:
    """The array to PATCH so ``ours`` is on the person, or None when it already is.

    A value the person lacks becomes the primary one and the others stay as secondary values: a
    changed address updates the person without deleting what a salesperson added (a PATCH with an
    array replaces the whole array).
    """
    existing = [e for e in current or [] if isinstance(e, Mapping) and e.get("value")]
    if any(_same(kind, str(e["value"]), ours) for e in existing):
        return None
    others = [{"value": str(e["value"]), "primary": False, "label": str(e.get("label") or "work")} for e in existing]
    return [{"value": ours, "primary": True, "label": "work"}, *others]


def marker(key: str) -> str:
    return f"[capsule:{key}]"


def marker_keys(text: Any) -> list[str]:
    return MARKER.findall(html.unescape(text)) if isinstance(text, str) else []


def html_text(subject: str, body: str, key: str) -> str:
    """HTML for a note or an activity's note: the subject in bold (unless the body repeats it),
    escaped lines, and our key as a last line (Pipedrive keeps no external id on them)."""
    lines = body.splitlines()
    if subject and lines and lines[0].strip() == subject.strip():
        lines = lines[1:]
    parts = [f"<b>{html.escape(subject)}</b>"] if subject else []
    parts += [html.escape(line) for line in lines]
    parts.append(html.escape(marker(key)))
    return "<br>".join(parts)


def keys_in(items: Iterable[Mapping[str, Any]], field: str) -> dict[str, Any]:
    """Our key -> object id, for objects whose ``field`` ends with a marker (the first one wins)."""
    found: dict[str, Any] = {}
    for item in items:
        for key in marker_keys(item.get(field)):
            found.setdefault(key, item.get("id"))
    return found
