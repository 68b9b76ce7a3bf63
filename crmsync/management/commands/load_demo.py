"""Demo data for `make run`: an account with an owner, an ops user, and some capsule activity.

Safe to run at every start: what exists is kept. The passwords are for a local demo only.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from crmsync.audit import record
from crmsync.models import Account, ApiKey, Membership, Role
from crmsync.samples import send_sample_events

DEMO_ACCOUNT = "Demo Co"
OWNER_EMAIL, OWNER_PASSWORD = "owner@demo.example.com", "demo-owner-pass"
OPS_EMAIL, OPS_PASSWORD = "ops@demo.example.com", "demo-ops-pass"


class Command(BaseCommand):
    help = "Create the demo account, users and sample activity (idempotent)."

    def handle(self, *args, **options) -> None:
        users = get_user_model()
        with transaction.atomic():
            account, created = Account.objects.get_or_create(name=DEMO_ACCOUNT, defaults={"slug": "demo"})
            owner, _ = users.objects.get_or_create(username=OWNER_EMAIL, defaults={"email": OWNER_EMAIL})
            if not owner.has_usable_password():
                owner.set_password(OWNER_PASSWORD)
                owner.save()
            Membership.objects.get_or_create(account=account, user=owner, defaults={"role": Role.OWNER})
            ops, _ = users.objects.get_or_create(
                username=OPS_EMAIL, defaults={"email": OPS_EMAIL, "is_staff": True, "is_superuser": True}
            )
            if not ops.has_usable_password():
                ops.set_password(OPS_PASSWORD)
                ops.save()
            if created:
                _key, raw = ApiKey.issue(account, "demo key")
                send_sample_events(account, 40, actor_label="load_demo", seed=7)
                record("demo.loaded", actor_label="load_demo", obj=account)
                self.stdout.write(f"Demo API key (shown once): {raw}")
        self.stdout.write(f"Owner sign-in: {OWNER_EMAIL} / {OWNER_PASSWORD}   (settings: /settings/)")
        self.stdout.write(f"Ops sign-in:   {OPS_EMAIL} / {OPS_PASSWORD}   (admin: /admin/)")
