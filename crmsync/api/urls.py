"""The capsule platform's API (django-ninja), mounted at /api/v1/; schema at /api/v1/openapi.json."""

from __future__ import annotations

from typing import Any

from django.urls import path
from ninja import NinjaAPI

from crmsync.api import events, prospects
from crmsync.api.auth import ApiKeyAuth
from crmsync.api.errors import install_handlers


class CapsuleApi(NinjaAPI):
    def get_openapi_schema(self, **kwargs: Any) -> dict[str, Any]:
        schema = super().get_openapi_schema(**kwargs)
        # The events body is validated by our own parser; its schemas are declared here (see events.py).
        schema["components"]["schemas"].update(events.REQUEST_COMPONENTS)
        return schema


api = CapsuleApi(
    title="Capsule CRM Sync API",
    version="1",
    description="Ingest capsule interaction events and read prospects. "
    "Authenticate with `Authorization: Bearer <API key>` (keys are issued on the account's settings pages).",
    urls_namespace="api-v1",
    auth=ApiKeyAuth(),
)
install_handlers(api)
api.add_router("", events.router)
api.add_router("", prospects.router)
api.add_router("", "integrations.inbound.personalization.router")
api.add_router("/hooks", "integrations.webhooks_out.api.router")

urlpatterns = [path("", api.urls)]
