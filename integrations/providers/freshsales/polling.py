"""Changes by polling list views sorted by ``updated_at`` (crm-reference §7.7).

Freshsales has no modified-since filter we can rely on; its list views sort by ``updated_at``
(``GET /contacts/view/{id}?sort=updated_at&sort_type=desc&page=N&per_page=100``; the exact
parameters are UNVERIFIED). The "All …" view of the object is used. With a cursor, pages are read
newest first until a page reaches records older than the cursor's instant; everything after
(instant, id) is then returned oldest first, ``limit`` at a time, ids breaking ties — records
written while we page only move to the front, so nothing at a page boundary is missed (one read
twice is dropped by its id). Without a cursor, the oldest page is read, cut before its last
instant when more follow, so that instant is read whole next time.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

from integrations.connector import ChangeCursor, ChangePage, CrmRecord
from integrations.providers.freshsales import wire

PER_PAGE = 100
MAX_PAGES = 200  # 20,000 changes since one cursor: beyond that the oldest would be out of reach
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

Page = Callable[[int, str], Mapping[str, Any]]  # (page, sort_type) -> the view's answer


def _order(record: CrmRecord) -> tuple[dt.datetime, int]:
    return (record.modified_at or EPOCH, int(record.crm_id) if record.crm_id.isdigit() else 0)


def changes_page(read: Page, resource: str, cursor: ChangeCursor | None, limit: int) -> ChangePage:
    limit = max(1, min(limit, PER_PAGE))
    if cursor is None:
        answer = read(1, "asc")
        records = sorted((wire.flatten(r) for r in answer.get(resource) or []), key=_order)[:limit]
        more = int((answer.get("meta") or {}).get("total_pages") or 1) > 1 or len(answer.get(resource) or []) > limit
        if more and records:
            last = records[-1].modified_at
            earlier = [r for r in records if r.modified_at != last]
            records = earlier or records
        next_cursor = ChangeCursor(records[-1].modified_at or EPOCH, records[-1].crm_id) if records else None
        return ChangePage(records=records, next_cursor=next_cursor, has_more=more)
    since = cursor.modified_at.astimezone(dt.UTC).replace(microsecond=0)
    boundary = (since, int(cursor.last_id) if cursor.last_id.isdigit() else 0)
    newer: dict[str, CrmRecord] = {}
    for page in range(1, MAX_PAGES + 1):
        answer = read(page, "desc")
        rows = [wire.flatten(r) for r in answer.get(resource) or []]
        for record in rows:
            if _order(record) > boundary:
                newer.setdefault(record.crm_id, record)
        reached_older = any((r.modified_at or EPOCH) < since for r in rows)
        if not rows or reached_older or page >= int((answer.get("meta") or {}).get("total_pages") or 1):
            break
    ordered = sorted(newer.values(), key=_order)
    records = ordered[:limit]
    next_cursor = ChangeCursor(records[-1].modified_at or EPOCH, records[-1].crm_id) if records else cursor
    return ChangePage(records=records, next_cursor=next_cursor, has_more=len(ordered) > limit)
