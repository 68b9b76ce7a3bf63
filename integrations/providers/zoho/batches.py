"""Reading Zoho's batch answers: one result per input, in input order (crm-reference §4.2).

A result is ``{"code": "SUCCESS", "details": {"id", …}, "message": "record added"|"record updated",
"status": "success"}`` (upserts add ``action: insert|update``) or an error object. Zoho echoes no
key of ours, so position is the only link between input and result; an answer with fewer results
than inputs leaves the rest without an outcome (retried by the engine, safe by idempotency).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import Any

from integrations.connector import WriteOutcome
from integrations.errors import CrmError, RetryableError
from integrations.providers.zoho.failures import record_error

NO_RESULT = "Zoho CRM gave no result for this record"


def failed(key: str, error: CrmError) -> WriteOutcome:
    return WriteOutcome(key, error=error)


def missing(key: str) -> WriteOutcome:
    return WriteOutcome(key, error=RetryableError(NO_RESULT, code="no_result"))


def created(item: Mapping[str, Any]) -> bool:
    action = item.get("action")
    if action is not None:
        return action == "insert"
    return item.get("message") == "record added"


def results(answer: Any) -> list[Any]:
    data = answer.get("data") if isinstance(answer, Mapping) else None
    return data if isinstance(data, list) else []


def read_outcomes(answer: Any, indices: Sequence[int], key_of: Callable[[int], str]) -> dict[int, WriteOutcome]:
    """Outcomes by input index for a call that sent ``indices`` in this order."""
    items = results(answer)
    outcomes: dict[int, WriteOutcome] = {}
    for position, index in enumerate(indices):
        item = items[position] if position < len(items) else None
        if not isinstance(item, Mapping):
            outcomes[index] = missing(key_of(index))
        elif item.get("status") == "success":
            details = item.get("details") if isinstance(item.get("details"), Mapping) else {}
            crm_id = str(details.get("id") or "")
            outcomes[index] = (
                WriteOutcome(key_of(index), crm_id=crm_id, created=created(item)) if crm_id else missing(key_of(index))
            )
        else:
            outcomes[index] = failed(key_of(index), record_error(item))
    return outcomes


def unique_chunks(indices: Iterable[int], key: Callable[[int], Hashable], size: int) -> list[list[int]]:
    """Chunks of at most ``size`` in input order, no two inputs with the same key in one chunk: a
    repeated key waits for a later chunk, which then sees the first write (Zoho does not say how
    one call treats a key given twice)."""
    chunks: list[list[int]] = []
    seen: list[set[Hashable]] = []
    for index in indices:
        value = key(index)
        for chunk, keys in zip(chunks, seen, strict=True):
            if len(chunk) < size and value not in keys:
                chunk.append(index)
                keys.add(value)
                break
        else:
            chunks.append([index])
            seen.append({value})
    return chunks
