"""``$batch`` bodies of the Dataverse Web API (crm-reference §5.2): ``multipart/mixed`` with
``application/http`` parts, optionally grouped in change sets (nested ``multipart/mixed``, each
operation with a ``Content-ID``). Answers use ``batchresponse_``/``changesetresponse_`` boundaries.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field

MAX_OPERATIONS = 1000
REASONS = {
    200: "OK",
    201: "Created",
    204: "No Content",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    412: "Precondition Failed",
    429: "Too Many Requests",
    500: "Internal Server Error",
}


class BatchSyntaxError(ValueError):
    pass


@dataclass
class Operation:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes
    content_id: str | None = None


@dataclass
class Part:
    """One top-level part: a single operation, or a change set of several."""

    operations: list[Operation]
    changeset: bool = False


@dataclass
class OperationResult:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    content_id: str | None = None


def boundary_of(content_type: str) -> str:
    match = re.search(r'boundary="?([^";]+)"?', content_type or "")
    if not match:
        raise BatchSyntaxError("The batch request must have a multipart/mixed Content-Type with a boundary")
    return match.group(1)


def _split(body: bytes, boundary: str) -> list[bytes]:
    marker = b"--" + boundary.encode()
    chunks = body.split(marker)
    if len(chunks) < 3:
        raise BatchSyntaxError("The batch body has no parts")
    parts = []
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):
            break
        parts.append(chunk.strip(b"\r\n"))
    return parts


def _headers_and_rest(blob: bytes) -> tuple[dict[str, str], bytes]:
    text = blob.replace(b"\r\n", b"\n")
    head, _, rest = text.partition(b"\n\n")
    headers = {}
    for line in head.decode().splitlines():
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    return headers, rest


def _operation(blob: bytes) -> Operation:
    mime, inner = _headers_and_rest(blob)
    if "application/http" not in mime.get("content-type", ""):
        raise BatchSyntaxError("Each batch part must be Content-Type: application/http")
    request_line, _, rest = inner.partition(b"\n")
    bits = request_line.decode().split()
    if len(bits) < 2:
        raise BatchSyntaxError(f"'{request_line.decode()}' is not a request line")
    headers, body = _headers_and_rest(rest)
    return Operation(bits[0].upper(), bits[1], headers, body.strip(b"\n"), mime.get("content-id"))


def parse(body: bytes, content_type: str) -> list[Part]:
    parts = []
    count = 0
    for blob in _split(body, boundary_of(content_type)):
        mime, rest = _headers_and_rest(blob)
        kind = mime.get("content-type", "")
        if kind.startswith("multipart/mixed"):
            operations = [_operation(inner) for inner in _split(rest, boundary_of(kind))]
            for operation in operations:
                if operation.method == "GET":
                    raise BatchSyntaxError("GET requests cannot be part of a change set")
            parts.append(Part(operations, changeset=True))
        else:
            parts.append(Part([_operation(blob)]))
        count += len(parts[-1].operations)
    if count > MAX_OPERATIONS:
        raise BatchSyntaxError(f"The number of requests in a batch ({count}) exceeds the limit of {MAX_OPERATIONS}")
    return parts


def _http(result: OperationResult) -> bytes:
    lines = [f"HTTP/1.1 {result.status} {REASONS.get(result.status, 'Status')}"]
    lines += [f"{k}: {v}" for k, v in result.headers.items()]
    return "\r\n".join(lines).encode() + b"\r\n\r\n" + result.body


def _part(result: OperationResult) -> bytes:
    head = "Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
    if result.content_id:
        head += f"Content-ID: {result.content_id}\r\n"
    return head.encode() + b"\r\n" + _http(result)


def compose(parts: list[list[OperationResult] | OperationResult]) -> tuple[bytes, str]:
    """(body, content type). A list is a change set's results."""
    boundary = f"batchresponse_{uuid.uuid4()}"
    out = b""
    for part in parts:
        out += f"--{boundary}\r\n".encode()
        if isinstance(part, list):
            inner = f"changesetresponse_{uuid.uuid4()}"
            out += f"Content-Type: multipart/mixed; boundary={inner}\r\n\r\n".encode()
            for result in part:
                out += f"--{inner}\r\n".encode() + _part(result) + b"\r\n"
            out += f"--{inner}--\r\n".encode()
        else:
            out += _part(part) + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return out, f"multipart/mixed; boundary={boundary}"
