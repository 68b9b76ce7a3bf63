"""Connecting Salesforce end to end: the owner pages' OAuth views, token refresh on a rejected
session, and token connections from the command line, against the Salesforce sandbox emulator
over real HTTPS. No secret the emulator issued may appear in any log record of these tests
(DESIGN.md invariant 4): every test is scanned at DEBUG level for every logger.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from html.parser import HTMLParser
from io import StringIO
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection as db_connection
from django.urls import reverse

from crmsync.models import AuditEntry, Role
from integrations import credentials
from integrations.errors import AuthError
from integrations.models import AuthKind, Connection, ConnectionStatus
from tests.integrations.salesforce_fixtures import *  # noqa: F403
from tests.integrations.salesforce_fixtures import SALESFORCE_CLIENT_ID, SALESFORCE_CLIENT_SECRET

# ---------------------------------------------------------------------------------------------
# The log scan


def leaked(records: list[logging.LogRecord], secrets: list[str]) -> list[str]:
    """The log lines that contain one of ``secrets`` (message, arguments and traceback text)."""
    found = []
    for record in records:
        parts = [record.getMessage(), repr(record.args)]
        if record.exc_info:
            parts.append(logging.Formatter().formatException(record.exc_info))
        text = "\n".join(parts)
        if any(secret and secret in text for secret in secrets):
            found.append(text[:200])
    return found


@pytest.fixture(autouse=True)
def no_secret_in_any_log_line(caplog, salesforce_emulator):
    for name in [None, *logging.root.manager.loggerDict]:
        caplog.set_level(logging.DEBUG, logger=name)
    yield
    secrets = [*salesforce_emulator.secrets_issued, SALESFORCE_CLIENT_SECRET]
    assert leaked(caplog.records, secrets) == []


def test_the_scan_finds_a_token_in_a_log_record(salesforce_emulator, caplog):
    token = salesforce_emulator.issue_token().access_token
    logging.getLogger("integrations.test").debug("calling with %s", token)
    assert leaked(caplog.records, [token]) != []
    caplog.clear()


# ---------------------------------------------------------------------------------------------
# The browser's part of the dance


class _HiddenInputs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "input" and attributes.get("type") == "hidden":
            self.fields[attributes["name"]] = attributes.get("value") or ""


@pytest.fixture
def admin_client(client, account, make_member):
    client.force_login(make_member(account, Role.ADMIN))
    return client


def start(client, account) -> str:
    response = client.post(
        reverse("integrations:start_oauth", kwargs={"account_slug": account.slug, "provider": "salesforce"})
    )
    assert response.status_code == 302
    return response["Location"]


def consent(authorize_url: str, ca_path: str, decision: str = "allow") -> str:
    """Open Salesforce's consent page, press a button, and return where it sends the browser."""
    page = requests.get(authorize_url, timeout=10, verify=ca_path)
    assert page.status_code == 200 and 'value="allow"' in page.text
    form = _HiddenInputs()
    form.feed(page.text)
    parts = urlsplit(authorize_url)
    answer = requests.post(
        f"{parts.scheme}://{parts.netloc}{parts.path}",
        data={**form.fields, "decision": decision},
        allow_redirects=False,
        timeout=10,
        verify=ca_path,
    )
    assert answer.status_code == 302
    return answer.headers["Location"]


def callback(client, location: str):
    parts = urlsplit(location)
    return client.get(parts.path, parse_qs(parts.query))


def page_text(client, response) -> str:
    assert response.status_code == 302
    return client.get(response["Location"]).content.decode()


def raw_token_columns(pk: int) -> tuple[str, str]:
    with db_connection.cursor() as cursor:
        cursor.execute("SELECT access_token, refresh_token FROM integrations_connection WHERE id = %s", [pk])
        return cursor.fetchone()


# ---------------------------------------------------------------------------------------------
# The authorization-code flow


def test_connect_sends_the_owner_to_salesforce_with_state_and_pkce(admin_client, account, salesforce_emulator):
    url = start(admin_client, account)
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert f"{parts.scheme}://{parts.netloc}" == salesforce_emulator.base_url
    assert parts.path == "/services/oauth2/authorize"
    assert query["client_id"] == SALESFORCE_CLIENT_ID and query["response_type"] == "code"
    assert query["redirect_uri"] == settings.PUBLIC_BASE_URL + "/oauth/callback/salesforce/"
    assert len(query["state"]) >= 32
    assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) == 43
    assert query["scope"].split() == ["api", "refresh_token", "id"]
    assert Connection.objects.count() == 0


def test_the_full_flow_connects_the_org_on_its_instance_url(admin_client, account, salesforce_emulator, salesforce_ca):
    location = consent(start(admin_client, account), str(salesforce_ca.ca_path))
    assert "code=" in location
    text = page_text(admin_client, callback(admin_client, location))
    assert f"Connected to Salesforce org {salesforce_emulator.org_id}" in text
    connection = Connection.objects.get(account=account, provider="salesforce")
    assert connection.auth_kind == AuthKind.OAUTH and connection.status == ConnectionStatus.ACTIVE
    assert connection.api_base_url == salesforce_emulator.base_url
    assert connection.crm_account_id == salesforce_emulator.org_id
    assert connection.crm_user_email == "integration@capsule-sandbox.example.com"
    assert connection.token_expires_at is None  # Salesforce sends no expires_in
    assert connection.scopes == ["api", "refresh_token", "id"]
    assert salesforce_emulator.oauth.token_state(connection.access_token) == "ok"
    assert connection.refresh_token in salesforce_emulator.oauth.refresh_tokens
    for column, plaintext in zip(
        raw_token_columns(connection.pk), (connection.access_token, connection.refresh_token), strict=True
    ):
        assert plaintext not in column and column.startswith("gAAAA")
    assert salesforce_emulator.oauth.token_calls == 1
    assert AuditEntry.objects.get(action="connection.connected").object_id == str(connection.pk)
    # The stored connection works: its connector talks to the instance the token answer named.
    assert connection.connector().identity().account_id == salesforce_emulator.org_id


def test_denying_consent_connects_nothing_and_says_so(admin_client, account, salesforce_emulator, salesforce_ca):
    location = consent(start(admin_client, account), str(salesforce_ca.ca_path), decision="deny")
    assert "error=access_denied" in location
    text = page_text(admin_client, callback(admin_client, location))
    assert "Salesforce did not grant access: The user denied access. Nothing was connected." in text
    assert Connection.objects.count() == 0 and salesforce_emulator.oauth.token_calls == 0


def test_a_code_salesforce_refuses_connects_nothing(admin_client, account, salesforce_emulator, salesforce_ca):
    location = consent(start(admin_client, account), str(salesforce_ca.ca_path))
    parts = urlsplit(location)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    response = admin_client.get(parts.path, {"state": query["state"], "code": "a-code-never-issued"})
    text = page_text(admin_client, response)
    assert "Salesforce refused the connection (invalid_grant: invalid authorization code)" in text
    assert Connection.objects.count() == 0


# ---------------------------------------------------------------------------------------------
# Refreshing: Salesforce sends no expiry, so a refresh follows a 401 INVALID_SESSION_ID


def test_a_rejected_session_is_refreshed_and_the_rotated_refresh_token_stored(
    account, salesforce_emulator, make_salesforce_connection
):
    salesforce_emulator.oauth.rotate_refresh_tokens = True
    connection = make_salesforce_connection(account, "oauth")
    old_access, old_refresh = connection.access_token, connection.refresh_token
    salesforce_emulator.oauth.expire(old_access)
    with pytest.raises(AuthError):
        connection.connector().find_by_email("contact", ["ann@example.com"])
    refreshed = credentials.refresh_after_rejection(connection)
    stored = Connection.objects.get(pk=connection.pk)
    assert salesforce_emulator.oauth.refresh_calls == 1
    assert stored.access_token == refreshed.access_token != old_access
    assert stored.refresh_token != old_refresh and stored.refresh_token in salesforce_emulator.oauth.refresh_tokens
    assert old_refresh not in salesforce_emulator.oauth.refresh_tokens  # the old one was retired
    assert stored.api_base_url == salesforce_emulator.base_url and stored.token_expires_at is None
    assert stored.connector().find_by_email("contact", ["ann@example.com"]) == {}


def test_without_rotation_the_refresh_token_is_kept(account, salesforce_emulator, make_salesforce_connection):
    connection = make_salesforce_connection(account, "oauth")
    salesforce_emulator.oauth.expire(connection.access_token)
    credentials.refresh_after_rejection(connection)
    stored = Connection.objects.get(pk=connection.pk)
    assert stored.refresh_token == connection.refresh_token and stored.access_token != connection.access_token


def test_a_refused_refresh_needs_reauthentication(account, salesforce_emulator, make_salesforce_connection):
    connection = make_salesforce_connection(account, "oauth")
    salesforce_emulator.oauth.fail_next_refresh = "invalid_grant"
    with pytest.raises(AuthError) as caught:
        credentials.refresh_after_rejection(connection)
    assert caught.value.code == "needs_reauth"
    stored = Connection.objects.get(pk=connection.pk)
    assert stored.status == ConnectionStatus.NEEDS_REAUTH and "invalid_grant" in stored.status_reason
    assert salesforce_emulator.oauth.refresh_calls == 1


@pytest.mark.django_db(transaction=True)
def test_twenty_jobs_rejected_at_once_cause_one_refresh(account, salesforce_emulator, make_salesforce_connection):
    connection = make_salesforce_connection(account, "oauth")
    salesforce_emulator.oauth.expire(connection.access_token)
    ready = threading.Barrier(20)

    def job(_n: int) -> str:
        try:
            stale = Connection.objects.get(pk=connection.pk)
            ready.wait(timeout=30)
            return credentials.refresh_after_rejection(stale).access_token
        finally:
            db_connection.close()

    with ThreadPoolExecutor(max_workers=20) as pool:
        tokens = list(pool.map(job, range(20)))
    assert salesforce_emulator.oauth.refresh_calls == 1
    assert len(set(tokens)) == 1 and tokens[0] != connection.access_token


def test_disconnect_revokes_at_salesforce_and_wipes_the_credentials(
    admin_client, account, salesforce_emulator, make_salesforce_connection
):
    connection = make_salesforce_connection(account, "oauth")
    refresh = connection.refresh_token
    url = reverse("integrations:disconnect", kwargs={"account_slug": account.slug, "connection_id": connection.pk})
    text = page_text(admin_client, admin_client.post(url))
    assert "Disconnected Salesforce and the CRM revoked our access" in text
    assert len(salesforce_emulator.requests_to("POST", r"^/services/oauth2/revoke$")) == 1
    assert salesforce_emulator.oauth.refresh_tokens[refresh].revoked
    stored = Connection.objects.get(pk=connection.pk)
    assert (stored.status, stored.access_token, stored.refresh_token) == (ConnectionStatus.DISCONNECTED, "", "")


# ---------------------------------------------------------------------------------------------
# Token connections


def test_connect_crm_prints_the_connection_id(account, salesforce_emulator):
    token = salesforce_emulator.issue_token().access_token
    out = StringIO()
    call_command(
        "connect_crm",
        *("--account", account.slug, "--provider", "salesforce", "--token", token),
        *("--api-url", salesforce_emulator.base_url),
        stdout=out,
    )
    connection = Connection.objects.get(account=account)
    assert f"CONNECTION_ID={connection.pk}" in out.getvalue().splitlines()
    assert connection.auth_kind == AuthKind.PRIVATE_APP_TOKEN and connection.refresh_token == ""
    assert connection.api_base_url == salesforce_emulator.base_url
    assert connection.crm_account_id == salesforce_emulator.org_id
    assert token not in out.getvalue()


def test_connect_crm_exits_non_zero_with_salesforces_reason(account, salesforce_emulator):
    with pytest.raises(CommandError) as failed:
        call_command(
            "connect_crm",
            *("--account", account.slug, "--provider", "salesforce", "--token", "00D000000000000!not-issued"),
            *("--api-url", salesforce_emulator.base_url),
        )
    assert failed.value.returncode == 1
    assert "Salesforce refused the token" in str(failed.value) and "Bad_OAuth_Token" in str(failed.value)
    assert "not-issued" not in str(failed.value)
    assert Connection.objects.count() == 0


def test_connect_crm_without_an_instance_url_says_what_is_missing(account, salesforce_emulator):
    token = salesforce_emulator.issue_token().access_token
    with pytest.raises(CommandError, match="instance URL"):
        call_command("connect_crm", "--account", account.slug, "--provider", "salesforce", "--token", token)
    assert Connection.objects.count() == 0


def test_the_token_form_connects_with_an_instance_url(admin_client, account, salesforce_emulator):
    token = salesforce_emulator.issue_token().access_token
    url = reverse("integrations:connect_token", kwargs={"account_slug": account.slug, "provider": "salesforce"})
    response = admin_client.post(url, {"salesforce-token": token, "salesforce-api_url": salesforce_emulator.base_url})
    assert f"Connected to Salesforce org {salesforce_emulator.org_id}" in page_text(admin_client, response)
    connection = Connection.objects.get(account=account)
    assert connection.access_token == token and token not in raw_token_columns(connection.pk)[0]
