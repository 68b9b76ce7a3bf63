"""The owner pages of workflow triggers under /a/<account_slug>/triggers/: viewers read the rules
and the firing log, admins add, edit, switch and delete rules. Every change is audited."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import OuterRef, Subquery
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from crmsync import audit
from crmsync.models import Role
from crmsync.tenancy import account_queryset, account_view, get_for_account
from scoring.models_triggers import TriggerFiring, TriggerRule
from scoring.triggers.conditions import CONDITIONS
from scoring.triggers.forms import TriggerRuleForm, action_formset
from scoring.triggers.placeholders import PLACEHOLDERS

RECENT_FIRINGS = 20
FIRINGS_PER_PAGE = 50


def _back(request: HttpRequest) -> HttpResponse:
    return redirect("triggers:rules", account_slug=request.account.slug)


def _firings(request: HttpRequest):
    return account_queryset(TriggerFiring, request).select_related("rule", "prospect", "event")


@account_view()
def rules(request: HttpRequest) -> HttpResponse:
    latest = TriggerFiring.objects.filter(rule=OuterRef("pk")).order_by("-fired_at", "-pk")
    rows = account_queryset(TriggerRule, request).annotate(last_fired_at=Subquery(latest.values("fired_at")[:1]))
    return render(
        request,
        "triggers/rules.html",
        {
            "rules": rows.order_by("name", "pk"),
            "firings": _firings(request)[:RECENT_FIRINGS],
            "can_edit": request.membership.has_role(Role.ADMIN),
        },
    )


@account_view()
def firings(request: HttpRequest) -> HttpResponse:
    queryset = _firings(request)
    rule = None
    if request.GET.get("rule"):
        rule = get_for_account(TriggerRule, request, pk=request.GET["rule"])
        queryset = queryset.filter(rule=rule)
    page = Paginator(queryset, FIRINGS_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "triggers/firings.html", {"page": page, "rule": rule})


def _snapshot(rule: TriggerRule) -> dict[str, Any]:
    """What the audit log records of a rule (its JSON fields copied: the form replaces them)."""
    return {
        "name": rule.name,
        "enabled": rule.enabled,
        "condition_type": rule.condition_type,
        "condition_options": dict(rule.condition_options or {}),
        "once_per_prospect": rule.once_per_prospect,
        "actions": list(rule.actions or []),
    }


def _edit(request: HttpRequest, rule: TriggerRule, *, created: bool) -> HttpResponse:
    before = _snapshot(rule)
    form = TriggerRuleForm(request.POST or None, rule=rule, account_id=request.account.pk)
    formset = action_formset(request.POST or None, rule)
    if request.method == "POST":
        # Both validated before either is saved: an error anywhere writes nothing.
        form_ok, formset_ok = form.is_valid(), formset.is_valid()
        if form_ok and formset_ok:
            rule = form.apply()
            rule.actions = formset.actions()
            after = _snapshot(rule)
            changes = (
                after
                if created
                else {key: {"before": before[key], "after": after[key]} for key in after if before[key] != after[key]}
            )
            if created or changes:
                with transaction.atomic():
                    rule.save()
                    audit.record(
                        "triggers.rule_created" if created else "triggers.rule_changed",
                        request=request,
                        obj=rule,
                        changes=changes,
                    )
                messages.success(request, f"Trigger “{rule.name}” {'added' if created else 'saved'}.")
            return _back(request)
    return render(
        request,
        "triggers/rule_form.html",
        {
            "form": form,
            "formset": formset,
            "rule": None if created else rule,
            "conditions": CONDITIONS,
            "placeholders": PLACEHOLDERS,
        },
    )


@require_http_methods(["GET", "POST"])
@account_view(min_role=Role.ADMIN)
def rule_create(request: HttpRequest) -> HttpResponse:
    return _edit(request, TriggerRule(account=request.account), created=True)


@require_http_methods(["GET", "POST"])
@account_view(min_role=Role.ADMIN)
def rule_edit(request: HttpRequest, rule_id: int) -> HttpResponse:
    return _edit(request, get_for_account(TriggerRule, request, pk=rule_id), created=False)


@require_POST
@account_view(min_role=Role.ADMIN)
def rule_toggle(request: HttpRequest, rule_id: int) -> HttpResponse:
    rule = get_for_account(TriggerRule, request, pk=rule_id)
    with transaction.atomic():
        rule.enabled = not rule.enabled
        rule.save(update_fields=["enabled", "updated_at"])
        audit.record(
            "triggers.rule_enabled" if rule.enabled else "triggers.rule_disabled",
            request=request,
            obj=rule,
            changes={"enabled": {"before": not rule.enabled, "after": rule.enabled}},
        )
    messages.success(request, f"Trigger “{rule.name}” {'enabled' if rule.enabled else 'disabled'}.")
    return _back(request)


@require_http_methods(["GET", "POST"])
@account_view(min_role=Role.ADMIN)
def rule_delete(request: HttpRequest, rule_id: int) -> HttpResponse:
    rule = get_for_account(TriggerRule, request, pk=rule_id)
    if request.method == "POST":
        with transaction.atomic():
            audit.record(
                "triggers.rule_deleted",
                request=request,
                obj=rule,
                changes={
                    "name": rule.name,
                    "condition_type": rule.condition_type,
                    "condition_options": rule.condition_options,
                    "actions": rule.actions,
                },
            )
            rule.delete()
        messages.success(request, f"Trigger “{rule.name}” deleted.")
        return _back(request)
    return render(request, "triggers/rule_delete.html", {"rule": rule, "firing_count": rule.firings.count()})
