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
        parser.add_argument(
            "--extra",
            action="append",
            default=[],
            metavar="NAME=VALUE",
            help="A non-secret value the CRM needs besides the token (e.g. user_email=…).",
        )

    def handle(
        self, *args, account: str, provider: str, token: str, api_url: str | None, extra: list[str], **options
    ) -> None:
        try:
            account_obj = Account.objects.get(slug=account)
        except Account.DoesNotExist:
            raise CommandError(f"no account with slug {account!r}") from None
        spec = get_provider(provider)
        kinds = [kind for kind in spec.auth_kinds if kind != AUTH_OAUTH]
        if not kinds:
            raise CommandError(f"{spec.label} connects only through OAuth; use the settings page")
        values = dict(_pairs(extra))
        wanted = {name for name, _label in spec.token_extra_fields}
        if unexpected := sorted(set(values) - wanted):
            raise CommandError(f"--extra: {spec.label} does not take {', '.join(unexpected)}")
        if missing := sorted(wanted - set(values)):
            raise CommandError(f"--extra: {spec.label} needs {', '.join(f'{name}=VALUE' for name in missing)}")
        try:
            connection = connect(
                account_obj,
                provider,
                TokenSet(access_token=token, api_base_url=api_url, extra=values),
                auth_kind=kinds[0],
                actor_label="cli connect_crm",
            )
        except CrmError as exc:
            raise CommandError(f"{spec.label} refused the token: {exc}") from None
        self.stdout.write(f"Connected to {connection.crm_account_name or connection.crm_account_id}")
        self.stdout.write(f"CONNECTION_ID={connection.pk}")


def _pairs(items: list[str]) -> list[tuple[str, str]]:
    pairs = []
    for item in items:
        name, separator, value = item.partition("=")
        if not separator or not name:
            raise CommandError(f"--extra must be NAME=VALUE, got {item!r}")
        pairs.append((name.strip(), value.strip()))
    return pairs
