"""Sync status, sync settings and failed records: the owner pages of the sync engine.

Included by integrations/urls.py under the "integrations" namespace.
"""

from django.urls import path

from integrations.views import sync_failed, sync_settings, sync_status

urlpatterns = [
    path("a/<slug:account_slug>/sync/", sync_status.sync_status, name="sync_status"),
    path("a/<slug:account_slug>/sync/now/<int:connection_id>/", sync_status.sync_now, name="sync_now"),
    path("a/<slug:account_slug>/sync/runs/<int:run_id>/progress/", sync_status.run_progress, name="sync_run_progress"),
    path("a/<slug:account_slug>/sync/settings/<int:connection_id>/", sync_settings.sync_settings, name="sync_settings"),
    path("a/<slug:account_slug>/sync/failed/", sync_failed.failed_records, name="sync_failed"),
    path("a/<slug:account_slug>/sync/failed/retry-all/", sync_failed.retry_all, name="sync_retry_all"),
    path("a/<slug:account_slug>/sync/items/<int:item_id>/retry/", sync_failed.retry_item, name="sync_item_retry"),
    path("a/<slug:account_slug>/sync/items/<int:item_id>/skip/", sync_failed.skip_item, name="sync_item_skip"),
]
