"""The owner settings pages' navigation, which each app extends with its own pages.

An app adds an entry from its ``AppConfig.ready()`` with ``register("CRM connection",
"integrations:connection", order=20)``; the URL name is reversed with the account's slug.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class NavEntry:
    label: str
    url_name: str  # reversed with kwargs={"account_slug": ...}
    order: int
    min_role: str = "viewer"


_ENTRIES: dict[str, NavEntry] = {}


def register(label: str, url_name: str, order: int, min_role: str = "viewer") -> None:
    _ENTRIES[url_name] = NavEntry(label, url_name, order, min_role)


def entries() -> list[NavEntry]:
    return sorted(_ENTRIES.values(), key=lambda entry: entry.order)
