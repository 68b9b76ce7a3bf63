"""Suppression list: hashes of erased e-mail addresses, so an erased person is never re-created."""

from __future__ import annotations

import hashlib
import hmac

from django.db import models
from django.utils import timezone

from crmsync.models.capsules import normalise_email
from crmsync.models.tenancy import Account


def suppression_hash(account: Account, email: str) -> str:
    # Keyed per account so the list cannot be checked against a dictionary of addresses elsewhere.
    return hmac.new(account.suppression_salt.encode(), normalise_email(email).encode(), hashlib.sha256).hexdigest()


class Suppression(models.Model):
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="suppressions")
    email_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)
    reason = models.CharField(max_length=100, default="erasure request")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account", "email_hash"], name="suppression_unique_hash")]

    def __str__(self) -> str:
        # The hash only: the address itself is what we no longer keep.
        return f"suppressed {self.email_hash[:12]}…"

    @classmethod
    def is_suppressed(cls, account: Account, email: str) -> bool:
        return cls.objects.filter(account=account, email_hash=suppression_hash(account, email)).exists()
