"""Recompute lead scores: after deploying scoring to accounts with prospects, or from cron so
that decaying points stay current.

    manage.py recompute_scores --account acme      # one account, as a job on the batch queue
    manage.py recompute_scores --all --wait        # every account, here and now
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from crmsync.models import Account
from scoring.jobs import recompute_account
from scoring.models import ScoreRecompute
from scoring.recompute import start_recompute


class Command(BaseCommand):
    help = "Recompute the lead scores of one account or of all accounts."

    def add_arguments(self, parser: CommandParser) -> None:
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument("--account", help="The account's slug.")
        which.add_argument("--all", action="store_true", help="Every account.")
        parser.add_argument(
            "--wait", action="store_true", help="Run the recompute in this process instead of on the batch queue."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        accounts = Account.objects.order_by("pk")
        if options["account"]:
            accounts = accounts.filter(slug=options["account"])
            if not accounts.exists():
                raise CommandError(f"No account with the slug {options['account']!r}.")
        for account in accounts.iterator():
            recompute = start_recompute(account, None)
            if options["wait"]:
                # A continuation would go to the queue; here, keep going until the recompute ends.
                recompute_account(recompute.pk, time_slice=float("inf"))
                recompute.refresh_from_db()
            self.stdout.write(f"{account.slug}: recompute #{recompute.pk} {recompute.get_state_display().lower()}")
            if recompute.state == ScoreRecompute.State.FAILED:
                self.stderr.write(f"  {recompute.error}")
