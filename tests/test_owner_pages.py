"""The owner settings pages: tenancy sweep, roles, API keys, settings, members, audit log, sign-in, layout."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from html.parser import HTMLParser

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.urls.converters import IntConverter
from django.utils import timezone

from crmsync.models import ApiKey, AuditEntry, Capsule, Event, Membership, Prospect, Role

PASSWORD = "correct horse 123"  # tests/conftest.py make_member


# --- fixtures -----------------------------------------------------------------------------------


@pytest.fixture
def login(client):
    def log_in(user) -> Client:
        client.force_login(user)
        return client

    return log_in


@pytest.fixture
def other_account(make_account):
    return make_account("Other Co")


@pytest.fixture
def objects(account, other_account, make_member):
    """One object of each kind per account, for pages whose URL names an object."""
    key, _raw = ApiKey.issue(account, "acme key")
    their_key, _raw = ApiKey.issue(other_account, "other key")
    member = Membership.objects.get(user=make_member(account, Role.VIEWER, email="vic@acme.example"))
    their_member = Membership.objects.get(user=make_member(other_account, Role.VIEWER, email="vic@other.example"))
    return {"key": key, "their_key": their_key, "member": member, "their_member": their_member}


# --- the tenancy sweep ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Page:
    """One owner page in the sweep. ``kwargs`` builds URL kwargs (besides account_slug) from
    ``objects``; ``checked_for_members`` says the page answers its own account's owner with
    something other than 404, which proves the outsider's 404 comes from the tenancy check."""

    url_name: str
    method: str = "get"
    kwargs: Callable[[dict], dict] = field(default=lambda objects: {})
    checked_for_members: bool = True

    def url(self, account, objects) -> str:
        return reverse(self.url_name, kwargs={"account_slug": account.slug, **self.kwargs(objects)})

    def __str__(self) -> str:
        return f"{self.method.upper()} {self.url_name}"


# The pages of this app, with real objects: each is checked for outsiders, anonymous visitors
# and (the control that proves the outsider's 404 comes from the tenancy check) its own owner.
# Every other page with an account_slug, of any app, is swept by _every_account_page() below;
# a page that wants the owner control too joins this list.
TENANT_PAGES = [
    Page("crmsync:overview"),
    Page("crmsync:api_keys"),
    Page("crmsync:api_key_create"),
    Page("crmsync:api_key_create", "post"),
    Page("crmsync:api_key_revoke", kwargs=lambda o: {"key_id": o["key"].pk}),
    Page("crmsync:api_key_revoke", "post", kwargs=lambda o: {"key_id": o["key"].pk}),
    Page("crmsync:account_settings"),
    Page("crmsync:account_settings", "post"),
    Page("crmsync:members"),
    Page("crmsync:member_invite", "post"),
    Page("crmsync:member_role", "post", kwargs=lambda o: {"membership_id": o["member"].pk}),
    Page("crmsync:member_remove", kwargs=lambda o: {"membership_id": o["member"].pk}),
    Page("crmsync:member_remove", "post", kwargs=lambda o: {"membership_id": o["member"].pk}),
    Page("crmsync:audit_log"),
]

# Pages that name an object of the account: another account's object must be "not found" too.
OBJECT_PAGES = [
    Page("crmsync:api_key_revoke", kwargs=lambda o: {"key_id": o["their_key"].pk}),
    Page("crmsync:api_key_revoke", "post", kwargs=lambda o: {"key_id": o["their_key"].pk}),
    Page("crmsync:member_role", "post", kwargs=lambda o: {"membership_id": o["their_member"].pk}),
    Page("crmsync:member_remove", kwargs=lambda o: {"membership_id": o["their_member"].pk}),
    Page("crmsync:member_remove", "post", kwargs=lambda o: {"membership_id": o["their_member"].pk}),
]


def _every_account_page() -> list[Page]:
    """Every URL in the project with an ``account_slug``, whichever app it belongs to, with
    placeholder values for its other parameters (the tenancy check answers before they matter)."""
    pages: list[Page] = []

    def walk(patterns, namespace: str = "") -> None:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace)
            elif isinstance(pattern, URLPattern) and "account_slug" in pattern.pattern.converters:
                placeholders = {
                    name: 1 if isinstance(converter, IntConverter) else "x"
                    for name, converter in pattern.pattern.converters.items()
                    if name != "account_slug"
                }
                pages.append(Page(f"{namespace}{pattern.name}", kwargs=lambda o, p=placeholders: p))

    walk(get_resolver().url_patterns)
    return pages


def _answer(client, page: Page, account, objects):
    """GET the page, or POST to it when it only takes POST."""
    url = page.url(account, objects)
    response = client.get(url)
    return client.post(url) if response.status_code == 405 else response


def test_the_project_has_account_pages_and_mine_are_among_them():
    names = {page.url_name for page in _every_account_page()}

    assert {page.url_name for page in TENANT_PAGES} <= names


@pytest.mark.parametrize("page", _every_account_page(), ids=str)
def test_no_account_page_of_any_app_opens_for_an_outsider(page, client, account, other_account, make_member, objects):
    client.force_login(make_member(other_account, Role.OWNER))

    assert _answer(client, page, account, objects).status_code == 404


@pytest.mark.parametrize("page", _every_account_page(), ids=str)
def test_no_account_page_of_any_app_opens_for_an_anonymous_visitor(page, client, account, objects):
    response = _answer(client, page, account, objects)

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")


@pytest.mark.parametrize("page", TENANT_PAGES, ids=str)
def test_another_accounts_page_is_not_found(page, login, account, other_account, make_member, objects):
    outsider = make_member(other_account, Role.OWNER)

    response = getattr(login(outsider), page.method)(page.url(account, objects))

    assert response.status_code == 404


@pytest.mark.parametrize("page", TENANT_PAGES, ids=str)
def test_account_pages_send_anonymous_visitors_to_sign_in(page, client, account, objects):
    response = getattr(client, page.method)(page.url(account, objects))

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")


@pytest.mark.parametrize("page", [page for page in TENANT_PAGES if page.checked_for_members], ids=str)
def test_the_accounts_own_owner_is_not_turned_away(page, login, account, owner, objects):
    response = getattr(login(owner), page.method)(page.url(account, objects))

    assert response.status_code not in (403, 404)


@pytest.mark.parametrize("page", OBJECT_PAGES, ids=str)
def test_another_accounts_object_is_not_found_on_my_accounts_page(page, login, account, owner, objects):
    response = getattr(login(owner), page.method)(page.url(account, objects))

    assert response.status_code == 404
    objects["their_key"].refresh_from_db()
    assert objects["their_key"].is_active
    assert Membership.objects.filter(pk=objects["their_member"].pk, role=Role.VIEWER).exists()


# --- roles ---------------------------------------------------------------------------------------


ROLE_MATRIX = [
    # (url name, method, role, expected status)
    ("crmsync:overview", "get", Role.VIEWER, 200),
    ("crmsync:api_keys", "get", Role.VIEWER, 200),
    ("crmsync:api_key_create", "get", Role.VIEWER, 403),
    ("crmsync:api_key_create", "post", Role.VIEWER, 403),
    ("crmsync:api_key_create", "get", Role.ADMIN, 200),
    ("crmsync:api_key_revoke", "get", Role.VIEWER, 403),
    ("crmsync:api_key_revoke", "post", Role.VIEWER, 403),
    ("crmsync:api_key_revoke", "get", Role.ADMIN, 200),
    ("crmsync:account_settings", "get", Role.VIEWER, 200),
    ("crmsync:account_settings", "post", Role.VIEWER, 403),
    ("crmsync:members", "get", Role.VIEWER, 200),
    ("crmsync:member_invite", "post", Role.VIEWER, 403),
    ("crmsync:member_invite", "post", Role.ADMIN, 403),
    ("crmsync:member_role", "post", Role.ADMIN, 403),
    ("crmsync:member_remove", "get", Role.ADMIN, 403),
    ("crmsync:member_remove", "post", Role.ADMIN, 403),
    ("crmsync:audit_log", "get", Role.VIEWER, 403),
    ("crmsync:audit_log", "get", Role.ADMIN, 200),
]


@pytest.mark.parametrize(("url_name", "method", "role", "expected"), ROLE_MATRIX)
def test_each_role_may_do_what_its_rank_allows(url_name, method, role, expected, login, account, make_member, objects):
    kwargs = {"account_slug": account.slug}
    if "revoke" in url_name:
        kwargs["key_id"] = objects["key"].pk
    if url_name in ("crmsync:member_role", "crmsync:member_remove"):
        kwargs["membership_id"] = objects["member"].pk
    data = {"role": Role.OWNER, "email": "x@example.com", "require_consent": "on"} if method == "post" else None
    client = login(make_member(account, role))

    response = getattr(client, method)(reverse(url_name, kwargs=kwargs), data)

    assert response.status_code == expected
    objects["key"].refresh_from_db()
    objects["member"].refresh_from_db()
    account.refresh_from_db()
    if expected == 403:
        assert objects["key"].is_active
        assert objects["member"].role == Role.VIEWER
        assert not account.require_consent


def test_a_viewer_sees_keys_and_settings_without_any_way_to_change_them(login, account, make_member, objects):
    client = login(make_member(account, Role.VIEWER))

    keys_page = client.get(reverse("crmsync:api_keys", kwargs={"account_slug": account.slug})).content.decode()
    settings_page = client.get(reverse("crmsync:account_settings", kwargs={"account_slug": account.slug}))

    assert "acme key" in keys_page
    assert "Create key" not in keys_page and "Revoke" not in keys_page
    assert 'method="post"' not in settings_page.content.decode()
    assert all(bound.field.disabled for bound in settings_page.context["form"])


def test_navigation_shows_each_member_only_the_pages_of_their_role(login, account, make_member):
    viewer_page = login(make_member(account, Role.VIEWER)).get(f"/a/{account.slug}/").content.decode()
    admin_page = login(make_member(account, Role.ADMIN)).get(f"/a/{account.slug}/").content.decode()

    audit_url = reverse("crmsync:audit_log", kwargs={"account_slug": account.slug})
    assert f'href="{audit_url}"' not in viewer_page
    assert f'href="{audit_url}"' in admin_page
    for url_name in ("crmsync:api_keys", "crmsync:members", "crmsync:account_settings"):
        assert reverse(url_name, kwargs={"account_slug": account.slug}) in viewer_page
    assert 'aria-current="page"' in viewer_page


# --- /settings/ and the overview -----------------------------------------------------------------


def test_settings_home_sends_a_member_to_their_first_accounts_overview(login, account, owner):
    response = login(owner).get("/settings/")

    assert response.status_code == 302
    assert response["Location"] == f"/a/{account.slug}/"


def test_settings_home_tells_a_user_without_an_account_so(login, db):
    user = get_user_model().objects.create_user("loner@example.com", "loner@example.com", PASSWORD)

    response = login(user).get("/settings/")

    assert response.status_code == 200
    assert "You do not belong to an account yet" in response.content.decode()


def test_overview_counts_the_last_day_and_week(login, account, other_account, owner):
    now = timezone.now()
    capsule = Capsule.objects.create(account=account, external_id="cap")
    for n, age in enumerate([timedelta(hours=1), timedelta(days=3), timedelta(days=30)]):
        prospect = Prospect.objects.create(account=account, email=f"p{n}@example.com", last_event_at=now - age)
        Event.objects.create(
            account=account,
            external_id=f"e{n}",
            type="capsule_viewed",
            occurred_at=now - age,
            received_at=now - age,
            capsule=capsule,
            prospect=prospect,
        )
    Prospect.objects.create(account=other_account, email="else@example.com", last_event_at=now)
    ApiKey.issue(account, "live")
    ApiKey.issue(account, "old")[0].revoke()

    response = login(owner).get(f"/a/{account.slug}/")

    assert response.status_code == 200
    assert response.context["prospects"] == {"day": 1, "week": 2}
    assert response.context["events"] == {"day": 1, "week": 2}
    assert response.context["active_api_keys"] == 1
    assert "You are owner of this account" in response.content.decode()


def test_the_account_switcher_lists_every_account_of_the_user(login, account, other_account, owner):
    Membership.objects.create(account=other_account, user=owner, role=Role.VIEWER)

    page = login(owner).get(f"/a/{account.slug}/").content.decode()

    assert 'class="switcher"' in page
    assert f'href="/a/{other_account.slug}/"' in page


def test_a_single_account_user_has_no_switcher(login, account, owner):
    assert 'class="switcher"' not in login(owner).get(f"/a/{account.slug}/").content.decode()


# --- API keys ------------------------------------------------------------------------------------


def test_a_new_api_key_is_shown_once_and_authenticates(login, account, make_member, caplog):
    admin_user = make_member(account, Role.ADMIN)
    client = login(admin_user)
    create_url = reverse("crmsync:api_key_create", kwargs={"account_slug": account.slug})

    with caplog.at_level(logging.DEBUG):
        response = client.post(create_url, {"name": "Production capsules"})

    assert response.status_code == 200
    raw_key = re.search(r'id="raw-key"[^>]*>(csk_[^<]+)</textarea>', response.content.decode()).group(1)
    assert "no-store" in response["Cache-Control"]
    key = ApiKey.authenticate(raw_key)
    assert key is not None and key.account == account and key.name == "Production capsules"
    assert key.created_by == admin_user
    assert raw_key not in caplog.text
    # Never again: not on the list, not on the create page, not in a message, not in the audit log.
    for url in (reverse("crmsync:api_keys", kwargs={"account_slug": account.slug}), create_url):
        assert raw_key not in client.get(url).content.decode()
    entry = AuditEntry.objects.get(action="api_key.created")
    assert raw_key not in str(entry.changes) and raw_key not in entry.object_repr
    assert entry.changes == {"name": "Production capsules", "prefix": key.prefix}


def test_an_api_key_name_is_required(login, account, make_member):
    response = login(make_member(account, Role.ADMIN)).post(
        reverse("crmsync:api_key_create", kwargs={"account_slug": account.slug}), {"name": "  "}
    )

    assert response.status_code == 200
    assert not ApiKey.objects.exists()
    assert 'id="id_name_error"' in response.content.decode()


def test_revoking_a_key_is_confirmed_and_then_it_no_longer_authenticates(login, account, make_member):
    key, raw_key = ApiKey.issue(account, "to revoke")
    client = login(make_member(account, Role.ADMIN))
    url = reverse("crmsync:api_key_revoke", kwargs={"account_slug": account.slug, "key_id": key.pk})

    confirm_page = client.get(url)
    assert confirm_page.status_code == 200
    assert "Revoke key" in confirm_page.content.decode()
    assert ApiKey.authenticate(raw_key) == key  # asking is not doing

    response = client.post(url)

    assert response.status_code == 302
    assert ApiKey.authenticate(raw_key) is None
    entry = AuditEntry.objects.get(action="api_key.revoked")
    assert entry.object_id == str(key.pk) and entry.account == account


# --- account settings ----------------------------------------------------------------------------


def test_an_admin_changes_settings_and_the_audit_log_keeps_before_and_after(login, account, make_member):
    admin_user = make_member(account, Role.ADMIN)
    client = login(admin_user)

    response = client.post(
        reverse("crmsync:account_settings", kwargs={"account_slug": account.slug}),
        {"require_consent": "on", "notification_email": "ops@acme.example"},
        REMOTE_ADDR="203.0.113.9",
        HTTP_USER_AGENT="pytest-browser",
    )

    assert response.status_code == 302
    account.refresh_from_db()
    assert account.require_consent is True and account.notification_email == "ops@acme.example"
    entry = AuditEntry.objects.get(action="account.settings_changed")
    assert entry.actor == admin_user and entry.actor_label == admin_user.username
    assert entry.ip_address == "203.0.113.9" and entry.user_agent == "pytest-browser"
    assert entry.account == account
    assert entry.changes == {
        "require_consent": {"before": False, "after": True},
        "notification_email": {"before": "", "after": "ops@acme.example"},
    }


def test_an_invalid_notification_address_is_refused_beside_its_field(login, account, owner):
    response = login(owner).post(
        reverse("crmsync:account_settings", kwargs={"account_slug": account.slug}),
        {"notification_email": "not an address"},
    )

    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="id_notification_email_error"' in html
    assert 'aria-describedby="id_notification_email_helptext id_notification_email_error"' in html
    assert not AuditEntry.objects.exists()


def test_saving_unchanged_settings_writes_no_audit_entry(login, account, owner):
    login(owner).post(reverse("crmsync:account_settings", kwargs={"account_slug": account.slug}), {})

    assert not AuditEntry.objects.exists()


# --- members -------------------------------------------------------------------------------------


def _members_url(account, name: str = "crmsync:members", **kwargs) -> str:
    return reverse(name, kwargs={"account_slug": account.slug, **kwargs})


def test_an_owner_adds_an_existing_user_by_email(login, account, owner, db):
    user = get_user_model().objects.create_user("newbie", "Newbie@Example.com", PASSWORD)

    response = login(owner).post(
        _members_url(account, "crmsync:member_invite"), {"email": "newbie@example.com", "role": Role.ADMIN}
    )

    assert response.status_code == 302
    assert Membership.objects.get(account=account, user=user).role == Role.ADMIN
    entry = AuditEntry.objects.get(action="membership.added")
    assert entry.actor == owner and entry.changes == {"role": "admin"}


@pytest.mark.parametrize("email", ["nobody@example.com", "owner-acme-corp@example.com"])
def test_adding_an_unknown_user_or_an_existing_member_is_refused(login, account, owner, email):
    response = login(owner).post(_members_url(account, "crmsync:member_invite"), {"email": email, "role": "viewer"})

    assert response.status_code == 400
    assert 'id="id_email_error"' in response.content.decode()
    assert Membership.objects.filter(account=account).count() == 1


def test_an_owner_changes_a_role_and_it_is_audited(login, account, owner, objects):
    member = objects["member"]

    login(owner).post(_members_url(account, "crmsync:member_role", membership_id=member.pk), {"role": "admin"})

    member.refresh_from_db()
    assert member.role == Role.ADMIN
    entry = AuditEntry.objects.get(action="membership.role_changed")
    assert entry.changes == {"role": {"before": "viewer", "after": "admin"}}
    assert entry.actor == owner


def test_the_last_owner_can_be_neither_demoted_nor_removed(login, account, owner):
    membership = Membership.objects.get(user=owner)
    client = login(owner)

    demoted = client.post(_members_url(account, "crmsync:member_role", membership_id=membership.pk), {"role": "admin"})
    removed = client.post(_members_url(account, "crmsync:member_remove", membership_id=membership.pk))

    membership.refresh_from_db()
    assert membership.role == Role.OWNER
    assert demoted.status_code == removed.status_code == 302
    messages = [str(m) for m in client.get(_members_url(account)).context["messages"]]
    assert any("at least one owner" in message for message in messages)
    assert not AuditEntry.objects.exists()


def test_one_of_two_owners_may_leave(login, account, owner, make_member):
    make_member(account, Role.OWNER, email="second-owner@example.com")
    membership = Membership.objects.get(user=owner)

    response = login(owner).post(_members_url(account, "crmsync:member_remove", membership_id=membership.pk))

    assert response.status_code == 302 and response["Location"] == "/settings/"
    assert not Membership.objects.filter(pk=membership.pk).exists()
    assert AuditEntry.objects.get(action="membership.removed").object_id == str(membership.pk)


def test_removing_a_member_is_confirmed_first(login, account, owner, objects):
    url = _members_url(account, "crmsync:member_remove", membership_id=objects["member"].pk)
    client = login(owner)

    assert "Remove member" in client.get(url).content.decode()
    assert Membership.objects.filter(pk=objects["member"].pk).exists()
    client.post(url)
    assert not Membership.objects.filter(pk=objects["member"].pk).exists()


# --- audit log page -------------------------------------------------------------------------------


def test_the_audit_log_shows_only_this_accounts_entries_paginated(login, account, other_account, make_member):
    from crmsync import audit

    for n in range(55):
        audit.record("test.thing", account=account, actor_label=f"actor-{n}")
    audit.record("test.secret", account=other_account, actor_label="other-actor")
    client = login(make_member(account, Role.ADMIN))

    first = client.get(_members_url(account, "crmsync:audit_log"))
    second = client.get(_members_url(account, "crmsync:audit_log") + "?page=2")

    assert len(first.context["page"].object_list) == 50
    assert len(second.context["page"].object_list) == 5
    assert "actor-54" in first.content.decode() and "actor-0" in second.content.decode()
    assert "other-actor" not in first.content.decode() + second.content.decode()


# --- CSRF ---------------------------------------------------------------------------------------


CSRF_FORMS = [
    ("crmsync:api_key_create", lambda o: {}, {"name": "k"}),
    ("crmsync:api_key_revoke", lambda o: {"key_id": o["key"].pk}, {}),
    ("crmsync:account_settings", lambda o: {}, {"require_consent": "on"}),
    ("crmsync:member_role", lambda o: {"membership_id": o["member"].pk}, {"role": "admin"}),
    ("crmsync:member_remove", lambda o: {"membership_id": o["member"].pk}, {}),
    ("crmsync:member_invite", lambda o: {}, {"email": "vic@other.example", "role": "viewer"}),
]


@pytest.mark.parametrize(("url_name", "kwargs", "data"), CSRF_FORMS, ids=[name for name, _k, _d in CSRF_FORMS])
def test_forms_refuse_a_post_without_the_csrf_token(url_name, kwargs, data, account, owner, objects):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    url = reverse(url_name, kwargs={"account_slug": account.slug, **kwargs(objects)})

    refused = client.post(url, data)

    assert refused.status_code == 403
    assert not AuditEntry.objects.exists()
    client.get(reverse("crmsync:members", kwargs={"account_slug": account.slug}))  # a form page sets the cookie
    accepted = client.post(url, {**data, "csrfmiddlewaretoken": client.cookies["csrftoken"].value})
    assert accepted.status_code in (200, 302)
    assert AuditEntry.objects.exists()


# --- sign-in (allauth) ------------------------------------------------------------------------------


def test_signing_in_with_email_and_password_lands_on_the_account(client, account, owner):
    page = client.get("/accounts/login/")
    assert page.status_code == 200
    assert_every_field_is_labelled(page.content.decode())

    response = client.post("/accounts/login/", {"login": owner.email, "password": PASSWORD}, follow=True)

    assert response.redirect_chain[-1][0] == f"/a/{account.slug}/"
    assert response.context["user"] == owner


def test_a_wrong_password_does_not_sign_in(client, owner):
    response = client.post("/accounts/login/", {"login": owner.email, "password": "wrong password"})

    assert response.status_code == 200
    assert not response.context["user"].is_authenticated
    assert "not correct" in response.content.decode()
    assert client.get("/settings/").status_code == 302


def test_sign_up_is_closed_by_default(client, db):
    users_before = get_user_model().objects.count()

    page = client.get("/accounts/signup/")
    client.post(
        "/accounts/signup/", {"email": "new@example.com", "password1": "Xk29!long-pass", "password2": "Xk29!long-pass"}
    )

    assert "Sign-up is closed" in page.content.decode()
    assert get_user_model().objects.count() == users_before
    assert "sign up" not in client.get("/accounts/login/").content.decode().lower()


@pytest.mark.parametrize(
    ("path", "signed_in", "has_fields"),
    [
        ("/accounts/password/reset/", False, True),
        ("/accounts/email/", True, True),
        ("/accounts/password/change/", True, True),
        ("/accounts/logout/", True, False),
    ],
)
def test_allauth_pages_share_the_site_layout(client, owner, path, signed_in, has_fields):
    if signed_in:
        client.force_login(owner)

    html = client.get(path).content.decode()

    assert "/static/css/app.css" in html
    assert 'id="main"' in html
    assert_headings_in_order(html)
    if has_fields:
        assert_every_field_is_labelled(html)


# --- layout and accessibility -----------------------------------------------------------------------


class _FormAudit(HTMLParser):
    """Collects the ids of form controls, the ``for`` of labels and the heading levels."""

    def __init__(self) -> None:
        super().__init__()
        self.controls: list[str | None] = []
        self.label_for: set[str] = set()
        self.headings: list[int] = []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "label" and attributes.get("for"):
            self.label_for.add(attributes["for"])
        elif tag in ("select", "textarea") or (
            tag == "input" and attributes.get("type", "text") not in ("hidden", "submit", "button")
        ):
            self.controls.append(attributes.get("id"))
        elif re.fullmatch(r"h[1-6]", tag):
            self.headings.append(int(tag[1]))


def assert_every_field_is_labelled(html: str) -> None:
    parsed = _FormAudit()
    parsed.feed(html)
    assert parsed.controls, "the page has no form fields to check"
    unlabelled = [control for control in parsed.controls if control not in parsed.label_for]
    assert not unlabelled, f"form fields without <label for=…>: {unlabelled}"
    for control in parsed.controls:
        assert f'<label for="{control}"' in html


def assert_headings_in_order(html: str) -> None:
    parsed = _FormAudit()
    parsed.feed(html)
    assert parsed.headings and parsed.headings[0] == 1
    assert parsed.headings.count(1) == 1
    for previous, current in zip(parsed.headings, parsed.headings[1:], strict=False):
        assert current <= previous + 1, f"heading levels jump: {parsed.headings}"


FORM_PAGES = [
    ("crmsync:api_keys", lambda o: {}),
    ("crmsync:api_key_create", lambda o: {}),
    ("crmsync:account_settings", lambda o: {}),
    ("crmsync:members", lambda o: {}),
]


@pytest.mark.parametrize(("url_name", "kwargs"), FORM_PAGES, ids=[name for name, _k in FORM_PAGES])
def test_owner_forms_label_every_field(url_name, kwargs, login, account, owner, objects):
    html = (
        login(owner).get(reverse(url_name, kwargs={"account_slug": account.slug, **kwargs(objects)})).content.decode()
    )

    assert_every_field_is_labelled(html)
    assert_headings_in_order(html)


@pytest.mark.parametrize(
    "url_name",
    ["crmsync:overview", "crmsync:api_keys", "crmsync:members", "crmsync:audit_log", "crmsync:account_settings"],
)
def test_pages_have_one_h1_headings_in_order_and_a_skip_link(url_name, login, account, owner):
    html = login(owner).get(reverse(url_name, kwargs={"account_slug": account.slug})).content.decode()

    assert_headings_in_order(html)
    assert '<a class="skip-link" href="#main">' in html
    assert '<html lang="en">' in html and 'name="viewport"' in html


def test_messages_are_announced_with_status_or_alert_roles(login, account, owner, objects):
    client = login(owner)
    client.post(_members_url(account, "crmsync:member_role", membership_id=objects["member"].pk), {"role": "admin"})
    ok_page = client.get(_members_url(account)).content.decode()
    client.post(_members_url(account, "crmsync:member_remove", membership_id=Membership.objects.get(user=owner).pk))
    error_page = client.get(_members_url(account)).content.decode()

    assert re.search(r'class="message message--success" role="status"', ok_page)
    assert re.search(r'class="message message--error" role="alert"', error_page)


def test_the_stylesheet_is_served(client, db):
    response = client.get("/static/css/app.css")

    assert response.status_code == 200
    css = b"".join(response.streaming_content).decode() if response.streaming else response.content.decode()
    assert ":focus-visible" in css and "@media (max-width:" in css


def test_a_role_too_low_gets_a_403_page_in_the_layout(login, account, make_member):
    response = login(make_member(account, Role.VIEWER)).get(_members_url(account, "crmsync:audit_log"))

    assert response.status_code == 403
    html = response.content.decode()
    assert "Your role does not allow this" in html and "You are viewer of Acme Corp" in html


def test_the_404_page_says_nothing_about_the_account(login, account, other_account, make_member):
    response = login(make_member(other_account, Role.OWNER)).get(f"/a/{account.slug}/")

    assert response.status_code == 404
    assert "Page not found" in response.content.decode()
    assert account.name not in response.content.decode()


# --- overview panels (the extension point other apps use) ----------------------------------------------


@pytest.fixture
def panel_template(settings, tmp_path):
    (tmp_path / "test_panel.html").write_text('<section class="test-panel">PANEL {{ data.answer }}</section>')
    settings.TEMPLATES = [{**settings.TEMPLATES[0], "DIRS": [*settings.TEMPLATES[0]["DIRS"], tmp_path]}]
    yield "test_panel.html"
    from crmsync.views import overview

    overview._PANELS.pop("test_panel.html", None)


def test_registered_overview_panels_render_for_the_roles_they_name(panel_template, login, account, make_member):
    from crmsync.views.overview import register_panel

    seen_accounts = []

    def context(request):
        seen_accounts.append(request.account)
        return {"answer": 42}

    register_panel(panel_template, order=5, context=context, min_role=Role.ADMIN)

    admin_page = login(make_member(account, Role.ADMIN)).get(f"/a/{account.slug}/").content.decode()
    viewer_page = login(make_member(account, Role.VIEWER)).get(f"/a/{account.slug}/").content.decode()

    assert "PANEL 42" in admin_page
    assert "PANEL" not in viewer_page
    assert seen_accounts == [account]


def test_active_keys_are_listed_before_revoked_ones(login, account, owner):
    old, _raw = ApiKey.issue(account, "revoked one")
    old.revoke()
    ApiKey.issue(account, "active one")
    ApiKey.issue(account, "another active one")

    keys = list(login(owner).get(reverse("crmsync:api_keys", kwargs={"account_slug": account.slug})).context["keys"])

    assert [key.name for key in keys] == ["another active one", "active one", "revoked one"]


def test_members_page_lists_this_accounts_members_even_for_a_user_of_several_accounts(
    login, account, other_account, owner, objects
):
    Membership.objects.create(account=other_account, user=owner, role=Role.ADMIN)

    response = login(owner).get(_members_url(account))

    html = response.content.decode()
    assert "vic@acme.example" in html
    assert "vic@other.example" not in html
    assert html.count("(you)") == 1
