from django.apps import AppConfig


class MappingConfig(AppConfig):
    name = "mapping"
    verbose_name = "Field mapping"

    def ready(self) -> None:
        from crmsync import navigation
        from mapping import signals  # noqa: F401 - connects the receivers
        from mapping.source_groups import register_builtin_groups

        register_builtin_groups()
        navigation.register("Field mapping", "mapping:home", order=20)
