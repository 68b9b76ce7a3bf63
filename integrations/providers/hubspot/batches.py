"""HubSpot batch calls: building chunks of at most 100 inputs, and reading answers per input.

A batch answer (crm-reference §2.2) is 200/201 with ``results[]``, or 207 with ``results[]`` and
``errors[]`` (``StandardError`` with ``context``). Results are matched to inputs by the
``objectWriteTraceId`` we send (HubSpot echoes it on results and in error contexts), falling back
to the record's identifying value; errors by trace id, ``context.ids`` or ``context.inputIndex``.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

from integrations.connector import WriteOutcome
from integrations.errors import CrmError, RetryableError
from integrations.providers.hubspot.failures import record_error

NO_RESULT = "HubSpot gave no result for this record"


def unique_chunks(indices: Sequence[int], key: Callable[[int], Hashable], size: int) -> list[list[int]]:
    """Chunks of at most ``size`` in input order, no two inputs with the same key in one chunk.

    HubSpot refuses a whole batch that names one id twice ("Duplicate IDs found in batch input"),
    so a repeated key waits for the next chunk (each later chunk sees the earlier write).
    """
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


def _values(context: Any, name: str) -> list[str]:
    if not isinstance(context, Mapping):
        return []
    values = context.get(name)
    if isinstance(values, list):
        return [str(v) for v in values]
    return [str(values)] if values not in (None, "") else []


def read_outcomes(
    answer: Mapping[str, Any] | None,
    chunk: Sequence[int],
    keys: Callable[[int], str],
    ident_of_input: Callable[[int], str],
    ident_of_result: Callable[[Mapping[str, Any]], str],
) -> dict[int, WriteOutcome]:
    """One outcome per input index of ``chunk`` from a batch write answer.

    ``keys(i)`` is the caller's key for input i; ``ident_of_input``/``ident_of_result`` give the
    value HubSpot identifies the record by (e-mail, our key property, id), used when a result
    carries no trace id.
    """
    answer = answer or {}
    by_trace = {str(i): i for i in chunk}
    by_ident = {ident_of_input(i): i for i in chunk}
    outcomes: dict[int, WriteOutcome] = {}
    for result in answer.get("results") or []:
        if not isinstance(result, Mapping) or "id" not in result:
            continue
        index = by_trace.get(str(result.get("objectWriteTraceId")))
        if index is None:
            index = by_ident.get(ident_of_result(result))
        if index is not None:
            outcomes[index] = WriteOutcome(keys(index), crm_id=str(result["id"]), created=bool(result.get("new")))
    for error in answer.get("errors") or []:
        if not isinstance(error, Mapping):
            continue
        context = error.get("context")
        matched = [by_trace[t] for t in _values(context, "objectWriteTraceId") if t in by_trace]
        matched = matched or [by_ident[v] for v in _values(context, "ids") if v in by_ident]
        if not matched:
            positions = [int(v) for v in _values(context, "inputIndex") if v.isdigit()]
            matched = [chunk[p] for p in positions if p < len(chunk)]
        failure = record_error(error)
        for index in matched:
            outcomes.setdefault(index, WriteOutcome(keys(index), error=failure))
    return outcomes


def missing(key: str) -> WriteOutcome:
    return WriteOutcome(key, error=RetryableError(NO_RESULT, code="no_result"))


def failed(key: str, error: CrmError) -> WriteOutcome:
    return WriteOutcome(key, error=error)
