"""The Dataverse Web API routes of the emulator: records, metadata, ``$batch`` and change tracking."""

from __future__ import annotations

import copy
import datetime as dt
import json
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, urlsplit

from integrations.sandbox.core import Request, Response
from integrations.sandbox.dynamics import batch, metadata
from integrations.sandbox.dynamics.odata import ODataSyntaxError, parse_filter, parse_key, parse_orderby, sort_rows
from integrations.sandbox.dynamics.store import DataverseError

if TYPE_CHECKING:
    from integrations.sandbox.dynamics.app import DynamicsEmulator

JSON = {"Content-Type": "application/json; odata.metadata=minimal", "OData-Version": "4.0"}
MAX_PAGE = 5000
ENTITY_DEF = r"/EntityDefinitions\(LogicalName='(?P<entity>[a-z_]+)'\)"


def error(exc: DataverseError) -> Response:
    return Response.json(
        {"error": {"code": exc.code, "message": exc.message}}, status=exc.status, headers={"OData-Version": "4.0"}
    )


def prefer(request: Request) -> dict[str, str]:
    out = {}
    for part in (request.header("prefer") or "").split(","):
        name, _, value = part.strip().partition("=")
        if name:
            out[name.strip().lower()] = value.strip().strip('"')
    return out


def _select(request: Request) -> list[str] | None:
    raw = request.arg("$select")
    return [s.strip() for s in raw.split(",") if s.strip()] if raw else None


class ApiRoutes:
    def __init__(self, app: DynamicsEmulator) -> None:
        self.app = app
        self.api = ""

    @property
    def store(self):
        return self.app.store

    def register(self, api: str) -> None:
        self.api = api
        route = self.app.route
        route("GET", api + r"/WhoAmI(?:\(\))?", self.who_am_i)
        route("POST", api + r"/\$batch", self.batch)
        route("GET", api + ENTITY_DEF, self.entity_definition)
        route("GET", api + ENTITY_DEF + r"/Attributes(?:/Microsoft\.Dynamics\.CRM\.(?P<cast>\w+))?", self.attributes)
        route("GET", api + ENTITY_DEF + r"/Attributes\(LogicalName='(?P<name>[a-z0-9_]+)'\)", self.attribute)
        route("POST", api + ENTITY_DEF + r"/Attributes", self.create_attribute)
        route("POST", api + ENTITY_DEF + r"/Keys", self.create_key)
        route("GET", api + r"/(?P<set>[a-z]+)", self.list_records)
        route("POST", api + r"/(?P<set>[a-z]+)", self.create_record)
        route("GET", api + r"/(?P<set>[a-z]+)\((?P<key>[^)]*)\)", self.get_record)
        route("PATCH", api + r"/(?P<set>[a-z]+)\((?P<key>[^)]*)\)", self.patch_record)
        route("DELETE", api + r"/(?P<set>[a-z]+)\((?P<key>[^)]*)\)", self.delete_record)

    # -- helpers -----------------------------------------------------------------------------------------
    def _entity(self, request: Request) -> str:
        entity = self.store.entity_for_set(request.params["set"])
        if entity is None:
            raise DataverseError(404, "0x8006088a", f"Resource not found for the segment '{request.params['set']}'.")
        return entity

    def _row(self, entity: str, record: dict[str, Any], select: list[str] | None) -> dict[str, Any]:
        primary = self.store.primary(entity)
        if select:
            for name in select:
                if not self.store.readable(entity, name):
                    raise DataverseError(
                        400,
                        "0x80060888",
                        f"Could not find a property named '{name}' on type 'Microsoft.Dynamics.CRM.{entity}'.",
                    )
            names = [primary, *[s for s in select if s != primary]]
            body = {n: record.get(n) for n in names}
        else:
            body = dict(record)
        return {"@odata.etag": f'W/"{record.get("versionnumber", 0)}"', **body}

    def _url(self, entity: str, record_id: str) -> str:
        return f"{self.app.base_url}{self.api}/{self.store.entities[entity]['EntitySetName']}({record_id})"

    def _locate(self, entity: str, key: str) -> tuple[str | None, dict[str, str] | None]:
        try:
            parsed = parse_key(key)
        except ODataSyntaxError as exc:
            raise DataverseError(400, "0x80060888", str(exc)) from None
        if isinstance(parsed, str):
            return parsed, None
        found = self.store.find_by_key(entity, parsed)
        return (found[self.store.primary(entity)] if found else None), parsed

    def _written(self, request: Request, entity: str, record: dict[str, Any], created: bool) -> Response:
        headers = {"OData-EntityId": self._url(entity, record[self.store.primary(entity)]), "OData-Version": "4.0"}
        if "return" in prefer(request) and prefer(request)["return"] == "representation":
            body = {
                "@odata.context": f"{self.app.base_url}{self.api}/$metadata#{request.params['set']}/$entity",
                **self._row(entity, record, _select(request)),
            }
            return Response(
                201 if created else 200,
                json.dumps(body).encode(),
                {**JSON, **headers, "Preference-Applied": "return=representation"},
            )
        return Response(204, b"", headers)

    def _body(self, request: Request) -> dict[str, Any]:
        try:
            body = request.json()
        except ValueError:
            raise DataverseError(400, "0x80048d19", "The request body is not valid JSON.") from None
        if not isinstance(body, dict):
            raise DataverseError(400, "0x80048d19", "The request body must be a JSON object.")
        return body

    def _guarded(self, handler, request: Request) -> Response:
        try:
            with self.app.lock:
                return handler(request)
        except DataverseError as exc:
            return error(exc)

    # -- identity ---------------------------------------------------------------------------------------------
    def who_am_i(self, request: Request) -> Response:
        return Response.json(
            {
                "@odata.context": f"{self.app.base_url}{self.api}/$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse",
                "BusinessUnitId": self.app.business_unit_id,
                "UserId": self.app.user_id,
                "OrganizationId": self.app.organization_id,
            },
            headers=JSON,
        )

    # -- records -------------------------------------------------------------------------------------------------
    def list_records(self, request: Request) -> Response:
        return self._guarded(self._list, request)

    def _list(self, request: Request) -> Response:
        entity = self._entity(request)
        prefs = prefer(request)
        select = _select(request)
        context = f"{self.app.base_url}{self.api}/$metadata#{request.params['set']}"
        if request.arg("$deltatoken") is not None or "odata.track-changes" in prefs:
            return self._delta(request, entity, select, context)
        rows = list(self.store.table(entity).values())
        if request.arg("$filter"):
            try:
                predicate = parse_filter(request.arg("$filter") or "", lambda n: self.store.readable(entity, n))
            except ODataSyntaxError as exc:
                raise DataverseError(400, "0x80060888", str(exc)) from None
            rows = [r for r in rows if predicate(r)]
        rows = sort_rows(rows, parse_orderby(request.arg("$orderby") or self.store.primary(entity)))
        if request.arg("$top"):
            rows = rows[: int(request.arg("$top") or 0)]
        size = min(int(prefs.get("odata.maxpagesize") or MAX_PAGE), MAX_PAGE)
        offset = int(request.arg("$skiptoken") or 0)
        page = rows[offset : offset + size]
        body: dict[str, Any] = {"@odata.context": context, "value": [self._row(entity, r, select) for r in page]}
        if offset + size < len(rows):
            query = {k: v[0] for k, v in request.query.items() if k != "$skiptoken"}
            query["$skiptoken"] = str(offset + size)
            safe = "$',()="
            body["@odata.nextLink"] = f"{self.app.base_url}{request.path}?" + "&".join(
                f"{k}={quote(v, safe=safe)}" for k, v in query.items()
            )
        headers = dict(JSON)
        if "odata.maxpagesize" in prefs:
            headers["Preference-Applied"] = f"odata.maxpagesize={size}"
        return Response(200, json.dumps(body).encode(), headers)

    def _delta(self, request: Request, entity: str, select: list[str] | None, context: str) -> Response:
        if entity not in self.store.change_tracking:
            raise DataverseError(400, "0x80072491", f"Change tracking is not enabled for the entity '{entity}'.")
        if any(request.arg(k) for k in ("$filter", "$orderby", "$top", "$expand")):
            raise DataverseError(
                400, "0x80060888", "$filter, $orderby, $top and $expand are not supported with change tracking."
            )
        token = request.arg("$deltatoken")
        if token is None:
            rows, deleted = list(self.store.table(entity).values()), []
        else:
            try:
                since = int(token.split("!", 1)[0])
            except ValueError:
                raise DataverseError(400, "0x80072491", f"'{token}' is not a valid delta token.") from None
            rows, deleted = self.store.changed_since(entity, since)
        values = [self._row(entity, r, select) for r in rows]
        values += [{"@odata.context": f"{context}/$deletedEntity", "id": rid, "reason": "deleted"} for rid in deleted]
        stamp = dt.datetime.now(dt.UTC).strftime("%m/%d/%Y %H:%M:%S")
        link_query = f"$select={','.join(select)}&" if select else ""
        delta = f"{self.app.base_url}{request.path}?{link_query}$deltatoken={self.store.version}%21{quote(stamp)}"
        body = {
            "@odata.context": f"{context}({','.join(select) if select else ''})/$delta"
            if select
            else f"{context}/$delta",
            "@odata.deltaLink": delta,
            "value": values,
        }
        return Response(200, json.dumps(body).encode(), {**JSON, "Preference-Applied": "odata.track-changes"})

    def get_record(self, request: Request) -> Response:
        def run(request: Request) -> Response:
            entity = self._entity(request)
            record_id, _ = self._locate(entity, request.params["key"])
            record = self.store.table(entity).get(record_id or "")
            if record is None:
                raise DataverseError(404, "0x80040217", f"{entity} With Id = {record_id} Does Not Exist")
            body = {
                "@odata.context": f"{self.app.base_url}{self.api}/$metadata#{request.params['set']}/$entity",
                **self._row(entity, record, _select(request)),
            }
            return Response(200, json.dumps(body).encode(), dict(JSON))

        return self._guarded(run, request)

    def create_record(self, request: Request) -> Response:
        def run(request: Request) -> Response:
            entity = self._entity(request)
            body = self._body(request)
            if (request.header("mscrm.suppressduplicatedetection") or "").lower() == "false":
                email = str(body.get("emailaddress1") or "").lower()
                if email and any(
                    str(r.get("emailaddress1") or "").lower() == email for r in self.store.table(entity).values()
                ):
                    raise DataverseError(
                        500,
                        "0x80040333",
                        "A record was not created or updated because a duplicate of the current record already exists.",
                    )
            record = self.store.create(entity, body)
            return self._written(request, entity, record, created=True)

        return self._guarded(run, request)

    def patch_record(self, request: Request) -> Response:
        def run(request: Request) -> Response:
            entity = self._entity(request)
            record_id, key_values = self._locate(entity, request.params["key"])
            body = self._body(request)
            exists = record_id is not None and record_id in self.store.table(entity)
            if request.header("if-match") == "*" and not exists:
                raise DataverseError(404, "0x80040217", f"{entity} With Id = {record_id} Does Not Exist")
            if request.header("if-none-match") == "*" and exists:
                raise DataverseError(412, "0x80040237", "A record with matching key values already exists.")
            if exists:
                record = self.store.update(entity, record_id or "", body)
                return self._written(request, entity, record, created=False)
            record = self.store.create(entity, {**(key_values or {}), **body}, record_id=record_id)
            return self._written(request, entity, record, created=True)

        return self._guarded(run, request)

    def delete_record(self, request: Request) -> Response:
        def run(request: Request) -> Response:
            entity = self._entity(request)
            record_id, _ = self._locate(entity, request.params["key"])
            self.store.delete(entity, record_id or "")
            return Response(204, b"", {"OData-Version": "4.0"})

        return self._guarded(run, request)

    # -- metadata ---------------------------------------------------------------------------------------------------
    def _definition(self, request: Request) -> tuple[str, dict[str, Any]]:
        entity = request.params["entity"]
        if entity not in self.store.entities:
            raise DataverseError(404, "0x80040217", f"Could not find an entity with LogicalName = {entity}.")
        return entity, self.store.entities[entity]

    def entity_definition(self, request: Request) -> Response:
        def run(request: Request) -> Response:
            entity, definition = self._definition(request)
            return Response.json(
                {
                    "LogicalName": entity,
                    "EntitySetName": definition["EntitySetName"],
                    "PrimaryIdAttribute": definition["PrimaryIdAttribute"],
                    "ChangeTrackingEnabled": entity in self.store.change_tracking,
                    "Keys": [{"KeyAttributes": list(k)} for k in self.store.alternate_keys.get(entity, [])],
                },
                headers=JSON,
            )

        return self._guarded(run, request)

    def attributes(self, request: Request) -> Response:
        def run(request: Request) -> Response:
            _entity, definition = self._definition(request)
            cast = request.params.get("cast")
            expand = "OptionSet" in (request.arg("$expand") or "")
            kinds = None
            if cast:
                if cast not in metadata.CLASS_TYPE:
                    raise DataverseError(400, "0x80060888", f"'{cast}' is not a type of attribute metadata.")
                kinds = {metadata.CLASS_TYPE[cast]} | (
                    {"Owner", "Customer"} if cast == "LookupAttributeMetadata" else set()
                )
            elif expand:
                raise DataverseError(
                    400,
                    "0x80060888",
                    "Could not find a property named 'OptionSet' on type 'Microsoft.Dynamics.CRM.AttributeMetadata'.",
                )
            values = [
                metadata.public(a, expand_options=expand, select=_select(request))
                for a in definition["attributes"].values()
                if kinds is None or a["AttributeType"] in kinds
            ]
            return Response.json(
                {
                    "@odata.context": f"{self.app.base_url}{self.api}/$metadata#EntityDefinitions"
                    f"('{request.params['entity']}')/Attributes",
                    "value": values,
                },
                headers=JSON,
            )

        return self._guarded(run, request)

    def attribute(self, request: Request) -> Response:
        def run(request: Request) -> Response:
            _entity, definition = self._definition(request)
            meta = definition["attributes"].get(request.params["name"])
            if meta is None:
                raise DataverseError(
                    404, "0x80040217", f"Could not find attribute with LogicalName = {request.params['name']}."
                )
            return Response.json(
                metadata.public(meta, expand_options=False, select=_select(request)), headers=dict(JSON)
            )

        return self._guarded(run, request)

    def create_attribute(self, request: Request) -> Response:
        def run(request: Request) -> Response:
            entity, definition = self._definition(request)
            try:
                meta = metadata.from_definition(self._body(request))
            except (ValueError, TypeError) as exc:
                raise DataverseError(400, "0x80048d19", str(exc)) from None
            if meta["LogicalName"] in definition["attributes"]:
                raise DataverseError(
                    400,
                    "0x80044363",
                    f"An attribute with the specified name {meta['LogicalName']} already exists on {entity}.",
                )
            definition["attributes"][meta["LogicalName"]] = meta
            return Response(
                204,
                b"",
                {
                    "OData-EntityId": f"{self.app.base_url}{self.api}/EntityDefinitions(LogicalName="
                    f"'{entity}')/Attributes({meta['MetadataId']})"
                },
            )

        return self._guarded(run, request)

    def create_key(self, request: Request) -> Response:
        def run(request: Request) -> Response:
            entity, definition = self._definition(request)
            names = tuple(self._body(request).get("KeyAttributes") or ())
            if not names or any(n not in definition["attributes"] for n in names):
                raise DataverseError(400, "0x80048d19", "KeyAttributes must name attributes of the entity.")
            if not self.store.key_defined(entity, names):
                self.store.alternate_keys.setdefault(entity, []).append(names)
            return Response(204, b"", {"OData-Version": "4.0"})

        return self._guarded(run, request)

    # -- $batch ------------------------------------------------------------------------------------------------------
    def batch(self, request: Request) -> Response:
        try:
            parts = batch.parse(request.body, request.header("content-type") or "")
        except batch.BatchSyntaxError as exc:
            return error(DataverseError(400, "0x80060891", str(exc)))
        self.app.batch_calls += 1
        keep_going = "odata.continue-on-error" in prefer(request)
        results: list[Any] = []
        for part in parts:
            self.app.batch_operations += len(part.operations)
            if part.changeset:
                outcome = self._changeset(part.operations, request)
                results.append(outcome)
                failed = len(outcome) == 1 and outcome[0].status >= 400
            else:
                single = self._operation(part.operations[0], request, {})
                results.append(single)
                failed = single.status >= 400
            if failed and not keep_going:
                break
        body, content_type = batch.compose(results)
        return Response(200, body, {"Content-Type": content_type, "OData-Version": "4.0"})

    def _changeset(self, operations: list[batch.Operation], outer: Request) -> list[batch.OperationResult]:
        with self.app.lock:
            snapshot = (copy.deepcopy(self.store.tables), list(self.store.changes), self.store.version)
            refs: dict[str, str] = {}
            results = []
            for operation in operations:
                result = self._operation(operation, outer, refs)
                if result.status >= 400:
                    self.store.tables, self.store.changes, self.store.version = snapshot
                    return [result]  # a change set is atomic: one failure answers for all
                results.append(result)
            return results

    def _operation(self, operation: batch.Operation, outer: Request, refs: dict[str, str]) -> batch.OperationResult:
        url = operation.url
        if url.startswith("$") and url[1:].split("/")[0] in refs:
            ref = url[1:].split("/")[0]
            url = refs[ref] + url[1 + len(ref) :]
        parts = urlsplit(url)
        path = parts.path if parts.path.startswith("/") else f"{self.api}/{parts.path}"
        inner = Request(
            method=operation.method,
            path=path,
            query=parse_qs(parts.query, keep_blank_values=True),
            headers={**operation.headers, "authorization": outer.header("authorization") or ""},
            body=operation.body,
            token=outer.token,
        )
        response = self._dispatch(inner)
        if operation.content_id and response.headers.get("OData-EntityId"):
            refs[operation.content_id] = response.headers["OData-EntityId"]
        headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
        return batch.OperationResult(response.status, headers, response.body, operation.content_id)

    def _dispatch(self, request: Request) -> Response:
        for method, pattern, handler, _auth in self.app.routes:
            match = pattern.match(request.path)
            if (
                match
                and method == request.method
                and request.path.startswith(self.api)
                and "$batch" not in request.path
            ):
                request.params = {k: v for k, v in match.groupdict().items() if v is not None}
                started = time.monotonic()
                response = handler(request)
                self.app._time_remaining(self.app._user(request), (time.monotonic() - started) * 1000)
                return response
        return self.app.not_found(request)
