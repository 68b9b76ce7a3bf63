from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    name = "integrations"
    verbose_name = "CRM integrations"

    def ready(self) -> None:
        from crmsync import navigation
        from crmsync.ingest import register_ingest_hook
        from integrations import (
            checks,  # noqa: F401 - registers the system checks
            dashboard,  # noqa: F401 - registers the "Sync status" nav entry
        )
        from integrations.sync.outbox import enqueue_for_events

        navigation.register("CRM connection", "integrations:connections", order=10)
        navigation.register("Webhooks", "integrations:webhooks", order=60)
        # Outbox rows are written in the ingest transaction (DESIGN.md data flow).
        register_ingest_hook(enqueue_for_events)

        from crmsync.privacy import register_erasure_hook
        from integrations.sync.outbox import enqueue_crm_erasure

        register_erasure_hook(enqueue_crm_erasure)  # an erased person is deleted in each CRM

        from integrations.webhooks_out import hooks as webhook_hooks

        webhook_hooks.install()  # idempotent: capsule events and grade changes → outgoing webhooks

        from integrations.inbound import registration

        registration.install()  # CRM webhook subscriptions made on connect, removed on disconnect
