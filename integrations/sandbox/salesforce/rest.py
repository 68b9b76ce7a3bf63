"""The REST data API: versions, resources, limits, describe, sObject rows, external ids, SOQL, SOSL,
and the replication resources (crm-reference §1.2, §1.3, §1.5, §1.7, §11.1).

Paths are routed with and without a trailing slash, since clients use both (simple-salesforce
creates with ``/sobjects/Contact/`` and reads ``/sobjects/Contact/{id}``).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from integrations.sandbox import soql
from integrations.sandbox.core import Request, Response
from integrations.sandbox.salesforce.errors import SfError, not_found
from integrations.sandbox.salesforce.ids import normalize_id
from integrations.sandbox.salesforce.schema import SObject
from integrations.sandbox.salesforce.store import MultipleMatches
from integrations.sandbox.salesforce.wire import format_datetime, parse_datetime

if TYPE_CHECKING:
    from integrations.sandbox.salesforce.app import SalesforceEmulator

V = r"/services/data/v(?P<version>\d+\.\d+)"
S = r"(?P<sobject>[^/]+)"
SEASONS = ("Winter", "Spring", "Summer")
UPSERT_BODY_SINCE = 46.0  # from API 46.0 an upsert that updates answers 200 with a body, not 204


def release_label(version: float) -> str:
    """59.0 → "Winter '24": three releases a year, Winter '24 being v59."""
    step = int(version) - 59
    return f"{SEASONS[step % 3]} '{24 + step // 3}"


def soql_error(exc: soql.SoqlError) -> SfError:
    return SfError(400, exc.code, exc.message)


class RestRoutes:
    def __init__(self, app: SalesforceEmulator) -> None:
        self.app = app

    def register(self) -> None:
        api = self.app.api
        api("GET", r"/services/data/?", self.versions, auth=False)
        api("GET", rf"{V}/?", self.resources)
        api("GET", rf"{V}/limits/?", self.limits)
        api("GET", rf"{V}/sobjects/?", self.describe_global)
        api("GET", rf"{V}/sobjects/{S}/describe/?", self.describe)
        api("GET", rf"{V}/sobjects/{S}/(?P<which>updated|deleted)/?", self.replication)
        api("GET", rf"{V}/sobjects/{S}/?", self.basic_info)
        api("POST", rf"{V}/sobjects/{S}/?", self.create)
        api("POST", rf"{V}/sobjects/{S}/Id/?", self.create)  # Id as the external id with no value (v37+)
        row = rf"{V}/sobjects/{S}/(?P<record_id>[^/]+)/?"
        api("GET", row, self.read)
        api("PATCH", row, self.update)
        api("DELETE", row, self.delete)
        by_ext = rf"{V}/sobjects/{S}/(?P<field>[^/]+)/(?P<value>[^/]+)/?"
        api("GET", by_ext, self.read_by_external)
        api("PATCH", by_ext, self.upsert)
        api("DELETE", by_ext, self.delete_by_external)
        api("GET", rf"{V}/(?P<kind>query|queryAll)/?", self.query)
        api("GET", rf"{V}/(?P<kind>query|queryAll)/(?P<locator>[^/]+)/?", self.query_more)
        api("GET", rf"{V}/search/?", self.search)
        api("GET", rf"{V}/parameterizedSearch/?", self.parameterized_search)
        api("POST", rf"{V}/parameterizedSearch/?", self.parameterized_search)

    # -- discovery -----------------------------------------------------------------------------------
    def versions(self, request: Request) -> Response:
        return Response.json(
            [
                {"label": release_label(v), "url": f"/services/data/v{v}.0", "version": f"{v}.0"}
                for v in range(31, self.app.latest_version + 1)
            ]
        )

    def resources(self, request: Request) -> Response:
        base = self.app.base(request)
        names = ("sobjects", "query", "queryAll", "search", "parameterizedSearch", "composite", "limits", "tooling")
        return Response.json({**{n: f"{base}/{n}" for n in names}, "jobs": f"{base}/jobs"})

    def limits(self, request: Request) -> Response:
        used, limit = self.app.allocation.used(), self.app.allocation.limit
        return Response.json(
            {
                "DailyApiRequests": {"Max": limit, "Remaining": max(0, limit - used)},
                "DailyBulkApiBatches": {"Max": 15000, "Remaining": 15000},
                "DailyBulkV2QueryJobs": {"Max": 10000, "Remaining": 10000},
                "DailyBulkV2QueryFileStorageMB": {"Max": 976562, "Remaining": 976562},
                "DailyAsyncApexExecutions": {"Max": 250000, "Remaining": 250000},
                "DataStorageMB": {"Max": 5, "Remaining": 5},
                "FileStorageMB": {"Max": 20, "Remaining": 20},
                "ConcurrentSyncReportRuns": {"Max": 20, "Remaining": 20},
                "SingleEmail": {"Max": 15, "Remaining": 15},
            }
        )

    def describe_global(self, request: Request) -> Response:
        base = self.app.base(request)
        return Response.json(
            {
                "encoding": "UTF-8",
                "maxBatchSize": 200,
                "sobjects": [o.summary(base) for o in self.app.store.schema.values()],
            }
        )

    def describe(self, request: Request) -> Response:
        sobject = self.app.sobject_or_404(request.params["sobject"])
        return Response.json(sobject.describe(self.app.base(request), self.app.store.schema))

    def basic_info(self, request: Request) -> Response:
        sobject = self.app.sobject_or_404(request.params["sobject"])
        base = self.app.base(request)
        recent = self.app.store.rows(sobject.name)[-10:]
        name_field = next((f.name for f in sobject.fields.values() if f.name_field), "Id")
        return Response.json(
            {
                "objectDescribe": sobject.summary(base),
                "recentItems": [self.app.store.as_json(sobject, r, base, ["Id", name_field]) for r in recent],
            }
        )

    # -- rows ------------------------------------------------------------------------------------------
    def _row(self, sobject: SObject, raw_id: str, reading: bool = False) -> dict[str, Any]:
        if normalize_id(raw_id) is None:
            raise not_found(f"Provided external ID field does not exist or is not accessible: {raw_id}")
        return self.app.store.live(sobject, raw_id, reading=reading)

    def create(self, request: Request) -> Response:
        sobject = self.app.sobject_or_404(request.params["sobject"])
        record = self.app.store.insert(sobject, self.app.json_body(request), self.app.actor(request))
        return Response.json({"id": record["Id"], "success": True, "errors": []}, status=201)

    def read(self, request: Request) -> Response:
        sobject = self.app.sobject_or_404(request.params["sobject"])
        record = self._row(sobject, unquote(request.params["record_id"]), reading=True)
        only = self._fields_arg(request, sobject)
        return Response.json(self.app.store.as_json(sobject, record, self.app.base(request), only))

    def _fields_arg(self, request: Request, sobject: SObject) -> list[str] | None:
        raw = request.arg("fields")
        if not raw:
            return None
        names = [n.strip() for n in raw.split(",") if n.strip()]
        for name in names:
            if sobject.field(name) is None:
                raise SfError(400, "INVALID_FIELD", f"No such column '{name}' on entity '{sobject.name}'")
        return [sobject.fields[n.lower()].name for n in names]

    def update(self, request: Request) -> Response:
        sobject = self.app.sobject_or_404(request.params["sobject"])
        self._row(sobject, unquote(request.params["record_id"]))
        self.app.store.update(
            sobject, unquote(request.params["record_id"]), self.app.json_body(request), self.app.actor(request)
        )
        return Response(204)

    def delete(self, request: Request) -> Response:
        sobject = self.app.sobject_or_404(request.params["sobject"])
        self._row(sobject, unquote(request.params["record_id"]))
        self.app.store.delete(sobject, unquote(request.params["record_id"]), self.app.actor(request))
        return Response(204)

    # -- external ids ------------------------------------------------------------------------------------
    def _multiple(self, request: Request, exc: MultipleMatches) -> Response:
        base = self.app.base(request)
        return Response.json([f"{base}/sobjects/{exc.sobject}/{i}" for i in exc.ids], status=300)

    def read_by_external(self, request: Request) -> Response:
        sobject = self.app.sobject_or_404(request.params["sobject"])
        first, second = unquote(request.params["field"]), unquote(request.params["value"])
        blob = sobject.field(second)
        if blob is not None and blob.type == "base64" and normalize_id(first):
            # /sobjects/ContentNote/{id}/Content: the raw body of a base64 field.
            record = self.app.store.live(sobject, first, reading=True)
            content = record.get(blob.name) or b""
            return Response(200, content, {"Content-Type": "application/octet-stream"})
        f = self.app.store.external_field(sobject, first)
        matches = self.app.store.match_external(sobject, f, second)
        if not matches:
            raise not_found()
        if len(matches) > 1:
            return self._multiple(request, MultipleMatches(sobject.name, f.name, [m["Id"] for m in matches]))
        return Response.json(self.app.store.as_json(sobject, matches[0], self.app.base(request)))

    def upsert(self, request: Request) -> Response:
        sobject = self.app.sobject_or_404(request.params["sobject"])
        field, value = unquote(request.params["field"]), unquote(request.params["value"])
        update_only = (request.arg("updateOnly") or "").lower() == "true"
        try:
            record, created = self.app.store.upsert(
                sobject, field, value, self.app.json_body(request), self.app.actor(request), update_only
            )
        except MultipleMatches as exc:
            return self._multiple(request, exc)
        if created:
            return Response.json({"id": record["Id"], "success": True, "errors": [], "created": True}, status=201)
        if float(request.params["version"]) < UPSERT_BODY_SINCE:
            return Response(204)
        return Response.json({"id": record["Id"], "success": True, "errors": [], "created": False})

    def delete_by_external(self, request: Request) -> Response:
        sobject = self.app.sobject_or_404(request.params["sobject"])
        f = self.app.store.external_field(sobject, unquote(request.params["field"]))
        matches = self.app.store.match_external(sobject, f, unquote(request.params["value"]))
        if not matches:
            raise not_found()
        if len(matches) > 1:
            return self._multiple(request, MultipleMatches(sobject.name, f.name, [m["Id"] for m in matches]))
        self.app.store.delete(sobject, matches[0]["Id"], self.app.actor(request))
        return Response(204)

    # -- replication (§1.7) ----------------------------------------------------------------------------
    def _window(self, request: Request, days: int) -> tuple[datetime, datetime, datetime]:
        raw_start, raw_end = request.arg("start"), request.arg("end")
        if not raw_start or not raw_end:
            raise SfError(400, "MISSING_ARGUMENT", "start and end are both required parameters")
        # An unencoded "+" in the offset arrives as a space.
        start, end = parse_datetime(raw_start.replace(" ", "+")), parse_datetime(raw_end.replace(" ", "+"))
        if start is None or end is None:
            raise SfError(400, "INVALID_REPLICATION_DATE", "start and end must be valid dateTime values")
        # The API ignores the seconds of both bounds.
        start, end = start.replace(second=0, microsecond=0), end.replace(second=0, microsecond=0)
        now = datetime.now(UTC)
        if end <= start:
            raise SfError(400, "INVALID_REPLICATION_DATE", "startDate must chronologically precede endDate")
        if start < now - timedelta(days=days):
            raise SfError(400, "INVALID_REPLICATION_DATE", f"startDate cannot be more than {days} days ago")
        return start, end, min(end, now)

    def replication(self, request: Request) -> Response:
        sobject = self.app.sobject_or_404(request.params["sobject"])
        deleted = request.params["which"] == "deleted"
        start, _end, covered = self._window(request, 15 if deleted else 30)
        rows = [
            r
            for r in self.app.store.rows(sobject.name, include_deleted=True)
            if r["IsDeleted"] == deleted and start <= r["SystemModstamp"] <= covered
        ]
        if not deleted:
            return Response.json({"ids": [r["Id"] for r in rows], "latestDateCovered": format_datetime(covered)})
        gone = sorted(rows, key=lambda r: r["SystemModstamp"])
        earliest = gone[0]["SystemModstamp"] if gone else start
        return Response.json(
            {
                "deletedRecords": [{"id": r["Id"], "deletedDate": format_datetime(r["SystemModstamp"])} for r in gone],
                "earliestDateAvailable": format_datetime(earliest),
                "latestDateCovered": format_datetime(covered),
            }
        )

    # -- SOQL and SOSL -----------------------------------------------------------------------------------
    def query(self, request: Request) -> Response:
        kind = request.params["kind"]
        batch = None
        options = request.header("sforce-query-options") or ""
        if match := re.search(r"batchSize=(\d+)", options):
            batch = min(2000, max(200, int(match.group(1))))  # Salesforce honours 200-2000
        try:
            body = self.app.queries.first_page(
                request.arg("q") or "", kind == "queryAll", self.app.base(request), kind, batch
            )
        except soql.SoqlError as exc:
            raise soql_error(exc) from None
        return Response.json(body)

    def query_more(self, request: Request) -> Response:
        kind = request.params["kind"]
        return Response.json(self.app.queries.next_page(request.params["locator"], self.app.base(request), kind))

    def search(self, request: Request) -> Response:
        try:
            return Response.json(self.app.queries.search(request.arg("q") or "", self.app.base(request)))
        except soql.SoqlError as exc:
            raise soql_error(exc) from None

    def parameterized_search(self, request: Request) -> Response:
        if request.method == "POST":
            params = self.app.json_body(request)
            if not isinstance(params, dict):
                raise SfError(400, "JSON_PARSER_ERROR", "the body must be a JSON object")
        else:
            params = {k: v[0] for k, v in request.query.items()}
            if params.get("fields"):
                params["fields"] = params["fields"].split(",")
            params["sobjects"] = [
                {
                    "name": name,
                    "fields": (request.arg(f"{name}.fields") or "").split(",") if request.arg(f"{name}.fields") else [],
                    "limit": request.arg(f"{name}.limit"),
                }
                for name in request.query.get("sobject", [])
            ] or None
        if not params.get("q"):
            raise SfError(400, "MALFORMED_SEARCH", "No search term found. The q parameter is required.")
        try:
            return Response.json(self.app.queries.parameterized(params, self.app.base(request)))
        except soql.SoqlError as exc:
            raise soql_error(exc) from None
