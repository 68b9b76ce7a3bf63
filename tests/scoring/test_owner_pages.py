"""The owner pages of lead scoring: tenancy, roles, validation, audit, distribution, lookup, progress."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from crmsync.models import AuditEntry, Prospect, Role
from scoring.models import GradeBand, ProspectScore, ScoreRecompute, ScoringRule
from tests.scoring.conftest import event


@pytest.fixture
def other_account(make_account):
    return make_account("Other Co")


@pytest.fixture
def login(client):
    def log_in(user):
        client.force_login(user)
        return client

    return log_in


@pytest.fixture
def admin_client(account, make_member, login):
    return login(make_member(account, Role.ADMIN))


@pytest.fixture
def viewer_client(account, make_member, login):
    return login(make_member(account, Role.VIEWER))


def url(name: str, account, **kwargs) -> str:
    return reverse(f"scoring:{name}", kwargs={"account_slug": account.slug, **kwargs})


def a_rule(account) -> ScoringRule:
    return ScoringRule.objects.filter(account=account).order_by("order").first()


RULE_FORM = {
    "name": "Pricing question",
    "event_type": "question_asked",
    "points": "25",
    "cap": "",
    "decay_half_life_days": "",
    "enabled": "on",
    "keyword": "",
    "pattern": r"pric(e|ing)",
    "min_seconds": "",
    "min_value": "",
    "max_score": "",
}


def band_form(*bands: tuple[str, int], delete: tuple[int, ...] = (), initial: int = 3) -> dict:
    """The bands page's POST; ``initial`` is how many bands the page showed (the defaults: 3)."""
    initial = min(initial, len(bands))
    data = {"form-TOTAL_FORMS": str(len(bands)), "form-INITIAL_FORMS": str(initial), "form-MAX_NUM_FORMS": "10"}
    for index, (name, minimum) in enumerate(bands):
        data[f"form-{index}-name"] = name
        data[f"form-{index}-min_score"] = str(minimum)
        if index in delete:
            data[f"form-{index}-DELETE"] = "on"
    return data


def field_error(response, field: str) -> str:
    """The error list Django renders beside ``field`` (its id ties it to the input), as text."""
    match = re.search(rf'<ul class="errorlist" id="id_{field}_error">(.*?)</ul>', response.content.decode(), re.S)
    assert match, f"no error beside {field}"
    return re.sub(r"<[^>]+>", "", match.group(1)).strip()


# --- tenancy -------------------------------------------------------------------------------------


def account_pages(account, rule_id: int, recompute_id: int) -> list[tuple[str, str]]:
    return [
        ("get", url("overview", account)),
        ("get", url("rule_create", account)),
        ("post", url("rule_create", account)),
        ("get", url("rule_edit", account, rule_id=rule_id)),
        ("post", url("rule_edit", account, rule_id=rule_id)),
        ("post", url("rule_toggle", account, rule_id=rule_id)),
        ("get", url("rule_delete", account, rule_id=rule_id)),
        ("post", url("rule_delete", account, rule_id=rule_id)),
        ("get", url("bands", account)),
        ("post", url("bands", account)),
        ("get", url("lookup", account) + "?email=ann@example.com"),
        ("post", url("recompute_start", account)),
        ("get", url("recompute_progress", account, recompute_id=recompute_id)),
    ]


def test_another_accounts_pages_are_not_found(account, other_account, make_member, login):
    recompute = ScoreRecompute.objects.create(account=account)
    client = login(make_member(other_account, Role.OWNER))

    for method, page in account_pages(account, a_rule(account).pk, recompute.pk):
        assert getattr(client, method)(page).status_code == 404, page

    assert ScoringRule.objects.filter(account=account).count() == 5
    assert not AuditEntry.objects.filter(account=account).exists()


def test_another_accounts_rule_and_recompute_are_not_found_on_my_pages(account, other_account, admin_client):
    theirs = a_rule(other_account)
    their_recompute = ScoreRecompute.objects.create(account=other_account)

    for method, page in [
        ("get", url("rule_edit", account, rule_id=theirs.pk)),
        ("post", url("rule_edit", account, rule_id=theirs.pk)),
        ("post", url("rule_toggle", account, rule_id=theirs.pk)),
        ("get", url("rule_delete", account, rule_id=theirs.pk)),
        ("post", url("rule_delete", account, rule_id=theirs.pk)),
        ("get", url("recompute_progress", account, recompute_id=their_recompute.pk)),
    ]:
        assert getattr(admin_client, method)(page, RULE_FORM if method == "post" else None).status_code == 404, page

    theirs.refresh_from_db()
    assert theirs.enabled and theirs.points == 5
    assert not AuditEntry.objects.exists()


def test_the_lookup_does_not_find_another_accounts_prospect(account, other_account, ingest, viewer_client):
    ingest(other_account, event("cta_clicked", "theirs@example.com"))

    response = viewer_client.get(url("lookup", account), {"email": "theirs@example.com"})

    assert response.status_code == 200
    assert "No prospect of this account has that e-mail address." in response.content.decode()
    assert "theirs@example.com</h2>" not in response.content.decode()


def test_anonymous_visitors_are_sent_to_sign_in(client, account):
    response = client.get(url("overview", account))

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


# --- roles ---------------------------------------------------------------------------------------


def test_a_viewer_can_read_but_not_change(account, viewer_client):
    recompute = ScoreRecompute.objects.create(account=account)
    rule = a_rule(account)
    reads = {
        url("overview", account),
        url("lookup", account) + "?email=ann@example.com",
        url("recompute_progress", account, recompute_id=recompute.pk),
    }

    for method, page in account_pages(account, rule.pk, recompute.pk):
        data = RULE_FORM if "rules" in page else band_form(("cold", 0))
        response = getattr(viewer_client, method)(page, data if method == "post" else None)
        assert response.status_code == (200 if page in reads else 403), page

    rule.refresh_from_db()
    assert (rule.name, rule.enabled) == ("Capsule view", True)
    assert ScoringRule.objects.filter(account=account).count() == 5
    assert GradeBand.objects.filter(account=account).count() == 3
    assert ScoreRecompute.objects.filter(account=account).count() == 1
    assert not AuditEntry.objects.exists()


def test_a_viewer_sees_no_edit_controls(account, viewer_client):
    page = viewer_client.get(url("overview", account)).content.decode()

    assert url("rule_create", account) not in page
    assert url("bands", account) not in page
    assert url("recompute_start", account) not in page


# --- rules ---------------------------------------------------------------------------------------


def test_an_admin_adds_a_rule(account, admin_client):
    response = admin_client.post(url("rule_create", account), RULE_FORM)

    assert response.status_code == 302
    rule = ScoringRule.objects.get(account=account, name="Pricing question")
    assert (rule.event_type, rule.points, rule.conditions, rule.enabled) == (
        "question_asked",
        25,
        {"pattern": "pric(e|ing)"},
        True,
    )
    assert rule.order == 5  # after the five defaults
    entry = AuditEntry.objects.get(action="scoring.rule_created")
    assert (entry.account, entry.object_id) == (account, str(rule.pk))
    assert entry.changes["points"] == 25
    assert entry.changes["conditions"] == {"pattern": "pric(e|ing)"}
    assert ScoreRecompute.objects.filter(account=account, state="pending").count() == 1


def test_an_invalid_pattern_is_shown_beside_its_field_and_nothing_is_written(account, admin_client):
    response = admin_client.post(url("rule_create", account), {**RULE_FORM, "pattern": "pric(e"})

    assert response.status_code == 200
    assert "not a valid regular expression" in field_error(response, "pattern")
    assert 'aria-invalid="true"' in response.content.decode()
    assert not ScoringRule.objects.filter(name="Pricing question").exists()
    assert not AuditEntry.objects.exists()
    assert not ScoreRecompute.objects.exists()


def test_a_condition_of_another_event_type_is_refused(account, admin_client):
    data = {**RULE_FORM, "event_type": "cta_clicked", "pattern": "", "keyword": "price"}

    response = admin_client.post(url("rule_create", account), data)

    assert response.status_code == 200
    assert "CTA clicked rules have no such condition" in field_error(response, "keyword")
    assert not ScoringRule.objects.filter(name="Pricing question").exists()


def test_an_out_of_range_threshold_is_refused(account, admin_client):
    data = {**RULE_FORM, "event_type": "sentiment", "pattern": "", "max_score": "-3", "points": "-10"}

    response = admin_client.post(url("rule_create", account), data)

    assert response.status_code == 200
    assert field_error(response, "max_score")
    assert not ScoringRule.objects.filter(name="Pricing question").exists()


def test_an_admin_edits_a_rule_and_the_change_is_audited(account, admin_client):
    rule = ScoringRule.objects.get(account=account, event_type="time_spent")
    data = {
        **RULE_FORM,
        "name": rule.name,
        "event_type": "time_spent",
        "points": "20",
        "pattern": "",
        "min_seconds": "600",
        "cap": "20",
    }

    response = admin_client.post(url("rule_edit", account, rule_id=rule.pk), data)

    assert response.status_code == 302
    rule.refresh_from_db()
    assert (rule.points, rule.cap, rule.conditions) == (20, 20, {"min_seconds": 600})
    changes = AuditEntry.objects.get(action="scoring.rule_changed").changes
    assert changes["points"] == {"before": 15, "after": 20}
    assert changes["min_seconds"] == {"before": 300, "after": 600}
    assert ScoreRecompute.objects.filter(account=account).count() == 1


def test_the_edit_form_shows_the_rules_conditions(account, admin_client):
    rule = ScoringRule.objects.get(account=account, event_type="time_spent")

    page = admin_client.get(url("rule_edit", account, rule_id=rule.pk)).content.decode()

    assert re.search(r'name="min_seconds"[^>]*value="300"|value="300"[^>]*name="min_seconds"', page)


def test_disabling_and_enabling_a_rule(account, admin_client):
    rule = a_rule(account)

    admin_client.post(url("rule_toggle", account, rule_id=rule.pk))
    rule.refresh_from_db()
    assert rule.enabled is False

    admin_client.post(url("rule_toggle", account, rule_id=rule.pk))
    rule.refresh_from_db()
    assert rule.enabled is True
    assert list(
        AuditEntry.objects.order_by("created_at", "id")
        .filter(action__startswith="scoring.rule_")
        .values_list("action", flat=True)
    ) == ["scoring.rule_disabled", "scoring.rule_enabled"]


def test_toggling_needs_a_post(account, admin_client):
    rule = a_rule(account)

    assert admin_client.get(url("rule_toggle", account, rule_id=rule.pk)).status_code == 405
    rule.refresh_from_db()
    assert rule.enabled


def test_deleting_a_rule_is_confirmed_first(account, admin_client):
    rule = a_rule(account)

    confirm = admin_client.get(url("rule_delete", account, rule_id=rule.pk))
    assert confirm.status_code == 200
    assert "Delete the rule “Capsule view”?" in confirm.content.decode()
    assert ScoringRule.objects.filter(pk=rule.pk).exists()

    response = admin_client.post(url("rule_delete", account, rule_id=rule.pk))

    assert response.status_code == 302
    assert not ScoringRule.objects.filter(pk=rule.pk).exists()
    entry = AuditEntry.objects.get(action="scoring.rule_deleted")
    assert (entry.object_id, entry.changes["name"]) == (str(rule.pk), "Capsule view")
    assert ScoreRecompute.objects.filter(account=account).count() == 1


# --- bands ---------------------------------------------------------------------------------------


def test_an_admin_changes_the_bands(account, admin_client):
    response = admin_client.post(
        url("bands", account), band_form(("cold", 0), ("warm", 30), ("hot", 60), ("fire", 120))
    )

    assert response.status_code == 302
    assert list(GradeBand.objects.filter(account=account).order_by("min_score").values_list("name", "min_score")) == [
        ("cold", 0),
        ("warm", 30),
        ("hot", 60),
        ("fire", 120),
    ]
    entry = AuditEntry.objects.get(action="scoring.bands_changed")
    assert entry.changes == {
        "before": {"cold": 0, "warm": 40, "hot": 80},
        "after": {"cold": 0, "warm": 30, "hot": 60, "fire": 120},
    }
    assert ScoreRecompute.objects.filter(account=account).count() == 1


def test_bands_can_swap_names_in_one_save(account, admin_client):
    admin_client.post(url("bands", account), band_form(("hot", 0), ("warm", 40), ("cold", 80)))

    assert list(GradeBand.objects.filter(account=account).order_by("min_score").values_list("name", flat=True)) == [
        "hot",
        "warm",
        "cold",
    ]


def test_a_band_can_be_deleted(account, admin_client):
    admin_client.post(url("bands", account), band_form(("cold", 0), ("warm", 40), ("hot", 80), delete=(1,)))

    assert list(GradeBand.objects.filter(account=account).values_list("name", flat=True)) == ["cold", "hot"]


@pytest.mark.parametrize(
    ("bands", "message"),
    [
        ((("cold", 0), ("warm", 0)), "More than one band starts at 0."),
        ((("cold", 0), ("cold", 50)), "The name “cold” is used by more than one band."),
    ],
)
def test_inconsistent_bands_are_refused_and_nothing_changes(account, admin_client, bands, message):
    response = admin_client.post(url("bands", account), band_form(*bands))

    assert response.status_code == 200
    assert message in response.content.decode()
    assert GradeBand.objects.filter(account=account).count() == 3
    assert not AuditEntry.objects.exists()


def test_a_band_name_must_be_a_slug(account, admin_client):
    response = admin_client.post(url("bands", account), band_form(("cold", 0), ("very hot!", 90)))

    assert response.status_code == 200
    assert field_error(response, "form-1-name")
    assert GradeBand.objects.filter(account=account).count() == 3


def test_deleting_every_band_is_refused(account, admin_client):
    response = admin_client.post(url("bands", account), band_form(("cold", 0), delete=(0,)))

    assert "Keep at least one grade band." in response.content.decode()
    assert GradeBand.objects.filter(account=account).count() == 3


# --- reading -------------------------------------------------------------------------------------


def test_the_page_shows_rules_grades_and_a_histogram(account, ingest, viewer_client):
    ingest(
        account,
        event("cta_clicked", "a@example.com"),
        event("cta_clicked", "a@example.com"),
        event("content_downloaded", "a@example.com"),
        event("capsule_viewed", "b@example.com"),
        event("cta_clicked", "c@example.com"),
        event("content_downloaded", "c@example.com"),
    )

    response = viewer_client.get(url("overview", account))

    page = response.content.decode()
    assert response.status_code == 200
    assert "Time spent over 5 minutes" in page and "total over 300 s" in page
    grades = dict(re.findall(r"<dt>(\w+)</dt><dd>(\d+)</dd>", page))
    assert grades == {"Cold": "1", "Warm": "1", "Hot": "1"}
    assert '<svg viewBox="0 0 600 180" role="img"' in page
    assert "0–9: 1; 10–19: 0; 20–29: 0; 30–39: 0; 40–49: 0; 50–59: 1" in page  # the SVG's text alternative
    assert '<th scope="row">80–89</th><td class="numeric">1</td>' in page


def test_the_lookup_shows_score_grade_and_breakdown(account, ingest, viewer_client):
    ingest(
        account,
        event("cta_clicked", "ann@example.com"),
        event("question_asked", "ann@example.com"),
        event("question_asked", "ann@example.com"),
    )

    response = viewer_client.get(url("lookup", account), {"email": "  ANN@example.com "})

    page = response.content.decode()
    assert "<dt>Score</dt><dd>50</dd>" in page
    assert "<dt>Grade</dt><dd>warm</dd>" in page
    rows = re.findall(
        r'<tr><th scope="row">([^<]+)</th><td class="numeric">(\d+)</td><td class="numeric">([+-]?\d+)</td>', page
    )
    assert rows == [("CTA clicked", "1", "+30"), ("Question asked", "2", "+20")]


def test_the_lookup_of_an_unscored_prospect(account, viewer_client):
    Prospect.objects.create(account=account, email="quiet@example.com")

    page = viewer_client.get(url("lookup", account), {"email": "quiet@example.com"}).content.decode()

    assert "This prospect has not been scored yet." in page


def test_the_lookup_validates_the_address(account, viewer_client):
    response = viewer_client.get(url("lookup", account), {"email": "not-an-address"})

    assert field_error(response, "email")


def test_the_scoring_page_is_in_the_navigation_and_the_overview(account, ingest, viewer_client):
    ingest(account, event("cta_clicked"), event("content_downloaded"))

    page = viewer_client.get(reverse("crmsync:overview", kwargs={"account_slug": account.slug})).content.decode()

    assert f'<a href="{url("overview", account)}">Lead scoring</a>' in page
    assert re.search(r"Lead scores</h2>.*<dt>Warm</dt><dd>1</dd>", page, re.S)


# --- recompute -----------------------------------------------------------------------------------


def test_an_admin_starts_a_recompute_by_hand(account, admin_client):
    response = admin_client.post(url("recompute_start", account))

    assert response.status_code == 302
    recompute = ScoreRecompute.objects.get(account=account)
    assert AuditEntry.objects.filter(action="scoring.recompute_started", object_id=str(recompute.pk)).exists()


def test_the_progress_fragment_reports_a_running_recompute(account, viewer_client):
    recompute = ScoreRecompute.objects.create(account=account, state="running", total=8, done=2)
    progress_url = url("recompute_progress", account, recompute_id=recompute.pk)

    response = viewer_client.get(progress_url)

    fragment = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in fragment
    assert f'<progress id="recompute-bar-{recompute.pk}" value="2" max="8">25 %</progress>' in fragment
    assert "2 of 8 prospects (25 %)" in fragment
    assert f'data-progress-url="{progress_url}"' in fragment
    assert "no-cache" in response["Cache-Control"]


def test_the_progress_fragment_stops_polling_when_done(account, viewer_client):
    recompute = ScoreRecompute.objects.create(account=account, state="done", total=8, done=8)

    fragment = viewer_client.get(url("recompute_progress", account, recompute_id=recompute.pk)).content.decode()

    assert "data-active" not in fragment
    assert "8 prospects" in fragment


def test_a_failed_recompute_shows_its_error(account, viewer_client):
    recompute = ScoreRecompute.objects.create(account=account, state="failed", total=8, done=3, error="boom")

    fragment = viewer_client.get(url("recompute_progress", account, recompute_id=recompute.pk)).content.decode()

    assert "failed after 3 of 8 prospects: boom" in fragment
    assert "data-active" not in fragment


def test_the_page_shows_the_running_recompute_and_polls_it(account, viewer_client):
    recompute = ScoreRecompute.objects.create(account=account, state="running", total=4, done=1)

    page = viewer_client.get(url("overview", account)).content.decode()

    assert f'data-progress-url="{url("recompute_progress", account, recompute_id=recompute.pk)}"' in page
    assert "scoring/recompute" in page and ".js" in page


def test_the_breakdown_page_counts_its_queries(account, ingest, viewer_client, django_assert_max_num_queries):
    ingest(account, *[event("cta_clicked", f"p{n}@example.com") for n in range(20)])
    ProspectScore.objects.update(score=55)

    # 13: the page's own queries plus the layout's (session, membership, nav, sync banners), none per prospect.
    with django_assert_max_num_queries(13):
        viewer_client.get(url("overview", account))


def test_saving_the_bands_unchanged_changes_nothing(account, admin_client):
    data = band_form(("cold", 0), ("warm", 40), ("hot", 80), ("", 0))
    data["form-3-min_score"] = ""  # the blank row for a new band, left blank

    response = admin_client.post(url("bands", account), data)

    assert response.status_code == 302
    assert GradeBand.objects.filter(account=account).count() == 3
    assert not AuditEntry.objects.exists()
    assert not ScoreRecompute.objects.exists()


def test_the_bands_page_shows_the_current_bands(account, admin_client):
    page = admin_client.get(url("bands", account)).content.decode()

    assert 'name="form-TOTAL_FORMS" value="4"' in page  # three bands and a blank row
    assert re.search(r'name="form-2-name"[^>]*value="hot"|value="hot"[^>]*name="form-2-name"', page)


def test_the_page_follows_the_running_recompute_rather_than_one_waiting_behind_it(account, viewer_client):
    running = ScoreRecompute.objects.create(account=account, state="running", total=4, done=1)
    ScoreRecompute.objects.create(account=account, state="pending")

    page = viewer_client.get(url("overview", account)).content.decode()

    assert url("recompute_progress", account, recompute_id=running.pk) in page
    assert "1 of 4 prospects" in page
