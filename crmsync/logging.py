"""A logging filter that removes secrets from every log line, whatever logged it."""

from __future__ import annotations

import logging
import re

# Bearer/Zoho/Token headers, OAuth form and query fields, our own API keys, and JSON token fields.
_PATTERNS = [
    (
        re.compile(
            r"(?i)(authorization['\"]?\s*[:=]\s*['\"]?)(bearer|basic|zoho-oauthtoken|token token=)?\s*[^'\"\s,}]+"
        ),
        r"\1\2 [REDACTED]",
    ),
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]+"), r"\1 [REDACTED]"),
    (
        re.compile(
            r"(?i)((?:access_token|refresh_token|client_secret|api_token|api_key|apikey|code_verifier|"
            r"password|secret|token)['\"]?\s*[:=]\s*['\"]?)[^&'\"\s,}]+"
        ),
        r"\1[REDACTED]",
    ),
    (re.compile(r"csk_[A-Za-z0-9_-]{8,}"), "csk_[REDACTED]"),
]


def redact(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactSecretsFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        if record.exc_info and record.exc_info[1] is not None:
            # Exceptions from HTTP clients can carry URLs with tokens; log their text redacted.
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True
