"""Performing a firing's actions: outbox rows for the CRM, e-mails after commit, outgoing webhooks.

``HANDLERS`` maps each action type to a function that turns (firing, options) into an
``ActionOutcome``. CRM actions return a provider-neutral payload; ``scoring.triggers.firing``
writes it as one outbox row per syncing connection (kind from ``action_types.ACTIONS``), with
``dedupe_key = "trigger:<firing id>:<action index>"``, and the sync engine hands it to the
connector. Which CRM field holds the owner, whether lists exist: the connector's business, never
an if/elif here. The payload of each kind is documented in docs/TRIGGERS.md ("Outbox payloads").
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.urls import reverse

from crmsync.models import Account, Event, EventType, Prospect
from scoring.models_triggers import TriggerFiring, TriggerRule
from scoring.triggers.action_types import ActionType
from scoring.triggers.placeholders import render

log = logging.getLogger(__name__)

WEBHOOK_EVENT_TYPE = "trigger.fired"


@dataclass(frozen=True)
class ActionContext:
    """Everything an action may use: the firing, its rule, the prospect as it is now."""

    account: Account
    firing: TriggerFiring
    rule: TriggerRule
    prospect: Prospect
    event: Event | None
    capsule: str  # title, or the platform's id, of the event's capsule ("" without one)
    score: int
    grade: str
    now: datetime
    index: int  # the action's position in the rule
    owner_turn: int = 0  # round robin: this action's turn (see firing.advance_round_robin)

    def placeholder_values(self) -> dict[str, str]:
        data = self.event.data if self.event is not None and isinstance(self.event.data, dict) else {}
        event_type = self.event.type if self.event is not None else ""
        return {
            "first_name": self.prospect.first_name,
            "last_name": self.prospect.last_name,
            "full_name": self.prospect.full_name,
            "email": self.prospect.email or "",
            "company": self.prospect.company,
            "job_title": self.prospect.job_title,
            "score": str(self.score),
            "grade": self.grade,
            "capsule": self.capsule,
            "event": EventType(event_type).label if event_type in EventType.values else "",
            "question": str(data.get("text", "")) if event_type == EventType.QUESTION_ASKED else "",
            "cta": str(data.get("label") or data.get("cta_id") or "") if event_type == EventType.CTA_CLICKED else "",
            "rule": self.rule.name,
        }

    def render(self, text: str) -> str:
        return render(text, self.placeholder_values())

    def envelope(self, action_type: str) -> dict[str, Any]:
        """The keys every trigger outbox payload starts with."""
        return {
            "action": action_type,
            "firing_id": self.firing.pk,
            "firing_key": self.firing.key,
            "rule_id": self.rule.pk,
            "rule_name": self.rule.name,
            "action_index": self.index,
        }


@dataclass(frozen=True)
class ActionOutcome:
    status: str  # "queued" (outbox/e-mail waiting), "sent", "failed"
    # For the firing log: what was done, never with rendered texts. They may hold the prospect's
    # name or address, and the log outlives an erasure.
    detail: str
    payload: dict[str, Any] | None = None  # CRM actions: the outbox row's payload
    after_commit: Callable[[], None] | None = None

    def summary(self, action_type: str) -> dict[str, str]:
        return {"type": action_type, "status": self.status, "detail": self.detail}


def needs_turn(action: Mapping[str, Any]) -> bool:
    """Whether the action takes a round robin turn (an assignment over more than one owner)."""
    return action.get("type") == ActionType.ASSIGN_OWNER and len(action.get("owner_ids", [])) > 1


def _crm(ctx: ActionContext, action_type: str, detail: str, **content: Any) -> ActionOutcome:
    return ActionOutcome("queued", detail, payload={**ctx.envelope(action_type), **content})


def create_task(ctx: ActionContext, options: Mapping[str, Any]) -> ActionOutcome:
    subject = _one_line(ctx.render(options["subject"]))[:255]
    due_at = ctx.now + timedelta(days=options.get("due_in_days", 1))
    owner_id = options.get("owner_id") or None
    return _crm(
        ctx,
        ActionType.CREATE_TASK,
        f"task for {f'CRM user {owner_id}' if owner_id else 'the record owner'}",
        subject=subject,
        body=ctx.render(options.get("body", "")),
        due_at=due_at.isoformat(),
        owner_id=owner_id,
    )


def assign_owner(ctx: ActionContext, options: Mapping[str, Any]) -> ActionOutcome:
    owners = options["owner_ids"]
    owner_id = owners[ctx.owner_turn % len(owners)]
    return _crm(ctx, ActionType.ASSIGN_OWNER, f"owner: CRM user {owner_id}", owner_id=owner_id)


def set_field(ctx: ActionContext, options: Mapping[str, Any]) -> ActionOutcome:
    value = ctx.render(options.get("value", ""))
    return _crm(ctx, ActionType.SET_FIELD, f"field {options['field']}", fields={options["field"]: value})


def add_to_list(ctx: ActionContext, options: Mapping[str, Any]) -> ActionOutcome:
    return _crm(ctx, ActionType.ADD_TO_LIST, f"list {options['list_id']}", list_id=options["list_id"])


def add_note(ctx: ActionContext, options: Mapping[str, Any]) -> ActionOutcome:
    body = ctx.render(options["body"])
    return _crm(ctx, ActionType.ADD_NOTE, "note", body=body, occurred_at=ctx.now.isoformat())


def send_email(ctx: ActionContext, options: Mapping[str, Any]) -> ActionOutcome:
    who = ctx.prospect.full_name or ctx.prospect.email or f"prospect #{ctx.prospect.pk}"
    subject = _one_line(ctx.render(options.get("subject") or f"Capsule trigger: {ctx.rule.name} – {who}"))[:255]
    body = _email_body(ctx, ctx.render(options.get("body", "")))
    send = partial(send_trigger_email, ctx.firing.pk, ctx.index, options["to"], subject, body)
    # After commit: a rolled-back ingest must not have told anyone anything.
    return ActionOutcome("queued", f"e-mail to {options['to']}", after_commit=send)


def send_webhook(ctx: ActionContext, options: Mapping[str, Any]) -> ActionOutcome:
    problem = _webhooks_unavailable()
    if problem:
        # Not raised: an exception here would roll the whole ingest back, and the platform would
        # retry it forever. The firing log and the error log say what is missing.
        log.error("trigger firing %s: webhook not sent: %s", ctx.firing.pk, problem)
        return ActionOutcome("failed", f"webhook not sent: {problem}")
    from integrations.webhooks_out.emit import emit

    # The firing key is the idempotency key: one delivery per subscription and firing, ever.
    count = emit(
        ctx.account,
        WEBHOOK_EVENT_TYPE,
        webhook_data(ctx),
        idempotency_key=ctx.firing.key,
        occurred_at=ctx.firing.fired_at,
    )
    return ActionOutcome("queued", f"{count} webhook deliver{'y' if count == 1 else 'ies'}")


HANDLERS: dict[str, Callable[[ActionContext, Mapping[str, Any]], ActionOutcome]] = {
    ActionType.CREATE_TASK: create_task,
    ActionType.ASSIGN_OWNER: assign_owner,
    ActionType.SET_FIELD: set_field,
    ActionType.ADD_TO_LIST: add_to_list,
    ActionType.ADD_NOTE: add_note,
    ActionType.SEND_EMAIL: send_email,
    ActionType.SEND_WEBHOOK: send_webhook,
}
assert set(HANDLERS) == set(ActionType.values)


def perform(ctx: ActionContext, action: Mapping[str, Any]) -> ActionOutcome:
    options = {key: value for key, value in action.items() if key != "type"}
    return HANDLERS[action["type"]](ctx, options)


# --- e-mail ----------------------------------------------------------------------------------------


def _one_line(text: str) -> str:
    # E-mail headers and CRM subjects are single lines; a name with a line break must not split them.
    return " ".join(text.split())


def _email_body(ctx: ActionContext, intro: str) -> str:
    prospect = ctx.prospect
    lines = [intro, ""] if intro else []
    lines += [
        f"Rule: {ctx.rule.name}",
        f"Prospect: {prospect.full_name or '—'} <{prospect.email or 'erased'}>",
    ]
    if prospect.company or prospect.job_title:
        lines.append(f"Company: {', '.join(part for part in (prospect.job_title, prospect.company) if part)}")
    lines.append(f"Lead score: {ctx.score}{f' ({ctx.grade})' if ctx.grade else ''}")
    if ctx.event is not None:
        values = ctx.placeholder_values()
        where = f" in “{ctx.capsule}”" if ctx.capsule else ""
        lines.append(f"Event: {values['event']}{where} at {ctx.event.occurred_at:%Y-%m-%d %H:%M %Z}")
    url = settings.PUBLIC_BASE_URL + reverse("triggers:firings", kwargs={"account_slug": ctx.account.slug})
    lines += ["", f"All firings of your workflow triggers: {url}"]
    return "\n".join(lines) + "\n"


def send_trigger_email(firing_id: int, index: int, to: str, subject: str, body: str) -> None:
    """Send one trigger e-mail (run once, after the firing committed) and note the result on the firing."""
    try:
        send_mail(subject=subject, message=body, from_email=None, recipient_list=[to])
    except Exception as exc:  # SMTP trouble must not hide: the firing log shows it, ops see the log
        log.exception("trigger firing %s: e-mail action %s to %s failed", firing_id, index, to)
        _set_status(firing_id, index, "failed", f"e-mail to {to} failed: {type(exc).__name__}")
    else:
        _set_status(firing_id, index, "sent", f"e-mail to {to}")


def _set_status(firing_id: int, index: int, status: str, detail: str) -> None:
    with transaction.atomic():
        firing = TriggerFiring.objects.select_for_update().filter(pk=firing_id).first()
        if firing is None or index >= len(firing.actions):
            return  # the rule (and its firings) was deleted meanwhile
        firing.actions[index] = {**firing.actions[index], "status": status, "detail": detail}
        firing.save(update_fields=["actions"])


# --- outgoing webhooks -----------------------------------------------------------------------------


def _webhooks_unavailable() -> str:
    """Why a ``trigger.fired`` webhook cannot be emitted here, or "" when it can."""
    # Imported when needed: outgoing webhooks are a separate part of integrations.
    try:
        from integrations.webhooks_out import catalogue
    except ModuleNotFoundError as exc:
        if exc.name is not None and exc.name.startswith("integrations.webhooks_out"):
            return "outgoing webhooks are not installed"
        raise
    if not catalogue.is_known(WEBHOOK_EVENT_TYPE):
        return f"the outgoing webhook catalogue has no “{WEBHOOK_EVENT_TYPE}” event"
    return ""


def webhook_data(ctx: ActionContext) -> dict[str, Any]:
    """The ``trigger.fired`` message's ``data`` (shaped like the catalogue's capsule events).

    Personal fields only for prospects whose data may leave us (consent where the account
    requires it, never once erased); the id, score and grade always.
    """
    prospect: dict[str, Any] = {"id": ctx.prospect.pk}
    if ctx.prospect.may_sync():
        prospect.update(
            email=ctx.prospect.email,
            first_name=ctx.prospect.first_name,
            last_name=ctx.prospect.last_name,
            full_name=ctx.prospect.full_name,
            company=ctx.prospect.company,
            job_title=ctx.prospect.job_title,
        )
    prospect.update(score=ctx.score, grade=ctx.grade)
    event = None
    if ctx.event is not None:
        capsule = ctx.event.capsule if ctx.event.capsule_id else None
        event = {
            "event_id": ctx.event.external_id,
            "event_type": ctx.event.type,
            "occurred_at": ctx.event.occurred_at.isoformat(),
            "capsule": {"id": capsule.external_id, "title": capsule.title, "url": capsule.url} if capsule else None,
        }
    return {
        "rule": {"id": ctx.rule.pk, "name": ctx.rule.name, "condition": ctx.rule.condition_type},
        "firing": {"id": ctx.firing.pk, "key": ctx.firing.key, "fired_at": ctx.firing.fired_at.isoformat()},
        "prospect": prospect,
        "event": event,
    }
