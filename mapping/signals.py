"""A new connection gets its provider's standard mapping (idempotent: the connect flow may call
``apply_standard_mapping`` itself as well)."""

from __future__ import annotations

import logging

from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import receiver

from integrations.models import Connection

log = logging.getLogger(__name__)


@receiver(post_save, sender=Connection, dispatch_uid="mapping.standard_mapping_on_connect")
def standard_mapping_on_connect(sender, instance: Connection, created: bool, raw: bool = False, **kwargs) -> None:
    if not created or raw:
        return
    from mapping.service import apply_standard_mapping

    try:
        # A savepoint: a failure here must not break the connection being saved.
        with transaction.atomic():
            apply_standard_mapping(instance)
    except Exception:
        # Logged loudly, not raised: the owner pages then show an empty mapping with its errors.
        log.exception("could not apply the standard mapping to connection %s", instance.pk)
