"""The Salesforce sandbox's OAuth 2.0 web-server flow, refresh, revoke, introspection and identity URLs,
driven with plain requests over TLS (crm-reference §1.1)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from simple_salesforce import Salesforce

from integrations.sandbox.core import EmulatorServer, LocalCA
from integrations.sandbox.salesforce import SalesforceEmulator

REDIRECT = "https://app.example.com/oauth/salesforce/callback"
CLIENT_ID, CLIENT_SECRET = "oauth-client", "oauth-secret"


def trusting_session(ca: LocalCA) -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    session.verify = str(ca.ca_path)
    return session


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> LocalCA:
    return LocalCA(tmp_path_factory.mktemp("salesforce-oauth-ca"))


def serve(ca: LocalCA, **options):
    app = SalesforceEmulator(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, redirect_uris=[REDIRECT], **options)
    return app, EmulatorServer(app, tls=ca).start()


@pytest.fixture(scope="module")
def served(ca: LocalCA):
    app, server = serve(ca)
    yield app, server
    server.stop()


@pytest.fixture(scope="module")
def rotating(ca: LocalCA):
    app, server = serve(ca, rotate_refresh_tokens=True)
    yield app, server
    server.stop()


@pytest.fixture
def http(ca: LocalCA) -> requests.Session:
    return trusting_session(ca)


class _Buttons(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: list[str] = []
        self.hidden: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "button" and found.get("id"):
            self.ids.append(found["id"] or "")
        if tag == "input" and found.get("type") == "hidden":
            self.hidden[found.get("name") or ""] = found.get("value") or ""


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def authorize(
    http: requests.Session, base: str, decision: str = "allow", challenge: str | None = None, **extra: str
) -> dict[str, str]:
    """Open the consent page, press a button, and return the redirect's query parameters."""
    params = {"response_type": "code", "client_id": CLIENT_ID, "redirect_uri": REDIRECT, "state": "st-1", **extra}
    if challenge:
        params.update(code_challenge=challenge, code_challenge_method="S256")
    page = http.get(f"{base}/services/oauth2/authorize", params=params)
    parser = _Buttons()
    parser.feed(page.text)
    assert page.status_code == 200 and parser.ids == ["allow", "deny"]
    answer = http.post(
        f"{base}/services/oauth2/authorize", data={**parser.hidden, "decision": decision}, allow_redirects=False
    )
    assert answer.status_code == 302 and answer.headers["Location"].startswith(REDIRECT)
    return {k: v[0] for k, v in parse_qs(urlsplit(answer.headers["Location"]).query).items()}


def exchange(http: requests.Session, base: str, code: str, verifier: str | None = None, **extra: str):
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "redirect_uri": REDIRECT,
        **extra,
    }
    if verifier is not None:
        form["code_verifier"] = verifier
    return http.post(f"{base}/services/oauth2/token", data=form)


def refresh(http: requests.Session, base: str, refresh_token: str) -> requests.Response:
    form = {
        "grant_type": "refresh_token",
        "refresh_token": refresh_token,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
    }
    return http.post(f"{base}/services/oauth2/token", data=form)


def test_code_flow_with_pkce_returns_a_salesforce_token(served, http: requests.Session, ca: LocalCA) -> None:
    app, server = served
    verifier, challenge = pkce_pair()
    redirect = authorize(http, server.url, challenge=challenge, scope="api refresh_token id")
    assert redirect["state"] == "st-1"
    answer = exchange(http, server.url, redirect["code"], verifier)
    body = answer.json()
    assert answer.status_code == 200 and "expires_in" not in body
    assert set(body) == {
        "access_token",
        "refresh_token",
        "signature",
        "scope",
        "instance_url",
        "id",
        "token_type",
        "issued_at",
    }
    assert body["instance_url"] == server.url and body["token_type"] == "Bearer"
    assert body["id"] == f"{server.url}/id/{app.org_id}/{app.integration_user_id}"
    assert body["issued_at"].isdigit() and body["scope"] == "api refresh_token id"
    expected = hmac.new(CLIENT_SECRET.encode(), (body["id"] + body["issued_at"]).encode(), hashlib.sha256).digest()
    assert base64.b64decode(body["signature"]) == expected
    sf = Salesforce(instance_url=body["instance_url"], session_id=body["access_token"], session=trusting_session(ca))
    assert sf.query("SELECT Id FROM User")["totalSize"] == 3


def test_a_wrong_verifier_a_reused_code_and_a_wrong_redirect_are_invalid_grant(served, http) -> None:
    _app, server = served
    verifier, challenge = pkce_pair()
    code = authorize(http, server.url, challenge=challenge)["code"]
    wrong = exchange(http, server.url, code, "not-the-verifier")
    assert wrong.status_code == 400
    assert wrong.json() == {"error": "invalid_grant", "error_description": "invalid code verifier"}
    reused = exchange(http, server.url, code, verifier)  # the code was spent by the failed attempt
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
    fresh_code = authorize(http, server.url)["code"]
    elsewhere = exchange(http, server.url, fresh_code, redirect_uri="https://evil.example.com/cb")
    assert elsewhere.status_code == 400 and elsewhere.json()["error"] == "invalid_grant"
    bad_secret = http.post(
        f"{server.url}/services/oauth2/token",
        data={"grant_type": "authorization_code", "code": "x", "client_id": CLIENT_ID, "client_secret": "wrong"},
    )
    assert bad_secret.status_code == 400 and bad_secret.json()["error"] == "invalid_client"


def test_unregistered_redirect_uri_and_denial(served, http) -> None:
    _app, server = served
    page = http.get(
        f"{server.url}/services/oauth2/authorize",
        params={"response_type": "code", "client_id": CLIENT_ID, "redirect_uri": "https://evil.example.com/cb"},
    )
    assert page.status_code == 400 and "allow" not in page.text
    denied = authorize(http, server.url, decision="deny")
    assert denied["error"] == "access_denied" and "code" not in denied and denied["state"] == "st-1"


def test_no_refresh_token_without_the_refresh_scope(served, http) -> None:
    _app, server = served
    body = exchange(http, server.url, authorize(http, server.url, scope="api")["code"]).json()
    assert "refresh_token" not in body and body["scope"] == "api"


def test_refresh_without_rotation_keeps_the_refresh_token(served, http) -> None:
    _app, server = served
    first = exchange(http, server.url, authorize(http, server.url)["code"]).json()
    again = refresh(http, server.url, first["refresh_token"])
    assert again.status_code == 200 and "refresh_token" not in again.json()
    assert again.json()["access_token"] != first["access_token"] and again.json()["instance_url"] == server.url
    assert refresh(http, server.url, first["refresh_token"]).status_code == 200  # still valid
    bogus = refresh(http, server.url, "not-a-refresh-token")
    assert bogus.status_code == 400 and bogus.json()["error"] == "invalid_grant"


def test_refresh_with_rotation_invalidates_the_old_refresh_token(rotating, http) -> None:
    _app, server = rotating
    first = exchange(http, server.url, authorize(http, server.url)["code"]).json()
    rotated = refresh(http, server.url, first["refresh_token"]).json()
    assert rotated["refresh_token"] != first["refresh_token"]
    replay = refresh(http, server.url, first["refresh_token"])
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    assert refresh(http, server.url, rotated["refresh_token"]).status_code == 200


def test_revoke_ends_the_session_and_its_refresh_token(served, http) -> None:
    app, server = served
    issued = app.issue_token()
    data_url = f"{server.url}/services/data/v59.0/query/"
    bearer = {"Authorization": f"Bearer {issued.access_token}"}
    assert http.get(data_url, params={"q": "SELECT Id FROM User"}, headers=bearer).status_code == 200
    assert http.post(f"{server.url}/services/oauth2/revoke", data={"token": issued.refresh_token}).status_code == 200
    after = http.get(data_url, params={"q": "SELECT Id FROM User"}, headers=bearer)
    assert after.status_code == 401 and after.json()[0]["errorCode"] == "INVALID_SESSION_ID"
    assert refresh(http, server.url, issued.refresh_token or "").json()["error"] == "invalid_grant"
    unknown = http.post(f"{server.url}/services/oauth2/revoke", data={"token": "nope"})
    assert unknown.status_code == 400 and unknown.json()["error"] == "unsupported_token_type"


def test_introspection_reports_active_and_revoked_tokens(served, http) -> None:
    app, server = served
    issued = app.issue_token()
    url = f"{server.url}/services/oauth2/introspect"
    client = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    active = http.post(url, data={"token": issued.access_token, "token_type_hint": "access_token", **client}).json()
    assert active["active"] is True and active["client_id"] == CLIENT_ID and active["token_type"] == "access_token"
    assert active["sub"] == app.identity_url(app.integration_user_id) and active["exp"] > active["iat"]
    app.oauth.revoke(issued.access_token)
    assert http.post(url, data={"token": issued.access_token, **client}).json() == {"active": False}
    refused = http.post(url, data={"token": issued.access_token, "client_id": CLIENT_ID, "client_secret": "x"})
    assert refused.status_code == 401


def test_identity_url_and_userinfo_name_the_connected_org_and_user(served, http) -> None:
    app, server = served
    body = exchange(http, server.url, authorize(http, server.url)["code"]).json()
    bearer = {"Authorization": f"Bearer {body['access_token']}"}
    identity = http.get(body["id"], headers=bearer).json()
    assert identity["organization_id"] == app.org_id and identity["user_id"] == app.integration_user_id
    assert identity["username"] == "integration@capsule-sandbox.example.com"
    assert identity["display_name"] == "Capsule Integration" and identity["email"] == identity["username"]
    assert identity["urls"]["rest"] == f"{server.url}/services/data/v{{version}}/"
    info = http.get(f"{server.url}/services/oauth2/userinfo", headers=bearer).json()
    assert info["organization_id"] == app.org_id and info["preferred_username"] == identity["username"]
    assert info["sub"] == body["id"]
    stale = http.get(body["id"], headers={"Authorization": "Bearer expired-or-forged"})
    assert stale.status_code == 403 and stale.text == "Bad_OAuth_Token"
    other_user = http.get(f"{server.url}/id/{app.org_id}/{app.admin_user_id}", headers=bearer)
    assert other_user.status_code == 404


def test_tokens_for_another_user_write_as_that_user(served, ca: LocalCA) -> None:
    app, server = served
    rep = app.add_user("second.rep@capsule-sandbox.example.com", "Second", "Rep")
    token = app.issue_token(user_id=rep).access_token
    sf = Salesforce(instance_url=server.url, session_id=token, session=trusting_session(ca))
    created = sf.Lead.create({"LastName": "Owned", "Company": "Acme"})
    record = app.get("Lead", created["id"])
    assert record["OwnerId"] == record["CreatedById"] == rep
