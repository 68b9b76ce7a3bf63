"""Check emulator answers against the vendors' OpenAPI documents in ``../shared/specs``.

The sandbox CRMs must speak their vendor's wire format (docs/DESIGN "Testing"); where the vendor
publishes an OpenAPI 3 document we hold every answer our tests receive up against it::

    from tests.openapi_check import validate_response

    validate_response("hubspot/contacts.json", "GET", "/crm/v3/objects/contacts/101", 200, body)

How it works, and what it does not do:

- ``load_spec(name)`` reads a JSON or YAML document (OpenAPI 3.0 or 3.1) relative to the specs
  directory, once per process.
- ``Spec.operation(method, path)`` finds the operation for a concrete path. Templated segments
  (``{contactId}``) match any one segment; when several templates match, the one with the most
  literal segments wins (``/properties/{objectType}/groups`` beats
  ``/properties/{objectType}/{propertyName}``). A path that starts with the path part of the
  document's first ``servers`` URL (Close's ``/api/v1``) is matched with that prefix removed,
  and a trailing ``/`` is tolerated either way.
- ``Spec.validate_response(...)`` picks the response object for the status (exact code, then
  ``2XX``-style ranges, then ``default``), takes its JSON content schema and validates the body
  with ``openapi_schema_validator`` (OAS 3.0 or 3.1 rules by the document's version), checking
  formats such as ``date-time``, ``uuid`` and ``int32``. ``$ref``s are resolved through a
  ``referencing`` registry: local ones (``#/components/...``) against the document itself, and
  absolute ones (Zoho points at ``raw.githubusercontent.com/.../common.json``) against the file of
  the same name next to the document, so nothing is fetched from the network.
- Request bodies, parameters and headers are not checked; only response bodies.

Every failure is an ``AssertionError`` that names the document, method, path, status and the
schema error, so a failing test says exactly which answer drifted from the vendor's format.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from jsonschema import FormatChecker
from jsonschema.exceptions import ValidationError, best_match
from openapi_schema_validator import OAS30Validator, OAS31Validator, oas30_format_checker, oas31_format_checker
from referencing import Registry, Resource
from referencing.exceptions import NoSuchResource
from referencing.jsonschema import DRAFT4, DRAFT202012

SPECS_DIR = Path(__file__).resolve().parents[2] / "shared" / "specs"

JSON_CONTENT_TYPES = ("application/json", "*/*")
HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


@dataclass(frozen=True)
class Operation:
    template: str  # the path as the document writes it, e.g. /crm/v3/objects/contacts/{contactId}
    method: str  # lower-case
    node: dict[str, Any]
    pointer: str  # JSON pointer of the operation inside the document


def _escape(token: str) -> str:
    """Escape one JSON-pointer token (RFC 6901)."""
    return token.replace("~", "~0").replace("/", "~1")


def _template_regex(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}/]+\})", template.rstrip("/") or "/")
    pattern = "".join("[^/]+" if part.startswith("{") else re.escape(part) for part in parts)
    return re.compile(f"^{pattern}/?$")


def _load_document(path: Path) -> dict[str, Any]:
    text = path.read_text(encoding="utf-8")
    if path.suffix in (".yml", ".yaml"):
        return yaml.safe_load(text)
    return json.loads(text)


class Spec:
    """One OpenAPI document, with path matching and response validation."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.name = str(path.relative_to(SPECS_DIR)) if path.is_relative_to(SPECS_DIR) else str(path)
        self.document = _load_document(path)
        version = str(self.document.get("openapi", "3.0"))
        self.is_31 = version.startswith("3.1")
        self.uri = path.as_uri()
        self._specification = DRAFT202012 if self.is_31 else DRAFT4
        self.registry: Registry = Registry(retrieve=self._retrieve).with_resource(
            self.uri, self._specification.create_resource(self.document)
        )
        self._validator_class = OAS31Validator if self.is_31 else OAS30Validator
        self._format_checker = self._build_format_checker()
        servers = self.document.get("servers") or []
        self.base_path = urlsplit(servers[0].get("url", "")).path.rstrip("/") if servers else ""
        self._templates = [
            (template, _template_regex(template), template.count("{")) for template in self.document.get("paths", {})
        ]

    # -- references ----------------------------------------------------------------------------
    def _retrieve(self, uri: str) -> Resource:
        """Resolve an absolute $ref to a sibling file with the same name (no network access)."""
        target = self.path.parent / Path(urlsplit(uri).path).name
        if not target.is_file():
            raise NoSuchResource(ref=uri)
        return self._specification.create_resource(_load_document(target))

    def _build_format_checker(self) -> FormatChecker:
        # jsonschema's checker knows date-time/uuid/email; the OAS one adds int32/int64/byte/...
        checker = FormatChecker()
        checker.checkers.update((oas31_format_checker if self.is_31 else oas30_format_checker).checkers)
        return checker

    def _deref(self, node: Any) -> tuple[Any, str | None]:
        """Follow a non-schema ``$ref`` (response objects); return (node, its absolute URI or None)."""
        seen = 0
        uri: str | None = None
        while isinstance(node, dict) and "$ref" in node and seen < 10:
            ref = node["$ref"]
            uri = f"{self.uri}{ref}" if ref.startswith("#") else ref
            node = self.registry.resolver().lookup(uri).contents
            seen += 1
        return node, uri

    # -- lookup ----------------------------------------------------------------------------------
    def operation(self, method: str, path: str) -> Operation:
        """The operation for ``method`` and a concrete ``path``; AssertionError when none matches."""
        path = urlsplit(path).path
        candidates = [path]
        if self.base_path and path.startswith(self.base_path + "/"):
            candidates.append(path[len(self.base_path) :])
        method = method.lower()
        matches = [
            (params, template)
            for candidate in candidates
            for template, regex, params in self._templates
            if regex.match(candidate) and method in self.document["paths"][template]
        ]
        if not matches:
            raise AssertionError(f"{self.name}: no operation for {method.upper()} {path}")
        _params, template = min(matches, key=lambda match: match[0])  # most literal segments wins
        pointer = f"#/paths/{_escape(template)}/{method}"
        return Operation(template, method, self.document["paths"][template][method], pointer)

    def response_schema_uri(self, method: str, path: str, status: int) -> str | None:
        """The JSON-pointer URI of the schema for ``status``, or None when the response has no body."""
        op = self.operation(method, path)
        responses = op.node.get("responses", {})
        code = str(status)
        key = next(
            (k for k in (code, f"{code[0]}XX", f"{code[0]}xx", "default") if k in responses),
            None,
        )
        if key is None:
            declared = ", ".join(sorted(responses))
            raise AssertionError(
                f"{self.name}: {method.upper()} {path} -> {status} is not declared (declared: {declared})"
            )
        response, response_uri = self._deref(responses[key])
        content = (response or {}).get("content") or {}
        media = next((m for m in JSON_CONTENT_TYPES if m in content), None)
        if media is None:
            media = next((m for m in content if "json" in m), None)
        if media is None or "schema" not in content[media]:
            return None
        base = response_uri or f"{self.uri}{op.pointer}/responses/{_escape(key)}"
        return f"{base}/content/{_escape(media)}/schema"

    # -- validation ------------------------------------------------------------------------------
    def validate_response(self, method: str, path: str, status: int, body: Any) -> None:
        """Validate a decoded JSON ``body`` (None for no body) against the declared schema."""
        schema_uri = self.response_schema_uri(method, path, status)
        where = f"{self.name}: {method.upper()} {path} -> {status}"
        if schema_uri is None:
            if body not in (None, b"", ""):
                raise AssertionError(f"{where}: the spec declares no body but one was sent: {body!r:.200}")
            return
        if body is None:
            raise AssertionError(f"{where}: the spec declares a JSON body but none was sent")
        validator = self._validator_class(
            {"$ref": schema_uri}, registry=self.registry, format_checker=self._format_checker
        )
        error = best_match(validator.iter_errors(body))
        if error is not None:
            raise AssertionError(f"{where}: {_describe(error)}")


def _describe(error: ValidationError) -> str:
    location = "/".join(str(part) for part in error.absolute_path) or "(root)"
    return f"schema error at {location}: {error.message}"


@lru_cache(maxsize=64)
def load_spec(name: str | Path) -> Spec:
    """Load (once) a spec by its path relative to the specs directory, e.g. ``hubspot/deals.json``."""
    path = Path(name)
    if not path.is_absolute():
        path = SPECS_DIR / path
    return Spec(path)


def validate_response(spec: str | Spec, method: str, path: str, status: int, body: Any) -> None:
    """Assert that ``body`` is what ``spec`` declares for ``method path -> status``."""
    (spec if isinstance(spec, Spec) else load_spec(spec)).validate_response(method, path, status, body)


def validate_http_response(spec: str | Spec, response: Any, path: str | None = None) -> None:
    """Validate a ``requests.Response``; ``path`` overrides the request's path (for aliases).

    An empty body is passed on as "no body"; anything else must be JSON.
    """
    request_path = path or urlsplit(response.request.url).path
    body: Any = None
    if response.content:
        try:
            body = response.json()
        except ValueError as exc:
            raise AssertionError(
                f"{request_path} -> {response.status_code}: the body is not JSON: {response.text[:200]!r}"
            ) from exc
    validate_response(spec, response.request.method, request_path, response.status_code, body)
