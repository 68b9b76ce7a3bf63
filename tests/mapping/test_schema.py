"""The CRM schema cache."""

from __future__ import annotations

from integrations.connector import FieldSchema
from mapping.models import CrmSchema
from mapping.schema import cached_schemas, refresh_schema, schema_for


def test_a_refresh_replaces_the_cached_fields_and_keeps_every_attribute(hubspot_connection):
    calls = []

    def describe(kind: str) -> list[FieldSchema]:
        calls.append(kind)
        return [
            FieldSchema(
                "tier",
                "Tier",
                "picklist",
                custom=True,
                required=True,
                options=("gold", "silver"),
                max_length=20,
                unique=True,
            )
        ]

    refresh_schema(hubspot_connection, "contact", describe=describe)
    assert calls == ["contact"]
    assert schema_for(hubspot_connection, "contact") == {
        "tier": FieldSchema(
            "tier",
            "Tier",
            "picklist",
            custom=True,
            required=True,
            options=("gold", "silver"),
            max_length=20,
            unique=True,
        )
    }
    assert CrmSchema.objects.filter(connection=hubspot_connection).count() == 1


def test_fields_never_fetched_read_as_none(hubspot_connection):
    assert schema_for(hubspot_connection, "deal") is None
    assert set(cached_schemas(hubspot_connection)) == {"contact"}
