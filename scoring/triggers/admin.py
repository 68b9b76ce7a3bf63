"""The ops admin of workflow triggers: rules (audited; options and actions as checked JSON) and
the firing log (read-only: only the system fires)."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html_join

from crmsync.admin_support import AuditedAdminMixin, EstimatedCountPaginator, ReadOnlyAdminMixin
from scoring.models_triggers import TriggerFiring, TriggerRule
from scoring.triggers.forms import AdminTriggerRuleForm


@admin.register(TriggerRule)
class TriggerRuleAdmin(AuditedAdminMixin, admin.ModelAdmin):
    form = AdminTriggerRuleForm
    list_display = ("name", "account", "condition_display", "actions_display", "once_per_prospect", "enabled")
    list_editable = ("enabled",)
    list_filter = ("condition_type", "enabled", "account")
    list_select_related = ("account",)
    search_fields = ("name__istartswith", "account__name__istartswith")
    autocomplete_fields = ("account",)
    readonly_fields = ("round_robin_next", "created_at", "updated_at")

    @admin.display(description="Condition")
    def condition_display(self, rule: TriggerRule) -> str:
        return rule.describe_condition()

    @admin.display(description="Actions")
    def actions_display(self, rule: TriggerRule) -> str:
        return format_html_join("", "<div>{}</div>", ((text,) for text in rule.describe_actions()))


@admin.register(TriggerFiring)
class TriggerFiringAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("fired_at", "rule", "account", "condition_type", "prospect_ref", "event", "actions_display")
    list_filter = ("condition_type", "account")
    list_select_related = ("rule", "account", "event")
    search_fields = ("key__startswith",)
    search_help_text = "The start of the firing key, e.g. rule:12:"
    raw_id_fields = ("prospect", "event", "rule")
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    # Newest first by id (the primary key's index), not the model's (-fired_at, -id): no index
    # serves that across accounts, and sorting every firing took 250 ms at 100,000.
    ordering = ("-pk",)
    fields = ("rule", "account", "prospect", "event", "key", "condition_type", "fired_at", "actions_display")
    readonly_fields = fields

    def has_delete_permission(self, request: HttpRequest, obj: TriggerFiring | None = None) -> bool:
        return False  # the log is what proves a firing happened once; deleting a row would let it fire again

    @admin.display(description="Prospect")
    def prospect_ref(self, firing: TriggerFiring) -> str:
        return f"#{firing.prospect_id}"  # no e-mail address in list views of system logs

    @admin.display(description="Actions")
    def actions_display(self, firing: TriggerFiring) -> str:
        return format_html_join(
            "",
            "<div>{}: {} – {}</div>",
            ((entry.get("type"), entry.get("status"), entry.get("detail")) for entry in firing.actions),
        )
