"""``field__any``: one array parameter on PostgreSQL, the same rows as ``__in``."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from crmsync.models import Prospect

pytestmark = pytest.mark.django_db


@pytest.fixture
def prospects(account):
    return Prospect.objects.bulk_create(
        [Prospect(account=account, email=f"any{i}@example.com", consent_granted=True) for i in range(30)]
    )


def test_any_selects_the_same_rows_as_in(prospects):
    wanted = [p.pk for p in prospects[::3]] + [10**12]  # and an id that does not exist
    assert sorted(Prospect.objects.filter(pk__any=wanted).values_list("pk", flat=True)) == sorted(wanted[:-1])
    assert set(Prospect.objects.filter(pk__any=wanted)) == set(Prospect.objects.filter(pk__in=wanted))


def test_an_empty_list_selects_nothing(prospects):
    assert list(Prospect.objects.filter(pk__any=[])) == []


def test_any_works_on_foreign_keys_and_in_updates(prospects, account):
    assert Prospect.objects.filter(account_id__any=[account.pk]).count() == 30
    changed = Prospect.objects.filter(pk__any=[p.pk for p in prospects[:5]]).update(company="Any Co")
    assert changed == 5 and Prospect.objects.filter(company="Any Co").count() == 5


def test_a_long_list_is_one_parameter_on_postgresql(prospects):
    ids = [p.pk for p in prospects] + list(range(10**9, 10**9 + 20_000))
    with CaptureQueriesContext(connection) as queries:
        assert len(list(Prospect.objects.filter(pk__any=ids))) == 30
    sql = queries.captured_queries[-1]["sql"]
    assert connection.vendor == "postgresql"
    assert "= ANY(" in sql and " IN (" not in sql


def test_in_account_unindexed_keeps_only_that_accounts_rows_without_offering_its_indexes(prospects, account):
    from crmsync.lookups import in_account_unindexed
    from crmsync.models import Account

    other = Account.objects.create(name="Other Co", slug="other-co")
    theirs = Prospect.objects.create(account=other, email="theirs@example.com")
    ids = [p.pk for p in prospects[:5]] + [theirs.pk]

    rows = in_account_unindexed(Prospect.objects.filter(pk__any=ids), account.pk)
    assert sorted(rows.values_list("pk", flat=True)) == sorted(ids[:-1])
    assert list(in_account_unindexed(Prospect.objects.filter(pk__any=ids), other.pk)) == [theirs]
    # The account is compared as an expression, which no index on the account column matches.
    with CaptureQueriesContext(connection) as queries:
        list(rows)
    assert '("crmsync_prospect"."account_id" + 0) =' in queries[-1]["sql"]
