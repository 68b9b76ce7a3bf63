"""Zoho CRM sandbox: a loopback emulator of one Zoho CRM org (API v2-v8) and its accounts server.

Faithful to crm-reference.md §4 and the OpenAPI documents in shared/specs/zoho: the
``Zoho-oauthtoken`` header, ``api_domain`` in token answers, token errors as HTTP 200 with an
``error`` field, ``data[]`` envelopes with per-record results, upsert with
``duplicate_check_fields``, 204 for empty reads, COQL, field metadata, notification channels that
expire, a rolling credit budget and a concurrency cap. Serve it over TLS (oauthlib refuses an
http authorize URL)::

    from integrations.sandbox.core import EmulatorServer, LocalCA
    from integrations.sandbox.zoho import build

    app = build(client_id="cid", client_secret="secret", redirect_uris=["https://…/oauth/callback/zoho/"])
    server = EmulatorServer(app, tls=LocalCA(tmp_path)).start()
    token = app.issue_token().access_token      # header: Authorization: Zoho-oauthtoken <token>
"""

from __future__ import annotations

from typing import Any

from integrations.sandbox.zoho.app import DEFAULT_SCOPES, ZohoEmulator

__all__ = ["DEFAULT_SCOPES", "ZohoEmulator", "build"]


def build(**options: Any) -> ZohoEmulator:
    """A Zoho emulator with ``options`` passed to ``ZohoEmulator`` (see its docstring)."""
    return ZohoEmulator(**options)
