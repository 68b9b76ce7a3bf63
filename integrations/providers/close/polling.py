"""Reading Close changes by modification time, with an id tie-break (crm-reference §8.7).

Contacts and leads are read through Advanced Filtering (``GET /contact/`` filters only by lead):
``date_updated`` on or after the cursor's time, sorted by ``date_updated``, cursor-paged.
Opportunities through ``GET /opportunity/?date_updated__gte=…&_order_by=date_updated``.

Records sharing one ``date_updated`` come back in no promised order, so a page is never cut inside
an instant as the server ordered it: reading goes on until the instant of the page's last record
is complete, then the records are ordered by (time, id) and cut there. The next call starts at
that time and skips ids up to the cursor's id within it. No record at a boundary is missed or
repeated; an instant holding thousands of records is read whole on each call that reaches it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from integrations.connector import ChangeCursor, ChangePage, CrmRecord

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _utc(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def page(records: Iterable[CrmRecord], cursor: ChangeCursor | None, limit: int) -> ChangePage:
    """The next ``limit`` records after ``cursor`` from a stream in ``date_updated`` order."""
    limit = max(1, limit)
    start = _utc(cursor.modified_at) if cursor else EPOCH
    taken: list[CrmRecord] = []
    more = False
    for record in records:
        at = _utc(record.modified_at or EPOCH)
        if at < start or (cursor and at == start and record.crm_id <= cursor.last_id):
            continue
        taken.append(record)
        if len(taken) > limit and _utc(taken[-1].modified_at or EPOCH) > _utc(taken[limit - 1].modified_at or EPOCH):
            more = True  # the instant of the page's last record is complete: stop reading
            break
    taken.sort(key=lambda r: (_utc(r.modified_at or EPOCH), r.crm_id))
    more = more or len(taken) > limit
    chosen = taken[:limit]
    if not chosen:
        return ChangePage(records=[], next_cursor=cursor, has_more=False)
    last = chosen[-1]
    return ChangePage(
        records=chosen, next_cursor=ChangeCursor(_utc(last.modified_at or EPOCH), last.crm_id), has_more=more
    )


def search_query(object_type: str, since: dt.datetime) -> dict[str, Any]:
    return {
        "type": "and",
        "queries": [
            {"type": "object_type", "object_type": object_type},
            {
                "type": "field_condition",
                "field": {"type": "regular_field", "object_type": object_type, "field_name": "date_updated"},
                "condition": {
                    "type": "moment_range",
                    "on_or_after": {"type": "fixed_utc", "value": _utc(since).astimezone(dt.UTC).isoformat()},
                },
            },
        ],
    }


def oldest_first(object_type: str) -> list[dict[str, Any]]:
    field = {"type": "regular_field", "object_type": object_type, "field_name": "date_updated"}
    return [{"direction": "asc", "field": field}]


def records(rows: Iterable[Mapping[str, Any]], to_record: Callable[[Mapping[str, Any]], CrmRecord]):
    return (to_record(row) for row in rows)
