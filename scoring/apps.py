from django.apps import AppConfig
from django.core.exceptions import ImproperlyConfigured


class ScoringConfig(AppConfig):
    name = "scoring"
    verbose_name = "Lead scoring"

    def ready(self) -> None:
        from django.db.models.signals import post_save

        from crmsync import navigation
        from crmsync.models import Account
        from crmsync.views.overview import register_panel
        from scoring import receivers, sources
        from scoring.hooks import score_ingested
        from scoring.triggers.hooks import install as install_triggers
        from scoring.views.overview import overview_panel_context

        post_save.connect(receivers.create_default_scoring, sender=Account, dispatch_uid="scoring.default_rules")
        navigation.register("Lead scoring", "scoring:overview", order=30)
        register_panel("scoring/_overview_panel.html", order=30, context=overview_panel_context)

        try:
            from crmsync.ingest import register_ingest_hook
        except ModuleNotFoundError as exc:
            if exc.name != "crmsync.ingest":
                raise
            raise ImproperlyConfigured(
                "scoring needs crmsync.ingest.register_ingest_hook to score prospects as events arrive"
            ) from exc
        register_ingest_hook(score_ingested)
        install_triggers()  # after score_ingested, so trigger rules see this ingest's scores and grades

        try:
            sources.register()
        except ModuleNotFoundError as exc:
            if exc.name != "mapping.sources":
                raise
            raise ImproperlyConfigured(
                "scoring needs mapping.sources.register_source_group to send lead_score, lead_grade and "
                "score_top_contributors to CRMs"
            ) from exc
