"""URLs of the owner settings pages. Every page under /a/<account_slug>/ is an account_view."""

from django.urls import path
from django.views.generic import RedirectView

from crmsync.views import account_settings, api_keys, audit_log, home, members, overview, samples

app_name = "crmsync"

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="crmsync:settings_home"), name="root"),
    path("settings/", home.settings_home, name="settings_home"),
    path("a/<slug:account_slug>/", overview.overview, name="overview"),
    path("a/<slug:account_slug>/keys/", api_keys.api_keys, name="api_keys"),
    path("a/<slug:account_slug>/keys/new/", api_keys.api_key_create, name="api_key_create"),
    path("a/<slug:account_slug>/keys/<int:key_id>/revoke/", api_keys.api_key_revoke, name="api_key_revoke"),
    path("a/<slug:account_slug>/settings/", account_settings.account_settings, name="account_settings"),
    path("a/<slug:account_slug>/members/", members.members, name="members"),
    path("a/<slug:account_slug>/members/invite/", members.member_invite, name="member_invite"),
    path("a/<slug:account_slug>/members/<int:membership_id>/role/", members.member_role, name="member_role"),
    path("a/<slug:account_slug>/members/<int:membership_id>/remove/", members.member_remove, name="member_remove"),
    path("a/<slug:account_slug>/audit/", audit_log.audit_log, name="audit_log"),
    path("a/<slug:account_slug>/samples/", samples.send_samples, name="send_samples"),
]
