"""Chaos run: real-time sync under CRM faults, worker kills and Redis/PostgreSQL restarts.

    python manage.py chaos [--events 10000] [--prospects 1000] [--kills 5]
                           [--restart-redis] [--restart-postgres] [--seed 1]

Drives ``--events`` capsule events for ``--prospects`` prospects through the ingestion API into a
sandbox HubSpot (in this process, TLS with a local CA) that fails about 10% of requests (429 with
headers, 500, answers slower than the HTTP timeout, dropped connections, expired tokens). Two RQ
worker processes (our worker class) sync them; a scheduler loop here runs the outbox sweep every
two seconds. While the work flows, a worker is killed with SIGKILL ``--kills`` times (and
restarted), the run's Redis is restarted (everything in it is lost: queued kicks, kick flags,
limiter state), and the run's PostgreSQL is restarted. Then it waits for the outbox to drain,
compares the CRM with what was sent, and prints one line:

    events=10000 prospects=1000 crm_records=1000 activities=6012 lost=0 duplicated=0 drain_seconds=41.3

It exits non-zero unless nothing is lost or duplicated: every prospect is exactly one CRM
contact, and every activity-type event (``capsule_viewed``) exactly one CRM activity.

The shared Redis and PostgreSQL are never restarted. The run always uses a private
``redis-server`` on a free port (no persistence). With ``--restart-postgres`` it makes a private
PostgreSQL cluster (initdb in a temporary directory, run as the ``postgres`` user when this runs
as root), migrates a database there and restarts that cluster; if none can be started it says so
on stderr, uses the configured database and skips only that restart. Without
``--restart-postgres`` the configured database is used (the small form in ``make test`` points
it at the test database).

The run is two processes: this one prepares the private services, then runs itself again as the
driver with DATABASE_URL and REDIS_URL pointing at them (settings are read once at start-up).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import close_old_connections, connections

from integrations.sync import claim
from integrations.sync.worker import SyncWorker

ROOT = Path(__file__).resolve().parents[3]
DRIVER_ENV = "CHAOS_DRIVER"
LEASE_ENV = "CHAOS_LEASE_SECONDS"
FAULT_KINDS = ("rate_limit", "server_error", "slow", "drop", "expire_token")
HTTP_TIMEOUT_SECONDS = 2
CHUNK = 50  # events per ingestion request


class ChaosWorker(SyncWorker):
    """Our worker class with a shorter outbox lease (CHAOS_LEASE_SECONDS), so the rows a killed
    worker held come back within the run. The engine reads ``claim.LEASE`` at claim time; a
    SYNC_LEASE_SECONDS setting in integrations/sync/claim.py would make this class unnecessary."""

    def __init__(self, *args, **kwargs) -> None:
        seconds = os.environ.get(LEASE_ENV)
        if seconds:
            claim.LEASE = dt.timedelta(seconds=float(seconds))
        super().__init__(*args, **kwargs)


def safe_close_old_connections() -> None:
    """Drop connections that are broken or too old; a dropped server makes close() itself fail."""
    for conn in connections.all(initialized_only=True):
        try:
            conn.close_if_unusable_or_obsolete()
        except Exception:
            conn.connection = None


def reset_connection() -> None:
    try:
        connections["default"].close()
    except Exception:
        connections["default"].connection = None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(condition, seconds: float, pause: float = 0.1) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(pause)
    return False


def note(message: str) -> None:
    print(f"chaos: {message}", file=sys.stderr, flush=True)


# -- private services ---------------------------------------------------------------------------


class PrivateRedis:
    """A throw-away redis-server on a free loopback port with no persistence."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise CommandError("chaos needs redis-server on PATH for its private Redis")
        self.process = subprocess.Popen(  # noqa: S603 - fixed arguments
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
                "--protected-mode",
                "yes",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if not wait_until(self._answers, 10):
            raise CommandError(f"the private redis-server on port {self.port} did not start")

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()  # no persistence: a kill loses everything, as intended
            self.process.wait(timeout=10)


class PrivatePostgres:
    """A throw-away PostgreSQL cluster in a temporary directory, on a free loopback port."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.data = directory / "data"
        self.socket_dir = directory / "sock"
        self.log = directory / "postgres.log"
        self.port = free_port()
        self.bin = self._find_bin()
        self.as_user = self._user()

    @staticmethod
    def _find_bin() -> Path:
        for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
            if (candidate / "initdb").exists() and (candidate / "pg_ctl").exists():
                return candidate
        found = shutil.which("initdb")
        if found:
            return Path(found).parent
        raise RuntimeError("no initdb/pg_ctl found under /usr/lib/postgresql/*/bin or on PATH")

    @staticmethod
    def _user() -> list[str]:
        if os.geteuid() != 0:
            return []
        # initdb refuses to run as root; the postgres system user owns the private cluster.
        runuser = shutil.which("runuser")
        if runuser is None:
            raise RuntimeError("running as root without runuser: cannot start a private PostgreSQL")
        return [runuser, "-u", "postgres", "--"]

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/chaos"

    def _run(self, *args: str, timeout: float = 120) -> None:
        result = subprocess.run(  # noqa: S603 - fixed arguments
            [*self.as_user, *args], capture_output=True, text=True, timeout=timeout
        )
        if result.returncode != 0:
            raise RuntimeError(f"{Path(args[0]).name} failed: {(result.stderr or result.stdout).strip()[-400:]}")

    def init(self) -> None:
        self.socket_dir.mkdir(parents=True)
        if self.as_user:
            shutil.chown(self.directory, "postgres")
            shutil.chown(self.socket_dir, "postgres")
        self._run(
            str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"
        )
        self.start()
        self._run(str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "chaos")

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        )
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.log), "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def is_running(self) -> bool:
        return (self.data / "postmaster.pid").exists()


# -- the run ------------------------------------------------------------------------------------


@dataclass
class Plan:
    """When each fault happens, in seconds from the start of the drive."""

    kills: list[float]
    redis_restart: float | None
    postgres_restart: float | None


@dataclass
class Outcome:
    sent: dict[str, list[str]] = field(default_factory=dict)  # email -> event types sent
    drive_seconds: float = 0.0
    drain_seconds: float = 0.0
    drained: bool = False
    events_done: list[str] = field(default_factory=list)


class Command(BaseCommand):
    help = "Sync under faults (CRM errors, worker kills, Redis/PostgreSQL restarts); prints one line."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--events", type=int, default=10000)
        parser.add_argument("--prospects", type=int, default=1000)
        parser.add_argument("--kills", type=int, default=5, help="SIGKILLs of a worker at random moments.")
        parser.add_argument("--restart-redis", action="store_true", help="Restart the run's private Redis once.")
        parser.add_argument(
            "--restart-postgres", action="store_true", help="Use a private PostgreSQL cluster and restart it once."
        )
        parser.add_argument("--fault-rate", type=float, default=0.1, help="Share of CRM requests that fail.")
        parser.add_argument("--workers", type=int, default=2)
        parser.add_argument("--lease-seconds", type=float, default=15.0, help="Outbox lease of the workers.")
        parser.add_argument(
            "--fault-window",
            type=float,
            default=None,
            help="Seconds over which kills and restarts happen (default: from --events).",
        )
        parser.add_argument("--drain-timeout", type=float, default=1200.0)
        parser.add_argument("--seed", type=int, default=None)

    def handle(self, *args, **options) -> None:
        if options["events"] < options["prospects"] or options["prospects"] < 1:
            raise CommandError("--events must be at least --prospects, and --prospects at least 1")
        if os.environ.get(DRIVER_ENV):
            code = Driver(options).run()
        else:
            code = self._prepare_and_drive(options)
        if code:
            sys.exit(code)

    # The first process: private services, then the driver as a child process using them.
    def _prepare_and_drive(self, options: dict) -> int:
        tmp = Path(tempfile.mkdtemp(prefix="crmsync-chaos-"))
        tmp.chmod(0o711)  # the postgres user runs the private cluster below it
        redis = PrivateRedis(tmp / "redis")
        (tmp / "redis").mkdir()
        postgres: PrivatePostgres | None = None
        env = {
            **os.environ,
            "LOG_LEVEL": "WARNING",
            DRIVER_ENV: "1",
            "CHAOS_TMP": str(tmp),
            "CHAOS_REDIS_PORT": str(redis.port),
        }
        try:
            redis.start()
            env["REDIS_URL"] = redis.url
            if options["restart_postgres"]:
                try:
                    postgres = PrivatePostgres(tmp / "pg")
                    (tmp / "pg").mkdir()
                    postgres.init()
                except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
                    note(
                        f"a private PostgreSQL could not be started ({exc}); the PostgreSQL restart is skipped "
                        "and the configured database is used (the shared server is never restarted)"
                    )
                    postgres = None
                    env["CHAOS_POSTGRES_SKIPPED"] = "1"
                else:
                    env.update(
                        DATABASE_URL=postgres.url,
                        CHAOS_PG_DIR=str(postgres.directory),
                        CHAOS_PG_PORT=str(postgres.port),
                    )
                    migrate = subprocess.run(
                        [sys.executable, "manage.py", "migrate", "--noinput"],
                        cwd=ROOT,
                        env=env,
                        capture_output=True,
                        text=True,
                        timeout=600,
                    )
                    if migrate.returncode != 0:
                        raise CommandError(f"migrating the private database failed: {migrate.stderr[-2000:]}")
            driver = subprocess.run(  # noqa: S603 - this command again, as the driver
                [sys.executable, "manage.py", "chaos", *self._argv(options)], cwd=ROOT, env=env, check=False
            )
            return driver.returncode
        finally:
            redis.stop()
            if postgres is not None and postgres.is_running():
                try:
                    postgres.stop("immediate")
                except (RuntimeError, subprocess.TimeoutExpired) as exc:
                    note(f"stopping the private PostgreSQL: {exc}")
            shutil.rmtree(tmp, ignore_errors=True)

    @staticmethod
    def _argv(options: dict) -> list[str]:
        argv = []
        for name in (
            "events",
            "prospects",
            "kills",
            "fault_rate",
            "workers",
            "lease_seconds",
            "fault_window",
            "drain_timeout",
            "seed",
        ):
            if options[name] is not None:
                argv += [f"--{name.replace('_', '-')}", str(options[name])]
        for name in ("restart_redis", "restart_postgres"):
            if options[name]:
                argv.append(f"--{name.replace('_', '-')}")
        return argv


class Driver:
    """The second process: emulator, workers, scheduler loop, events, faults, and the check."""

    def __init__(self, options: dict) -> None:
        self.options = options
        self.random = random.Random(options["seed"] if options["seed"] is not None else time.time_ns())
        self.tmp = Path(os.environ["CHAOS_TMP"])
        self.redis_port = int(os.environ["CHAOS_REDIS_PORT"])
        self.postgres: PrivatePostgres | None = None
        if os.environ.get("CHAOS_PG_DIR"):
            self.postgres = PrivatePostgres.__new__(PrivatePostgres)
            directory = Path(os.environ["CHAOS_PG_DIR"])
            self.postgres.directory, self.postgres.data = directory, directory / "data"
            self.postgres.socket_dir, self.postgres.log = directory / "sock", directory / "postgres.log"
            self.postgres.port = int(os.environ["CHAOS_PG_PORT"])
            self.postgres.bin, self.postgres.as_user = PrivatePostgres._find_bin(), PrivatePostgres._user()
        self.workers: list[subprocess.Popen | None] = []
        self.worker_logs: list[Path] = []
        self.stop_scheduler = threading.Event()
        self.db_down = threading.Event()
        self.events_done = 0
        self.drive_finished = 0.0
        self.fault_log: list[str] = []
        self.restarted_redis: subprocess.Popen | None = None
        self.last_sweep = time.monotonic()
        self.scheduler: threading.Thread | None = None
        self.sweep_errors: set[str] = set()

    def run(self) -> int:
        from integrations.sandbox.core import EmulatorServer, LocalCA
        from integrations.sandbox.hubspot import HubSpotEmulator
        from integrations.sandbox.registry import client_credentials

        client_id, client_secret = client_credentials("hubspot")
        app = HubSpotEmulator(client_id=client_id, client_secret=client_secret, search_limit=1000)
        ca = LocalCA(self.tmp / "ca")
        server = EmulatorServer(app, tls=ca).start()
        self.endpoint_env = {
            "HUBSPOT_API_URL": server.url,
            "HUBSPOT_OAUTH_URL": server.url,
            "HUBSPOT_CLIENT_ID": client_id,
            "HUBSPOT_CLIENT_SECRET": client_secret,
            "CRM_CA_BUNDLE": str(ca.ca_path),
        }
        try:
            return self._run(app)
        finally:
            self.stop_scheduler.set()
            self._stop_workers()
            server.stop()
            if self.restarted_redis is not None and self.restarted_redis.poll() is None:
                self.restarted_redis.kill()
                self.restarted_redis.wait(timeout=10)

    # -- workers ---------------------------------------------------------------------------------
    def _worker_env(self) -> dict[str, str]:
        return {
            **os.environ,
            **self.endpoint_env,
            "CRM_HTTP_TIMEOUT_SECONDS": str(HTTP_TIMEOUT_SECONDS),
            "SYNC_RETRY_BASE_SECONDS": "1",
            "SYNC_RETRY_MAX_SECONDS": "5",
            "SYNC_MAX_ATTEMPTS": "25",
            "SYNC_COALESCE_SECONDS": "0.2",
            "RQ_MAINTENANCE_INTERVAL": "5",
            LEASE_ENV: str(self.options["lease_seconds"]),
            "PYTHONUNBUFFERED": "1",
        }

    def _start_worker(self, index: int) -> None:
        log_path = self.tmp / f"worker-{index}.log"
        with open(log_path, "a") as log:
            process = subprocess.Popen(  # noqa: S603 - our own manage.py, fixed arguments
                [
                    sys.executable,
                    "manage.py",
                    "rqworker",
                    "realtime",
                    "default",
                    "--worker-class",
                    f"{__name__}.ChaosWorker",
                ],
                cwd=ROOT,
                env=self._worker_env(),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        if index < len(self.workers):
            self.workers[index] = process
        else:
            self.workers.append(process)
            self.worker_logs.append(log_path)

    def _revive_workers(self) -> None:
        """A worker that exited on its own (Redis or PostgreSQL gone) is started again, as a
        process supervisor would."""
        for index, process in enumerate(self.workers):
            if process is not None and process.poll() is not None:
                self.fault_log.append(f"worker {index} exited with {process.returncode}; restarted")
                self._start_worker(index)

    def _kill_worker(self) -> None:
        index = self.random.randrange(len(self.workers))
        process = self.workers[index]
        if process is not None and process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        self.fault_log.append(f"SIGKILL worker {index}")
        self._start_worker(index)

    def _stop_workers(self) -> None:
        for process in self.workers:
            if process is not None and process.poll() is None:
                process.terminate()
        for process in self.workers:
            if process is None:
                continue
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)

    # -- restarts --------------------------------------------------------------------------------
    def _restart_redis(self) -> None:
        pid = self._redis_pid()
        if pid is None:
            raise CommandError("the private Redis is not running")
        os.kill(pid, signal.SIGKILL)  # the private instance only: everything in it is lost
        time.sleep(2)  # kicks enqueued now are lost; the sweep must find their work
        binary = shutil.which("redis-server")
        self.restarted_redis = subprocess.Popen(  # noqa: S603 - fixed arguments; stopped in run()
            [
                binary,
                "--port",
                str(self.redis_port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.tmp / "redis"),
                "--protected-mode",
                "yes",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        probe = PrivateRedis(self.tmp / "redis")
        probe.port = self.redis_port
        if not wait_until(probe._answers, 10):
            raise CommandError("the private Redis did not come back")
        self.fault_log.append("restarted Redis (all its data lost)")

    def _redis_pid(self) -> int | None:
        try:
            with socket.create_connection(("127.0.0.1", self.redis_port), timeout=2) as sock:
                sock.sendall(b"INFO server\r\n")
                data = b""
                while b"process_id:" not in data or not data.endswith(b"\r\n"):
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    data += chunk
        except OSError:
            return None
        for line in data.decode(errors="replace").splitlines():
            if line.startswith("process_id:"):
                return int(line.split(":", 1)[1])
        return None

    def _restart_postgres(self) -> None:
        if self.postgres is None:
            return
        self.db_down.set()
        try:
            self.postgres.stop("fast")
            time.sleep(2)
            self.postgres.start()
        finally:
            self.db_down.clear()
        safe_close_old_connections()
        self.fault_log.append("restarted PostgreSQL")

    # -- scheduler -------------------------------------------------------------------------------
    def _scheduler(self) -> None:
        from django.db import DatabaseError

        from integrations.sync.jobs import sweep

        while not self.stop_scheduler.wait(2.0):
            try:
                sweep()
                self.last_sweep = time.monotonic()
            except DatabaseError as exc:
                if self.db_down.is_set() is False and str(exc) not in self.sweep_errors:
                    self.sweep_errors.add(str(exc))
                    note(f"sweep failed: {type(exc).__name__}: {exc}")
                reset_connection()  # PostgreSQL is restarting; the next round reconnects
            except Exception as exc:  # anything else is noted; the safety net must keep running
                self.fault_log.append(f"sweep: {type(exc).__name__}")
                note(f"sweep failed: {type(exc).__name__}: {exc}")
                reset_connection()
            finally:
                safe_close_old_connections()

    def _start_scheduler(self) -> None:
        self.last_sweep = time.monotonic()
        self.scheduler = threading.Thread(target=self._scheduler, name="chaos-scheduler", daemon=True)
        self.scheduler.start()

    def _watch_scheduler(self) -> None:
        """A scheduler that has not finished a sweep for 30 s is reported with its stack and
        replaced, as a process supervisor would restart a hung scheduler process."""
        if time.monotonic() - self.last_sweep < 30:
            return
        frame = sys._current_frames().get(self.scheduler.ident)
        stack = "".join(traceback.format_stack(frame)) if frame is not None else "(thread gone)"
        note(f"the scheduler made no sweep for 30 s; its stack:\n{stack}")
        self.fault_log.append("scheduler hung; replaced")
        self._start_scheduler()

    # -- the drive -------------------------------------------------------------------------------
    def _events(self) -> list[dict]:
        count, prospects = self.options["events"], self.options["prospects"]
        owners = list(range(prospects)) + [self.random.randrange(prospects) for _ in range(count - prospects)]
        self.random.shuffle(owners)
        run = uuid.uuid4().hex[:8]
        bodies = []
        for n, owner in enumerate(owners):
            kind = "capsule_viewed" if self.random.random() < 0.6 else "time_spent"
            bodies.append(
                {
                    "event_id": f"chaos-{run}-{n}",
                    "type": kind,
                    "occurred_at": (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)).isoformat(),
                    "capsule": {
                        "id": "cap_chaos",
                        "title": "Chaos tour",
                        "url": "https://capsules.example.com/c/chaos",
                    },
                    "prospect": {
                        "email": f"chaos-{run}-{owner}@example.com",
                        "first_name": "Chaos",
                        "last_name": f"P{owner}",
                        "company": "Northwind",
                    },
                    "data": {"seconds": self.random.randint(5, 600)} if kind == "time_spent" else {},
                }
            )
        return bodies

    def _post(self, http, raw_key: str, chunk: list[dict]) -> None:
        """Post until accepted: the capsule platform retries, and event ids make retries safe."""
        while True:
            if self.db_down.is_set():
                time.sleep(0.2)
                continue
            try:
                response = http.post(
                    "/api/v1/events",
                    {"events": chunk},
                    content_type="application/json",
                    HTTP_AUTHORIZATION=f"Bearer {raw_key}",
                )
                if response.status_code == 200:
                    return
                if response.status_code < 500:
                    raise CommandError(f"ingestion refused a chunk: {response.status_code} {response.content[:300]!r}")
            except CommandError:
                raise
            except Exception:  # noqa: S110 - the database is restarting; the post is retried
                pass
            reset_connection()
            time.sleep(0.5)

    def _drive(self, bodies: list[dict], raw_key: str) -> None:
        from django.test import Client

        http = Client(raise_request_exception=False)
        try:
            for start in range(0, len(bodies), CHUNK):
                self._post(http, raw_key, bodies[start : start + CHUNK])
                self.events_done = start + CHUNK
            self.drive_finished = time.monotonic()
        finally:
            safe_close_old_connections()

    def _plan(self, window: float) -> Plan:
        kills = sorted(self.random.uniform(1.0, window) for _ in range(self.options["kills"]))
        redis_at = self.random.uniform(0.2 * window, 0.5 * window) if self.options["restart_redis"] else None
        postgres_at = (
            self.random.uniform(0.5 * window, 0.8 * window)
            if self.options["restart_postgres"] and self.postgres is not None
            else None
        )
        return Plan(kills, redis_at, postgres_at)

    def _wait_for_workers(self, count: int) -> None:
        from rq import Worker

        from integrations.sync.redis import redis_client

        if not wait_until(lambda: len(Worker.all(connection=redis_client())) >= count, 60, 0.2):
            raise CommandError(f"{count} worker(s) did not start within 60 s")

    def _connect(self, app):
        from django.utils import timezone

        from crmsync.models import Account, ApiKey
        from integrations.connecting import connect
        from integrations.connector import TokenSet
        from integrations.models import AuthKind, SyncMode

        account = Account.objects.create(name=f"chaos {uuid.uuid4().hex[:8]}", slug=f"chaos-{uuid.uuid4().hex[:8]}")
        # OAuth, so an expired token is refreshed (a private-app token cannot be).
        issued = app.oauth.issue(app.client.client_id, [], account_ref=str(app.hub_id))
        tokens = TokenSet(
            access_token=issued.access_token,
            refresh_token=issued.refresh_token,
            expires_at=timezone.now() + dt.timedelta(hours=2),
        )
        with self._settings():
            connection = connect(account, "hubspot", tokens, auth_kind=AuthKind.OAUTH, actor_label="chaos")
        connection.sync_mode = SyncMode.REALTIME
        connection.activated_at = timezone.now()
        connection.save()
        _key, raw_key = ApiKey.issue(account, "chaos")
        return account, connection, raw_key

    def _settings(self):
        from django.test import override_settings

        endpoint = {
            "api_url": self.endpoint_env["HUBSPOT_API_URL"],
            "oauth_url": self.endpoint_env["HUBSPOT_OAUTH_URL"],
            "client_id": self.endpoint_env["HUBSPOT_CLIENT_ID"],
            "client_secret": self.endpoint_env["HUBSPOT_CLIENT_SECRET"],
        }
        return override_settings(
            CRM_ENDPOINTS={**settings.CRM_ENDPOINTS, "hubspot": endpoint},
            CRM_CA_BUNDLE=self.endpoint_env["CRM_CA_BUNDLE"],
            ALLOWED_HOSTS=[*settings.ALLOWED_HOSTS, "testserver"],
        )

    def _run(self, app) -> int:
        from integrations.models import OutboxItem, OutboxState

        if os.environ.get("CHAOS_POSTGRES_SKIPPED"):
            self.fault_log.append("PostgreSQL restart skipped: no private cluster")
        account, connection, raw_key = self._connect(app)
        try:
            for index in range(self.options["workers"]):
                self._start_worker(index)
            self._wait_for_workers(self.options["workers"])
            app.faults.chaos(
                self.options["fault_rate"],
                kinds=FAULT_KINDS,
                slow_seconds=HTTP_TIMEOUT_SECONDS + 1.5,
                seed=self.random.randrange(1 << 30),
            )
            self._start_scheduler()

            bodies = self._events()
            window = self.options["fault_window"] or max(10.0, len(bodies) / 200)
            plan = self._plan(window)
            started = time.monotonic()
            with self._settings():
                driver = threading.Thread(target=self._drive, args=(bodies, raw_key), name="chaos-drive")
                driver.start()
                self._faults_until_done(plan, started, window, driver)
                driver.join()
            drive_seconds = self.drive_finished - started

            open_states = [OutboxState.PENDING, OutboxState.RETRY, OutboxState.IN_FLIGHT, OutboxState.HELD]

            def drained() -> bool:
                self._revive_workers()
                self._watch_scheduler()
                try:
                    return not OutboxItem.objects.filter(connection=connection, state__in=open_states).exists()
                except Exception:
                    reset_connection()
                    return False

            is_drained = wait_until(drained, self.options["drain_timeout"], 1.0)
            drain_seconds = time.monotonic() - self.drive_finished  # from the last event accepted
            app.faults.clear()
            return self._report(app, account, connection, bodies, is_drained, drain_seconds, drive_seconds)
        finally:
            self.stop_scheduler.set()
            self._stop_workers()
            close_old_connections()
            try:
                account.delete()
            except Exception as exc:
                note(f"could not delete the chaos account: {type(exc).__name__}: {exc}")

    def _faults_until_done(self, plan: Plan, started: float, window: float, driver: threading.Thread) -> None:
        """Fire the planned faults at their moments (they run on even if the drive ends first)."""
        todo = [(at, "kill") for at in plan.kills]
        if plan.redis_restart is not None:
            todo.append((plan.redis_restart, "redis"))
        if plan.postgres_restart is not None:
            todo.append((plan.postgres_restart, "postgres"))
        todo.sort()
        for at, action in todo:
            while time.monotonic() - started < at:
                self._revive_workers()
                self._watch_scheduler()
                time.sleep(0.1)
            if action == "kill":
                self._kill_worker()
            elif action == "redis":
                self._restart_redis()
            else:
                self._restart_postgres()
        while driver.is_alive():
            self._revive_workers()
            self._watch_scheduler()
            driver.join(0.5)

    def _report(self, app, account, connection, bodies, is_drained, drain_seconds, drive_seconds) -> int:
        from crmsync.models import Event
        from integrations.models import OutboxItem, OutboxState
        from integrations.sandbox.probes import PROBES, duplicates
        from integrations.sync.render import event_key

        probe = PROBES["hubspot"]
        sent_emails = {b["prospect"]["email"].lower() for b in bodies}
        people = [email for _id, email in probe.people(app)]
        activity_events = Event.objects.filter(account=account, type="capsule_viewed")
        expected_keys = {event_key(e) for e in activity_events}
        keys = probe.engagement_keys(app)
        sent_activities = sum(1 for b in bodies if b["type"] == "capsule_viewed")

        lost = len(sent_emails - set(people)) + len(expected_keys - set(keys))
        lost += sent_activities - len(expected_keys)  # accepted events that never became event rows
        duplicated = duplicates(people) + len(set(people) - sent_emails)
        duplicated += duplicates(keys) + len(set(keys) - expected_keys)
        failed = OutboxItem.objects.filter(connection=connection, state=OutboxState.FAILED).count()
        still_open = (
            OutboxItem.objects.filter(connection=connection)
            .exclude(state__in=[OutboxState.DONE, OutboxState.FAILED, OutboxState.SKIPPED])
            .count()
        )
        print(
            f"events={len(bodies)} prospects={len(sent_emails)} crm_records={len(people)} activities={len(keys)} "
            f"lost={lost} duplicated={duplicated} drain_seconds={drain_seconds:.1f}",
            flush=True,
        )
        details = {
            "drive_seconds": round(drive_seconds, 1),
            "drained": is_drained,
            "outbox_failed": failed,
            "outbox_open": still_open,
            "expected_activities": sent_activities,
            "crm_api_calls": probe.api_calls(app),
            "crm_rate_limited": probe.rate_limited(app),
            "faults": self.fault_log,
        }
        note(json.dumps(details))
        ok = (
            is_drained
            and lost == 0
            and duplicated == 0
            and len(people) == len(sent_emails)
            and len(keys) == sent_activities
        )
        if not ok:
            for path in self.worker_logs:
                tail = path.read_text(errors="replace")[-3000:] if path.exists() else ""
                note(f"{path.name} (last lines):\n{tail}")
            if failed:
                sample = list(
                    OutboxItem.objects.filter(connection=connection, state=OutboxState.FAILED).values_list(
                        "kind", "last_error"
                    )[:5]
                )
                note(f"failed rows (sample): {sample}")
        return 0 if ok else 1
