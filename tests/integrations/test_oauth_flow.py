"""Connecting HubSpot end to end: the owner pages' OAuth views, token connections and refreshes,
against the HubSpot sandbox emulator over real HTTP. No token the emulator issued may appear in
any log record of these tests (DESIGN.md invariant 4): every test is scanned at DEBUG level.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from html.parser import HTMLParser
from io import StringIO
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.conf import settings
from django.core import mail
from django.core.management import CommandError, call_command
from django.db import connection as db_connection
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from crmsync.models import AuditEntry, Role
from integrations import credentials
from integrations.errors import AuthError
from integrations.models import AuthKind, Connection, ConnectionStatus
from integrations.sandbox.core import EmulatorApp, EmulatorServer, Response
from tests.integrations.conftest import HUBSPOT_CLIENT_ID, HUBSPOT_CLIENT_SECRET

# ---------------------------------------------------------------------------------------------
# The log scan: every record of every test, at DEBUG for every logger


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
def no_secret_in_any_log_line(caplog, hubspot_emulator):
    loggers = [None, *logging.root.manager.loggerDict]
    for name in loggers:
        caplog.set_level(logging.DEBUG, logger=name)
    yield
    # In teardown caplog.records holds only teardown's records: read the setup and call phases.
    records = caplog.get_records("setup") + caplog.get_records("call")
    secrets = [*hubspot_emulator.secrets_issued, HUBSPOT_CLIENT_SECRET]
    assert leaked(records, secrets) == []


def test_the_scan_finds_a_token_in_a_log_record(hubspot_emulator, caplog):
    token = hubspot_emulator.issue_private_app_token()
    logging.getLogger("integrations.test").debug("calling with %s", token)
    assert leaked(caplog.records, [token]) != []
    caplog.clear()
    logging.getLogger("integrations.test").debug("nothing to hide here")


# ---------------------------------------------------------------------------------------------
# Helpers: the browser's part of the dance


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
        reverse("integrations:start_oauth", kwargs={"account_slug": account.slug, "provider": "hubspot"})
    )
    assert response.status_code == 302
    return response["Location"]


def consent(authorize_url: str, decision: str = "allow") -> str:
    """Open the consent page, press a button, and return where HubSpot sends the browser."""
    page = requests.get(authorize_url, timeout=10, verify=settings.CRM_CA_BUNDLE)
    assert page.status_code == 200 and 'value="allow"' in page.text
    form = _HiddenInputs()
    form.feed(page.text)
    parts = urlsplit(authorize_url)
    answer = requests.post(
        f"{parts.scheme}://{parts.netloc}{parts.path}",
        data={**form.fields, "decision": decision},
        allow_redirects=False,
        timeout=10,
        verify=settings.CRM_CA_BUNDLE,
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


def test_connect_sends_the_owner_to_hubspot_with_state_and_pkce(admin_client, account, hubspot_emulator):
    url = start(admin_client, account)
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert f"{parts.scheme}://{parts.netloc}" == hubspot_emulator.base_url and parts.path == "/oauth/authorize"
    assert query["client_id"] == HUBSPOT_CLIENT_ID and query["response_type"] == "code"
    assert query["redirect_uri"] == settings.PUBLIC_BASE_URL + "/oauth/callback/hubspot/"
    assert len(query["state"]) >= 32
    assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) == 43
    assert "crm.objects.contacts.write" in query["scope"].split()
    assert Connection.objects.count() == 0


def test_the_full_flow_stores_encrypted_tokens_and_shows_the_portal(admin_client, account, hubspot_emulator):
    location = consent(start(admin_client, account))
    assert "code=" in location
    response = callback(admin_client, location)
    text = page_text(admin_client, response)
    assert f"Connected to {hubspot_emulator.hub_domain}" in text
    connection = Connection.objects.get(account=account, provider="hubspot")
    assert connection.auth_kind == AuthKind.OAUTH and connection.status == ConnectionStatus.ACTIVE
    assert connection.crm_account_id == str(hubspot_emulator.hub_id)
    assert connection.crm_user_email == hubspot_emulator.user_email
    assert hubspot_emulator.oauth.token_state(connection.access_token) == "ok"
    assert connection.refresh_token in hubspot_emulator.oauth.refresh_tokens
    assert dt.timedelta(minutes=29) < connection.token_expires_at - timezone.now() <= dt.timedelta(minutes=30)
    for column, plaintext in zip(
        raw_token_columns(connection.pk), (connection.access_token, connection.refresh_token), strict=True
    ):
        assert plaintext not in column and column.startswith("gAAAA")
    entry = AuditEntry.objects.get(action="connection.connected")
    assert entry.object_id == str(connection.pk) and entry.changes["auth_kind"] == AuthKind.OAUTH
    assert hubspot_emulator.oauth.token_calls == 1


def test_a_callback_with_another_state_is_refused(admin_client, account, hubspot_emulator):
    location = consent(start(admin_client, account))
    forged = location.replace("state=", "state=forged")
    response = callback(admin_client, forged)
    assert response.status_code == 400
    assert "does not match a connection you started" in response.content.decode()
    assert Connection.objects.count() == 0 and hubspot_emulator.oauth.token_calls == 0


def test_a_state_works_once(admin_client, account, hubspot_emulator):
    location = consent(start(admin_client, account))
    assert callback(admin_client, location).status_code == 302
    again = callback(admin_client, location)
    assert again.status_code == 400 and "already used" in again.content.decode()
    assert Connection.objects.count() == 1 and hubspot_emulator.oauth.token_calls == 1


def test_denying_consent_connects_nothing_and_says_so(admin_client, account, hubspot_emulator):
    location = consent(start(admin_client, account), decision="deny")
    assert "error=access_denied" in location
    text = page_text(admin_client, callback(admin_client, location))
    assert "HubSpot did not grant access: The user denied access. Nothing was connected." in text
    assert Connection.objects.count() == 0 and hubspot_emulator.oauth.token_calls == 0


class BrokenTokenEndpoint(EmulatorApp):
    """A token endpoint that answers garbage, as a misbehaving proxy or outage would."""

    name = "broken-oauth"

    def __init__(self, answer: Response) -> None:
        super().__init__()
        self.route("POST", r"/oauth/v3/token", lambda request: answer, auth=False)


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (
            Response(200, b"<html>Service temporarily unavailable</html>", {"Content-Type": "text/html"}),
            "HubSpot refused the connection (invalid_response: the token endpoint did not answer with JSON)",
        ),
        (
            Response.json({"token_type": "bearer", "expires_in": 1800}),
            "HubSpot refused the connection (invalid_response: the answer has no access_token)",
        ),
        (
            Response.json({"status": "error", "message": "internal error"}, status=500),
            "HubSpot could not be reached to finish connecting",
        ),
    ],
    ids=["not-json", "no-access-token", "server-error"],
)
def test_a_malformed_token_answer_connects_nothing(admin_client, account, hubspot_emulator, answer, message):
    location = consent(start(admin_client, account))
    with EmulatorServer(BrokenTokenEndpoint(answer)) as broken:
        endpoints = {**settings.CRM_ENDPOINTS}
        endpoints["hubspot"] = {**endpoints["hubspot"], "oauth_url": broken.url}
        with override_settings(CRM_ENDPOINTS=endpoints):
            response = callback(admin_client, location)
        assert len(broken.app.requests_to("POST", r"^/oauth/v3/token$")) == 1
    assert message in page_text(admin_client, response)
    assert Connection.objects.count() == 0


# ---------------------------------------------------------------------------------------------
# Refreshing


def test_a_refresh_ahead_of_expiry_stores_the_rotated_refresh_token(account, hubspot_emulator, make_hubspot_connection):
    hubspot_emulator.oauth.rotate_refresh_tokens = True
    connection = make_hubspot_connection(account, "oauth", expires_in=dt.timedelta(minutes=1))
    old_access, old_refresh = connection.access_token, connection.refresh_token
    credentials.fresh_connection(connection)
    stored = Connection.objects.get(pk=connection.pk)
    assert hubspot_emulator.oauth.refresh_calls == 1
    assert stored.access_token != old_access and stored.refresh_token != old_refresh
    assert stored.refresh_token in hubspot_emulator.oauth.refresh_tokens
    assert old_refresh not in hubspot_emulator.oauth.refresh_tokens  # the old one was retired
    assert stored.token_expires_at - timezone.now() > dt.timedelta(minutes=29)
    assert stored.connector().identity().account_id == str(hubspot_emulator.hub_id)


def test_a_fresh_token_is_not_refreshed(account, hubspot_emulator, make_hubspot_connection):
    connection = make_hubspot_connection(account, "oauth", expires_in=dt.timedelta(minutes=20))
    assert credentials.fresh_connection(connection).access_token == connection.access_token
    assert hubspot_emulator.oauth.refresh_calls == 0


def test_a_refused_refresh_needs_reauthentication_and_tells_the_owner(
    account, make_member, hubspot_emulator, make_hubspot_connection, django_capture_on_commit_callbacks
):
    owner = make_member(account, Role.OWNER)
    connection = make_hubspot_connection(account, "oauth", expires_in=dt.timedelta(minutes=1))
    hubspot_emulator.oauth.fail_next_refresh = "invalid_grant"
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(AuthError) as caught:
        credentials.fresh_connection(connection)
    assert caught.value.code == "needs_reauth"
    stored = Connection.objects.get(pk=connection.pk)
    assert stored.status == ConnectionStatus.NEEDS_REAUTH and "invalid_grant" in stored.status_reason
    assert [m.to for m in mail.outbox] == [[owner.email]]
    assert "Reconnect HubSpot" in mail.outbox[0].subject
    assert AuditEntry.objects.filter(action="connection.needs_reauth", object_id=str(connection.pk)).count() == 1
    assert hubspot_emulator.oauth.refresh_calls == 1


@pytest.mark.django_db(transaction=True)
def test_twenty_jobs_finding_the_token_expiring_cause_one_refresh(account, hubspot_emulator, make_hubspot_connection):
    connection = make_hubspot_connection(account, "oauth", expires_in=dt.timedelta(minutes=1))
    old_access = connection.access_token
    ready = threading.Barrier(20)

    def job(_n: int) -> str:
        try:
            stale = Connection.objects.get(pk=connection.pk)
            ready.wait(timeout=30)
            return credentials.fresh_connection(stale).access_token
        finally:
            db_connection.close()

    with ThreadPoolExecutor(max_workers=20) as pool:
        tokens = list(pool.map(job, range(20)))
    assert hubspot_emulator.oauth.refresh_calls == 1
    assert len(set(tokens)) == 1 and tokens[0] != old_access
    assert Connection.objects.get(pk=connection.pk).access_token == tokens[0]


# ---------------------------------------------------------------------------------------------
# Disconnecting


def test_disconnect_revokes_at_hubspot_and_wipes_the_credentials(
    admin_client, account, hubspot_emulator, make_hubspot_connection
):
    connection = make_hubspot_connection(account, "oauth")
    refresh = connection.refresh_token
    url = reverse("integrations:disconnect", kwargs={"account_slug": account.slug, "connection_id": connection.pk})
    text = page_text(admin_client, admin_client.post(url))
    assert "Disconnected HubSpot and the CRM revoked our access" in text
    assert len(hubspot_emulator.requests_to("POST", r"^/oauth/v3/token/revoke$")) == 1
    assert refresh not in hubspot_emulator.oauth.refresh_tokens
    stored = Connection.objects.get(pk=connection.pk)
    assert stored.status == ConnectionStatus.DISCONNECTED
    assert (stored.access_token, stored.refresh_token, stored.token_expires_at) == ("", "", None)
    entry = AuditEntry.objects.get(action="connection.disconnected")
    assert entry.changes == {"revoked_at_crm": True}


# ---------------------------------------------------------------------------------------------
# Token connections


def test_the_token_form_connects_a_private_app(admin_client, account, hubspot_emulator):
    token = hubspot_emulator.issue_private_app_token()
    url = reverse("integrations:connect_token", kwargs={"account_slug": account.slug, "provider": "hubspot"})
    text = page_text(admin_client, admin_client.post(url, {"hubspot-token": token}))
    assert f"Connected to HubSpot portal {hubspot_emulator.hub_id}" in text
    connection = Connection.objects.get(account=account)
    assert connection.auth_kind == AuthKind.PRIVATE_APP_TOKEN and connection.refresh_token == ""
    assert connection.access_token == token and token not in raw_token_columns(connection.pk)[0]
    assert AuditEntry.objects.filter(action="connection.connected").count() == 1


def test_the_token_form_shows_hubspots_reason_for_a_bad_token(admin_client, account, hubspot_emulator):
    url = reverse("integrations:connect_token", kwargs={"account_slug": account.slug, "provider": "hubspot"})
    response = admin_client.post(url, {"hubspot-token": "pat-na1-00000000-not-issued"})
    assert response.status_code == 400
    text = response.content.decode()
    assert "HubSpot refused this token" in text and "Authentication credentials not found" in text
    assert "pat-na1-00000000-not-issued" not in text
    assert Connection.objects.count() == 0


def test_connect_crm_prints_the_connection_id(account, hubspot_emulator):
    token = hubspot_emulator.issue_private_app_token()
    out = StringIO()
    call_command("connect_crm", "--account", account.slug, "--provider", "hubspot", "--token", token, stdout=out)
    connection = Connection.objects.get(account=account)
    assert f"CONNECTION_ID={connection.pk}" in out.getvalue().splitlines()
    assert connection.crm_account_id == str(hubspot_emulator.hub_id)
    assert token not in out.getvalue()


def test_connect_crm_exits_non_zero_with_hubspots_reason(account, hubspot_emulator):
    # call_command raises what manage.py turns into "CommandError: …" on stderr and exit status 1.
    with pytest.raises(CommandError) as failed:
        call_command("connect_crm", "--account", account.slug, "--provider", "hubspot", "--token", "pat-bad")
    assert failed.value.returncode == 1
    assert "HubSpot refused the token" in str(failed.value)
    assert "Authentication credentials not found" in str(failed.value)
    assert "pat-bad" not in str(failed.value)
    assert Connection.objects.count() == 0
