"""Erase one prospect of an account by e-mail address (a data subject's erasure request)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from crmsync.models import Account
from crmsync.privacy import erase_by_email


class Command(BaseCommand):
    help = "Erase a prospect: delete their events and visitors, anonymise them and suppress the address."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--account", required=True, help="The account's slug.")
        parser.add_argument("--email", required=True, help="The prospect's e-mail address (any spelling).")

    def handle(self, *args, account: str, email: str, **options) -> None:
        found = Account.objects.filter(slug=account).first()
        if found is None:
            raise CommandError(f"No account with slug {account!r}.")
        erasure = erase_by_email(found, email, actor_label="cli erase_prospect")
        if erasure is None:
            raise CommandError(f"Account {account!r} has no prospect with that e-mail address; nothing was erased.")
        self.stdout.write(
            f"Erased prospect #{erasure.prospect_id} of account {found.slug}: "
            f"{erasure.events_deleted} events and {erasure.visitors_deleted} visitors deleted, "
            "personal fields cleared, the address added to the suppression list."
        )
