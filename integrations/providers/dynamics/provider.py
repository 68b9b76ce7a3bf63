"""Microsoft Dynamics 365 / Dataverse facts as data. Sources: ../shared/crm-reference.md §5.

- Entra ID OAuth 2.0 (v2 endpoints), authorization code with PKCE:
  https://learn.microsoft.com/power-apps/developer/data-platform/authenticate-oauth — refresh
  tokens rotate (each redemption returns a new one); Entra has no RFC 7009 revoke endpoint.
- Web API: https://learn.microsoft.com/power-apps/developer/data-platform/webapi/overview — the
  API lives on the organisation's own URL (``https://<org>.crm<N>.dynamics.com``), so
  ``api_base_url`` is None: a token connection gives it with the token (``--api-url``), an OAuth
  deployment sets ``DYNAMICS_API_URL``; the connector appends ``/api/data/v9.2``.
- Service protection limits: https://learn.microsoft.com/power-apps/developer/data-platform/api-limits
  — 6,000 requests per user per 5-minute sliding window, 20 minutes of execution time, 52
  concurrent requests; 429 with Retry-After and ``x-ms-ratelimit-*`` headers.
- ``$batch``: up to 1,000 operations per request (execute-batch-operations-using-web-api).
- Webhooks: registered service endpoints send your key in a header (or ``?code=``); no signature.

The OAuth scope names the organisation (``https://<org>/.default``): it is built from
``DYNAMICS_API_URL`` when the process starts (one org per deployment). Asking the owner for the
org URL before the authorize step needs a framework change (see docs/crms/dynamics.md).
"""

from django.conf import settings

from integrations.registry import AUTH_OAUTH, AUTH_PRIVATE_APP_TOKEN, OAuthSpec, ProviderSpec, RateLimitSpec

ORG_PLACEHOLDER = "https://yourorg.crm.dynamics.com"


def _org_scope() -> str:
    org = ((getattr(settings, "CRM_ENDPOINTS", {}) or {}).get("dynamics") or {}).get("api_url") or ORG_PLACEHOLDER
    return f"{org.rstrip('/')}/.default"


PROVIDER = ProviderSpec(
    name="dynamics",
    label="Microsoft Dynamics 365",
    tier=2,
    # An access token of an application user (client credentials, made outside this service) with
    # the org URL is accepted for ops scripting (connect_crm --api-url).
    auth_kinds=(AUTH_OAUTH, AUTH_PRIVATE_APP_TOKEN),
    api_base_url=None,
    oauth=OAuthSpec(
        authorize_url="https://login.microsoftonline.com/organizations/oauth2/v2.0/authorize",
        token_url="https://login.microsoftonline.com/organizations/oauth2/v2.0/token",
        revoke_url=None,  # Entra ID has none (sign-in sessions are revoked through Microsoft Graph)
        scopes=(_org_scope(), "offline_access"),
        pkce=True,
        client_auth="body",
        rotates_refresh_tokens=True,
    ),
    # upsert: people per engine batch (two e-mail queries of 100 and one $batch); activities the same;
    # batch_operations: Dataverse's $batch cap; email_query: addresses per $filter (URL length).
    batch_sizes={"upsert": 200, "activities": 200, "batch_operations": 1000, "email_query": 100, "read": 5000},
    rate_limit=RateLimitSpec(
        requests=6000,
        window_seconds=300,
        headers={
            "remaining": "x-ms-ratelimit-burst-remaining-xrm-requests",
            "time_remaining_ms": "x-ms-ratelimit-time-remaining-xrm-requests",
            "retry_after": "Retry-After",
        },
    ),
    webhook_signature="none: a registered webhook sends a key in a header or ?code= (no signature); "
    "changes are read with change tracking",
    record_types=("contact", "lead"),
    # set_fields turns {"ownerid": "<systemuser guid>"} into "ownerid@odata.bind": "/systemusers(<guid>)".
    owner_field="ownerid",
    connector_path="integrations.providers.dynamics.connector.DynamicsConnector",
    docs_url="https://learn.microsoft.com/power-apps/developer/data-platform/webapi/overview",
    token_help="An access token for the org (audience https://yourorg.crm.dynamics.com) and the org URL as "
    "the API URL, e.g. https://yourorg.crm4.dynamics.com.",
)
