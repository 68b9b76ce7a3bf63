"""Fixtures of the mapping tests: connections with cached CRM schemas shaped like the sandboxes'."""

from __future__ import annotations

import pytest

from crmsync.models import Role
from integrations.connector import FieldSchema
from integrations.models import Connection
from mapping import sources
from mapping.models import CrmSchema, field_to_dict

HUBSPOT_CONTACT = [
    FieldSchema("email", "Email", "string", unique=True),
    FieldSchema("firstname", "First Name", "string"),
    FieldSchema("lastname", "Last Name", "string"),
    FieldSchema("phone", "Phone Number", "phone"),
    FieldSchema("mobilephone", "Mobile Phone Number", "phone"),
    FieldSchema("company", "Company Name", "string"),
    FieldSchema("jobtitle", "Job Title", "string"),
    FieldSchema("website", "Website URL", "string"),
    FieldSchema("address", "Street Address", "string"),
    FieldSchema("city", "City", "string"),
    FieldSchema("state", "State/Region", "string"),
    FieldSchema("zip", "Postal Code", "string"),
    FieldSchema("country", "Country/Region", "string"),
    FieldSchema("lifecyclestage", "Lifecycle Stage", "picklist", options=("subscriber", "lead", "customer")),
    FieldSchema("hs_lead_status", "Lead Status", "picklist", options=("NEW", "OPEN", "IN_PROGRESS")),
    FieldSchema("hs_object_id", "Record ID", "number", read_only=True),
    FieldSchema("num_associated_deals", "Associated Deals", "number", read_only=True),
    FieldSchema("capsule_score", "Capsule score", "number", custom=True),
    FieldSchema("capsule_grade", "Capsule grade", "string", custom=True),
    FieldSchema("capsule_last_engaged", "Capsule last engaged", "datetime", custom=True),
    FieldSchema("capsule_time_spent_seconds", "Capsule time spent (seconds)", "number", custom=True),
    FieldSchema("capsule_last_capsule_url", "Last capsule link", "string", custom=True),
    FieldSchema(
        "capsule_topics", "Capsule topics", "multipicklist", custom=True, options=("pricing", "security", "api")
    ),
    FieldSchema("capsule_first_seen", "Capsule first seen", "date", custom=True),
]

SALESFORCE_LEAD = [
    FieldSchema("Id", "Lead ID", "other", read_only=True),
    FieldSchema("Email", "Email", "email", max_length=80),
    FieldSchema("FirstName", "First Name", "string", max_length=40),
    FieldSchema("LastName", "Last Name", "string", required=True, max_length=80),
    FieldSchema("Company", "Company", "string", required=True, max_length=255),
    FieldSchema("Phone", "Phone", "phone", max_length=40),
    FieldSchema("Title", "Title", "string", max_length=128),
    FieldSchema("LeadSource", "Lead Source", "picklist", options=("Web", "Phone Inquiry", "Partner Referral", "Other")),
    FieldSchema("Rating", "Rating", "picklist", options=("Hot", "Warm", "Cold")),
    FieldSchema(
        "Industry",
        "Industry",
        "picklist",
        options=("Technology", "Finance", "Healthcare", "Retail", "Education", "Other"),
    ),
    FieldSchema("Status", "Status", "picklist", options=("Open - Not Contacted", "Working - Contacted")),
    FieldSchema("Website", "Website", "url", max_length=255),
    FieldSchema("MobilePhone", "Mobile Phone", "phone", max_length=40),
    FieldSchema("DoNotCall", "Do Not Call", "boolean"),
    FieldSchema("Description", "Description", "text", max_length=32000),
    FieldSchema("HasOptedOutOfEmail", "Email Opt Out", "boolean"),
    FieldSchema("CreatedDate", "Created Date", "datetime", read_only=True),
]

SALESFORCE_CONTACT = [
    *(field for field in SALESFORCE_LEAD if field.name not in {"Company", "Status", "Rating", "Industry", "Website"}),
    FieldSchema("Department", "Department", "string", max_length=80),
    FieldSchema("MailingCity", "Mailing City", "string", max_length=40),
    FieldSchema("MailingCountry", "Mailing Country", "string", max_length=80),
]


def cache_schema(connection: Connection, object_kind: str, fields: list[FieldSchema]) -> CrmSchema:
    return CrmSchema.objects.update_or_create(
        connection=connection, object_kind=object_kind, defaults={"fields": [field_to_dict(f) for f in fields]}
    )[0]


def schema_dict(fields: list[FieldSchema]) -> dict[str, FieldSchema]:
    return {field.name: field for field in fields}


@pytest.fixture
def hubspot_schema() -> dict[str, FieldSchema]:
    return schema_dict(HUBSPOT_CONTACT)


@pytest.fixture
def salesforce_schema() -> dict[str, FieldSchema]:
    return schema_dict(SALESFORCE_LEAD)


@pytest.fixture
def make_connection(db):
    def make(account, provider: str = "hubspot", record_type: str = "contact", **fields) -> Connection:
        fields.setdefault("access_token", "test-token")
        return Connection.objects.create(account=account, provider=provider, record_type=record_type, **fields)

    return make


@pytest.fixture
def hubspot_connection(account, make_connection) -> Connection:
    connection = make_connection(account, "hubspot", "contact", crm_account_name="Sandbox portal")
    cache_schema(connection, "contact", HUBSPOT_CONTACT)
    return connection


@pytest.fixture
def salesforce_connection(account, make_connection) -> Connection:
    connection = make_connection(account, "salesforce", "lead", api_base_url="https://example.my.salesforce.com")
    cache_schema(connection, "lead", SALESFORCE_LEAD)
    return connection


SCORE_FIELDS = [
    sources.SourceField("lead_score", "Lead score", "integer", "score"),
    sources.SourceField("lead_grade", "Lead grade", "string", "score"),
    sources.SourceField("score_top_contributors", "Top score contributors", "string", "score"),
]


@pytest.fixture
def score_group():
    """The scoring app's "score" group: the real one when it is registered, else a stand-in with
    the same keys (removed afterwards), so these tests pass with or without the scoring app."""
    registered = any(group.name == "score" for group in sources.groups())
    if not registered:
        sources.register_source_group("score", SCORE_FIELDS, lambda account, ids: {}, label="Lead score")
    yield
    if not registered:
        sources.unregister_source_group("score")


@pytest.fixture
def admin_member(account, make_member):
    return make_member(account, Role.ADMIN)


@pytest.fixture
def viewer(account, make_member):
    return make_member(account, Role.VIEWER)
