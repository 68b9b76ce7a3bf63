"""The ops admin of the core domain: accounts, members, API keys, capsules, prospects, events.

Every change made here writes an audit entry (AuditedAdminMixin); rows only the system writes
are read-only; secrets (API key hashes) are never shown; change lists of the big tables avoid
full counts and per-row queries.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.db import models
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.text import Truncator

from crmsync import audit
from crmsync.admin_support import (
    AuditedAdminMixin,
    IndexedValuesListFilter,
    LargeTableAdminMixin,
    ReadOnlyAdminMixin,
    confirm_action,
    in_every_account,
    is_confirmed,
    prefix_q,
)
from crmsync.models import (
    Account,
    ApiKey,
    AuditEntry,
    Capsule,
    Event,
    Membership,
    Prospect,
    Suppression,
    Visitor,
)

admin.site.site_header = "Capsule CRM Sync — operations"
admin.site.site_title = "Capsule CRM Sync ops"

TIMELINE_LENGTH = 100
# An erasure does real work per prospect (CRM-side links, suppression, audit): keep batches sane.
MAX_ERASE_BATCH = 500


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ("user",)
    fields = ("user", "role", "created_at")
    readonly_fields = ("created_at",)


@admin.register(Account)
class AccountAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ("name", "slug", "require_consent", "created_at")
    list_filter = ("require_consent",)
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}
    fields = ("name", "slug", "require_consent", "notification_email", "created_at")
    readonly_fields = ("created_at",)
    inlines = (MembershipInline,)


@admin.register(Membership)
class MembershipAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ("user", "account", "role", "created_at")
    list_filter = ("role", "account")
    search_fields = ("user__email", "account__name")
    list_select_related = ("user", "account")
    autocomplete_fields = ("user", "account")


@admin.register(ApiKey)
class ApiKeyAdmin(AuditedAdminMixin, admin.ModelAdmin):
    """Keys are issued here (the raw key is shown once, in a message) and revoked, never deleted,
    so the trail of which key sent what survives. The key hash never appears."""

    list_display = ("name", "prefix_display", "account", "created_at", "last_used_at", "revoked_at")
    list_filter = (("revoked_at", admin.EmptyFieldListFilter), "account")
    search_fields = ("name", "prefix__startswith")
    list_select_related = ("account",)
    autocomplete_fields = ("account",)
    actions = ("revoke_keys",)

    @admin.display(description="Starts with", ordering="prefix")
    def prefix_display(self, key: ApiKey) -> str:
        return f"{key.prefix}…"

    def get_fields(self, request: HttpRequest, obj: ApiKey | None = None) -> tuple[str, ...]:
        if obj is None:
            return ("account", "name")
        return ("name", "account", "prefix", "created_by", "created_at", "last_used_at", "revoked_at")

    def get_readonly_fields(self, request: HttpRequest, obj: ApiKey | None = None) -> tuple[str, ...]:
        if obj is None:
            return ()
        return ("account", "prefix", "created_by", "created_at", "last_used_at", "revoked_at")

    def has_delete_permission(self, request: HttpRequest, obj: ApiKey | None = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: ApiKey, form, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        key, raw_key = ApiKey.issue(obj.account, obj.name, created_by=request.user)
        # The admin goes on with ``obj`` (its LogEntry, its redirect): make it the issued key.
        for field in ApiKey._meta.concrete_fields:
            setattr(obj, field.attname, getattr(key, field.attname))
        obj._state.adding, obj._state.db = False, key._state.db
        audit.record("api_key.created", request=request, obj=key, changes={"name": key.name, "prefix": key.prefix})
        messages.warning(
            request, f"Copy the new key now; it is shown only this once and cannot be recovered: {raw_key}"
        )

    @admin.action(description="Revoke selected API keys", permissions=["change"])
    def revoke_keys(self, request: HttpRequest, queryset: models.QuerySet[ApiKey]) -> HttpResponse | None:
        active = queryset.active().select_related("account")
        if not is_confirmed(request):
            return confirm_action(
                self,
                request,
                active,
                action="revoke_keys",
                title="Revoke API keys",
                explanation="Requests that use these keys will be refused at once. This cannot be undone.",
                button="Yes, revoke them",
            )
        revoked = 0
        for key in active:
            key.revoke()
            audit.record("api_key.revoked", request=request, obj=key, changes={"prefix": key.prefix})
            revoked += 1
        self.message_user(request, f"{revoked} API key(s) revoked.", messages.SUCCESS)
        return None


@admin.register(Capsule)
class CapsuleAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ("__str__", "external_id", "account", "created_at")
    list_filter = ("account",)
    search_fields = ("=external_id", "title__istartswith")
    readonly_fields = ("created_at",)
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    list_select_related = ("account",)
    autocomplete_fields = ("account",)
    show_full_result_count = False


@admin.register(Prospect)
class ProspectAdmin(LargeTableAdminMixin, AuditedAdminMixin, admin.ModelAdmin):
    """Prospects arrive through the ingestion API, so they are not added here; they are erased
    (anonymised, suppressed, events deleted) rather than deleted, so a later sync cannot bring
    them back."""

    audit_personal_data = True
    list_display = ("__str__", "full_name", "company", "account", "consent_granted", "erased", "last_event_at")
    list_filter = ("account", "erased", "consent_granted")
    # Searched by e-mail address (or its start) through the (account, email) index, or by id: a
    # name or company search would read every prospect (no index serves a case-insensitive name
    # prefix; a million rows take about a second). See get_search_results.
    search_fields = ("email",)
    search_help_text = "An e-mail address or its start, or a prospect id."
    list_select_related = ("account",)
    autocomplete_fields = ("account",)
    actions = ("erase_selected",)
    fieldsets = (
        (None, {"fields": ("account", "email", "first_name", "last_name", "phone", "company", "job_title")}),
        ("Capsule data", {"fields": ("attributes", "utm")}),
        ("Consent", {"fields": ("consent_granted", "consent_at", "consent_source")}),
        ("Status", {"fields": ("erased", "erased_at", "created_at", "updated_at", "last_event_at")}),
        ("Event timeline", {"fields": ("event_timeline",)}),
    )
    _always_read_only = (
        "account",
        "erased",
        "erased_at",
        "created_at",
        "updated_at",
        "last_event_at",
        "event_timeline",
    )

    def get_readonly_fields(self, request: HttpRequest, obj: Prospect | None = None) -> tuple[str, ...]:
        if obj is not None and obj.erased:
            # Nothing may put personal data back on an erased record.
            return tuple(name for fieldset in self.fieldsets for name in fieldset[1]["fields"])
        return self._always_read_only

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Prospect | None = None) -> bool:
        return False

    def get_search_results(self, request: HttpRequest, queryset, search_term: str):
        # Stored addresses are lower case (normalise_email); the prefix is a range of the
        # (account, email) index, read once per account.
        term = search_term.strip().lower()
        if not term:
            return queryset, False
        if term.isdigit():
            return queryset.filter(pk=int(term)), False
        return in_every_account(queryset).filter(prefix_q("email", term)), False

    @admin.display(description="Latest events")
    def event_timeline(self, prospect: Prospect) -> str:
        if prospect.pk is None:
            return "—"
        events = prospect.events.select_related("capsule").order_by("-occurred_at", "-pk")[:TIMELINE_LENGTH]
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    f"{event.occurred_at:%Y-%m-%d %H:%M:%S}",
                    event.get_type_display(),
                    event.capsule or "—",
                    _summary(event.data),
                )
                for event in events
            ),
        )
        if not rows:
            return "No events."
        all_events = reverse("admin:crmsync_event_changelist") + f"?prospect__id__exact={prospect.pk}"
        return format_html(
            '<table><caption>The latest {} events, newest first</caption><thead><tr><th scope="col">When (UTC)'
            '</th><th scope="col">Type</th><th scope="col">Capsule</th><th scope="col">Data</th></tr></thead>'
            '<tbody>{}</tbody></table><p><a href="{}">All events of this prospect</a></p>',
            TIMELINE_LENGTH,
            rows,
            all_events,
        )

    @admin.action(description="Erase selected prospects (GDPR)", permissions=["change"])
    def erase_selected(self, request: HttpRequest, queryset: models.QuerySet[Prospect]) -> HttpResponse | None:
        # Imported when used: the erasure machinery is its own module and the admin only calls it.
        from crmsync.privacy import erase_prospect

        to_erase = queryset.filter(erased=False).select_related("account").order_by("pk")
        if to_erase.count() > MAX_ERASE_BATCH:
            self.message_user(
                request, f"Select at most {MAX_ERASE_BATCH} prospects per erasure. Nothing was erased.", messages.ERROR
            )
            return None
        if not is_confirmed(request):
            return confirm_action(
                self,
                request,
                to_erase,
                action="erase_selected",
                title="Erase prospects",
                explanation=(
                    "Their personal data is removed for good, their events are deleted and their e-mail addresses "
                    "are suppressed so no later sync creates them again. This cannot be undone."
                ),
                button="Yes, erase them",
            )
        erased = 0
        for prospect in to_erase:
            erase_prospect(prospect, actor_label=request.user.get_username(), request=request)
            erased += 1
        self.message_user(request, f"{erased} prospect(s) erased.", messages.SUCCESS)
        return None


def _summary(data: dict, limit: int = 120) -> str:
    """One line out of an event's data: ``key: value`` pairs, cut at ``limit`` characters."""
    if not isinstance(data, dict) or not data:
        return ""
    return Truncator("; ".join(f"{key}: {value}" for key, value in data.items())).chars(limit)


@admin.register(Event)
class EventAdmin(LargeTableAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("occurred_at", "type", "account", "prospect", "capsule", "external_id")
    # Fixed date ranges rather than a date hierarchy, whose year/month/day links are a
    # SELECT DISTINCT over every event (seconds at ten million).
    list_filter = ("type", ("received_at", admin.DateFieldListFilter), "account")
    search_fields = ("external_id",)
    search_help_text = "The capsule platform's event id, exactly."
    list_select_related = ("account", "prospect", "capsule")
    raw_id_fields = ("prospect", "capsule")
    ordering = ("-pk",)

    def get_search_results(self, request: HttpRequest, queryset, search_term: str):
        # Exact (not iexact: UPPER() cannot use the index), through the (account, external_id) index.
        term = search_term.strip()
        if not term:
            return queryset, False
        return in_every_account(queryset).filter(external_id=term), False


@admin.register(Visitor)
class VisitorAdmin(LargeTableAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("visitor_id", "account", "prospect", "first_seen_at", "identified_at")
    list_filter = ("account",)
    search_fields = ("visitor_id",)
    search_help_text = "A visitor id, exactly."
    list_select_related = ("account", "prospect")
    raw_id_fields = ("prospect",)
    ordering = ("-pk",)

    def get_search_results(self, request: HttpRequest, queryset, search_term: str):
        # Exact, through the (account, visitor_id) index.
        term = search_term.strip()
        if not term:
            return queryset, False
        return in_every_account(queryset).filter(visitor_id=term), False


@admin.register(Suppression)
class SuppressionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("email_hash", "account", "reason", "created_at")
    list_filter = ("account",)
    search_fields = ("=email_hash",)
    list_select_related = ("account",)
    show_full_result_count = False


@admin.register(AuditEntry)
class AuditEntryAdmin(LargeTableAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("created_at", "actor_label", "action", "account", "object_type", "object_repr", "ip_address")
    # The actions are read from their index (no DISTINCT over the log); fixed date ranges instead
    # of a date hierarchy (a DISTINCT over every entry's date).
    list_filter = (("action", IndexedValuesListFilter), ("created_at", admin.DateFieldListFilter), "account")
    search_fields = ("actor_label__istartswith", "=object_id", "object_repr__istartswith")
    search_help_text = "The start of the actor or object name, or an object id."
    list_select_related = ("account",)
