"""Activities, notes, tasks and opportunities written once per key (connector idempotency contract).

Copper has no external ids and no upsert for these objects (crm-reference §6.4), so each one is
found by our key before it is written:

- **Activities and notes** take no custom fields (custom fields exist on people, leads, companies,
  opportunities, projects and tasks only, §6.3), so the key is the last line of ``details``
  (``Capsule key: capsule-evt-12``, keys.py). One ``POST /activities/search`` per batch — our
  activity types, the batch's activity-date range, narrowed to the person when the batch has one
  — finds the keys already written; only the rest are created (``POST /activities`` each).
- **Tasks and opportunities** carry the key in a text custom field ("Capsule event ID" on tasks,
  "Capsule conversion ID" on opportunities), created by the connector when missing (an admin's
  API key may; otherwise a ConfigurationError says what to create). One ``/tasks/search`` or
  ``/opportunities/search`` on that field per item, then a create when nothing matches exactly.

Safe against retries, replays and a crash between calls (the next try finds what was written).
Not against two writers racing on one key at the same moment — the engine never hands one
outbox row to two workers at once. Search results are assumed current; if Copper's search index
lagged its writes, a retry within that lag could write twice (UNVERIFIED).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from integrations.connector import WriteOutcome
from integrations.errors import ConfigurationError, RecordError
from integrations.http import CrmHttp
from integrations.providers.copper.keys import key_in
from integrations.providers.copper.people import record_id

if TYPE_CHECKING:
    from integrations.providers.copper.connector import CopperConnector

SEARCH_PAGE = 200
# Widen the searched date range by a second each side, whatever Copper's bound semantics.
_SLACK = 1


@dataclass(frozen=True)
class ActivityItem:
    key: str
    parent_type: str  # person or lead
    parent_id: str
    type_id: int
    details: str  # already ends with the key line
    activity_date: int


@dataclass(frozen=True)
class KeyedItem:
    """A task or opportunity body (without the key field) and its key."""

    key: str
    body: dict[str, Any]


def _failed(key: str, message: str, code: str) -> WriteOutcome:
    return WriteOutcome(key, error=RecordError(message, code=code))


def write_activities(connector: CopperConnector, items: Sequence[ActivityItem]) -> list[WriteOutcome]:
    outcomes: dict[int, WriteOutcome] = {}
    todo: list[int] = []
    for index, item in enumerate(items):
        if record_id(item.parent_id) is None:
            outcomes[index] = _failed(item.key, "there is no Copper person or lead to attach this to", "no_parent")
        else:
            todo.append(index)
    if todo:
        existing = _existing_activities(connector.http, [items[i] for i in todo])
        first_of_key: dict[str, int] = {}
        to_create: list[int] = []
        for index in todo:
            item = items[index]
            found = existing.get((item.key, item.parent_type, int(item.parent_id)))
            if found is not None:
                outcomes[index] = WriteOutcome(item.key, crm_id=found)
            elif item.key in first_of_key:
                continue  # the same key twice in one batch: written once, answered for both below
            else:
                first_of_key[item.key] = index
                to_create.append(index)

        def create(http: CrmHttp, index: int) -> WriteOutcome:
            item = items[index]
            made = http.json(
                "POST",
                "/activities",
                json={
                    "parent": {"type": item.parent_type, "id": int(item.parent_id)},
                    "type": {"category": "user", "id": item.type_id},
                    "details": item.details,
                    "activity_date": item.activity_date,
                },
            )
            return WriteOutcome(item.key, crm_id=str(made["id"]), created=True)

        for index, result in zip(to_create, connector.parallel(to_create, create), strict=True):
            outcomes[index] = (
                result if isinstance(result, WriteOutcome) else WriteOutcome(items[index].key, error=result)
            )
        for index in todo:
            if index not in outcomes:
                written = outcomes[first_of_key[items[index].key]]
                outcomes[index] = WriteOutcome(items[index].key, crm_id=written.crm_id, error=written.error)
    return [outcomes[i] for i in range(len(items))]


def _existing_activities(http: CrmHttp, items: Sequence[ActivityItem]) -> dict[tuple[str, str, int], str]:
    """Activity ids by (key, parent type, parent id), from one search over the batch's range."""
    body: dict[str, Any] = {
        "activity_types": [{"category": "user", "id": t} for t in sorted({i.type_id for i in items})],
        "minimum_activity_date": min(i.activity_date for i in items) - _SLACK,
        "maximum_activity_date": max(i.activity_date for i in items) + _SLACK,
        "page_size": SEARCH_PAGE,
    }
    parents = {(i.parent_type, int(i.parent_id)) for i in items}
    if len(parents) == 1:
        parent_type, parent_id = next(iter(parents))
        body["parent"] = {"type": parent_type, "id": parent_id}
    wanted = {i.key for i in items}
    found: dict[tuple[str, str, int], str] = {}
    page = 1
    while True:
        answer = http.json("POST", "/activities/search", json={**body, "page_number": page}) or []
        for activity in answer:
            key = key_in(activity.get("details"))
            parent = activity.get("parent") or {}
            if key in wanted:
                found.setdefault((key, str(parent.get("type")), int(parent.get("id") or 0)), str(activity["id"]))
        if len(answer) < SEARCH_PAGE:
            return found
        page += 1


def write_keyed(
    connector: CopperConnector, resource: str, definition: dict[str, Any], items: Sequence[KeyedItem]
) -> list[WriteOutcome]:
    """Tasks or opportunities: found by the key field, else created with it."""
    field_id = definition["id"]
    groups: dict[str, list[int]] = {}
    for index, item in enumerate(items):
        groups.setdefault(item.key, []).append(index)

    def one(http: CrmHttp, key: str) -> WriteOutcome:
        matches = http.json(
            "POST",
            f"/{resource}/search",
            json={"custom_fields": [{"custom_field_definition_id": field_id, "value": key}], "page_size": 25},
        )
        # The filter may match loosely (text search); the key must match exactly.
        exact = sorted(int(r["id"]) for r in matches or [] if _field_value(r, field_id) == key)
        if exact:
            return WriteOutcome(key, crm_id=str(exact[0]))
        body = dict(items[groups[key][0]].body)
        body["custom_fields"] = [*body.get("custom_fields", []), {"custom_field_definition_id": field_id, "value": key}]
        made = http.json("POST", f"/{resource}", json=body)
        return WriteOutcome(key, crm_id=str(made["id"]), created=True)

    keys = list(groups)
    outcomes: dict[int, WriteOutcome] = {}
    for key, result in zip(keys, connector.parallel(keys, one), strict=True):
        for index in groups[key]:
            if isinstance(result, WriteOutcome):
                created = result.created and index == groups[key][0]
                outcomes[index] = WriteOutcome(items[index].key, crm_id=result.crm_id, created=created)
            else:
                outcomes[index] = WriteOutcome(items[index].key, error=result)
    return [outcomes[i] for i in range(len(items))]


def _field_value(record: dict[str, Any], field_id: int) -> Any:
    for item in record.get("custom_fields") or []:
        if item.get("custom_field_definition_id") == field_id:
            return item.get("value")
    return None


def missing_key_field(name: str, entity: str, reason: str) -> ConfigurationError:
    return ConfigurationError(
        f"Copper has no custom field “{name}” on {entity}s and this connection may not create it ({reason}). "
        f"A Copper admin can add it: Settings → Customize → Custom fields → {entity.title()} → a Text Field "
        f"named “{name}”.",
        code="missing_key_field",
    )
