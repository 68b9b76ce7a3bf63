"""Salesforce's facts as data. Sources: ../shared/crm-reference.md §1.

- OAuth web server flow: https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_web_server_flow.htm
- Limits: https://developer.salesforce.com/docs/atlas.en-us.salesforce_app_limits_cheatsheet.meta/
"""

from integrations.registry import (
    AUTH_OAUTH,
    AUTH_PRIVATE_APP_TOKEN,
    ConnectionSetting,
    OAuthSpec,
    ProviderSpec,
    RateLimitSpec,
)

PROVIDER = ProviderSpec(
    name="salesforce",
    label="Salesforce",
    tier=1,
    # A session token with the org's instance URL is accepted for ops scripting (connect_crm).
    auth_kinds=(AUTH_OAUTH, AUTH_PRIVATE_APP_TOKEN),
    api_base_url=None,  # always the instance_url of the token answer
    oauth=OAuthSpec(
        authorize_url="https://login.salesforce.com/services/oauth2/authorize",
        token_url="https://login.salesforce.com/services/oauth2/token",
        revoke_url="https://login.salesforce.com/services/oauth2/revoke",
        # api: REST and Bulk API; refresh_token: offline access; id: the identity service
        # (userinfo), which tells connect() which org and user the token belongs to.
        scopes=("api", "refresh_token", "id"),
        pkce=True,
        client_auth="body",
        # Rotation is a per-app setting in Salesforce; when it is on, each refresh returns a new one.
        rotates_refresh_tokens=True,
    ),
    # sObject Collections take 200 records; Bulk API 2.0 above a configurable count.
    batch_sizes={"upsert": 200, "read": 200, "activities": 200, "bulk_threshold": 10_000, "query_page": 2000},
    rate_limit=RateLimitSpec(
        # A rolling 24 h allocation (100,000 + per-licence adders); no per-second window is
        # published, so real-time pacing uses the concurrency guidance (25 long-running requests).
        requests=25,
        window_seconds=1,
        daily=100_000,
        headers={},  # Sforce-Limit-Info is parsed by the connector
    ),
    webhook_signature="none: changes are polled by SystemModstamp",
    record_types=("lead", "contact"),
    owner_field="OwnerId",
    connection_settings=(
        ConnectionSetting(
            name="bulk_threshold",
            label="Bulk API threshold",
            help="A write of more records than this (contacts or leads) goes through one Bulk API 2.0 job "
            "instead of 200-record collection calls. Default 10,000; at least 200, since a job costs five "
            "calls or more and real-time passes (200 records) must never wait on one.",
            minimum=200,
            maximum=150_000_000,
        ),
        ConnectionSetting(
            name="bulk_job_rows",
            label="Records per Bulk API job",
            help="At most this many records go into one Bulk API 2.0 job. Default 100,000.",
            minimum=2,
            maximum=1_000_000,
        ),
        ConnectionSetting(
            name="bulk_max_wait_seconds",
            label="Bulk API job time limit (s)",
            help="A job still running after this long is aborted and its records retried. Default 900.",
            minimum=30,
            maximum=3600,
        ),
    ),
    connector_path="integrations.providers.salesforce.connector.SalesforceConnector",
    docs_url="https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/",
    token_help="An access token (session id) and the org's instance URL (https://yourorg.my.salesforce.com).",
)
