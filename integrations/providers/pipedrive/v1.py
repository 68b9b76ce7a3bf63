"""pipedrive-python-lib for the v1 endpoints that are still Pipedrive's supported API.

Which calls: notes, leads, webhooks, the current user and activity types — v1 is their only API
(crm-reference §3). Persons, deals, activities, organizations, fields and search are **never**
asked of v1 here: those v1 routes are deprecated and out of support; the connector sends them to
API v2 through the HTTP seam directly.

Why a subclass and not the library as shipped (§10.2): ``pipedrive.client.Client._request`` sends
with the module-level ``requests.request`` — no timeout, no session, none of the seam's error
mapping, TLS trust or redaction. ``SeamClient`` keeps everything the library does above that line
(URL building from ``Client(domain=…)`` → ``{domain}/v1/…``, parameter and body shapes, the
per-endpoint helpers, ``_parse`` of the JSON answer) and overrides only ``_request`` to send through
our ``CrmHttp.session``. The library's module is not patched, so nothing else in the process that
imports it changes behaviour. The seam's session carries the credential (Bearer or ``x-api-token``),
so the library's own ``set_access_token``/``set_api_token`` are never used: they would put an API
token in the query string, where HTTP libraries log it at DEBUG level. Non-2xx answers are raised
by the seam as ``integrations.errors`` exceptions before the library's own exceptions could be.
"""

from __future__ import annotations

from typing import Any

from pipedrive.client import Client

from integrations.http import CrmHttp
from integrations.providers.pipedrive.wire import data_of, next_start

PAGE = 500  # v1 lists take at most 500 per page


class SeamClient(Client):
    """``pipedrive.client.Client`` whose every request goes through the HTTP seam."""

    def __init__(self, http: CrmHttp) -> None:
        super().__init__(domain=http.base_url)
        self._http = http

    def _request(self, method, url, headers=None, params=None, **kwargs):  # type: ignore[override]
        response = self._http.session.request(
            method.upper(), url, headers=dict(headers or {}), params=dict(params or {}), **kwargs
        )
        return self._parse(response)


class V1:
    """The v1 calls the connector makes, each one library call through ``SeamClient``."""

    def __init__(self, http: CrmHttp) -> None:
        self.client = SeamClient(http)

    def me(self) -> dict[str, Any]:
        return data_of(self.client.users.get_me()) or {}

    # -- notes -----------------------------------------------------------------------------------
    def notes_of_person(self, person_id: int) -> list[dict[str, Any]]:
        """Every note on a person (one call per 500)."""
        notes: list[dict[str, Any]] = []
        start: int | None = 0
        while start is not None:
            answer = self.client.notes.get_all_notes(params={"person_id": person_id, "start": start, "limit": PAGE})
            notes += [n for n in data_of(answer) or [] if isinstance(n, dict)]
            start = next_start(answer)
        return notes

    def add_note(self, body: dict[str, Any]) -> dict[str, Any]:
        return data_of(self.client.notes.create_note(body)) or {}

    # -- leads -------------------------------------------------------------------------------------
    def leads_of_person(self, person_id: int) -> list[dict[str, Any]]:
        answer = self.client.leads.get_all_leads(params={"person_id": person_id, "limit": PAGE})
        return [lead for lead in data_of(answer) or [] if isinstance(lead, dict)]

    def add_lead(self, body: dict[str, Any]) -> dict[str, Any]:
        return data_of(self.client.leads.create_lead(body)) or {}

    # -- webhooks ----------------------------------------------------------------------------------
    def webhooks(self) -> list[dict[str, Any]]:
        return [w for w in data_of(self.client.webhooks.get_hooks_subscription()) or [] if isinstance(w, dict)]

    def add_webhook(self, body: dict[str, Any]) -> dict[str, Any]:
        # The library's create_hook_subscription sends only url, action and object; the Basic
        # credentials, name and version need the full AddWebhookRequest body, so the library's
        # own request machinery is used with it.
        return data_of(self.client._post(self.client.BASE_URL + "webhooks", json=body)) or {}

    def delete_webhook(self, webhook_id: str) -> None:
        self.client.webhooks.delete_hook_subscription(webhook_id)

    # -- activity types (the library has no helper for them) ---------------------------------------
    def activity_types(self) -> list[dict[str, Any]]:
        return [
            t for t in data_of(self.client._get(self.client.BASE_URL + "activityTypes")) or [] if isinstance(t, dict)
        ]

    def add_activity_type(self, body: dict[str, Any]) -> dict[str, Any]:
        return data_of(self.client._post(self.client.BASE_URL + "activityTypes", json=body)) or {}
