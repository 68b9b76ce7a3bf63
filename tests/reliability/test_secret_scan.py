"""The suite-wide secret scan (tests/secret_scan.py) is active and finds what it should."""

from __future__ import annotations

import logging

from integrations.sandbox.core import EmulatorApp
from tests.secret_scan import CapturingHandler, find_leaks

log = logging.getLogger("tests.reliability.secret_scan")


def test_the_scan_handler_is_on_the_root_logger_for_the_whole_session(secret_scan):
    assert secret_scan in logging.getLogger().handlers
    # Logged as product code would be (a path outside tests/).
    record = log.makeRecord(
        log.name, logging.WARNING, "/work/main/integrations/x.py", 3, "seen %s", ("zq-marker-1",), None
    )
    log.handle(record)
    assert any("zq-marker-1" in line for line in secret_scan.lines)


def test_lines_logged_by_test_code_itself_are_not_scanned(secret_scan):
    log.warning("a deliberate line from a test %s", "zq-marker-2")
    assert not any("zq-marker-2" in line for line in secret_scan.lines)


def test_secrets_of_every_emulator_made_during_the_run_are_collected(secret_scan):
    app = EmulatorApp()
    app.secrets_issued.append("zq-secret-issued-by-an-emulator-0001")
    # The scan holds the very list the emulator appends to, so later secrets are seen too.
    assert any(issued is app.secrets_issued for issued in secret_scan.issued)


def test_a_logged_issued_secret_is_reported_with_the_file_and_line():
    handler = CapturingHandler()
    record = logging.LogRecord(
        "integrations.x",
        logging.INFO,
        "/src/integrations/x.py",
        42,
        "sent %s to the CRM",
        ("tok-abcdefghijklmnop",),
        None,
    )
    handler.handle(record)
    leaks = find_leaks(handler.lines, {"tok-abcdefghijklmnop"})
    assert len(leaks) == 1
    assert "/src/integrations/x.py:42" in leaks[0]


def test_a_raw_api_key_is_reported_but_a_redacted_bearer_header_is_not():
    handler = CapturingHandler()
    for message in ("key csk_AbCdEfGhIjKlMnOpQrStUv123 used", "Authorization: Bearer tok-abcdefghijklmnop"):
        handler.handle(logging.LogRecord("x", logging.INFO, "/src/x.py", 1, message, (), None))
    leaks = find_leaks(handler.lines, {"tok-abcdefghijklmnop"})
    # The production filter redacts both (bearer value and csk_ key), so neither is a leak.
    assert leaks == []
    raw = {"INFO x raw csk_AbCdEfGhIjKlMnOpQrStUv123": "/src/x.py:2 (logger x)"}
    assert len(find_leaks(raw, set())) == 1


def test_exception_text_is_scanned_too():
    handler = CapturingHandler()
    try:
        raise RuntimeError("upstream refused tok-zyxwvutsrqponmlk")
    except RuntimeError:
        import sys

        record = logging.LogRecord("x", logging.ERROR, "/src/y.py", 7, "call failed", (), sys.exc_info())
    handler.handle(record)
    assert len(find_leaks(handler.lines, {"tok-zyxwvutsrqponmlk"})) == 1
