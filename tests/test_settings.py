"""Settings read from the environment: a bad value stops start-up naming the variable; .env.example is complete."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Variables the service reads that are not configuration for operators, so not in .env.example.
INTERNAL_VARIABLES = {
    "CRMSYNC_TESTING",  # set by tests/settings.py only: switches test-only behaviour on
}

VALID_ENV = {
    "DJANGO_SETTINGS_MODULE": "crmsync.settings",
    "DEBUG": "false",
    "SECRET_KEY": "settings-test-secret-key-0123456789-abcdefghij",
    "FIELD_ENCRYPTION_KEY": "dGVzdC1vbmx5LWZpZWxkLWVuY3J5cHRpb24ta2V5ISE=",
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/crmsync",
    "REDIS_URL": "redis://127.0.0.1:6379/15",
    "ALLOWED_HOSTS": "127.0.0.1",
}


def run(code_or_args: list[str], env_changes: dict[str, str | None]) -> subprocess.CompletedProcess:
    # A clean environment: only what Python needs plus the variables under test.
    env = {name: os.environ[name] for name in ("PATH", "HOME", "LANG", "SYSTEMROOT") if name in os.environ}
    env.update(VALID_ENV)
    for name, value in env_changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return subprocess.run(
        [sys.executable, *code_or_args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_the_valid_environment_passes_the_check():
    result = run(["manage.py", "check"], {})
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("variable", "changes"),
    [
        ("DEBUG", {"DEBUG": "maybe"}),
        ("DATABASE_URL", {"DATABASE_URL": "nonsense://x"}),
        ("REDIS_URL", {"REDIS_URL": "http://x"}),
        ("FIELD_ENCRYPTION_KEY", {"FIELD_ENCRYPTION_KEY": "short"}),
        ("FIELD_ENCRYPTION_KEY", {"FIELD_ENCRYPTION_KEY": None}),
        ("SECRET_KEY", {"SECRET_KEY": None, "DEBUG": "false"}),
        ("SECRET_KEY", {"SECRET_KEY": "too-short"}),
        ("EMAIL_PORT", {"EMAIL_PORT": "abc"}),
        ("ACCOUNT_EMAIL_VERIFICATION", {"ACCOUNT_EMAIL_VERIFICATION": "sometimes"}),
        ("INGEST_MAX_BODY_BYTES", {"INGEST_MAX_BODY_BYTES": "10"}),
        ("API_KEY_RATE_LIMIT", {"API_KEY_RATE_LIMIT": "lots"}),
        ("LOG_LEVEL", {"LOG_LEVEL": "LOUD"}),
    ],
    ids=lambda value: value if isinstance(value, str) else "-".join(f"{k}={v}" for k, v in value.items()),
)
def test_a_bad_value_stops_start_up_naming_the_variable(variable, changes):
    result = run(["manage.py", "check"], changes)

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert variable in result.stderr.splitlines()[-1]


_READ_AFTER_START_UP = """
import json
import django
from django.urls import get_resolver

django.setup()
get_resolver().url_patterns  # import every view module too: they could read variables as well
from crmsync.env import READ_VARIABLES

print(json.dumps(sorted(READ_VARIABLES)))
"""


def test_env_example_lists_exactly_the_variables_read():
    result = run(["-c", _READ_AFTER_START_UP], {})
    assert result.returncode == 0, result.stderr
    read = set(json.loads(result.stdout.splitlines()[-1]))
    documented = set(re.findall(r"^([A-Z][A-Z0-9_]*)=", (ROOT / ".env.example").read_text(), flags=re.MULTILINE))

    assert sorted(read - INTERNAL_VARIABLES - documented) == [], "read but not documented in .env.example"
    assert sorted(documented - read) == [], "documented in .env.example but never read"
    assert INTERNAL_VARIABLES <= read, "an internal variable is no longer read: drop it from INTERNAL_VARIABLES"
