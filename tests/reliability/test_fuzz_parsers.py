"""Property-based fuzzing of the mapping transforms and the inbound webhook parsers (invariant 7).

- Every registered transform, on any value and any options its own check accepts, gives a value
  or a ``TransformError``; nothing else escapes (a crash would fail a whole batch, not one field).
- Every registered provider's ``parse_webhook``, on arbitrary bytes or arbitrary JSON, gives a
  list of changes or raises from the ValueError family (malformed), nothing else.
- The receiver answers arbitrary bodies with a 4xx (unsigned) and never a 5xx (also signed ones).
"""

from __future__ import annotations

import json

import pytest
from django.conf import settings
from django.urls import reverse
from hypothesis import HealthCheck, assume, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from integrations.connector import InboundChange
from integrations.models import Connection, ConnectionStatus
from integrations.registry import providers
from integrations.sandbox.hubspot import HubSpotEmulator
from mapping import transforms

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=60)
    | st.sampled_from(
        [
            "2024-02-30",
            "1999-12-31T23:59:60Z",
            "+44 20 7946 0958",
            "Dr. Ann B. Lee Jr.",
            "1e400",
            "-0",
            "  ",
            "NaN",
            "true",
            "0x1F",
            "\x00",
            "١٢٣",
        ]
    )
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
OPTION_VALUES = (
    st.none() | st.booleans() | st.integers(-5, 500) | st.text(max_size=12) | st.lists(st.text(max_size=5), max_size=3)
)
OPTION_KEYS = st.sampled_from(
    [
        "length",
        "max_length",
        "separator",
        "part",
        "format",
        "region",
        "default_region",
        "decimals",
        "true",
        "false",
        "values",
        "mapping",
        "suffix",
        "unit",
        "x",
    ]
)
FUZZ = hypothesis_settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# The client and the connections are the same for every example on purpose: each request stands alone.
FUZZ_HTTP = hypothesis_settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
# This test found epoch-millisecond numbers outside datetime's range escaping `_as_datetime` as
# OverflowError/OSError/ValueError; they are now a TransformError (mapping/transforms.py).
TRANSFORM_NAMES = sorted(transforms.registry())
PROVIDERS = sorted(providers())


def test_the_fuzzed_registries_are_not_empty():
    assert len(transforms.registry()) >= 5
    assert {"hubspot", "salesforce", "pipedrive"} <= set(PROVIDERS)


FORMATS = st.sampled_from(["iso", "epoch_ms", "%d/%m/%Y", "%Y-%m-%dT%H:%M:%S%z", "%", "%%", "%Q", "%Y%"])
# Options a saved mapping row can hold for transforms that need some (their checks pass these).
VALID_OPTIONS = {
    "split_full_name": st.fixed_dictionaries({"part": st.sampled_from(["first", "last"])}),
    "date": st.fixed_dictionaries({"format": FORMATS}),
    "datetime": st.fixed_dictionaries({"format": FORMATS}),
    "picklist_map": st.fixed_dictionaries(
        {"map": st.dictionaries(st.text(max_size=8), st.text(max_size=8) | st.integers(), min_size=1, max_size=3)},
        optional={"unmapped": st.sampled_from(["problem", "pass_through"])},
    ),
}


@pytest.mark.parametrize("name", TRANSFORM_NAMES)
@FUZZ
@given(value=JSON, data=st.data())
def test_a_transform_gives_a_value_or_a_transform_error(name, value, data):
    options = data.draw(
        VALID_OPTIONS.get(name, st.just({})) | st.dictionaries(OPTION_KEYS, OPTION_VALUES, max_size=3), label="options"
    )
    problems = transforms.check_options(name, options)  # a saved mapping's options passed this check
    assert isinstance(problems, list)
    assume(not problems)
    if value in (None, "", []):
        return  # empty values never reach a transform (the row's default is used)
    try:
        transforms.apply(name, value, options, None)
    except transforms.TransformError:
        return


def connector_class(provider: str):
    return providers()[provider].connector_class()


def parse(provider: str, body: bytes):
    try:
        changes = connector_class(provider).parse_webhook(body)
    except ValueError:  # includes JSONDecodeError and UnicodeDecodeError: a malformed body
        return None
    changes = list(changes)
    assert all(isinstance(change, InboundChange) for change in changes)
    return changes


@pytest.mark.parametrize("provider", PROVIDERS)
@FUZZ
@given(body=st.binary(max_size=300))
def test_a_webhook_parser_on_arbitrary_bytes_gives_changes_or_a_value_error(provider, body):
    parse(provider, body)


@pytest.mark.parametrize("provider", PROVIDERS)
@FUZZ
@given(payload=JSON)
def test_a_webhook_parser_on_arbitrary_json_gives_changes_or_a_value_error(provider, payload):
    parse(provider, json.dumps(payload).encode())


@pytest.mark.parametrize("provider", PROVIDERS)
@FUZZ
@given(
    events=st.lists(
        st.dictionaries(
            st.sampled_from(
                [
                    "eventId",
                    "subscriptionType",
                    "objectId",
                    "propertyName",
                    "propertyValue",
                    "occurredAt",
                    "portalId",
                    "current",
                    "previous",
                    "meta",
                    "event",
                    "data",
                    "id",
                    "type",
                    "operation",
                    "ids",
                    "module",
                    "object",
                ]
            ),
            JSON,
            max_size=6,
        ),
        max_size=3,
    )
)
def test_a_webhook_parser_on_plausible_event_shapes_gives_changes_or_a_value_error(provider, events):
    parse(provider, json.dumps(events).encode())
    parse(provider, json.dumps({"events": events, "data": events[:1], "meta": {}}).encode())


@pytest.fixture
def live_connections(account):
    made = {}
    for provider in PROVIDERS:
        made[provider] = Connection.objects.create(
            account=account,
            provider=provider,
            status=ConnectionStatus.ACTIVE,
            webhook_secret="fuzz-webhook-secret",
            crm_account_id="fuzz",
        )
    return made


@pytest.mark.django_db
@FUZZ_HTTP
@given(body=st.binary(max_size=400) | JSON.map(lambda value: json.dumps(value).encode()))
def test_the_receiver_answers_unsigned_arbitrary_bodies_with_a_4xx(client, live_connections, body):
    for provider, connection in live_connections.items():
        path = reverse("integrations:crm_webhook", kwargs={"provider": provider, "connection_id": connection.pk})
        response = client.post(path, data=body, content_type="application/json")
        assert 400 <= response.status_code < 500, (provider, response.status_code)


@pytest.mark.django_db
@FUZZ_HTTP
@given(events=st.lists(JSON, max_size=4))
def test_the_receiver_never_answers_a_signed_arbitrary_hubspot_body_with_a_5xx(client, live_connections, events):
    connection = live_connections["hubspot"]
    path = reverse("integrations:crm_webhook", kwargs={"provider": "hubspot", "connection_id": connection.pk})
    headers, body = HubSpotEmulator().make_webhook_request(
        settings.PUBLIC_BASE_URL + path, events, "fuzz-webhook-secret"
    )
    headers = {k: v for k, v in headers.items() if k != "Content-Type"}
    response = client.post(path, data=body, content_type="application/json", headers=headers)
    assert response.status_code < 500, response.content[:300]
    assert response.status_code != 401  # the signature was right: the body itself was judged
