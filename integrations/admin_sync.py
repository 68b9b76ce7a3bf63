"""The ops admin of the sync engine: outbox rows, sync runs, record links, and per-connection sync.

Ops see every account. Rows are read-only here (the engine writes them); what ops may do is
retry, skip and "sync now", each through ``integrations.sync_actions`` and so audit-logged with
the request. Change lists are built for tables of millions of rows: no full counts, joins
selected up front, filters with fixed choices (never a DISTINCT over the table), newest first by
primary key (always an index).
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils.html import format_html, format_html_join
from django.utils.text import Truncator

from crmsync.admin_support import (
    LargeTableAdminMixin,
    ReadOnlyAdminMixin,
    confirm_action,
    is_confirmed,
    prospects_by_email,
)
from integrations import dashboard, sync_actions
from integrations.models import Connection, OutboxItem, OutboxState, RecordLink, RecordType, SyncRun

# Skipping asks for a confirmation that lists every row; keep the list a readable length.
MAX_SKIP_SELECTION = 1_000
ERROR_PREVIEW = 80


# Only rows that carry an error are in outbox_error_idx (last_error_kind, -id; done rows never carry
# one): the error filter and search keep to it, so a rare kind or message is found by reading the
# rows that have an error, newest first, not the whole outbox in id order.
WITH_ERROR = ~Q(last_error_kind="")
CONNECTION_SECRETS = ("access_token", "refresh_token", "webhook_secret")


def _looks_like_email(term: str) -> bool:
    return "@" in term and " " not in term


def _bounded(value: int | None) -> str:
    return str(dashboard.BoundedCount(min(value or 0, dashboard.COUNT_CAP), (value or 0) > dashboard.COUNT_CAP))


def _progress_html(run: SyncRun) -> str:
    if not run.total:
        return format_html("{} processed", f"{run.processed:,}")
    value = min(run.processed, run.total)
    return format_html(
        '<progress value="{}" max="{}">{}%</progress> {} of {}',
        value,
        run.total,
        int(100 * value / run.total),
        f"{value:,}",
        f"{run.total:,}",
    )


class ErrorKindFilter(admin.SimpleListFilter):
    """Fixed choices: the default filter for a plain text field would SELECT DISTINCT over every row."""

    title = "error kind"
    parameter_name = "error_kind"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return list(dashboard.ERROR_KINDS.items())

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        # One kind: a range of outbox_error_idx, already in the list's newest-first order.
        return queryset.filter(last_error_kind=self.value()) if self.value() else queryset


class RecordTypeFilter(admin.SimpleListFilter):
    """Fixed choices (the engine links contacts or leads): the default filter of this text field
    would SELECT DISTINCT over every link."""

    title = "CRM record type"
    parameter_name = "crm_object_type"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return list(RecordType.choices)

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        return queryset.filter(crm_object_type=self.value()) if self.value() else queryset


class WithoutCredentialsMixin:
    """Change lists that show each row's connection read it without its encrypted credentials:
    they are never shown, and decrypting three tokens per row was a tenth of a page's time."""

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        # The admin's change list adds list_select_related only to a queryset that selects nothing yet.
        queryset = super().get_queryset(request).select_related("connection", *self.list_select_related)
        return queryset.defer(*(f"connection__{name}" for name in CONNECTION_SECRETS))


class SyncActionPermissionMixin:
    """Retry, skip and sync now need the right to change the connection's data, not just to view it;
    the rows themselves stay read-only."""

    def has_sync_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("integrations.change_connection")


@admin.register(OutboxItem)
class OutboxItemAdmin(
    WithoutCredentialsMixin, LargeTableAdminMixin, SyncActionPermissionMixin, ReadOnlyAdminMixin, admin.ModelAdmin
):
    list_display = (
        "pk",
        "account",
        "connection_label",
        "prospect",
        "kind",
        "state",
        "attempts",
        "error_preview",
        "last_error_kind",
        "next_attempt_at",
        "updated_at",
    )
    list_filter = ("connection__provider", "state", "kind", ErrorKindFilter, "connection__status")
    list_select_related = ("connection__account", "prospect")
    raw_id_fields = ("connection", "prospect", "event", "run")
    search_fields = ("prospect__email", "last_error")
    search_help_text = "A prospect's e-mail address or its start, a row id, or words from the CRM's error message."
    ordering = ("-pk",)
    actions = ("retry_selected", "skip_selected")
    fields = (
        "connection",
        "prospect",
        "kind",
        "event",
        "dedupe_key",
        "state",
        "attempts",
        "next_attempt_at",
        "last_error",
        "last_error_kind",
        "hold_reason",
        "result",
        "run",
        "claimed_by",
        "lease_until",
        "payload",
        "created_at",
        "updated_at",
        "done_at",
    )

    @admin.display(description="Account", ordering="connection__account__name")
    def account(self, item: OutboxItem) -> str:
        return str(item.connection.account)

    @admin.display(description="Connection", ordering="connection__provider")
    def connection_label(self, item: OutboxItem) -> str:
        return str(item.connection)

    @admin.display(description="Last error")
    def error_preview(self, item: OutboxItem) -> str:
        return Truncator(item.last_error).chars(ERROR_PREVIEW)

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str):
        # Hand-made rather than Django's OR of every field: an address searches prospects, a number
        # an id, anything else the error text, so no search joins or scans more than it needs.
        term = search_term.strip()
        if not term:
            return queryset, False
        if _looks_like_email(term):
            return queryset.filter(prospect_id__in=prospects_by_email(term)), False
        if term.isdigit():
            return queryset.filter(pk=int(term)), False
        return queryset.filter(WITH_ERROR, last_error__icontains=term), False

    @admin.action(description="Retry selected", permissions=["sync"])
    def retry_selected(self, request: HttpRequest, queryset: QuerySet[OutboxItem]) -> None:
        outcome = sync_actions.retry(queryset, request=request, via="admin")
        more = (
            f" More are left: run the action again for the next {sync_actions.RETRY_LIMIT:,}."
            if outcome.more_left
            else ""
        )
        self.message_user(request, f"{outcome.count:,} row(s) queued again.{more}", messages.SUCCESS)

    @admin.action(description="Skip selected", permissions=["sync"])
    def skip_selected(self, request: HttpRequest, queryset: QuerySet[OutboxItem]) -> HttpResponse | None:
        skippable = queryset.filter(state__in=sync_actions.SKIPPABLE_STATES)
        if dashboard.bounded_count(skippable, MAX_SKIP_SELECTION).capped:
            self.message_user(
                request, f"Select at most {MAX_SKIP_SELECTION:,} rows to skip. Nothing was skipped.", messages.ERROR
            )
            return None
        if not is_confirmed(request):
            return confirm_action(
                self,
                request,
                skippable.select_related("connection"),
                action="skip_selected",
                title="Skip outbox rows",
                explanation=(
                    "These rows will not be sent to the CRM. Rows already done or in flight are left alone. "
                    "The owner sees them leave the failed list."
                ),
                button="Yes, skip them",
            )
        outcome = sync_actions.skip(skippable, request=request, via="admin", limit=MAX_SKIP_SELECTION)
        self.message_user(request, f"{outcome.count:,} row(s) skipped.", messages.SUCCESS)
        return None


@admin.register(SyncRun)
class SyncRunAdmin(WithoutCredentialsMixin, LargeTableAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "pk",
        "account",
        "connection",
        "mode",
        "state",
        "started_at",
        "finished_at",
        "progress",
        "created",
        "updated",
        "unchanged",
        "failed",
        "activities",
        "api_calls",
        "rate_limited",
    )
    list_filter = ("mode", "state", "connection__provider")
    list_select_related = ("connection__account",)
    raw_id_fields = ("connection", "started_by")
    search_fields = ("=connection__account__slug",)
    search_help_text = "An account's slug, exactly."
    ordering = ("-pk",)
    fields = (
        "connection",
        "mode",
        "state",
        "started_by",
        "started_at",
        "finished_at",
        "progress",
        "total",
        "processed",
        "created",
        "updated",
        "unchanged",
        "failed",
        "skipped",
        "activities",
        "api_calls",
        "rate_limited",
        "error",
    )
    readonly_fields = ("progress",)

    @admin.display(description="Account", ordering="connection__account__name")
    def account(self, run: SyncRun) -> str:
        return str(run.connection.account)

    @admin.display(description="Progress")
    def progress(self, run: SyncRun) -> str:
        return _progress_html(run)


@admin.register(RecordLink)
class RecordLinkAdmin(WithoutCredentialsMixin, LargeTableAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("crm_id", "crm_object_type", "account", "connection", "prospect", "state", "last_synced_at")
    list_filter = ("state", RecordTypeFilter, "connection__provider")
    list_select_related = ("connection__account", "prospect")
    raw_id_fields = ("connection", "prospect")
    search_fields = ("=crm_id", "prospect__email")
    search_help_text = "A CRM record id exactly, or a prospect's e-mail address or its start."
    ordering = ("-pk",)

    @admin.display(description="Account", ordering="connection__account__name")
    def account(self, link: RecordLink) -> str:
        return str(link.connection.account)

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str):
        term = search_term.strip()
        if not term:
            return queryset, False
        if _looks_like_email(term):
            return queryset.filter(prospect_id__in=prospects_by_email(term)), False
        # Through link_crm_id_idx (connection, crm_id): one probe per connection.
        connection_ids = list(Connection.objects.order_by("pk").values_list("pk", flat=True))
        return queryset.filter(connection_id__in=connection_ids, crm_id=term), False


class ConnectionSync(Connection):
    """Connection, seen from the sync side: its queue, last sync and reliability, and "Sync now".

    A proxy so the admin has one page per concern: integrations/admin.py keeps the connection's
    settings and credentials' lifecycle, this one its sync."""

    class Meta:
        proxy = True
        app_label = "integrations"
        verbose_name = "connection sync"
        verbose_name_plural = "connection syncs"


@admin.register(ConnectionSync)
class ConnectionSyncAdmin(SyncActionPermissionMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "__str__",
        "account",
        "provider",
        "status",
        "sync_mode",
        "last_synced",
        "pending",
        "in_flight",
        "retry",
        "held",
        "failed",
    )
    list_filter = ("provider", "status", "sync_mode")
    list_select_related = ("account",)
    search_fields = ("account__name__istartswith", "=account__slug", "crm_account_name__istartswith")
    show_full_result_count = False
    actions = ("sync_now_all",)
    fields = (
        "account",
        "provider",
        "status",
        "status_reason",
        "crm_account_name",
        "sync_mode",
        "batch_schedule",
        "direction",
        "activated_at",
        "last_batch_at",
        "sync_dashboard",
    )
    readonly_fields = ("sync_dashboard",)

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        # Every number of the change list in the list's own query: one subquery per column, each
        # an index range capped like the owner's page, instead of five queries per row.
        return (
            super()
            .get_queryset(request)
            .annotate(
                last_synced_at=dashboard.last_synced_expression(),
                **{f"count_{state}": dashboard.bounded_state_count_sql(state) for state in dashboard.COUNTED_STATES},
            )
        )

    @admin.display(description="Last successful sync", ordering="last_synced_at")
    def last_synced(self, connection: Connection):
        return connection.last_synced_at or "never"

    @admin.display(description="Pending")
    def pending(self, connection: Connection) -> str:
        return _bounded(connection.count_pending)

    @admin.display(description="In flight")
    def in_flight(self, connection: Connection) -> str:
        return _bounded(connection.count_in_flight)

    @admin.display(description="Retry scheduled")
    def retry(self, connection: Connection) -> str:
        return _bounded(connection.count_retry)

    @admin.display(description="Waiting")
    def held(self, connection: Connection) -> str:
        return _bounded(connection.count_held)

    @admin.display(description="Failed")
    def failed(self, connection: Connection) -> str:
        return _bounded(connection.count_failed)

    @admin.display(description="Sync status")
    def sync_dashboard(self, connection: Connection) -> str:
        """The owner page's numbers for this one connection."""
        if connection.pk is None:
            return "—"
        (dash,) = dashboard.build([connection])
        counts = format_html_join(
            "",
            "<tr><th scope='row'>{}</th><td>{}</td></tr>",
            ((OutboxState(state).label, dash.counts[state]) for state in dashboard.COUNTED_STATES),
        )
        held = format_html_join("", "<li>{}: {}</li>", ((reason, f"{count:,}") for reason, count in dash.held))
        days = format_html_join(
            "",
            "<tr><th scope='row'>{}</th><td>{}</td><td>{}</td><td>{}</td></tr>",
            ((day.day.isoformat(), day.figure.on_time, day.figure.decided, day.figure.percent) for day in dash.days),
        )
        runs = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    f"{run.started_at:%Y-%m-%d %H:%M:%S}",
                    run.get_mode_display(),
                    run.get_state_display(),
                    _progress_html(run),
                    run.api_calls,
                    run.rate_limited,
                )
                for run in dash.runs
            ),
        )
        return format_html(
            "<p>Last successful sync: {}. Reliability target in this mode: {}. Today {}, last 7 days {} "
            "(requirement {}%).</p>"
            "<table><caption>Queue</caption><tbody>{}</tbody></table>{}"
            "<table><caption>Reliability per day (UTC)</caption><thead><tr><th scope='col'>Day</th>"
            "<th scope='col'>On time</th><th scope='col'>Counted</th><th scope='col'>Reliability</th></tr></thead>"
            "<tbody>{}</tbody></table>"
            "<table><caption>Latest runs</caption><thead><tr><th scope='col'>Started</th><th scope='col'>Mode</th>"
            "<th scope='col'>State</th><th scope='col'>Progress</th><th scope='col'>API calls</th>"
            "<th scope='col'>429s</th></tr></thead><tbody>{}</tbody></table>",
            dash.last_synced_at or "never",
            dashboard.describe_duration(dash.target),
            dash.today.percent,
            dash.week.percent,
            f"{dashboard.RELIABILITY_REQUIREMENT * 100:.1f}",
            counts,
            format_html("<p>Waiting, and why:</p><ul>{}</ul>", held) if dash.held else "",
            days,
            runs,
        )

    @admin.action(description="Sync now (all records)", permissions=["sync"])
    def sync_now_all(self, request: HttpRequest, queryset: QuerySet[Connection]) -> HttpResponse | None:
        chosen = list(queryset.select_related("account"))
        if not is_confirmed(request):
            return confirm_action(
                self,
                request,
                chosen,
                action="sync_now_all",
                title="Sync all records now",
                explanation=(
                    "Every record of these connections is checked against the CRM in a manual run. Unchanged records "
                    "cost no API call; changed ones use the CRM's API quota."
                ),
                button="Yes, sync now",
            )
        started, refused = 0, []
        for connection in chosen:
            refusal = sync_actions.sync_now_refusal(connection)
            if refusal:
                refused.append(f"{connection}: {refusal}")
                continue
            sync_actions.sync_now(connection, None, request=request, via="admin")
            started += 1
        if started:
            self.message_user(request, f"Sync started for {started} connection(s).", messages.SUCCESS)
        for line in refused:
            self.message_user(request, f"Not started: {line}", messages.WARNING)
        return None
