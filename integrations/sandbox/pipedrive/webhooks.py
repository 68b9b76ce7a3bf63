"""Webhooks v2 out of the sandbox: the body Pipedrive sends, authenticated with HTTP Basic.

Pipedrive signs nothing: each webhook carries the ``http_auth_user``/``http_auth_password`` it was
registered with as an ``Authorization: Basic`` header (crm-reference §3.7). A v2 body is
``{"meta": {…}, "data": {…current object…}, "previous": {…changed fields' old values…}}``;
``meta.change_source`` is "api" for changes made through the API and "app" for changes made in
Pipedrive's interface, and ``meta.user_id`` is who made them — together the echo-suppression
signal (§11.9).
"""

from __future__ import annotations

import base64
import copy
import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterable
from typing import Any

from integrations.sandbox.pipedrive.records import Change, Records


class WebhookSender:
    records: Records
    base_url: str
    user: dict[str, Any]

    def webhook_payload(
        self, change: Change, *, webhook_id: int | None = None, webhook_owner_id: int | None = None
    ) -> dict[str, Any]:
        """The v2 body of one change, as a webhook subscribed to its entity receives it."""
        data = copy.deepcopy(change.data) if change.action != "delete" else None
        previous = copy.deepcopy(change.previous) if change.action == "change" else None
        if change.action == "delete":
            previous = copy.deepcopy(change.data)
        return {
            "meta": {
                "action": change.action,
                "entity": change.entity,
                "entity_id": str(change.entity_id),
                "id": str(uuid.uuid4()),
                "company_id": str(self.records.company_id),
                "user_id": str(change.user_id),
                "correlation_id": str(uuid.uuid4()),
                "timestamp": change.at.isoformat().replace("+00:00", "Z"),
                "type": "general",
                "version": "2.0",
                "webhook_id": str(webhook_id or 0),
                "webhook_owner_id": str(webhook_owner_id or self.user["id"]),
                "change_source": change.change_source,
                "attempt": 1,
                "host": self.base_url.split("://", 1)[-1],
                "is_bulk_edit": False,
                "permitted_user_ids": [str(u) for u in self.records.users],
            },
            "data": data,
            "previous": previous,
        }

    def events_for_changes(self, changes: Iterable[Change] | None = None) -> list[dict[str, Any]]:
        """Webhook bodies for entries of the change log (all of it by default)."""
        with self.lock:  # type: ignore[attr-defined]
            chosen = list(self.records.changes if changes is None else changes)
            return [self.webhook_payload(c) for c in chosen]

    @staticmethod
    def basic_header(user: str, password: str) -> str:
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    def send_webhook(
        self, url: str, event: dict[str, Any], user: str | None, password: str | None, *, timeout: float = 5.0
    ) -> tuple[int, bytes]:
        """POST one webhook body to ``url`` with HTTP Basic credentials; (status, body). Never raises
        on an HTTP error status. ``user``/``password`` None sends no Authorization header."""
        body = json.dumps(event, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json", "User-Agent": "Pipedrive Webhooks"}
        if user is not None or password is not None:
            headers["Authorization"] = self.basic_header(user or "", password or "")
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:
                return answer.status, answer.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def deliver(self, changes: Iterable[Change] | None = None) -> list[tuple[int, int]]:
        """Send changes to every registered v2 webhook whose action and object match, with its own
        credentials, as Pipedrive does; returns (webhook id, HTTP status) per delivery."""
        with self.lock:  # type: ignore[attr-defined]
            chosen = list(self.records.changes if changes is None else changes)
            hooks = [dict(w) for w in self.records.webhooks.values() if w["version"] == "2.0"]
        results = []
        for hook in hooks:
            for change in chosen:
                if hook["event_object"] not in ("*", change.entity) or hook["event_action"] not in (
                    "*",
                    change.action,
                ):
                    continue
                event = self.webhook_payload(change, webhook_id=hook["id"], webhook_owner_id=hook["owner_id"])
                status, _body = self.send_webhook(
                    hook["subscription_url"], event, hook.get("http_auth_user"), hook.get("http_auth_password")
                )
                results.append((hook["id"], status))
        return results
