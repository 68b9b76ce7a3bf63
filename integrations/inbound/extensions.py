"""The optional connector extension points of the CRM → capsule direction, with their defaults.

Core inbound code asks a connector class (or instance) for everything provider-specific through
the functions here, never by the provider's name. A connector that defines nothing still works:
its webhooks are verified with ``verify_webhook`` and parsed with ``parse_webhook``, its records
polled with ``changes_since``, and mapped fields flow back; the extras below add echo detection by
the CRM's own signal, contact preferences, owner, deal stage and webhook registration.

Optional, on the connector class (see docs/ADDING_A_CRM.md, "Inbound changes"):

- ``webhook_secret_for(connection) -> str`` (classmethod): the key inbound webhooks of this
  connection are verified with. Default: the secret registered with the CRM for this connection
  (``connection.webhook_secret``), or else the OAuth app's client secret (CRMs such as HubSpot
  sign every delivery with it).
- ``split_webhook(body) -> dict[str, list[InboundChange]]`` (classmethod): the changes of a
  delivery by CRM account id, for CRMs whose subscriptions are app-wide (one URL for every
  account). Default: none — every change of a delivery belongs to the connection it was sent to.
- ``is_own_change(change, connection) -> bool`` (classmethod): whether the CRM says the change
  was written by us (HubSpot ``changeSource``/``sourceId``, Salesforce ``LastModifiedById``).
  Default: False (the provider-neutral comparison with what we last sent still applies).
- ``preference_fields: dict[str, str]``: CRM field -> ``"unsubscribed"`` or ``"do_not_contact"``.
  Default: {}.
- ``owner_fields: dict[str, str]``: CRM field -> ``"owner_id"`` or ``"owner_name"`` (person records).
  Default: {}.
- ``deal_stage_field: str``: the deal field holding its stage. Default: "" (stage not tracked).
- ``deal_fields: dict[str, str]``: deal field -> ``"name"``, ``"amount"`` or ``"currency"``, for the
  ``crm.deal.stage_changed`` message. Default: {}.
- ``people_of_deal(crm_id) -> list[str]`` (instance method): the CRM ids of the contacts or
  leads a deal is associated with. Default: the ``associated_people`` entry of the change's
  properties (a list of ids a connector's parser or poller may fill), else none.
- ``polled_kinds(connection) -> tuple[str, ...]`` (classmethod): the object kinds polled for a
  connection. Default: its record type (contact or lead) and deals.
- ``register_webhooks(callback_url, secret) -> str | None`` / ``unregister_webhooks(ref)``
  (instance methods): see integrations.inbound.registration.

- ``echo_fields: tuple[str, ...]``: fields ``is_own_change`` reads (e.g. Salesforce
  ``LastModifiedById``), added to every inbound read. Default: ().

``find_by_id`` and ``changes_since`` are given the fields inbound sync needs (``properties=[…]``
or ``fields=[…]``) when the connector's method takes one of those keywords, as HubSpot's and
Salesforce's do; otherwise they read their defaults.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from typing import TYPE_CHECKING, Any

from integrations.connector import CONTACT, DEAL, LEAD, Connector, InboundChange

if TYPE_CHECKING:
    from integrations.models import Connection

ConnectorClass = type[Connector]

# Preference and owner roles a connector's tables may name.
UNSUBSCRIBED, DO_NOT_CONTACT = "unsubscribed", "do_not_contact"
PREFERENCES = (UNSUBSCRIBED, DO_NOT_CONTACT)
OWNER_ID, OWNER_NAME = "owner_id", "owner_name"
PERSON_KINDS = (CONTACT, LEAD)
# The provider-neutral properties key a parser or poller may fill with a deal's people.
ASSOCIATED_PEOPLE = "associated_people"


def webhook_secret_for(connector_class: ConnectorClass, connection: Connection) -> str:
    method = getattr(connector_class, "webhook_secret_for", None)
    if method is not None:
        return str(method(connection) or "")
    return connection.webhook_secret or connector_class.spec.client_secret or ""


def app_webhook_secret(connector_class: ConnectorClass) -> str:
    """The key app-wide deliveries (no connection in the URL) are verified with: the app's client secret."""
    return connector_class.spec.client_secret or ""


def split_webhook(connector_class: ConnectorClass) -> Callable[[bytes], Mapping[str, list[InboundChange]]] | None:
    return getattr(connector_class, "split_webhook", None)


def echo_fields(connector_class: ConnectorClass) -> tuple[str, ...]:
    return tuple(str(name) for name in getattr(connector_class, "echo_fields", ()) or ())


def is_own_change(connector_class: ConnectorClass, change: InboundChange, connection: Connection) -> bool:
    method = getattr(connector_class, "is_own_change", None)
    return bool(method(change, connection)) if method is not None else False


def _table(connector_class: ConnectorClass, name: str, allowed: Sequence[str]) -> dict[str, str]:
    table = getattr(connector_class, name, None) or {}
    return {str(field): role for field, role in dict(table).items() if role in allowed}


def preference_fields(connector_class: ConnectorClass) -> dict[str, str]:
    return _table(connector_class, "preference_fields", PREFERENCES)


def owner_fields(connector_class: ConnectorClass) -> dict[str, str]:
    return _table(connector_class, "owner_fields", (OWNER_ID, OWNER_NAME))


def deal_fields(connector_class: ConnectorClass) -> dict[str, str]:
    return _table(connector_class, "deal_fields", ("name", "amount", "currency"))


def deal_stage_field(connector_class: ConnectorClass) -> str:
    return str(getattr(connector_class, "deal_stage_field", "") or "")


def polled_kinds(connector_class: ConnectorClass, connection: Connection) -> tuple[str, ...]:
    method = getattr(connector_class, "polled_kinds", None)
    if method is not None:
        return tuple(method(connection))
    person = LEAD if connection.record_type == LEAD else CONTACT
    return (person, DEAL)


def people_of_deal(connector: Connector | None, crm_id: str, properties: Mapping[str, Any]) -> list[str]:
    """The person CRM ids of a deal: from the change itself, else from the connector (a CRM call)."""
    listed = properties.get(ASSOCIATED_PEOPLE)
    if isinstance(listed, list | tuple):
        return [str(i) for i in listed if i not in (None, "")]
    method = getattr(connector, "people_of_deal", None) if connector is not None else None
    return [str(i) for i in method(crm_id)] if method is not None else []


# Connectors name the keyword that limits which fields are read differently (HubSpot
# ``properties``, Salesforce ``fields``); the base class has none yet.
FIELD_KEYWORDS = ("properties", "fields")


@cache
def _field_keyword(method: Callable[..., Any]) -> str | None:
    try:
        parameters = inspect.signature(method).parameters
    except (TypeError, ValueError):
        return None
    return next((name for name in FIELD_KEYWORDS if name in parameters), None)


def field_kwargs(method: Callable[..., Any], wanted: Sequence[str]) -> dict[str, Any]:
    """``{"properties": [...]}`` or ``{"fields": [...]}`` for connector methods that take one."""
    keyword = _field_keyword(getattr(method, "__func__", method))
    return {keyword: sorted(set(wanted))} if wanted and keyword else {}
