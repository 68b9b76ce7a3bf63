"""Pipedrive's facts as data. Source: ../shared/crm-reference.md §3 (and §10.2 for the Python client).

- OAuth: https://pipedrive.readme.io/docs/marketplace-oauth-authorization — the token endpoint wants
  the client id and secret as HTTP Basic credentials; its answer names the company's API host in
  ``api_domain``. Scopes are chosen when the app is registered in Developer Hub, not per request.
- API tokens: https://pipedrive.readme.io/docs/core-api-concepts-authentication — one per user and
  company, sent in the ``x-api-token`` header.
- Limits: https://pipedrive.readme.io/docs/core-api-concepts-rate-limiting — a burst window per
  token of 2 seconds (80 requests on the lowest plan for OAuth apps, 20 for API tokens; higher plans
  allow more and the ``x-ratelimit-limit`` header says which applies) and a daily token budget per
  company that API v2 calls spend at about half the rate of v1 calls.
"""

from integrations.registry import AUTH_API_KEY, AUTH_OAUTH, OAuthSpec, ProviderSpec, RateLimitSpec

PROVIDER = ProviderSpec(
    name="pipedrive",
    label="Pipedrive",
    tier=1,
    auth_kinds=(AUTH_OAUTH, AUTH_API_KEY),
    # OAuth connections store the token answer's api_domain; API-token connections without an
    # --api-url use the generic host, which serves every company (crm-reference §3.1).
    api_base_url="https://api.pipedrive.com",
    oauth=OAuthSpec(
        authorize_url="https://oauth.pipedrive.com/oauth/authorize",
        token_url="https://oauth.pipedrive.com/oauth/token",
        revoke_url="https://oauth.pipedrive.com/oauth/revoke",
        # What the app must be granted in Developer Hub (sent on the authorize URL, which Pipedrive
        # ignores): persons, deals, activities, leads, search, the user, webhooks (admin) and the
        # deal field that keeps our conversion key.
        scopes=(
            "base",
            "contacts:full",
            "deals:full",
            "activities:full",
            "leads:full",
            "search:read",
            "users:read",
            "admin",
            "deal-fields:full",
        ),
        pkce=False,  # not in Pipedrive's OAuth guide (UNVERIFIED, crm-reference §12)
        client_auth="basic",
        scope_separator=",",
        # Single-use refresh tokens ("already exchanged", §3.1): always keep the newest.
        rotates_refresh_tokens=True,
    ),
    # No person batch endpoint exists (§3.2): "upsert" is how many people one call of
    # upsert_people takes, written one by one with bounded concurrency inside it
    # ("write_concurrency" people or persons' activities at once, integrations.concurrency).
    batch_sizes={"upsert": 100, "activities": 100, "search_page": 500, "write_concurrency": 4},
    rate_limit=RateLimitSpec(
        requests=80,
        window_seconds=2,
        headers={
            "limit": "x-ratelimit-limit",
            "remaining": "x-ratelimit-remaining",
            "reset": "x-ratelimit-reset",
            # The daily token budget (names seen in third-party clients; UNVERIFIED in the docs, §3.5).
            "daily": "x-daily-ratelimit-token-limit",
            "daily_remaining": "x-daily-ratelimit-token-remaining",
        },
    ),
    webhook_signature="HTTP Basic credentials (the user and password registered with the webhook; no signature)",
    # A person is Pipedrive's contact; a Lead connection creates the person and a lead in the Leads
    # Inbox attached to it (see PipedriveConnector.upsert_people).
    record_types=("contact", "lead"),
    connector_path="integrations.providers.pipedrive.connector.PipedriveConnector",
    docs_url="https://developers.pipedrive.com/docs/api/v1",
    token_help="Pipedrive → your name (top right) → Personal preferences → API → Your personal API token.",
    # A person's owner is a Pipedrive user id (AddPersonRequest.owner_id).
    owner_field="owner_id",
)
