"""HubSpot's facts as data. Sources: ../shared/crm-reference.md §2 and the OpenAPI specs.

- OAuth: https://developers.hubspot.com/docs/api/oauth-quickstart-guide (v3 token endpoints).
- Limits: https://developers.hubspot.com/docs/developer-tooling/platform/usage-guidelines
"""

from integrations.registry import AUTH_OAUTH, AUTH_PRIVATE_APP_TOKEN, OAuthSpec, ProviderSpec, RateLimitSpec

PROVIDER = ProviderSpec(
    name="hubspot",
    label="HubSpot",
    tier=1,
    auth_kinds=(AUTH_OAUTH, AUTH_PRIVATE_APP_TOKEN),
    api_base_url="https://api.hubapi.com",
    oauth=OAuthSpec(
        authorize_url="https://app.hubspot.com/oauth/authorize",
        # v1 token endpoints are deprecated (removal 2027-02-16); v3 is current.
        token_url="https://api.hubapi.com/oauth/v3/token",
        revoke_url="https://api.hubapi.com/oauth/v3/token/revoke",
        scopes=(
            "oauth",
            "crm.objects.contacts.read",
            "crm.objects.contacts.write",
            "crm.objects.deals.read",
            "crm.objects.deals.write",
            "crm.objects.owners.read",
            "crm.schemas.contacts.read",
            "crm.schemas.contacts.write",
            # The deal key property capsule_conversion_id is created on deals (connector upsert_deal).
            "crm.schemas.deals.read",
            "crm.schemas.deals.write",
        ),
        pkce=True,
        client_auth="body",
        rotates_refresh_tokens=False,
    ),
    # Batch endpoints take at most 100 inputs; search pages hold up to 200 results.
    batch_sizes={"upsert": 100, "read": 100, "activities": 100, "associations": 100, "search_page": 200},
    rate_limit=RateLimitSpec(
        # Apps installed in Free/Starter accounts: 100 requests per 10 s per app, 250,000 a day.
        requests=100,
        window_seconds=10,
        daily=250_000,
        # CRM search has its own, lower limit (historically 4 requests/s per token).
        search_per_second=4,
        # The 100 / 10 s allowance is this app's alone in the installing account (no other caller
        # shares it), and the limiter's sliding window is exact, so 5% is margin enough for
        # arrival jitter; a 429 still blocks every worker for its Retry-After.
        headroom=0.95,
        headers={
            "limit": "X-HubSpot-RateLimit-Max",
            "remaining": "X-HubSpot-RateLimit-Remaining",
            "window_ms": "X-HubSpot-RateLimit-Interval-Milliseconds",
            "daily": "X-HubSpot-RateLimit-Daily",
            "daily_remaining": "X-HubSpot-RateLimit-Daily-Remaining",
        },
    ),
    webhook_signature="X-HubSpot-Signature-v3 (HMAC-SHA256 of method, URI, body and timestamp; base64)",
    record_types=("contact",),
    owner_field="hubspot_owner_id",
    connector_path="integrations.providers.hubspot.connector.HubSpotConnector",
    docs_url="https://developers.hubspot.com/docs/api/crm/contacts",
    token_help="HubSpot → Settings → Integrations → Private apps → your app → Access token.",
)
