"""Create an account with its owner and a first API key: the way ops onboard a customer."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.validators import validate_email
from django.db import transaction

from crmsync import audit
from crmsync.models import Account, ApiKey, Membership, Role


class Command(BaseCommand):
    help = "Create an account, its owner (a new or existing user) and an API key. Prints ACCOUNT= and API_KEY=."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="The account's name, e.g. 'Acme Corp'.")
        parser.add_argument("--owner-email", required=True, help="The owner's e-mail address (their sign-in).")
        parser.add_argument(
            "--owner-password",
            help="A password for a new owner. Without it the owner sets one with 'Forgot password?'.",
        )

    def handle(self, *args, name: str, owner_email: str, owner_password: str | None, **options) -> None:
        name = name.strip()
        email = owner_email.strip().lower()
        if not name:
            raise CommandError("The account name must not be empty.")
        try:
            validate_email(email)
        except ValidationError:
            raise CommandError(f"--owner-email {owner_email!r} is not a valid e-mail address.") from None
        if Account.objects.filter(name__iexact=name).exists():
            raise CommandError(f"An account named {name!r} already exists; choose another name.")

        with transaction.atomic():
            account = Account.objects.create(name=name, slug=Account.unique_slug_for(name))
            owner, created = self._owner(email, owner_password)
            Membership.objects.create(account=account, user=owner, role=Role.OWNER)
            _key, raw_key = ApiKey.issue(account, "Default key", created_by=owner)
            audit.record(
                "account.created",
                actor_label="cli create_account",
                account=account,
                obj=account,
                changes={"owner": email, "owner_created": created},
            )

        who = "new user" if created else "existing user"
        self.stderr.write(f"Created account {account.name!r} with owner {email} ({who}).")
        if created and not owner_password:
            self.stderr.write("The owner has no password yet: they choose one with 'Forgot password?' when signing in.")
        # Machine-readable lines on stdout; the key is shown this once and stored only as a hash.
        self.stdout.write(f"ACCOUNT={account.slug}")
        self.stdout.write(f"API_KEY={raw_key}")

    def _owner(self, email: str, password: str | None):
        users = get_user_model().objects
        existing = users.filter(email__iexact=email).order_by("pk").first()
        if existing is not None:
            if password:
                self.stderr.write(f"{email} is an existing user: their password is left unchanged.")
            return existing, False
        user = users.model(username=self._free_username(email), email=email)
        if password:
            try:
                validate_password(password, user)
            except ValidationError as exc:
                raise CommandError("--owner-password: " + " ".join(exc.messages)) from None
            user.set_password(password)
        else:
            user.set_unusable_password()
        user.save()
        return user, True

    @staticmethod
    def _free_username(email: str) -> str:
        users = get_user_model().objects
        username, n = email[:150], 2
        while users.filter(username=username).exists():
            suffix = f"-{n}"
            username, n = email[: 150 - len(suffix)] + suffix, n + 1
        return username
