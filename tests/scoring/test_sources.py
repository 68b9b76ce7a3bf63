"""The score reaches the CRM through the mapping: the "score" source group and its loader."""

from __future__ import annotations

from crmsync.models import Prospect
from mapping import sources as mapping_sources
from scoring.sources import load_scores
from tests.scoring.conftest import event


def test_the_score_group_is_in_the_mapping_catalogue():
    fields = {field.key: field for field in mapping_sources.catalogue() if field.group == "score"}

    assert {key: field.type for key, field in fields.items()} == {
        "lead_score": "integer",
        "lead_grade": "string",
        "score_top_contributors": "string",
    }
    assert mapping_sources.resolve("lead_grade").label == "Lead grade"
    assert not mapping_sources.is_writable("lead_score")


def test_the_loader_answers_for_many_prospects_in_one_query(account, ingest, django_assert_num_queries):
    ingest(
        account,
        *[event("cta_clicked", f"p{n}@example.com") for n in range(30)],
        event("cta_clicked", "p0@example.com"),
        event("question_asked", "p0@example.com"),
        event("question_asked", "p0@example.com"),
        event("content_downloaded", "p0@example.com"),
    )
    ids = list(Prospect.objects.filter(account=account).values_list("pk", flat=True))
    first = Prospect.objects.get(email="p0@example.com").pk

    with django_assert_num_queries(1):
        values = load_scores(account, ids)

    assert len(values) == 30
    assert values[first] == {
        "lead_score": 100,
        "lead_grade": "hot",
        "score_top_contributors": "CTA clicked 60, Content downloaded 20, Question asked 20",
    }


def test_the_loader_leaves_out_other_accounts_and_unscored_prospects(account, make_account, ingest):
    other = make_account("Other Co")
    ingest(other, event("cta_clicked", "theirs@example.com"))
    theirs = Prospect.objects.get(account=other).pk
    unscored = Prospect.objects.create(account=account, email="new@example.com").pk

    assert load_scores(account, [theirs, unscored]) == {}


def test_the_registered_loader_is_this_one():
    group = next(group for group in mapping_sources.groups() if group.name == "score")

    assert group.loader is load_scores
