"""Benchmark: sync N contacts into a sandbox CRM at its published rate limit, and re-run unchanged.

    python manage.py bench_sync --provider hubspot --contacts 10000

Prints one JSON object: contacts, api_calls, http_429, seconds, floor_seconds, ratio, duplicates
and unchanged_rerun_write_calls (calls made by a second run over unchanged records: the target
is 0). The sandbox runs in this process on loopback; the database and Redis are the configured
ones.

floor_seconds is the least time the provider's published limit allows, by the kind of limit:

- requests per rolling window (HubSpot, and the default): for the calls made, one window's worth
  goes at once and each further window's worth one window later (``floor_seconds``);
- Pipedrive (``pipedrive_floor``): no person batch endpoint and no upsert (crm-reference §3.2), so
  the least an idempotent write of a new person needs is an exact e-mail search and a create: 2
  calls a person. The floor is the slowest of the search burst limit (10 per 2 s), the token's
  burst limit (80 per 2 s for OAuth apps on the lowest plan) over all those calls, and the
  company's daily token budget (a further day per budget's worth of tokens). At 10,000 contacts
  the budget (300,000 tokens) is not reached, so the search burst limit sets the floor;
- Zoho (``zoho_floor``): limits are credits per rolling 24 h and requests in flight, not requests
  per window (§4.5). The least is one upsert per 100 contacts; the credits they cost are far
  below the budget, so the floor is set by concurrency: rounds of ``heavy_concurrency_limit``
  upserts in flight at once (the cap for writes of more than 10 records), each round as long as
  the emulator's median time to serve one upsert (measured inside the emulator, so it is the
  CRM's time, not ours).

Both bespoke floors use the minimum calls the endpoints need for a first load of N new contacts
(``min_api_calls``), not the calls we made, and the limits the emulator enforces (its defaults are
the published ones).
"""

from __future__ import annotations

import json
import math
import os
import statistics
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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

DAY = 86_400.0


def machine_cpu() -> tuple[float, float] | None:
    """(busy, total) jiffies of all cores from /proc/stat, or None where there is none."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            fields = [int(x) for x in stat.readline().split()[1:]]
    except OSError:
        return None
    idle = fields[3] + fields[4]  # idle + iowait
    return float(sum(fields) - idle), float(sum(fields))


def machine_busy(before: tuple[float, float] | None, after: tuple[float, float] | None) -> float | None:
    if before is None or after is None or after[1] == before[1]:
        return None
    return round((after[0] - before[0]) / (after[1] - before[1]), 3)


def floor_seconds(calls: int, per_window: int, window: float) -> float:
    """Earliest finish for ``calls`` under a rolling window of ``per_window`` calls."""
    return max(0, math.ceil(calls / per_window) - 1) * window


@dataclass(frozen=True)
class Floor:
    seconds: float
    min_calls: int  # the least calls the CRM's endpoints need for the load
    basis: str  # which limit sets the floor


def pipedrive_floor(app: Any, contacts: int) -> Floor:
    """N new persons: N exact e-mail searches + N creates (no batch or upsert endpoint, §3.2)."""
    from integrations.sandbox.pipedrive.wire import TOKEN_COSTS

    searches = creates = contacts
    calls = searches + creates
    search = floor_seconds(searches, app.search_limit, app.window_seconds)
    burst = floor_seconds(calls, app.oauth_limit, app.window_seconds)
    tokens = searches * TOKEN_COSTS["v2"]["search"] + creates * TOKEN_COSTS["v2"]["write"]
    days = max(0, math.ceil(tokens / app.daily_token_budget) - 1)
    basis = (
        f"search burst {app.search_limit}/{app.window_seconds:g} s"
        if search >= burst
        else f"token burst {app.oauth_limit}/{app.window_seconds:g} s"
    )
    basis += f"; {tokens:,} of {app.daily_token_budget:,} daily tokens"
    if days:
        basis += f" (+{days} day(s) waiting for the budget)"
    return Floor(max(search, burst) + days * DAY, calls, basis)


def zoho_floor(app: Any, contacts: int, upsert_seconds: float) -> Floor:
    """N new contacts: one upsert per 100 (§4.2); credits and concurrency decide the time (§4.5)."""
    calls = math.ceil(contacts / 100)
    credits = calls * app.credit_costs["upsert"]
    days = max(0, math.ceil(credits / app.daily_credits) - 1)
    rounds = math.ceil(calls / app.heavy_concurrency_limit)
    basis = (
        f"concurrency {app.heavy_concurrency_limit} upserts in flight x {upsert_seconds * 1000:.0f} ms "
        f"median upsert in the emulator; {credits:,} of {app.daily_credits:,} daily credits"
    )
    if days:
        basis += f" (+{days} day(s) waiting for credits)"
    return Floor(rounds * upsert_seconds + days * DAY, calls, basis)


def _timed_upserts(app: Any) -> list[float]:
    """Time every upsert the emulator serves (its own time, not the client's)."""
    timings: list[float] = []
    original = app.handle

    def handle(request):
        started = time.perf_counter()
        try:
            return original(request)
        finally:
            if request.path.endswith("/upsert"):
                timings.append(time.perf_counter() - started)

    app.handle = handle
    return timings


class Command(BaseCommand):
    help = "Sync N contacts to a sandbox CRM at its published rate limit; print figures as JSON."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--provider", default="hubspot", choices=sorted(PROBES))
        parser.add_argument("--contacts", type=int, default=10_000)
        parser.add_argument("--keep", action="store_true", help="Keep the benchmark account afterwards.")
        parser.add_argument(
            "--provider-setting",
            action="append",
            default=[],
            metavar="NAME=VALUE",
            help="A per-connection provider setting, e.g. bulk_threshold=10000 for Salesforce's Bulk API.",
        )

    def handle(self, *args, provider: str, contacts: int, keep: bool, **options) -> None:
        self.provider_settings = dict(item.split("=", 1) for item in options["provider_setting"])
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
            connection.provider_settings = self.provider_settings
            connection.full_clean()
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
            upserts = _timed_upserts(app) if provider == "zoho" else []
            calls_before = probe.api_calls(app)
            busy_before, cpu_before = machine_cpu(), time.process_time()
            started = time.monotonic()
            sync_now(connection.pk)
            seconds = time.monotonic() - started
            cpu_seconds, busy_after = time.process_time() - cpu_before, machine_cpu()
            calls = probe.api_calls(app) - calls_before
            rerun_before = probe.api_calls(app)
            sync_now(connection.pk)
            rerun_calls = probe.api_calls(app) - rerun_before
            limit = get_provider(provider).rate_limit
            if provider == "pipedrive":
                floor = pipedrive_floor(app, contacts)
            elif provider == "zoho":
                floor = zoho_floor(app, contacts, statistics.median(upserts) if upserts else 0.0)
            else:
                floor = Floor(
                    floor_seconds(calls, limit.requests, limit.window_seconds),
                    calls,
                    f"{limit.requests} requests / {limit.window_seconds:g} s over the calls made",
                )
            people = probe.people(app)
            return {
                "provider": provider,
                "contacts": len(people),
                "api_calls": calls,
                "calls_per_contact": round(calls / max(1, len(people)), 4),
                "http_429": probe.rate_limited(app),
                "seconds": round(seconds, 2),
                "min_api_calls": floor.min_calls,
                "floor_seconds": round(floor.seconds, 2),
                "floor_basis": floor.basis,
                "ratio": round(seconds / floor.seconds, 3) if floor.seconds else None,
                "load_average": [round(x, 2) for x in os.getloadavg()],
                # Where the time went: this process's CPU (engine and in-process sandbox) and the
                # whole machine's busy share over the run (1.0 = every core busy throughout).
                "process_cpu_seconds": round(cpu_seconds, 2),
                "machine_busy": machine_busy(busy_before, busy_after),
                "duplicates": duplicates(email for _id, email in people),
                "unchanged_rerun_write_calls": rerun_calls,
                "target": "seconds <= 1.2 x floor_seconds, http_429 = 0, duplicates = 0, rerun calls = 0",
            }
        finally:
            if not keep:
                account.delete()
