"""The HubSpot and Salesforce connectors with the optional inbound extension points filled in.

These are the class attributes and methods proposed for the real connectors (see the inbound
report); until they land there, tests that exercise deal stages, owners, contact preferences and
echo detection by the CRM's own signal register these subclasses for the provider (``profile``
fixture in conftest.py). Everything else is the real connector talking to the real emulator.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import ClassVar

from integrations.connector import InboundChange
from integrations.providers.hubspot import webhooks
from integrations.providers.hubspot.connector import HubSpotConnector
from integrations.providers.salesforce.connector import SalesforceConnector


class HubSpotWithInbound(HubSpotConnector):
    # hs_email_optout is HubSpot's "unsubscribed from all e-mail"; HubSpot has no standard
    # do-not-contact property, so portals keep one of their own (here: capsule_do_not_contact).
    preference_fields: ClassVar[dict[str, str]] = {
        "hs_email_optout": "unsubscribed",
        "capsule_do_not_contact": "do_not_contact",
    }
    owner_fields: ClassVar[dict[str, str]] = {"hubspot_owner_id": "owner_id"}
    deal_stage_field = "dealstage"
    deal_fields: ClassVar[dict[str, str]] = {"dealname": "name", "amount": "amount", "deal_currency_code": "currency"}
    own_app_ids: ClassVar[set[str]] = set()  # our app's id(s): HubSpot's sourceId of INTEGRATION writes

    @classmethod
    def is_own_change(cls, change: InboundChange, connection) -> bool:
        source, _, source_id = change.source.partition(":")
        return source == "INTEGRATION" and source_id in cls.own_app_ids

    @classmethod
    def split_webhook(cls, body: bytes) -> dict[str, list[InboundChange]]:
        """App-wide deliveries mix portals: each event's portalId says whose it is."""
        events = json.loads(body)
        if not isinstance(events, list):
            raise ValueError("HubSpot sends a JSON array of events")
        by_portal: dict[str, list[InboundChange]] = {}
        for event in events:
            if isinstance(event, Mapping):
                changes = webhooks.parse(json.dumps([event]).encode())
                by_portal.setdefault(str(event.get("portalId")), []).extend(changes)
        return by_portal

    def people_of_deal(self, crm_id: str) -> list[str]:
        answer = self.http.json("GET", f"/crm/v4/objects/deals/{crm_id}/associations/contacts") or {}
        return [str(row["toObjectId"]) for row in answer.get("results") or []]


class SalesforceWithInbound(SalesforceConnector):
    preference_fields: ClassVar[dict[str, str]] = {"HasOptedOutOfEmail": "unsubscribed", "DoNotCall": "do_not_contact"}
    owner_fields: ClassVar[dict[str, str]] = {"OwnerId": "owner_id"}
    deal_stage_field = "StageName"
    echo_fields = ("LastModifiedById",)
    integration_user_ids: ClassVar[set[str]] = set()  # the connection's API user (identity().user_id)

    @classmethod
    def is_own_change(cls, change: InboundChange, connection) -> bool:
        return str(change.properties.get("LastModifiedById") or "") in cls.integration_user_ids


class HubSpotWithRegistration(HubSpotWithInbound):
    """As if HubSpot took per-connection subscriptions: records what it was asked, for the registration tests."""

    calls: ClassVar[list[tuple]] = []

    def register_webhooks(self, callback_url: str, secret: str) -> str:
        self.calls.append(("register", callback_url, secret))
        return f"sub-{len(self.calls)}"

    def unregister_webhooks(self, ref: str) -> None:
        self.calls.append(("unregister", ref, self.credentials.access_token))


class HubSpotWithoutPreferences(HubSpotConnector):
    """A CRM connector that declares no contact-preference fields."""

    preference_fields: ClassVar[dict[str, str]] = {}


class HubSpotPlain(HubSpotWithoutPreferences):
    """A CRM connector with none of the optional inbound extension points."""

    owner_fields: ClassVar[dict[str, str]] = {}
    deal_stage_field = ""
    deal_fields: ClassVar[dict[str, str]] = {}
    split_webhook = None
