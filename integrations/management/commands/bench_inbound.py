"""Benchmark: inbound CRM webhooks under load — acknowledged, none lost, no 5xx.

    python manage.py bench_inbound --rate 200 --seconds 60

Starts gunicorn as in production, creates a HubSpot connection with a webhook secret, and sends
signed HubSpot webhook deliveries (X-HubSpot-Signature-v3, one event each, unique event ids) at a
steady rate from several client threads. Prints one JSON object: sent, acknowledged (2xx), 5xx,
other statuses, events stored (each exactly once), achieved rate and latency percentiles.
"""

from __future__ import annotations

import http.client
import json
import math
import threading
import time
import uuid
from collections import Counter

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone

from crmsync.management.commands.bench_ingest import Server
from crmsync.models import Account
from integrations.models import Connection, Direction
from integrations.models.inbound import InboundEvent
from integrations.sandbox.hubspot import HubSpotEmulator

SECRET = "bench-inbound-webhook-secret"


class Command(BaseCommand):
    help = "Load the inbound webhook receiver at a steady rate; print figures as JSON."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--rate", type=float, default=200.0)
        parser.add_argument("--seconds", type=float, default=60.0)
        parser.add_argument("--workers", type=int, default=3)

    def handle(self, *args, rate: float, seconds: float, workers: int, **options) -> None:
        tag = uuid.uuid4().hex[:8]
        account = Account.objects.create(name=f"inbound {tag}", slug=f"inbound-{tag}")
        connection = Connection.objects.create(
            account=account,
            provider="hubspot",
            access_token="bench",
            webhook_secret=SECRET,
            crm_account_id="62515",
            direction=Direction.BOTH,
            activated_at=timezone.now(),
        )
        server = Server(workers=workers, threads=4)
        try:
            server.wait_ready()
            result = self._load(server, connection, rate, seconds)
        finally:
            server.stop()
        stored = InboundEvent.objects.filter(connection=connection).count()
        result.update(
            {
                "events_stored": stored,
                "lost": result["acknowledged"] - stored,
                "target": f"{rate:g} requests/s for {seconds:g} s: all acknowledged, 0 lost, 0 x 5xx",
            }
        )
        account.delete()
        self.stdout.write(json.dumps(result))

    def _load(self, server: Server, connection: Connection, rate: float, seconds: float) -> dict:
        emulator = HubSpotEmulator(hub_id=62515)
        path = f"/webhooks/crm/hubspot/{connection.pk}/"
        # Signed for the public URL, as a CRM would; the receiver checks against PUBLIC_BASE_URL.
        url = settings.PUBLIC_BASE_URL + path
        count, interval = int(rate * seconds), 1.0 / rate
        threads = max(1, math.ceil(rate / 25))
        statuses: Counter[int] = Counter()
        latencies: list[float] = []
        lock = threading.Lock()
        started = time.monotonic()

        def drive(offset: int) -> None:
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
            for i in range(offset, count, threads):
                pause = started + i * interval - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                event = emulator.webhook_event(
                    "contact.propertyChange", object_id=1000 + i, property_name="firstname", property_value=f"N{i}"
                )
                event["eventId"] = 10_000_000 + i
                headers, body = emulator.make_webhook_request(url, [event], SECRET)
                sent_at = time.monotonic()
                try:
                    conn.request("POST", path, body=body, headers={**headers, "Content-Type": "application/json"})
                    response = conn.getresponse()
                    response.read()
                    status = response.status
                except OSError:
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
                    status = 0
                with lock:
                    statuses[status] += 1
                    latencies.append(time.monotonic() - sent_at)
            conn.close()

        workers = [threading.Thread(target=drive, args=(n,)) for n in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        elapsed = time.monotonic() - started
        latencies.sort()
        acknowledged = sum(n for status, n in statuses.items() if 200 <= status < 300)
        return {
            "sent": count,
            "acknowledged": acknowledged,
            "http_5xx": sum(n for status, n in statuses.items() if status >= 500),
            "statuses": {str(k): v for k, v in sorted(statuses.items())},
            "achieved_rate": round(count / elapsed, 1),
            "seconds": round(elapsed, 1),
            "p50_ms": round(latencies[len(latencies) // 2] * 1000, 1) if latencies else None,
            "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 1) if latencies else None,
        }
