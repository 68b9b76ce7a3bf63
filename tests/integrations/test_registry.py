"""Every provider entry is complete and consistent."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from django.test import override_settings

from integrations.connector import Connector
from integrations.registry import AUTH_KINDS, AUTH_OAUTH, get_provider, providers

SPECS = list(providers().values())


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_provider_entry_is_complete(spec):
    assert spec.name.isidentifier() and spec.name == spec.name.lower()
    assert spec.label and spec.tier in (1, 2, 3)
    assert spec.auth_kinds and set(spec.auth_kinds) <= set(AUTH_KINDS)
    assert spec.record_types and set(spec.record_types) <= {"contact", "lead"}
    assert spec.batch_sizes["upsert"] >= 1
    assert spec.rate_limit.requests > 0 and spec.rate_limit.window_seconds > 0
    assert 0 < spec.rate_limit.headroom <= 1
    assert spec.webhook_signature
    assert urlsplit(spec.docs_url).scheme == "https"
    assert issubclass(spec.connector_class(), Connector)
    assert spec.connector_class().spec is spec


@pytest.mark.parametrize("spec", [s for s in SPECS if AUTH_OAUTH in s.auth_kinds], ids=lambda s: s.name)
def test_oauth_entries_have_https_endpoints_and_scopes(spec):
    assert spec.oauth is not None and spec.oauth.scopes
    for which in ("authorize", "token"):
        assert urlsplit(getattr(spec.oauth, f"{which}_url")).scheme == "https"
    assert spec.oauth.client_auth in ("body", "basic")


def test_base_urls_are_overridden_by_settings():
    spec = get_provider("hubspot")
    endpoints = {
        "hubspot": {
            "api_url": "http://127.0.0.1:9999/",
            "oauth_url": "http://127.0.0.1:9998",
            "client_id": "cid",
            "client_secret": "sec",
        }
    }
    with override_settings(CRM_ENDPOINTS=endpoints):
        assert spec.api_url() == "http://127.0.0.1:9999"
        assert spec.oauth_endpoint("authorize") == "http://127.0.0.1:9998/oauth/authorize"
        assert spec.oauth_endpoint("token") == "http://127.0.0.1:9998/oauth/v3/token"
        assert spec.oauth_configured
    with override_settings(CRM_ENDPOINTS={}):
        assert spec.api_url() == "https://api.hubapi.com"
        assert not spec.oauth_configured


def test_a_connection_base_url_wins_over_the_default():
    assert get_provider("salesforce").api_url("https://org.my.salesforce.com/") == "https://org.my.salesforce.com"
    with pytest.raises(ValueError, match="no API base URL"):
        get_provider("salesforce").api_url()


def test_unknown_provider_is_a_clear_error():
    with pytest.raises(LookupError, match=r"unknown CRM provider .nocrm."):
        get_provider("nocrm")
