"""Sync all (or some) prospects of a connection now, and print one summary line."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from crmsync.audit import record
from crmsync.models import Prospect
from crmsync.models.capsules import normalise_email
from integrations.models import Connection, SyncRun
from integrations.sync.jobs import sync_now


class Command(BaseCommand):
    help = "Manual sync: all records of a connection, or the given e-mails."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--connection", type=int, required=True, help="The connection id.")
        parser.add_argument("--email", action="append", default=[], help="Only this prospect (repeatable).")

    def handle(self, *args, connection: int, email: list[str], **options) -> None:
        conn = Connection.objects.filter(pk=connection).select_related("account").first()
        if conn is None:
            raise CommandError(f"no connection with id {connection}")
        prospect_ids = None
        if email:
            wanted = {normalise_email(e) for e in email}
            found = dict(Prospect.objects.filter(account=conn.account, email__in=wanted).values_list("email", "id"))
            missing = sorted(wanted - set(found))
            if missing:
                raise CommandError(f"no prospect with e-mail {', '.join(missing)} in account {conn.account.slug}")
            prospect_ids = list(found.values())
        record(
            "sync.manual_started",
            actor_label="cli sync_now",
            obj=conn,
            changes={"prospects": "all" if prospect_ids is None else len(prospect_ids)},
        )
        run = SyncRun.objects.get(pk=sync_now(conn.pk, prospect_ids))
        self.stdout.write(
            f"created={run.created} updated={run.updated} unchanged={run.unchanged} failed={run.failed} "
            f"skipped={run.skipped} activities={run.activities} api_calls={run.api_calls}"
        )
