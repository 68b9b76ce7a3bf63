"""Where our idempotency keys live in Copper (no Django here: the sandbox probe reads them too).

- Activities and notes: Copper offers no custom fields on activities (crm-reference §6.3), so the
  key is the last line of ``details``: ``Capsule key: capsule-evt-12``.
- Tasks and opportunities: a text custom field each, "Capsule event ID" (on tasks) and
  "Capsule conversion ID" (on opportunities), created by the connector when missing.
"""

from __future__ import annotations

import re

KEY_LINE_PREFIX = "Capsule key: "
EVENT_KEY_FIELD = "Capsule event ID"
CONVERSION_KEY_FIELD = "Capsule conversion ID"

_KEY_LINE = re.compile(r"^Capsule key: (\S+)[ \t]*$", re.MULTILINE)


def with_key_line(text: str, key: str) -> str:
    """``text`` with our key as its last line."""
    return f"{text.rstrip()}\n\n{KEY_LINE_PREFIX}{key}" if text.strip() else f"{KEY_LINE_PREFIX}{key}"


def key_in(details: str | None) -> str | None:
    """The key of the last key line of ``details``, or None."""
    found = _KEY_LINE.findall(details or "")
    return found[-1] if found else None
