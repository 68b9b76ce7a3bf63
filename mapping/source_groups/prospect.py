"""The prospect's own fields and custom attributes (``attr.<key>``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import connection as db

from crmsync.lookups import in_account_unindexed
from crmsync.models import Account, Prospect
from mapping.sources import ATTRIBUTE_PREFIX, SourceField, attribute_field, register_source_group

GROUP = "prospect"

FIELDS = [
    SourceField("email", "E-mail", "email", GROUP),
    SourceField("first_name", "First name", "string", GROUP),
    SourceField("last_name", "Last name", "string", GROUP),
    SourceField("full_name", "Full name", "string", GROUP),
    SourceField("phone", "Phone", "phone", GROUP),
    SourceField("company", "Company", "string", GROUP),
    SourceField("job_title", "Job title", "string", GROUP),
    SourceField("consent_granted", "Consent given", "boolean", GROUP),
    SourceField("consent_at", "Consent answered at", "datetime", GROUP),
    SourceField("consent_source", "Consent source", "string", GROUP),
    SourceField("created_at", "First identified at", "datetime", GROUP),
    SourceField("capsule_prospect_id", "Capsule prospect id", "integer", GROUP),
]

COLUMNS = (
    "id",
    "email",
    "first_name",
    "last_name",
    "phone",
    "company",
    "job_title",
    "consent_granted",
    "consent_at",
    "consent_source",
    "created_at",
    "attributes",
)

# Attribute keys are discovered from the most recently changed prospects only: enough to list
# what the capsule sends today, and one index range scan (prospect_changed_idx) at any size.
ATTRIBUTE_SAMPLE = 2000
MAX_ATTRIBUTE_KEYS = 200

_JSON_TYPES = {"number": "number", "boolean": "boolean", "string": "string"}


def load(account: Account, prospect_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    rows = (
        in_account_unindexed(Prospect.objects.filter(pk__any=list(prospect_ids)), account.pk)
        .order_by()
        .values(*COLUMNS)
    )
    snapshots: dict[int, dict[str, Any]] = {}
    for row in rows:
        attributes = row.pop("attributes") or {}
        prospect_id = row.pop("id")
        full_name = " ".join(part for part in (row["first_name"], row["last_name"]) if part)
        snapshot = {**row, "full_name": full_name, "capsule_prospect_id": prospect_id}
        snapshot.update({ATTRIBUTE_PREFIX + str(key): value for key, value in attributes.items()})
        snapshots[prospect_id] = snapshot
    return snapshots


def attribute_fields(account: Account) -> list[SourceField]:
    """The custom attribute keys seen on the account's recently changed prospects, with a type
    guessed from their JSON values (mixed types read as string). One query."""
    seen: dict[str, str] = {}
    for key, json_type in _attribute_keys(account):
        guessed = _JSON_TYPES.get(json_type, "string")
        seen[key] = guessed if seen.get(key, guessed) == guessed else "string"
    return [attribute_field(ATTRIBUTE_PREFIX + key, type_) for key, type_ in sorted(seen.items())]


def _attribute_keys(account: Account) -> list[tuple[str, str]]:
    if db.vendor == "postgresql":
        # jsonb_each over a LIMITed sample: the DISTINCT never sees more than ATTRIBUTE_SAMPLE rows.
        sql = f"""
            SELECT DISTINCT attr.key, jsonb_typeof(attr.value)
            FROM (
                SELECT attributes FROM {Prospect._meta.db_table}
                WHERE account_id = %s AND attributes <> '{{}}'::jsonb
                ORDER BY updated_at DESC, id DESC
                LIMIT %s
            ) AS sample, jsonb_each(sample.attributes) AS attr
            LIMIT %s
        """  # noqa: S608 - the only interpolation is our own table name
        with db.cursor() as cursor:
            cursor.execute(sql, [account.pk, ATTRIBUTE_SAMPLE, MAX_ATTRIBUTE_KEYS * 3])
            return [(key, json_type) for key, json_type in cursor.fetchall()]
    # Other databases (SQLite in development): the same sample, read in Python.
    sample = (
        Prospect.objects.filter(account=account)
        .exclude(attributes={})
        .order_by("-updated_at", "-id")
        .values_list("attributes", flat=True)[:ATTRIBUTE_SAMPLE]
    )
    found: list[tuple[str, str]] = []
    for attributes in sample:
        for key, value in (attributes or {}).items():
            found.append((str(key), _python_json_type(value)))
    return found[: MAX_ATTRIBUTE_KEYS * 3]


def _python_json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "string"


# What the CRM may change in the capsule's copy (bi-directional sync); custom attributes too. The
# e-mail (the identity), consent and the computed fields stay the capsule's.
WRITABLE = ("first_name", "last_name", "phone", "company", "job_title")


def register() -> None:
    register_source_group(GROUP, FIELDS, load, label="Prospect", writable=WRITABLE, dynamic_fields=attribute_fields)
