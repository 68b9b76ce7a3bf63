"""The CRM schema cache: each connection's fields per object kind, fetched through its connector.

``refresh_schema`` asks the CRM (``Connector.describe_fields``) and stores the answer; everything
else reads the cache, so pages and validation never wait on the CRM. A custom field created in
the CRM appears after the next refresh.
"""

from __future__ import annotations

from collections.abc import Callable

from django.utils import timezone

from integrations.connector import FieldSchema
from integrations.credentials import connector_for
from integrations.models import Connection
from mapping.models import CrmSchema, field_to_dict


def refresh_schema(
    connection: Connection, object_kind: str, describe: Callable[[str], list[FieldSchema]] | None = None
) -> CrmSchema:
    """Fetch ``object_kind``'s fields from the CRM now and cache them. Raises the connector's
    ``integrations.errors`` exceptions (auth, rate limit, outage) for the caller to report.

    ``describe``: a caller that already holds a connector (the sync engine, with its rate
    limiter hooks) passes its ``describe_fields``; by default a fresh-token connector is made."""
    described = (describe or connector_for(connection).describe_fields)(object_kind)
    cached, _created = CrmSchema.objects.update_or_create(
        connection=connection,
        object_kind=object_kind,
        defaults={"fields": [field_to_dict(field) for field in described], "fetched_at": timezone.now()},
    )
    return cached


def cached_schema(connection: Connection, object_kind: str) -> CrmSchema | None:
    return CrmSchema.objects.filter(connection=connection, object_kind=object_kind).first()


def schema_for(connection: Connection, object_kind: str) -> dict[str, FieldSchema] | None:
    """The cached fields by name, or None when they were never fetched."""
    cached = cached_schema(connection, object_kind)
    return cached.field_schemas() if cached is not None else None


def cached_schemas(connection: Connection) -> dict[str, dict[str, FieldSchema]]:
    """Every cached object kind's fields (one query)."""
    return {item.object_kind: item.field_schemas() for item in CrmSchema.objects.filter(connection=connection)}
