"""Idempotent writes of notes, tasks and deals, keyed by our own id in a unique HubSpot property.

HubSpot has no external id for engagements or deals, so we give them one: a custom property
(``capsule_event_id`` on notes and tasks, ``capsule_conversion_id`` on deals) created with
``hasUniqueValue: true``. Then ``batch/upsert`` with ``idProperty`` set to it writes each object
once however often a write is retried (connector idempotency contract; crm-reference §2.2 to §2.4).

Associations: the upsert input has no ``associations`` field in HubSpot's spec (only ``create``
has one), so the link to the contact is made by a second call, v4 ``batch/create`` of
associations, for every record of the batch. Linking twice is a no-op, and linking every time
(not only new records) means a crash between the two calls never leaves an orphan on replay.

Calls: per object type, the first write of a process checks the key property (GET, plus a group
and property create the first time in a portal); then two calls per 100 records.

Fallback without a unique key property: when the property exists but without unique values
(created by hand, and HubSpot cannot change that afterwards) the writer searches by the property
for the batch's keys (one search per 100, in the search rate bucket), creates only those missing
and links all. That is idempotent across retries but, since HubSpot's search index lags writes by
a few seconds, not across two writers racing on the same key. When the property is missing and
the token may not create it (no ``crm.schemas.*.write`` scope), writes raise ConfigurationError
naming the property to create: there is nowhere to keep the key, so nothing is written twice.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from integrations.connector import WriteOutcome
from integrations.errors import ConfigurationError, CrmError, NotFound, RecordError
from integrations.http import CrmHttp
from integrations.providers.hubspot import batches
from integrations.providers.hubspot.failures import record_error
from integrations.providers.hubspot.properties import CAPSULE_GROUP, CAPSULE_GROUP_LABEL, KeyProperty, property_create
from integrations.providers.hubspot.wire import TO_CONTACT_ASSOCIATION

UPSERT, SEARCH = "upsert", "search"

# Which key properties are known to exist, per API host, token and object type: checked once per
# process and token (an OAuth token lives 30 minutes), re-checked when HubSpot says it is gone.
_modes: dict[tuple[str, str, str, str], str] = {}
_modes_lock = threading.Lock()


def forget_key_properties() -> None:
    """Drop what this process knows about key properties (tests that reset a portal)."""
    with _modes_lock:
        _modes.clear()


@dataclass(frozen=True)
class KeyedItem:
    key: str  # our id: the value of the key property
    contact_id: str  # the HubSpot contact the object belongs to
    properties: Mapping[str, str]  # wire values, without the key property


class KeyedWriter:
    def __init__(self, http: CrmHttp, token: str, batch_size: int) -> None:
        self.http = http
        self.batch_size = batch_size
        self._fingerprint = hashlib.sha256(token.encode()).hexdigest()[:16]  # never the token itself

    # -- the key property ----------------------------------------------------------------------------
    def _cache_key(self, hubspot_type: str, prop: KeyProperty) -> tuple[str, str, str, str]:
        return (self.http.base_url, self._fingerprint, hubspot_type, prop.name)

    def _read_property(self, hubspot_type: str, name: str) -> Mapping[str, Any] | None:
        try:
            return self.http.json("GET", f"/crm/v3/properties/{hubspot_type}/{name}")
        except NotFound:
            return None

    def ensure_group(self, hubspot_type: str) -> None:
        """Our property group on this object type (HubSpot answers 409 when it already exists)."""
        try:
            self.http.json(
                "POST",
                f"/crm/v3/properties/{hubspot_type}/groups",
                json={"name": CAPSULE_GROUP, "label": CAPSULE_GROUP_LABEL, "displayOrder": -1},
            )
        except RecordError as exc:
            if exc.status != 409:
                raise

    def mode(self, hubspot_type: str, prop: KeyProperty) -> str:
        cache_key = self._cache_key(hubspot_type, prop)
        with _modes_lock:
            known = _modes.get(cache_key)
        if known:
            return known
        definition = self._read_property(hubspot_type, prop.name)
        if definition is None:
            definition = self._create_property(hubspot_type, prop)
        mode = UPSERT if definition.get("hasUniqueValue") else SEARCH
        with _modes_lock:
            _modes[cache_key] = mode
        return mode

    def _create_property(self, hubspot_type: str, prop: KeyProperty) -> Mapping[str, Any]:
        try:
            self.ensure_group(hubspot_type)
            return self.http.json(
                "POST", f"/crm/v3/properties/{hubspot_type}", json=property_create(prop, CAPSULE_GROUP)
            )
        except ConfigurationError as exc:
            raise ConfigurationError(
                f"HubSpot has no {prop.name} property on {hubspot_type} and this connection may not create it "
                f"({exc.message}). Grant the app the crm.schemas write scope, or create a single-line text "
                f"property named {prop.name} with unique values on {hubspot_type}.",
                status=exc.status,
                code="missing_key_property",
            ) from None
        except RecordError as exc:
            if exc.status != 409:
                raise
        # Created meanwhile by another worker, or taken by an archived property of that name.
        definition = self._read_property(hubspot_type, prop.name)
        if definition is None:
            raise ConfigurationError(
                f"A property named {prop.name} on {hubspot_type} is archived in HubSpot; restore it so capsule "
                "activity can be written exactly once.",
                code="archived_key_property",
            )
        return definition

    def _forget(self, hubspot_type: str, prop: KeyProperty) -> None:
        with _modes_lock:
            _modes.pop(self._cache_key(hubspot_type, prop), None)

    # -- writing ---------------------------------------------------------------------------------------
    def write(self, hubspot_type: str, prop: KeyProperty, items: Sequence[KeyedItem]) -> list[WriteOutcome]:
        outcomes: dict[int, WriteOutcome] = {}
        todo = []
        for index, item in enumerate(items):
            if not item.contact_id:
                outcomes[index] = batches.failed(
                    item.key, RecordError("there is no HubSpot contact to attach this to", code="no_contact")
                )
            else:
                todo.append(index)
        for chunk in batches.unique_chunks(todo, lambda i: items[i].key, self.batch_size):
            written = self._write_chunk(hubspot_type, prop, items, chunk)
            linked = [i for i in chunk if i in written and written[i].ok]
            link_errors = self._associate(
                hubspot_type, [(i, written[i].crm_id or "", items[i].contact_id) for i in linked]
            )
            for index in chunk:
                outcome = written.get(index) or batches.missing(items[index].key)
                if index in link_errors:
                    outcome = WriteOutcome(
                        outcome.key, crm_id=outcome.crm_id, created=outcome.created, error=link_errors[index]
                    )
                outcomes[index] = outcome
        return [outcomes[i] for i in range(len(items))]

    def _write_once(
        self, hubspot_type: str, prop: KeyProperty, items: Sequence[KeyedItem], chunk: list[int]
    ) -> dict[int, WriteOutcome]:
        if self.mode(hubspot_type, prop) == UPSERT:
            return self._upsert(hubspot_type, prop, items, chunk)
        return self._search_then_create(hubspot_type, prop, items, chunk)

    def _write_chunk(
        self, hubspot_type: str, prop: KeyProperty, items: Sequence[KeyedItem], chunk: list[int]
    ) -> dict[int, WriteOutcome]:
        try:
            return self._write_once(hubspot_type, prop, items, chunk)
        except RecordError as exc:
            # A whole-call refusal naming our property: it was deleted or changed since we looked.
            if exc.status != 400 or prop.name not in f"{exc.message} {exc.field}":
                raise
        self._forget(hubspot_type, prop)
        return self._write_once(hubspot_type, prop, items, chunk)

    def _inputs(self, prop: KeyProperty, items: Sequence[KeyedItem], chunk: list[int]) -> list[dict[str, Any]]:
        return [
            {"properties": {**items[i].properties, prop.name: items[i].key}, "objectWriteTraceId": str(i)}
            for i in chunk
        ]

    def _upsert(
        self, hubspot_type: str, prop: KeyProperty, items: Sequence[KeyedItem], chunk: list[int]
    ) -> dict[int, WriteOutcome]:
        inputs = [
            {"id": items[i].key, "idProperty": prop.name, **body}
            for i, body in zip(chunk, self._inputs(prop, items, chunk), strict=True)
        ]
        answer = self.http.json("POST", f"/crm/v3/objects/{hubspot_type}/batch/upsert", json={"inputs": inputs})
        return batches.read_outcomes(
            answer,
            chunk,
            lambda i: items[i].key,
            lambda i: items[i].key,
            lambda result: str((result.get("properties") or {}).get(prop.name, "")),
        )

    def _search_then_create(
        self, hubspot_type: str, prop: KeyProperty, items: Sequence[KeyedItem], chunk: list[int]
    ) -> dict[int, WriteOutcome]:
        keys = [items[i].key for i in chunk]
        answer = self.http.json(
            "POST",
            f"/crm/v3/objects/{hubspot_type}/search",
            json={
                "filterGroups": [{"filters": [{"propertyName": prop.name, "operator": "IN", "values": keys}]}],
                "properties": [prop.name],
                "limit": min(200, max(1, len(keys))),
            },
        )
        found = {
            str((r.get("properties") or {}).get(prop.name)): str(r["id"]) for r in (answer or {}).get("results") or []
        }
        outcomes = {i: WriteOutcome(items[i].key, crm_id=found[items[i].key]) for i in chunk if items[i].key in found}
        to_create = [i for i in chunk if items[i].key not in found]
        if to_create:
            inputs = [{**body, "associations": []} for body in self._inputs(prop, items, to_create)]
            created = self.http.json("POST", f"/crm/v3/objects/{hubspot_type}/batch/create", json={"inputs": inputs})
            for index, outcome in batches.read_outcomes(
                created,
                to_create,
                lambda i: items[i].key,
                lambda i: items[i].key,
                lambda result: str((result.get("properties") or {}).get(prop.name, "")),
            ).items():
                outcomes[index] = WriteOutcome(outcome.key, outcome.crm_id, created=outcome.ok, error=outcome.error)
        return outcomes

    def _associate(self, hubspot_type: str, links: list[tuple[int, str, str]]) -> dict[int, CrmError]:
        """Link each written record to its contact (v4 batch create; HubSpot-defined type ids)."""
        if not links:
            return {}
        type_id = TO_CONTACT_ASSOCIATION[hubspot_type]
        answer = self.http.json(
            "POST",
            f"/crm/v4/associations/{hubspot_type}/contacts/batch/create",
            json={
                "inputs": [
                    {
                        "from": {"id": object_id},
                        "to": {"id": contact_id},
                        "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id}],
                    }
                    for _index, object_id, contact_id in links
                ]
            },
        )
        by_object = {object_id: index for index, object_id, _contact in links}
        confirmed = {str(r.get("fromObjectId")) for r in (answer or {}).get("results") or [] if isinstance(r, Mapping)}
        errors: dict[int, CrmError] = {}
        unplaced: list[CrmError] = []
        for error in (answer or {}).get("errors") or []:
            failure = record_error(error)
            ids = [str(i) for i in (error.get("context") or {}).get("fromObjectId") or [] if str(i) in by_object]
            for object_id in ids:
                errors[by_object[object_id]] = failure
            if not ids:
                unplaced.append(failure)
        if unplaced:  # an error we cannot place: no record the answer did not confirm counts as linked
            for object_id, index in by_object.items():
                if object_id not in confirmed:
                    errors.setdefault(index, unplaced[0])
        return errors
