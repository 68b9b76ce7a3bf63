"""Every account starts with the brief's rules and the cold/warm/hot bands."""

from __future__ import annotations

from crmsync.models import Account
from scoring.defaults import create_defaults
from scoring.models import GradeBand, ScoringRule


def test_a_new_account_gets_the_default_rules(account):
    rules = ScoringRule.objects.filter(account=account).order_by("order")

    assert [(r.name, r.event_type, r.points, r.conditions, r.enabled) for r in rules] == [
        ("Capsule view", "capsule_viewed", 5, {}, True),
        ("Question asked", "question_asked", 10, {}, True),
        ("Time spent over 5 minutes", "time_spent", 15, {"min_seconds": 300}, True),
        ("Content downloaded", "content_downloaded", 20, {}, True),
        ("CTA clicked", "cta_clicked", 30, {}, True),
    ]


def test_a_new_account_gets_the_default_bands(account):
    bands = GradeBand.objects.filter(account=account).order_by("min_score")

    assert [(b.name, b.min_score) for b in bands] == [("cold", 0), ("warm", 40), ("hot", 80)]


def test_default_rules_are_valid_rules(account):
    for rule in ScoringRule.objects.filter(account=account):
        rule.full_clean()  # raises if a default does not pass the rule's own validation


def test_saving_an_account_again_does_not_bring_deleted_rules_back(account):
    ScoringRule.objects.filter(account=account).delete()

    account.name = "Acme Renamed"
    account.save()

    assert not ScoringRule.objects.filter(account=account).exists()


def test_creating_defaults_twice_creates_them_once(account):
    create_defaults(account.pk, ScoringRule, GradeBand)

    assert ScoringRule.objects.filter(account=account).count() == 5
    assert GradeBand.objects.filter(account=account).count() == 3


def test_defaults_skip_an_account_that_has_its_own(db):
    account = Account.objects.create(name="Own Rules", slug="own-rules")
    ScoringRule.objects.filter(account=account).exclude(event_type="cta_clicked").delete()
    GradeBand.objects.filter(account=account).delete()

    create_defaults(account.pk, ScoringRule, GradeBand)

    assert list(ScoringRule.objects.filter(account=account).values_list("name", flat=True)) == ["CTA clicked"]
    assert GradeBand.objects.filter(account=account).count() == 3  # bands had none, so they came back


def test_the_data_migration_gives_existing_accounts_the_defaults(account):
    import importlib

    from django.apps import apps

    migration = importlib.import_module("scoring.migrations.0002_default_rules_and_bands")
    ScoringRule.objects.filter(account=account).delete()
    GradeBand.objects.filter(account=account).delete()

    migration.add_defaults(apps, None)
    migration.add_defaults(apps, None)

    assert ScoringRule.objects.filter(account=account).count() == 5
    assert GradeBand.objects.filter(account=account).count() == 3
