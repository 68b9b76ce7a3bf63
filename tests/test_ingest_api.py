"""POST /api/v1/events and GET /api/v1/prospects/{id_or_email} over HTTP (Django's test client)."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import timedelta

import pytest
import redis
from django.conf import settings
from django.db import connection
from django.test import Client, override_settings
from django.utils import timezone

from crmsync.models import ApiKey, Capsule, Event, Prospect, Visitor
from crmsync.privacy import erase_prospect
from tests.ingest_factories import event

pytestmark = pytest.mark.django_db


def post(client, key, body, **extra):
    raw = body if isinstance(body, bytes | str) else json.dumps(body)
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return client.post("/api/v1/events", raw, content_type="application/json", headers=headers, **extra)


def get_prospect(client, key, id_or_email):
    return client.get(f"/api/v1/prospects/{id_or_email}", headers={"Authorization": f"Bearer {key}"})


def nothing_written():
    return not (
        Event.objects.exists() or Prospect.objects.exists() or Capsule.objects.exists() or Visitor.objects.exists()
    )


# --- 200 ----------------------------------------------------------------------------------------------


def test_one_event_is_stored_and_reported(client, api_key, account):
    response = post(client, api_key, event("question_asked", event_id="q-1", email="Ann@Example.com"))

    assert response.status_code == 200
    prospect = Prospect.objects.get(account=account, email="ann@example.com")
    assert response.json() == {
        "accepted": 1,
        "duplicates": 0,
        "suppressed": 0,
        "results": [{"event_id": "q-1", "status": "created", "prospect_id": prospect.pk}],
    }
    assert Event.objects.get().data == {"text": "Do you offer SSO?"}


def test_a_batch_reports_each_event_in_order(client, api_key):
    body = {"events": [event(event_id="b1"), event(event_id="b2", email=None, visitor_id="v"), event(event_id="b1")]}

    response = post(client, api_key, body)

    assert response.status_code == 200
    data = response.json()
    assert (data["accepted"], data["duplicates"], data["suppressed"]) == (2, 1, 0)
    assert [(r["event_id"], r["status"]) for r in data["results"]] == [
        ("b1", "created"),
        ("b2", "created"),
        ("b1", "duplicate"),
    ]
    assert data["results"][1]["prospect_id"] is None


def test_a_replayed_request_is_accepted_and_changes_nothing(client, api_key):
    body = {"events": [event(event_id="r1", prospect={"company": "Northwind"}), event(event_id="r2")]}
    first = post(client, api_key, body)
    prospect = Prospect.objects.get()

    again = post(client, api_key, body)

    assert again.status_code == 200
    assert again.json()["duplicates"] == 2
    assert [r["prospect_id"] for r in again.json()["results"]] == [r["prospect_id"] for r in first.json()["results"]]
    assert Event.objects.count() == 2
    assert Prospect.objects.get().updated_at == prospect.updated_at


def test_every_event_type_is_accepted(client, api_key):
    from tests.ingest_factories import DATA

    response = post(client, api_key, {"events": [event(kind) for kind in DATA]})

    assert response.status_code == 200, response.content
    assert sorted(Event.objects.values_list("type", flat=True)) == sorted(DATA)


def test_the_api_key_last_use_is_recorded_at_most_once_a_minute(client, api_key):
    post(client, api_key, event())
    key = ApiKey.objects.get()
    first_use = key.last_used_at
    assert first_use is not None

    post(client, api_key, event())
    assert ApiKey.objects.get().last_used_at == first_use

    ApiKey.objects.filter(pk=key.pk).update(last_used_at=timezone.now() - timedelta(minutes=2))
    post(client, api_key, event())
    assert ApiKey.objects.get().last_used_at > first_use


# --- 400 ----------------------------------------------------------------------------------------------


def _set(path, value):
    """A change to an event: set the dotted ``path`` to ``value`` (``...`` deletes it; a callable
    is called when the change is applied)."""

    def change(body):
        *parents, last = path.split(".")
        target = body
        for name in parents:
            target = target.setdefault(name, {})
        if value is ...:
            target.pop(last, None)
        else:
            target[last] = value() if callable(value) else value
        return body

    return change


def _future(minutes):
    # Worked out when the test runs, not when it is collected (a slow suite reaches it later).
    return lambda: (timezone.now() + timedelta(minutes=minutes)).isoformat()


# (event type, change, the field reported, a fragment of its message)
FIELD_RULES = [
    ("capsule_viewed", _set("event_id", ...), "event_id", "required"),
    ("capsule_viewed", _set("event_id", ""), "event_id", "at least 1"),
    ("capsule_viewed", _set("event_id", "x" * 101), "event_id", "at most 100"),
    ("capsule_viewed", _set("event_id", 17), "event_id", "string"),
    ("capsule_viewed", _set("type", "capsule_liked"), "type", "unknown event type 'capsule_liked'"),
    ("capsule_viewed", _set("type", ...), "type", "required"),
    ("capsule_viewed", _set("occurred_at", ...), "occurred_at", "required"),
    ("capsule_viewed", _set("occurred_at", "2025-01-31T14:00:00"), "occurred_at", "timezone"),
    ("capsule_viewed", _set("occurred_at", "yesterday"), "occurred_at", "datetime"),
    ("capsule_viewed", _set("occurred_at", 1738332000), "occurred_at", "ISO-8601"),
    ("capsule_viewed", _set("occurred_at", _future(10)), "occurred_at", "future"),
    ("capsule_viewed", _set("colour", "blue"), "colour", "unknown field"),
    ("capsule_viewed", _set("prospect", ...), "prospect", "either prospect.email or visitor_id"),
    ("capsule_viewed", _set("prospect.email", "not-an-address"), "prospect.email", "valid e-mail"),
    ("capsule_viewed", _set("prospect.email", "a@" + "b" * 250 + ".com"), "prospect.email", "at most 254"),
    ("capsule_viewed", _set("prospect.first_name", "x" * 151), "prospect.first_name", "at most 150"),
    ("capsule_viewed", _set("prospect.phone", 442012345), "prospect.phone", "string"),
    ("capsule_viewed", _set("prospect.nickname", "Annie"), "prospect.nickname", "unknown field"),
    ("capsule_viewed", _set("prospect.attributes", {"plan": {"tier": 1}}), "prospect.attributes.plan", "flat"),
    ("capsule_viewed", _set("prospect.attributes", ["pro"]), "prospect.attributes", "dictionary"),
    ("capsule_viewed", _set("prospect.utm", {"channel": "x"}), "prospect.utm.channel", "unknown field"),
    (
        "capsule_viewed",
        _set("prospect.consent", {"granted": "yes", "source": "form"}),
        "prospect.consent.granted",
        "boolean",
    ),
    ("capsule_viewed", _set("prospect.consent", {"granted": True}), "prospect.consent.source", "required"),
    ("capsule_viewed", _set("capsule", {"title": "No id"}), "capsule.id", "required"),
    ("capsule_viewed", _set("capsule", {"id": "c", "url": "ftp://x"}), "capsule.url", "http"),
    ("capsule_viewed", _set("visitor_id", "v" * 101), "visitor_id", "at most 100"),
    ("capsule_viewed", _set("data", {"scroll": {"depth": 3}}), "data.scroll", "flat"),
    ("capsule_viewed", _set("prospect.attributes", {"score": float("nan")}), "prospect.attributes.score", "finite"),
    ("question_asked", _set("data", {}), "data.text", "required"),
    ("question_asked", _set("data", {"text": "x" * 10_001}), "data.text", "at most 10000"),
    ("question_asked", _set("data", ...), "data", "required"),
    ("time_spent", _set("data", {"seconds": -1}), "data.seconds", "greater than or equal to 0"),
    ("time_spent", _set("data", {"seconds": 86_401}), "data.seconds", "less than or equal to 86400"),
    ("time_spent", _set("data", {"seconds": "30"}), "data.seconds", "integer"),
    ("time_spent", _set("data", {"seconds": 1.5}), "data.seconds", "integer"),
    ("time_spent", _set("data", {"seconds": 3, "minutes": 1}), "data.minutes", "unknown field"),
    ("content_accessed", _set("data", {"content_title": "Doc"}), "data.content_id", "required"),
    ("content_downloaded", _set("data", {"content_id": "d", "content_url": "nope"}), "data.content_url", "http"),
    ("cta_clicked", _set("data", {"label": "Go"}), "data.cta_id", "required"),
    ("conversion", _set("data", {"value": -1, "currency": "EUR"}), "data.value", "greater than or equal to 0"),
    ("conversion", _set("data", {"value": 10, "currency": "eur"}), "data.currency", "pattern"),
    ("conversion", _set("data", {"value": 10}), "data.currency", "required"),
    ("conversion", _set("data", {"value": "10", "currency": "EUR"}), "data.value", "number"),
    ("sentiment", _set("data", {"score": 1.5, "label": "positive"}), "data.score", "less than or equal to 1"),
    ("sentiment", _set("data", {"score": 0.5, "label": "angry"}), "data.label", "'negative', 'neutral' or 'positive'"),
    ("lead_captured", _set("data", {"form": {"team_size": 40}}), "data.form.team_size", "string"),
    ("lead_captured", _set("prospect", ...), "prospect", "needs prospect.email"),
]


@pytest.mark.parametrize(
    ("kind", "change", "field", "message"),
    FIELD_RULES,
    ids=[f"{rule[0]}-{rule[2]}-{n}" for n, rule in enumerate(FIELD_RULES)],
)
def test_each_invalid_field_is_named_and_nothing_is_written(client, api_key, kind, change, field, message):
    valid = event("capsule_viewed", event_id="ok")
    invalid = change(event(kind, visitor_id="v1" if kind != "lead_captured" else None))
    if field == "prospect" and kind != "lead_captured":
        invalid.pop("visitor_id", None)

    single = post(client, api_key, invalid)
    batch = post(client, api_key, {"events": [valid, invalid]})

    assert single.status_code == 400
    assert single.json() == {"errors": [{"field": field, "message": single.json()["errors"][0]["message"]}]}
    assert message in single.json()["errors"][0]["message"]
    assert batch.status_code == 400
    assert [e["field"] for e in batch.json()["errors"]] == [f"events[1].{field}"]
    assert nothing_written()


def test_every_bad_field_of_every_event_is_reported(client, api_key):
    body = {
        "events": [
            event("time_spent", data={"seconds": -5}),
            event(),
            event("conversion", email="nope", data={"value": 1, "currency": "euro"}),
        ]
    }

    response = post(client, api_key, body)

    assert response.status_code == 400
    assert sorted(e["field"] for e in response.json()["errors"]) == [
        "events[0].data.seconds",
        "events[2].data.currency",
        "events[2].prospect.email",
    ]
    assert nothing_written()


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        (b"{not json", "body", "malformed JSON"),
        (b"\xff\xfe", "body", "malformed JSON"),
        (b"", "body", "malformed JSON"),
        (b"[]", "body", "expected a JSON object"),
        (b'"event"', "body", "expected a JSON object"),
        (b'{"events": []}', "events", "at least 1"),
        (b'{"events": "many"}', "events", "list"),
        (b'{"events": [], "source": "x"}', "source", "unknown field"),
        (b'{"events": [42]}', "events[0]", "valid dictionary"),
        (b"[" * 100_000 + b"]" * 100_000, "body", "nested too deeply"),
    ],
)
def test_a_malformed_body_is_a_400_naming_it(client, api_key, body, field, message):
    response = post(client, api_key, body)

    assert response.status_code == 400
    assert field in [e["field"] for e in response.json()["errors"]]
    assert any(message in e["message"] for e in response.json()["errors"])


def test_ninjas_own_validation_errors_use_the_same_400_envelope(rf):
    from ninja.errors import ValidationError as NinjaValidationError

    from crmsync.api.urls import api

    error = NinjaValidationError([{"type": "missing", "loc": ("query", "limit"), "msg": "Field required"}])
    response = api.on_exception(rf.get("/api/v1/events"), error)

    assert response.status_code == 400
    assert json.loads(response.content) == {"errors": [{"field": "limit", "message": "this field is required"}]}


def test_more_than_500_events_are_refused_at_once(client, api_key):
    response = post(client, api_key, {"events": [event() for _ in range(settings.INGEST_MAX_EVENTS_PER_REQUEST + 1)]})

    assert response.status_code == 400
    assert response.json() == {"errors": [{"field": "events", "message": "at most 500 events per request, got 501"}]}
    assert nothing_written()


def test_500_events_are_accepted(client, api_key):
    response = post(client, api_key, {"events": [event(email=f"p{n}@example.com") for n in range(500)]})

    assert response.status_code == 200
    assert response.json()["accepted"] == 500


# --- 401 ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Token csk_abc",
        "Basic dXNlcjpwYXNz",
        "Bearer csk_not-a-real-key",
        "Bearer not-even-our-prefix",
    ],
)
def test_a_missing_or_unknown_key_is_a_401(client, api_key, authorization):
    headers = {} if authorization is None else {"Authorization": authorization}

    response = client.post("/api/v1/events", json.dumps(event()), content_type="application/json", headers=headers)

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"
    assert response.json()["errors"][0]["field"] == "Authorization"
    assert nothing_written()


def test_a_revoked_key_is_a_401(client, api_key):
    ApiKey.objects.get().revoke()

    response = post(client, api_key, event())

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"
    assert nothing_written()


def test_reading_a_prospect_needs_a_key(client, api_key):
    post(client, api_key, event())

    response = client.get(f"/api/v1/prospects/{Prospect.objects.get().pk}")

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"


# --- 413 ----------------------------------------------------------------------------------------------


@override_settings(INGEST_MAX_BODY_BYTES=2048)
def test_a_body_over_the_limit_is_refused_from_its_content_length(client, api_key):
    body = {"events": [event(prospect={"company": "x" * 150}) for _ in range(20)]}
    assert len(json.dumps(body)) > 2048

    response = post(client, api_key, body)

    assert response.status_code == 413
    assert response.json()["errors"][0]["field"] == "body"
    assert "2048 bytes" in response.json()["errors"][0]["message"]
    assert nothing_written()


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=2048)
def test_djangos_own_body_limit_is_also_a_413(client, api_key):
    body = {"events": [event(prospect={"company": "x" * 150}) for _ in range(20)]}

    response = post(client, api_key, body)

    assert response.status_code == 413
    assert nothing_written()


def test_a_non_numeric_content_length_is_a_400(client, api_key):
    response = post(client, api_key, event(), CONTENT_LENGTH="lots")

    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "Content-Length"


# --- 429 ----------------------------------------------------------------------------------------------


@override_settings(API_KEY_RATE_LIMIT="2/minute")
def test_a_key_over_its_rate_limit_gets_429_with_retry_after(client, api_key, account):
    from crmsync.models import ApiKey as Key

    _other, other_key = Key.issue(account, "second key")
    statuses = [post(client, api_key, event()).status_code for _ in range(2)]

    limited = post(client, api_key, event(event_id="over-the-limit"))

    assert statuses == [200, 200]
    assert limited.status_code == 429
    assert 1 <= int(limited["Retry-After"]) <= 60
    assert "retry after" in limited.json()["errors"][0]["message"]
    assert not Event.objects.filter(external_id="over-the-limit").exists()
    # The limit is per key: another key of the same account is unaffected.
    assert post(client, other_key, event()).status_code == 200


@override_settings(API_KEY_RATE_LIMIT="1/minute")
def test_the_limiter_keys_on_the_key_hash_never_the_raw_key(client, api_key):
    post(client, api_key, event())

    keys = [k.decode() for k in redis.Redis.from_url(settings.REDIS_URL).keys("*")]
    assert not [k for k in keys if api_key in k or api_key[4:20] in k]
    assert [k for k in keys if ApiKey.objects.get().key_hash in k]


def test_the_limiter_counts_per_scope_and_identifier_in_memory():
    from crmsync.ratelimit import RateLimiter, storage_for

    storage = storage_for(None)
    keys = RateLimiter("test-scope-a", "2/minute", storage)
    other_scope = RateLimiter("test-scope-b", "2/minute", storage)
    ident = f"id-{uuid.uuid4().hex}"

    verdicts = [keys.hit(ident).allowed for _ in range(3)]

    assert verdicts == [True, True, False]
    assert 1 <= keys.hit(ident).retry_after <= 60
    assert keys.hit(f"other-{ident}").allowed
    assert other_scope.hit(ident).allowed


def test_every_rate_of_a_combined_limit_applies():
    from crmsync.ratelimit import RateLimiter, storage_for

    limiter = RateLimiter("test-combined", "5/minute;2/second", storage_for(None))
    ident = f"id-{uuid.uuid4().hex}"

    assert [limiter.hit(ident).allowed for _ in range(3)] == [True, True, False]


def test_an_unreachable_redis_lets_requests_through_and_says_so(caplog):
    from crmsync.ratelimit import RateLimiter, storage_for

    limiter = RateLimiter("test-down", "1/minute", storage_for("redis://127.0.0.1:1/0"))

    with caplog.at_level("WARNING", logger="crmsync.ratelimit"):
        verdicts = [limiter.hit("someone").allowed for _ in range(3)]

    assert verdicts == [True, True, True]
    assert "rate limiter storage unavailable" in caplog.text


# --- GET /prospects/{id_or_email} -----------------------------------------------------------------------


def test_a_prospect_is_read_by_id_or_by_email(client, api_key):
    post(
        client,
        api_key,
        event(
            email="ann@example.com",
            prospect={
                "full_name": "Ann Lee",
                "company": "Northwind",
                "attributes": {"seats": 40},
                "utm": {"source": "newsletter"},
                "consent": {"granted": True, "source": "form"},
            },
        ),
    )
    prospect = Prospect.objects.get()

    by_id = get_prospect(client, api_key, prospect.pk)
    by_email = get_prospect(client, api_key, " ANN@example.com")

    assert by_id.status_code == by_email.status_code == 200
    assert by_id.json() == by_email.json()
    body = by_id.json()
    assert (body["id"], body["email"], body["first_name"], body["last_name"], body["full_name"]) == (
        prospect.pk,
        "ann@example.com",
        "Ann",
        "Lee",
        "Ann Lee",
    )
    assert (body["company"], body["attributes"], body["utm"]) == ("Northwind", {"seats": 40}, {"source": "newsletter"})
    assert body["consent"]["granted"] is True
    assert body["consent"]["source"] == "form"


def test_an_unknown_or_erased_prospect_is_a_404(client, api_key):
    post(client, api_key, event(email="ann@example.com"))
    prospect = Prospect.objects.get()
    erase_prospect(prospect, actor_label="test")

    for id_or_email in (prospect.pk, "ann@example.com", "nobody@example.com", 99999999999999999999):
        response = get_prospect(client, api_key, id_or_email)
        assert response.status_code == 404
        assert response.json()["errors"][0]["field"] == "id_or_email"


# --- tenancy ------------------------------------------------------------------------------------------


def test_another_accounts_key_never_sees_or_touches_this_accounts_prospects(client, api_key, make_account):
    other = make_account("Other Co")
    _key, other_key = ApiKey.issue(other, "other")
    post(client, api_key, event(event_id="shared", email="ann@example.com", prospect={"company": "Northwind"}))
    mine = Prospect.objects.get()

    response = post(
        client, other_key, event(event_id="shared", email="ann@example.com", prospect={"company": "Intruder"})
    )

    assert response.json()["results"][0]["status"] == "created"
    theirs = Prospect.objects.get(account=other)
    assert theirs.pk != mine.pk
    assert Prospect.objects.get(pk=mine.pk).company == "Northwind"
    assert Event.objects.filter(external_id="shared").count() == 2
    assert get_prospect(client, other_key, mine.pk).status_code == 404
    assert get_prospect(client, other_key, "ann@example.com").json()["id"] == theirs.pk


# --- OpenAPI ----------------------------------------------------------------------------------------------


def test_the_openapi_schema_is_served_and_documents_events(client):
    response = client.get("/api/v1/openapi.json")

    assert response.status_code == 200
    schema = response.json()
    operation = schema["paths"]["/api/v1/events"]["post"]
    body = operation["requestBody"]["content"]["application/json"]
    assert set(body["examples"]) == {"single", "batch"}
    assert {"200", "400", "401", "413", "429"} <= set(operation["responses"])
    assert "/api/v1/prospects/{id_or_email}" in schema["paths"]
    components = schema["components"]["schemas"]
    assert components["TimeSpentData"]["properties"]["seconds"]["maximum"] == 86_400
    assert components["EventBatch"]["properties"]["events"]["maxItems"] == 500
    assert schema["components"]["securitySchemes"]["ApiKeyAuth"]["scheme"] == "bearer"


def test_the_documented_examples_are_valid_requests(client, api_key):
    from crmsync.api.events import _EXAMPLES

    for name, example in _EXAMPLES.items():
        response = post(client, api_key, example["value"])
        assert response.status_code == 200, (name, response.content)


def test_responses_match_the_served_schema(client, api_key):
    from openapi_schema_validator import OAS31Validator

    schema = client.get("/api/v1/openapi.json").json()

    def check(response, path, method):
        declared = schema["paths"][path][method]["responses"][str(response.status_code)]
        body_schema = declared["content"]["application/json"]["schema"]
        # The response schemas are $refs into components: validate with the components alongside.
        OAS31Validator({**body_schema, "components": schema["components"]}).validate(response.json())

    check(post(client, api_key, event()), "/api/v1/events", "post")
    check(post(client, api_key, {"events": []}), "/api/v1/events", "post")
    check(post(client, "csk_wrong", event()), "/api/v1/events", "post")
    prospect_path = "/api/v1/prospects/{id_or_email}"
    check(get_prospect(client, api_key, Prospect.objects.get().pk), prospect_path, "get")
    check(get_prospect(client, api_key, "nobody@example.com"), prospect_path, "get")


def test_the_api_docs_page_is_served(client):
    assert client.get("/api/v1/docs").status_code == 200


# --- concurrency --------------------------------------------------------------------------------------------


def _post_together(bodies_by_thread, key):
    barrier = threading.Barrier(len(bodies_by_thread))
    responses = [None] * len(bodies_by_thread)

    def run(slot, body):
        try:
            barrier.wait()
            responses[slot] = post(Client(), key, body)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(n, body)) for n, body in enumerate(bodies_by_thread)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return responses


@pytest.mark.django_db(transaction=True)
def test_the_same_batch_posted_twice_at_once_is_stored_once(api_key):
    body = {
        "events": [event(event_id=f"c{n}", email=f"p{n % 7}@example.com", visitor_id=f"v{n % 5}") for n in range(60)]
    }

    responses = _post_together([body, body], api_key)

    assert [r.status_code for r in responses] == [200, 200]
    statuses = [[r["status"] for r in response.json()["results"]] for response in responses]
    for first, second in zip(*statuses, strict=True):
        assert sorted([first, second]) == ["created", "duplicate"]
    assert Event.objects.count() == 60
    assert Prospect.objects.count() == 7


@pytest.mark.django_db(transaction=True)
def test_concurrent_events_of_one_new_person_make_one_prospect(api_key):
    bodies = [
        {
            "events": [
                event(
                    event_id=f"t{thread}-{n}",
                    email="new@example.com",
                    visitor_id=f"vis-{thread}",
                    prospect={"attributes": {f"from_{thread}": n}},
                )
                for n in range(5)
            ]
        }
        for thread in range(4)
    ]

    responses = _post_together(bodies, api_key)

    assert [r.status_code for r in responses] == [200] * 4
    prospect = Prospect.objects.get()
    assert Event.objects.filter(prospect=prospect).count() == 20
    # Every request's attributes survived: the merges were serialised, none lost.
    assert prospect.attributes == {f"from_{thread}": 4 for thread in range(4)}
    assert set(Visitor.objects.values_list("prospect_id", flat=True)) == {prospect.pk}


@pytest.mark.django_db(transaction=True)
def test_anonymous_events_racing_an_identification_all_end_up_attached(api_key):
    # Whatever the interleaving, an anonymous event lands before the stitch (and is stitched)
    # or after it (and attaches directly): none is left anonymous.
    anonymous = [
        {"events": [event(event_id=f"anon-{t}-{n}", email=None, visitor_id="vis-race") for n in range(10)]}
        for t in range(3)
    ]
    identify = {
        "events": [event("lead_captured", event_id="identify", email="race@example.com", visitor_id="vis-race")]
    }

    responses = _post_together([*anonymous, identify], api_key)

    assert [r.status_code for r in responses] == [200] * 4
    prospect = Prospect.objects.get(email="race@example.com")
    assert Event.objects.filter(visitor_id="vis-race").count() == 31
    assert not Event.objects.filter(visitor_id="vis-race", prospect__isnull=True).exists()
    assert Visitor.objects.get(visitor_id="vis-race").prospect_id == prospect.pk


@pytest.mark.django_db(transaction=True)
def test_overlapping_batches_in_different_orders_do_not_deadlock(api_key):
    people = [(f"p{n}@example.com", f"vis-{n}") for n in range(25)]
    bodies = []
    for thread in range(4):
        order = people[thread * 6 :] + people[: thread * 6]  # the same people, each batch in another order
        bodies.append(
            {
                "events": [
                    event(event_id=f"o{thread}-{n}", email=email if n % 3 else None, visitor_id=visitor)
                    for n, (email, visitor) in enumerate(order)
                ]
            }
        )

    for _round in range(3):
        responses = _post_together(bodies, api_key)
        assert [r.status_code for r in responses] == [200] * 4
    assert Event.objects.count() == 100
