"""A connected CRM account: provider, status, encrypted credentials and sync settings."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from crmsync.models import Account
from integrations.fields import StrictEncryptedTextField
from integrations.registry import AUTH_KINDS, get_provider, provider_choices


class ConnectionStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    PAUSED = "paused", "Paused"
    NEEDS_REAUTH = "needs_reauth", "Needs re-authentication"
    ERROR = "error", "Error"
    DISCONNECTED = "disconnected", "Disconnected"


class AuthKind(models.TextChoices):
    OAUTH = AUTH_KINDS[0], "OAuth 2.0"
    PRIVATE_APP_TOKEN = AUTH_KINDS[1], "Private app token"
    API_KEY = AUTH_KINDS[2], "API key"


class RecordType(models.TextChoices):
    CONTACT = "contact", "Contact"
    LEAD = "lead", "Lead"


class SyncMode(models.TextChoices):
    REALTIME = "realtime", "Real time"
    BATCH = "batch", "Batch"
    MANUAL = "manual", "Manual"


class BatchSchedule(models.TextChoices):
    HOURLY = "hourly", "Hourly"
    DAILY = "daily", "Daily"


class Direction(models.TextChoices):
    TO_CRM = "to_crm", "Capsule → CRM"
    FROM_CRM = "from_crm", "CRM → capsule"
    BOTH = "both", "Both directions"


class LeadCreation(models.TextChoices):
    ON_IDENTIFY = "on_identify", "As soon as the prospect is identified"
    ON_SCORE = "on_score", "Once identified and over the score threshold"


class ConnectionQuerySet(models.QuerySet):
    def live(self) -> ConnectionQuerySet:
        return self.exclude(status=ConnectionStatus.DISCONNECTED)


class Connection(models.Model):
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="connections")
    provider = models.CharField(max_length=30, choices=provider_choices)
    auth_kind = models.CharField(max_length=30, choices=AuthKind.choices, default=AuthKind.OAUTH)
    status = models.CharField(max_length=20, choices=ConnectionStatus.choices, default=ConnectionStatus.ACTIVE)
    status_reason = models.CharField(max_length=500, blank=True)

    # The CRM account the credentials belong to, as the CRM names it.
    crm_account_id = models.CharField(max_length=100, blank=True)
    crm_account_name = models.CharField(max_length=200, blank=True)
    crm_user_email = models.CharField(max_length=254, blank=True)

    # Credentials: encrypted at rest; never shown in the admin, logs or errors.
    access_token = StrictEncryptedTextField(blank=True, default="")
    refresh_token = StrictEncryptedTextField(blank=True, default="")
    token_expires_at = models.DateTimeField(null=True, blank=True)
    scopes = models.JSONField(default=list, blank=True)
    # Per-connection API base (Salesforce instance_url, Pipedrive/Zoho api_domain, or --api-url).
    api_base_url = models.URLField(max_length=300, blank=True)
    # Non-secret values a token connection needs besides the token (ProviderSpec.token_extra_fields).
    auth_extra = models.JSONField(default=dict, blank=True)
    # Secret for authenticating this connection's inbound webhooks.
    webhook_secret = StrictEncryptedTextField(blank=True, default="")

    # Sync settings.
    record_type = models.CharField(max_length=10, choices=RecordType.choices, default=RecordType.CONTACT)
    sync_mode = models.CharField(max_length=10, choices=SyncMode.choices, default=SyncMode.REALTIME)
    batch_schedule = models.CharField(max_length=10, choices=BatchSchedule.choices, default=BatchSchedule.HOURLY)
    direction = models.CharField(max_length=10, choices=Direction.choices, default=Direction.TO_CRM)
    lead_creation = models.CharField(max_length=20, choices=LeadCreation.choices, default=LeadCreation.ON_IDENTIFY)
    score_threshold = models.PositiveIntegerField(default=0)
    # Provider-specific settings (ProviderSpec.connection_settings), e.g. Salesforce's bulk_threshold.
    provider_settings = models.JSONField(default=dict, blank=True)
    activated_at = models.DateTimeField(null=True, blank=True, help_text="When sync was switched on.")
    last_batch_at = models.DateTimeField(null=True, blank=True, help_text="When the last batch window was taken.")
    failure_digest_at = models.DateTimeField(
        null=True, blank=True, help_text="Failures up to this time have been reported to the owner."
    )

    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    connected_at = models.DateTimeField(default=timezone.now)
    disconnected_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ConnectionQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["account", "provider"],
                condition=~models.Q(status="disconnected"),
                name="connection_one_live_per_provider",
            )
        ]
        indexes = [models.Index(fields=["status", "sync_mode"], name="connection_status_mode_idx")]

    def __str__(self) -> str:
        name = self.crm_account_name or self.crm_account_id or "not identified"
        return f"{self.spec.label} ({name})"

    @property
    def spec(self):
        return get_provider(self.provider)

    @property
    def is_live(self) -> bool:
        return self.status != ConnectionStatus.DISCONNECTED

    def credentials(self):
        from integrations.connector import ConnectionCredentials

        return ConnectionCredentials(
            access_token=self.access_token,
            api_base_url=self.api_base_url or None,
            extra={"auth_kind": self.auth_kind, **(self.auth_extra or {})},
        )

    def connector(self, **http_hooks):
        """A connector for this connection with its current credentials (see integrations.credentials
        for tokens refreshed ahead of expiry)."""
        connector_class = self.spec.connector_class()
        credentials = self.credentials()
        http = connector_class.make_http(credentials, **http_hooks) if http_hooks else None
        return connector_class(
            credentials, http=http, settings={**(self.provider_settings or {}), "record_type": self.record_type}
        )

    def clean(self) -> None:
        from integrations.provider_settings import clean_provider_settings

        super().clean()
        try:
            self.provider_settings = clean_provider_settings(self.spec, self.provider_settings)
        except ValidationError as error:
            raise ValidationError({"provider_settings": error.messages}) from None

    def wipe_credentials(self) -> None:
        self.access_token = ""
        self.refresh_token = ""
        self.webhook_secret = ""
        self.token_expires_at = None
