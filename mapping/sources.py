"""The catalogue of capsule source fields: every value a mapping row can send to a CRM.

Extension point. An app adds a *group* of fields with the loader that computes them, from its
``AppConfig.ready()``::

    from mapping.sources import SourceField, register_source_group

    register_source_group(
        "score",
        [SourceField("lead_score", "Lead score", "integer", "score"), ...],
        load_scores,  # (account, prospect_ids) -> {prospect_id: {"lead_score": 42, ...}}
        label="Lead score",
    )

A loader answers for a whole batch of prospect ids with a constant number of queries (never
one per prospect: the sync engine calls it for batches of hundreds at a million prospects per
account). It returns a dict per prospect it knows; keys it leaves out read as ``None``. Filter
by the ids and check the account with ``crmsync.lookups.in_account_unindexed(queryset,
account.pk)`` rather than ``account=account``: a plain account filter lets stale statistics (a
new account's first import) send each batch scanning all of the account's rows.

``catalogue(account)`` lists the fields (with the account's custom attribute keys as
``attr.<key>``); ``load_snapshots(account, ids)`` builds one flat snapshot per prospect from
every group, which :func:`mapping.apply.build_payload` turns into a CRM payload.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from crmsync.models import Account

SOURCE_TYPES = ("string", "text", "email", "phone", "url", "number", "integer", "boolean", "date", "datetime", "list")

# Custom attributes are open-ended: any key under this prefix is a valid source, listed or not.
ATTRIBUTE_PREFIX = "attr."
ATTRIBUTE_KEY_RE = re.compile(r"^attr\.[A-Za-z0-9_][A-Za-z0-9_.\-]{0,99}$")
# The group whose loader decides which prospect ids exist in the account.
PRIMARY_GROUP = "prospect"


@dataclass(frozen=True)
class SourceField:
    key: str
    label: str
    type: str  # one of SOURCE_TYPES
    group: str


SourceLoader = Callable[["Account", Sequence[int]], dict[int, dict[str, Any]]]
# Lists the dynamic fields of a group for one account (the prospect group's custom attributes).
DynamicFields = Callable[["Account"], list[SourceField]]


@dataclass(frozen=True)
class SourceGroup:
    name: str
    label: str
    fields: tuple[SourceField, ...]
    loader: SourceLoader
    # The keys whose values mapped "from the CRM" may be written back (the prospect's own data);
    # computed groups (engagement, score) have none.
    writable: frozenset[str] = frozenset()
    dynamic_fields: DynamicFields | None = None


_GROUPS: dict[str, SourceGroup] = {}


def register_source_group(
    group: str,
    fields: list[SourceField],
    loader: SourceLoader,
    *,
    label: str | None = None,
    writable: bool | Collection[str] = False,
    dynamic_fields: DynamicFields | None = None,
) -> None:
    """Add (or replace) a group of source fields and the loader that computes their values.

    Every field's ``group`` must be ``group`` and its ``type`` one of :data:`SOURCE_TYPES`; keys
    are unique across groups. Registering the same group again replaces it (module reloads).
    ``writable``: which keys bi-directional sync may store CRM values into (True: all of them).
    ``dynamic_fields``: fields that depend on the account (listed by ``catalogue(account)``).
    """
    for source in fields:
        if source.group != group:
            raise ValueError(f"source field {source.key!r} says group {source.group!r}, registered as {group!r}")
        if source.type not in SOURCE_TYPES:
            raise ValueError(f"source field {source.key!r} has type {source.type!r}; expected one of {SOURCE_TYPES}")
        owner = _owner_of(source.key)
        if owner is not None and owner != group:
            raise ValueError(f"source key {source.key!r} is already registered by group {owner!r}")
    _GROUPS[group] = SourceGroup(
        name=group,
        label=label or group.replace("_", " ").capitalize(),
        fields=tuple(fields),
        loader=loader,
        writable=frozenset(source.key for source in fields) if writable is True else frozenset(writable or ()),
        dynamic_fields=dynamic_fields,
    )


def unregister_source_group(group: str) -> None:
    """Remove a group (tests that register their own)."""
    _GROUPS.pop(group, None)


def groups() -> list[SourceGroup]:
    return list(_GROUPS.values())


def group_label(group: str) -> str:
    return _GROUPS[group].label if group in _GROUPS else group


def _owner_of(key: str) -> str | None:
    for group in _GROUPS.values():
        if any(source.key == key for source in group.fields):
            return group.name
    return None


def catalogue(account: Account | None = None) -> list[SourceField]:
    """Every mappable field, grouped in registration order. With an account, the group's dynamic
    fields (the custom attribute keys seen on its prospects) are included."""
    listed: list[SourceField] = []
    for group in _GROUPS.values():
        listed.extend(group.fields)
        if account is not None and group.dynamic_fields is not None:
            listed.extend(group.dynamic_fields(account))
    return listed


def catalogue_index(account: Account | None = None) -> dict[str, SourceField]:
    return {source.key: source for source in catalogue(account)}


def attribute_field(key: str, type_: str = "string") -> SourceField:
    """The source field of a custom attribute ``attr.<name>`` (known or not yet seen)."""
    return SourceField(key, f"Attribute: {key[len(ATTRIBUTE_PREFIX) :]}", type_, "prospect")


def resolve(key: str, index: Mapping[str, SourceField] | None = None) -> SourceField | None:
    """The source field for ``key``: listed in the catalogue, or any well-formed ``attr.<name>``."""
    index = catalogue_index() if index is None else index
    if key in index:
        return index[key]
    if ATTRIBUTE_KEY_RE.match(key):
        return attribute_field(key)
    return None


def is_writable(key: str) -> bool:
    """Whether an inbound ("from the CRM") value may be stored into this source field."""
    if ATTRIBUTE_KEY_RE.match(key):
        return True
    owner = _owner_of(key)
    return owner is not None and key in _GROUPS[owner].writable


def load_snapshots(account: Account, prospect_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """One flat ``{source key: value}`` per prospect of ``account`` among ``prospect_ids``.

    Each registered loader runs once for the whole batch (set-based); ids of other accounts' or
    missing prospects are absent. Every key of the static catalogue is present (``None`` when a
    loader has no value), so templates and mappings never meet a missing key.
    """
    ids = list(dict.fromkeys(prospect_ids))
    if not ids:
        return {}
    loaded = {name: group.loader(account, ids) for name, group in _GROUPS.items()}
    base = {source.key: None for source in catalogue()}
    if PRIMARY_GROUP not in loaded:
        raise LookupError(f"the {PRIMARY_GROUP!r} source group is not registered")
    known = loaded[PRIMARY_GROUP].keys()
    snapshots: dict[int, dict[str, Any]] = {}
    for prospect_id in ids:
        if prospect_id not in known:
            continue
        snapshot = dict(base)
        for values in loaded.values():
            snapshot.update(values.get(prospect_id, {}))
        snapshots[prospect_id] = snapshot
    return snapshots


def iter_snapshots(
    account: Account, prospect_ids: Iterator[int] | Sequence[int], batch_size: int = 500
) -> Iterator[dict[int, dict[str, Any]]]:
    """Snapshots in batches over a stream of ids (e.g. ``queryset.values_list("id", flat=True)
    .iterator()``), so a million prospects never sit in memory at once."""
    batch: list[int] = []
    for prospect_id in prospect_ids:
        batch.append(prospect_id)
        if len(batch) >= batch_size:
            yield load_snapshots(account, batch)
            batch = []
    if batch:
        yield load_snapshots(account, batch)
