"""Credentials are encrypted at rest, and a wrong key fails loudly instead of leaking ciphertext."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.db import connection as db

from integrations.checks import credentials_decrypt
from integrations.fields import CredentialDecryptionError
from integrations.models import Connection

ACCESS = "pat-na1-plaintext-access-token-0001"
REFRESH = "refresh-plaintext-token-0002"


@pytest.fixture
def stored(account):
    return Connection.objects.create(
        account=account,
        provider="hubspot",
        access_token=ACCESS,
        refresh_token=REFRESH,
        webhook_secret="whsec-plaintext-0003",
    )


def raw_row(pk):
    with db.cursor() as cursor:
        cursor.execute(
            "SELECT access_token, refresh_token, webhook_secret FROM integrations_connection WHERE id = %s", [pk]
        )
        return cursor.fetchone()


def test_the_raw_columns_hold_no_plaintext_token(stored):
    row = raw_row(stored.pk)
    for column, plaintext in zip(row, (ACCESS, REFRESH, "whsec-plaintext-0003"), strict=True):
        assert plaintext not in column
        assert column.startswith("gAAAA")  # a Fernet token


def test_credentials_read_back_decrypted(stored):
    fresh = Connection.objects.get(pk=stored.pk)
    assert fresh.access_token == ACCESS
    assert fresh.refresh_token == REFRESH


def test_a_row_encrypted_with_another_key_raises_instead_of_returning_ciphertext(stored):
    foreign = Fernet(Fernet.generate_key()).encrypt(b"someone-elses-token").decode()
    with db.cursor() as cursor:
        cursor.execute("UPDATE integrations_connection SET access_token = %s WHERE id = %s", [foreign, stored.pk])
    with pytest.raises(CredentialDecryptionError, match="FIELD_ENCRYPTION_KEY"):
        Connection.objects.get(pk=stored.pk)


def test_the_system_check_reports_a_wrong_key(stored):
    assert credentials_decrypt(None) == []
    foreign = Fernet(Fernet.generate_key()).encrypt(b"x").decode()
    with db.cursor() as cursor:
        cursor.execute("UPDATE integrations_connection SET refresh_token = %s WHERE id = %s", [foreign, stored.pk])
    errors = credentials_decrypt(None)
    assert [e.id for e in errors] == ["integrations.E001"]
    with pytest.raises(SystemCheckError, match=r"integrations\.E001"):
        call_command("check")


def test_the_admin_never_shows_credentials(stored, admin_client):
    page = admin_client.get(f"/admin/integrations/connection/{stored.pk}/change/").content.decode()
    listing = admin_client.get("/admin/integrations/connection/").content.decode()
    for text in (page, listing):
        assert ACCESS not in text and REFRESH not in text
        assert "gAAAA" not in text
