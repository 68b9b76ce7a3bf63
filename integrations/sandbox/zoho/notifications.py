"""Notification channels (crm-reference §4.7; spec notifications.json).

``POST /actions/watch`` subscribes channels: ``{"watch": [{"channel_id", "events": ["Contacts.all",
"Deals.edit", …], "notify_url", "token" (≤ 50 chars), "channel_expiry", "return_affected_field_values",
"notify_on_related_action"}]}`` (201). ``GET`` lists live channels (204 when none), ``PUT`` replaces
a channel's details, ``PATCH`` changes parts of them (``_delete_events: true`` removes the events
given), ``DELETE ?channel_ids=`` unsubscribes. Errors per channel come back with HTTP 202 in
``watch[]``, as the spec declares.

A channel lives until ``channel_expiry``: at most one day ahead; omitted or further ahead, Zoho
sets one hour (the reference's reading of the current docs). Expired channels send nothing.

Zoho signs nothing: each callback POSTs JSON carrying the channel's own ``token`` and
``channel_id`` (plus ``server_time``, ``module``, ``resource_uri``, ``ids``, ``affected_fields``,
``operation`` and ``query_params``; field list **UNVERIFIED**), ids only — the receiver fetches the
records. Operations in event names are ``create``/``edit``/``delete`` (**UNVERIFIED**), in callbacks
``insert``/``update``/``delete``.
"""

from __future__ import annotations

import datetime as dt
import json
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from integrations.sandbox.core import Request, Response
from integrations.sandbox.zoho.errors import ZohoError
from integrations.sandbox.zoho.schema import format_time, parse_time

if TYPE_CHECKING:
    from integrations.sandbox.zoho.app import ZohoEmulator

DEFAULT_LIFETIME = dt.timedelta(hours=1)
EVENT_OPERATIONS = {"create": "insert", "edit": "update", "delete": "delete"}
SUCCESS_MESSAGES = {
    "POST": "Successfully subscribed for actions-watch of the given module",
    "PUT": "Successfully updated the subscribe details",
    "PATCH": "Successfully updated the subscribe details",
    "DELETE": "Successfully un-subscribed from actions-watch",
}


@dataclass
class Channel:
    channel_id: str
    events: list[str]
    notify_url: str
    token: str | None
    expiry: dt.datetime
    return_values: bool = False
    related: bool = False
    resource_ids: dict[str, str] = field(default_factory=dict)

    def wants(self, module: str, operation: str) -> bool:
        names = {f"{module}.all"} | {f"{module}.{op}" for op, name in EVENT_OPERATIONS.items() if name == operation}
        return operation in EVENT_OPERATIONS.values() and any(event in names for event in self.events)


def _bad(index: int, name: str, code: str = "INVALID_DATA", message: str = "invalid data") -> ZohoError:
    return ZohoError(400, code, message, {"api_name": name, "json_path": f"$.watch[{index}].{name}"})


class NotificationRoutes:
    def __init__(self, app: ZohoEmulator) -> None:
        self.app = app

    def register(self) -> None:
        path = r"/crm/v(?:[2-8])(?:\.\d)?/actions/watch"
        for method in ("POST", "PUT", "PATCH"):
            self.app.api(method, path, self.write)
        self.app.api("GET", path, self.list)
        self.app.api("DELETE", path, self.delete)

    def now(self) -> dt.datetime:
        return self.app.store.now()

    # -- writes -----------------------------------------------------------------------------------------
    def write(self, request: Request) -> Response:
        body = self.app.body(request)
        items = body.get("watch") if isinstance(body, dict) else None
        if not isinstance(items, list) or not items:
            raise ZohoError(
                400, "MANDATORY_NOT_FOUND", "required field not found", {"api_name": "watch", "json_path": "$.watch"}
            )
        results, errors = [], []
        for index, item in enumerate(items):
            try:
                channel = self._apply(request.method, item, index)
            except ZohoError as exc:
                errors.append(exc.body())
                continue
            results.append(self._success(request.method, channel))
        if errors:
            return Response.json({"watch": errors}, status=202)
        return Response.json({"watch": results}, status=201 if request.method == "POST" else 200)

    def _apply(self, method: str, item: Any, index: int) -> Channel:
        if not isinstance(item, dict):
            raise _bad(index, "watch")
        raw_id = item.get("channel_id")
        if raw_id in (None, ""):
            raise _bad(index, "channel_id", "MANDATORY_NOT_FOUND", "required field not found")
        if not str(raw_id).isdigit():
            raise _bad(index, "channel_id")
        channel_id = str(raw_id)
        existing = self.app.channels.get(channel_id)
        if method in ("PUT", "PATCH") and existing is None:
            raise ZohoError(400, "NOT_SUBSCRIBED", "the channel is not subscribed", {})
        events = self._events(item, index, required=method != "PATCH")
        if method == "PATCH":
            assert existing is not None
            if events is not None:
                if item.get("_delete_events") is True:
                    existing.events = [e for e in existing.events if e not in events]
                else:
                    existing.events = list(dict.fromkeys([*existing.events, *events]))
            if "notify_url" in item:
                existing.notify_url = self._url(item, index)
            if "token" in item:
                existing.token = self._token_value(item, index)
            if "channel_expiry" in item:
                existing.expiry = self._expiry(item, index)
            return existing
        channel = Channel(
            channel_id,
            events or [],
            self._url(item, index),
            self._token_value(item, index),
            self._expiry(item, index),
            bool(item.get("return_affected_field_values")),
            bool(item.get("notify_on_related_action")),
        )
        channel.resource_ids = {
            e.split(".", 1)[0]: self.app.store.modules[e.split(".", 1)[0]].id for e in channel.events
        }
        self.app.channels[channel_id] = channel
        return channel

    def _events(self, item: dict, index: int, *, required: bool) -> list[str] | None:
        events = item.get("events")
        if events is None and not required:
            return None
        if not isinstance(events, list) or not events:
            raise _bad(index, "events", "MANDATORY_NOT_FOUND", "required field not found")
        for event in events:
            module, _, operation = str(event).partition(".")
            if module not in self.app.store.modules or operation not in ("all", *EVENT_OPERATIONS):
                raise _bad(index, "events")
        return [str(e) for e in events]

    def _url(self, item: dict, index: int) -> str:
        url = item.get("notify_url")
        if url in (None, ""):
            raise _bad(index, "notify_url", "MANDATORY_NOT_FOUND", "required field not found")
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise _bad(index, "notify_url")
        return url

    def _token_value(self, item: dict, index: int) -> str | None:
        token = item.get("token")
        if token is not None and (not isinstance(token, str) or len(token) > 50):
            raise _bad(index, "token")
        return token

    def _expiry(self, item: dict, index: int) -> dt.datetime:
        now = self.now()
        raw = item.get("channel_expiry")
        if raw in (None, ""):
            return now + DEFAULT_LIFETIME
        try:
            moment = parse_time(str(raw))
        except ValueError:
            raise _bad(index, "channel_expiry") from None
        if moment <= now:
            raise _bad(index, "channel_expiry")
        if moment > now + dt.timedelta(seconds=self.app.max_channel_seconds):
            return now + DEFAULT_LIFETIME
        return moment.astimezone(dt.UTC).replace(microsecond=0)

    def _event_json(self, channel: Channel, event: str) -> dict[str, Any]:
        module = event.split(".", 1)[0]
        return {
            "channel_expiry": format_time(channel.expiry),
            "resource_uri": f"{self.app.base_url}/crm/v8/{module}",
            "resource_id": channel.resource_ids.get(module, ""),
            "resource_name": module,
            "channel_id": channel.channel_id,
            "notification_condition": [],
        }

    def _success(self, method: str, channel: Channel) -> dict[str, Any]:
        return {
            "code": "SUCCESS",
            "details": {"events": [self._event_json(channel, e) for e in channel.events]},
            "message": SUCCESS_MESSAGES[method],
            "status": "success",
        }

    def delete(self, request: Request) -> Response:
        ids = [i for i in (request.arg("channel_ids") or "").split(",") if i]
        if not ids:
            raise ZohoError(
                400,
                "REQUIRED_PARAM_MISSING",
                "One of the expected parameter is missing",
                {"param_name": "channel_ids", "param": "channel_ids"},
            )
        results, errors = [], []
        for channel_id in ids:
            channel = self.app.channels.pop(channel_id, None)
            if channel is None:
                errors.append(ZohoError(400, "NOT_SUBSCRIBED", "the channel is not subscribed", {}).body())
                continue
            results.append(
                {
                    "code": "SUCCESS",
                    "details": {
                        "channel_id": channel_id,
                        "events": [self._event_json(channel, e) for e in channel.events],
                    },
                    "message": SUCCESS_MESSAGES["DELETE"],
                    "status": "success",
                }
            )
        if errors:
            return Response.json({"watch": errors}, status=202)
        return Response.json({"watch": results})

    def list(self, request: Request) -> Response:
        now = self.now()
        wanted_id, wanted_module = request.arg("channel_id"), request.arg("module")
        channels = [
            c
            for c in self.app.channels.values()
            if c.expiry > now
            and (not wanted_id or c.channel_id == wanted_id)
            and (not wanted_module or any(e.startswith(f"{wanted_module}.") for e in c.events))
        ]
        if not channels:
            return Response(204, b"", {})
        watch = [
            {
                "channel_id": int(c.channel_id),  # a number on the wire (the spec's "object" type is a defect)
                "events": list(c.events),
                "notify_url": c.notify_url,
                "token": c.token,
                "channel_expiry": format_time(c.expiry),
                "return_affected_field_values": c.return_values,
                "notify_on_related_action": c.related,
            }
            for c in channels
        ]
        info = {"per_page": 200, "page": 1, "count": len(watch), "more_records": False}
        return Response.json({"watch": watch, "info": info})

    # -- callbacks --------------------------------------------------------------------------------------
    def body(
        self,
        channel_id: str,
        module: str,
        operation: str,
        ids: list[str],
        *,
        affected_fields: list[str] | None = None,
        token: str | None = None,
        server_time: int | None = None,
    ) -> dict[str, Any]:
        """The JSON Zoho POSTs to a channel's notify URL (``token`` overrides the channel's, for tests)."""
        channel = self.app.channels[str(channel_id)]
        body: dict[str, Any] = {
            "server_time": server_time if server_time is not None else int(self.now().timestamp() * 1000),
            "query_params": {},
            "module": module,
            "resource_uri": f"{self.app.base_url}/crm/v8/{module}",
            "ids": [str(i) for i in ids],
            "operation": operation,
            "channel_id": channel.channel_id,
            "token": token if token is not None else channel.token,
        }
        if operation == "update":
            names = affected_fields or []
            if channel.return_values:
                records = [self.app.store.get(module, str(i)) for i in ids]
                body["affected_values"] = [
                    {"id": r.id, "fields": {n: r.wire().get(n) for n in names}} for r in records if r is not None
                ]
            body["affected_fields"] = [{str(i): names} for i in ids]
        return body

    def send(
        self,
        channel_id: str,
        module: str,
        operation: str,
        ids: list[str],
        *,
        timeout: float = 5.0,
        verify: str | None = None,
        **kwargs: Any,
    ) -> tuple[int, bytes] | None:
        """POST a callback; None (nothing sent) when the channel is gone, expired or not subscribed to it."""
        with self.app.lock:
            channel = self.app.channels.get(str(channel_id))
            if channel is None or channel.expiry <= self.now() or not channel.wants(module, operation):
                return None
            body = self.body(channel_id, module, operation, ids, **kwargs)
            url = channel.notify_url
        data = json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"}, method="POST")
        context = ssl.create_default_context(cafile=verify) if verify and url.startswith("https://") else None
        try:
            with urllib.request.urlopen(request, timeout=timeout, context=context) as answer:
                result = (answer.status, answer.read())
        except urllib.error.HTTPError as exc:
            result = (exc.code, exc.read())
        with self.app.lock:
            self.app.deliveries.append({"channel_id": str(channel_id), "url": url, "status": result[0], "body": body})
        return result
