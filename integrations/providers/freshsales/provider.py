"""Freshsales' facts as data. Source: ../shared/crm-reference.md §7 (Freshsales / Freshworks CRM).

- API and authentication: https://developers.freshworks.com/crm/api/ — ``Authorization: Token
  token=<API key>`` on the account's own host: ``https://<bundle alias>.myfreshworks.com/crm/sales/api``
  (Freshworks-suite accounts) or ``https://<domain>.freshsales.io/api`` (older standalone ones).
  Where to find the key: https://crmsupport.freshworks.com/support/solutions/articles/50000002503
  (Profile settings → API settings). No OAuth for the CRM REST API is documented (§7.1).
- Limits: https://crmsupport.freshworks.com/support/solutions/articles/50000002498 — per account
  per hour 1,000 (Free/Growth), 2,000 (Pro), 5,000 (Enterprise); newer plans also 400 per minute.
- Webhooks: workflow automations with a "Trigger webhook" action (no subscription API, no
  signature): https://crmsupport.freshworks.com/support/solutions/articles/50000000451
"""

from integrations.registry import AUTH_API_KEY, ProviderSpec, RateLimitSpec

PROVIDER = ProviderSpec(
    name="freshsales",
    label="Freshsales",
    tier=2,
    auth_kinds=(AUTH_API_KEY,),
    # Every account has its own host: the connection's api_base_url (connect_crm --api-url, or the
    # token form). A URL naming only the host gets /crm/sales/api (or /api on *.freshsales.io).
    api_base_url=None,
    oauth=None,
    batch_sizes={
        # Freshsales has no synchronous batch writes (bulk_upsert is an async job, UNVERIFIED): one
        # upsert call per person, ``write_concurrency`` at a time; "upsert" and "activities" are how
        # many items one engine pass hands the connector.
        "upsert": 50,
        "activities": 50,
        "list_page": 100,  # per_page maximum of list views
        "write_concurrency": 4,
    },
    rate_limit=RateLimitSpec(
        # The engine's limiter paces the per-minute cap; the hourly quota (1,000 to 5,000 by plan) is
        # read from x-ratelimit-remaining on every answer and a 429 blocks until Retry-After.
        requests=400,
        window_seconds=60,
        headers={
            "limit": "x-ratelimit-limit",
            "remaining": "x-ratelimit-remaining",
            "minute_limit": "per-min-x-ratelimit-limit",
            "minute_remaining": "per-min-x-ratelimit-remaining",
            "retry_after": "Retry-After",
        },
    ),
    webhook_signature="none: a shared secret in a custom header of the workflow's Trigger webhook action",
    # Freshworks CRM merged leads into contacts (lifecycle stage); legacy /leads is UNVERIFIED.
    record_types=("contact",),
    connector_path="integrations.providers.freshsales.connector.FreshsalesConnector",
    docs_url="https://developers.freshworks.com/crm/api/",
    token_help="Freshsales → your profile picture → Profile settings → API settings → Your API key. "
    "Give the account's URL too, e.g. https://yourcompany.myfreshworks.com.",
    owner_field="owner_id",
)
