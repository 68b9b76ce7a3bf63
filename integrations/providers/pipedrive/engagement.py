"""Activities, tasks, notes and deals, each written once per key however often a write is retried.

Pipedrive has no external-id upsert for any of them (crm-reference §3.4), so each object carries our
key and is looked up before it is created:

- **Activities and tasks** (API v2 ``/api/v2/activities``): the key is the last line of the
  activity's note, ``[capsule:<key>]``. Pipedrive's API cannot hold it anywhere better: activity
  custom fields can be read through ``/api/v2/activityFields`` but neither created nor written
  through the API (the v2 create endpoints exist for person, deal, organization and product
  fields only, and activity objects carry no ``custom_fields``; client-nodejs CHANGELOG 30.7.0 and
  ``ActivityItem``). Lookup: one ``GET /api/v2/activities?person_id=`` per person in the batch
  (500 per page) — usually one call per batch, since a batch is one person's recent events — then
  one ``POST`` per missing key.
- **Notes** (v1, the only notes API, through pipedrive-python-lib: integrations.providers.
  pipedrive.v1): the same marker ends the note's HTML; one ``GET /v1/notes?person_id=`` per person
  in the batch, then one ``POST /v1/notes`` per missing key.
- **Deals** (API v2): the conversion key is kept in a custom deal field "Capsule conversion id"
  (a 40-character hash, created through ``POST /api/v2/dealFields`` the first time and cached);
  one ``GET /api/v2/deals?person_id=`` finds the person's deal with that key, then one ``POST``
  (new) or one ``PATCH`` (title, value or currency changed), or nothing.

Capsule activity is logged as done activities of a "Capsule" activity type (created once through
``/v1/activityTypes`` when the user may; otherwise Pipedrive's "task" type), dated when the
prospect acted. Two writers racing on one key at the same instant could both miss the other's
object; the engine never runs one outbox row in two workers at once, so that needs a crash, a
lease expiry and a retry inside one round trip.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from integrations.concurrency import run_tasks
from integrations.connector import DealInput, WriteOutcome
from integrations.errors import ConfigurationError, NotFound, RateLimited, RecordError, RetryableError
from integrations.providers.pipedrive.people import WRITE_CONCURRENCY
from integrations.providers.pipedrive.wire import V2, data_of, keys_in, next_cursor, v1_time

if TYPE_CHECKING:
    from integrations.http import CrmHttp
    from integrations.providers.pipedrive.fields import Catalog
    from integrations.providers.pipedrive.v1 import V1

CONVERSION_FIELD = "Capsule conversion id"
ACTIVITY_TYPE = {"name": "Capsule", "icon_key": "signpost"}
FALLBACK_TYPE = "task"
PAGE = 500


@dataclass(frozen=True)
class Keyed:
    """One object to write once: our key, the person it belongs to, and its body."""

    key: str
    person: str
    body: Mapping[str, Any]


def _failed(key: str, error: Exception) -> WriteOutcome:
    return WriteOutcome(key, error=error)  # type: ignore[arg-type]


def _person_id(item: Keyed) -> int | None:
    return int(item.person) if str(item.person).strip().isdigit() else None


class KeyedWriter:
    """Look up the keys a person's objects already carry (one list per person), create the rest."""

    def __init__(
        self,
        list_keys: Callable[[int], dict[str, Any]],
        create: Callable[[Keyed, int], Any],
    ) -> None:
        self.list_keys, self.create = list_keys, create

    def write(self, items: Sequence[Keyed]) -> list[WriteOutcome]:
        outcomes: dict[int, WriteOutcome] = {}
        by_person: dict[int, list[int]] = {}
        for index, item in enumerate(items):
            pid = _person_id(item)
            if pid is None:
                outcomes[index] = _failed(
                    item.key, RecordError("there is no Pipedrive person to attach this to", code="no_person")
                )
            else:
                by_person.setdefault(pid, []).append(index)

        def person_task(pid: int, indices: list[int]):
            def run() -> list[tuple[int, WriteOutcome]]:
                try:
                    existing = self.list_keys(pid)
                except RateLimited:
                    raise
                except (RecordError, RetryableError) as exc:
                    return [(i, _failed(items[i].key, exc)) for i in indices]
                done: list[tuple[int, WriteOutcome]] = []
                for i in indices:
                    key = items[i].key
                    if key in existing:
                        done.append((i, WriteOutcome(key, crm_id=str(existing[key]))))
                        continue
                    try:
                        made = self.create(items[i], pid)
                    except RateLimited:
                        raise
                    except (RecordError, RetryableError) as exc:
                        done.append((i, _failed(key, exc)))
                        continue
                    existing[key] = made
                    done.append((i, WriteOutcome(key, crm_id=str(made), created=True)))
                return done

            return run

        tasks = [person_task(pid, indices) for pid, indices in by_person.items()]
        for result in run_tasks(tasks, workers=WRITE_CONCURRENCY, thread_name="pipedrive"):
            outcomes.update(result or [])
        return [outcomes[i] for i in range(len(items))]


# -- per-process caches: the activity type and the deal key field, per API host and token ------------

_cached: dict[tuple[str, str, str], Any] = {}
_cached_lock = threading.Lock()
_ensure_lock = threading.Lock()  # one thread at a time looks up (and maybe creates) the type or field


def forget_cached() -> None:
    with _cached_lock:
        _cached.clear()


def _cache_key(http: CrmHttp, token: str, what: str) -> tuple[str, str, str]:
    return (http.base_url, hashlib.sha256(token.encode()).hexdigest()[:16], what)


class Engagement:
    def __init__(self, http: CrmHttp, v1: V1, deal_fields: Catalog, token: str) -> None:
        self.http, self.v1, self.deal_fields, self.token = http, v1, deal_fields, token

    # -- activities and tasks ------------------------------------------------------------------------
    def activity_type(self) -> str:
        with _ensure_lock:
            return self._activity_type()

    def _activity_type(self) -> str:
        """The key_string of our "Capsule" activity type, made once if the user may (else "task")."""
        cache_key = _cache_key(self.http, self.token, "activity_type")
        with _cached_lock:
            if cache_key in _cached:
                return _cached[cache_key]
        types = self.v1.activity_types()
        found = next(
            (
                t
                for t in types
                if t.get("active_flag", True)
                and str(t.get("name") or "").casefold() == ACTIVITY_TYPE["name"].casefold()
            ),
            None,
        )
        if found is None:
            try:
                found = self.v1.add_activity_type(dict(ACTIVITY_TYPE))
            except ConfigurationError:  # not an admin: log capsule activity as done tasks instead
                found = {"key_string": FALLBACK_TYPE}
        key = str(found.get("key_string") or FALLBACK_TYPE)
        with _cached_lock:
            _cached[cache_key] = key
        return key

    def activity_keys(self, pid: int) -> dict[str, Any]:
        items: list[Mapping[str, Any]] = []
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"person_id": pid, "limit": PAGE}
            if cursor:
                params["cursor"] = cursor
            answer = self.http.json("GET", f"{V2}/activities", params=params)
            items += [a for a in data_of(answer) or [] if isinstance(a, Mapping)]
            cursor = next_cursor(answer)
            if not cursor:
                return keys_in(items, "note")

    def create_activity(self, item: Keyed, pid: int) -> Any:
        made = data_of(self.http.json("POST", f"{V2}/activities", json={**item.body, "person_id": pid})) or {}
        if not made.get("id"):
            raise RetryableError("Pipedrive answered the new activity without its id", code="no_result")
        return made["id"]

    def activities(self, items: Sequence[Keyed]) -> list[WriteOutcome]:
        return KeyedWriter(self.activity_keys, self.create_activity).write(items)

    # -- notes (v1) ----------------------------------------------------------------------------------
    def note_keys(self, pid: int) -> dict[str, Any]:
        return keys_in(self.v1.notes_of_person(pid), "content")

    def create_note(self, item: Keyed, pid: int) -> Any:
        made = self.v1.add_note({**item.body, "person_id": pid})
        if not made.get("id"):
            raise RetryableError("Pipedrive answered the new note without its id", code="no_result")
        return made["id"]

    def notes(self, items: Sequence[Keyed]) -> list[WriteOutcome]:
        return KeyedWriter(self.note_keys, self.create_note).write(items)

    # -- deals ---------------------------------------------------------------------------------------
    def conversion_field(self) -> str:
        with _ensure_lock:
            return self._conversion_field()

    def _conversion_field(self) -> str:
        """The hash of our "Capsule conversion id" deal field, created if the company lacks it."""
        cache_key = _cache_key(self.http, self.token, "conversion_field")
        with _cached_lock:
            if cache_key in _cached:
                return _cached[cache_key]
        found = self.deal_fields.custom_named(CONVERSION_FIELD)
        if found is None:
            try:
                made = (
                    data_of(
                        self.http.json(
                            "POST", f"{V2}/dealFields", json={"field_name": CONVERSION_FIELD, "field_type": "varchar"}
                        )
                    )
                    or {}
                )
            except ConfigurationError as exc:
                raise ConfigurationError(
                    f"Pipedrive has no deal field “{CONVERSION_FIELD}” and this connection may not create it "
                    f"({exc.message}). Grant the app deal-fields:full, or create a text deal field named "
                    f"“{CONVERSION_FIELD}” in Pipedrive.",
                    status=exc.status,
                    code="missing_key_field",
                ) from None
            self.deal_fields.forget()
            code = str(made.get("field_code") or "")
        else:
            code = found.code
        if not code:
            raise RetryableError("Pipedrive answered the new deal field without its field_code", code="no_result")
        with _cached_lock:
            _cached[cache_key] = code
        return code

    def upsert_deal(self, deal: DealInput) -> WriteOutcome:
        if not str(deal.person_crm_id).strip().isdigit():
            return _failed(
                deal.key, RecordError("there is no Pipedrive person to attach this deal to", code="no_person")
            )
        pid = int(deal.person_crm_id)
        code = self.conversion_field()
        try:
            existing = self._deal_with_key(pid, code, deal.key)
            body = deal_body(deal)
            if existing is None:
                made = (
                    data_of(
                        self.http.json(
                            "POST", f"{V2}/deals", json={**body, "person_id": pid, "custom_fields": {code: deal.key}}
                        )
                    )
                    or {}
                )
                if not made.get("id"):
                    raise RetryableError("Pipedrive answered the new deal without its id", code="no_result")
                return WriteOutcome(deal.key, crm_id=str(made["id"]), created=True)
            changed = {k: v for k, v in body.items() if k in ("title", "value", "currency") and existing.get(k) != v}
            if changed:
                self.http.json("PATCH", f"{V2}/deals/{existing['id']}", json=changed)
            return WriteOutcome(deal.key, crm_id=str(existing["id"]))
        except RateLimited:
            raise
        except (RecordError, RetryableError) as exc:
            return _failed(deal.key, exc)

    def _deal_with_key(self, pid: int, code: str, key: str) -> Mapping[str, Any] | None:
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"person_id": pid, "limit": PAGE}
            if cursor:
                params["cursor"] = cursor
            try:
                answer = self.http.json("GET", f"{V2}/deals", params=params)
            except NotFound:
                return None
            for found in data_of(answer) or []:
                if isinstance(found, Mapping) and (found.get("custom_fields") or {}).get(code) == key:
                    return found
            cursor = next_cursor(answer)
            if not cursor:
                return None


def deal_body(deal: DealInput) -> dict[str, Any]:
    """A won deal unless a stage is given (a Pipedrive stage id: then an open deal in that stage)."""
    body: dict[str, Any] = {"title": deal.name[:255]}
    if deal.amount is not None:
        body["value"] = deal.amount
    if deal.currency:
        body["currency"] = deal.currency.upper()
    if deal.stage and str(deal.stage).isdigit():
        body.update(stage_id=int(deal.stage), status="open")
    else:
        body["status"] = "won"
    if deal.close_date is not None:
        body["expected_close_date"] = deal.close_date.isoformat()
    return body


def note_body(html_content: str, occurred_at: Any) -> dict[str, Any]:
    return {"content": html_content, "add_time": v1_time(occurred_at)}
