"""Connect a CRM with a token (private-app token or API key), for ops scripting."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from crmsync.models import Account
from integrations.connecting import connect
from integrations.connector import TokenSet
from integrations.errors import CrmError
from integrations.registry import AUTH_OAUTH, get_provider, providers


class Command(BaseCommand):
    help = "Verify a CRM token and create (or update) the account's connection; prints CONNECTION_ID=<id>."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--account", required=True, help="The account's slug.")
        parser.add_argument("--provider", required=True, choices=sorted(providers()))
        parser.add_argument("--token", required=True, help="A private-app token, API key or access token.")
        parser.add_argument("--api-url", default=None, help="The CRM API base URL when it is per account.")

    def handle(self, *args, account: str, provider: str, token: str, api_url: str | None, **options) -> None:
        try:
            account_obj = Account.objects.get(slug=account)
        except Account.DoesNotExist:
            raise CommandError(f"no account with slug {account!r}") from None
        spec = get_provider(provider)
        kinds = [kind for kind in spec.auth_kinds if kind != AUTH_OAUTH]
        if not kinds:
            raise CommandError(f"{spec.label} connects only through OAuth; use the settings page")
        try:
            connection = connect(
                account_obj,
                provider,
                TokenSet(access_token=token, api_base_url=api_url),
                auth_kind=kinds[0],
                actor_label="cli connect_crm",
            )
        except CrmError as exc:
            raise CommandError(f"{spec.label} refused the token: {exc}") from None
        self.stdout.write(f"Connected to {connection.crm_account_name or connection.crm_account_id}")
        self.stdout.write(f"CONNECTION_ID={connection.pk}")
