"""Echo suppression: a change we wrote ourselves must not come back as a CRM change.

Two independent signals, either one enough:

1. the CRM's own: the connector's optional ``is_own_change(change, connection)`` reads who made
   the change (HubSpot ``changeSource``/``sourceId``, Salesforce ``LastModifiedById`` = the
   integration user; crm-reference §11.9);
2. provider-neutral: every field the change alters equals what we last sent to that record
   (``RecordLink.last_sent_fields``). A person who edits a field to a different value is never
   an echo, whoever the CRM says wrote it.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from integrations.connector import InboundChange
from integrations.inbound import extensions
from integrations.models import Connection

ECHO = "echo"


def _normal(value: Any) -> Any:
    """One spelling per value: CRMs answer strings ("true", "42", "2025-01-31") for what we sent typed."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | Decimal):
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            return str(value)
        return format(number.normalize(), "f") if number == number.to_integral_value() else str(number.normalize())
    if isinstance(value, list | tuple):
        return ";".join(str(_normal(item)) for item in value)
    text = str(value).strip()
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered
    try:
        number = Decimal(text)
    except InvalidOperation:
        return text
    if not number.is_finite():
        return text
    return format(number.normalize(), "f") if number == number.to_integral_value() else str(number.normalize())


def same_value(a: Any, b: Any) -> bool:
    return _normal(a) == _normal(b)


def matches_last_sent(changed: Mapping[str, Any], last_sent: Mapping[str, Any]) -> bool:
    """Whether every changed field holds exactly what we last sent it (and there is a change at all)."""
    return bool(changed) and all(
        name in last_sent and same_value(value, last_sent[name]) for name, value in changed.items()
    )


def is_own_by_source(connection: Connection, change: InboundChange) -> bool:
    return extensions.is_own_change(connection.spec.connector_class(), change, connection)
