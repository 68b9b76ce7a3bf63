"""Run the scheduler: RQ's cron with the timetable in crmsync/cron.py."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from rq.cron import CronScheduler

from integrations.sync.redis import redis_client


class Command(BaseCommand):
    help = "Enqueue the periodic jobs of crmsync/cron.py (sweep, batch windows) on RQ."

    def handle(self, *args, **options) -> None:
        if not settings.REDIS_URL:
            raise CommandError("the scheduler needs REDIS_URL; without Redis, `serve_local` runs the timetable")
        scheduler = CronScheduler(connection=redis_client())
        scheduler.load_config_from_file("crmsync.cron")
        scheduler.start()
