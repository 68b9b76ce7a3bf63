"""simple-salesforce on our HTTP seam, and the org's describe results cached per token.

The client runs in direct mode (``Salesforce(instance_url=…, session_id=…, session=…)``,
crm-reference §10.1): it builds ``https://{instance}/services/data/vXX.X/…`` URLs and sends
``Authorization: Bearer <session_id>`` itself, and every request goes through the session we
give it — the seam's ``CrmSession`` — so each call gets the timeout, the TLS trust of
``CRM_CA_BUNDLE`` (not REQUESTS_CA_BUNDLE, §10.4), redacted logging, the rate limiter hooks, and
our error taxonomy. The seam raises before simple-salesforce looks at a refusal, so its own
exception classes only appear for answers the seam lets through (a non-JSON 2xx body, a 3xx);
those become RetryableError here, so the connector raises only ``integrations.errors``.

Describe results are cached per process, instance, token and sObject (the token by a digest,
never the token itself): the connector asks "does this org have Capsule_Event_Id__c?" on every
flush, and the answer changes only when an admin changes the schema — which ``forget`` (after a
write names a field Salesforce no longer has) and a refreshed token both pick up.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import quote, quote_plus, urlsplit

from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceError

from integrations.errors import CrmError, RetryableError
from integrations.http import CrmHttp
from integrations.providers.salesforce.wire import API_VERSION

_describes: dict[tuple[str, str, str], Mapping[str, Any]] = {}
_notes: dict[tuple[str, str, str], Any] = {}  # other per-org facts learnt once (a refused field creation)
_lock = threading.Lock()
# Query subrequests one Composite call may carry (the rest of its 25 must be other operations).
COMPOSITE_QUERIES = 5


def forget_schemas() -> None:
    """Drop every cached describe and learnt fact (tests that reset an org)."""
    with _lock:
        _describes.clear()
        _notes.clear()


class SalesforceApi:
    """One connection's REST access through simple-salesforce."""

    def __init__(self, http: CrmHttp, access_token: str) -> None:
        self.http = http
        self.sf = Salesforce(
            instance_url=http.base_url, session_id=access_token, session=http.session, version=API_VERSION
        )
        self._fingerprint = hashlib.sha256(access_token.encode()).hexdigest()[:16]

    # -- URLs ------------------------------------------------------------------------------------------
    @property
    def data_url(self) -> str:
        """``https://{instance}/services/data/v59.0/``: what simple-salesforce builds, always https."""
        return self.sf.base_url

    @property
    def oauth_url(self) -> str:
        return self.sf.oauth2_url

    # -- calls -------------------------------------------------------------------------------------------
    def _guard(self, call: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return call(*args, **kwargs)
        except CrmError:
            raise
        except SalesforceError as exc:
            raise RetryableError(
                f"Salesforce answered {getattr(exc, 'status', '?')} where a result was expected", code="unexpected"
            ) from None
        except ValueError:  # a 2xx whose body is not JSON
            raise RetryableError("Salesforce answered with a body that is not JSON", code="bad_body") from None

    def rest(self, method: str, path: str, *, json: Any = None, params: Mapping[str, Any] | None = None) -> Any:
        """A data-API call relative to ``/services/data/vXX.X/``; None for 204."""
        kwargs: dict[str, Any] = {}
        if json is not None:
            kwargs["json"] = json
        return self._guard(self.sf.restful, path, params=dict(params or {}) or None, method=method, **kwargs)

    def query(self, soql: str) -> Iterator[dict[str, Any]]:
        """Every record of a SOQL query, following ``nextRecordsUrl`` page by page."""
        page = self._guard(self.sf.query, soql)
        while True:
            yield from page.get("records") or []
            if page.get("done", True) or not page.get("nextRecordsUrl"):
                return
            page = self._guard(self.sf.query_more, page["nextRecordsUrl"], identifier_is_url=True)

    def query_many(self, soqls: Sequence[str]) -> Iterator[dict[str, Any]]:
        """Every record of several SOQL queries, five to a Composite call where there are several.

        A Composite request counts as ONE call toward the org's daily API allocation and may carry
        up to five query subrequests
        (https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_composite_post.htm),
        so matching 1,000 addresses costs one call instead of five. A subrequest that failed, or
        whose result runs to a second page, is finished on its own through ``query`` (which raises
        the classified error, or follows ``nextRecordsUrl``).
        """
        if len(soqls) == 1:
            yield from self.query(soqls[0])
            return
        for start in range(0, len(soqls), COMPOSITE_QUERIES):
            group = soqls[start : start + COMPOSITE_QUERIES]
            subrequests = [
                {"method": "GET", "url": f"{self.data_path}query/?q={quote_plus(soql)}", "referenceId": f"q{i}"}
                for i, soql in enumerate(group)
            ]
            answer = self.rest("POST", "composite", json={"allOrNone": False, "compositeRequest": subrequests})
            results = {
                item.get("referenceId"): item
                for item in ((answer or {}).get("compositeResponse") or [])
                if isinstance(item, Mapping)
            }
            for i, soql in enumerate(group):
                item = results.get(f"q{i}") or {}
                body = item.get("body")
                if int(item.get("httpStatusCode") or 0) >= 300 or not isinstance(body, Mapping):
                    yield from self.query(soql)  # raises the classified error, or succeeds on its own
                    continue
                yield from body.get("records") or []
                if not body.get("done", True) and body.get("nextRecordsUrl"):
                    yield from self._more(body["nextRecordsUrl"])

    def _more(self, next_url: str) -> Iterator[dict[str, Any]]:
        while next_url:
            page = self._guard(self.sf.query_more, next_url, identifier_is_url=True)
            yield from page.get("records") or []
            next_url = "" if page.get("done", True) else page.get("nextRecordsUrl") or ""

    @property
    def data_path(self) -> str:
        """``/services/data/v59.0/``: the data API's path, as Composite subrequest URLs give it."""
        return urlsplit(self.data_url).path

    def get(self, sobject: str, record_id: str, fields: list[str] | None = None) -> dict[str, Any]:
        params = {"fields": ",".join(fields)} if fields else None
        return self.rest("GET", f"sobjects/{sobject}/{quote(record_id, safe='')}", params=params) or {}

    def update(self, sobject: str, record_id: str, fields: Mapping[str, Any]) -> None:
        self.rest("PATCH", f"sobjects/{sobject}/{quote(record_id, safe='')}", json=dict(fields))

    def tooling(self, method: str, path: str, body: Any = None) -> Any:
        return self._guard(self.sf.toolingexecute, path, method=method, data=body)

    # -- describe, cached --------------------------------------------------------------------------------
    def _cache_key(self, sobject: str) -> tuple[str, str, str]:
        return (self.http.base_url, self._fingerprint, sobject.lower())

    def describe(self, sobject: str, *, fresh: bool = False) -> Mapping[str, Any]:
        key = self._cache_key(sobject)
        if not fresh:
            with _lock:
                cached = _describes.get(key)
            if cached is not None:
                return cached
        answer = self._guard(getattr(self.sf, sobject).describe) or {}
        with _lock:
            _describes[key] = answer
        return answer

    def fields(self, sobject: str) -> dict[str, Mapping[str, Any]]:
        """The object's fields by lower-cased API name, from the cached describe."""
        return {str(f["name"]).lower(): f for f in self.describe(sobject).get("fields") or [] if f.get("name")}

    def forget(self, sobject: str) -> None:
        with _lock:
            _describes.pop(self._cache_key(sobject), None)

    def remember(self, fact: str, value: Any) -> None:
        with _lock:
            _notes[self._cache_key(fact)] = value

    def recall(self, fact: str) -> Any:
        with _lock:
            return _notes.get(self._cache_key(fact))
