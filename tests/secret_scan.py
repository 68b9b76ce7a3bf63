"""No token, API key or webhook secret in any log line across the whole test run (invariant 4).

Registered for the whole suite from tests/conftest.py. For the session, a handler on the root
logger keeps every log line the suite produces (message and exception text, formatted after the
same redaction filter the production handler uses, so a line counts as a leak only if it would
reach a log). Every sandbox emulator the tests create reports the secrets it hands out in
``EmulatorApp.secrets_issued``; the scan keeps a reference to each of those lists (by wrapping the
constructor for the session, and by a ``gc`` sweep for emulators made before it started). At the
end of the session the run fails if any issued secret, or any of our raw API keys (``csk_``
followed by 20 or more characters), appears in a captured line; the failure names the logger and
the file and line that logged it.

Lines logged by test code itself (files under tests/) are not scanned: a few tests log a secret
on purpose to prove their own scanners work. Processes the tests start (workers, ``manage.py``
commands) log to their own streams; they are not captured here.
"""

from __future__ import annotations

import gc
import logging
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from crmsync.logging import RedactSecretsFilter

API_KEY = re.compile(r"csk_[A-Za-z0-9_-]{20,}")
TESTS_DIR = str(Path(__file__).resolve().parent) + "/"
MIN_SECRET_LENGTH = 8  # shorter "secrets" would match ordinary words


class CapturingHandler(logging.Handler):
    """Keeps each distinct formatted line with where it was logged from."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.addFilter(RedactSecretsFilter())
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
        self.lines: dict[str, str] = {}
        self.issued: list[list[str]] = []  # each emulator's secrets_issued list (set by the fixture)
        self._guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        if record.pathname.startswith(TESTS_DIR):
            return  # a test's own deliberate line (scanner self-tests), not the product's
        try:
            text = self.format(record)
        except Exception:  # a record whose arguments do not format: keep what we can
            text = f"{record.levelname} {record.name} {record.msg!r} {record.args!r}"
        with self._guard:
            self.lines.setdefault(text, f"{record.pathname}:{record.lineno} (logger {record.name})")


def _emulator_class():
    from integrations.sandbox.core import EmulatorApp

    return EmulatorApp


def find_leaks(lines: dict[str, str], secrets: set[str]) -> list[str]:
    """One message per (secret, line) found: what leaked and which file and line logged it."""
    leaks = []
    text = "\n".join(lines)
    for secret in sorted(secrets):
        if len(secret) < MIN_SECRET_LENGTH or secret not in text:
            continue
        for line, origin in lines.items():
            if secret in line:
                leaks.append(f"an emulator-issued secret ({secret[:4]}…) logged at {origin}: {line[:300]}")
    for match in sorted(set(API_KEY.findall(text))):
        for line, origin in lines.items():
            if match in line:
                leaks.append(f"a raw API key ({match[:8]}…) logged at {origin}: {line[:300]}")
    return leaks


@pytest.fixture(scope="session", autouse=True)
def secret_scan() -> Iterator[CapturingHandler]:
    emulator_class = _emulator_class()
    issued: list[list[str]] = [obj.secrets_issued for obj in gc.get_objects() if isinstance(obj, emulator_class)]
    original_init = emulator_class.__init__

    def recording_init(self, *args, **kwargs) -> None:
        original_init(self, *args, **kwargs)
        issued.append(self.secrets_issued)  # the list, not the app: emulators can still be freed

    handler = CapturingHandler()
    handler.issued = issued
    root = logging.getLogger()
    root.addHandler(handler)
    emulator_class.__init__ = recording_init
    try:
        yield handler
    finally:
        emulator_class.__init__ = original_init
        root.removeHandler(handler)
    # type(), not isinstance(): isinstance reads __class__, which makes a lazy object (a request's user
    # left in uncollected garbage) load itself from the database at the end of the session.
    issued += [obj.secrets_issued for obj in gc.get_objects() if issubclass(type(obj), emulator_class)]
    secrets = {secret for secrets in issued for secret in secrets}
    leaks = find_leaks(handler.lines, secrets)
    if leaks:
        pytest.fail(f"{len(leaks)} secret(s) found in log lines:\n" + "\n".join(leaks[:50]), pytrace=False)
