"""Events that happen inside the service become webhook messages: stored capsule events (the ingest
hook) and grade band crossings (the scoring listener)."""

from __future__ import annotations

import json

import pytest
from standardwebhooks import Webhook

from crmsync.models import Prospect
from integrations.models import DeliveryState, WebhookDelivery
from integrations.webhooks_out import hooks, jobs
from tests.ingest_factories import event

pytestmark = pytest.mark.usefixtures("installed_hooks")

URL = "http://127.0.0.1:9/hook"  # tests that do not send never reach it


@pytest.fixture(autouse=True)
def private_targets_allowed(settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = True
    settings.WEBHOOKS_TIMEOUT_SECONDS = 0.5


def post_events(client, key, *events):
    body = {"events": list(events)}
    response = client.post(
        "/api/v1/events", json.dumps(body), content_type="application/json", headers={"Authorization": f"Bearer {key}"}
    )
    assert response.status_code == 200, response.content
    return response.json()


def payloads(event_type: str) -> list[dict]:
    return list(WebhookDelivery.objects.filter(event_type=event_type).order_by("id").values_list("payload", flat=True))


def test_an_event_posted_to_the_api_is_sent_as_capsule_viewed(client, api_key, account, receiver, make_subscription):
    _subscription, secret = make_subscription(account, receiver.url, ["capsule.viewed"])
    prospect = {"first_name": "Ann", "last_name": "Lee", "company": "Northwind", "job_title": "CTO"}
    post_events(client, api_key, event("capsule_viewed", event_id="evt-view-1", prospect=prospect, visitor_id="v1"))

    jobs.deliver_due()

    row = WebhookDelivery.objects.get()
    assert (row.state, row.idempotency_key) == (DeliveryState.DELIVERED, f"event:{account.events.get().pk}")
    [received] = receiver.requests
    message = Webhook(secret).verify(received.body, received.headers)
    ann = Prospect.objects.get(email="ann@example.com")
    assert message == {
        "type": "capsule.viewed",
        "timestamp": "2025-01-31T14:00:00Z",
        "data": {
            "event_id": "evt-view-1",
            "event_type": "capsule_viewed",
            "occurred_at": "2025-01-31T14:00:00Z",
            "capsule": {"id": "cap-1", "title": "Pricing tour", "url": ""},
            "prospect": {
                "id": ann.pk,
                "email": "ann@example.com",
                "first_name": "Ann",
                "last_name": "Lee",
                "full_name": "Ann Lee",
                "company": "Northwind",
                "job_title": "CTO",
            },
            "visitor_id": "v1",
            "data": {},
        },
    }


def test_each_capsule_event_type_maps_to_its_catalogue_event(client, api_key, account, make_subscription):
    make_subscription(account, URL, ["*"])

    post_events(
        client,
        api_key,
        *[event(kind) for kind in ("capsule_viewed", "question_asked", "content_accessed", "content_downloaded")],
        *[event(kind) for kind in ("cta_clicked", "capsule_completed", "conversion", "lead_captured", "time_spent")],
        event("sentiment", data={"score": -0.8, "label": "negative"}),
        event("sentiment", data={"score": 0.6, "label": "positive"}),
    )

    sent = set(WebhookDelivery.objects.values_list("event_type", flat=True))
    assert sent >= {
        "capsule.viewed",
        "question.asked",
        "content.accessed",
        "content.downloaded",
        "cta.clicked",
        "capsule.completed",
        "conversion.created",
        "lead.captured",
        "sentiment.negative",
    }
    assert WebhookDelivery.objects.filter(event_type="sentiment.negative").count() == 1
    assert payloads("question.asked")[0]["data"]["data"] == {"text": "Do you offer SSO?"}
    assert payloads("conversion.created")[0]["data"]["data"] == {"value": 4800, "currency": "EUR"}


def test_a_replayed_request_sends_nothing_twice(client, api_key, account, make_subscription):
    make_subscription(account, URL, ["cta.clicked"])
    click = event("cta_clicked", event_id="evt-click")

    post_events(client, api_key, click)
    post_events(client, api_key, click)

    assert WebhookDelivery.objects.count() == 1


def test_an_anonymous_event_is_sent_without_a_prospect(client, api_key, account, make_subscription):
    make_subscription(account, URL, ["capsule.viewed"])

    post_events(client, api_key, event("capsule_viewed", email=None, visitor_id="vis-9"))

    [payload] = payloads("capsule.viewed")
    assert payload["data"]["prospect"] is None
    assert payload["data"]["visitor_id"] == "vis-9"


def test_personal_data_is_withheld_without_the_consent_the_account_requires(
    client, api_key, account, make_subscription
):
    account.require_consent = True
    account.save()
    make_subscription(account, URL, ["*"])

    post_events(client, api_key, event("lead_captured", prospect={"first_name": "Ann"}))

    [payload] = payloads("lead.captured")
    assert payload["data"]["prospect"] == {"id": Prospect.objects.get().pk, "personal_data_withheld": True}
    assert payload["data"]["data"] == {}
    assert "ann@example.com" not in json.dumps(payload)


def test_nothing_is_written_when_the_account_has_no_subscription(
    client, api_key, account, make_account, make_subscription
):
    make_subscription(make_account("Other Co"), URL, ["*"])

    post_events(client, api_key, event("cta_clicked"))

    assert not WebhookDelivery.objects.exists()


def test_crossing_into_the_top_band_sends_grade_changed_and_hot(client, api_key, account, make_subscription):
    make_subscription(account, URL, ["lead.grade_changed", "lead.hot"])

    post_events(client, api_key, event("cta_clicked"), event("cta_clicked"))  # 60: cold -> warm
    post_events(client, api_key, event("cta_clicked"))  # 90: warm -> hot
    post_events(client, api_key, event("cta_clicked"))  # still hot: nothing

    changes = payloads("lead.grade_changed")
    assert [(p["data"]["previous_grade"], p["data"]["grade"], p["data"]["score"]) for p in changes] == [
        ("cold", "warm", 60),
        ("warm", "hot", 90),
    ]
    [hot] = payloads("lead.hot")
    assert hot["data"]["grade"] == "hot" and hot["data"]["prospect"]["email"] == "ann@example.com"
    assert hot["data"]["reason"] == "ingest"


def test_install_is_idempotent():
    from crmsync import ingest
    from scoring import signals

    hooks.install()
    hooks.install()

    assert ingest._hooks.count(hooks.emit_capsule_events) == 1
    assert signals._LISTENERS.count(hooks.emit_grade_change) == 1


def test_each_score_change_sends_score_changed_once(client, api_key, account, make_subscription):
    make_subscription(account, URL, ["lead.score_changed"])

    post_events(client, api_key, event("cta_clicked"))  # 0 -> 30
    post_events(client, api_key, event("cta_clicked"))  # 30 -> 60
    post_events(client, api_key, event("time_spent", data={"seconds": 10}))  # no rule for it: unchanged

    changes = payloads("lead.score_changed")
    assert [(p["data"]["previous_score"], p["data"]["score"]) for p in changes] == [(0, 30), (30, 60)]
    assert changes[-1]["data"]["grade"] == "warm"
    assert "CTA" in changes[-1]["data"]["top_contributors"]
    from scoring import signals

    hooks.install()
    assert signals._SCORE_LISTENERS.count(hooks.emit_score_changes) == 1
