"""Re-encrypt every encrypted column with the first key of FIELD_ENCRYPTION_KEY.

    FIELD_ENCRYPTION_KEY="NEW,OLD" python manage.py rotate_encryption_key [--batch-size 500]

Fernet keys are comma-separated: the first encrypts, all decrypt. Rotation is three steps: put
the new key first (keep the old one after it), run this command, then remove the old key. The
command finds the encrypted columns by scanning every installed model for encrypted fields, so a
new credential column is rotated without changing this file.

It works on the stored ciphertext (``MultiFernet.rotate``), never on decrypted values in Python
objects, so no plaintext is written or printed, and ``save()`` side effects (signals, timestamps)
do not run. Each batch is one transaction; a row whose value no configured key can decrypt is
left alone, counted and makes the command fail, so a wrong key set never destroys credentials.
"""

from __future__ import annotations

from cryptography.fernet import InvalidToken
from django.apps import apps
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, transaction
from encrypted_model_fields.fields import EncryptedMixin, get_crypter


def encrypted_columns() -> list[tuple[type, str, str]]:
    """(model, table, column) of every concrete encrypted field of every installed model."""
    found = []
    for model in apps.get_models():
        if model._meta.proxy or not model._meta.managed:
            continue
        for field in model._meta.concrete_fields:
            if isinstance(field, EncryptedMixin):
                found.append((model, model._meta.db_table, field.column))
    return found


class Command(BaseCommand):
    help = "Re-encrypt every encrypted credential column with the first FIELD_ENCRYPTION_KEY."
    # The start-up check fails exactly when keys are wrong; this command reports that per value.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch-size", type=int, default=500, help="Rows per transaction.")

    def handle(self, *args, batch_size: int, **options) -> None:
        crypter = get_crypter()  # from settings now, not the module-level one made at import
        quote = connection.ops.quote_name
        total_rotated = total_failed = 0
        for model, table, column in encrypted_columns():
            pk = quote(model._meta.pk.column)
            rotated = failed = 0
            last = None
            while True:
                with transaction.atomic(), connection.cursor() as cursor:
                    where = f"WHERE {pk} > %s " if last is not None else ""
                    cursor.execute(
                        f"SELECT {pk}, {quote(column)} FROM {quote(table)} {where}"  # noqa: S608 - quoted names
                        f"ORDER BY {pk} LIMIT %s FOR UPDATE",
                        [last, batch_size] if last is not None else [batch_size],
                    )
                    rows = cursor.fetchall()
                    if not rows:
                        break
                    updates = []
                    for row_pk, value in rows:
                        if value in (None, ""):
                            continue
                        raw = value.encode() if isinstance(value, str) else bytes(value)
                        try:
                            updates.append((crypter.rotate(raw).decode(), row_pk))
                        except InvalidToken:
                            failed += 1
                            self.stderr.write(f"{model.__name__}.{column} pk={row_pk}: no configured key decrypts it")
                    if updates:
                        cursor.executemany(
                            f"UPDATE {quote(table)} SET {quote(column)} = %s WHERE {pk} = %s",  # noqa: S608
                            updates,
                        )
                    rotated += len(updates)
                    last = rows[-1][0]
            self.stdout.write(f"{model._meta.label}.{column}: rotated={rotated} undecryptable={failed}")
            total_rotated += rotated
            total_failed += failed
        self.stdout.write(f"total rotated={total_rotated} undecryptable={total_failed}")
        if total_failed:
            raise CommandError(
                f"{total_failed} value(s) could not be decrypted with any configured key and were left as they "
                "were; add the key they were stored with to FIELD_ENCRYPTION_KEY and run again"
            )
