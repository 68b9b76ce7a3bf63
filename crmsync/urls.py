from django.contrib import admin
from django.urls import include, path

from crmsync.health import healthz

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("api/v1/", include("crmsync.api.urls")),
    path("", include("crmsync.views.urls")),
    path("", include("integrations.urls", namespace="integrations")),
    path("", include("mapping.urls", namespace="mapping")),
    path("", include("scoring.urls", namespace="scoring")),
    path("", include("scoring.triggers.urls", namespace="triggers")),
]
