"""Run batch syncs now, for system cron: all batch connections, one account's, or one connection."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from integrations.models import Connection, ConnectionStatus, SyncMode
from integrations.sync.jobs import claim_batch_window, run_batch


class Command(BaseCommand):
    help = "Flush what batch-mode connections collected, through the CRMs' batch endpoints."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--connection", type=int, help="Only this connection (any sync mode).")
        parser.add_argument("--account", help="Only this account's batch connections (slug).")
        parser.add_argument(
            "--force", action="store_true", help="Run even if this hour's/day's window was already taken."
        )

    def handle(self, *args, connection: int | None, account: str | None, force: bool, **options) -> None:
        connections = Connection.objects.filter(status=ConnectionStatus.ACTIVE, activated_at__isnull=False)
        if connection is not None:
            connections = connections.filter(pk=connection)
            if not connections.exists():
                raise CommandError(f"no active, activated connection with id {connection}")
        else:
            connections = connections.filter(sync_mode=SyncMode.BATCH)
            if account:
                connections = connections.filter(account__slug=account)
        for conn in connections.select_related("account"):
            if not force and connection is None and not claim_batch_window(conn):
                self.stdout.write(f"connection {conn.pk}: this window's batch already ran")
                continue
            result = run_batch(conn.pk)
            self.stdout.write(
                f"connection {conn.pk} ({conn.account.slug}): created={result['created']} updated={result['updated']} "
                f"unchanged={result['unchanged']} failed={result['failed']} api_calls={result['api_calls']}"
            )
