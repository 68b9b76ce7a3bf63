"""Reading HubSpot changes by polling search on the modification time (crm-reference §2.7).

HubSpot's search takes one sort rule, so records sharing a modification time come back in no
promised order. A page is therefore read in modification order and cut where that is safe:

- the query asks for (modified == cursor time AND id > cursor id) OR (modified > cursor time);
- when more results wait and the page ends inside one instant, that last instant is dropped
  from the page and read whole on the next call;
- when one instant fills a whole page, that instant is read alone sorted by ``hs_object_id``
  (an order search can give), continuing after the cursor id.

So no record at a page boundary is missed or repeated. Each call starts a fresh query from the
cursor, never a stored ``after`` token, so the 10,000-results-per-query cap never applies.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from integrations.connector import ChangeCursor, ChangePage, CrmRecord
from integrations.providers.hubspot.wire import EPOCH, epoch_ms, modified_property, parse_time

SEARCH_PAGE_LIMIT = 200  # search answers at most 200 results per page [spec contacts.json]

Search = Callable[[dict[str, Any]], Mapping[str, Any]]


def _filter(name: str, operator: str, value: Any) -> dict[str, str]:
    return {"propertyName": name, "operator": operator, "value": str(value)}


def _records(answer: Mapping[str, Any], modified: str) -> list[CrmRecord]:
    records = []
    for result in answer.get("results") or []:
        props = result.get("properties") or {}
        when = parse_time(props.get(modified)) or parse_time(result.get("updatedAt"))
        records.append(CrmRecord(crm_id=str(result["id"]), fields=dict(props), modified_at=when))
    return records


def _order(record: CrmRecord) -> tuple[Any, int]:
    return (record.modified_at or EPOCH, int(record.crm_id) if record.crm_id.isdigit() else 0)


def _has_more(answer: Mapping[str, Any]) -> bool:
    return bool(((answer.get("paging") or {}).get("next") or {}).get("after"))


def changes_page(
    search: Search,
    hubspot_type: str,
    cursor: ChangeCursor | None,
    limit: int,
    properties: Sequence[str],
) -> ChangePage:
    modified = modified_property(hubspot_type)
    limit = max(1, min(limit, SEARCH_PAGE_LIMIT))
    wanted = sorted({*properties, modified, "hs_object_id"})
    start = epoch_ms(cursor.modified_at) if cursor else 0
    if cursor and cursor.last_id:
        groups = [
            {"filters": [_filter(modified, "EQ", start), _filter("hs_object_id", "GT", cursor.last_id)]},
            {"filters": [_filter(modified, "GT", start)]},
        ]
    else:
        groups = [{"filters": [_filter(modified, "GTE", start)]}]
    answer = search(
        {
            "filterGroups": groups,
            "sorts": [{"propertyName": modified, "direction": "ASCENDING"}],
            "properties": wanted,
            "limit": limit,
        }
    )
    records = sorted(_records(answer, modified), key=_order)
    more = _has_more(answer)
    if more and records:
        last = records[-1].modified_at
        earlier = [r for r in records if r.modified_at != last]
        if earlier:
            records = earlier  # the last instant may go on past this page: read it whole next time
        else:
            records = _one_instant(search, modified, wanted, limit, last, cursor)
            more = True
    next_cursor = ChangeCursor(records[-1].modified_at or EPOCH, records[-1].crm_id) if records else cursor
    return ChangePage(records=records, next_cursor=next_cursor, has_more=more)


def _one_instant(
    search: Search, modified: str, wanted: list[str], limit: int, instant: Any, cursor: ChangeCursor | None
) -> list[CrmRecord]:
    """Records of one modification instant in id order, after the cursor's id when it is that instant."""
    at = epoch_ms(instant or EPOCH)
    filters = [_filter(modified, "EQ", at)]
    if cursor and cursor.last_id and epoch_ms(cursor.modified_at) == at:
        filters.append(_filter("hs_object_id", "GT", cursor.last_id))
    answer = search(
        {
            "filterGroups": [{"filters": filters}],
            "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
            "properties": wanted,
            "limit": limit,
        }
    )
    return sorted(_records(answer, modified), key=_order)
