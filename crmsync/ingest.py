"""Storing capsule events: one database transaction per request, set-based for 500-event batches.

``ingest_events`` takes events that passed ``crmsync.api.schemas`` validation and, in one
transaction:

1. drops events of suppressed (erased) e-mail addresses and event ids already stored (one query);
2. creates missing capsules; creates or locks the visitors, then the prospects (by normalised
   e-mail);
3. attaches a visitor to its prospect the first time an event names both, and with it every
   earlier anonymous event of that visitor (stitching); a known visitor's anonymous events go
   straight to its prospect;
4. merges the events' prospect data into the prospects (see ``_merge``);
5. inserts the events with ``INSERT … ON CONFLICT DO NOTHING RETURNING``, so two requests
   carrying the same event id store it once whatever their timing;
6. calls the registered ingest hooks (below) with what was created.

Locking: visitors, then prospects, each in one statement sorted by its unique key
(``crmsync.ingest_sql.insert_or_lock``), so concurrent requests for the same people queue behind
each other instead of deadlocking; erasure takes the same locks in the same order. The visitor
lock is what makes stitching safe: an anonymous event is stored either before the visitor is
identified (and then stitched) or after (and then attached directly), never in between.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, Literal

from django.db import router, transaction
from django.utils import timezone
from nameparser import HumanName

from crmsync.api.schemas import ValidatedEvent
from crmsync.ingest_sql import case_by_key, find_existing, insert_new, insert_or_lock, update_rows
from crmsync.models import Account, Capsule, Event, Prospect, Visitor, suppression_hash

log = logging.getLogger(__name__)

Status = Literal["created", "duplicate", "suppressed"]
CREATED: Status = "created"
DUPLICATE: Status = "duplicate"
SUPPRESSED: Status = "suppressed"

_EVENT_ATTNAMES = [field.attname for field in Event._meta.concrete_fields]  # "id" first
# Rows per INSERT statement: stays well below SQLite's (32766) and PostgreSQL's (65535) parameter limits.
INSERT_CHUNK = 500


@dataclass(frozen=True)
class EventOutcome:
    event_id: str
    status: Status
    prospect_id: int | None


@dataclass(frozen=True)
class IngestResult:
    outcomes: list[EventOutcome]  # one per event given, in the same order

    def _count(self, status: Status) -> int:
        return sum(1 for outcome in self.outcomes if outcome.status == status)

    @property
    def accepted(self) -> int:
        return self._count(CREATED)

    @property
    def duplicates(self) -> int:
        return self._count(DUPLICATE)

    @property
    def suppressed(self) -> int:
        return self._count(SUPPRESSED)

    def as_dict(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "suppressed": self.suppressed,
            "results": [
                {"event_id": o.event_id, "status": o.status, "prospect_id": o.prospect_id} for o in self.outcomes
            ],
        }


# --- extension point ----------------------------------------------------------------------------

IngestHook = Callable[[Account, list[Event], dict[int, Prospect]], None]
_hooks: list[IngestHook] = []


def register_ingest_hook(hook: IngestHook) -> IngestHook:
    """Run ``hook(account, created_events, prospects)`` inside every ingest transaction.

    - ``created_events``: the Event rows this call stored (saved, with ids), in request order.
      Anonymous events have ``prospect_id`` None. Replays and suppressed events are not included;
      when nothing was stored the hooks are not called.
    - ``prospects``: by id, every prospect that received events in this call (including earlier
      anonymous events attached to it by stitching), already updated, and row-locked until the
      transaction ends, so a hook can read and write them without racing another request.

    A hook writes its own rows (outbox entries, score updates, trigger firings) through the ORM;
    they commit with the events or not at all. An exception in a hook rolls the whole ingest back
    and the API answers 500, so the platform retries; a hook must therefore not call CRMs or
    other slow services: enqueue work with ``crmsync.jobs.enqueue``, which runs after commit.
    Hooks run in registration order; register them in an ``AppConfig.ready``. Usable as a decorator.
    """
    if hook not in _hooks:
        _hooks.append(hook)
    return hook


def unregister_ingest_hook(hook: IngestHook) -> None:
    if hook in _hooks:
        _hooks.remove(hook)


def ingest_events(account: Account, events: list[ValidatedEvent], *, actor_label: str) -> IngestResult:
    """Store ``events`` for ``account`` in one transaction and say what happened to each.

    ``actor_label`` names the caller in logs (e.g. "api-key csk_AbC…"); it is never a secret.
    """
    run = _IngestRun(account, events, timezone.now())
    with transaction.atomic():
        run.execute()
        if run.created and _hooks:
            created = [event for _index, event in sorted(run.created)]
            for hook in list(_hooks):
                hook(account, created, run.touched)
    result = run.result()
    log.debug(
        "ingest for account %s by %s: %d created, %d duplicate, %d suppressed",
        account.pk,
        actor_label,
        result.accepted,
        result.duplicates,
        result.suppressed,
    )
    return result


# --- the work ------------------------------------------------------------------------------------


@lru_cache(maxsize=4096)
def split_full_name(full_name: str) -> tuple[str, str]:
    """First and last name from a full name: titles dropped, middle names kept with the first.

    "Dr. Ann Marie de la Cruz Jr." -> ("Ann Marie", "de la Cruz Jr.")
    """
    name = HumanName(full_name)
    first = " ".join(part for part in (name.first, name.middle) if part)
    last = " ".join(part for part in (name.last, name.suffix) if part)
    return first[:150], last[:150]


def _email(event: ValidatedEvent) -> str | None:
    return event.prospect.email if event.prospect is not None else None


_PROFILE_FIELDS = ("first_name", "last_name", "phone", "company", "job_title")


def _merge(prospect: Prospect, event: ValidatedEvent) -> set[str]:
    """Apply one event to its prospect; return the fields that changed.

    Non-empty incoming values win over stored ones, unless the event is older than the
    prospect's latest event (a late delivery), in which case they only fill empty fields.
    Attributes merge key by key the same way. UTM keeps the first value seen for each key
    (first touch). Consent keeps the most recent answer by its time (``consent.at`` or the event's).
    """
    changed: set[str] = set()
    newer = prospect.last_event_at is None or event.occurred_at >= prospect.last_event_at
    data = event.prospect
    if data is not None:
        first, last = data.first_name, data.last_name
        if data.full_name and not (first or last):
            first, last = split_full_name(data.full_name)
        for name, value in zip(_PROFILE_FIELDS, (first, last, data.phone, data.company, data.job_title), strict=True):
            current = getattr(prospect, name)
            if value and value != current and (newer or not current):
                setattr(prospect, name, value)
                changed.add(name)
        if data.attributes:
            old = prospect.attributes or {}
            merged = {**old, **data.attributes} if newer else {**data.attributes, **old}
            if merged != old:
                prospect.attributes = merged
                changed.add("attributes")
        if data.utm is not None:
            old = prospect.utm or {}
            merged = {**{key: value for key, value in data.utm.model_dump().items() if value}, **old}
            if merged != old:
                prospect.utm = merged
                changed.add("utm")
        if data.consent is not None:
            at = data.consent.at or event.occurred_at
            if prospect.consent_at is None or at >= prospect.consent_at:
                prospect.consent_granted = data.consent.granted
                prospect.consent_source = data.consent.source
                prospect.consent_at = at
                changed.update(("consent_granted", "consent_source", "consent_at"))
    if newer:
        prospect.last_event_at = event.occurred_at
        changed.add("last_event_at")
    return changed


class _IngestRun:
    """The state of one ingest call; ``execute`` runs the steps in the module docstring's order."""

    def __init__(self, account: Account, events: list[ValidatedEvent], now: datetime) -> None:
        self.account = account
        self.events = events
        self.now = now
        self.status: list[Status | None] = [None] * len(events)
        self.prospect_of: list[int | None] = [None] * len(events)
        self.repeat_of: dict[int, int] = {}  # index of a repeated event id -> index of its first occurrence
        self.pending: list[int] = []  # indexes still to store
        self.visitors: dict[str, int | None] = {}  # visitor id -> its prospect id (locked rows)
        self.prospects: dict[int, Prospect] = {}  # locked rows, by id
        self.by_email: dict[str, Prospect] = {}
        self.touched: dict[int, Prospect] = {}
        self.created: list[tuple[int, Event]] = []

    def execute(self) -> None:
        self._drop_repeats()
        capsules = self._drop_known()
        if not self.pending:
            return
        capsule_ids = self._save_capsules(capsules)
        self._lock_visitors()
        self._lock_prospects()
        self._stitch()
        self._assign_prospects()
        self._update_prospects()
        self._insert_events(capsule_ids)

    def result(self) -> IngestResult:
        for index, first in self.repeat_of.items():
            self.prospect_of[index] = self.prospect_of[first]
        return IngestResult(
            [
                EventOutcome(event.event_id, status or CREATED, self.prospect_of[index])
                for index, (event, status) in enumerate(zip(self.events, self.status, strict=True))
            ]
        )

    def _in_time_order(self) -> list[int]:
        # Merges and "first seen" follow the events' own times, not the order they were sent in.
        return sorted(self.pending, key=lambda index: self.events[index].occurred_at)

    # 1. what not to store

    def _drop_repeats(self) -> None:
        first_index: dict[str, int] = {}
        for index, event in enumerate(self.events):
            if event.event_id in first_index:
                self.status[index] = DUPLICATE
                self.repeat_of[index] = first_index[event.event_id]
            else:
                first_index[event.event_id] = index
                self.pending.append(index)

    def _drop_known(self) -> dict[str, tuple[int, str, str]]:
        """Drop suppressed addresses' events and stored event ids; return the capsules that exist (one query)."""
        hashes = {
            email: suppression_hash(self.account, email)
            for index in self.pending
            if (email := _email(self.events[index]))
        }
        existing = find_existing(
            self.account.pk,
            event_ids=[self.events[index].event_id for index in self.pending],
            email_hashes=list(hashes.values()),
            capsule_ids=list({c.id for index in self.pending if (c := self.events[index].capsule) is not None}),
        )
        if existing.suppressed:
            self._drop(lambda index: hashes.get(_email(self.events[index])) in existing.suppressed, SUPPRESSED)
        if existing.stored_events:
            for index in self.pending:
                if self.events[index].event_id in existing.stored_events:
                    self.prospect_of[index] = existing.stored_events[self.events[index].event_id]
            self._drop(lambda index: self.events[index].event_id in existing.stored_events, DUPLICATE)
        return existing.capsules

    def _drop(self, matches: Callable[[int], bool], status: Status) -> None:
        keep = []
        for index in self.pending:
            if matches(index):
                self.status[index] = status
            else:
                keep.append(index)
        self.pending = keep

    # 2. capsules, visitors, prospects

    def _save_capsules(self, known: dict[str, tuple[int, str, str]]) -> dict[str, int]:
        """Create missing capsules and store changed titles and URLs; return {external id: id}.

        Capsules are shared by everyone's events, so they are not locked: a new one is inserted
        ignoring a concurrent insert of the same, and a title is written only when it changes.
        """
        wanted: dict[str, tuple[str, str]] = {}  # external id -> (title, url); the last non-empty value wins
        for index in self.pending:
            capsule = self.events[index].capsule
            if capsule is not None:
                title, url = wanted.get(capsule.id, ("", ""))
                wanted[capsule.id] = (capsule.title or title, capsule.url or url)
        missing = sorted(wanted.keys() - known.keys())
        if missing:
            Capsule.objects.bulk_create(
                [Capsule(account=self.account, external_id=x, title=wanted[x][0], url=wanted[x][1]) for x in missing],
                ignore_conflicts=True,
            )
            created = Capsule.objects.filter(account=self.account, external_id__in=missing)
            known = {**known, **{c.external_id: (c.pk, c.title, c.url) for c in created}}
        for external_id, (title, url) in wanted.items():
            pk, stored_title, stored_url = known[external_id]
            if (title and title != stored_title) or (url and url != stored_url):
                Capsule.objects.filter(pk=pk).update(title=title or stored_title, url=url or stored_url)
        return {external_id: known[external_id][0] for external_id in wanted}

    def _lock_visitors(self) -> None:
        first_seen: dict[str, datetime] = {}
        for index in self._in_time_order():
            if vid := self.events[index].visitor_id:
                first_seen.setdefault(vid, self.events[index].occurred_at)
        rows = [
            {"account_id": self.account.pk, "visitor_id": vid, "first_seen_at": first_seen[vid]} for vid in first_seen
        ]
        locked = insert_or_lock(Visitor, rows, conflict=("account", "visitor_id"), keep_earliest="first_seen_at")
        self.visitors = {visitor.visitor_id: visitor.prospect_id for visitor in locked}

    def _lock_prospects(self) -> None:
        emails = {email for index in self.pending if (email := _email(self.events[index]))}
        attached = set(self.visitors.values()) - {None}
        if attached:
            # Locked by address too, so that all prospects are locked in one statement in one order.
            # Their addresses cannot change meanwhile: erasure needs the visitor locks we hold.
            emails |= set(Prospect.objects.filter(pk__in=attached, email__isnull=False).values_list("email", flat=True))
        rows = [
            {"account_id": self.account.pk, "email": email, "created_at": self.now, "updated_at": self.now}
            for email in emails
        ]
        locked = insert_or_lock(Prospect, rows, conflict=("account", "email"))
        missing = attached - {prospect.pk for prospect in locked}
        if missing:  # an address changed between our two statements: lock those by id
            locked += list(Prospect.objects.select_for_update().filter(pk__in=missing))
        for prospect in locked:
            self.prospects[prospect.pk] = prospect
            if prospect.email:
                self.by_email[prospect.email] = prospect

    def _stitch(self) -> None:
        """Attach visitors first identified by this call, and their earlier anonymous events, to their prospects."""
        attach: dict[str, int] = {}  # visitor id -> the prospect of its earliest identified event here
        for index in self._in_time_order():
            event = self.events[index]
            email = _email(event)
            if email and event.visitor_id and self.visitors[event.visitor_id] is None:
                attach.setdefault(event.visitor_id, self.by_email[email].pk)
        if not attach:
            return
        # Two statements for any number of visitors: prospect_id = CASE visitor_id WHEN … THEN … END.
        anonymous = {"account": self.account, "visitor_id__in": list(attach), "prospect__isnull": True}
        Visitor.objects.filter(**anonymous).update(
            prospect_id=case_by_key(Visitor, "visitor_id", attach), identified_at=self.now
        )
        Event.objects.filter(**anonymous).update(prospect_id=case_by_key(Event, "visitor_id", attach))
        for vid, prospect_id in attach.items():
            self.visitors[vid] = prospect_id
            self.touched[prospect_id] = self.prospects[prospect_id]

    def _assign_prospects(self) -> None:
        for index in self.pending:
            event = self.events[index]
            if email := _email(event):
                self.prospect_of[index] = self.by_email[email].pk
            else:
                self.prospect_of[index] = self.visitors[event.visitor_id]

    # 3. write

    def _update_prospects(self) -> None:
        changed_fields: set[str] = set()
        for index in self._in_time_order():
            prospect_id = self.prospect_of[index]
            if prospect_id is not None:
                prospect = self.prospects[prospect_id]
                changed_fields |= _merge(prospect, self.events[index])
                self.touched[prospect_id] = prospect
        # account_id too: update_rows needs every NOT NULL field without a default (it is written unchanged).
        fields = ["id", "account_id", "updated_at", *sorted(changed_fields)]
        for prospect in self.touched.values():
            prospect.updated_at = self.now
        update_rows(
            Prospect, [{name: getattr(prospect, name) for name in fields} for prospect in self.touched.values()]
        )

    def _insert_events(self, capsule_ids: dict[str, int]) -> None:
        rows: dict[int, dict[str, Any]] = {}
        for index in self.pending:
            event = self.events[index]
            rows[index] = {
                "account_id": self.account.pk,
                "external_id": event.event_id,
                "type": event.type,
                "occurred_at": event.occurred_at,
                "received_at": self.now,
                "capsule_id": capsule_ids[event.capsule.id] if event.capsule is not None else None,
                "prospect_id": self.prospect_of[index],
                "visitor_id": event.visitor_id or "",
                "data": event.data_dict(),
            }
        new_ids: dict[str, int] = {}
        ordered = list(rows.values())
        for start in range(0, len(ordered), INSERT_CHUNK):
            chunk = ordered[start : start + INSERT_CHUNK]
            new_ids.update(
                insert_new(Event, chunk, conflict=("account", "external_id"), returning=("external_id", "id"))
            )
        lost = []
        db = router.db_for_write(Event)
        for index, row in rows.items():
            if row["external_id"] in new_ids:
                # from_db with every column in order: the ORM's fast way to build a saved instance.
                values = [new_ids[row["external_id"]], *(row[name] for name in _EVENT_ATTNAMES[1:])]
                self.created.append((index, Event.from_db(db, _EVENT_ATTNAMES, values)))
            else:
                lost.append(index)
        if lost:
            # Stored by a concurrent request between our check and our insert: a duplicate after all.
            lost_ids = [self.events[index].event_id for index in lost]
            stored = dict(
                Event.objects.filter(account=self.account, external_id__in=lost_ids).values_list(
                    "external_id", "prospect_id"
                )
            )
            for index in lost:
                self.status[index] = DUPLICATE
                self.prospect_of[index] = stored.get(self.events[index].event_id)
