"""Flushing one connection's due outbox rows through its connector.

One flush claims rows in batches (people first, so CRM ids exist before their activities), builds
each person's payload through the mapping, skips what is unchanged, writes through the connector's
batch calls, and records an outcome on every row: done, retry at a time, held, failed or skipped
(DESIGN.md invariant 3). Whole-call failures follow the error taxonomy; record failures stay with
their record and never block the rest of the batch.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from crmsync.lookups import where_unindexed
from crmsync.models import Event, Prospect, Suppression
from crmsync.models.privacy import suppression_hash
from integrations import credentials
from integrations.connector import CONTACT, LEAD, Connector, PersonInput, WriteOutcome
from integrations.errors import (
    AuthError,
    ConfigurationError,
    CrmError,
    NotFound,
    RateLimited,
    RecordError,
    RetryableError,
)
from integrations.inbound.deals import record_deal_link
from integrations.inbound.preferences import blocks_outbound
from integrations.models import (
    Connection,
    ConnectionStatus,
    LeadCreation,
    LinkState,
    OutboxItem,
    OutboxKind,
    OutboxState,
    RecordLink,
    RecordType,
    SyncRun,
)
from integrations.sync import claim as claiming
from integrations.sync import render, retry
from integrations.sync.outbox import backfill_event_work
from integrations.sync.payloads import PayloadBuilder
from integrations.sync.ratelimit import RateLimiter, limiter_for
from integrations.sync.sql import bulk_update_values

log = logging.getLogger(__name__)

ENGAGEMENT_KINDS = (
    OutboxKind.ACTIVITY,
    OutboxKind.NOTE,
    OutboxKind.DEAL,
    OutboxKind.TASK,
    OutboxKind.FIELDS,
    OutboxKind.ERASE,
)


@dataclass
class FlushStats:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: int = 0
    skipped: int = 0
    held: int = 0
    retried: int = 0
    activities: int = 0
    relinked: int = 0
    rate_limited: int = 0
    api_calls: int = 0
    processed: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def total_work(self) -> int:
        return self.processed


class ConnectionPaused(Exception):
    """The connection cannot take calls now (needs re-authentication); its rows wait."""


class Flusher:
    """Flushes due work of one connection. Not shared between threads."""

    def __init__(
        self,
        connection_id: int,
        *,
        worker_id: str,
        run: SyncRun | None = None,
        limiter: RateLimiter | None = None,
        stop: Callable[[], bool] | None = None,
    ) -> None:
        self.connection_id = connection_id
        self.worker_id = worker_id
        self.run = run
        self.stop = stop or (lambda: False)
        self.stats = FlushStats()
        self.connection = Connection.objects.select_related("account").get(pk=connection_id)
        self.spec = self.connection.spec
        self.limiter = limiter or limiter_for(connection_id, self.spec.rate_limit)
        self.connector: Connector | None = None
        self.payloads: PayloadBuilder | None = None
        self.person_kind = LEAD if self.connection.record_type == RecordType.LEAD else CONTACT
        self._reported: dict[str, int] = {}

    # -- set-up ------------------------------------------------------------------------------------
    def _make_connector(self) -> Connector:
        connector_class = self.spec.connector_class()

        def before(method: str, url: str) -> None:
            self.limiter.acquire(connector_class.rate_bucket(method, url))

        def after(response, snapshot) -> None:
            self.stats.api_calls += 1
            if response.status_code == 429:
                self.stats.rate_limited += 1
            self.limiter.observe(snapshot)

        self.connection = credentials.fresh_connection(self.connection)
        return self.connection.connector(before_request=before, after_response=after)

    def _call(self, fn: Callable[[Connector], object]) -> object:
        """Run a connector call; an auth failure refreshes once (serialised) and tries again."""
        assert self.connector is not None
        try:
            return fn(self.connector)
        except AuthError:
            self.connection = credentials.refresh_after_rejection(self.connection)
            self.connector = self._make_connector()
            return fn(self.connector)

    # -- the loop ----------------------------------------------------------------------------------
    def flush(self, *, max_batches: int | None = None, drain: bool = True) -> FlushStats:
        """Work through due rows in passes: a batch of people, then a batch of engagement.

        ``drain=True`` (batch and manual runs) goes on until nothing is due. ``drain=False``
        (real time) goes on only while passes are full: a partly filled pass means the queue is
        empty for now, and whatever arrives next is gathered by the next kick's coalescing
        window, so a steady trickle of events costs a few calls a second, not a few per event.
        """
        if self.connection.status != ConnectionStatus.ACTIVE:
            return self.stats
        try:
            self.connector = self._make_connector()
        except AuthError:
            return self.stats  # marked needs-reauth; the rows wait
        self.payloads = PayloadBuilder(
            self.connection, describe=lambda kind: self._call(lambda c: c.describe_fields(kind))
        )
        batches = 0
        person_batch = self.spec.batch_sizes["upsert"]
        engagement_batch = self.spec.batch_sizes.get("activities", person_batch)
        while not self.stop():
            try:
                claim_size, lease = self._person_claim(person_batch, drain)
                people = claiming.claim(
                    self.connection_id, self.worker_id, claim_size, kinds=[OutboxKind.PERSON], lease=lease
                )
                if people:
                    self._sync_people(people)
                engagement = claiming.claim(
                    self.connection_id, self.worker_id, engagement_batch, kinds=ENGAGEMENT_KINDS
                )
                if engagement:
                    self._sync_engagement(engagement)
            except ConnectionPaused:
                claiming.hand_back(self.worker_id)
                break
            if not people and not engagement:
                break
            batches += 1
            self._save_run_progress()
            if max_batches is not None and batches >= max_batches:
                break
            if not drain and len(people) < person_batch and len(engagement) < engagement_batch:
                break
        self._save_run_progress()
        return self.stats

    def _person_claim(self, batch: int, drain: bool) -> tuple[int, dt.timedelta]:
        """Rows to claim for one people pass, and their lease. A connector with a bulk path (e.g.
        Salesforce Bulk API 2.0) takes every due row up to its job size in one call when more than
        its threshold are due in a batch or manual run; real-time passes stay small and quick."""
        bulk = self.connector.bulk_people_write() if drain and self.connector is not None else None
        if bulk is None:
            return batch, claiming.LEASE
        due = claiming.count_due(self.connection_id, [OutboxKind.PERSON], cap=bulk.max_rows)
        if due <= bulk.threshold:
            return batch, claiming.LEASE
        return due, dt.timedelta(seconds=bulk.lease_seconds)

    # -- outcomes ----------------------------------------------------------------------------------
    def _finish(
        self,
        item: OutboxItem,
        state: str,
        *,
        result: str = "",
        error: CrmError | str | None = None,
        retry_after: float | None = None,
        count_attempt: bool = True,
        hold_reason: str = "",
    ) -> None:
        now = timezone.now()
        item.state = state
        item.updated_at = now
        item.claimed_by = ""
        item.lease_until = None
        item.result = result or item.result
        item.hold_reason = hold_reason
        if error is not None:
            item.last_error = str(error)[:2000]
            item.last_error_kind = getattr(error, "kind", "record")
        if state == OutboxState.DONE:
            item.done_at = now
            item.last_error = ""
            item.last_error_kind = ""
        if state == OutboxState.RETRY:
            if count_attempt:
                item.attempts += 1
            if count_attempt and retry.exhausted(item.attempts):
                item.state = OutboxState.FAILED
                self.stats.failed += 1
            else:
                item.next_attempt_at = retry.next_attempt_time(now, item.attempts, retry_after)
                self.stats.retried += 1
        elif state == OutboxState.FAILED:
            item.attempts += 1
            self.stats.failed += 1
        elif state == OutboxState.SKIPPED:
            self.stats.skipped += 1
        elif state == OutboxState.HELD:
            self.stats.held += 1
        if self.run is not None:
            item.run = self.run
        self.stats.processed += 1

    def _save(self, items: Sequence[OutboxItem]) -> None:
        """Write the outcomes: one UPDATE per distinct outcome (a batch mostly shares one), and
        only for rows this worker still holds — a row reaped and re-claimed meanwhile is not
        overwritten. A person row going back to an open state while a newer row for the same
        prospect is open is retired as superseded (claiming.supersede_reopened_person_rows)."""
        for attempt in range(3):
            try:
                with transaction.atomic():
                    self._save_once(items)
                return
            except IntegrityError:
                if attempt == 2:
                    raise
                # An ingest committed a newer person row between our check and our update: look again.

    def _save_once(self, items: Sequence[OutboxItem]) -> None:
        now = timezone.now()
        reopening = [i.pk for i in items if i.kind == OutboxKind.PERSON and i.state in claiming.PERSON_OPEN_STATES]
        if reopening:
            rows = OutboxItem.objects.filter(id__any=reopening, state=OutboxState.IN_FLIGHT, claimed_by=self.worker_id)
            claiming.supersede_reopened_person_rows(rows, now)
        groups: dict[tuple, list[int]] = defaultdict(list)
        for item in items:
            key = (
                item.state,
                item.result,
                item.hold_reason,
                item.last_error,
                item.last_error_kind,
                item.attempts,
                item.next_attempt_at,
                item.run_id,
            )
            groups[key].append(item.pk)
        for (state, result, hold, error, error_kind, attempts, next_at, run_id), ids in groups.items():
            OutboxItem.objects.filter(id__any=ids, state=OutboxState.IN_FLIGHT, claimed_by=self.worker_id).update(
                state=state,
                result=result,
                hold_reason=hold,
                last_error=error,
                last_error_kind=error_kind,
                attempts=attempts,
                next_attempt_at=next_at,
                run_id=run_id,
                claimed_by="",
                lease_until=None,
                updated_at=now,
                done_at=now if state == OutboxState.DONE else None,
            )

    def _whole_call_failed(self, items: Sequence[OutboxItem], error: CrmError) -> None:
        """A failure of the call, not of a record: every row of the call shares the outcome."""
        if isinstance(error, RateLimited):
            self.stats.rate_limited += 1
            self.limiter.block_for(error.retry_after or self.spec.rate_limit.window_seconds)
            for item in items:
                self._finish(
                    item, OutboxState.RETRY, error=error, retry_after=error.retry_after or 1.0, count_attempt=False
                )
        elif isinstance(error, AuthError):
            for item in items:
                self._finish(item, OutboxState.PENDING, error=error, count_attempt=False)
            self._save(items)
            raise ConnectionPaused(str(error))
        elif isinstance(error, RetryableError):
            for item in items:
                self._finish(item, OutboxState.RETRY, error=error, retry_after=error.retry_after)
        else:  # configuration or record errors that concern the whole call: a person must look
            for item in items:
                self._finish(item, OutboxState.FAILED, error=error)
        self.stats.errors.append(str(error))

    def _prospects(self, ids) -> dict[int, Prospect]:
        """Prospects by id, with the (shared) account attached so consent checks cost no query."""
        prospects = {p.pk: p for p in Prospect.objects.filter(pk__any=list(ids))}
        for prospect in prospects.values():
            prospect.account = self.connection.account
        return prospects

    # -- people ------------------------------------------------------------------------------------
    def _sync_people(self, items: Sequence[OutboxItem]) -> None:
        assert self.payloads is not None
        account = self.connection.account
        prospects = self._prospects([i.prospect_id for i in items])
        links = {
            link.prospect_id: link
            for link in where_unindexed(
                RecordLink.objects.filter(prospect_id__any=[i.prospect_id for i in items]),
                "connection_id",
                self.connection_id,
            )
        }
        suppressed = _suppressed_ids(account, prospects.values())
        try:
            built = self.payloads.build([p for p in prospects.values() if p.may_sync()], links)
        except CrmError as error:  # the schema had to be fetched and the CRM refused or failed
            self._whole_call_failed(items, error)
            self._save(items)
            return
        to_send: list[tuple[OutboxItem, PersonInput, str]] = []
        for item in items:
            prospect = prospects.get(item.prospect_id)
            link = links.get(item.prospect_id)
            if prospect is None or prospect.erased:
                self._finish(item, OutboxState.SKIPPED, result="erased")
                continue
            if prospect.pk in suppressed:
                self._finish(item, OutboxState.SKIPPED, result="suppressed")
                continue
            if not prospect.may_sync():
                self._finish(item, OutboxState.HELD, hold_reason="waiting for consent")
                continue
            if link is None and self._below_threshold(prospect):
                self._finish(
                    item, OutboxState.HELD, hold_reason=f"waiting for a lead score of {self.connection.score_threshold}"
                )
                continue
            payload = built[prospect.pk]
            if payload.blocking_problems:
                self._finish(item, OutboxState.FAILED, error=ConfigurationError("; ".join(payload.blocking_problems)))
                continue
            if link is not None and link.state != LinkState.DELETED and link.last_payload_hash == payload.hash:
                self.stats.unchanged += 1
                self._finish(item, OutboxState.DONE, result="unchanged")
                continue
            person = PersonInput(
                # Stable per prospect: connectors may store it as an external id (Salesforce).
                key=f"prospect-{prospect.pk}",
                email=prospect.email or "",
                fields=payload.fields,
                crm_id=link.crm_id if link and link.state != LinkState.DELETED else None,
            )
            to_send.append((item, person, payload.hash))
        if to_send:
            self._send_people(to_send, prospects, links)
        self._save(items)

    def _below_threshold(self, prospect: Prospect) -> bool:
        if self.connection.lead_creation != LeadCreation.ON_SCORE:
            return False
        return self.payloads.score_of(prospect.pk) < self.connection.score_threshold  # type: ignore[union-attr]

    def _send_people(self, to_send, prospects, links) -> None:
        inputs = [person for _item, person, _hash in to_send]
        try:
            outcomes = self._call(lambda c: c.upsert_people(self.person_kind, inputs))
        except CrmError as error:
            self._whole_call_failed([item for item, _p, _h in to_send], error)
            return
        by_key = {o.key: o for o in outcomes}  # type: ignore[union-attr]
        # A stored id that the CRM no longer knows (deleted or merged there): documented policy is
        # to match by e-mail again, or create, and mark the link "relinked" (docs/SYNC.md).
        stale = [
            (item, person, h)
            for item, person, h in to_send
            if person.crm_id and isinstance(by_key.get(person.key, WriteOutcome(person.key)).error, NotFound)
        ]
        if stale:
            retry_inputs = [PersonInput(key=p.key, email=p.email, fields=p.fields) for _i, p, _h in stale]
            try:
                for outcome in self._call(lambda c: c.upsert_people(self.person_kind, retry_inputs)):  # type: ignore[union-attr]
                    by_key[outcome.key] = outcome
                    self.stats.relinked += 1
            except CrmError as error:
                self._whole_call_failed([item for item, _p, _h in stale], error)
                stale_ids = {item.pk for item, _p, _h in stale}
                to_send = [t for t in to_send if t[0].pk not in stale_ids]
        now = timezone.now()
        new_links: list[RecordLink] = []
        changed_links: list[RecordLink] = []
        newly_linked: list[int] = []
        relinked_keys = {p.key for _i, p, _h in stale}
        for item, person, payload_hash in to_send:
            outcome = by_key.get(person.key)
            if outcome is None:
                self._finish(item, OutboxState.RETRY, error=RetryableError("the CRM gave no result for this record"))
                continue
            if outcome.error is not None:
                if outcome.error.retryable:
                    # A rate limit on one record is not a failure of it: no attempt is charged.
                    self._finish(
                        item,
                        OutboxState.RETRY,
                        error=outcome.error,
                        retry_after=outcome.error.retry_after,
                        count_attempt=not isinstance(outcome.error, RateLimited),
                    )
                else:
                    self._finish(item, OutboxState.FAILED, error=outcome.error)
                continue
            link = links.get(item.prospect_id)
            state = LinkState.RELINKED if person.key in relinked_keys else LinkState.LINKED
            if link is None:
                link = RecordLink(
                    connection_id=self.connection_id,
                    prospect_id=item.prospect_id,
                    crm_object_type=self.person_kind,
                    crm_id=outcome.crm_id or "",
                    state=state,
                    last_payload_hash=payload_hash,
                    last_sent_fields=dict(person.fields),
                    last_synced_at=now,
                )
                new_links.append(link)
                newly_linked.append(item.prospect_id)
            else:
                if link.crm_id != outcome.crm_id:
                    newly_linked.append(item.prospect_id)
                link.crm_id = outcome.crm_id or link.crm_id
                link.state = state if person.key in relinked_keys or link.state == LinkState.DELETED else link.state
                link.last_payload_hash = payload_hash
                link.last_sent_fields = {**link.last_sent_fields, **person.fields}
                link.last_synced_at = now
                changed_links.append(link)
            if outcome.created:
                self.stats.created += 1
            else:
                self.stats.updated += 1
            self._finish(item, OutboxState.DONE, result="created" if outcome.created else "updated")
        with transaction.atomic():
            RecordLink.objects.bulk_create(new_links, ignore_conflicts=True, batch_size=5000)
            bulk_update_values(
                RecordLink,
                changed_links,
                ["crm_id", "state", "last_payload_hash", "last_sent_fields", "last_synced_at"],
            )
            if newly_linked:
                self._release_waiting_engagement(newly_linked)

    def _release_waiting_engagement(self, prospect_ids: list[int]) -> None:
        """The person now exists in the CRM: back-fill its earlier activity and release held rows."""
        backfill_event_work(self.connection, prospect_ids)
        OutboxItem.objects.filter(
            connection_id=self.connection_id,
            prospect_id__any=prospect_ids,
            state=OutboxState.HELD,
            kind__in=ENGAGEMENT_KINDS,
        ).update(state=OutboxState.PENDING, next_attempt_at=timezone.now(), hold_reason="", updated_at=timezone.now())

    # -- engagement --------------------------------------------------------------------------------
    def _sync_engagement(self, items: Sequence[OutboxItem]) -> None:
        # Open person work is read BEFORE the links: if another flusher links a person between the
        # two reads, we see its link (and send); reading links first could see neither the link nor
        # the open row, and hold work that the other flusher's release already passed by.
        open_people = set(
            OutboxItem.objects.filter(
                connection_id=self.connection_id,
                kind=OutboxKind.PERSON,
                prospect_id__any=list({i.prospect_id for i in items}),
                state__in=[OutboxState.PENDING, OutboxState.RETRY, OutboxState.IN_FLIGHT],
            ).values_list("prospect_id", flat=True)
        )
        links = {
            link.prospect_id: link
            for link in where_unindexed(
                RecordLink.objects.filter(prospect_id__any=list({i.prospect_id for i in items})),
                "connection_id",
                self.connection_id,
            )
        }
        events = Event.objects.select_related("capsule").in_bulk([i.event_id for i in items if i.event_id])
        prospects = self._prospects({i.prospect_id for i in items})
        blocked = blocks_outbound(prospects.keys())  # "do not contact" set in the CRM
        groups: dict[str, list[tuple[OutboxItem, object]]] = {"activity": [], "note": [], "deal": [], "task": []}
        field_writes: list[tuple[OutboxItem, str, dict]] = []
        erasures = [item for item in items if item.kind == OutboxKind.ERASE]
        if erasures:
            self._erase(erasures)
        for item in items:
            if item.kind == OutboxKind.ERASE:
                continue
            prospect = prospects.get(item.prospect_id)
            link = links.get(item.prospect_id)
            event = events.get(item.event_id) if item.event_id else None
            if prospect is None or prospect.erased:
                self._finish(item, OutboxState.SKIPPED, result="erased")
                continue
            if prospect.pk in blocked:
                self._finish(item, OutboxState.SKIPPED, result="do not contact")
                continue
            if event is None and not item.payload:
                self._finish(item, OutboxState.SKIPPED, result="event gone")
                continue
            if not prospect.may_sync():
                self._finish(item, OutboxState.HELD, hold_reason="waiting for consent")
                continue
            if link is None or link.state == LinkState.DELETED:
                if item.prospect_id in open_people:
                    # The contact is being written right now; try again in a moment.
                    self._finish(
                        item,
                        OutboxState.RETRY,
                        retry_after=2.0,
                        count_attempt=False,
                        error=RetryableError("waiting for the contact to be created"),
                    )
                else:
                    self._finish(item, OutboxState.HELD, hold_reason="waiting for the contact or lead to be created")
                continue
            try:
                built = render.work_input(item, event, prospect, link.crm_id, link.crm_object_type)
            except (KeyError, TypeError, ValueError) as exc:
                self._finish(item, OutboxState.FAILED, error=ConfigurationError(f"malformed {item.kind} work: {exc}"))
                continue
            if item.kind == OutboxKind.FIELDS:
                field_writes.append((item, link.crm_id, built))
            else:
                groups[render.GROUP_OF_KIND[item.kind]].append((item, built))
        for item, crm_id, work in field_writes:
            try:
                self._call(lambda c, crm_id=crm_id, work=work: self._write_fields(c, crm_id, work))
            except render.UnsupportedWork as exc:
                self._finish(item, OutboxState.FAILED, error=RecordError(str(exc), code="unsupported"))
                continue
            except CrmError as error:
                if error.kind == "record":
                    self._finish(item, OutboxState.FAILED, error=error)
                else:
                    self._whole_call_failed([item], error)
                continue
            self.stats.activities += 1
            self._finish(item, OutboxState.DONE, result="updated")
        calls = {
            "activity": lambda c, inputs: c.log_activities(inputs),
            "note": lambda c, inputs: c.add_notes(inputs),
            "deal": lambda c, inputs: [c.upsert_deal(i) for i in inputs],
            "task": lambda c, inputs: c.create_tasks(inputs),
        }
        for group, pairs in groups.items():
            if not pairs:
                continue
            inputs = [payload for _item, payload in pairs]
            try:
                outcomes = self._call(lambda c, call=calls[group], inputs=inputs: call(c, inputs))
            except CrmError as error:
                self._whole_call_failed([item for item, _payload in pairs], error)
                continue
            by_key = {o.key: o for o in outcomes}  # type: ignore[union-attr]
            for item, payload in pairs:
                outcome = by_key.get(payload.key)
                if outcome is None:
                    self._finish(item, OutboxState.RETRY, error=RetryableError("the CRM gave no result for this item"))
                elif outcome.error is None:
                    if group == "deal" and outcome.crm_id:
                        record_deal_link(self.connection_id, item.prospect_id, outcome.crm_id)
                    self.stats.activities += 1
                    self._finish(item, OutboxState.DONE, result="created" if outcome.created else "existing")
                elif outcome.error.retryable:
                    self._finish(
                        item,
                        OutboxState.RETRY,
                        error=outcome.error,
                        retry_after=outcome.error.retry_after,
                        count_attempt=not isinstance(outcome.error, RateLimited),
                    )
                else:
                    self._finish(item, OutboxState.FAILED, error=outcome.error)
        self._save(items)

    def _erase(self, items: Sequence[OutboxItem]) -> None:
        """GDPR erasure in the CRM: delete the person. A CRM whose API cannot delete fails the row
        with a message naming the record to delete by hand (the owner sees it and gets the digest)."""
        for item in items:
            crm_id = str(item.payload.get("crm_id", ""))
            try:
                self._call(
                    lambda c, item=item, crm_id=crm_id: c.delete_person(
                        item.payload.get("object_type", self.person_kind), crm_id
                    )
                )
            except ConfigurationError as error:
                self._finish(
                    item,
                    OutboxState.FAILED,
                    error=ConfigurationError(
                        f"{error.message}: delete record {crm_id} in {self.spec.label} by hand to complete the erasure",
                        code="unsupported",
                    ),
                )
                continue
            except CrmError as error:
                if error.kind == "record":
                    self._finish(item, OutboxState.FAILED, error=error)
                else:
                    self._whole_call_failed([item], error)
                continue
            RecordLink.objects.filter(connection_id=self.connection_id, prospect_id=item.prospect_id).update(
                state=LinkState.ERASED, last_sent_fields={}, last_payload_hash=""
            )
            self._finish(item, OutboxState.DONE, result="erased in CRM")

    def _write_fields(self, connector: Connector, crm_id: str, work: render.FieldWork) -> None:
        """Field writes from workflow triggers: plain fields, the owner (the provider's owner field),
        or a list/campaign (connectors that have lists offer ``add_to_list``)."""
        if work.list_id is not None:
            add_to_list = getattr(connector, "add_to_list", None)
            if add_to_list is None:
                raise render.UnsupportedWork(f"{self.spec.label} has no lists or campaigns we can add people to")
            add_to_list(self.person_kind, crm_id, work.list_id)
            return
        fields = dict(work.fields)
        if work.owner_id is not None:
            if not self.spec.owner_field:
                raise render.UnsupportedWork(f"{self.spec.label}: assigning an owner is not supported")
            fields[self.spec.owner_field] = work.owner_id
        connector.set_fields(self.person_kind, crm_id, fields)

    # -- run bookkeeping ---------------------------------------------------------------------------
    def _save_run_progress(self) -> None:
        """Add this batch's counts to the run (F() increments: several flushers may share a run)."""
        if self.run is None:
            return
        names = (
            "processed",
            "created",
            "updated",
            "unchanged",
            "failed",
            "skipped",
            "activities",
            "api_calls",
            "rate_limited",
        )
        delta = {name: getattr(self.stats, name) - self._reported.get(name, 0) for name in names}
        if any(delta.values()):
            SyncRun.objects.filter(pk=self.run.pk).update(**{name: F(name) + value for name, value in delta.items()})
            self._reported = {name: getattr(self.stats, name) for name in names}


def _suppressed_ids(account, prospects) -> set[int]:
    """Prospects whose e-mail is on the suppression list (erased people are never re-created)."""
    hashes = {suppression_hash(account, p.email): p.pk for p in prospects if p.email}
    if not hashes:
        return set()
    found = Suppression.objects.filter(account=account, email_hash__in=hashes).values_list("email_hash", flat=True)
    return {hashes[h] for h in found}
