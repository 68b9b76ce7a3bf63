"""Polling Copper for changed records (crm-reference §6.2, §6.7).

Copper's webhooks are not retried and can lag by minutes, so polling by modification time is the
safety net: ``POST /<resource>/search`` with ``minimum_modified_date`` (Unix seconds, inclusive)
sorted by ``date_modified`` ascending, 200 a page.

Copper cannot sort by id, and many records share one second (imports, bulk edits), so the page is
cut where it is safe: records are read in modification order and only those *before* the last
second seen are complete — the last second may continue on the next page. Pages are read until
``limit`` complete records are in hand or the results end; then the records after the cursor
(time, then id as a number) are returned in that order, with the cursor of the last one. A
second with more records than a page is read whole across pages. Each call starts a fresh query
at the cursor (no stored page number), so the 100,000-results-per-search cap never binds.
Assumed (UNVERIFIED): Copper keeps the order of records sharing a second stable between the
pages of one query.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from integrations.connector import ChangeCursor, ChangePage, CrmRecord
from integrations.providers.copper import wire

PAGE_SIZE = 200

Search = Callable[[dict[str, Any]], list[Mapping[str, Any]]]


def _position(record: CrmRecord) -> tuple[int, int]:
    return (wire.to_unix(record.modified_at) or 0, int(record.crm_id) if record.crm_id.isdigit() else 0)


def changes_page(
    search: Search, flatten: Callable[[Mapping[str, Any]], CrmRecord], cursor: ChangeCursor | None, limit: int
) -> ChangePage:
    limit = max(1, limit)
    since = wire.to_unix(cursor.modified_at) if cursor else 0
    # A cursor without an id takes everything from its second on.
    after = (since or 0, int(cursor.last_id) if cursor and cursor.last_id.isdigit() else -1)
    body = {"minimum_modified_date": since or 0, "sort_by": "date_modified", "sort_direction": "asc"}
    collected: list[CrmRecord] = []
    page, ended = 1, False
    while True:
        rows = search({**body, "page_size": PAGE_SIZE, "page_number": page})
        collected.extend(flatten(row) for row in rows)
        ended = len(rows) < PAGE_SIZE
        last_second = max((_position(r)[0] for r in collected), default=0)
        complete = [r for r in collected if ended or _position(r)[0] < last_second]
        if ended or sum(1 for r in complete if _position(r) > after) >= limit:
            break
        page += 1
    fresh = sorted({r.crm_id: r for r in complete if _position(r) > after}.values(), key=_position)
    chosen = fresh[:limit]
    next_cursor = ChangeCursor(chosen[-1].modified_at or wire.from_unix(0), chosen[-1].crm_id) if chosen else cursor
    return ChangePage(records=chosen, next_cursor=next_cursor, has_more=len(fresh) > limit or not ended)
