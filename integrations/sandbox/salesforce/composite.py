"""sObject Collections and the Composite resource (crm-reference §1.2).

Collections take up to 200 records per call and answer per record, in request order:
``{"id", "success", "errors": [{"statusCode", "message", "fields"}]}`` (upserts add ``created``).
With ``allOrNone`` false (the default) good records are saved and bad ones reported; with it true
one failure rolls every record back and the others report ``ALL_OR_NONE_OPERATION_ROLLED_BACK``.
Composite runs up to 25 sub-requests in order, substituting ``@{referenceId.path}`` from earlier
answers (the cap is UNVERIFIED, §12).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from integrations.sandbox.core import Request, Response
from integrations.sandbox.salesforce.errors import SfError
from integrations.sandbox.salesforce.ids import normalize_id
from integrations.sandbox.salesforce.schema import SObject

if TYPE_CHECKING:
    from integrations.sandbox.salesforce.app import SalesforceEmulator

V = r"/services/data/v(?P<version>\d+\.\d+)"
S = r"(?P<sobject>[^/]+)"
MAX_RECORDS = 200
MAX_RETRIEVE = 2000
MAX_SUBREQUESTS = 25
# Of those, at most five may be queries (query, queryAll, query more) or sObject Collections:
# https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_composite_post.htm
MAX_QUERY_OR_COLLECTION_SUBREQUESTS = 5
_QUERY_OR_COLLECTION = re.compile(r"^/services/data/v\d+\.\d+/(query|queryAll|composite/sobjects)(/|\?|$)")
ROLLED_BACK = {
    "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
    "message": "Record rolled back because not all records were valid and the request was using AllOrNone header",
    "fields": [],
}
HALTED = "The transaction was rolled back since another operation in the same transaction failed."
_REFERENCE = re.compile(r"@\{([A-Za-z][A-Za-z0-9_]*)((?:\.[A-Za-z0-9_]+|\[\d+\])*)\}")


class UnresolvedReference(Exception):
    pass


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


class CompositeRoutes:
    def __init__(self, app: SalesforceEmulator) -> None:
        self.app = app

    def register(self) -> None:
        api = self.app.api
        api("POST", rf"{V}/composite/?", self.composite)
        api("POST", rf"{V}/composite/sobjects/?", self.create_many)
        api("PATCH", rf"{V}/composite/sobjects/?", self.update_many)
        api("DELETE", rf"{V}/composite/sobjects/?", self.delete_many)
        api("GET", rf"{V}/composite/sobjects/{S}/?", self.retrieve_many)
        api("POST", rf"{V}/composite/sobjects/{S}/?", self.retrieve_many)  # ids and fields in the body
        api("PATCH", rf"{V}/composite/sobjects/{S}/?", self.update_many)
        api("DELETE", rf"{V}/composite/sobjects/{S}/?", self.delete_many)
        api("PATCH", rf"{V}/composite/sobjects/{S}/(?P<field>[^/]+)/?", self.upsert_many)

    # -- the shared per-record loop ------------------------------------------------------------------
    def _records(self, request: Request) -> tuple[list[Any], bool]:
        body = self.app.json_body(request)
        if not isinstance(body, dict) or not isinstance(body.get("records"), list):
            raise SfError(400, "JSON_PARSER_ERROR", "The request body must be an object with a records array")
        records = body["records"]
        if len(records) > MAX_RECORDS:
            raise SfError(
                400,
                "EXCEEDED_ID_LIMIT",
                f"record limit reached. cannot submit more than {MAX_RECORDS} records into this call",
            )
        return records, _truthy(body.get("allOrNone", False))

    def _each(
        self,
        items: list[Any],
        all_or_none: bool,
        apply: Callable[[Any], dict[str, Any]],
        failure: Callable[[Any], dict],
    ) -> Response:
        store = self.app.store
        results: list[dict[str, Any]] = []
        failed = False
        with store.atomic() as start:
            for item in items:
                mark = store.savepoint()
                try:
                    results.append(apply(item))
                except SfError as exc:
                    store.rollback_to(mark)
                    failed = True
                    results.append({**failure(item), "success": False, "errors": [exc.save_error()]})
            if all_or_none and failed:
                store.rollback_to(start)
                results = [r if not r["success"] else {**r, "success": False, "errors": [ROLLED_BACK]} for r in results]
        return Response.json(results)

    def _typed(self, record: Any, default: str | None = None) -> tuple[SObject, dict[str, Any]]:
        if not isinstance(record, dict):
            raise SfError(400, "JSON_PARSER_ERROR", "each record must be a JSON object", [])
        name = (record.get("attributes") or {}).get("type") or default
        if not name:
            raise SfError(400, "INVALID_TYPE", "Must send a concrete entity type.", [])
        sobject = self.app.store.sobject(name)
        if sobject is None:
            raise SfError(400, "INVALID_TYPE", f"sObject type '{name}' is not supported.", [])
        return sobject, record

    @staticmethod
    def _id_of(record: Any) -> str | None:
        if not isinstance(record, dict):
            return None
        return record.get("id") or record.get("Id")

    # -- create, update, upsert, delete ---------------------------------------------------------------
    def create_many(self, request: Request) -> Response:
        records, all_or_none = self._records(request)
        actor = self.app.actor(request)

        def apply(raw: Any) -> dict[str, Any]:
            sobject, record = self._typed(raw)
            return {"id": self.app.store.insert(sobject, record, actor)["Id"], "success": True, "errors": []}

        return self._each(records, all_or_none, apply, lambda raw: {})

    def update_many(self, request: Request) -> Response:
        records, all_or_none = self._records(request)
        actor = self.app.actor(request)
        default = request.params.get("sobject")

        def apply(raw: Any) -> dict[str, Any]:
            record_id = self._id_of(raw)
            if not record_id:
                raise SfError(400, "MISSING_ARGUMENT", "Id not specified in an update call", [])
            sobject, record = self._typed(raw, default or self._type_of_id(record_id))
            fields = {k: v for k, v in record.items() if k not in ("id", "Id")}
            self.app.store.update(sobject, record_id, fields, actor)
            return {"id": normalize_id(record_id), "success": True, "errors": []}

        return self._each(records, all_or_none, apply, lambda raw: {"id": self._id_of(raw)})

    def _type_of_id(self, record_id: str) -> str | None:
        found = self.app.store.locate(record_id)
        return found[0].name if found else None

    def upsert_many(self, request: Request) -> Response:
        sobject = self.app.sobject_or_404(request.params["sobject"])
        records, all_or_none = self._records(request)
        field = sobject.field(request.params["field"])
        if field is None or not (field.external_id or field.type == "id"):
            raise SfError(
                400,
                "INVALID_FIELD",
                f"Field name provided, {request.params['field']} is not an External ID or indexed field for "
                f"{sobject.name}",
            )
        actor = self.app.actor(request)

        def value_of(raw: Any) -> Any:
            if not isinstance(raw, dict):
                return None
            return next((v for k, v in raw.items() if k.lower() == field.name.lower()), None)

        seen: dict[str, int] = {}
        for raw in records:
            key = str(value_of(raw)).casefold()
            seen[key] = seen.get(key, 0) + 1

        def apply(raw: Any) -> dict[str, Any]:
            typed, record = self._typed(raw, sobject.name)
            if typed.name != sobject.name:
                raise SfError(400, "INVALID_TYPE", f"Record type {typed.name} does not match {sobject.name}", [])
            value = value_of(record)
            if value in (None, ""):
                raise SfError(400, "MISSING_ARGUMENT", f"{field.name} not specified", [field.name])
            if seen[str(value).casefold()] > 1:
                raise SfError(400, "DUPLICATE_EXTERNAL_ID", f"Duplicate external id specified: {value}", [field.name])
            saved, created = self.app.store.upsert(sobject, field.name, value, record, actor)
            return {"id": saved["Id"], "success": True, "errors": [], "created": created}

        return self._each(records, all_or_none, apply, lambda raw: {"created": False})

    def delete_many(self, request: Request) -> Response:
        ids = [i for i in (request.arg("ids") or "").split(",") if i]
        if not ids:
            raise SfError(400, "MISSING_ARGUMENT", "ids is a required parameter")
        if len(ids) > MAX_RECORDS:
            raise SfError(
                400,
                "EXCEEDED_ID_LIMIT",
                f"record limit reached. cannot submit more than {MAX_RECORDS} records into this call",
            )
        actor = self.app.actor(request)

        def apply(raw_id: str) -> dict[str, Any]:
            if normalize_id(raw_id) is None:
                raise SfError(400, "MALFORMED_ID", f"malformed id {raw_id}", [])
            found = self.app.store.locate(raw_id)
            if found is None:
                raise SfError(404, "NOT_FOUND", "The requested resource does not exist", [])
            self.app.store.delete(found[0], raw_id, actor)
            return {"id": normalize_id(raw_id), "success": True, "errors": []}

        return self._each(ids, _truthy(request.arg("allOrNone", "false")), apply, lambda raw_id: {"id": raw_id})

    def retrieve_many(self, request: Request) -> Response:
        sobject = self.app.sobject_or_404(request.params["sobject"])
        if request.method == "POST":
            body = self.app.json_body(request)
            body = body if isinstance(body, dict) else {}
            ids, fields = list(body.get("ids") or []), list(body.get("fields") or [])
        else:
            ids = [i for i in (request.arg("ids") or "").split(",") if i]
            fields = [f for f in (request.arg("fields") or "").split(",") if f]
        if not ids or not fields:
            raise SfError(400, "MISSING_ARGUMENT", "ids and fields are required")
        if len(ids) > MAX_RETRIEVE:
            raise SfError(400, "EXCEEDED_ID_LIMIT", f"cannot retrieve more than {MAX_RETRIEVE} records in one call")
        for name in fields:
            if sobject.field(name) is None:
                raise SfError(400, "INVALID_FIELD", f"No such column '{name}' on entity '{sobject.name}'")
        base, out = self.app.base(request), []
        for raw_id in ids:
            full = normalize_id(raw_id)
            record = self.app.store.records[sobject.name].get(full or "")
            live = record is not None and not record["IsDeleted"]
            out.append(self.app.store.as_json(sobject, record, base, ["Id", *fields]) if live else None)
        return Response.json(out)

    # -- composite -----------------------------------------------------------------------------------
    def composite(self, request: Request) -> Response:
        body = self.app.json_body(request)
        subs = body.get("compositeRequest") if isinstance(body, dict) else None
        if not isinstance(subs, list) or not subs:
            raise SfError(400, "JSON_PARSER_ERROR", "compositeRequest must be a non-empty array")
        if len(subs) > MAX_SUBREQUESTS:
            raise SfError(400, "LIMIT_EXCEEDED", f"Composite request size limit of {MAX_SUBREQUESTS} exceeded")
        heavy = [s for s in subs if isinstance(s, dict) and _QUERY_OR_COLLECTION.match(str(s.get("url", "")))]
        if len(heavy) > MAX_QUERY_OR_COLLECTION_SUBREQUESTS:
            raise SfError(
                400,
                "LIMIT_EXCEEDED",
                f"Composite request limit of {MAX_QUERY_OR_COLLECTION_SUBREQUESTS} query or collection "
                "subrequests exceeded",
            )
        refs = [s.get("referenceId") if isinstance(s, dict) else None for s in subs]
        for ref, sub in zip(refs, subs, strict=True):
            if not ref or not re.match(r"^[A-Za-z][A-Za-z0-9_]*$", str(ref)) or refs.count(ref) > 1:
                raise SfError(400, "INVALID_INPUT", f"referenceId must be unique and alphanumeric: {ref}")
            if not sub.get("method") or not sub.get("url"):
                raise SfError(400, "INVALID_INPUT", f"method and url are required in sub-request {ref}")
        all_or_none = _truthy(body.get("allOrNone", False))
        answers: dict[str, Any] = {}
        out: list[dict[str, Any]] = []
        store = self.app.store
        with store.atomic() as start:
            failed = False
            for ref, sub in zip(refs, subs, strict=True):
                if failed and all_or_none:
                    out.append(self._halted(ref))
                    continue
                try:
                    url = self._substitute(str(sub["url"]), answers, in_url=True)
                    payload = self._substitute(sub.get("body"), answers)
                except UnresolvedReference as exc:
                    failed = True
                    message = f"Invalid reference specified. No value for {exc} found in {ref}"
                    out.append(self._item(ref, 400, [{"errorCode": "PROCESSING_HALTED", "message": message}]))
                    continue
                response = self.app.dispatch(str(sub["method"]).upper(), url, payload, request)
                parsed = json.loads(response.body) if response.body else None
                if response.status >= 400:
                    failed = True
                else:
                    answers[ref] = parsed
                headers = {"Location": response.headers["Location"]} if "Location" in response.headers else {}
                if response.status == 201 and isinstance(parsed, dict) and "id" in parsed and not headers:
                    headers["Location"] = f"{url.split('?')[0].rstrip('/')}/{parsed['id']}"
                out.append(self._item(ref, response.status, parsed, headers))
            if all_or_none and failed:
                store.rollback_to(start)
                out = [self._halted(i["referenceId"]) if i["httpStatusCode"] < 400 else i for i in out]
        return Response.json({"compositeResponse": out})

    @staticmethod
    def _item(ref: str, status: int, body: Any, headers: dict[str, str] | None = None) -> dict[str, Any]:
        return {"body": body, "httpHeaders": headers or {}, "httpStatusCode": status, "referenceId": ref}

    def _halted(self, ref: str) -> dict[str, Any]:
        return self._item(ref, 400, [{"errorCode": "PROCESSING_HALTED", "message": HALTED}])

    def _substitute(self, value: Any, answers: dict[str, Any], in_url: bool = False) -> Any:
        """Replace ``@{ref.path}`` with values from earlier answers (whole-string references keep their type)."""
        if isinstance(value, dict):
            return {k: self._substitute(v, answers) for k, v in value.items()}
        if isinstance(value, list):
            return [self._substitute(v, answers) for v in value]
        if not isinstance(value, str):
            return value
        whole = _REFERENCE.fullmatch(value)
        if whole and not in_url:
            return self._lookup(whole, answers)
        return _REFERENCE.sub(lambda m: str(self._lookup(m, answers)), value)

    @staticmethod
    def _lookup(match: re.Match[str], answers: dict[str, Any]) -> Any:
        ref, path = match.group(1), match.group(2)
        name = ref + path
        if ref not in answers:
            raise UnresolvedReference(name)
        current = answers[ref]
        for key, index in re.findall(r"\.([A-Za-z0-9_]+)|\[(\d+)\]", path):
            try:
                current = current[int(index)] if index else current[key]
            except (KeyError, IndexError, TypeError):
                raise UnresolvedReference(name) from None
        if current is None:
            raise UnresolvedReference(name)
        return current
