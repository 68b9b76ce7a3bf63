"""Bulk API 2.0 ingest jobs (crm-reference §1.2): create a job, PUT one CSV, mark it UploadComplete,
poll, then read ``successfulResults`` / ``failedResults`` / ``unprocessedrecords`` as CSV.

The sandbox processes a job synchronously when it is marked UploadComplete, so the first poll already
sees ``JobComplete``. Each row is saved on its own (a bad row never blocks the others); result rows
carry ``sf__Id`` and ``sf__Created`` or ``sf__Error`` before the uploaded columns. An empty cell leaves
a field alone and ``#N/A`` clears it, as in Salesforce.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from integrations.sandbox.core import Request, Response
from integrations.sandbox.salesforce.errors import SfError, not_found
from integrations.sandbox.salesforce.ids import normalize_id
from integrations.sandbox.salesforce.store import Actor
from integrations.sandbox.salesforce.wire import format_datetime

if TYPE_CHECKING:
    from integrations.sandbox.salesforce.app import SalesforceEmulator

V = r"/services/data/v(?P<version>\d+\.\d+)"
J = r"(?P<job_id>[^/]+)"
OPERATIONS = ("insert", "update", "upsert", "delete", "hardDelete")
DELIMITERS = {"COMMA": ",", "TAB": "\t", "PIPE": "|", "SEMICOLON": ";", "CARET": "^", "BACKQUOTE": "`"}
MULTIPLE_UPLOADS = (
    "Found multiple contents for job: {job}, please 'Close' / 'Abort' / 'Delete' the current Job then create a new "
    "Job and make sure you only do 'PUT' once on a given Job."
)


def _invalid(message: str) -> SfError:
    return SfError(400, "INVALIDJOB", message)


@dataclass
class IngestJob:
    id: str
    object: str
    operation: str
    external_id_field: str | None
    line_ending: str
    column_delimiter: str
    created_by: str
    created: datetime
    api_version: str
    state: str = "Open"
    modified: datetime | None = None
    data: bytes | None = None
    header: list[str] = field(default_factory=list)
    successes: list[tuple[str, bool, list[str]]] = field(default_factory=list)
    failures: list[tuple[str, str, list[str]]] = field(default_factory=list)
    unprocessed: list[list[str]] = field(default_factory=list)
    error_message: str | None = None

    def info(self, detail: bool = True) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "operation": self.operation,
            "object": self.object,
            "createdById": self.created_by,
            "createdDate": format_datetime(self.created),
            "systemModstamp": format_datetime(self.modified or self.created),
            "state": self.state,
            "externalIdFieldName": self.external_id_field,
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": float(self.api_version),
            "contentUrl": f"services/data/v{self.api_version}/jobs/ingest/{self.id}/batches",
            "lineEnding": self.line_ending,
            "columnDelimiter": self.column_delimiter,
        }
        if detail:
            body.update(
                {
                    "jobType": "V2Ingest",
                    "numberRecordsProcessed": len(self.successes) + len(self.failures),
                    "numberRecordsFailed": len(self.failures),
                    "retries": 0,
                    "totalProcessingTime": 0,
                    "apiActiveProcessingTime": 0,
                    "apexProcessingTime": 0,
                }
            )
            if self.error_message:
                body["errorMessage"] = self.error_message
        return body


class BulkRoutes:
    def __init__(self, app: SalesforceEmulator) -> None:
        self.app = app

    def register(self) -> None:
        api = self.app.api
        base = rf"{V}/jobs/ingest"
        api("POST", rf"{base}/?", self.create)
        api("GET", rf"{base}/?", self.list_jobs)
        api("GET", rf"{base}/{J}/?", self.get)
        api("PATCH", rf"{base}/{J}/?", self.set_state)
        api("DELETE", rf"{base}/{J}/?", self.delete)
        api("PUT", rf"{base}/{J}/batches/?", self.upload)
        api("GET", rf"{base}/{J}/(?P<which>successfulResults|failedResults|unprocessedrecords)/?", self.results)

    def _job(self, request: Request) -> IngestJob:
        job = self.app.jobs.get(request.params["job_id"])
        if job is None:
            raise not_found(f"Job with id {request.params['job_id']} does not exist")
        return job

    def create(self, request: Request) -> Response:
        body = self.app.json_body(request)
        if not isinstance(body, dict):
            raise _invalid("InvalidJob : the job definition must be a JSON object")
        sobject = self.app.store.sobject(str(body.get("object") or ""))
        if sobject is None:
            raise _invalid(f"InvalidJob : Invalid object: {body.get('object')}")
        operation = body.get("operation")
        if operation not in OPERATIONS:
            raise _invalid(f"InvalidJob : Invalid operation: {operation}")
        if str(body.get("contentType", "CSV")).upper() != "CSV":
            raise _invalid("InvalidJob : contentType must be CSV")
        line_ending = str(body.get("lineEnding", "LF")).upper()
        delimiter = str(body.get("columnDelimiter", "COMMA")).upper()
        if line_ending not in ("LF", "CRLF") or delimiter not in DELIMITERS:
            raise _invalid("InvalidJob : unsupported lineEnding or columnDelimiter")
        ext = body.get("externalIdFieldName")
        if operation == "upsert":
            if not ext:
                raise _invalid("InvalidJob : External ID was blank for upsert")
            f = sobject.field(str(ext))
            if f is None or not (f.external_id or f.type == "id"):
                raise _invalid(f"InvalidJob : Field name provided, {ext} is not an External ID or indexed field")
            ext = f.name
        actor = self.app.actor(request)
        job = IngestJob(
            id=self.app.ids.new("750"),
            object=sobject.name,
            operation=operation,
            external_id_field=ext if operation == "upsert" else None,
            line_ending=line_ending,
            column_delimiter=delimiter,
            created_by=actor.user_id,
            created=self.app.store.now(),
            api_version=request.params["version"],
        )
        self.app.jobs[job.id] = job
        return Response.json(job.info(detail=False))

    def list_jobs(self, request: Request) -> Response:
        records = [job.info(detail=False) for job in self.app.jobs.values()]
        return Response.json({"done": True, "records": records, "nextRecordsUrl": None})

    def get(self, request: Request) -> Response:
        return Response.json(self._job(request).info())

    def upload(self, request: Request) -> Response:
        job = self._job(request)
        if job.data is not None:
            raise SfError(400, "BULK_API_ERROR", MULTIPLE_UPLOADS.format(job=job.id))
        if job.state != "Open":
            raise SfError(409, "INVALIDJOBSTATE", f"Job is in state {job.state}, data can only be added when Open")
        job.data = request.body
        job.modified = self.app.store.now()
        return Response(201)

    def set_state(self, request: Request) -> Response:
        job = self._job(request)
        body = self.app.json_body(request)
        wanted = body.get("state") if isinstance(body, dict) else None
        if wanted == "UploadComplete" and job.state == "Open":
            job.state = "UploadComplete"
            answer = job.info(detail=False)
            self._process(job, self.app.actor(request))
            return Response.json(answer)
        if wanted == "Aborted" and job.state in ("Open", "UploadComplete"):
            job.state, job.modified = "Aborted", self.app.store.now()
            return Response.json(job.info(detail=False))
        raise SfError(409, "INVALIDJOBSTATE", f"Cannot change the state of a {job.state} job to {wanted}")

    def delete(self, request: Request) -> Response:
        job = self._job(request)
        if job.state in ("Open", "InProgress"):
            raise SfError(409, "INVALIDJOBSTATE", "Only closed, aborted, failed or completed jobs can be deleted")
        del self.app.jobs[job.id]
        return Response(204)

    def results(self, request: Request) -> Response:
        job = self._job(request)
        if job.state not in ("JobComplete", "Failed", "Aborted"):
            raise SfError(409, "INVALIDJOBSTATE", f"Results are not available while the job is {job.state}")
        which = request.params["which"]
        out = io.StringIO()
        writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n")
        if which == "successfulResults":
            writer.writerow(["sf__Id", "sf__Created", *job.header])
            writer.writerows([i, "true" if created else "false", *row] for i, created, row in job.successes)
        elif which == "failedResults":
            writer.writerow(["sf__Id", "sf__Error", *job.header])
            writer.writerows([i, error, *row] for i, error, row in job.failures)
        else:
            writer.writerow(job.header)
            writer.writerows(job.unprocessed)
        return Response(200, out.getvalue().encode(), {"Content-Type": "text/csv"})

    # -- processing ------------------------------------------------------------------------------------
    def _process(self, job: IngestJob, actor: Actor) -> None:
        sobject = self.app.store.schema[job.object]
        try:
            header, rows = self._parse(job)
        except SfError as exc:
            job.state, job.error_message, job.modified = "Failed", exc.message, self.app.store.now()
            return
        job.header = header
        for row in rows:
            cells = dict(zip(header, row, strict=False))
            values = {k: (None if v == "#N/A" else v) for k, v in cells.items() if v != ""}
            try:
                with self.app.store.atomic():
                    record_id, created = self._apply(job, sobject, values, actor)
                job.successes.append((record_id, created, row))
            except SfError as exc:
                job.failures.append((cells.get("Id", "") if job.operation != "insert" else "", exc.bulk_error(), row))
        self.app.counters.bulk(len(rows))
        job.state, job.modified = "JobComplete", self.app.store.now()

    def _parse(self, job: IngestJob) -> tuple[list[str], list[list[str]]]:
        if not job.data:
            raise _invalid("InvalidBatch : no data was uploaded for this job")
        newline = "\r\n" if job.line_ending == "CRLF" else "\n"
        text = job.data.decode("utf-8-sig")
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=DELIMITERS[job.column_delimiter])
        rows = [r for r in reader if r]
        if newline == "\r\n" and "\r\n" not in text and "\n" in text:
            raise _invalid("InvalidBatch : LineEnding is invalid on user data. Current LineEnding setting is CRLF")
        if not rows:
            raise _invalid("InvalidBatch : the CSV has no header row")
        header = [h.strip() for h in rows[0]]
        sobject = self.app.store.schema[job.object]
        for name in header:
            if sobject.field(name) is None:
                raise _invalid(f"InvalidBatch : Field name not found : {name}")
        if job.operation in ("delete", "hardDelete") and [h.lower() for h in header] != ["id"]:
            raise _invalid("InvalidBatch : The 'delete' batch must contain only 'Id'")
        return header, rows[1:]

    def _apply(self, job: IngestJob, sobject: Any, values: dict[str, Any], actor: Actor) -> tuple[str, bool]:
        store = self.app.store
        if job.operation == "insert":
            return store.insert(sobject, values, actor)["Id"], True
        if job.operation == "upsert":
            ext = job.external_id_field or "Id"
            value = next((v for k, v in values.items() if k.lower() == ext.lower()), None)
            if value is None:
                raise SfError(400, "MISSING_ARGUMENT", f"{ext} not specified", [ext])
            record, created = store.upsert(sobject, ext, value, values, actor)
            return record["Id"], created
        record_id = next((v for k, v in values.items() if k.lower() == "id"), None)
        if not record_id:
            raise SfError(400, "MISSING_ARGUMENT", "Id not specified in an update call", ["Id"])
        if job.operation == "update":
            rest = {k: v for k, v in values.items() if k.lower() != "id"}
            return store.update(sobject, record_id, rest, actor)["Id"], False
        store.delete(sobject, record_id, actor)
        return normalize_id(record_id) or record_id, False
