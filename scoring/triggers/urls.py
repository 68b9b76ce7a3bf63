"""URLs of the workflow trigger pages. Every page is an account_view under /a/<account_slug>/triggers/."""

from django.urls import path

from scoring.triggers import views

app_name = "triggers"

urlpatterns = [
    path("a/<slug:account_slug>/triggers/", views.rules, name="rules"),
    path("a/<slug:account_slug>/triggers/new/", views.rule_create, name="rule_create"),
    path("a/<slug:account_slug>/triggers/firings/", views.firings, name="firings"),
    path("a/<slug:account_slug>/triggers/<int:rule_id>/", views.rule_edit, name="rule_edit"),
    path("a/<slug:account_slug>/triggers/<int:rule_id>/toggle/", views.rule_toggle, name="rule_toggle"),
    path("a/<slug:account_slug>/triggers/<int:rule_id>/delete/", views.rule_delete, name="rule_delete"),
]
