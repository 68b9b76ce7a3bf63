"""The workflow "Trigger webhook" action (crm-reference §7.7): no subscription API, no signature.

An admin builds a workflow (e.g. "when a contact is updated") whose action POSTs a JSON body
templated with placeholders to a URL, with optional custom headers (we ask for one carrying the
connection's shared secret). ``WorkflowWebhooks.send`` plays that action: it renders the body the
Capsule docs tell the admin to paste (``payload``) for a record and POSTs it over real HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import requests

if TYPE_CHECKING:
    from integrations.sandbox.freshsales.app import FreshsalesEmulator

SECRET_HEADER = "X-Capsule-Webhook-Secret"


@dataclass
class Delivery:
    url: str
    body: dict[str, Any]
    headers: dict[str, str]
    status: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class WorkflowWebhooks:
    def __init__(self, app: FreshsalesEmulator) -> None:
        self.app = app
        self.deliveries: list[Delivery] = []

    def payload(self, entity: str, record_id: int, event: str = "updated") -> dict[str, Any]:
        """The body of the documented workflow template for one record (``entity``: contact or deal)."""
        record = self.app.get(f"{entity}s", record_id) or {"id": record_id}
        body: dict[str, Any] = {
            "entity": entity,
            "event": event,
            "id": record["id"],
            "updated_at": record.get("updated_at"),
            "updater_id": record.get("updater_id"),
        }
        if entity == "contact":
            body["email"] = record.get("email")
        return body

    def send(
        self,
        url: str,
        entity: str,
        record_id: int,
        *,
        event: str = "updated",
        secret: str | None = None,
        headers: dict[str, str] | None = None,
        verify: Any = True,
    ) -> Delivery:
        sent_headers = {"Content-Type": "application/json", **(headers or {})}
        if secret is not None:
            sent_headers[SECRET_HEADER] = secret
        delivery = Delivery(url, self.payload(entity, record_id, event), sent_headers)
        try:
            response = requests.post(url, json=delivery.body, headers=sent_headers, timeout=10, verify=verify)
            delivery.status = response.status_code
        except requests.RequestException:
            delivery.status = None  # Freshsales does not document retries of workflow webhooks
        self.deliveries.append(delivery)
        return delivery
