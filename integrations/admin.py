from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from crmsync.audit import record
from integrations.connecting import disconnect
from integrations.models import Connection, ConnectionStatus


@admin.register(Connection)
class ConnectionAdmin(admin.ModelAdmin):
    list_display = ("__str__", "account", "provider", "status", "sync_mode", "record_type", "connected_at")
    list_filter = ("provider", "status", "sync_mode", "record_type")
    search_fields = ("account__name", "account__slug", "crm_account_name", "crm_account_id")
    list_select_related = ("account",)
    raw_id_fields = ("account", "created_by")
    # Credentials are never shown or edited here: no access/refresh token or webhook secret.
    fields = (
        "account",
        "provider",
        "auth_kind",
        "status",
        "status_reason",
        "crm_account_id",
        "crm_account_name",
        "crm_user_email",
        "api_base_url",
        "scopes",
        "token_expires_at",
        "record_type",
        "sync_mode",
        "batch_schedule",
        "direction",
        "lead_creation",
        "score_threshold",
        "provider_settings",
        "activated_at",
        "created_by",
        "connected_at",
        "disconnected_at",
    )
    readonly_fields = (
        "provider",
        "auth_kind",
        "crm_account_id",
        "crm_account_name",
        "crm_user_email",
        "api_base_url",
        "scopes",
        "token_expires_at",
        "created_by",
        "connected_at",
        "disconnected_at",
    )
    actions = ("pause", "resume", "disconnect_selected")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # connections are made through OAuth or connect_crm, which verify credentials

    def get_form(self, request: HttpRequest, obj: Connection | None = None, change: bool = False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        field = form.base_fields.get("provider_settings")
        if field is not None and obj is not None:
            declared = obj.spec.connection_settings
            field.help_text = (
                "; ".join(f"{s.name}: {s.help}" for s in declared)
                if declared
                else f"{obj.spec.label} has no per-connection settings."
            )
        return form

    def save_model(self, request, obj, form, change) -> None:
        super().save_model(request, obj, form, change)
        record(
            "connection.changed_by_ops",
            request=request,
            obj=obj,
            changes={name: str(form.cleaned_data.get(name)) for name in form.changed_data},
        )

    @admin.action(description="Pause sync for the selected connections")
    def pause(self, request: HttpRequest, queryset: QuerySet[Connection]) -> None:
        for connection in queryset.filter(status=ConnectionStatus.ACTIVE):
            connection.status = ConnectionStatus.PAUSED
            connection.save(update_fields=["status", "updated_at"])
            record("connection.paused", request=request, obj=connection)
        messages.success(request, "Paused.")

    @admin.action(description="Resume sync for the selected connections")
    def resume(self, request: HttpRequest, queryset: QuerySet[Connection]) -> None:
        for connection in queryset.filter(status=ConnectionStatus.PAUSED):
            connection.status = ConnectionStatus.ACTIVE
            connection.save(update_fields=["status", "updated_at"])
            record("connection.resumed", request=request, obj=connection)
        messages.success(request, "Resumed.")

    @admin.action(description="Disconnect (revoke and wipe credentials)")
    def disconnect_selected(self, request: HttpRequest, queryset: QuerySet[Connection]) -> None:
        for connection in queryset.live():
            disconnect(connection, request=request)
        messages.success(request, "Disconnected.")


# The sync engine's tables (outbox, runs, links) have their own admin module.
from integrations import admin_sync  # noqa: E402, F401
from integrations.webhooks_out import admin as _webhooks_admin  # noqa
