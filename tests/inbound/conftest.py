"""Fixtures for inbound (CRM → capsule) tests: a connected CRM emulator, a linked prospect, mapping
rows, and helpers that deliver recorded webhook fixtures through the real receiver.

- ``hub``: a HubSpot portal (real emulator, real connector) connected to ``account`` with direction
  "both"; contact 101 in the portal is linked to prospect Ann; rows map ``jobtitle`` ↔ job_title
  (both, CRM wins), ``firstname`` ↔ first_name (both) and ``company`` ← company (from CRM).
  ``hub.deliver("contact.propertyChange")`` posts ``fixtures/hubspot/<name>.json`` signed as
  HubSpot signs, then runs the processing job, and returns the receiver's response.
- ``hubspot_profile`` / ``salesforce_profile``: register the connectors of tests/inbound/connectors.py
  (the real ones plus the optional inbound extension points) for the provider.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import django_rq
import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

from crmsync.models import Account, Prospect
from integrations import registry
from integrations.inbound import jobs
from integrations.models import Connection, Direction, InboundEvent, ProspectCrmData, RecordLink
from integrations.sandbox.hubspot import HubSpotEmulator
from mapping.models import FieldMapping
from tests.integrations.conftest import (  # noqa: F401 - pytest fixtures
    hubspot_emulator,
    hubspot_server,
    hubspot_token,
    make_hubspot_connection,
    sandbox_ca,
)
from tests.integrations.salesforce_fixtures import (  # noqa: F401 - pytest fixtures
    make_salesforce_connection,
    salesforce_ca,
    salesforce_emulator,
    salesforce_server,
)

FIXTURES = Path(__file__).parent / "fixtures"


def load_fixture(provider: str, name: str) -> Any:
    return json.loads((FIXTURES / provider / f"{name}.json").read_text())


def map_field(connection: Connection, source_key: str, target_field: str, **options: Any) -> FieldMapping:
    options.setdefault("direction", "both")
    options.setdefault("target_object", "contact")
    return FieldMapping.objects.create(
        connection=connection,
        source_key=source_key,
        target_field=target_field,
        order=FieldMapping.objects.count(),
        **options,
    )


def use_connector(monkeypatch, provider: str, path: str) -> None:
    """Register ``path`` as the provider's connector class for one test."""
    spec = registry.providers()[provider]
    monkeypatch.setitem(registry.providers(), provider, dataclasses.replace(spec, connector_path=path))


@pytest.fixture(autouse=True)
def _no_stray_inbound_jobs() -> Iterator[None]:
    """Jobs these tests enqueue on the test Redis (kicks, polls) are run by the tests themselves:
    none is left for a worker another test starts."""
    yield
    for job in django_rq.get_queue("default").jobs:
        if job.func_name.startswith("integrations.inbound."):
            job.delete()


@pytest.fixture
def hubspot_profile(monkeypatch) -> None:
    use_connector(monkeypatch, "hubspot", "tests.inbound.connectors.HubSpotWithInbound")


@pytest.fixture
def salesforce_profile(monkeypatch) -> None:
    use_connector(monkeypatch, "salesforce", "tests.inbound.connectors.SalesforceWithInbound")


class HubSpotInbound:
    """One connected portal with a linked contact, and the means to send it webhooks."""

    def __init__(
        self, client: Client, emulator: HubSpotEmulator, connection: Connection, prospect: Prospect, link: RecordLink
    ) -> None:
        self.client, self.emulator = client, emulator
        self.connection, self.prospect, self.link = connection, prospect, link

    @property
    def path(self) -> str:
        return reverse("integrations:crm_webhook", kwargs={"provider": "hubspot", "connection_id": self.connection.pk})

    def post(
        self,
        events: list[dict[str, Any]],
        *,
        secret: str | None = None,
        timestamp_ms: int | None = None,
        drop: tuple[str, ...] = (),
        path: str | None = None,
    ):
        """POST events signed as HubSpot signs them (with the app's client secret unless told)."""
        path = path or self.path
        headers, body = self.emulator.make_webhook_request(
            settings.PUBLIC_BASE_URL + path, events, secret, timestamp_ms=timestamp_ms
        )
        headers = {k: v for k, v in headers.items() if k != "Content-Type" and k not in drop}
        return self.client.post(path, data=body, content_type="application/json", headers=headers)

    def process(self) -> dict[str, int]:
        return jobs.process_pending(self.connection.pk)

    def deliver(self, name: str):
        """Post the recorded fixture ``fixtures/hubspot/<name>.json``, then run the processing job."""
        response = self.post(load_fixture("hubspot", name))
        self.process()
        return response

    def data(self) -> ProspectCrmData:
        return ProspectCrmData.objects.filter(prospect=self.prospect).first() or ProspectCrmData(prospect=self.prospect)

    def crm_fields(self) -> dict[str, Any]:
        return self.data().fields

    def link_state(self) -> tuple[str, str]:
        self.link.refresh_from_db()
        return self.link.state, self.link.crm_id

    def reasons(self) -> list[tuple[str, str]]:
        rows = InboundEvent.objects.filter(connection=self.connection).order_by("id")
        return [(e.state, e.reason) for e in rows]


@pytest.fixture
def hub(account: Account, make_hubspot_connection, hubspot_emulator: HubSpotEmulator) -> Iterator[HubSpotInbound]:  # noqa: F811
    connection = make_hubspot_connection(account)
    connection.direction = Direction.BOTH
    connection.save(update_fields=["direction", "updated_at"])
    contact_id = hubspot_emulator.create_record(
        "contacts",
        {
            "email": "ann@example.com",
            "firstname": "Ann",
            "lastname": "Lee",
            "jobtitle": "CTO",
            "company": "Northwind Traders",
        },
    )
    assert contact_id == "101"  # the recorded fixtures name this id
    prospect = Prospect.objects.create(
        account=account,
        email="ann@example.com",
        first_name="Ann",
        last_name="Lee",
        job_title="CTO",
        company="Northwind",
    )
    link = RecordLink.objects.create(
        connection=connection,
        prospect=prospect,
        crm_object_type="contact",
        crm_id=contact_id,
        last_sent_fields={"email": "ann@example.com", "firstname": "Ann", "lastname": "Lee"},
    )
    map_field(connection, "job_title", "jobtitle")
    map_field(connection, "first_name", "firstname")
    map_field(connection, "company", "company", direction="from_crm")
    yield HubSpotInbound(Client(), hubspot_emulator, connection, prospect, link)
