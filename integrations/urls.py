from django.urls import include, path

from integrations.views import connections

app_name = "integrations"

urlpatterns = [
    path("a/<slug:account_slug>/crm/", connections.connections, name="connections"),
    path("a/<slug:account_slug>/crm/<str:provider>/oauth/", connections.start_oauth, name="start_oauth"),
    path("a/<slug:account_slug>/crm/<str:provider>/token/", connections.connect_with_token, name="connect_token"),
    path(
        "a/<slug:account_slug>/crm/connections/<int:connection_id>/disconnect/",
        connections.disconnect_connection,
        name="disconnect",
    ),
    path("oauth/callback/<str:provider>/", connections.oauth_callback, name="oauth_callback"),
    # Sync status, sync settings, failed records (integrations/sync_urls.py).
    path("", include("integrations.sync_urls")),
    path("", include("integrations.inbound.urls")),  # CRM webhooks (CSRF-exempt) and the conflicts page
    path("", include("integrations.webhooks_out.urls")),
]
