"""Close's facts as data. Sources: ../shared/crm-reference.md §8 and specs/close/close-openapi.yml.

- API keys: https://developer.close.com/api/overview/authentication-with-api-keys (HTTP Basic,
  the key as username, empty password).
- OAuth: https://developer.close.com/api/overview/authentication-with-oauth — every app gets the
  scope ``all.full_access offline_access``; refresh tokens rotate (the old one is revoked on use);
  PKCE is UNVERIFIED, so it is not used.
- Limits: https://developer.close.com/api/overview/rate-limits — per API key per endpoint group,
  the organisation three times that; numbers are not published (UNVERIFIED), so the figure below is a
  conservative guess and the ``RateLimit`` header (limit, remaining, reset) read on every answer
  is what actually paces us.

Close's **lead is the company** and its contacts are the people; we sync contacts (record type
"contact") and create a lead for each new one (named after the company, else the person).
"""

from integrations.registry import AUTH_API_KEY, AUTH_OAUTH, OAuthSpec, ProviderSpec, RateLimitSpec

PROVIDER = ProviderSpec(
    name="close",
    label="Close",
    tier=2,
    auth_kinds=(AUTH_OAUTH, AUTH_API_KEY),
    # The connector adds /api/v1 to an override that names only a host (a sandbox, a proxy).
    api_base_url="https://api.close.com/api/v1",
    oauth=OAuthSpec(
        authorize_url="https://app.close.com/oauth2/authorize/",
        token_url="https://api.close.com/oauth2/token/",
        revoke_url="https://api.close.com/oauth2/revoke/",
        scopes=("all.full_access", "offline_access"),
        pkce=False,
        client_auth="body",
        rotates_refresh_tokens=True,
    ),
    batch_sizes={
        # Close has no batch writes for contacts or activities: "upsert" and "activities" are how
        # many records one connector call takes (one search, then one write each, a few at a time).
        "upsert": 100,
        "activities": 100,
        "search_page": 200,  # /data/search/ _limit maximum
        "list_page": 100,  # _limit maximum of list endpoints
        "write_concurrency": 4,  # writes in flight at once within one call
    },
    rate_limit=RateLimitSpec(
        requests=20,
        window_seconds=1.0,
        # A one-second window leaves little slack for calls that leave together and arrive apart.
        headroom=0.8,
        headers={"limit": "RateLimit", "remaining": "RateLimit", "reset": "RateLimit", "retry_after": "Retry-After"},
    ),
    webhook_signature="close-sig-hash: hex HMAC-SHA256 of close-sig-timestamp + body, key bytes.fromhex(signature_key)",
    record_types=("contact",),
    connector_path="integrations.providers.close.connector.CloseConnector",
    docs_url="https://developer.close.com/",
    token_help="Close → Settings → Developer → API Keys → + New API Key (it starts with api_).",
)
