"""The owner pages of outgoing webhooks. Included by integrations/urls.py under the "integrations" namespace."""

from django.urls import path

from integrations.webhooks_out import views

urlpatterns = [
    path("a/<slug:account_slug>/webhooks/", views.webhook_list, name="webhooks"),
    path("a/<slug:account_slug>/webhooks/new/", views.webhook_create, name="webhook_create"),
    path("a/<slug:account_slug>/webhooks/<int:subscription_id>/", views.webhook_detail, name="webhook_detail"),
    path("a/<slug:account_slug>/webhooks/<int:subscription_id>/rotate/", views.webhook_rotate, name="webhook_rotate"),
    path(
        "a/<slug:account_slug>/webhooks/<int:subscription_id>/disable/", views.webhook_disable, name="webhook_disable"
    ),
    path("a/<slug:account_slug>/webhooks/<int:subscription_id>/enable/", views.webhook_enable, name="webhook_enable"),
    path("a/<slug:account_slug>/webhooks/<int:subscription_id>/delete/", views.webhook_delete, name="webhook_delete"),
    path(
        "a/<slug:account_slug>/webhooks/<int:subscription_id>/deliveries/<int:delivery_id>/replay/",
        views.webhook_replay,
        name="webhook_replay",
    ),
]
