"""The REST Hooks API for Zapier and Make: /api/v1/hooks, authenticated by the account's API key."""

from __future__ import annotations

import json

import pytest

from crmsync.models import ApiKey, AuditEntry
from integrations.models import WebhookDelivery, WebhookSource, WebhookSubscription
from integrations.webhooks_out import catalogue, subscriptions
from integrations.webhooks_out.emit import emit
from tests.webhooks_out.conftest import remember

PUBLIC = "93.184.216.34"  # checked, never contacted: nothing is delivered in these tests
TARGET = "https://hooks.customer.test/catch/123/abc/"


@pytest.fixture(autouse=True)
def public_dns(fake_dns):
    fake_dns({"hooks.customer.test": [PUBLIC], "intranet.customer.test": ["10.0.0.12"]})


def call(client, method: str, path: str, key: str | None, body=None):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    if method == "get":
        return client.get(path, headers=headers)
    data = body if isinstance(body, str | bytes) or body is None else json.dumps(body)
    return getattr(client, method)(path, data, content_type="application/json", headers=headers)


def subscribe(client, key, body):
    response = call(client, "post", "/api/v1/hooks", key, body)
    if response.status_code == 201:
        remember(response.json()["secret"])
    return response


def errors(response) -> dict[str, str]:
    return {error["field"]: error["message"] for error in response.json()["errors"]}


def test_subscribing_answers_201_with_the_id_and_the_secret_once(client, api_key, account):
    response = subscribe(client, api_key, {"target_url": TARGET, "event": "lead.hot"})

    assert response.status_code == 201
    body = response.json()
    subscription = WebhookSubscription.objects.get()
    assert body == {"id": subscription.pk, "target_url": TARGET, "events": ["lead.hot"], "secret": subscription.secret}
    assert body["secret"].startswith("whsec_")
    assert (subscription.account, subscription.active, subscription.source) == (account, True, WebhookSource.API)
    key = ApiKey.objects.get()
    assert subscription.created_by_label == f"api-key {key.prefix}…"
    entry = AuditEntry.objects.get(action="webhook.subscribed")
    assert entry.changes == {"host": "hooks.customer.test", "events": ["lead.hot"], "source": "api"}
    assert body["secret"] not in json.dumps(entry.changes)
    # The list never shows it again.
    listed = call(client, "get", "/api/v1/hooks", api_key).json()
    assert "secret" not in listed[0] and body["secret"] not in json.dumps(listed)


def test_several_events_or_every_event(client, api_key):
    several = subscribe(client, api_key, {"target_url": TARGET, "events": ["cta.clicked", "lead.hot", "cta.clicked"]})
    everything = subscribe(client, api_key, {"target_url": TARGET, "event": "*"})

    assert several.json()["events"] == ["cta.clicked", "lead.hot"]
    assert everything.json()["events"] == ["*"]


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"target_url": TARGET, "event": "lead.cold"}, "event", "unknown event 'lead.cold'"),
        ({"target_url": TARGET, "events": ["lead.hot", "nope"]}, "events[1]", "unknown event 'nope'"),
        ({"target_url": TARGET}, "event", 'give "event"'),
        ({"target_url": TARGET, "event": "lead.hot", "events": ["lead.hot"]}, "event", "not both"),
        ({"target_url": TARGET, "events": []}, "events", "at least 1"),
        ({"event": "lead.hot"}, "target_url", "required"),
        ({"target_url": 42, "event": "lead.hot"}, "target_url", "string"),
        ({"target_url": TARGET, "event": "lead.hot", "secret": "mine"}, "secret", "unknown field"),
        ({"target_url": "http://127.0.0.1:8080/x", "event": "lead.hot"}, "target_url", "loopback"),
        ({"target_url": "http://localhost/x", "event": "lead.hot"}, "target_url", "loopback"),
        ({"target_url": "http://[::ffff:127.0.0.1]/x", "event": "lead.hot"}, "target_url", "loopback"),
        ({"target_url": "https://intranet.customer.test/x", "event": "lead.hot"}, "target_url", "private"),
        ({"target_url": "http://169.254.169.254/latest", "event": "lead.hot"}, "target_url", "metadata"),
        ({"target_url": "http://metadata.google.internal/", "event": "lead.hot"}, "target_url", "metadata"),
        ({"target_url": "ftp://hooks.customer.test/x", "event": "lead.hot"}, "target_url", "http"),
        ({"target_url": "https://u:p@hooks.customer.test/x", "event": "lead.hot"}, "target_url", "password"),
        ({"target_url": "https://nowhere.invalid/x", "event": "lead.hot"}, "target_url", "could not be resolved"),
    ],
)
def test_a_bad_subscription_is_400_naming_the_field_and_nothing_is_written(client, api_key, body, field, words):
    response = subscribe(client, api_key, body)

    assert response.status_code == 400
    assert words in errors(response)[field]
    assert not WebhookSubscription.objects.exists()


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b'"text"'])
def test_a_body_that_is_not_a_json_object_is_400(client, api_key, raw):
    response = subscribe(client, api_key, raw)

    assert response.status_code == 400
    assert "body" in errors(response)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/api/v1/hooks"),
        ("get", "/api/v1/hooks"),
        ("get", "/api/v1/hooks/events"),
        ("get", "/api/v1/hooks/samples/lead.hot"),
        ("delete", "/api/v1/hooks/1"),
    ],
)
@pytest.mark.parametrize("key", [None, "csk_not-a-real-key"])
def test_every_route_needs_a_valid_api_key(client, method, path, key):
    response = call(client, method, path, key, {"target_url": TARGET, "event": "lead.hot"})

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"
    assert not WebhookSubscription.objects.exists()


def test_a_revoked_key_is_refused(client, account):
    key, raw = ApiKey.issue(account, "old")
    key.revoke()

    assert subscribe(client, raw, {"target_url": TARGET, "event": "lead.hot"}).status_code == 401


def test_unsubscribing_answers_204_then_404(client, api_key):
    created = subscribe(client, api_key, {"target_url": TARGET, "event": "lead.hot"}).json()

    first = call(client, "delete", f"/api/v1/hooks/{created['id']}", api_key)
    second = call(client, "delete", f"/api/v1/hooks/{created['id']}", api_key)

    assert first.status_code == 204 and first.content == b""
    assert second.status_code == 404 and "hook_id" in errors(second)
    assert not WebhookSubscription.objects.exists()
    assert AuditEntry.objects.filter(action="webhook.deleted").count() == 1


def test_another_accounts_subscription_is_not_found_and_survives(client, api_key, make_account):
    other = make_account("Other Co")
    _other_key, other_raw = ApiKey.issue(other, "theirs")
    theirs = subscribe(client, other_raw, {"target_url": TARGET, "event": "lead.hot"}).json()

    response = call(client, "delete", f"/api/v1/hooks/{theirs['id']}", api_key)
    listed = call(client, "get", "/api/v1/hooks", api_key)

    assert response.status_code == 404
    assert WebhookSubscription.objects.filter(pk=theirs["id"], account=other).exists()
    assert listed.json() == []


def test_a_malformed_id_is_400_naming_it(client, api_key):
    response = call(client, "delete", "/api/v1/hooks/abc", api_key)

    assert response.status_code == 400
    assert "integer" in errors(response)["hook_id"]


def test_the_list_shows_the_accounts_subscriptions_newest_first(client, api_key):
    first = subscribe(client, api_key, {"target_url": TARGET, "event": "lead.hot"}).json()
    second = subscribe(client, api_key, {"target_url": TARGET + "2", "events": ["cta.clicked"]}).json()

    listed = call(client, "get", "/api/v1/hooks", api_key).json()

    assert [(h["id"], h["events"], h["active"]) for h in listed] == [
        (second["id"], ["cta.clicked"], True),
        (first["id"], ["lead.hot"], True),
    ]


def test_samples_fall_back_to_the_catalogue_sample(client, api_key):
    response = call(client, "get", "/api/v1/hooks/samples/crm.deal.stage_changed", api_key)

    assert response.status_code == 200
    assert response.json() == [catalogue.sample_message("crm.deal.stage_changed")]


def test_samples_are_the_accounts_three_most_recent_messages(client, api_key, account, make_account, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = True
    subscriptions.subscribe(account, "http://127.0.0.1:9/a", ["*"], source="api", actor_label="t")
    subscriptions.subscribe(account, "http://127.0.0.1:9/b", ["*"], source="api", actor_label="t")
    other = make_account("Other Co")
    subscriptions.subscribe(other, "http://127.0.0.1:9/c", ["*"], source="api", actor_label="t")
    for n in range(5):
        emit(account, "cta.clicked", {"n": n}, idempotency_key=f"click:{n}")
    emit(other, "cta.clicked", {"n": 99}, idempotency_key="click:theirs")

    response = call(client, "get", "/api/v1/hooks/samples/cta.clicked", api_key)

    assert [sample["data"]["n"] for sample in response.json()] == [4, 3, 2]
    assert all(set(sample) == {"type", "timestamp", "data"} for sample in response.json())
    assert WebhookDelivery.objects.filter(account=account).count() == 10


def test_samples_of_an_unknown_event_are_404_naming_it(client, api_key):
    response = call(client, "get", "/api/v1/hooks/samples/lead.cold", api_key)

    assert response.status_code == 404
    assert "lead.cold" in errors(response)["event"]


def test_the_catalogue_is_listed_for_dropdowns(client, api_key):
    response = call(client, "get", "/api/v1/hooks/events", api_key)

    assert [item["name"] for item in response.json()] == [spec.name for spec in catalogue.EVENTS]


def test_an_account_cannot_pile_up_subscriptions(client, api_key, account, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = True
    for n in range(subscriptions.MAX_SUBSCRIPTIONS_PER_ACCOUNT):
        WebhookSubscription.objects.create(
            account=account,
            target_url=f"http://127.0.0.1:9/{n}",
            events=["*"],
            secret=remember(f"whsec_{n:04d}padpadpadpadpadpadpadpad="),
        )

    response = subscribe(client, api_key, {"target_url": TARGET, "event": "lead.hot"})

    assert response.status_code == 400
    assert "delete one first" in errors(response)["target_url"]


@pytest.mark.parametrize(
    ("url", "source"),
    [
        ("https://hooks.zapier.com/hooks/standard/1/abc/", WebhookSource.ZAPIER),
        ("https://hook.eu1.make.com/abc123", WebhookSource.MAKE),
        ("https://hook.integromat.com/abc123", WebhookSource.MAKE),
        ("https://example.com/hooks", WebhookSource.API),
        ("https://zapier.com.evil.example/x", WebhookSource.API),
    ],
)
def test_zapier_and_make_are_recognised_by_their_hook_hosts(url, source):
    assert subscriptions.source_for(url) == source


def test_the_routes_are_in_the_openapi_schema_with_schemas_and_examples(client):
    schema = client.get("/api/v1/openapi.json").json()
    paths = schema["paths"]

    post = paths["/api/v1/hooks"]["post"]
    assert set(post["requestBody"]["content"]["application/json"]["examples"]) == {"zapier", "several"}
    assert post["requestBody"]["content"]["application/json"]["schema"]["properties"]["target_url"]
    assert post["responses"]["201"]["content"]["application/json"]["example"]["secret"].startswith("whsec_")
    assert {"200", "401"} <= set(paths["/api/v1/hooks"]["get"]["responses"])
    assert {"204", "404"} <= set(paths["/api/v1/hooks/{hook_id}"]["delete"]["responses"])
    assert "example" in paths["/api/v1/hooks/samples/{event}"]["get"]["responses"]["200"]["content"]["application/json"]
    assert "/api/v1/hooks/events" in paths
