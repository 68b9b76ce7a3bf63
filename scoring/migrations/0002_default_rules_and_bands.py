"""Give every account that exists already the default scoring rules and grade bands.

New accounts get them from the post_save receiver (scoring.receivers); both use
scoring.defaults.create_defaults, which skips an account that has rules or bands of its own.
"""

from django.db import migrations

from scoring.defaults import create_defaults


def add_defaults(apps, schema_editor):
    Account = apps.get_model("crmsync", "Account")
    ScoringRule = apps.get_model("scoring", "ScoringRule")
    GradeBand = apps.get_model("scoring", "GradeBand")
    for account_id in Account.objects.values_list("pk", flat=True).iterator():
        create_defaults(account_id, ScoringRule, GradeBand)


class Migration(migrations.Migration):
    dependencies = [
        ("scoring", "0001_initial"),
    ]

    operations = [
        migrations.RunPython(add_defaults, migrations.RunPython.noop),
    ]
