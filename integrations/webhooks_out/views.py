"""The owner pages of outgoing webhooks, under /a/<account>/webhooks/.

Everyone in the account may read them; admins and owners may change them. Every change is
audited (through ``subscriptions`` and ``delivery.resend``). A signing secret appears in exactly
one response, the one that created it, which no browser or proxy may keep (``never_cache``).
"""

from __future__ import annotations

from django.contrib import messages
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from crmsync.models import Role
from crmsync.tenancy import account_queryset, account_view, get_for_account
from integrations.models import DeliveryState, WebhookDelivery, WebhookSource, WebhookSubscription
from integrations.webhooks_out import catalogue, delivery, subscriptions
from integrations.webhooks_out.forms import DeliveryFilterForm, SubscriptionForm

PAGE_SIZE = 50


def _list(request: HttpRequest) -> HttpResponse:
    return redirect("integrations:webhooks", account_slug=request.account.slug)


def _detail(request: HttpRequest, subscription: WebhookSubscription) -> HttpResponse:
    return redirect("integrations:webhook_detail", account_slug=request.account.slug, subscription_id=subscription.pk)


@require_GET
@account_view()
def webhook_list(request: HttpRequest) -> HttpResponse:
    # Failures must be visible to the owner (DESIGN.md invariant 3): a count per subscription, by index.
    failed = Count("deliveries", filter=Q(deliveries__state=DeliveryState.FAILED))
    rows = account_queryset(WebhookSubscription, request).annotate(failed=failed).order_by("-created_at", "-id")
    return render(
        request,
        "webhooks_out/list.html",
        {"subscriptions": rows, "can_manage": request.membership.has_role(Role.ADMIN)},
    )


@never_cache  # the answer to a valid POST carries the signing secret
@require_http_methods(["GET", "POST"])
@account_view(min_role=Role.ADMIN)
def webhook_create(request: HttpRequest) -> HttpResponse:
    form = SubscriptionForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            subscription, secret = subscriptions.subscribe(
                request.account,
                form.cleaned_data["target_url"],
                form.chosen_events(),
                source=WebhookSource.MANUAL,
                request=request,
            )
        except subscriptions.SubscriptionError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        else:
            # Rendered from the POST, never stored in the session or a message: shown this once.
            return render(
                request, "webhooks_out/secret.html", {"subscription": subscription, "secret": secret, "created": True}
            )
    return render(request, "webhooks_out/create.html", {"form": form, "catalogue": catalogue.EVENTS})


@require_GET
@account_view()
def webhook_detail(request: HttpRequest, subscription_id: int) -> HttpResponse:
    subscription = get_for_account(WebhookSubscription, request, pk=subscription_id)
    form = DeliveryFilterForm(request.GET)
    state = form.cleaned_data.get("state") if form.is_valid() else ""
    rows = WebhookDelivery.objects.filter(subscription=subscription)
    if state:
        rows = rows.filter(state=state)
    # Keyset pages, newest first: page 500 costs what page 1 costs.
    before = request.GET.get("before", "")
    if before.isdigit() and len(before) < 19:
        rows = rows.filter(pk__lt=int(before))
    page = list(
        rows.order_by("-id").only(
            "pk",
            "message_id",
            "event_type",
            "state",
            "attempts",
            "last_status",
            "last_error",
            "response_excerpt",
            "next_attempt_at",
            "created_at",
            "last_attempt_at",
            "delivered_at",
            "subscription_id",
        )[: PAGE_SIZE + 1]
    )
    older = page[PAGE_SIZE - 1].pk if len(page) > PAGE_SIZE else None
    return render(
        request,
        "webhooks_out/detail.html",
        {
            "subscription": subscription,
            "deliveries": page[:PAGE_SIZE],
            "older": older,
            "paged": before.isdigit(),
            "state": state or "",
            "filter_form": form,
            "signing_secrets": len(subscription.signing_secrets()),
            "can_manage": request.membership.has_role(Role.ADMIN),
        },
    )


@never_cache  # the answer to the POST carries the new secret
@require_http_methods(["GET", "POST"])
@account_view(min_role=Role.ADMIN)
def webhook_rotate(request: HttpRequest, subscription_id: int) -> HttpResponse:
    subscription = get_for_account(WebhookSubscription, request, pk=subscription_id)
    if request.method == "POST":
        secret = subscriptions.rotate_secret(subscription, request=request)
        return render(
            request, "webhooks_out/secret.html", {"subscription": subscription, "secret": secret, "created": False}
        )
    return render(
        request,
        "webhooks_out/rotate_confirm.html",
        {"subscription": subscription, "overlap_hours": int(subscriptions.ROTATION_OVERLAP.total_seconds() // 3600)},
    )


@require_POST
@account_view(min_role=Role.ADMIN)
def webhook_disable(request: HttpRequest, subscription_id: int) -> HttpResponse:
    subscription = get_for_account(WebhookSubscription, request, pk=subscription_id)
    who = request.user.get_username()
    if subscriptions.disable(subscription, reason=f"Turned off by {who}.", request=request):
        messages.success(request, f"Turned off: nothing more is sent to {subscription.host}.")
    return _detail(request, subscription)


@require_POST
@account_view(min_role=Role.ADMIN)
def webhook_enable(request: HttpRequest, subscription_id: int) -> HttpResponse:
    subscription = get_for_account(WebhookSubscription, request, pk=subscription_id)
    try:
        if subscriptions.enable(subscription, request=request):
            messages.success(request, f"Turned on: new events are sent to {subscription.host} again.")
    except subscriptions.SubscriptionError as exc:
        messages.error(request, f"Cannot turn it on: the URL is {exc.message}.")
    return _detail(request, subscription)


@require_http_methods(["GET", "POST"])
@account_view(min_role=Role.ADMIN)
def webhook_delete(request: HttpRequest, subscription_id: int) -> HttpResponse:
    subscription = get_for_account(WebhookSubscription, request, pk=subscription_id)
    if request.method == "POST":
        host = subscription.host
        subscriptions.unsubscribe(subscription, request=request)
        messages.success(request, f"Deleted the webhook to {host} and its delivery log.")
        return _list(request)
    return render(request, "webhooks_out/delete_confirm.html", {"subscription": subscription})


@require_POST
@account_view(min_role=Role.ADMIN)
def webhook_replay(request: HttpRequest, subscription_id: int, delivery_id: int) -> HttpResponse:
    subscription = get_for_account(WebhookSubscription, request, pk=subscription_id)
    row = get_for_account(WebhookDelivery.objects.filter(subscription=subscription), request, pk=delivery_id)
    if not subscription.active:
        messages.error(request, "This webhook is turned off; turn it on before replaying messages.")
    elif delivery.resend([row], action="webhook.replayed", request=request):
        messages.success(request, "Sending it again now, with the same webhook-id so the receiver can tell.")
    else:
        messages.info(request, "It is being sent right now; look again in a moment.")
    return _detail(request, subscription)
