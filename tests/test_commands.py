"""Management commands: create_account, erase_prospect and a small run of bench_ingest."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from crmsync.ingest import ingest_events
from crmsync.management.commands.bench_ingest import database_url
from crmsync.models import Account, ApiKey, AuditEntry, Event, Membership, Prospect, Role, Suppression
from tests.ingest_factories import event, validated

ROOT = Path(__file__).resolve().parent.parent


def command(name, *args):
    out, err = io.StringIO(), io.StringIO()
    call_command(name, *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def lines_to_dict(text):
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


# --- create_account ----------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_create_account_makes_account_owner_and_key_and_prints_them():
    out, _err = command(
        "create_account",
        "Acme Corp",
        "--owner-email",
        "Owner@Example.com",
        "--owner-password",
        "a long and unusual passphrase",
    )

    printed = lines_to_dict(out)
    assert set(printed) == {"ACCOUNT", "API_KEY"}
    account = Account.objects.get(slug=printed["ACCOUNT"])
    assert account.name == "Acme Corp"
    key = ApiKey.authenticate(printed["API_KEY"])
    assert key is not None and key.account == account
    owner = get_user_model().objects.get(email="owner@example.com")
    assert owner.check_password("a long and unusual passphrase")
    assert Membership.objects.get(account=account).user == owner
    assert Membership.objects.get(account=account).role == Role.OWNER
    entry = AuditEntry.objects.get(action="account.created")
    assert entry.account == account
    assert printed["API_KEY"] not in json.dumps(entry.changes) + entry.object_repr


@pytest.mark.django_db
def test_create_account_reuses_an_existing_user(make_account, make_member):
    existing = make_member(make_account("First Co"), Role.VIEWER, email="ann@example.com")

    out, err = command("create_account", "Second Co", "--owner-email", "ANN@example.com")

    account = Account.objects.get(slug=lines_to_dict(out)["ACCOUNT"])
    assert Membership.objects.get(account=account).user == existing
    assert get_user_model().objects.filter(email__iexact="ann@example.com").count() == 1
    assert "existing user" in err


@pytest.mark.django_db
def test_create_account_without_a_password_leaves_the_owner_to_set_one():
    _out, err = command("create_account", "Acme Corp", "--owner-email", "owner@example.com")

    assert not get_user_model().objects.get(email="owner@example.com").has_usable_password()
    assert "Forgot password" in err


@pytest.mark.django_db
def test_create_account_gives_a_unique_slug():
    command("create_account", "Acme Corp", "--owner-email", "a@example.com")
    Account.objects.filter(name="Acme Corp").update(name="Acme Corp (old)")

    out, _err = command("create_account", "Acme Corp", "--owner-email", "b@example.com")

    assert lines_to_dict(out)["ACCOUNT"] == "acme-corp-2"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["Acme Corp", "--owner-email", "x@example.com"], "already exists"),
        (["ACME CORP", "--owner-email", "x@example.com"], "already exists"),
        (["New Co", "--owner-email", "not-an-address"], "not a valid e-mail"),
        (["New Co", "--owner-email", "x@example.com", "--owner-password", "123"], "--owner-password"),
        (["  ", "--owner-email", "x@example.com"], "must not be empty"),
    ],
)
def test_create_account_refuses_bad_input_and_writes_nothing(make_account, args, message):
    make_account("Acme Corp")

    with pytest.raises(CommandError, match=message):
        command("create_account", *args)

    assert Account.objects.count() == 1
    assert not get_user_model().objects.filter(email="x@example.com").exists()


def _manage(*args):
    # The subprocess uses this test's database (committed data: transaction=True tests).
    env = {**os.environ, "DATABASE_URL": database_url(), "DJANGO_SETTINGS_MODULE": "tests.settings"}
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.django_db(transaction=True)
def test_create_account_with_a_taken_name_exits_non_zero_with_a_message_on_stderr(make_account):
    make_account("Acme Corp")

    result = _manage("create_account", "Acme Corp", "--owner-email", "x@example.com")

    assert result.returncode != 0
    assert "An account named 'Acme Corp' already exists" in result.stderr
    assert "API_KEY=" not in result.stdout


# --- erase_prospect ----------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_erase_prospect_erases_and_says_what_it_did(account):
    ingest_events(
        account,
        validated(event(email="ann@example.com", visitor_id="v1"), event(email="ann@example.com")),
        actor_label="test",
    )
    prospect = Prospect.objects.get()

    out, _err = command("erase_prospect", "--account", account.slug, "--email", "Ann@Example.com")

    assert f"Erased prospect #{prospect.pk}" in out
    assert "2 events and 1 visitors deleted" in out
    assert "ann@example.com" not in out.lower()
    assert Prospect.objects.get().erased
    assert not Event.objects.exists()
    assert Suppression.is_suppressed(account, "ann@example.com")
    assert AuditEntry.objects.get(action="prospect.erased").actor_label == "cli erase_prospect"


@pytest.mark.django_db
@pytest.mark.parametrize(("account_slug", "message"), [("no-such-account", "No account"), (None, "no prospect")])
def test_erase_prospect_of_an_unknown_account_or_address_fails(account, account_slug, message):
    ingest_events(account, validated(event(email="ann@example.com")), actor_label="test")

    with pytest.raises(CommandError, match=message):
        command("erase_prospect", "--account", account_slug or account.slug, "--email", "bob@example.com")

    assert not Prospect.objects.get().erased
    assert not Suppression.objects.exists()


# --- bench_ingest ------------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_bench_ingest_reports_figures_and_cleans_up():
    out, err = command(
        "bench_ingest",
        "--events",
        "120",
        "--batch",
        "40",
        "--single",
        "20",
        "--concurrency",
        "2",
        "--people",
        "30",
        "--workers",
        "1",
        "--threads",
        "2",
    )

    figures = json.loads(out.strip().splitlines()[-1])
    assert (figures["single_events"], figures["batched_events"], figures["errors"]) == (20, 120, 0)
    assert figures["single_events_per_s"] > 0
    assert figures["batched_events_per_s"] > 0
    # CPU per 1,000 events, read from /proc: the workers' always, PostgreSQL's when it runs here.
    assert figures["batched_web_cpu_ms_per_1000_events"] > 0
    assert "batched_cpu_ms_per_1000_events" in figures and "single_p99_ms" in figures
    assert figures["events_stored"] == 20 + 120 + 80 + 50  # and the warm-up's
    assert "events/s" in out
    # The throwaway account (and its events) is gone, and so is gunicorn.
    assert not Account.objects.exists()
    assert not Event.objects.exists()
    group = int(re.search(r"gunicorn started, process group (\d+)", err).group(1))
    with pytest.raises(ProcessLookupError):
        os.killpg(group, 0)  # no process of gunicorn's group (master or worker) is left
