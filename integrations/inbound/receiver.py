"""The inbound webhook endpoints: verify, de-duplicate, store, answer 200 fast; work happens in a job.

``POST /webhooks/crm/<provider>/<connection_id>/`` takes one connection's deliveries (CRMs where
a subscription is registered per connection). ``POST /webhooks/crm/<provider>/`` takes deliveries
of CRMs whose subscriptions are app-wide (one URL for every account, e.g. HubSpot apps): the
connector's optional ``split_webhook`` says which CRM account each change belongs to, and each
goes to that account's live connection.

Answers: unknown connection 404 (no detail), bad or missing signature 401, body too large 413,
malformed 400, nothing we handle 200 ``{"ignored": true}``, otherwise 200 ``{"received": n,
"duplicates": m}``. Never a 500 for what a CRM sends: a connector that raises is a refusal.
Signatures are compared in constant time by the connectors' ``verify_webhook``; secrets are
never logged.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from integrations.connector import Connector, InboundChange
from integrations.inbound import extensions
from integrations.inbound.store import Stored, store_changes
from integrations.models import Connection, InboundVia
from integrations.registry import get_provider

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 1_000_000


def _max_body() -> int:
    return int(getattr(settings, "INBOUND_WEBHOOK_MAX_BYTES", DEFAULT_MAX_BODY_BYTES))


def _plain(status: int) -> HttpResponse:
    return HttpResponse(status=status, content_type="text/plain")


def _read_body(request: HttpRequest) -> bytes | None:
    """The raw body, or None when it is over the limit (checked before it is read when the length is given)."""
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > _max_body():
        return None
    try:
        body = request.body
    except RequestDataTooBig:
        return None
    return body if len(body) <= _max_body() else None


def _signed_url(request: HttpRequest) -> str:
    # The CRM signs the URL it called: our public address, not whatever host a proxy passed on.
    return settings.PUBLIC_BASE_URL + request.get_full_path()


def _verified(connector_class: type[Connector], request: HttpRequest, body: bytes, secret: str) -> bool:
    if not secret:
        return False
    try:
        return bool(
            connector_class.verify_webhook(
                request.method or "POST", _signed_url(request), dict(request.headers), body, secret
            )
        )
    except Exception as error:  # a connector choking on hostile headers is a refusal, not a 500
        # Only the error's type: its text or traceback could quote a header, and headers carry signatures.
        log.warning("verifying a %s webhook raised %s; refused", connector_class.spec.name, type(error).__name__)
        return False


def _parse(connector_class: type[Connector], body: bytes) -> list[InboundChange] | None:
    try:
        return list(connector_class.parse_webhook(body))
    except Exception:  # malformed: the connector could not read it
        return None


def _store(connection: Connection, changes: list[InboundChange]) -> Stored:
    from integrations.inbound.jobs import kick

    with transaction.atomic():
        stored = store_changes(connection, changes, via=InboundVia.WEBHOOK)
        if stored.received:
            # Processed after commit, in a job: the CRM gets its answer without waiting for the work.
            transaction.on_commit(lambda: kick(connection.pk))
    return stored


def _answer(stored: Stored) -> JsonResponse:
    return JsonResponse({"received": stored.received, "duplicates": stored.duplicates})


@csrf_exempt
@require_POST
def receive(request: HttpRequest, provider: str, connection_id: int) -> HttpResponse:
    """One connection's webhook delivery."""
    connection = Connection.objects.live().filter(pk=connection_id, provider=provider).first()
    if connection is None:
        return _plain(404)
    connector_class = connection.spec.connector_class()
    body = _read_body(request)
    if body is None:
        return _plain(413)
    if not _verified(connector_class, request, body, extensions.webhook_secret_for(connector_class, connection)):
        return _plain(401)
    splitter = extensions.split_webhook(connector_class)
    if splitter is not None:
        # App-wide signatures prove the CRM sent it, not for which account: keep this account's changes.
        try:
            changes = list(splitter(body).get(connection.crm_account_id, []))
        except Exception:
            return _plain(400)
    else:
        parsed = _parse(connector_class, body)
        if parsed is None:
            return _plain(400)
        changes = parsed
    if not changes:
        return JsonResponse({"ignored": True})
    return _answer(_store(connection, changes))


@csrf_exempt
@require_POST
def receive_app(request: HttpRequest, provider: str) -> HttpResponse:
    """An app-wide delivery, routed to connections by CRM account (connectors with ``split_webhook``)."""
    try:
        connector_class = get_provider(provider).connector_class()
    except LookupError:
        return _plain(404)
    splitter = extensions.split_webhook(connector_class)
    if splitter is None:
        return _plain(404)
    body = _read_body(request)
    if body is None:
        return _plain(413)
    if not _verified(connector_class, request, body, extensions.app_webhook_secret(connector_class)):
        return _plain(401)
    try:
        by_account: Mapping[str, list[InboundChange]] = splitter(body)
    except Exception:
        return _plain(400)
    connections = {
        c.crm_account_id: c
        for c in Connection.objects.live().filter(provider=provider, crm_account_id__in=[str(a) for a in by_account])
    }
    received = duplicates = 0
    for account_id, changes in by_account.items():
        connection = connections.get(str(account_id))
        if connection is None or not changes:
            continue  # an account that installed the app but has no connection here
        stored = _store(connection, list(changes))
        received, duplicates = received + stored.received, duplicates + stored.duplicates
    if not received and not duplicates:
        return JsonResponse({"ignored": True})
    return _answer(Stored(received, duplicates))
