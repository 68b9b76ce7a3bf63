from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from crmsync.audit import record
from crmsync.models import Account
from crmsync.samples import send_sample_events


class Command(BaseCommand):
    help = "Ingest sample capsule events for an account, so data flows to its CRM within a minute."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--account", required=True, help="The account's slug.")
        parser.add_argument("--count", type=int, default=20)

    def handle(self, *args, account: str, count: int, **options) -> None:
        if not 1 <= count <= 10_000:
            raise CommandError("--count must be between 1 and 10000")
        account_obj = Account.objects.filter(slug=account).first()
        if account_obj is None:
            raise CommandError(f"no account with slug {account!r}")
        result = send_sample_events(account_obj, count, actor_label="cli send_sample_events")
        record("sample_events.sent", actor_label="cli send_sample_events", obj=account_obj, changes={"count": count})
        self.stdout.write(f"accepted={result.accepted} duplicates={result.duplicates} suppressed={result.suppressed}")
