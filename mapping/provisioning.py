"""Creating in the CRM the capsule custom fields the standard mapping writes (score, grade, last
engaged, time spent, last capsule link), with the owner's confirmation.

Optional connector capability — a connector that can create fields defines::

    def create_custom_field(self, object_kind: str, spec: FieldSpec) -> FieldSchema: ...

``spec`` is a :class:`FieldSpec` (API name, label, our type, picklist options, description, and
provider-specific ``extra`` such as HubSpot's property ``groupName``). It returns the created
field, and raises ``integrations.errors`` exceptions (a missing permission is a
``ConfigurationError``). Connectors without the method are never called: the report then says
exactly what to create by hand, and until the fields exist the engagement they would hold
reaches the CRM as activities and notes only.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from django.http import HttpRequest

from crmsync import audit
from integrations.credentials import connector_for
from integrations.errors import CrmError
from integrations.models import Connection
from mapping import presets, sources
from mapping.presets import CustomFieldSpec
from mapping.rows import rows_for
from mapping.schema import refresh_schema
from mapping.service import save_mapping

FieldSpec = CustomFieldSpec
CREATE_METHOD = "create_custom_field"


@dataclass
class ProvisionReport:
    object_kind: str
    crm_label: str
    supported: bool  # whether the connector can create fields
    confirmed: bool
    existing: list[FieldSpec] = field(default_factory=list)
    created: list[FieldSpec] = field(default_factory=list)
    missing: list[FieldSpec] = field(default_factory=list)  # still to create (by hand, or on confirmation)
    failed: list[tuple[FieldSpec, str]] = field(default_factory=list)
    enabled_rows: list[str] = field(default_factory=list)  # CRM fields whose rows were switched on

    @property
    def complete(self) -> bool:
        return not self.missing and not self.failed

    def manual_steps(self) -> list[str]:
        """What a person must create in the CRM, one line per field."""
        steps = []
        for spec in self.missing + [spec for spec, _reason in self.failed]:
            kind = spec.manual_type or spec.type
            options = f", options: {', '.join(spec.options)}" if spec.options else ""
            steps.append(
                f"In {self.crm_label}, create a {self.object_kind} field “{spec.label}” with the API name "
                f"{spec.name}, type {kind}{options}."
            )
        return steps


def required_fields(connection: Connection) -> tuple[FieldSpec, ...]:
    """The capsule custom fields the connection's standard mapping declares."""
    return presets.object_preset(connection.provider, connection.record_type).custom_fields


def provision_fields(
    connection: Connection,
    *,
    confirmed: bool = False,
    request: HttpRequest | None = None,
) -> ProvisionReport:
    """Check which capsule custom fields the CRM lacks and — when ``confirmed`` and the connector
    can — create them; then refresh the schema and switch on the mapping rows that were waiting
    for fields that now exist (a new mapping version). Unconfirmed, it only reports the plan.
    Calls the CRM (describe, create); its errors for one field are reported, not raised."""
    object_kind = connection.record_type
    connector = connector_for(connection)
    report = ProvisionReport(
        object_kind=object_kind,
        crm_label=connection.spec.label,
        supported=callable(getattr(connector, CREATE_METHOD, None)),
        confirmed=confirmed,
    )
    schema = refresh_schema(connection, object_kind).field_schemas()
    for spec in required_fields(connection):
        if spec.name in schema:
            report.existing.append(spec)
        elif not (confirmed and report.supported):
            report.missing.append(spec)
        else:
            try:
                getattr(connector, CREATE_METHOD)(object_kind, spec)
            except CrmError as exc:
                report.failed.append((spec, str(exc)))
            else:
                report.created.append(spec)
    if report.created:
        schema = refresh_schema(connection, object_kind).field_schemas()
    if confirmed:
        report.enabled_rows = _enable_waiting_rows(connection, schema, request)
        audit.record(
            "mapping.fields_provisioned",
            request=request,
            obj=connection,
            changes={
                "created": [spec.name for spec in report.created],
                "existing": [spec.name for spec in report.existing],
                "missing": [spec.name for spec in report.missing],
                "failed": {spec.name: reason[:300] for spec, reason in report.failed},
                "enabled_rows": report.enabled_rows,
            },
        )
    return report


def _enable_waiting_rows(connection: Connection, schema: dict, request: HttpRequest | None) -> list[str]:
    custom = {spec.name for spec in required_fields(connection)}
    index = sources.catalogue_index(connection.account)
    rows = rows_for(connection)
    switched = []
    updated = []
    for row in rows:
        available = row.source_kind != "field" or sources.resolve(row.source_key, index) is not None
        if not row.enabled and row.target_field in custom and row.target_field in schema and available:
            row = replace(row, enabled=True)
            switched.append(row.target_field)
        updated.append(row)
    if switched:
        save_mapping(connection, updated, request=request, summary=f"enabled rows for new fields {', '.join(switched)}")
    return switched
