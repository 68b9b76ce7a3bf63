"""Start-up checks: stored credentials must decrypt with the configured key."""

from __future__ import annotations

from django.core import checks
from django.db import DatabaseError

from integrations.fields import CredentialDecryptionError


@checks.register()
def credentials_decrypt(app_configs, **kwargs) -> list[checks.CheckMessage]:
    from integrations.models import Connection

    try:
        # The newest row is enough: every row is encrypted with the same key set.
        list(Connection.objects.order_by("-pk").values_list("access_token", "refresh_token", "webhook_secret")[:1])
    except CredentialDecryptionError as exc:
        return [
            checks.Error(
                str(exc),
                hint="Set FIELD_ENCRYPTION_KEY to the key the credentials were stored with.",
                id="integrations.E001",
            )
        ]
    except DatabaseError:
        return []  # no table yet (before migrate): nothing to check
    return []
