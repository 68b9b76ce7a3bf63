"""The "Send sample events" button: a new owner sees data flow to the CRM within a minute.

POST only, admins and owners only, audited, and rate-limited per account (shared across web
processes through Redis) so repeated clicks cannot flood the outbox or the CRM.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from crmsync import audit, ratelimit
from crmsync.models import Role
from crmsync.samples import send_sample_events
from crmsync.tenancy import account_view

# Events per click: enough to show a handful of prospects with varied activity.
SAMPLE_EVENTS_PER_CLICK = 20
# Per account, in the notation of the ``limits`` library; settings.SAMPLE_EVENTS_RATE_LIMIT overrides.
DEFAULT_RATE = "3/minute;20/day"


@require_POST
@account_view(min_role=Role.ADMIN)
def send_samples(request: HttpRequest) -> HttpResponse:
    account = request.account
    back = redirect("crmsync:overview", account_slug=account.slug)
    rate = getattr(settings, "SAMPLE_EVENTS_RATE_LIMIT", DEFAULT_RATE)
    verdict = ratelimit.hit("sample-events", rate, str(account.pk))
    if not verdict.allowed:
        messages.error(
            request,
            f"Sample events were sent a moment ago. Try again in {int(verdict.retry_after)} seconds.",
        )
        return back
    result = send_sample_events(account, SAMPLE_EVENTS_PER_CLICK, actor_label=request.user.get_username())
    audit.record(
        "sample_events.sent",
        request=request,
        obj=account,
        changes={"count": SAMPLE_EVENTS_PER_CLICK, "accepted": result.accepted},
    )
    messages.success(
        request,
        f"{result.accepted} sample events sent. They reach your CRM within a minute: watch the sync status page.",
    )
    return back
