from django.apps import AppConfig


class CrmSyncConfig(AppConfig):
    name = "crmsync"
    verbose_name = "Capsule CRM Sync"
