"""Template rows: ``{{ first_name }} at {{ company }}`` filled from a prospect snapshot.

A deliberately tiny formatter — placeholders are snapshot keys and nothing else (no attribute
access, filters, loops or code), so an account's template cannot reach anything but the
prospect's own mapped values. Not Django's template engine, whose variable resolution would.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_][A-Za-z0-9_.\-]*)\s*\}\}")
# Anything that looks like a placeholder but is not one: "{{ first name }}", "{{}}", "{{ a|b }}".
MALFORMED = re.compile(r"\{\{(?!\s*[A-Za-z0-9_][A-Za-z0-9_.\-]*\s*\}\})")


def placeholders(template: str) -> list[str]:
    """The snapshot keys a template uses, in order of first use."""
    return list(dict.fromkeys(PLACEHOLDER.findall(template)))


def syntax_errors(template: str) -> list[str]:
    problems = []
    if MALFORMED.search(template):
        problems.append("a {{ … }} placeholder must hold one field key, such as {{ first_name }}")
    if not placeholders(template) and "{{" not in template:
        problems.append("the template uses no field: use a constant for fixed text")
    return problems


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC") if value.tzinfo else value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return ", ".join(_text(item) for item in value if item not in (None, ""))
    return str(value)


def render(template: str, snapshot: Mapping[str, Any]) -> str:
    """The template with each placeholder replaced by the snapshot's value (empty when missing),
    spaces collapsed and trimmed. Text around an empty value stays ("Ann at" for an empty
    company): use a default or a field row when that matters."""
    filled = PLACEHOLDER.sub(lambda match: _text(snapshot.get(match.group(1))), template)
    return " ".join(filled.split())
