"""Activities, notes, tasks and deals written once per key (connector idempotency contract).

Close has no external ids and no upsert for these, so each is found by our key before it is made
(crm-reference §8.3, §8.4):

- **Activities** (capsule views, content opened, CTA clicks…) are Custom Activities of our type
  "Capsule engagement", whose activity custom fields hold our key ("Capsule event ID"), the
  subject and the details. Activity custom fields exist only on Custom Activity Types (spec:
  "Activity Custom Fields belong to Custom Activities"), which is why activities are not notes;
  they are not calls either (nobody phoned) nor meetings (those come from calendars and the API
  cannot create them). The type (``api_create_only``, so reps cannot fake one) and its fields are
  created the first time, if missing.
- **Notes** are Note activities; a note cannot carry custom fields, so the key leads its title
  (``[capsule-evt-12] Question asked in …``), as the Salesforce connector does for Notes.
- **Tasks** are lead tasks whose text starts with ``[key]`` (tasks have no custom fields).
- **Deals** are opportunities keyed by an opportunity custom field "Capsule conversion ID".

Lookups per batch: the contacts' leads come from one search per 100 contacts; activities and
notes already written are listed with one ``GET /activity/?lead_id__in=…`` per 50 leads, bounded
by the batch's ``activity_at`` range (we set ``activity_at`` to the event's time, so a replay
falls in it); tasks with one ``GET /task/?lead_id=`` per lead (``/task/`` filters one lead at a
time); a deal with one ``GET /opportunity/?lead_id=``. Then one create per missing object.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from integrations.connector import WriteOutcome
from integrations.errors import ConfigurationError, NotFound, RecordError
from integrations.http import CrmHttp
from integrations.providers.close.schema import CustomFields

ACTIVITY_TYPE = "Capsule engagement"
ACTIVITY_TYPE_DESCRIPTION = "Capsule engagement synced by Capsule CRM Sync (one per capsule event)."
KEY_FIELD = "Capsule event ID"
SUBJECT_FIELD = "Capsule event"
DETAILS_FIELD = "Capsule event details"
DEAL_KEY_FIELD = "Capsule conversion ID"
LEADS_PER_LIST = 50  # lead ids per /activity/?lead_id__in= call, to keep the URL short
WINDOW_MARGIN = dt.timedelta(seconds=1)
_KEY_PREFIX = re.compile(r"^\[([^\]\s]+)\]")


def key_prefix(key: str, text: str) -> str:
    return f"[{key}] {text}".strip()


def key_of(text: Any) -> str | None:
    match = _KEY_PREFIX.match(str(text or ""))
    return match.group(1) if match else None


@dataclass(frozen=True)
class ActivityType:
    type_id: str
    key_field: str  # cf ids
    subject_field: str
    details_field: str


_types: dict[tuple[str, str], ActivityType] = {}
_types_lock = threading.Lock()


def forget_types() -> None:
    with _types_lock:
        _types.clear()


class ActivityTypes:
    """Our Custom Activity Type and its fields, made when missing and remembered per process."""

    def __init__(self, http: CrmHttp, fields: CustomFields, token: str) -> None:
        self.http = http
        self.fields = fields
        self._key = (http.base_url, hashlib.sha256(token.encode()).hexdigest()[:16])

    def get(self) -> ActivityType:
        with _types_lock:
            known = _types.get(self._key)
        if known is not None:
            return known
        answer = self.http.json("GET", "custom_activity/") or {}
        found = next((t for t in answer.get("data") or [] if t.get("name") == ACTIVITY_TYPE), None)
        if found is None:
            found = self._create_type()
        type_id = str(found["id"])
        have = {str(f.get("name")): str(f.get("id")) for f in found.get("fields") or []}
        ids = {}
        for name, close_type in ((KEY_FIELD, "text"), (SUBJECT_FIELD, "text"), (DETAILS_FIELD, "textarea")):
            ids[name] = have.get(name) or str(
                self.fields.ensure("activity", name, close_type, custom_activity_type_id=type_id)["id"]
            )
        known = ActivityType(type_id, ids[KEY_FIELD], ids[SUBJECT_FIELD], ids[DETAILS_FIELD])
        with _types_lock:
            _types[self._key] = known
        return known

    def forget(self) -> None:
        with _types_lock:
            _types.pop(self._key, None)

    def _create_type(self) -> Mapping[str, Any]:
        try:
            return (
                self.http.json(
                    "POST",
                    "custom_activity/",
                    json={"name": ACTIVITY_TYPE, "description": ACTIVITY_TYPE_DESCRIPTION, "api_create_only": True},
                )
                or {}
            )
        except RecordError:
            answer = self.http.json("GET", "custom_activity/") or {}  # made meanwhile by another worker
            found = next((t for t in answer.get("data") or [] if t.get("name") == ACTIVITY_TYPE), None)
            if found is None:
                raise
            return found
        except ConfigurationError as exc:
            raise ConfigurationError(
                f"Close refused to create the Custom Activity Type “{ACTIVITY_TYPE}” ({exc.message}). Create it "
                f"in Close (Settings → Custom Activities) with the text fields “{KEY_FIELD}” (required), "
                f"“{SUBJECT_FIELD}” and “{DETAILS_FIELD}”.",
                status=exc.status,
                code="missing_activity_type",
            ) from None


def activity_window(moments: Sequence[dt.datetime]) -> dict[str, str]:
    """The ``activity_at`` range of a batch, with a margin for Close's rounding."""
    low, high = min(moments) - WINDOW_MARGIN, max(moments) + WINDOW_MARGIN
    return {
        "activity_at__gte": low.astimezone(dt.UTC).isoformat(),
        "activity_at__lte": high.astimezone(dt.UTC).isoformat(),
    }


def list_pages(http: CrmHttp, path: str, params: Mapping[str, Any], page_size: int) -> Iterator[Mapping[str, Any]]:
    """Every row of a ``{"data", "has_more"}`` list, page by page."""
    skip = 0
    while True:
        answer = http.json("GET", path, params={**params, "_skip": skip, "_limit": page_size}) or {}
        yield from (row for row in answer.get("data") or [] if isinstance(row, Mapping))
        if not answer.get("has_more"):
            return
        skip += page_size


def existing_activities(
    http: CrmHttp,
    lead_ids: Sequence[str],
    moments: Sequence[dt.datetime],
    key_of_row: Callable[[Mapping[str, Any]], str | None],
    fields: Sequence[str],
    page_size: int,
) -> dict[str, str]:
    """Our key → activity id for the activities already on these leads within the batch's window."""
    found: dict[str, str] = {}
    unique = sorted(set(lead_ids))
    for start in range(0, len(unique), LEADS_PER_LIST):
        params = {
            "lead_id__in": ",".join(unique[start : start + LEADS_PER_LIST]),
            "_fields": ",".join(["id", "_type", "lead_id", *fields]),
            **activity_window(moments),
        }
        for row in list_pages(http, "activity/", params, page_size):
            key = key_of_row(row)
            if key and key not in found:
                found[key] = str(row["id"])
    return found


def missing_contact(key: str, contact_id: str) -> WriteOutcome:
    return WriteOutcome(
        key, error=NotFound(f"the Close contact {contact_id} no longer exists", code="contact_gone", status=404)
    )
