"""Encryption keys rotate: add a key, re-encrypt, remove the old key, and everything still decrypts.

Every step runs as its own `manage.py` process with its own FIELD_ENCRYPTION_KEY, as an operator
would run it, against this test's database; the raw columns are read with SQL throughout.
"""

from __future__ import annotations

import json

import pytest
from cryptography.fernet import Fernet
from django.db import connection as db

from integrations.models import Connection, WebhookSubscription
from tests.reliability.conftest import manage, subprocess_env

pytestmark = pytest.mark.django_db(transaction=True)

KEY_A = Fernet.generate_key().decode()
KEY_B = Fernet.generate_key().decode()
PLAINTEXTS = {
    "access_token": "pat-na1-rotation-access-0001",
    "refresh_token": "rotation-refresh-0002",
    "webhook_secret": "rotation-webhook-secret-0003",
    "secret": "whsec_cm90YXRpb24tc3Vic2NyaXB0aW9uLTAwMDQ=",
    "previous_secret": "whsec_cm90YXRpb24tcHJldmlvdXMtMDAwNQ==",
}
COLUMNS = [
    ("integrations_connection", "access_token"),
    ("integrations_connection", "refresh_token"),
    ("integrations_connection", "webhook_secret"),
    ("integrations_webhooksubscription", "secret"),
    ("integrations_webhooksubscription", "previous_secret"),
]
READ_BACK = (
    "import json; from integrations.models import Connection, WebhookSubscription as W; "
    "c = Connection.objects.get(); w = W.objects.get(); "
    "print(json.dumps({'access_token': c.access_token, 'refresh_token': c.refresh_token, "
    "'webhook_secret': c.webhook_secret, 'secret': w.secret, 'previous_secret': w.previous_secret}))"
)


def raw_values() -> dict[str, str]:
    values = {}
    with db.cursor() as cursor:
        for table, column in COLUMNS:
            cursor.execute(f"SELECT {column} FROM {table}")
            (values[column],) = cursor.fetchone()
    return values


def assert_no_plaintext_in_raw_columns() -> dict[str, str]:
    raw = raw_values()
    with db.cursor() as cursor:
        for table, column in COLUMNS:
            for plaintext in PLAINTEXTS.values():
                cursor.execute(f"SELECT count(*) FROM {table} WHERE {column} LIKE %s", [f"%{plaintext}%"])
                assert cursor.fetchone()[0] == 0, f"{table}.{column} holds a plaintext secret"
    for column, value in raw.items():
        assert value.startswith("gAAAA"), f"{column} is not a Fernet token"
    return raw


def decrypts_with(key: str, raw: dict[str, str]) -> bool:
    try:
        return all(Fernet(key).decrypt(raw[c].encode()).decode() == PLAINTEXTS[c] for c in raw)
    except Exception:
        return False


@pytest.fixture
def stored_with_key_a(account):
    connection = Connection.objects.create(account=account, provider="hubspot")
    WebhookSubscription.objects.create(account=account, target_url="https://hooks.example.com/x", secret="x")
    # Stored as a process running with FIELD_ENCRYPTION_KEY=A would store them.
    with db.cursor() as cursor:
        for table, column in COLUMNS:
            cipher = Fernet(KEY_A).encrypt(PLAINTEXTS[column].encode()).decode()
            cursor.execute(f"UPDATE {table} SET {column} = %s", [cipher])
    return connection


def test_rotation_re_encrypts_every_column_so_the_old_key_can_be_removed(stored_with_key_a):
    before = assert_no_plaintext_in_raw_columns()
    assert decrypts_with(KEY_A, before) and not decrypts_with(KEY_B, before)

    rotated = manage(
        "rotate_encryption_key", "--batch-size", "1", env=subprocess_env(FIELD_ENCRYPTION_KEY=f"{KEY_B},{KEY_A}")
    )
    assert rotated.returncode == 0, rotated.stderr
    assert "total rotated=5 undecryptable=0" in rotated.stdout
    assert "integrations.Connection.access_token: rotated=1" in rotated.stdout
    assert "integrations.WebhookSubscription.previous_secret: rotated=1" in rotated.stdout
    for plaintext in PLAINTEXTS.values():
        assert plaintext not in rotated.stdout + rotated.stderr

    after = assert_no_plaintext_in_raw_columns()
    assert all(after[c] != before[c] for c in after)
    assert decrypts_with(KEY_B, after) and not decrypts_with(KEY_A, after)

    only_b = subprocess_env(FIELD_ENCRYPTION_KEY=KEY_B)
    read = manage("shell", "-c", READ_BACK, env=only_b)
    assert read.returncode == 0, read.stderr
    assert json.loads(read.stdout.strip().splitlines()[-1]) == PLAINTEXTS
    check = manage("check", env=only_b)
    assert check.returncode == 0, check.stderr

    only_a = manage("check", env=subprocess_env(FIELD_ENCRYPTION_KEY=KEY_A))
    assert only_a.returncode != 0
    assert "integrations.E001" in only_a.stderr


def test_rotation_refuses_values_no_key_decrypts_and_leaves_them_as_they_were(stored_with_key_a):
    before = raw_values()
    result = manage("rotate_encryption_key", env=subprocess_env(FIELD_ENCRYPTION_KEY=KEY_B))
    assert result.returncode != 0
    assert "undecryptable=5" in result.stdout
    assert raw_values() == before
