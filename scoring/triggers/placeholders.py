"""``{{ first_name }}``-style placeholders in task subjects, notes and e-mails.

A deliberately tiny language: a fixed set of names, substituted as plain text. Rule texts are
written by account admins, so they must not reach a template engine (no tags, filters or
attribute access); an unknown name is refused when the rule is saved.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

PLACEHOLDERS: dict[str, str] = {
    "first_name": "The prospect's first name",
    "last_name": "The prospect's last name",
    "full_name": "First and last name",
    "email": "The prospect's e-mail address",
    "company": "The prospect's company",
    "job_title": "The prospect's job title",
    "score": "The lead score when the rule fired",
    "grade": "The grade (e.g. hot) when the rule fired",
    "capsule": "The capsule's title (or id) of the event that fired the rule",
    "event": "The kind of event that fired the rule, e.g. “CTA clicked”",
    "question": "The question asked (question rules)",
    "cta": "The call to action clicked: its label or id (CTA rules)",
    "rule": "The trigger rule's name",
}

_PLACEHOLDER = re.compile(r"{{\s*([A-Za-z_][A-Za-z0-9_]*)\s*}}")


def unknown_placeholders(text: str) -> list[str]:
    """The placeholder names in ``text`` that are not in PLACEHOLDERS, in order of appearance."""
    seen: list[str] = []
    for name in _PLACEHOLDER.findall(text):
        if name not in PLACEHOLDERS and name not in seen:
            seen.append(name)
    return seen


def render(text: str, values: Mapping[str, str]) -> str:
    """``text`` with each placeholder replaced by its value ("" when the value is unknown)."""
    return _PLACEHOLDER.sub(lambda match: values.get(match.group(1), ""), text)
