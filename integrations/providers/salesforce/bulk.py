"""Bulk API 2.0 ingest jobs through the HTTP seam, with every row's result mapped back to its input.

Above the bulk threshold one job replaces ⌈n/200⌉ collection calls (crm-reference §1.2): create
the job (``POST jobs/ingest``), upload one CSV (``PUT …/batches``), close it
(``PATCH {"state": "UploadComplete"}``), poll (``GET``) until ``JobComplete``, then read
``successfulResults`` and — only when the job reports failures — ``failedResults``. That is five
calls plus one per extra poll, whatever the number of records.

Salesforce does not promise result rows in upload order, so each row carries a correlation
column whose value is unique in the job (the record ``Id`` of an update, our key of an upsert,
the e-mail of an insert) and results are read back by it from the echoed row. Rows the platform
never processed come back in no result file; the caller turns those into retryable outcomes.

The seam is used directly (not ``sf.bulk2``) so the poll is ours: it starts at once (a small job
is often done by the first poll), backs off to ``max_poll_interval``, and a job still running
after ``max_wait`` seconds is aborted and raised as a RetryableError — the retry then finds the
rows that did land by e-mail, so nothing is written twice.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from integrations.errors import CrmError, RecordError, RetryableError
from integrations.http import CrmHttp
from integrations.providers.salesforce.failures import bulk_error
from integrations.providers.salesforce.wire import to_csv

# simple-salesforce's cap on one upload (Salesforce allows 150 MB after base64, ~100 MB raw).
MAX_UPLOAD_BYTES = 100_000_000
DONE_STATES = frozenset({"JobComplete", "Failed", "Aborted"})


@dataclass(frozen=True)
class RowResult:
    record_id: str | None
    created: bool = False
    error: CrmError | None = None


class BulkIngest:
    def __init__(
        self,
        http: CrmHttp,
        data_url: str,
        *,
        poll_interval: float = 0.5,
        max_poll_interval: float = 10.0,
        max_wait: float = 900.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.http = http
        self.jobs_url = f"{data_url.rstrip('/')}/jobs/ingest"
        self.poll_interval = poll_interval
        self.max_poll_interval = max_poll_interval
        self.max_wait = max_wait
        self.sleep = sleep

    def run(
        self,
        sobject: str,
        operation: str,
        rows: Sequence[Mapping[str, Any]],
        correlate: str,
        *,
        external_id_field: str | None = None,
    ) -> dict[str, RowResult]:
        """Results by correlation value for ``rows`` (each must hold a unique ``correlate`` value)."""
        results: dict[str, RowResult] = {}
        for part in self._parts(rows, correlate):
            results.update(self._job(sobject, operation, part, correlate, external_id_field))
        return results

    # -- one job -------------------------------------------------------------------------------------
    def _job(
        self,
        sobject: str,
        operation: str,
        csv_bytes: bytes,
        correlate: str,
        external_id_field: str | None,
    ) -> dict[str, RowResult]:
        definition: dict[str, Any] = {
            "object": sobject,
            "operation": operation,
            "contentType": "CSV",
            "lineEnding": "LF",
            "columnDelimiter": "COMMA",
        }
        if external_id_field:
            definition["externalIdFieldName"] = external_id_field
        job = self.http.json("POST", self.jobs_url, json=definition) or {}
        if not job.get("id"):
            raise RetryableError("Salesforce created a Bulk API job without an id", code="bad_body")
        job_url = f"{self.jobs_url}/{job['id']}"
        try:
            self.http.request("PUT", f"{job_url}/batches", data=csv_bytes, headers={"Content-Type": "text/csv"})
            self.http.json("PATCH", job_url, json={"state": "UploadComplete"})
            info = self._wait(job_url)
        except CrmError:
            self._abort(job_url)
            raise
        if info.get("state") == "Failed":
            # The whole upload was refused (an unknown column, a bad CSV): every row shares the reason.
            reason = RecordError(str(info.get("errorMessage") or "the Bulk API job failed"), code="BULK_JOB_FAILED")
            return {value: RowResult(None, error=reason) for value in _column(csv_bytes, correlate)}
        if info.get("state") == "Aborted":
            raise RetryableError("the Bulk API job was aborted before it finished", code="bulk_aborted")
        updated_by_id = operation == "update"
        results: dict[str, RowResult] = {}
        for row in self._result_rows(f"{job_url}/successfulResults"):
            created = str(row.get("sf__Created", "")).lower() == "true"
            results[row.get(correlate, "")] = RowResult(row.get("sf__Id") or None, created=created)
        if int(info.get("numberRecordsFailed") or 0):
            for row in self._result_rows(f"{job_url}/failedResults"):
                error = bulk_error(row.get("sf__Error", ""), updated_by_id=updated_by_id)
                results[row.get(correlate, "")] = RowResult(row.get("sf__Id") or None, error=error)
        return results

    def _wait(self, job_url: str) -> Mapping[str, Any]:
        waited, interval = 0.0, self.poll_interval
        while True:
            info = self.http.json("GET", job_url) or {}
            if info.get("state") in DONE_STATES:
                return info
            if waited >= self.max_wait:
                raise RetryableError(
                    f"the Bulk API job did not finish within {self.max_wait:.0f} s", code="bulk_timeout"
                )
            self.sleep(interval)
            waited += interval
            interval = min(interval * 2, self.max_poll_interval)

    def _abort(self, job_url: str) -> None:
        try:
            self.http.json("PATCH", job_url, json={"state": "Aborted"})
        except CrmError:
            pass  # already closed or gone: nothing left to stop

    def _result_rows(self, url: str) -> list[dict[str, str]]:
        response = self.http.request("GET", url, headers={"Accept": "text/csv"})
        return list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"), newline="")))

    # -- CSV -----------------------------------------------------------------------------------------
    @staticmethod
    def _parts(rows: Sequence[Mapping[str, Any]], correlate: str) -> list[bytes]:
        """The rows as CSV uploads of at most MAX_UPLOAD_BYTES each (usually one)."""
        header = [correlate, *sorted({k for row in rows for k in row if k != correlate})]
        lines = [_csv_line(header)]
        lines += [_csv_line([_cell(row, name) for name in header]) for row in rows]
        parts: list[bytes] = []
        current, size = [lines[0]], len(lines[0])
        for line in lines[1:]:
            if len(current) > 1 and size + len(line) > MAX_UPLOAD_BYTES:
                parts.append(b"".join(current))
                current, size = [lines[0]], len(lines[0])
            current.append(line)
            size += len(line)
        parts.append(b"".join(current))
        return parts


def _cell(row: Mapping[str, Any], name: str) -> str:
    return to_csv(row[name]) if name in row else ""  # an empty cell leaves the field alone


def _csv_line(cells: Sequence[str]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(cells)
    return out.getvalue().encode("utf-8")


def _column(csv_bytes: bytes, name: str) -> list[str]:
    return [row.get(name, "") for row in csv.DictReader(io.StringIO(csv_bytes.decode("utf-8"), newline=""))]
