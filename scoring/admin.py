"""The ops admin of lead scoring.

Rules and bands are edited here or per account (the "account scoring" page with both inline);
every change is audited (AuditedAdminMixin) and starts a recompute of the account's scores.
Scores, grade changes and recomputes are written only by the system: read-only here.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db import models
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join

from crmsync.admin_support import AuditedAdminMixin, EstimatedCountPaginator, ReadOnlyAdminMixin, prospects_by_email
from crmsync.models import Account
from scoring.forms import AdminScoringRuleForm, ScoringRuleForm, check_bands
from scoring.models import GradeBand, GradeChange, ProspectScore, ScoreRecompute, ScoringAccount, ScoringRule
from scoring.recompute import start_recompute


class GradeFilter(admin.SimpleListFilter):
    """Grades from the (small) band table: the default filter would SELECT DISTINCT over every score."""

    title = "grade"
    parameter_name = "grade"
    field = "grade"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        names = GradeBand.objects.order_by("name").values_list("name", flat=True).distinct()
        return [(name, name) for name in names]

    def queryset(self, request: HttpRequest, queryset: models.QuerySet) -> models.QuerySet:
        return queryset.filter(**{self.field: self.value()}) if self.value() else queryset


class ToGradeFilter(GradeFilter):
    title = "new grade"
    parameter_name = "to_grade"
    field = "to_grade"


CONDITION_FIELDSET = ("Conditions", {"fields": ("min_seconds", "keyword", "pattern", "min_value", "max_score")})


class RecomputeOnChangeMixin(AuditedAdminMixin):
    """Audits every change and recomputes the scores of each account a change touched."""

    def save_model(self, request: HttpRequest, obj: models.Model, form, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if not change or form.has_changed():
            self._recompute(request, [obj.account_id])

    def delete_model(self, request: HttpRequest, obj: models.Model) -> None:
        account_id = obj.account_id
        super().delete_model(request, obj)
        self._recompute(request, [account_id])

    def delete_queryset(self, request: HttpRequest, queryset: models.QuerySet) -> None:
        account_ids = set(queryset.values_list("account_id", flat=True))
        super().delete_queryset(request, queryset)
        self._recompute(request, account_ids)

    def _recompute(self, request: HttpRequest, account_ids: Iterable[int]) -> None:
        for account in Account.objects.filter(pk__in=set(account_ids)):
            start_recompute(account, request.user, request=request)


@admin.register(ScoringRule)
class ScoringRuleAdmin(RecomputeOnChangeMixin, admin.ModelAdmin):
    form = AdminScoringRuleForm
    list_display = ("name", "account", "event_type", "conditions_display", "points", "cap", "enabled", "order")
    list_editable = ("points", "enabled")
    list_filter = ("event_type", "enabled", "account")
    list_select_related = ("account",)
    search_fields = ("name__istartswith", "account__name__istartswith")
    autocomplete_fields = ("account",)
    fieldsets = (
        (
            None,
            {"fields": ("account", "name", "event_type", "points", "cap", "decay_half_life_days", "enabled", "order")},
        ),
        CONDITION_FIELDSET,
    )

    @admin.display(description="Conditions")
    def conditions_display(self, rule: ScoringRule) -> str:
        return rule.describe_conditions() or "—"


@admin.register(GradeBand)
class GradeBandAdmin(RecomputeOnChangeMixin, admin.ModelAdmin):
    list_display = ("name", "account", "min_score")
    list_filter = ("account",)
    list_select_related = ("account",)
    autocomplete_fields = ("account",)
    ordering = ("account", "min_score")


class ScoringRuleInline(admin.StackedInline):
    model = ScoringRule
    form = ScoringRuleForm
    extra = 0
    fieldsets = (
        (None, {"fields": ("name", "event_type", "points", "cap", "decay_half_life_days", "enabled", "order")}),
        CONDITION_FIELDSET,
    )


class GradeBandInlineFormSet(BaseInlineFormSet):
    def clean(self) -> None:
        super().clean()
        kept = [
            (form.cleaned_data["name"], form.cleaned_data["min_score"])
            for form in self.forms
            if form.cleaned_data and not form.cleaned_data.get("DELETE")
        ]
        problems = check_bands(kept)
        if problems:
            raise ValidationError(problems)


class GradeBandInline(admin.TabularInline):
    model = GradeBand
    formset = GradeBandInlineFormSet
    fields = ("name", "min_score")
    extra = 0


@admin.register(ScoringAccount)
class ScoringAccountAdmin(AuditedAdminMixin, admin.ModelAdmin):
    """One account's rules and bands on one page, and "recompute now" for selected accounts."""

    list_display = ("name", "slug", "rule_count", "latest_recompute")
    search_fields = ("name__istartswith", "slug__istartswith")
    fields = ("name", "slug")
    readonly_fields = ("name", "slug")
    inlines = (GradeBandInline, ScoringRuleInline)
    actions = ("recompute_now",)

    def get_queryset(self, request: HttpRequest) -> models.QuerySet:
        # The rule count and the latest recompute in the list's one query, not one query per row.
        latest = ScoreRecompute.objects.filter(account=models.OuterRef("pk")).order_by("-created_at", "-pk")
        return (
            super()
            .get_queryset(request)
            .annotate(
                rule_count=models.Count("scoring_rules"),
                latest_state=models.Subquery(latest.values("state")[:1]),
                latest_done=models.Subquery(latest.values("done")[:1]),
                latest_total=models.Subquery(latest.values("total")[:1]),
            )
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # accounts are created in the core admin; they arrive here with default rules

    def has_delete_permission(self, request: HttpRequest, obj: ScoringAccount | None = None) -> bool:
        return False

    @admin.display(description="Rules", ordering="rule_count")
    def rule_count(self, account: ScoringAccount) -> int:
        return account.rule_count

    @admin.display(description="Latest recompute")
    def latest_recompute(self, account: ScoringAccount) -> str:
        if account.latest_state is None:
            return "—"
        state = ScoreRecompute.State(account.latest_state).label
        return f"{state} ({account.latest_done}/{account.latest_total})"

    def save_model(self, request: HttpRequest, obj: ScoringAccount, form, change: bool) -> None:
        # Nothing on the account itself is editable here; only its inlines change.
        return

    def save_related(self, request: HttpRequest, form, formsets, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        if any(formset.has_changed() for formset in formsets):
            start_recompute(form.instance, request.user, request=request)

    @admin.action(description="Recompute scores now", permissions=["change"])
    def recompute_now(self, request: HttpRequest, queryset: models.QuerySet[ScoringAccount]) -> None:
        started = 0
        for account in queryset:
            start_recompute(account, request.user, request=request)
            started += 1
        self.message_user(request, f"Recompute started for {started} account(s).", messages.SUCCESS)


@admin.register(ProspectScore)
class ProspectScoreAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("prospect", "account", "score", "grade", "top_contributors", "computed_at")
    list_filter = (GradeFilter, "account")
    # A prefix of the stored (lower-case) address: it can use the (account, email) index.
    search_fields = ("prospect__email__startswith",)
    search_help_text = "The start of the prospect's e-mail address."
    list_select_related = ("prospect", "account")
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    fields = ("prospect", "account", "score", "grade", "top_contributors", "breakdown_table", "computed_at")
    readonly_fields = fields

    def get_search_results(self, request: HttpRequest, queryset, search_term: str):
        # The matching prospects first, by index ranges of (account, email): a join on the
        # prefix read every prospect (a second at a million).
        term = search_term.strip()
        if not term:
            return queryset, False
        return queryset.filter(prospect_id__in=prospects_by_email(term)), False

    @admin.display(description="Breakdown")
    def breakdown_table(self, score: ProspectScore) -> str:
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            ((row["name"], row["events"], row["points"]) for row in score.breakdown_rows()),
        )
        if not rows:
            return "No rule gave points."
        return format_html(
            '<table><thead><tr><th scope="col">Rule</th><th scope="col">Events</th><th scope="col">Points</th>'
            "</tr></thead><tbody>{}</tbody></table>",
            rows,
        )


@admin.register(GradeChange)
class GradeChangeAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("at", "prospect", "account", "from_grade", "to_grade", "score", "reason")
    list_filter = (ToGradeFilter, "reason", "account")
    list_select_related = ("prospect", "account")
    raw_id_fields = ("prospect",)
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    # Newest first by id (the primary key's index), not the model's (-at, -id), which no index
    # serves across accounts.
    ordering = ("-pk",)


@admin.register(ScoreRecompute)
class ScoreRecomputeAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("created_at", "account", "state", "progress", "started_by", "started_at", "finished_at")
    list_filter = ("state", "account")
    list_select_related = ("account", "started_by")
    fields = ("account", "state", "total", "done", "started_by", "created_at", "started_at", "finished_at", "error")
    readonly_fields = fields

    @admin.display(description="Progress")
    def progress(self, recompute: ScoreRecompute) -> str:
        return f"{recompute.done}/{recompute.total} ({recompute.percent} %)"


import scoring.triggers.admin  # noqa: E402,F401 - workflow triggers register their admins
