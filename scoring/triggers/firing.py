"""Storing firings exactly once and performing their actions, inside the caller's transaction.

``record_firings`` is the one way a firing happens (ingest hook, grade listener, periodic job):

1. one ``INSERT … ON CONFLICT (key) DO NOTHING RETURNING`` for all planned firings: only the
   rows this statement created go on, so a retried ingest, a replayed event, a grade change seen
   twice or a second scheduler never performs an action twice;
2. round robin turns for the new firings, taken with one ``UPDATE … SET n = n + k`` per rule;
3. each action in the rule's order: CRM actions become one outbox row per syncing connection
   (``dedupe_key = "trigger:<firing id>:<action index>"``, unique per connection as a second
   guard), e-mails are sent after commit, webhooks are emitted into the same transaction;
4. what each action did is stored on the firing, and real-time connections are kicked after commit.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import TypeVar

from django.db import connections, models, router, transaction
from django.db.models import F
from django.utils import timezone

from crmsync.models import Account, Capsule, Event, Prospect
from integrations.models import OutboxItem, SyncMode
from integrations.sync.outbox import insert_rows, kick_after_commit, syncing_connections
from scoring.models import ProspectScore
from scoring.models_triggers import TriggerFiring, TriggerRule
from scoring.triggers.action_types import ACTIONS
from scoring.triggers.actions import ActionContext, needs_turn, perform
from scoring.triggers.evaluate import Firing

M = TypeVar("M", bound=models.Model)

# Firings per INSERT statement: 8 columns each, well below every database's parameter limit.
INSERT_CHUNK = 500


def outbox_dedupe_key(firing_id: int, action_index: int) -> str:
    return f"trigger:{firing_id}:{action_index}"


def record_firings(
    account: Account,
    planned: Sequence[Firing],
    rules: Mapping[int, TriggerRule],
    *,
    prospects: Mapping[int, Prospect] | None = None,
    events: Mapping[int, Event] | None = None,
    now: datetime | None = None,
) -> list[TriggerFiring]:
    """Store the ``planned`` firings that are new and perform their actions; return the new firings.

    ``prospects`` and ``events`` are rows the caller already has (others are loaded). Call inside
    a transaction: the firings, their outbox rows and webhook deliveries commit together or not at all.
    """
    now = now or timezone.now()
    unique: dict[str, Firing] = {}
    for firing in planned:
        unique.setdefault(firing.key, firing)  # e.g. two events of one ingest, a once-per-prospect rule
    rows = [
        TriggerFiring(
            rule_id=firing.rule_id,
            account=account,
            prospect_id=firing.prospect_id,
            event_id=firing.event_id,
            key=firing.key,
            condition_type=rules[firing.rule_id].condition_type,
            fired_at=now,
            actions=[],
        )
        for firing in unique.values()
    ]
    created = _insert_new(rows)
    new = [row for row in rows if row.key in created]
    if not new:
        return []
    for row in new:
        row.pk = created[row.key]
        row._state.adding = False

    prospects = _complete(Prospect, prospects or {}, {row.prospect_id for row in new})
    events = _complete(Event, events or {}, {row.event_id for row in new if row.event_id})
    capsules = _capsule_labels(events.values())
    scores = {
        pid: (score, grade)
        for pid, score, grade in ProspectScore.objects.filter(prospect_id__in=prospects).values_list(
            "prospect_id", "score", "grade"
        )
    }
    turns = iter(_advance_round_robin(new, rules))
    connections = syncing_connections(account)
    outbox: list[OutboxItem] = []
    for firing in new:
        rule = rules[firing.rule_id]
        prospect = prospects[firing.prospect_id]
        event = events.get(firing.event_id) if firing.event_id else None
        score, grade = scores.get(prospect.pk, (0, ""))
        for index, action in enumerate(rule.actions):
            ctx = ActionContext(
                account=account,
                firing=firing,
                rule=rule,
                prospect=prospect,
                event=event,
                capsule=capsules.get(event.capsule_id, "") if event is not None and event.capsule_id else "",
                score=score,
                grade=grade,
                now=now,
                index=index,
                owner_turn=next(turns) if needs_turn(action) else 0,
            )
            outcome = perform(ctx, action)
            summary = outcome.summary(action["type"])
            if outcome.payload is not None:
                kind = ACTIONS[action["type"]].crm_kind
                outbox += [
                    OutboxItem(
                        connection=connection,
                        prospect_id=prospect.pk,
                        kind=kind,
                        dedupe_key=outbox_dedupe_key(firing.pk, index),
                        payload=outcome.payload,
                        next_attempt_at=now,
                        created_at=now,
                        updated_at=now,
                    )
                    for connection in connections
                ]
                summary["detail"] += _connections_note(len(connections))
                if not connections:
                    summary["status"] = "skipped"
            if outcome.after_commit is not None:
                transaction.on_commit(outcome.after_commit)
            firing.actions.append(summary)
    insert_rows(outbox)
    if outbox:
        kick_after_commit(c for c in connections if c.sync_mode == SyncMode.REALTIME)
    TriggerFiring.objects.bulk_update(new, ["actions"])
    return new


def _insert_new(rows: list[TriggerFiring]) -> dict[str, int]:
    """``INSERT … ON CONFLICT (key) DO NOTHING RETURNING key, id``: the keys this statement created.

    RETURNING is what makes "exactly once" hold under concurrency: a key inserted by a concurrent
    transaction makes ours wait for it and then skip the row, and only rows we really created come
    back. Rows go in key order, so two transactions with overlapping keys cannot deadlock.
    """
    connection = connections[router.db_for_write(TriggerFiring)]
    quote = connection.ops.quote_name
    fields = [field for field in TriggerFiring._meta.concrete_fields if not field.primary_key]
    columns = ", ".join(quote(field.column) for field in fields)
    row_sql = "(" + ", ".join(["%s"] * len(fields)) + ")"
    created: dict[str, int] = {}
    ordered = sorted(rows, key=lambda row: row.key)
    for start in range(0, len(ordered), INSERT_CHUNK):
        chunk = ordered[start : start + INSERT_CHUNK]
        params = [field.get_db_prep_save(getattr(row, field.attname), connection) for row in chunk for field in fields]
        # Only quoted table and column names are interpolated; every value is a parameter.
        sql = (
            f"INSERT INTO {quote(TriggerFiring._meta.db_table)} ({columns}) "  # noqa: S608
            f"VALUES {', '.join([row_sql] * len(chunk))} "
            f"ON CONFLICT ({quote('key')}) DO NOTHING RETURNING {quote('key')}, {quote('id')}"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            created.update(cursor.fetchall())
    return created


def _connections_note(count: int) -> str:
    if count == 0:
        return " (no CRM connected)"
    return f" (for {count} CRM connection{'s' if count > 1 else ''})"


def _complete(model: type[M], known: Mapping[int, M], wanted: set[int]) -> dict[int, M]:
    """The rows of ``wanted`` ids: those the caller had, the others loaded in one query."""
    rows = {pk: row for pk, row in known.items() if pk in wanted}
    missing = wanted - rows.keys()
    if missing:
        rows.update(model.objects.in_bulk(missing))
    return rows


def _capsule_labels(events: Iterable[Event]) -> dict[int, str]:
    ids = {event.capsule_id for event in events if event.capsule_id}
    if not ids:
        return {}
    return {
        pk: title or external_id
        for pk, title, external_id in Capsule.objects.filter(pk__in=ids).values_list("pk", "title", "external_id")
    }


def _advance_round_robin(firings: Sequence[TriggerFiring], rules: Mapping[int, TriggerRule]) -> list[int]:
    """The round robin turns the new firings take, in the order ``record_firings`` uses them.

    Per rule, one ``UPDATE … SET round_robin_next = round_robin_next + k`` takes k turns at once;
    the row stays locked until commit, so a concurrent firing of the same rule waits and then
    continues after our turns: every turn is taken exactly once, in order.
    """
    wanted: Counter[int] = Counter()
    for firing in firings:
        wanted[firing.rule_id] += sum(1 for action in rules[firing.rule_id].actions if needs_turn(action))
    start: dict[int, int] = {}
    for rule_id in sorted(rule_id for rule_id, count in wanted.items() if count):
        TriggerRule.objects.filter(pk=rule_id).update(round_robin_next=F("round_robin_next") + wanted[rule_id])
        after = TriggerRule.objects.filter(pk=rule_id).values_list("round_robin_next", flat=True).get()
        start[rule_id] = after - wanted[rule_id]
    turns: list[int] = []
    for firing in firings:
        for action in rules[firing.rule_id].actions:
            if needs_turn(action):
                turns.append(start[firing.rule_id])
                start[firing.rule_id] += 1
    return turns
