"""The ops admin of scoring: every change audited and followed by a recompute; scores read-only."""

from __future__ import annotations

import pytest
from django.urls import reverse

from crmsync.models import AuditEntry
from scoring.models import GradeBand, ProspectScore, ScoreRecompute, ScoringRule
from tests.scoring.conftest import event


def rule_data(rule: ScoringRule, **changes) -> dict:
    data = {
        "account": rule.account_id,
        "name": rule.name,
        "event_type": rule.event_type,
        "points": rule.points,
        "cap": rule.cap or "",
        "decay_half_life_days": rule.decay_half_life_days or "",
        "enabled": "on" if rule.enabled else "",
        "order": rule.order,
        "min_seconds": rule.conditions.get("min_seconds", ""),
        "keyword": rule.conditions.get("keyword", ""),
        "pattern": rule.conditions.get("pattern", ""),
        "min_value": "",
        "max_score": "",
        "_save": "Save",
    }
    data.update(changes)
    return {key: value for key, value in data.items() if value != "" or key not in ("enabled",)}


def test_changing_a_rule_in_the_admin_is_audited_and_recomputes(account, admin_client):
    rule = ScoringRule.objects.get(account=account, event_type="time_spent")

    response = admin_client.post(
        reverse("admin:scoring_scoringrule_change", args=[rule.pk]), rule_data(rule, points=25, min_seconds=120)
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    rule.refresh_from_db()
    assert (rule.points, rule.conditions) == (25, {"min_seconds": 120})
    entry = AuditEntry.objects.get(action="admin.scoringrule.changed")
    assert entry.changes["points"] == {"before": 15, "after": 25}
    assert entry.account == account
    assert ScoreRecompute.objects.filter(account=account, state="pending").count() == 1


def test_an_invalid_pattern_in_the_admin_writes_nothing(account, admin_client):
    rule = ScoringRule.objects.get(account=account, event_type="question_asked")

    response = admin_client.post(
        reverse("admin:scoring_scoringrule_change", args=[rule.pk]), rule_data(rule, pattern="[unclosed")
    )

    assert response.status_code == 200
    assert "not a valid regular expression" in response.content.decode()
    rule.refresh_from_db()
    assert rule.conditions == {}
    assert not AuditEntry.objects.exists()
    assert not ScoreRecompute.objects.exists()


def test_editing_points_in_the_list_recomputes_once(account, admin_client):
    rules = list(ScoringRule.objects.filter(account=account).order_by("pk"))
    data = {"form-TOTAL_FORMS": str(len(rules)), "form-INITIAL_FORMS": str(len(rules)), "_save": "Save"}
    for index, rule in enumerate(rules):
        data[f"form-{index}-id"] = rule.pk
        data[f"form-{index}-points"] = rule.points * 2
        data[f"form-{index}-enabled"] = "on"

    response = admin_client.post(reverse("admin:scoring_scoringrule_changelist") + "?o=0", data)

    assert response.status_code == 302
    assert sorted(ScoringRule.objects.filter(account=account).values_list("points", flat=True)) == [10, 20, 30, 40, 60]
    assert AuditEntry.objects.filter(action="admin.scoringrule.changed").count() == 5
    assert ScoreRecompute.objects.filter(account=account).count() == 1  # five changes, one recompute


def test_deleting_a_band_in_the_admin_recomputes(account, admin_client):
    band = GradeBand.objects.get(account=account, name="warm")

    response = admin_client.post(reverse("admin:scoring_gradeband_delete", args=[band.pk]), {"post": "yes"})

    assert response.status_code == 302
    assert not GradeBand.objects.filter(pk=band.pk).exists()
    assert AuditEntry.objects.filter(action="admin.gradeband.deleted", object_id=str(band.pk)).exists()
    assert ScoreRecompute.objects.filter(account=account).count() == 1


def test_a_band_with_a_taken_minimum_is_refused_in_the_admin(account, admin_client):
    response = admin_client.post(
        reverse("admin:scoring_gradeband_add"), {"account": account.pk, "name": "lukewarm", "min_score": 40}
    )

    assert response.status_code == 200
    assert GradeBand.objects.filter(account=account).count() == 3


def test_recompute_now_starts_a_recompute_per_account(account, make_account, admin_client):
    other = make_account("Other Co")

    response = admin_client.post(
        reverse("admin:scoring_scoringaccount_changelist"),
        {"action": "recompute_now", "_selected_action": [account.pk, other.pk]},
    )

    assert response.status_code == 302
    assert set(ScoreRecompute.objects.values_list("account_id", flat=True)) == {account.pk, other.pk}
    assert AuditEntry.objects.filter(action="scoring.recompute_started").count() == 2


def test_the_account_scoring_page_lists_rules_and_bands(account, admin_client):
    page = admin_client.get(reverse("admin:scoring_scoringaccount_change", args=[account.pk])).content.decode()

    assert "Time spent over 5 minutes" in page
    assert 'value="warm"' in page


def test_prospect_scores_are_read_only_searchable_and_show_the_breakdown(account, ingest, admin_client):
    ingest(
        account,
        event("cta_clicked", "ann@example.com"),
        event("question_asked", "ann@example.com"),
        event("capsule_viewed", "bob@example.com"),
    )
    ann = ProspectScore.objects.get(prospect__email="ann@example.com")

    listing = admin_client.get(reverse("admin:scoring_prospectscore_changelist"), {"q": "ANN@"}).content.decode()
    detail = admin_client.get(reverse("admin:scoring_prospectscore_change", args=[ann.pk])).content.decode()

    assert "ann@example.com" in listing and "bob@example.com" not in listing
    assert "<tr><td>CTA clicked</td><td>1</td><td>30</td></tr>" in detail
    assert admin_client.get(reverse("admin:scoring_prospectscore_add")).status_code == 403


@pytest.mark.parametrize("grade", ["cold", "warm"])
def test_prospect_scores_filter_by_grade(account, ingest, admin_client, grade):
    ingest(
        account,
        event("cta_clicked", "warm@example.com"),
        event("content_downloaded", "warm@example.com"),
        event("capsule_viewed", "cold@example.com"),
    )

    listing = admin_client.get(reverse("admin:scoring_prospectscore_changelist"), {"grade": grade}).content.decode()

    assert f"{grade}@example.com" in listing
    assert f"{'cold' if grade == 'warm' else 'warm'}@example.com" not in listing


def test_recomputes_and_grade_changes_are_listed_read_only(account, ingest, admin_client):
    ingest(account, event("cta_clicked"), event("content_downloaded"))
    ScoreRecompute.objects.create(account=account, state="done", total=1, done=1)

    for name in ("scorerecompute", "gradechange"):
        assert admin_client.get(reverse(f"admin:scoring_{name}_changelist")).status_code == 200
        assert admin_client.get(reverse(f"admin:scoring_{name}_add")).status_code == 403


def inline_data(account, **band_points) -> dict:
    """The account scoring page's POST: both inlines as they are, with some band minimums changed."""
    bands = list(GradeBand.objects.filter(account=account).order_by("pk"))
    rules = list(ScoringRule.objects.filter(account=account).order_by("pk"))
    data = {
        "grade_bands-TOTAL_FORMS": len(bands),
        "grade_bands-INITIAL_FORMS": len(bands),
        "scoring_rules-TOTAL_FORMS": len(rules),
        "scoring_rules-INITIAL_FORMS": len(rules),
        "_save": "Save",
    }
    for index, band in enumerate(bands):
        prefix = f"grade_bands-{index}-"
        data |= {
            prefix + "id": band.pk,
            prefix + "account": account.pk,
            prefix + "name": band.name,
            prefix + "min_score": band_points.get(band.name, band.min_score),
        }
    for index, rule in enumerate(rules):
        prefix = f"scoring_rules-{index}-"
        data |= {
            prefix + "id": rule.pk,
            prefix + "account": account.pk,
            prefix + "name": rule.name,
            prefix + "event_type": rule.event_type,
            prefix + "points": rule.points,
            prefix + "enabled": "on",
            prefix + "order": rule.order,
            prefix + "min_seconds": rule.conditions.get("min_seconds", ""),
        }
    return data


def test_changing_bands_inline_is_audited_and_recomputes(account, admin_client):
    response = admin_client.post(
        reverse("admin:scoring_scoringaccount_change", args=[account.pk]), inline_data(account, warm=35)
    )

    assert response.status_code == 302, response.content.decode()[:3000]
    assert GradeBand.objects.get(account=account, name="warm").min_score == 35
    assert ScoringRule.objects.get(account=account, event_type="time_spent").conditions == {"min_seconds": 300}
    assert AuditEntry.objects.filter(action="admin.gradeband.changed").count() == 1
    assert ScoreRecompute.objects.filter(account=account).count() == 1


def test_inline_bands_that_clash_are_refused(account, admin_client):
    response = admin_client.post(
        reverse("admin:scoring_scoringaccount_change", args=[account.pk]), inline_data(account, warm=80)
    )

    assert response.status_code == 200
    assert GradeBand.objects.get(account=account, name="warm").min_score == 40
    assert not ScoreRecompute.objects.exists()


def test_the_account_scoring_list_costs_the_same_for_many_accounts(
    account, make_account, admin_client, django_assert_max_num_queries
):
    for n in range(10):
        ScoreRecompute.objects.create(account=make_account(f"Company {n}"), state="done", total=3, done=3)

    with django_assert_max_num_queries(8):
        page = admin_client.get(reverse("admin:scoring_scoringaccount_changelist")).content.decode()

    assert page.count("Done (3/3)") == 10
