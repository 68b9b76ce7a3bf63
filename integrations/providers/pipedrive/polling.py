"""Polling Pipedrive for changes: v2 lists by ``update_time`` with an id tie-break (crm-reference §3.7).

``GET /api/v2/persons`` (or deals) with ``updated_since=<cursor time>`` (inclusive, whole seconds),
``sort_by=update_time`` ascending, 500 per page, following ``next_cursor``. Records at the cursor's
second with an id at or below the cursor's are the ones already returned and are skipped.

Pipedrive promises no order among records sharing one ``update_time``, so a page is only cut
where that is safe: pages are read until the records beyond ``limit`` start a later second (so
the last second read is complete), then sorted by (time, id) and cut at ``limit``; the cursor is
the (time, id) of the last record returned. Each call starts a fresh query from the cursor.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

from integrations.connector import ChangeCursor, ChangePage, CrmRecord
from integrations.providers.pipedrive.wire import EPOCH, data_of, next_cursor, parse_time, rfc3339

PAGE = 500

Fetch = Callable[[dict[str, Any]], Mapping[str, Any]]


def _key(record: CrmRecord) -> tuple[dt.datetime, int]:
    return (record.modified_at or EPOCH, int(record.crm_id) if record.crm_id.isdigit() else 0)


def _after(record: CrmRecord, cursor: ChangeCursor | None) -> bool:
    if cursor is None:
        return True
    at = record.modified_at or EPOCH
    since = cursor.modified_at if cursor.modified_at.tzinfo else cursor.modified_at.replace(tzinfo=dt.UTC)
    if at != since:
        return at > since
    last = int(cursor.last_id) if str(cursor.last_id).isdigit() else -1
    return _key(record)[1] > last


def changes_page(
    fetch: Fetch, to_record: Callable[[Mapping[str, Any]], CrmRecord], cursor: ChangeCursor | None, limit: int
) -> ChangePage:
    limit = max(1, min(limit, PAGE))
    params: dict[str, Any] = {"sort_by": "update_time", "sort_direction": "asc", "limit": PAGE}
    if cursor is not None:
        params["updated_since"] = rfc3339(cursor.modified_at)
    records: list[CrmRecord] = []
    more = False
    while True:
        answer = fetch(dict(params))
        records += [
            r
            for r in (to_record(raw) for raw in data_of(answer) or [] if isinstance(raw, Mapping))
            if _after(r, cursor)
        ]
        page_cursor = next_cursor(answer)
        records.sort(key=_key)
        if len(records) > limit and _key(records[-1])[0] > _key(records[limit - 1])[0]:
            more = True
            break  # the second of the limit-th record is complete
        if not page_cursor:
            more = len(records) > limit
            break
        params["cursor"] = page_cursor
    chosen = records[:limit]
    next_at = ChangeCursor(chosen[-1].modified_at or EPOCH, chosen[-1].crm_id) if chosen else cursor
    return ChangePage(records=chosen, next_cursor=next_at, has_more=more)


def record_time(raw: Mapping[str, Any]) -> dt.datetime | None:
    return parse_time(raw.get("update_time"))
