"""Owner pages for connecting a CRM: OAuth 2.0 (with state and PKCE), tokens, and disconnecting."""

from __future__ import annotations

import time

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from crmsync.models import Membership
from crmsync.tenancy import account_view, get_for_account
from integrations import oauth
from integrations.connecting import connect, disconnect
from integrations.connector import TokenSet
from integrations.errors import CrmError, OAuthError
from integrations.models import AuthKind, Connection
from integrations.registry import AUTH_OAUTH, get_provider, providers

# An authorization must come back within this many seconds, and only once.
OAUTH_FLOW_TTL = 600
SESSION_KEY = "oauth_flows"


def redirect_uri_for(provider: str) -> str:
    # Exact, fixed per provider: register this URI in the CRM's app settings (docs/crms/<name>.md).
    return settings.PUBLIC_BASE_URL + reverse("integrations:oauth_callback", kwargs={"provider": provider})


class TokenConnectForm(forms.Form):
    """The token, an optional API URL, and the provider's extra non-secret fields (e.g. a user e-mail)."""

    token = forms.CharField(
        label="Access token or API key", widget=forms.PasswordInput(render_value=False), max_length=2000, strip=True
    )
    api_url = forms.URLField(
        label="API URL (optional)",
        required=False,
        max_length=300,
        assume_scheme="https",
        help_text="Only for CRMs whose API lives on your own host (e.g. a Salesforce instance URL).",
    )

    def __init__(self, *args, extra_fields: tuple[tuple[str, str], ...] = (), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.extra_names = [name for name, _label in extra_fields]
        for name, label in extra_fields:
            self.fields[name] = forms.CharField(label=label, max_length=300)

    def extra_values(self) -> dict[str, str]:
        return {name: self.cleaned_data[name] for name in self.extra_names}


def _page(request: HttpRequest, token_forms: dict | None = None, status: int = 200) -> HttpResponse:
    account = request.account
    live = list(Connection.objects.filter(account=account).live().order_by("provider"))
    connected = {c.provider for c in live}
    offers = []
    for spec in providers().values():
        offers.append(
            {
                "spec": spec,
                "connected": spec.name in connected,
                "oauth": spec.oauth_configured,
                "token": any(kind != AUTH_OAUTH for kind in spec.auth_kinds),
                "form": (token_forms or {}).get(spec.name)
                or TokenConnectForm(prefix=spec.name, extra_fields=spec.token_extra_fields),
                "redirect_uri": redirect_uri_for(spec.name),
            }
        )
    return render(request, "integrations/connections.html", {"connections": live, "offers": offers}, status=status)


@require_GET
@account_view()
def connections(request: HttpRequest) -> HttpResponse:
    return _page(request)


@require_POST
@account_view(min_role="admin")
def start_oauth(request: HttpRequest, provider: str) -> HttpResponse:
    spec = get_provider(provider) if provider in providers() else None
    if spec is None:
        return _page(request, status=404)
    try:
        auth = oauth.build_authorization(spec, redirect_uri_for(provider))
    except oauth.OAuthNotConfigured as exc:
        messages.error(request, str(exc))
        return redirect("integrations:connections", account_slug=request.account.slug)
    flows = {
        k: v for k, v in request.session.get(SESSION_KEY, {}).items() if v["started"] > time.time() - OAUTH_FLOW_TTL
    }
    flows[auth.state] = {
        "provider": provider,
        "account": request.account.pk,
        "verifier": auth.code_verifier,
        "started": time.time(),
    }
    request.session[SESSION_KEY] = flows
    return redirect(auth.url)


@require_GET
@login_required
def oauth_callback(request: HttpRequest, provider: str) -> HttpResponse:
    flows = request.session.get(SESSION_KEY, {})
    state = request.GET.get("state", "")
    flow = flows.pop(state, None) if state else None
    request.session[SESSION_KEY] = flows  # single use: the state is gone whatever happens next
    if flow is None or flow["provider"] != provider or flow["started"] < time.time() - OAUTH_FLOW_TTL:
        return render(
            request,
            "integrations/oauth_problem.html",
            {
                "problem": "This sign-in answer does not match a connection you started in this browser, or it was "
                "already used or has expired. Start the connection again from the CRM page.",
            },
            status=400,
        )
    membership = Membership.objects.filter(account_id=flow["account"], user=request.user).select_related("account")
    membership = membership.first()
    if membership is None or not membership.has_role("admin"):
        return render(
            request,
            "integrations/oauth_problem.html",
            {"problem": "You can no longer manage this account's CRM connection."},
            status=403,
        )
    account = membership.account
    spec = get_provider(provider)
    back = redirect("integrations:connections", account_slug=account.slug)
    if request.GET.get("error"):
        reason = request.GET.get("error_description") or request.GET["error"]
        messages.error(request, f"{spec.label} did not grant access: {reason[:200]}. Nothing was connected.")
        return back
    code = request.GET.get("code", "")
    if not code:
        messages.error(request, f"{spec.label} answered without an authorization code. Nothing was connected.")
        return back
    try:
        tokens = oauth.exchange_code(spec, code, redirect_uri_for(provider), flow["verifier"])
        connection = connect(account, provider, tokens, auth_kind=AuthKind.OAUTH, request=request)
    except OAuthError as exc:
        messages.error(request, f"{spec.label} refused the connection ({exc}). Nothing was connected.")
        return back
    except CrmError as exc:
        messages.error(request, f"{spec.label} could not be reached to finish connecting: {exc}")
        return back
    messages.success(request, f"Connected to {connection.crm_account_name or spec.label}.")
    return back


@require_POST
@account_view(min_role="admin")
def connect_with_token(request: HttpRequest, provider: str) -> HttpResponse:
    if provider not in providers():
        return _page(request, status=404)
    spec = get_provider(provider)
    form = TokenConnectForm(request.POST, prefix=provider, extra_fields=spec.token_extra_fields)
    if not form.is_valid():
        return _page(request, {provider: form}, status=400)
    kind = next((k for k in spec.auth_kinds if k != AUTH_OAUTH), None)
    if kind is None:
        form.add_error(None, f"{spec.label} connects only through OAuth.")
        return _page(request, {provider: form}, status=400)
    tokens = TokenSet(
        access_token=form.cleaned_data["token"],
        api_base_url=form.cleaned_data["api_url"] or None,
        extra=form.extra_values(),
    )
    try:
        connection = connect(request.account, provider, tokens, auth_kind=kind, request=request)
    except CrmError as exc:
        form.add_error("token", f"{spec.label} refused this token: {exc}")
        return _page(request, {provider: form}, status=400)
    messages.success(request, f"Connected to {connection.crm_account_name or spec.label}.")
    return redirect("integrations:connections", account_slug=request.account.slug)


@account_view(min_role="admin")
def disconnect_connection(request: HttpRequest, connection_id: int) -> HttpResponse:
    connection = get_for_account(Connection.objects.live(), request, pk=connection_id)
    if request.method != "POST":
        return render(request, "integrations/disconnect_confirm.html", {"connection": connection})
    revoked = disconnect(connection, request=request)
    note = " and the CRM revoked our access" if revoked else ""
    messages.success(request, f"Disconnected {connection.spec.label}{note}. Stored credentials were deleted.")
    return redirect("integrations:connections", account_slug=request.account.slug)
