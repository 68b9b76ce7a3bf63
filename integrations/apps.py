from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    name = "integrations"
    verbose_name = "CRM integrations"

    def ready(self) -> None:
        from crmsync import navigation
        from integrations import checks  # noqa: F401 - registers the system checks

        navigation.register("CRM connection", "integrations:connections", order=10)
