"""Timeline activities, notes, tasks and deals for the Close connector (see keyed.py for how each
is written exactly once)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from integrations.concurrency import ThreadSeams, run_bounded
from integrations.connector import ActivityInput, DealInput, NoteInput, TaskInput, WriteOutcome
from integrations.errors import RecordError
from integrations.http import CrmHttp
from integrations.providers.close import failures, keyed
from integrations.providers.close.people import People
from integrations.providers.close.schema import CustomFields

MAX_TITLE = 200


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "Capsule note")


def _stale_type(error: RecordError) -> bool:
    return error.status == 400 and (error.field.startswith("custom.") or error.field == "custom_activity_type_id")


def _moment(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


class Engagement:
    def __init__(
        self,
        http: CrmHttp,
        people: People,
        fields: CustomFields,
        types: keyed.ActivityTypes,
        *,
        page_size: int,
        concurrency: int,
        seams: ThreadSeams,
    ) -> None:
        self.http = http
        self.people = people
        self.fields = fields
        self.types = types
        self.page_size = page_size
        self.concurrency = concurrency
        self.seams = seams
        self._statuses: list[Mapping[str, Any]] | None = None

    # -- shared -------------------------------------------------------------------------------------
    def _write_missing(
        self,
        items: Sequence[Any],
        existing: Mapping[str, str],
        leads: Mapping[str, str],
        create: Callable[[CrmHttp, Any, str], str],
    ) -> list[WriteOutcome]:
        """Outcomes in input order: existing keys answered, missing ones created (once per key)."""
        outcomes: dict[str, WriteOutcome] = {}
        todo: dict[str, Any] = {}
        for item in items:
            if item.key in existing:
                outcomes[item.key] = WriteOutcome(item.key, crm_id=existing[item.key])
            elif not leads.get(item.person_crm_id):
                outcomes[item.key] = keyed.missing_contact(item.key, item.person_crm_id)
            else:
                todo.setdefault(item.key, item)
        results = run_bounded(
            list(todo.values()),
            failures.patient(
                lambda http, item: WriteOutcome(
                    item.key, crm_id=create(http, item, leads[item.person_crm_id]), created=True
                )
            ),
            seams=self.seams,
            workers=self.concurrency,
            on_record_error=lambda item, error: WriteOutcome(item.key, error=error),
            thread_name="close",
        )
        outcomes.update(dict(zip(todo, results, strict=True)))  # type: ignore[arg-type]
        return [outcomes[item.key] for item in items]

    def _leads(self, items: Sequence[Any]) -> dict[str, str]:
        return self.people.leads_of([item.person_crm_id for item in items if item.person_crm_id])

    # -- activities ----------------------------------------------------------------------------------------
    def activities(self, inputs: Sequence[ActivityInput]) -> list[WriteOutcome]:
        """Custom Activities of our type. When Close refuses our type or one of its fields (changed
        or deleted in Close since this process looked), the type is looked up again, made again
        if it is gone, and the refused activities written once more."""
        outcomes = self._activities(inputs)
        stale = [i for i, o in enumerate(outcomes) if o.error is not None and _stale_type(o.error)]
        if stale:
            self.types.forget()
            again = self._activities([inputs[i] for i in stale])
            for index, outcome in zip(stale, again, strict=True):
                outcomes[index] = outcome
        return outcomes

    def _activities(self, inputs: Sequence[ActivityInput]) -> list[WriteOutcome]:
        if not inputs:
            return []
        kind = self.types.get()
        leads = self._leads(inputs)
        key_column = f"custom.{kind.key_field}"

        def key_of_row(row: Mapping[str, Any]) -> str | None:
            if row.get("custom_activity_type_id") != kind.type_id:
                return None
            return str(row.get(key_column) or "") or None

        existing = (
            keyed.existing_activities(
                self.http,
                [leads[i.person_crm_id] for i in inputs if leads.get(i.person_crm_id)],
                [_moment(i.occurred_at) for i in inputs],
                key_of_row,
                ["custom_activity_type_id", key_column],
                self.page_size,
            )
            if leads
            else {}
        )

        def create(http: CrmHttp, item: ActivityInput, lead_id: str) -> str:
            body = {
                "custom_activity_type_id": kind.type_id,
                "lead_id": lead_id,
                "contact_id": item.person_crm_id,
                "activity_at": _moment(item.occurred_at).astimezone(dt.UTC).isoformat(),
                "status": "published",
                key_column: item.key,
                f"custom.{kind.subject_field}": item.subject[:255],
                f"custom.{kind.details_field}": item.body,
            }
            return str((http.json("POST", "activity/custom/", json=body) or {})["id"])

        return self._write_missing(inputs, existing, leads, create)

    # -- notes ------------------------------------------------------------------------------------------------
    def notes(self, inputs: Sequence[NoteInput]) -> list[WriteOutcome]:
        if not inputs:
            return []
        leads = self._leads(inputs)
        existing = (
            keyed.existing_activities(
                self.http,
                [leads[i.person_crm_id] for i in inputs if leads.get(i.person_crm_id)],
                [_moment(i.occurred_at) for i in inputs],
                lambda row: keyed.key_of(row.get("title")) if row.get("_type") == "Note" else None,
                ["title"],
                self.page_size,
            )
            if leads
            else {}
        )

        def create(http: CrmHttp, item: NoteInput, lead_id: str) -> str:
            body = {
                "lead_id": lead_id,
                "contact_id": item.person_crm_id,
                "title": keyed.key_prefix(item.key, _first_line(item.body))[:MAX_TITLE],
                "note": item.body,
                "activity_at": _moment(item.occurred_at).astimezone(dt.UTC).isoformat(),
            }
            return str((http.json("POST", "activity/note/", json=body) or {})["id"])

        return self._write_missing(inputs, existing, leads, create)

    # -- tasks ---------------------------------------------------------------------------------------------------
    def tasks(self, inputs: Sequence[TaskInput]) -> list[WriteOutcome]:
        if not inputs:
            return []
        leads = self._leads(inputs)
        existing: dict[str, str] = {}
        for lead_id in sorted({leads[i.person_crm_id] for i in inputs if leads.get(i.person_crm_id)}):
            params = {"lead_id": lead_id, "_type": "lead", "_fields": "id,text"}
            for row in keyed.list_pages(self.http, "task/", params, self.page_size):
                key = keyed.key_of(row.get("text"))
                if key and key not in existing:
                    existing[key] = str(row["id"])

        def create(http: CrmHttp, item: TaskInput, lead_id: str) -> str:
            text = keyed.key_prefix(item.key, item.subject) + (f"\n{item.body}" if item.body else "")
            body: dict[str, Any] = {
                "_type": "lead",
                "lead_id": lead_id,
                "text": text,
                "date": _moment(item.due_at).astimezone(dt.UTC).date().isoformat(),
            }
            if item.owner_id:
                body["assigned_to"] = item.owner_id
            return str((http.json("POST", "task/", json=body) or {})["id"])

        return self._write_missing(inputs, existing, leads, create)

    # -- deals -------------------------------------------------------------------------------------------------------
    def statuses(self) -> list[Mapping[str, Any]]:
        if self._statuses is None:
            answer = self.http.json("GET", "status/opportunity/") or {}
            self._statuses = [s for s in answer.get("data") or [] if isinstance(s, Mapping)]
        return self._statuses

    def _status(self, stage: str | None) -> Mapping[str, Any] | None:
        statuses = self.statuses()
        if stage:
            wanted = stage.strip().lower()
            match = next(
                (s for s in statuses if str(s.get("id")) == stage or str(s.get("label", "")).lower() == wanted), None
            )
            if match is None:
                labels = ", ".join(str(s.get("label")) for s in statuses)
                raise RecordError(
                    f"Close has no opportunity status “{stage}” (it has: {labels})",
                    code="unknown_status",
                    field="status_id",
                )
            return match
        return next((s for s in statuses if s.get("type") == "won"), None)

    def deal(self, deal: DealInput) -> WriteOutcome:
        key_field = str(self.fields.ensure("opportunity", keyed.DEAL_KEY_FIELD, "text")["id"])
        key_column = f"custom.{key_field}"
        lead_id = self.people.leads_of([deal.person_crm_id]).get(deal.person_crm_id)
        if not lead_id:
            return keyed.missing_contact(deal.key, deal.person_crm_id)
        status = self._status(deal.stage)
        body: dict[str, Any] = {
            "note": deal.name
            + (f" ({deal.amount:,.2f} {deal.currency.upper()})" if deal.currency and deal.amount else ""),
            "contact_id": deal.person_crm_id,
            "value_period": "one_time",
        }
        if deal.amount is not None:
            body["value"] = round(deal.amount * 100)  # Close values are integers in cents
        if status is not None:
            body["status_id"] = status["id"]
            if status.get("type") == "won":
                body["confidence"] = 100
                if deal.close_date is not None:
                    body["date_won"] = deal.close_date.isoformat()
        params = {"lead_id": lead_id, "_fields": f"id,note,value,status_id,{key_column}"}
        for row in keyed.list_pages(self.http, "opportunity/", params, self.page_size):
            if row.get(key_column) == deal.key:
                changed = {k: v for k, v in body.items() if k in ("note", "value", "status_id") and row.get(k) != v}
                if changed:
                    self.http.json("PUT", f"opportunity/{row['id']}/", json=changed)
                return WriteOutcome(deal.key, crm_id=str(row["id"]))
        answer = self.http.json("POST", "opportunity/", json={**body, "lead_id": lead_id, key_column: deal.key}) or {}
        return WriteOutcome(deal.key, crm_id=str(answer.get("id")), created=True)
