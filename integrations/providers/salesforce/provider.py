"""Salesforce's facts as data. Sources: ../shared/crm-reference.md §1.

- OAuth web server flow: https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_web_server_flow.htm
- Limits: https://developer.salesforce.com/docs/atlas.en-us.salesforce_app_limits_cheatsheet.meta/
"""

from integrations.registry import AUTH_OAUTH, AUTH_PRIVATE_APP_TOKEN, OAuthSpec, ProviderSpec, RateLimitSpec

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
    connector_path="integrations.providers.salesforce.connector.SalesforceConnector",
    docs_url="https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/",
    token_help="An access token (session id) and the org's instance URL (https://yourorg.my.salesforce.com).",
)
