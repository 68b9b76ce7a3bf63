"""Inbound URLs, included by integrations/urls.py under the "integrations" namespace."""

from django.urls import path

from integrations.inbound import receiver, views

urlpatterns = [
    path("webhooks/crm/<str:provider>/<int:connection_id>/", receiver.receive, name="crm_webhook"),
    path("webhooks/crm/<str:provider>/", receiver.receive_app, name="crm_webhook_app"),
    path("a/<slug:account_slug>/sync/conflicts/", views.conflicts, name="sync_conflicts"),
]
