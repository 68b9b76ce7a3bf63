"""Every new account starts with the default scoring rules and grade bands."""

from __future__ import annotations

from typing import Any

from crmsync.models import Account
from scoring.defaults import create_defaults
from scoring.models import GradeBand, ScoringRule


def create_default_scoring(
    sender: type[Account], instance: Account, created: bool, raw: bool = False, **kwargs: Any
) -> None:
    # Only on creation: an owner who deleted every rule must not get them back on the next save
    # of the account. Fixture loading (raw) brings its own rows.
    if created and not raw:
        create_defaults(instance.pk, ScoringRule, GradeBand)
