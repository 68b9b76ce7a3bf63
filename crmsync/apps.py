from django.apps import AppConfig


class CrmSyncConfig(AppConfig):
    name = "crmsync"
    verbose_name = "Capsule CRM Sync"

    def ready(self) -> None:
        from crmsync import lookups, navigation  # noqa: F401 - lookups registers field__any
        from crmsync.models import Role

        navigation.register("Overview", "crmsync:overview", order=0)
        navigation.register("API keys", "crmsync:api_keys", order=80)
        navigation.register("Members", "crmsync:members", order=85)
        navigation.register("Audit log", "crmsync:audit_log", order=90, min_role=Role.ADMIN)
        navigation.register("Account settings", "crmsync:account_settings", order=95)
