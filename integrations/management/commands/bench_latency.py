"""Benchmark: real-time latency from an event being accepted to the change being in the CRM.

    python manage.py bench_latency --rate 20 --seconds 60 --workers 1

Drives events at a steady rate through the ingestion API over HTTP to gunicorn (each for a new
prospect; ``--in-process`` uses Django's test client instead), with RQ worker
processes (our worker class) flushing to a sandbox HubSpot at its OAuth-app rate limit, and
watches the sandbox until each contact appears. Prints one JSON object with p50/p95/p99 in
seconds, the counts, and the CRM's 429s. The sandbox runs in this process on loopback; workers
are separate processes using the configured database and Redis.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import close_old_connections
from django.test import Client, override_settings
from django.utils import timezone

from crmsync.management.commands.bench_ingest import Client as HttpClient
from crmsync.management.commands.bench_ingest import Server, database_url
from crmsync.models import Account, ApiKey
from integrations.connecting import connect
from integrations.connector import TokenSet
from integrations.models import AuthKind, SyncMode
from integrations.sandbox.core import EmulatorServer, LocalCA
from integrations.sandbox.hubspot import HubSpotEmulator
from integrations.sandbox.registry import client_credentials


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


class Command(BaseCommand):
    help = "Measure event-to-CRM latency in real-time mode; prints p50/p95/p99 as JSON."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--rate", type=float, default=20.0, help="Events per second.")
        parser.add_argument("--seconds", type=float, default=60.0, help="How long to drive events.")
        parser.add_argument("--workers", type=int, default=1, help="RQ worker processes.")
        parser.add_argument("--target-p99", type=float, default=5.0)
        parser.add_argument(
            "--events-per-request",
            type=int,
            default=1,
            help="Events per POST (default 1; the platform may send the events of the last moment together).",
        )
        parser.add_argument(
            "--in-process",
            action="store_true",
            help="Post events with Django's test client in this process instead of over HTTP to gunicorn "
            "(the in-process client and the sandbox share one interpreter and top out near 30 events/s).",
        )

    def handle(self, *args, rate: float, seconds: float, workers: int, target_p99: float, **options) -> None:
        self.in_process = options["in_process"]
        self.per_request = max(1, min(500, options["events_per_request"]))
        if not settings.REDIS_URL:
            raise CommandError("bench_latency needs REDIS_URL: real-time work goes to worker processes over RQ")
        client_id, client_secret = client_credentials("hubspot")
        app = HubSpotEmulator(client_id=client_id, client_secret=client_secret)
        with tempfile.TemporaryDirectory() as tmp:
            ca = LocalCA(Path(tmp))
            server = EmulatorServer(app, tls=ca).start()
            endpoint = {
                "api_url": server.url,
                "oauth_url": server.url,
                "client_id": client_id,
                "client_secret": client_secret,
            }
            try:
                with override_settings(
                    CRM_ENDPOINTS={**settings.CRM_ENDPOINTS, "hubspot": endpoint},
                    CRM_CA_BUNDLE=str(ca.ca_path),
                    ALLOWED_HOSTS=["testserver"],
                ):
                    result = self._run(app, server, ca, rate, seconds, workers)
            finally:
                server.stop()
        result["target"] = f"p99 <= {target_p99} s at {rate:g} events/s"
        result["meets_target"] = result["p99"] is not None and result["p99"] <= target_p99
        self.stdout.write(json.dumps(result))

    def _wait_for_workers(self, count: int, timeout: float = 60.0) -> None:
        """Drive events only once every worker process is listening (its start-up is not latency)."""
        from rq import Worker

        from integrations.sync.redis import redis_client

        deadline = time.monotonic() + timeout
        while len(Worker.all(connection=redis_client())) < count:
            if time.monotonic() > deadline:
                raise CommandError(f"{count} worker(s) did not start within {timeout:.0f} s")
            time.sleep(0.2)

    def _worker_env(self, server: EmulatorServer, ca: LocalCA) -> dict[str, str]:
        client_id, client_secret = client_credentials("hubspot")
        return {
            **os.environ,
            # This process's database (a test run's is not the environment's).
            "DATABASE_URL": database_url(),
            "HUBSPOT_API_URL": server.url,
            "HUBSPOT_OAUTH_URL": server.url,
            "HUBSPOT_CLIENT_ID": client_id,
            "HUBSPOT_CLIENT_SECRET": client_secret,
            "CRM_CA_BUNDLE": str(ca.ca_path),
            "LOG_LEVEL": "WARNING",
        }

    def _run(self, app: HubSpotEmulator, server, ca, rate: float, seconds: float, workers: int) -> dict:
        account = Account.objects.create(name=f"latency {uuid.uuid4().hex[:8]}", slug=f"lat-{uuid.uuid4().hex[:8]}")
        processes: list[subprocess.Popen] = []
        try:
            issued = app.oauth.issue(app.client.client_id, [], account_ref="bench")
            tokens = TokenSet(
                access_token=issued.access_token,
                refresh_token=issued.refresh_token,
                expires_at=timezone.now() + timezone.timedelta(hours=2),
            )
            connection = connect(account, "hubspot", tokens, auth_kind=AuthKind.OAUTH, actor_label="bench_latency")
            connection.sync_mode = SyncMode.REALTIME
            connection.activated_at = timezone.now()
            connection.save()
            _key, raw_key = ApiKey.issue(account, "latency bench")
            for _ in range(workers):
                processes.append(
                    subprocess.Popen(
                        [
                            sys.executable,
                            "manage.py",
                            "rqworker",
                            "realtime",
                            "default",
                            "--worker-class",
                            "integrations.sync.worker.SyncWorker",
                        ],
                        env=self._worker_env(server, ca),
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                )
            self._wait_for_workers(workers)
            accepted: dict[str, float] = {}
            visible: dict[str, float] = {}
            # Accepted and not yet seen in the CRM: the watcher looks only at these (a few dozen in
            # flight), not at every event so far, so it never starves the drivers of the GIL.
            waiting: set[str] = set()
            waiting_lock = threading.Lock()
            done = threading.Event()

            def watch() -> None:
                while not done.is_set() or waiting:
                    with waiting_lock:
                        candidates = list(waiting)
                    for email in candidates:
                        if app.find_contact(email) is not None:
                            visible[email] = time.monotonic()
                            with waiting_lock:
                                waiting.discard(email)
                    time.sleep(0.02)
                    if done.is_set() and time.monotonic() > deadline:
                        return

            deadline = float("inf")
            watcher = threading.Thread(target=watch, daemon=True)
            watcher.start()
            web = None
            if not self.in_process:
                # As in production: gunicorn (its own processes) takes the events.
                web = Server(workers=2, threads=4)
                web.wait_ready()
                self.stderr.write(f"gunicorn started, process group {web.process.pid}, on {web.url}")
            interval, count, started = 1.0 / rate, int(rate * seconds), time.monotonic()
            # One in-process client keeps up with about 20/s; an HTTP client thread with ~5/s each
            # (a request waits on the server; several in flight keep the rate steady).
            drivers = max(1, math.ceil(rate / 20)) if web is None else max(2, math.ceil(rate / 5))

            per_request = self.per_request
            requests_total = math.ceil(count / per_request)
            if web is not None:
                drivers = max(2, math.ceil(rate / per_request / 5))

            def event_body(i: int) -> dict:
                return {
                    "event_id": f"lat-{uuid.uuid4().hex}",
                    "type": "capsule_viewed",
                    "occurred_at": timezone.now().isoformat(),
                    "capsule": {"id": "cap_lat"},
                    "prospect": {"email": f"lat-{i}@example.com", "first_name": "Lat", "last_name": str(i)},
                }

            def drive(offset: int) -> None:
                http = Client() if web is None else HttpClient(web.url, raw_key)
                try:
                    for r in range(offset, requests_total, drivers):
                        # Request r carries the events due at r·n/rate … (r+1)·n/rate, sent when the
                        # last of them is due: events still arrive at the rate, n to a request.
                        numbers = range(r * per_request, min(count, (r + 1) * per_request))
                        pause = started + numbers[-1] * interval - time.monotonic()
                        if pause > 0:
                            time.sleep(pause)
                        bodies = [event_body(i) for i in numbers]
                        payload = bodies[0] if per_request == 1 else {"events": bodies}
                        if web is None:
                            status = http.post(
                                "/api/v1/events",
                                payload,
                                content_type="application/json",
                                HTTP_AUTHORIZATION=f"Bearer {raw_key}",
                            ).status_code
                        else:
                            status, _answer = http.post(json.dumps(payload).encode())
                        if status == 200:
                            now = time.monotonic()
                            emails = [body["prospect"]["email"] for body in bodies]
                            for email in emails:
                                accepted[email] = now
                            with waiting_lock:
                                waiting.update(emails)
                finally:
                    close_old_connections()

            threads = [threading.Thread(target=drive, args=(n,)) for n in range(drivers)]
            try:
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
            finally:
                if web is not None:
                    web.stop()
            drive_seconds = time.monotonic() - started
            deadline = time.monotonic() + 120
            done.set()
            watcher.join(timeout=125)
            latencies = [visible[e] - accepted[e] for e in accepted if e in visible]
            return {
                "events": count,
                "accepted": len(accepted),
                "visible": len(latencies),
                "rate": rate,
                "achieved_rate": round(len(accepted) / drive_seconds, 1),
                "workers": workers,
                "driver": "in-process test client" if self.in_process else "HTTP to gunicorn (2 workers x 4 threads)",
                "events_per_request": self.per_request,
                "drive_seconds": round(drive_seconds, 1),
                "p50": round(statistics.median(latencies), 3) if latencies else None,
                "p95": round(percentile(latencies, 0.95), 3) if latencies else None,
                "p99": round(percentile(latencies, 0.99), 3) if latencies else None,
                "max": round(max(latencies), 3) if latencies else None,
                "http_429": app.rate_limited_count,
                "api_calls": app.api_calls,
            }
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
            close_old_connections()
            account.delete()
