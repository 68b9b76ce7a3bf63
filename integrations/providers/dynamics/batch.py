"""``$batch`` for the Dataverse connector: many writes in one HTTP request (crm-reference §5.2).

Every operation is its own part, outside change sets, and the request says
``Prefer: odata.continue-on-error``: one refused record answers for itself and the others are
still written (a change set would roll back all of them). Each operation's answer is classified
like a whole response; record-level refusals become that operation's outcome, while a refusal of
the whole call (401, 429, 5xx inside the batch) is raised so the caller retries the batch, which
the idempotency rules make safe. At most 1,000 operations go in one request.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from integrations.errors import CrmError, RecordError, RetryableError
from integrations.http import CrmHttp
from integrations.providers.dynamics import wire

MAX_OPERATIONS = 1000


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # relative to the Web API root, e.g. "contacts(…)" or "contacts"
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    error: CrmError | None = None

    def json(self) -> dict[str, Any]:
        try:
            data = json.loads(self.body) if self.body else {}
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}

    def entity_id(self) -> str | None:
        """The row's id from ``OData-EntityId`` (or the representation's primary key)."""
        location = self.headers.get("odata-entityid", "")
        match = re.search(r"\(([0-9a-fA-F-]{36})\)\s*$", location)
        return match.group(1).lower() if match else None


def _part(base: str, operation: Operation) -> str:
    lines = [
        "Content-Type: application/http",
        "Content-Transfer-Encoding: binary",
        "",
        f"{operation.method} {base}/{operation.path} HTTP/1.1",
    ]
    headers = {"Accept": "application/json", **operation.headers}
    if operation.body is not None:
        headers["Content-Type"] = "application/json; type=entry"
    lines += [f"{k}: {v}" for k, v in headers.items()]
    lines.append("")
    lines.append(json.dumps(operation.body) if operation.body is not None else "")
    return "\r\n".join(lines)


def _headers_and_rest(blob: bytes) -> tuple[dict[str, str], bytes]:
    text = blob.replace(b"\r\n", b"\n")
    head, _, rest = text.partition(b"\n\n")
    headers = {}
    for line in head.decode(errors="replace").splitlines():
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    return headers, rest


def _split(body: bytes, content_type: str) -> list[bytes]:
    match = re.search(r'boundary="?([^";]+)"?', content_type or "")
    if not match:
        raise RetryableError("Dynamics 365 answered a $batch without a multipart body", code="bad_batch")
    marker = b"--" + match.group(1).encode()
    parts = []
    for chunk in body.split(marker)[1:]:
        if chunk.startswith(b"--"):
            break
        parts.append(chunk.strip(b"\r\n"))
    return parts


def parse_answers(body: bytes, content_type: str) -> list[Answer]:
    answers: list[Answer] = []
    for blob in _split(body, content_type):
        mime, rest = _headers_and_rest(blob)
        if mime.get("content-type", "").startswith("multipart/mixed"):
            answers += parse_answers(rest, mime["content-type"])
            continue
        status_line, _, after = rest.partition(b"\n")
        bits = status_line.decode(errors="replace").split(" ", 2)
        status = int(bits[1]) if len(bits) > 1 and bits[1].isdigit() else 500
        headers, payload = _headers_and_rest(after)
        payload = payload.strip(b"\r\n")
        answers.append(Answer(status, headers, payload, wire.classify(status, headers, payload)))
    return answers


def run(http: CrmHttp, operations: Sequence[Operation]) -> list[Answer]:
    """Send the operations in ``$batch`` requests of at most 1,000; one answer per operation, in order.

    Raises for failures of the whole call, including auth, throttling and outages reported for one
    operation inside the batch; record refusals stay in their answers."""
    answers: list[Answer] = []
    for start in range(0, len(operations), MAX_OPERATIONS):
        chunk = operations[start : start + MAX_OPERATIONS]
        boundary = f"batch_{uuid.uuid4()}"
        base = f"{http.base_url}/{wire.API_PATH}"
        body = "".join(f"--{boundary}\r\n{_part(base, op)}\r\n" for op in chunk) + f"--{boundary}--\r\n"
        response = http.request(
            "POST",
            wire.api("$batch"),
            data=body.encode(),
            headers={
                **wire.HEADERS,
                "Content-Type": f"multipart/mixed; boundary={boundary}",
                "Prefer": "odata.continue-on-error",
            },
        )
        got = parse_answers(response.content, response.headers.get("Content-Type", ""))
        for answer in got:
            if answer.error is not None and not isinstance(answer.error, RecordError):
                raise answer.error
        if len(got) != len(chunk):
            raise RetryableError(
                f"Dynamics 365 answered {len(got)} of {len(chunk)} batch operations", code="short_batch"
            )
        answers += got
    return answers
