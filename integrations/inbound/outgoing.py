"""The outgoing webhooks of the inbound direction: ``crm.contact.updated`` and ``crm.deal.stage_changed``.

Emitted inside the transaction that applies the change (integrations.webhooks_out writes its
delivery rows there), keyed by the inbound event, so reprocessing an event never sends twice.
Payload shapes are the catalogue's (integrations.webhooks_out.catalogue).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any

from crmsync.models import Prospect
from integrations.models import Connection

log = logging.getLogger(__name__)

CONTACT_UPDATED = "crm.contact.updated"
DEAL_STAGE_CHANGED = "crm.deal.stage_changed"


def _emit(connection: Connection, event_type: str, data: dict[str, Any], key: str) -> None:
    try:
        from integrations.webhooks_out.emit import emit
    except ImportError:  # outgoing webhooks not installed in this build: nothing subscribes
        log.debug("outgoing webhooks unavailable; %s not emitted", event_type)
        return
    emit(connection.account, event_type, data, idempotency_key=key)


def _prospect(prospect: Prospect) -> dict[str, Any]:
    return {
        "id": prospect.pk,
        "email": prospect.email,
        "first_name": prospect.first_name,
        "last_name": prospect.last_name,
        "full_name": prospect.full_name,
        "company": prospect.company,
        "job_title": prospect.job_title,
    }


def _iso(moment: dt.datetime | None) -> str | None:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z") if moment else None


def contact_updated(
    connection: Connection,
    prospect: Prospect,
    *,
    object_kind: str,
    crm_id: str,
    change: str,
    changed_fields: Mapping[str, Mapping[str, Any]],
    changed_at: dt.datetime,
    key: str,
    merged_into: str | None = None,
) -> None:
    data: dict[str, Any] = {
        "prospect": _prospect(prospect),
        "crm": {"provider": connection.provider, "object_type": object_kind, "id": crm_id},
        "change": change,
        "changed_fields": {name: dict(values) for name, values in changed_fields.items()},
        "changed_at": _iso(changed_at),
    }
    if merged_into:
        data["merged_into"] = merged_into
    _emit(connection, CONTACT_UPDATED, data, key)


def deal_stage_changed(
    connection: Connection,
    prospect: Prospect,
    *,
    crm_id: str,
    deal: Mapping[str, Any],
    previous_stage: str,
    stage: str,
    changed_at: dt.datetime,
    key: str,
) -> None:
    data = {
        "prospect": _prospect(prospect),
        "crm": {"provider": connection.provider, "object_type": "deal", "id": crm_id},
        "deal": dict(deal),
        "previous_stage": previous_stage or None,
        "stage": stage,
        "changed_at": _iso(changed_at),
    }
    _emit(connection, DEAL_STAGE_CHANGED, data, key)
