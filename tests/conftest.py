"""Shared fixtures: accounts, users with roles, API keys."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from crmsync.models import Account, ApiKey, Membership, Role

pytest_plugins = ["tests.secret_scan"]  # no secret in any log line across the run


@pytest.fixture
def make_account(db):
    def make(name: str = "Acme Corp", **fields) -> Account:
        return Account.objects.create(name=name, slug=Account.unique_slug_for(name), **fields)

    return make


@pytest.fixture
def account(make_account) -> Account:
    return make_account("Acme Corp")


@pytest.fixture
def make_member(db):
    def make(account: Account, role: str = Role.OWNER, email: str | None = None):
        email = email or f"{role}-{account.slug}@example.com"
        user = get_user_model().objects.create_user(username=email, email=email, password="correct horse 123")
        Membership.objects.create(account=account, user=user, role=role)
        return user

    return make


@pytest.fixture
def owner(account, make_member):
    return make_member(account, Role.OWNER)


@pytest.fixture
def api_key(account) -> str:
    _key, raw = ApiKey.issue(account, "test key")
    return raw
