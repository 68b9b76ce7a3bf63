"""Benchmark: sync N contacts into a sandbox CRM at its published rate limit, and re-run unchanged.

    python manage.py bench_sync --provider hubspot --contacts 10000

Prints one JSON object: contacts, api_calls, http_429, seconds, floor_seconds (the least time the
provider's published limit allows for the calls made: a rolling window lets one window's worth
go at once, and each further window's worth one window later), ratio, duplicates and
unchanged_rerun_write_calls (calls made by a second run over unchanged records: the target is 0).
The sandbox runs in this process on loopback; the database and Redis are the configured ones.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
import uuid
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.test import override_settings

from crmsync.models import Account, Prospect
from integrations.connecting import connect
from integrations.connector import TokenSet
from integrations.models import AuthKind, SyncMode
from integrations.registry import get_provider
from integrations.sandbox.core import EmulatorServer, LocalCA
from integrations.sandbox.probes import PROBES, duplicates
from integrations.sandbox.registry import SANDBOXES, client_credentials
from integrations.sync.jobs import sync_now


def floor_seconds(calls: int, per_window: int, window: float) -> float:
    """Earliest finish for ``calls`` under a rolling window of ``per_window`` calls."""
    return max(0, math.ceil(calls / per_window) - 1) * window


class Command(BaseCommand):
    help = "Sync N contacts to a sandbox CRM at its published rate limit; print figures as JSON."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--provider", default="hubspot", choices=sorted(PROBES))
        parser.add_argument("--contacts", type=int, default=10_000)
        parser.add_argument("--keep", action="store_true", help="Keep the benchmark account afterwards.")

    def handle(self, *args, provider: str, contacts: int, keep: bool, **options) -> None:
        spec = next(s for s in SANDBOXES if s.name == provider)
        module_name, function = spec.factory.split(":")
        from importlib import import_module

        client_id, client_secret = client_credentials(provider)
        app = getattr(import_module(module_name), function)(
            client_id=client_id, client_secret=client_secret, redirect_uris=["https://127.0.0.1/unused"]
        )
        with tempfile.TemporaryDirectory() as tmp:
            ca = LocalCA(Path(tmp))
            server = EmulatorServer(app, tls=ca if spec.tls else None).start()
            endpoints = {
                **settings.CRM_ENDPOINTS,
                provider: {
                    "api_url": server.url,
                    "oauth_url": server.url,
                    "client_id": client_id,
                    "client_secret": client_secret,
                },
            }
            try:
                with override_settings(CRM_ENDPOINTS=endpoints, CRM_CA_BUNDLE=str(ca.ca_path)):
                    result = self._run(provider, app, server, contacts, keep)
            finally:
                server.stop()
        self.stdout.write(json.dumps(result))

    def _run(self, provider: str, app, server: EmulatorServer, contacts: int, keep: bool) -> dict:
        probe = PROBES[provider]
        account = Account.objects.create(name=f"bench {uuid.uuid4().hex[:8]}", slug=f"bench-{uuid.uuid4().hex[:8]}")
        try:
            issued = app.oauth.issue(app.client.client_id, [], account_ref="bench")
            tokens = TokenSet(
                access_token=issued.access_token,
                refresh_token=issued.refresh_token,
                api_base_url=server.url if get_provider(provider).api_base_url is None else None,
            )
            connection = connect(account, provider, tokens, auth_kind=AuthKind.OAUTH, actor_label="bench_sync")
            connection.sync_mode = SyncMode.MANUAL
            connection.activated_at = connection.connected_at
            connection.save()
            Prospect.objects.bulk_create(
                [
                    Prospect(
                        account=account,
                        email=f"bench-{i}@example.com",
                        first_name="Bench",
                        last_name=f"No{i}",
                        company="Bench Co",
                        consent_granted=True,
                    )
                    for i in range(contacts)
                ],
                batch_size=5000,
            )
            calls_before = probe.api_calls(app)
            started = time.monotonic()
            sync_now(connection.pk)
            seconds = time.monotonic() - started
            calls = probe.api_calls(app) - calls_before
            rerun_before = probe.api_calls(app)
            sync_now(connection.pk)
            rerun_calls = probe.api_calls(app) - rerun_before
            limit = get_provider(provider).rate_limit
            floor = floor_seconds(calls, limit.requests, limit.window_seconds)
            people = probe.people(app)
            return {
                "provider": provider,
                "contacts": len(people),
                "api_calls": calls,
                "http_429": probe.rate_limited(app),
                "seconds": round(seconds, 2),
                "floor_seconds": round(floor, 2),
                "ratio": round(seconds / floor, 3) if floor else None,
                "duplicates": duplicates(email for _id, email in people),
                "unchanged_rerun_write_calls": rerun_calls,
                "target": "seconds <= 1.2 x floor_seconds, http_429 = 0, duplicates = 0, rerun calls = 0",
            }
        finally:
            if not keep:
                account.delete()
