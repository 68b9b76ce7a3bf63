"""Writes keyed by our own id (capsule event id, trigger firing id, conversion id), so a retry
finds what the first attempt made instead of making it twice (crm-reference §5.4).

- Activities and tasks are Dataverse ``tasks`` carrying the key in the custom attribute
  ``new_capsuleeventid`` (made on first use). A timeline entry is a completed task
  (``statecode`` 1, ``statuscode`` 5, ``actualend`` = when it happened); a trigger's task is open,
  due at ``scheduledend``. Tasks (not phone calls) because a capsule view is not a call, and the
  task is the activity Dynamics shows on every timeline without a channel of its own.
  Calls: one ``GET tasks?$filter=new_capsuleeventid eq … or …`` per 100 keys, then one ``$batch``
  creating the missing ones. Keys found are answered with the task made the first time.
- Notes are ``annotations`` on the person (``objectid_<entity>@odata.bind``) whose title carries the
  key as a marker, ``[<key>] Capsule note``: one query per 100 keys, one ``$batch``.
- Deals are ``opportunities`` keyed by ``new_capsuleconversionid``: one query, then one PATCH
  (``If-Match: *``) of the one found or one POST.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from integrations.connector import WriteOutcome
from integrations.errors import ConfigurationError
from integrations.http import CrmHttp
from integrations.providers.dynamics import batch, schema, wire

EVENT_KEY = "new_capsuleeventid"
CONVERSION_KEY = "new_capsuleconversionid"
KEY_LABELS = {EVENT_KEY: "Capsule Event Id", CONVERSION_KEY: "Capsule Conversion Id"}
NOTE_TITLE = "[{key}] Capsule note"

_known: set[tuple[str, str, str]] = set()
_known_lock = threading.Lock()


def forget_key_attributes() -> None:
    """Tests reset their org; the next write checks the key attributes again."""
    with _known_lock:
        _known.clear()


def ensure_key_attribute(http: CrmHttp, entity_name: str, name: str) -> None:
    """The custom attribute holding our key exists (checked once per process and org)."""
    marker = (http.base_url, entity_name, name)
    with _known_lock:
        if marker in _known:
            return
    if not schema.exists(http, entity_name, name):
        schema.create(http, entity_name, schema.attribute_definition(name, KEY_LABELS[name], "string", max_length=100))
        if not schema.exists(http, entity_name, name):
            raise ConfigurationError(
                f"Dynamics 365 did not create the {name} column on {entity_name}; create it by hand "
                f"(Single line of text, 100 characters)",
                code="no_key_attribute",
            )
    with _known_lock:
        _known.add(marker)


def lookup(
    http: CrmHttp, entity_set: str, primary: str, field: str, values: Sequence[str], chunk: int = 100
) -> dict[str, str]:
    """value → id of the first row holding it."""
    found: dict[str, str] = {}
    wanted = list(dict.fromkeys(v for v in values if v))
    for start in range(0, len(wanted), chunk):
        part = wanted[start : start + chunk]
        answer = (
            http.json(
                "GET",
                wire.api(entity_set),
                headers=wire.HEADERS,
                params={
                    "$select": f"{primary},{field}",
                    "$filter": " or ".join(f"{field} eq {wire.quote(v)}" for v in part),
                },
            )
            or {}
        )
        for raw in answer.get("value", []):
            value = str(raw.get(field) or "")
            exact = next((v for v in part if v.lower() == value.lower()), None)
            if exact is not None and exact not in found:
                found[exact] = str(raw[primary])
    return found


@dataclass(frozen=True)
class Keyed:
    key: str
    marker: str  # the value stored in ``field`` (the key itself, or a note title)
    body: dict[str, Any]


def write_keyed(
    http: CrmHttp, entity_set: str, primary: str, field: str, items: Sequence[Keyed], chunk: int = 100
) -> list[WriteOutcome]:
    """Create the items whose marker is not in Dynamics yet; one outcome per item, in order."""
    existing = lookup(http, entity_set, primary, field, [i.marker for i in items], chunk)
    operations, owners = [], []
    first_of: dict[str, int] = {}
    for position, item in enumerate(items):
        if item.marker in existing or item.marker in first_of:
            continue
        first_of[item.marker] = position
        operations.append(batch.Operation("POST", entity_set, item.body))
        owners.append(item.marker)
    answers = batch.run(http, operations) if operations else []
    made: dict[str, WriteOutcome] = {}
    for marker, answer in zip(owners, answers, strict=True):
        key = items[first_of[marker]].key
        made[marker] = (
            WriteOutcome(key, error=answer.error)
            if answer.error is not None
            else WriteOutcome(key, crm_id=answer.entity_id(), created=True)
        )
    outcomes = []
    for position, item in enumerate(items):
        if item.marker in existing:
            outcomes.append(WriteOutcome(item.key, crm_id=existing[item.marker]))
            continue
        outcome = made[item.marker]
        if first_of[item.marker] != position:
            outcome = WriteOutcome(item.key, crm_id=outcome.crm_id, error=outcome.error)
        outcomes.append(outcome)
    return outcomes


def regarding(prefix: str, person_set: str, person_entity: str, person_id: str, activity: str = "") -> dict[str, str]:
    """The polymorphic lookup bind, e.g. ``regardingobjectid_contact_task@odata.bind``."""
    suffix = f"_{activity}" if activity else ""
    return {f"{prefix}_{person_entity}{suffix}@odata.bind": f"/{person_set}({person_id})"}


def upsert_one(
    http: CrmHttp, entity_set: str, primary: str, field: str, key: str, body: dict[str, Any], ensure: Callable[[], None]
) -> WriteOutcome:
    ensure()
    existing = lookup(http, entity_set, primary, field, [key]).get(key)
    if existing:
        http.request(
            "PATCH",
            wire.api(f"{entity_set}({existing})"),
            json=body,
            headers={**wire.HEADERS, "Content-Type": "application/json", "If-Match": "*"},
        )
        return WriteOutcome(key, crm_id=existing)
    response = http.request(
        "POST",
        wire.api(entity_set),
        json={**body, field: key},
        headers={**wire.HEADERS, "Content-Type": "application/json"},
    )
    answer = batch.Answer(response.status_code, {k.lower(): v for k, v in response.headers.items()}, response.content)
    return WriteOutcome(key, crm_id=answer.entity_id(), created=True)
