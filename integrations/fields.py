"""Encrypted credential columns that fail loudly.

django-encrypted-model-fields returns the stored ciphertext unchanged when it cannot decrypt it
(a wrong FIELD_ENCRYPTION_KEY), which would send ciphertext to a CRM as a token. These fields
raise instead, and ``integrations.checks`` turns that into a start-up error.
"""

from __future__ import annotations

from cryptography.fernet import InvalidToken
from encrypted_model_fields.fields import EncryptedTextField, decrypt_str


class CredentialDecryptionError(RuntimeError):
    """Stored credentials cannot be decrypted with the configured FIELD_ENCRYPTION_KEY."""


class StrictEncryptedTextField(EncryptedTextField):
    def from_db_value(self, value, expression, connection):
        if value is None:
            return value
        if isinstance(value, bytes):
            value = value.decode()
        try:
            return decrypt_str(value)
        except InvalidToken:
            raise CredentialDecryptionError(
                f"{self.model.__name__}.{self.name} cannot be decrypted with FIELD_ENCRYPTION_KEY; "
                "was the key changed without rotating (python manage.py rotate_encryption_key)?"
            ) from None
