"""Mapping rows per connection, their version history, and the cached CRM schema."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone

from integrations.connector import FieldSchema
from integrations.models import Connection
from mapping import rows as r


def _choices(values: tuple[str, ...], labels: dict[str, str]) -> list[tuple[str, str]]:
    return [(value, labels[value]) for value in values]


SOURCE_KIND_CHOICES = _choices(
    r.SOURCE_KINDS, {r.SOURCE_FIELD: "Capsule field", r.SOURCE_CONSTANT: "Fixed value", r.SOURCE_TEMPLATE: "Template"}
)
UPDATE_POLICY_CHOICES = _choices(
    r.UPDATE_POLICIES,
    {
        r.OVERWRITE: "Always overwrite",
        r.IF_EMPTY: "Only if empty in the CRM",
        r.NEVER_OVERWRITE: "Never overwrite once set",
        r.APPEND: "Append (multi-value)",
    },
)
DIRECTION_CHOICES = _choices(
    r.DIRECTIONS, {r.TO_CRM: "To the CRM", r.FROM_CRM: "From the CRM", r.BOTH: "Both directions"}
)
CONFLICT_POLICY_CHOICES = _choices(
    r.CONFLICT_POLICIES, {r.CRM_WINS: "CRM wins", r.CAPSULE_WINS: "Capsule wins", r.NEWEST_WINS: "Newest change wins"}
)
TARGET_OBJECT_CHOICES = _choices(r.TARGET_OBJECTS, {"contact": "Contact", "lead": "Lead", "deal": "Deal"})


class FieldMapping(models.Model):
    """One row: where a value comes from, which CRM field it goes to, and how."""

    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="field_mappings")
    order = models.PositiveIntegerField(default=0)
    enabled = models.BooleanField(default=True)
    source_kind = models.CharField(max_length=10, choices=SOURCE_KIND_CHOICES, default=r.SOURCE_FIELD)
    source_key = models.CharField(max_length=150, blank=True, help_text="A capsule field key, e.g. first_name.")
    constant = models.CharField(max_length=1000, blank=True)
    template = models.CharField(max_length=1000, blank=True, help_text="e.g. {{ first_name }} at {{ company }}")
    target_object = models.CharField(max_length=10, choices=TARGET_OBJECT_CHOICES, default="contact")
    target_field = models.CharField(max_length=200, help_text="The CRM field's API name.")
    transform = models.CharField(max_length=40, blank=True)
    transform_options = models.JSONField(default=dict, blank=True)
    default = models.CharField(max_length=1000, blank=True, help_text="Sent when the capsule value is empty.")
    update_policy = models.CharField(max_length=20, choices=UPDATE_POLICY_CHOICES, default=r.OVERWRITE)
    direction = models.CharField(max_length=10, choices=DIRECTION_CHOICES, default=r.TO_CRM)
    conflict_policy = models.CharField(
        max_length=20, choices=CONFLICT_POLICY_CHOICES, default=r.CRM_WINS, help_text="For values coming from the CRM."
    )

    class Meta:
        ordering = ["order", "id"]
        indexes = [models.Index(fields=["connection", "order"], name="fieldmapping_connection_idx")]

    def __str__(self) -> str:
        return f"{self.as_row().describe_source()} → {self.target_field}"

    @property
    def account(self):
        return self.connection.account

    def as_row(self) -> r.MappingRow:
        return r.MappingRow.from_model(self)

    @classmethod
    def from_row(cls, connection: Connection, row: r.MappingRow) -> FieldMapping:
        data = row.as_dict()
        return cls(connection=connection, **data)


class MappingVersion(models.Model):
    """The whole mapping as it was after one change: who, when, what."""

    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="mapping_versions")
    number = models.PositiveIntegerField()
    rows = models.JSONField(default=list)
    changed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    changed_by_label = models.CharField(max_length=200, blank=True)
    changed_at = models.DateTimeField(default=timezone.now)
    summary = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-number"]
        constraints = [models.UniqueConstraint(fields=["connection", "number"], name="mappingversion_unique_number")]

    def __str__(self) -> str:
        return f"{self.connection} mapping v{self.number}"

    @property
    def account(self):
        return self.connection.account

    def as_rows(self) -> list[r.MappingRow]:
        return [r.MappingRow.from_dict(data) for data in self.rows]


class CrmSchema(models.Model):
    """The CRM's fields of one object kind, as last fetched through the connector."""

    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="crm_schemas")
    object_kind = models.CharField(max_length=20)
    fields = models.JSONField(default=list, help_text="FieldSchema dicts.")
    fetched_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["connection", "object_kind"]
        verbose_name = "CRM schema"
        constraints = [models.UniqueConstraint(fields=["connection", "object_kind"], name="crmschema_unique_kind")]

    def __str__(self) -> str:
        return f"{self.connection} {self.object_kind} fields"

    @property
    def account(self):
        return self.connection.account

    def field_schemas(self) -> dict[str, FieldSchema]:
        return {item["name"]: field_from_dict(item) for item in self.fields}


def field_to_dict(field: FieldSchema) -> dict[str, Any]:
    data = asdict(field)
    data["options"] = list(field.options)
    return data


def field_from_dict(data: dict[str, Any]) -> FieldSchema:
    known = {name: data[name] for name in FieldSchema.__dataclass_fields__ if name in data}
    known["options"] = tuple(known.get("options") or ())
    return FieldSchema(**known)


class ConnectionMapping(Connection):
    """A connection seen from the mapping side (the ops admin's "Connection mappings")."""

    class Meta:
        proxy = True
        verbose_name = "connection mapping"
