"""Copper's facts as data. Source: ../shared/crm-reference.md §6 (Developer API v1).

- Authentication: https://developer.copper.com/introduction/authentication.html — an API key with
  its owner's e-mail in ``X-PW-*`` headers; OAuth 2.0 only for partner apps Copper registers.
- Limits: https://developer.copper.com/introduction/rate-limits.html — 180 requests per minute.
- Webhooks: https://developer.copper.com/webhooks/overview.html — no signature, no retries.
"""

from integrations.registry import AUTH_API_KEY, AUTH_OAUTH, OAuthSpec, ProviderSpec, RateLimitSpec

PROVIDER = ProviderSpec(
    name="copper",
    label="Copper",
    tier=2,
    # API keys are what customers use; OAuth is offered only when a partner app is configured
    # (COPPER_CLIENT_ID / COPPER_CLIENT_SECRET), since Copper registers those apps itself.
    auth_kinds=(AUTH_API_KEY, AUTH_OAUTH),
    # COPPER_API_URL may name the host only (https://api.copper.com): the connector adds the path.
    api_base_url="https://api.copper.com/developer_api/v1",
    oauth=OAuthSpec(
        authorize_url="https://app.copper.com/oauth/authorize",
        token_url="https://app.copper.com/oauth/token",
        # No revoke endpoint is documented; refresh tokens are not issued in Copper's example and
        # PKCE is not mentioned (all UNVERIFIED, §12): a rejected token means re-authentication.
        revoke_url=None,
        scopes=("developer/v1/all",),  # Copper's only scope
        pkce=False,
        client_auth="body",
        rotates_refresh_tokens=False,
    ),
    # No batch endpoints we rely on (bulk paths are UNVERIFIED, §6.2): people are written one call
    # each with bounded concurrency, so "upsert" is how many people one engine batch hands over;
    # search pages hold at most 200 records.
    batch_sizes={"upsert": 50, "read": 50, "activities": 50, "search_page": 200},
    rate_limit=RateLimitSpec(
        requests=180,  # per rolling minute per user (API key owner)
        window_seconds=60,
        headers={},  # Copper documents no rate-limit headers
    ),
    webhook_signature="registered secret: the subscription's secret key/values are echoed in every notification",
    # People are contacts; Copper's Leads are a separate object a connection may write instead.
    record_types=("contact", "lead"),
    connector_path="integrations.providers.copper.connector.CopperConnector",
    docs_url="https://developer.copper.com/",
    token_help="Copper → Settings → Integrations → API Keys → Generate API Key; give the e-mail of the "
    "Copper user who generated it too.",
    token_extra_fields=(("user_email", "E-mail of the Copper user the API key belongs to"),),
)
