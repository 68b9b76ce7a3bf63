"""Measure ingestion through real HTTP: single-event requests and full batches, from concurrent clients.

Without --url it starts gunicorn (the Procfile's server) on a free local port against the
database this command uses, creates a throwaway account and key, posts realistic events (known
and new prospects, anonymous visitors, identification), prints events per second against the
targets and one JSON line, then stops gunicorn and deletes the account.

Events per second depend on whatever else the machine runs, so it also prints a figure that
does not: the CPU time spent per 1,000 events by the gunicorn workers and by the PostgreSQL
backends serving the benchmark's database (``*_cpu_ms_per_1000_events``), read from
``/proc/<pid>/stat`` before and after each phase. The database figure needs PostgreSQL on this
machine (it is null otherwise), the workers' figure a server started here (null with --url).
"""

from __future__ import annotations

import http.client
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import quote, urlsplit

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection
from django.utils import timezone

from crmsync.models import Account, ApiKey, Event, EventType

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

SINGLE_TARGET = 200  # events/s, one event per request
BATCH_TARGET = 1000  # events/s, 500-event batches
BATCH_STRETCH_TARGET = 2000

_DATA = {
    EventType.CAPSULE_VIEWED: lambda rnd: {},
    EventType.QUESTION_ASKED: lambda rnd: {"text": f"How does pricing work for {rnd.randint(5, 500)} seats?"},
    EventType.TIME_SPENT: lambda rnd: {"seconds": rnd.randint(5, 1800)},
    EventType.CONTENT_ACCESSED: lambda rnd: {"content_id": f"doc-{rnd.randint(1, 30)}", "content_title": "Guide"},
    EventType.CONTENT_DOWNLOADED: lambda rnd: {"content_id": f"doc-{rnd.randint(1, 30)}"},
    EventType.CTA_CLICKED: lambda rnd: {"cta_id": "book-demo", "label": "Book a demo"},
    EventType.CONVERSION: lambda rnd: {"value": rnd.randint(100, 10_000), "currency": "EUR", "name": "Trial"},
    EventType.SENTIMENT: lambda rnd: {"score": round(rnd.uniform(-1, 1), 2), "label": "neutral"},
    EventType.CAPSULE_COMPLETED: lambda rnd: {},
    EventType.LEAD_CAPTURED: lambda rnd: {"form": {"role": "CTO", "team_size": "40"}},
}


class EventMaker:
    """Events as the capsule platform sends them: a pool of people, some anonymous, some identifying."""

    def __init__(self, run_id: str, people: int, seed: int = 7) -> None:
        self.run_id = run_id
        self.people = people
        self.rnd = random.Random(seed)
        self.count = 0
        self.now = timezone.now()

    def make(self) -> dict[str, Any]:
        rnd, self.count = self.rnd, self.count + 1
        person = rnd.randrange(self.people)
        kind = rnd.choice(list(_DATA))
        body: dict[str, Any] = {
            "event_id": f"{self.run_id}-{self.count}",
            "type": kind.value,
            "occurred_at": (self.now - timedelta(seconds=rnd.randint(0, 3600))).isoformat(),
            "capsule": {"id": f"cap-{person % 20}", "title": f"Capsule {person % 20}"},
            "data": _DATA[kind](rnd),
        }
        roll = rnd.random()
        if roll < 0.2 and kind != EventType.LEAD_CAPTURED:  # anonymous
            body["visitor_id"] = f"{self.run_id}-vis-{person}"
            return body
        if roll < 0.3:  # identifies the visitor: stitches its anonymous events
            body["visitor_id"] = f"{self.run_id}-vis-{person}"
        body["prospect"] = {
            "email": f"bench-{self.run_id}-{person}@example.com",
            "first_name": f"First{person}",
            "last_name": f"Last{person}",
            "company": f"Company {person % 300}",
            "attributes": {"segment": rnd.choice(["smb", "mid", "enterprise"]), "visits": rnd.randint(1, 40)},
            "utm": {"source": "newsletter", "campaign": "bench"},
        }
        if roll > 0.9:
            body["prospect"]["consent"] = {"granted": True, "source": "capsule form"}
        return body


@dataclass
class Phase:
    name: str
    events: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    cpu: dict[str, float | None] = field(default_factory=dict)  # "web", "db", "total": CPU seconds spent

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0

    def cpu_ms_per_1000_events(self, part: str) -> float | None:
        seconds = self.cpu.get(part)
        if seconds is None or not self.events:
            return None
        return round(1_000_000 * seconds / self.events, 1)

    def percentile_ms(self, fraction: float) -> float:
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return round(1000 * ordered[min(len(ordered) - 1, int(fraction * len(ordered)))], 1)


class Client:
    """One keep-alive HTTP connection per thread; http.client keeps the client's own CPU cost low."""

    def __init__(self, url: str, api_key: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or (443 if parts.scheme == "https" else 80)
        self.https = parts.scheme == "https"
        self.path = parts.path.rstrip("/") + "/api/v1/events"
        self.headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
        self.local = threading.local()

    def _connection(self) -> http.client.HTTPConnection:
        if getattr(self.local, "conn", None) is None:
            cls = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
            self.local.conn = cls(self.host, self.port, timeout=120)
        return self.local.conn

    def post(self, body: bytes) -> tuple[int, bytes]:
        for attempt in (1, 2):  # a keep-alive connection the server closed is reopened once
            conn = self._connection()
            try:
                conn.request("POST", self.path, body=body, headers=self.headers)
                response = conn.getresponse()
                return response.status, response.read()
            except (ConnectionError, http.client.HTTPException):
                conn.close()
                self.local.conn = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")


def run_phase(
    name: str, client: Client, bodies: list[tuple[bytes, int]], concurrency: int, meter: CpuMeter | None = None
) -> Phase:
    phase = Phase(name)
    before = meter.snapshot() if meter is not None else None
    lock = threading.Lock()

    def send(item: tuple[bytes, int]) -> None:
        body, count = item
        started = time.perf_counter()
        try:
            status, content = client.post(body)
        except OSError as exc:
            status, content = 0, str(exc).encode()
        elapsed = time.perf_counter() - started
        with lock:
            phase.latencies.append(elapsed)
            if status == 200:
                phase.events += count
            else:
                phase.errors.append(f"{status}: {content[:300]!r}")

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(send, bodies))
    phase.seconds = time.perf_counter() - started
    if meter is not None and before is not None:
        after = meter.snapshot()
        web, db = (CpuMeter.spent(before[part], after[part]) for part in ("web", "db"))
        phase.cpu = {"web": web, "db": db, "total": None if web is None or db is None else web + db}
    return phase


def database_url() -> str:
    """The database this process uses, as a URL for the server process (tests run on a test database)."""
    config = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{config['NAME']}"
    if connection.vendor != "postgresql":
        raise CommandError(f"bench_ingest starts its server on PostgreSQL or SQLite, not {connection.vendor}")
    credentials = quote(config.get("USER") or "", safe="")
    if config.get("PASSWORD"):
        credentials += ":" + quote(config["PASSWORD"], safe="")
    host = config.get("HOST") or "127.0.0.1"
    return f"postgres://{credentials}@{host}:{config.get('PORT') or 5432}/{quote(config['NAME'], safe='')}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process (all its threads) so far, or None when it is not readable."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            text = stat.read()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces; fields 14 and 15 follow it.
    fields = text.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def child_pids(parent: int) -> list[int]:
    children = []
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else ():
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == parent:
                children.append(int(entry))
    return children


def _is_local_postgres(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return cmdline.read().startswith(b"postgres")
    except OSError:
        return False


class CpuMeter:
    """CPU seconds of the gunicorn workers and of the database's client backends, per process.

    A phase's cost is the sum over the processes alive at its end of (after - before), a process
    born during the phase counting whole. Backends stay open between requests (CONN_MAX_AGE), so
    a phase loses only what a process that ended during it had spent.
    """

    def __init__(self, server_pid: int | None) -> None:
        self.server_pid = server_pid
        self.database = connection.vendor == "postgresql"

    def _backends(self) -> list[int]:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
                " AND backend_type = 'client backend'"
            )
            return [pid for (pid,) in cursor.fetchall() if _is_local_postgres(pid)]

    def snapshot(self) -> dict[str, dict[int, float] | None]:
        def read(pids: list[int]) -> dict[int, float]:
            return {pid: cpu for pid in pids if (cpu := process_cpu_seconds(pid)) is not None}

        web = read(child_pids(self.server_pid)) if self.server_pid else None
        db = None
        if self.database:
            pids = self._backends()
            db = read(pids) if pids else None
        return {"web": web or None, "db": db}

    @staticmethod
    def spent(before: dict[int, float] | None, after: dict[int, float] | None) -> float | None:
        if before is None or after is None:
            return None
        return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


class Server:
    """gunicorn as in production, in its own process group so stopping it stops its workers too."""

    def __init__(self, workers: int, threads: int) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "DATABASE_URL": database_url(),
            "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "crmsync.settings"),
        }
        command = [
            sys.executable,
            "-m",
            "gunicorn",
            "crmsync.wsgi:application",
            "--workers",
            str(workers),
            "--worker-class",
            "gthread",
            "--threads",
            str(threads),
            "--bind",
            f"127.0.0.1:{self.port}",
            "--keep-alive",
            "30",
            "--log-level",
            "warning",
        ]
        # A file, not a pipe: a chatty server must never block on a full pipe nobody reads.
        self.log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and fixed arguments
            command, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=self.log
        )

    def log_tail(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-3000:]

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise CommandError("gunicorn exited at start-up:\n" + self.log_tail())
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/healthz")
                status = conn.getresponse().status
            except OSError:
                status = None  # not listening yet
            if status == 200:
                return
            if status == 400:  # Django refuses the Host header
                raise CommandError("the server answers 400: ALLOWED_HOSTS must include 127.0.0.1")
            time.sleep(0.2)
        raise CommandError(f"gunicorn did not answer /healthz within {timeout:.0f}s")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log.close()


class Command(BaseCommand):
    help = "Benchmark POST /api/v1/events through gunicorn: single events and batches, events per second."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--url", help="A running server to measure (default: start gunicorn here).")
        parser.add_argument("--api-key", help="With --url: a key of the server's database (default: make one here).")
        parser.add_argument("--events", type=int, default=20_000, help="Events sent in batches (default 20000).")
        parser.add_argument("--single", type=int, default=2_000, help="Events sent one per request (default 2000).")
        parser.add_argument("--batch", type=int, default=settings.INGEST_MAX_EVENTS_PER_REQUEST)
        parser.add_argument("--concurrency", type=int, default=8, help="Client threads (default 8).")
        parser.add_argument("--workers", type=int, default=3, help="gunicorn workers (default 3).")
        parser.add_argument("--threads", type=int, default=4, help="Threads per gunicorn worker (default 4).")
        parser.add_argument("--people", type=int, default=2_000, help="Distinct prospects in the data (default 2000).")
        parser.add_argument("--keep", action="store_true", help="Keep the throwaway account and its events.")

    def handle(self, *args, **options) -> None:
        if not 1 <= options["batch"] <= settings.INGEST_MAX_EVENTS_PER_REQUEST:
            raise CommandError(f"--batch must be 1..{settings.INGEST_MAX_EVENTS_PER_REQUEST}")
        run_id = uuid.uuid4().hex[:8]
        account, api_key = None, options["api_key"]
        if not api_key:
            account = Account.objects.create(name=f"bench-ingest-{run_id}", slug=f"bench-ingest-{run_id}")
            _key, api_key = ApiKey.issue(account, "bench_ingest")
        server = None
        try:
            url = options["url"]
            if not url:
                server = Server(options["workers"], options["threads"])
                self.stderr.write(f"gunicorn started, process group {server.process.pid}, on {server.url}")
                server.wait_ready()
                url = server.url
            meter = CpuMeter(server.process.pid if server is not None else None)
            failed = self._run(url, api_key, run_id, account, options, meter)
            if failed:
                if server is not None:
                    self.stderr.write("gunicorn's log:\n" + server.log_tail())
                raise CommandError(f"{failed} requests failed; the figures above count only the successful ones")
        finally:
            if server is not None:
                server.stop()
            if account is not None and not options["keep"]:
                account.delete()

    def _run(self, url: str, api_key: str, run_id: str, account: Account | None, options: dict, meter: CpuMeter) -> int:
        """Send the events, print the figures; return the number of failed requests."""
        client = Client(url, api_key)
        maker = EventMaker(run_id, options["people"])
        concurrency, batch = options["concurrency"], options["batch"]

        def batches(total: int) -> list[tuple[bytes, int]]:
            result = []
            for start in range(0, total, batch):
                events = [maker.make() for _ in range(min(batch, total - start))]
                result.append((json.dumps({"events": events}).encode(), len(events)))
            return result

        # Warm up: connections, imports, caches and the first prospects, not measured.
        run_phase("warm-up", client, batches(min(1000, batch * 2)), concurrency)
        run_phase("warm-up", client, [(json.dumps(maker.make()).encode(), 1) for _ in range(50)], concurrency)

        single_bodies = [(json.dumps(maker.make()).encode(), 1) for _ in range(options["single"])]
        single = run_phase("single", client, single_bodies, concurrency, meter)
        batched = run_phase("batched", client, batches(options["events"]), concurrency, meter)

        server = url if options["url"] else f"gunicorn {options['workers']}x{options['threads']} gthread"
        self.stdout.write(f"Ingest benchmark against {server}, database {connection.vendor}, {concurrency} clients")
        for phase, target, per_request in ((single, SINGLE_TARGET, 1), (batched, BATCH_TARGET, batch)):
            verdict = "meets" if phase.events_per_second >= target else "BELOW"
            self.stdout.write(
                f"  {phase.name:8} {phase.events:6d} events in {phase.seconds:6.2f}s = "
                f"{phase.events_per_second:8.1f} events/s ({verdict} the target of {target}/s; "
                f"{per_request} per request, p50 {phase.percentile_ms(0.5)} ms, p95 {phase.percentile_ms(0.95)} ms, "
                f"p99 {phase.percentile_ms(0.99)} ms)"
            )
            self.stdout.write(
                f"  {'':8} CPU per 1,000 events: {phase.cpu_ms_per_1000_events('total')} ms "
                f"(gunicorn workers {phase.cpu_ms_per_1000_events('web')} ms, "
                f"PostgreSQL backends {phase.cpu_ms_per_1000_events('db')} ms)"
            )
        stretch = "meets" if batched.events_per_second >= BATCH_STRETCH_TARGET else "below"
        self.stdout.write(f"  batched {stretch} the stretch target of {BATCH_STRETCH_TARGET}/s")
        stored = None
        if account is not None:
            stored = Event.objects.filter(account=account).count()
            self.stdout.write(f"  {stored} events stored for the throwaway account")
        errors = single.errors + batched.errors
        for error in errors[:5]:
            self.stderr.write(f"  failed request: {error}")
        figures = {
            "benchmark": "ingest",
            "server": server,
            "database": connection.vendor,
            "concurrency": concurrency,
            "batch_size": batch,
            "single_events": single.events,
            "single_events_per_s": round(single.events_per_second, 1),
            "single_p50_ms": single.percentile_ms(0.5),
            "single_p95_ms": single.percentile_ms(0.95),
            "single_p99_ms": single.percentile_ms(0.99),
            "single_cpu_ms_per_1000_events": single.cpu_ms_per_1000_events("total"),
            "single_web_cpu_ms_per_1000_events": single.cpu_ms_per_1000_events("web"),
            "single_db_cpu_ms_per_1000_events": single.cpu_ms_per_1000_events("db"),
            "single_target": SINGLE_TARGET,
            "batched_events": batched.events,
            "batched_events_per_s": round(batched.events_per_second, 1),
            "batched_p50_ms": batched.percentile_ms(0.5),
            "batched_p95_ms": batched.percentile_ms(0.95),
            "batched_p99_ms": batched.percentile_ms(0.99),
            "batched_cpu_ms_per_1000_events": batched.cpu_ms_per_1000_events("total"),
            "batched_web_cpu_ms_per_1000_events": batched.cpu_ms_per_1000_events("web"),
            "batched_db_cpu_ms_per_1000_events": batched.cpu_ms_per_1000_events("db"),
            "batched_target": BATCH_TARGET,
            "batched_stretch_target": BATCH_STRETCH_TARGET,
            "errors": len(errors),
            "events_stored": stored,
        }
        self.stdout.write(json.dumps(figures))
        return len(errors)
