"""`make run`: the sandbox CRMs, the timetable and the web server in one process.

With REDIS_URL unset (the embedded default) jobs run in-process, and the timetable of
crmsync/cron.py runs on a thread here instead of in `run_scheduler`.
"""

from __future__ import annotations

import logging
import threading
import time

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser
from django.db import close_old_connections

from integrations.sandbox.registry import start_sandboxes

log = logging.getLogger(__name__)


def run_timetable(stop: threading.Event) -> None:
    """crmsync/cron.py's timetable on a thread, for the embedded default without Redis."""
    from crmsync.cron import TIMETABLE

    last = dict.fromkeys(range(len(TIMETABLE)), 0.0)
    while not stop.wait(1.0):
        for index, (job, _queue, every) in enumerate(TIMETABLE):
            if time.monotonic() - last[index] >= every:
                last[index] = time.monotonic()
                try:
                    job()
                except Exception:
                    log.exception("scheduled job %s failed", job.__name__)
                finally:
                    close_old_connections()


class Command(BaseCommand):
    help = "Serve the service locally with the sandbox CRMs (make run)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=8000)

    def handle(self, *args, port: int, **options) -> None:
        if settings.SANDBOX_ENABLED:
            servers = start_sandboxes(settings.PUBLIC_BASE_URL, settings.SANDBOX_DIR)
            for name, server in servers.items():
                self.stdout.write(f"sandbox {name}: {server.url}")
        stop = threading.Event()
        if not settings.REDIS_URL:
            threading.Thread(target=run_timetable, args=(stop,), name="timetable", daemon=True).start()
        self.stdout.write(f"Capsule CRM Sync: http://127.0.0.1:{port}/  (sign in: see load_demo's output)")
        try:
            call_command("runserver", f"127.0.0.1:{port}", use_reloader=False)
        finally:
            stop.set()
