"""Adding, editing, enabling/disabling and deleting scoring rules. Each change is audited and
starts a recompute of the account's scores."""

from __future__ import annotations

from django.contrib import messages
from django.db import transaction
from django.db.models import Max
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from crmsync import audit
from crmsync.models import Role
from crmsync.tenancy import account_view, get_for_account
from scoring.forms import ScoringRuleForm
from scoring.models import ScoringRule
from scoring.recompute import start_recompute
from scoring.views.audit_support import form_changes


def _back(request: HttpRequest) -> HttpResponse:
    return redirect("scoring:overview", account_slug=request.account.slug)


@require_http_methods(["GET", "POST"])
@account_view(min_role=Role.ADMIN)
def rule_create(request: HttpRequest) -> HttpResponse:
    form = ScoringRuleForm(request.POST or None, instance=ScoringRule(account=request.account))
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            rule = form.save(commit=False)
            last = ScoringRule.objects.filter(account=request.account).aggregate(last=Max("order"))["last"]
            rule.order = 0 if last is None else last + 1
            rule.save()
            audit.record(
                "scoring.rule_created",
                request=request,
                obj=rule,
                changes={**form_changes(form, created=True), "conditions": rule.conditions},
            )
            start_recompute(request.account, request.user, request=request)
        messages.success(request, f"Rule “{rule.name}” added. Scores are being recomputed.")
        return _back(request)
    return render(request, "scoring/rule_form.html", {"form": form, "rule": None})


@require_http_methods(["GET", "POST"])
@account_view(min_role=Role.ADMIN)
def rule_edit(request: HttpRequest, rule_id: int) -> HttpResponse:
    rule = get_for_account(ScoringRule, request, pk=rule_id)
    form = ScoringRuleForm(request.POST or None, instance=rule)
    if request.method == "POST" and form.is_valid():
        if form.has_changed():
            with transaction.atomic():
                form.save()
                audit.record(
                    "scoring.rule_changed", request=request, obj=rule, changes=form_changes(form, created=False)
                )
                start_recompute(request.account, request.user, request=request)
            messages.success(request, f"Rule “{rule.name}” saved. Scores are being recomputed.")
        return _back(request)
    return render(request, "scoring/rule_form.html", {"form": form, "rule": rule})


@require_POST
@account_view(min_role=Role.ADMIN)
def rule_toggle(request: HttpRequest, rule_id: int) -> HttpResponse:
    rule = get_for_account(ScoringRule, request, pk=rule_id)
    with transaction.atomic():
        rule.enabled = not rule.enabled
        rule.save(update_fields=["enabled", "updated_at"])
        audit.record(
            "scoring.rule_enabled" if rule.enabled else "scoring.rule_disabled",
            request=request,
            obj=rule,
            changes={"enabled": {"before": not rule.enabled, "after": rule.enabled}},
        )
        start_recompute(request.account, request.user, request=request)
    state = "enabled" if rule.enabled else "disabled"
    messages.success(request, f"Rule “{rule.name}” {state}. Scores are being recomputed.")
    return _back(request)


@require_http_methods(["GET", "POST"])
@account_view(min_role=Role.ADMIN)
def rule_delete(request: HttpRequest, rule_id: int) -> HttpResponse:
    rule = get_for_account(ScoringRule, request, pk=rule_id)
    if request.method == "POST":
        with transaction.atomic():
            audit.record(
                "scoring.rule_deleted",
                request=request,
                obj=rule,
                changes={"name": rule.name, "event_type": rule.event_type, "points": rule.points},
            )
            rule.delete()
            start_recompute(request.account, request.user, request=request)
        messages.success(request, f"Rule “{rule.name}” deleted. Scores are being recomputed.")
        return _back(request)
    return render(request, "scoring/rule_delete.html", {"rule": rule})
