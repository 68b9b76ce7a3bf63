"""The ops admin of outgoing webhooks: subscriptions (never their secrets) and the delivery log.

Rows are written by the system and by owners; ops look, and act through audited actions: turn a
subscription off or on, replay deliveries, retry failed ones now. Change lists are built for
large tables: no full counts, joins selected up front, filters with fixed choices.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from crmsync.admin_support import LargeTableAdminMixin, ReadOnlyAdminMixin
from integrations.models import DeliveryState, WebhookDelivery, WebhookSubscription
from integrations.webhooks_out import catalogue, delivery, subscriptions

# Replaying re-sends messages to customers' receivers: keep one click to a readable number.
MAX_RESEND = 500


class WebhookActionPermissionMixin:
    """Actions change what is sent, so they need the right to change subscriptions; rows stay read-only."""

    def has_webhook_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("integrations.change_webhooksubscription")


@admin.register(WebhookSubscription)
class WebhookSubscriptionAdmin(WebhookActionPermissionMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("pk", "account", "host", "event_list", "source", "active", "disabled_reason", "created_at")
    list_filter = ("active", "source")
    list_select_related = ("account",)
    search_fields = ("=account__slug", "target_url")
    search_help_text = "An account's slug exactly, or part of a target URL."
    ordering = ("-pk",)
    actions = ("disable_selected", "enable_selected")
    # The secrets are never shown: not the current one, not the previous one.
    fields = (
        "account",
        "target_url",
        "events",
        "source",
        "active",
        "disabled_reason",
        "disabled_at",
        "previous_secret_expires_at",
        "created_by",
        "created_by_label",
        "created_at",
        "updated_at",
    )

    @admin.display(description="Events")
    def event_list(self, subscription: WebhookSubscription) -> str:
        return ", ".join(subscription.events)

    @admin.action(description="Turn off the selected subscriptions", permissions=["webhook"])
    def disable_selected(self, request: HttpRequest, queryset: QuerySet[WebhookSubscription]) -> None:
        who = request.user.get_username()
        count = sum(
            subscriptions.disable(subscription, reason=f"Turned off by ops ({who}).", request=request)
            for subscription in queryset.filter(active=True)
        )
        self.message_user(request, f"{count} subscription(s) turned off.", messages.SUCCESS)

    @admin.action(description="Turn on the selected subscriptions", permissions=["webhook"])
    def enable_selected(self, request: HttpRequest, queryset: QuerySet[WebhookSubscription]) -> None:
        count = 0
        for subscription in queryset.filter(active=False):
            try:
                count += subscriptions.enable(subscription, request=request)
            except subscriptions.SubscriptionError as exc:
                self.message_user(request, f"#{subscription.pk} stays off: its URL is {exc.message}.", messages.ERROR)
        self.message_user(request, f"{count} subscription(s) turned on.", messages.SUCCESS)


class EventTypeFilter(admin.SimpleListFilter):
    """Fixed choices from the catalogue: the default filter would SELECT DISTINCT over every delivery."""

    title = "event"
    parameter_name = "event_type"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [(spec.name, spec.name) for spec in catalogue.EVENTS]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        return queryset.filter(event_type=self.value()) if self.value() else queryset


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(LargeTableAdminMixin, WebhookActionPermissionMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "pk",
        "account",
        "subscription",
        "event_type",
        "state",
        "attempts",
        "last_status",
        "last_error",
        "next_attempt_at",
        "created_at",
    )
    list_filter = ("state", EventTypeFilter, "account")
    list_select_related = ("account", "subscription")
    search_fields = ("=idempotency_key",)
    search_help_text = "An idempotency key exactly (e.g. event:123), or a delivery id."
    ordering = ("-pk",)
    actions = ("replay_selected", "retry_selected")
    fields = (
        "account",
        "subscription",
        "webhook_id",
        "event_type",
        "idempotency_key",
        "state",
        "attempts",
        "next_attempt_at",
        "last_status",
        "last_error",
        "response_excerpt",
        "payload",
        "created_at",
        "last_attempt_at",
        "delivered_at",
        "claimed_by",
        "lease_until",
    )
    readonly_fields = ("webhook_id",)

    @admin.display(description="webhook-id")
    def webhook_id(self, row: WebhookDelivery) -> str:
        return row.webhook_id

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str):
        term = search_term.strip()
        if not term:
            return queryset, False
        if term.isdigit():
            return queryset.filter(pk=int(term)), False
        # Through webhook_delivery_once (subscription, idempotency_key): one probe per subscription.
        subscription_ids = list(WebhookSubscription.objects.order_by("pk").values_list("pk", flat=True))
        return queryset.filter(subscription_id__in=subscription_ids, idempotency_key=term), False

    def _resend(self, request: HttpRequest, queryset: QuerySet, action: str, only_states: tuple[str, ...] | None):
        rows = list(queryset.order_by("pk")[: MAX_RESEND + 1])
        if len(rows) > MAX_RESEND:
            self.message_user(request, f"Select at most {MAX_RESEND} deliveries. Nothing was sent.", messages.ERROR)
            return
        count = delivery.resend(rows, action=action, request=request, only_states=only_states)
        self.message_user(request, f"{count} delivery(ies) queued to be sent now.", messages.SUCCESS)

    @admin.action(description="Replay selected (send again, same webhook-id)", permissions=["webhook"])
    def replay_selected(self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]) -> None:
        self._resend(request, queryset.filter(subscription__active=True), "webhook.replayed", None)

    @admin.action(description="Retry selected failed or waiting deliveries now", permissions=["webhook"])
    def retry_selected(self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]) -> None:
        states = (DeliveryState.FAILED, DeliveryState.RETRY)
        self._resend(request, queryset.filter(subscription__active=True), "webhook.retried", states)
