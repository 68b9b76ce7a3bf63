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
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import quote

from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceError

from integrations.errors import CrmError, RetryableError
from integrations.http import CrmHttp
from integrations.providers.salesforce.wire import API_VERSION

_describes: dict[tuple[str, str, str], Mapping[str, Any]] = {}
_notes: dict[tuple[str, str, str], Any] = {}  # other per-org facts learnt once (a refused field creation)
_lock = threading.Lock()


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
