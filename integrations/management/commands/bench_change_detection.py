"""Benchmark: select the changed prospects among a million, with bounded memory.

    python manage.py bench_change_detection --prospects 1000000 --changed-share 0.01

Creates an account with N prospects, each already synced (a record link with its last sync
time), touches the given share, then times ``changed_prospect_ids`` streaming the changed ones.
Prints one JSON object with the counts, seconds and the process's peak memory (RSS).
"""

from __future__ import annotations

import json
import resource
import time
import uuid

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection as db
from django.utils import timezone

from crmsync.models import Account
from integrations.models import Connection
from integrations.sync.changes import changed_prospect_ids


class Command(BaseCommand):
    help = "Time change detection over many prospects; print figures as JSON."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--prospects", type=int, default=1_000_000)
        parser.add_argument("--changed-share", type=float, default=0.01)
        parser.add_argument("--keep", action="store_true")

    def handle(self, *args, prospects: int, changed_share: float, keep: bool, **options) -> None:
        if db.vendor != "postgresql":
            raise CommandError("this benchmark runs on PostgreSQL (set DATABASE_URL)")
        tag = uuid.uuid4().hex[:8]
        account = Account.objects.create(name=f"changes {tag}", slug=f"changes-{tag}")
        connection = Connection.objects.create(
            account=account, provider="hubspot", access_token="bench", activated_at=timezone.now()
        )
        try:
            started = time.monotonic()
            synced_at = timezone.now() - timezone.timedelta(hours=1)
            with db.cursor() as cursor:
                cursor.execute(
                    """INSERT INTO crmsync_prospect (account_id, email, first_name, last_name, phone, company,
                           job_title, attributes, utm, consent_source, erased, created_at, updated_at, last_event_at)
                       SELECT %s, 'p' || g || '@example.com', 'First', 'Last' || g, '', 'Co', '', '{}', '{}', '',
                              FALSE, %s, %s, %s
                       FROM generate_series(1, %s) AS g""",
                    [account.pk, synced_at, synced_at, synced_at, prospects],
                )
                cursor.execute(
                    """INSERT INTO integrations_recordlink (connection_id, prospect_id, crm_object_type, crm_id,
                           state, last_payload_hash, last_sent_fields, last_synced_at, created_at)
                       SELECT %s, p.id, 'contact', p.id::text, 'linked', '', '{}', %s, %s
                       FROM crmsync_prospect p WHERE p.account_id = %s""",
                    [connection.pk, synced_at + timezone.timedelta(minutes=1), synced_at, account.pk],
                )
                every = max(1, round(1 / changed_share))
                cursor.execute(
                    "UPDATE crmsync_prospect SET updated_at = now() WHERE account_id = %s AND id %% %s = 0",
                    [account.pk, every],
                )
                cursor.execute("ANALYZE crmsync_prospect; ANALYZE integrations_recordlink")
            setup_seconds = time.monotonic() - started
            rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            started = time.monotonic()
            selected = sum(len(chunk) for chunk in changed_prospect_ids(connection))
            seconds = time.monotonic() - started
            peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            self.stdout.write(
                json.dumps(
                    {
                        "prospects": prospects,
                        "changed_expected": prospects // every,
                        "changed_selected": selected,
                        "seconds": round(seconds, 2),
                        "peak_rss_mb": round(peak_mb, 1),
                        "rss_growth_mb": round(
                            (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024, 1
                        ),
                        "setup_seconds": round(setup_seconds, 1),
                        "target": "changed selected in <= 60 s, worker memory < 1024 MB",
                    }
                )
            )
        finally:
            if not keep:
                with db.cursor() as cursor:
                    cursor.execute("DELETE FROM integrations_recordlink WHERE connection_id = %s", [connection.pk])
                    cursor.execute("DELETE FROM crmsync_prospect WHERE account_id = %s", [account.pk])
                account.delete()
