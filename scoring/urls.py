"""URLs of the lead scoring pages. Every page is an account_view under /a/<account_slug>/scoring/."""

from django.urls import path

from scoring.views import bands, lookup, overview, recompute, rules

app_name = "scoring"

urlpatterns = [
    path("a/<slug:account_slug>/scoring/", overview.overview, name="overview"),
    path("a/<slug:account_slug>/scoring/rules/new/", rules.rule_create, name="rule_create"),
    path("a/<slug:account_slug>/scoring/rules/<int:rule_id>/", rules.rule_edit, name="rule_edit"),
    path("a/<slug:account_slug>/scoring/rules/<int:rule_id>/toggle/", rules.rule_toggle, name="rule_toggle"),
    path("a/<slug:account_slug>/scoring/rules/<int:rule_id>/delete/", rules.rule_delete, name="rule_delete"),
    path("a/<slug:account_slug>/scoring/bands/", bands.bands, name="bands"),
    path("a/<slug:account_slug>/scoring/prospect/", lookup.lookup, name="lookup"),
    path("a/<slug:account_slug>/scoring/recompute/", recompute.recompute_start, name="recompute_start"),
    path(
        "a/<slug:account_slug>/scoring/recompute/<int:recompute_id>/progress",
        recompute.recompute_progress,
        name="recompute_progress",
    ),
]
