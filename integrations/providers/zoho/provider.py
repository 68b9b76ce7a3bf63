"""Zoho CRM's facts as data. Sources: ../shared/crm-reference.md §4 and the OpenAPI specs in
shared/specs/zoho (security scheme in common.json).

- OAuth: https://www.zoho.com/crm/developer/docs/api/v8/oauth-overview.html — the authorize URL
  needs ``access_type=offline`` for a refresh token and ``prompt=consent`` to get a new one on a
  reconnect; refresh tokens do not rotate; token errors come back as HTTP 200 with ``error``.
- API: https://www.zoho.com/crm/developer/docs/api/v8/ — the host is the token answer's
  ``api_domain`` (so ``api_base_url`` is None here), the header ``Authorization: Zoho-oauthtoken``.
- Limits: https://www.zoho.com/crm/developer/docs/api/v8/api-limits.html (crm-reference §4.5).

Data centres: every Zoho account lives in one, with its own accounts server and API domain. The
accounts server is this provider's OAuth host, set per deployment with ``ZOHO_OAUTH_URL`` (the
default is the US one); the API domain always comes from the token answer.

==========  =============================  ==============================
DC          accounts server (ZOHO_OAUTH_URL) API domain (from api_domain)
==========  =============================  ==============================
US          https://accounts.zoho.com      https://www.zohoapis.com
EU          https://accounts.zoho.eu       https://www.zohoapis.eu
IN          https://accounts.zoho.in       https://www.zohoapis.in
AU          https://accounts.zoho.com.au   https://www.zohoapis.com.au
JP          https://accounts.zoho.jp       https://www.zohoapis.jp
CN          https://accounts.zoho.com.cn   https://www.zohoapis.com.cn
CA          https://accounts.zohocloud.ca  https://www.zohoapis.ca
SA          https://accounts.zoho.sa       https://www.zohoapis.sa
==========  =============================  ==============================

Sandbox and developer orgs answer at ``https://sandbox.zohoapis.<tld>`` / ``developer.zohoapis.<tld>``.
"""

from integrations.registry import AUTH_OAUTH, OAuthSpec, ProviderSpec, RateLimitSpec

ACCOUNTS_SERVERS = {
    "us": "https://accounts.zoho.com",
    "eu": "https://accounts.zoho.eu",
    "in": "https://accounts.zoho.in",
    "au": "https://accounts.zoho.com.au",
    "jp": "https://accounts.zoho.jp",
    "cn": "https://accounts.zoho.com.cn",
    "ca": "https://accounts.zohocloud.ca",
    "sa": "https://accounts.zoho.sa",
}

PROVIDER = ProviderSpec(
    name="zoho",
    label="Zoho CRM",
    tier=1,
    # Zoho has no long-lived API keys for CRM: "self client" tokens are OAuth tokens of one hour.
    auth_kinds=(AUTH_OAUTH,),
    api_base_url=None,
    oauth=OAuthSpec(
        authorize_url="https://accounts.zoho.com/oauth/v2/auth",
        token_url="https://accounts.zoho.com/oauth/v2/token",
        revoke_url="https://accounts.zoho.com/oauth/v2/token/revoke",
        scopes=(
            "ZohoCRM.modules.ALL",  # Leads, Contacts, Deals, Tasks, Notes… read and write
            "ZohoCRM.settings.fields.ALL",  # describe fields, create our key fields
            "ZohoCRM.users.READ",  # identity: the connecting user
            "ZohoCRM.org.READ",  # identity: the org
            "ZohoCRM.coql.READ",  # COQL (named by Zoho's COQL docs; the v8 spec lists modules.ALL)
            "ZohoCRM.notifications.ALL",  # notification channels (inbound changes)
        ),
        # PKCE for Zoho's server-based clients is UNVERIFIED (crm-reference §4.1): not used.
        pkce=False,
        client_auth="body",
        scope_separator=",",  # Zoho's documented separator; it accepts spaces too
        extra_authorize_params={"access_type": "offline", "prompt": "consent"},
        rotates_refresh_tokens=False,
    ),
    # Insert, update and upsert take at most 100 records per call; COQL and list pages up to 200.
    batch_sizes={"upsert": 100, "activities": 100, "read": 200, "coql_in": 50},
    rate_limit=RateLimitSpec(
        # Zoho limits concurrency (Professional: 15 requests in flight; 10 for COQL, search and
        # writes of more than 10 records) and credits per rolling 24 h (50,000 + 500 per user on
        # Professional), not requests per window. Ten calls a second keeps about ten in flight at
        # Zoho's usual latencies, under every paid edition's cap.
        requests=10,
        window_seconds=1.0,
        daily=50_000,
        # Names seen in third-party accounts only (UNVERIFIED): the org's credit budget and what is left.
        headers={"daily": "X-RATELIMIT-LIMIT", "daily_remaining": "X-RATELIMIT-REMAINING"},
    ),
    webhook_signature="channel token (Zoho echoes the token set on the notification channel in each callback body)",
    record_types=("contact", "lead"),
    owner_field="Owner",  # a user lookup; the connector sends an owner id as {"id": …}
    connector_path="integrations.providers.zoho.connector.ZohoConnector",
    docs_url="https://www.zoho.com/crm/developer/docs/api/v8/",
)
