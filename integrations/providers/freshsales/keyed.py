"""Notes, tasks and sales activities written once per key (the idempotency contract).

None of them has an external-id field, and custom fields cannot be made through the API, so the
text of each ends with our key line (integrations.providers.freshsales.keys). Before writing, the
items of a batch are grouped by contact and each contact is read once with the kinds in play
(``GET /contacts/{id}?include=notes,tasks,sales_activities``): a key already there answers with
the object made the first time, the rest are created (``POST /notes`` …). A contact that is gone
fails its items alone with ``NotFound``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from integrations.connector import WriteOutcome
from integrations.errors import NotFound, RecordError
from integrations.http import CrmHttp
from integrations.providers.freshsales.keys import key_in, with_key_line

if TYPE_CHECKING:
    from integrations.providers.freshsales.connector import FreshsalesConnector

# resource -> (root key, the field holding the text with our key line)
KINDS = {
    "notes": ("note", "description"),
    "tasks": ("task", "description"),
    "sales_activities": ("sales_activity", "notes"),
}


@dataclass(frozen=True)
class Item:
    key: str
    contact_id: str
    resource: str  # notes, tasks, sales_activities
    body: dict[str, Any]  # without the key line; the text field holds the visible text


def write(connector: FreshsalesConnector, items: Sequence[Item]) -> list[WriteOutcome]:
    outcomes: dict[int, WriteOutcome] = {}
    groups: dict[str, list[tuple[int, Item]]] = defaultdict(list)
    for index, item in enumerate(items):
        if not str(item.contact_id).isdigit():
            outcomes[index] = WriteOutcome(item.key, error=NotFound(f"{item.contact_id!r} is not a Freshsales id"))
        else:
            groups[item.contact_id].append((index, item))

    def work(http: CrmHttp, contact_id: str) -> list[tuple[int, WriteOutcome]]:
        group = groups[contact_id]
        include = ",".join(sorted({item.resource for _i, item in group}))
        answer = http.json("GET", f"/contacts/{contact_id}", params={"include": include}) or {}
        existing: dict[tuple[str, str], str] = {}
        for resource, (_root, text_field) in KINDS.items():
            for record in answer.get(resource) or []:
                key = key_in(record.get(text_field))
                if key:
                    existing.setdefault((resource, key), str(record["id"]))
        done = []
        for index, item in group:
            found = existing.get((item.resource, item.key))
            if found is not None:
                done.append((index, WriteOutcome(item.key, crm_id=found)))
                continue
            root, text_field = KINDS[item.resource]
            body = {
                **item.body,
                text_field: with_key_line(str(item.body.get(text_field) or ""), item.key),
                "targetable_type": "Contact",
                "targetable_id": int(contact_id),
            }
            try:
                made = (http.json("POST", f"/{item.resource}", json={root: body}) or {}).get(root) or {}
            except RecordError as error:
                done.append((index, WriteOutcome(item.key, error=error)))
                continue
            existing[(item.resource, item.key)] = str(made["id"])
            done.append((index, WriteOutcome(item.key, crm_id=str(made["id"]), created=True)))
        return done

    contact_ids = list(groups)
    for contact_id, result in zip(contact_ids, connector.parallel(contact_ids, work), strict=True):
        if isinstance(result, RecordError):
            for index, item in groups[contact_id]:
                outcomes[index] = WriteOutcome(item.key, error=result)
        else:
            outcomes.update(dict(result))
    return [outcomes[i] for i in range(len(items))]
