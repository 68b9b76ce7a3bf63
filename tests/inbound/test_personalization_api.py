"""GET /api/v1/prospects/{id_or_email}/personalization: what the capsule platform reads."""

from __future__ import annotations

import time

import pytest
from django.test import Client

from crmsync.models import ApiKey, Prospect
from integrations.inbound import cache
from integrations.models import ProspectCrmData
from scoring.models import ProspectScore

pytestmark = pytest.mark.django_db


def _url(id_or_email) -> str:
    return f"/api/v1/prospects/{id_or_email}/personalization"


def _get(api_key: str, id_or_email):
    return Client().get(_url(id_or_email), headers={"Authorization": f"Bearer {api_key}"})


def _title_change(value: str, event_id: int) -> dict:
    return {
        "eventId": event_id,
        "portalId": 62515,
        "occurredAt": int(time.time() * 1000),
        "subscriptionType": "contact.propertyChange",
        "objectId": 101,
        "changeSource": "CRM_UI",
        "propertyName": "jobtitle",
        "propertyValue": value,
    }


@pytest.fixture(autouse=True)
def _fresh_cache(hub):
    cache.invalidate(hub.prospect.pk)


def test_it_answers_the_crm_data_score_and_grade(hub, api_key):
    ProspectCrmData.objects.create(
        prospect=hub.prospect,
        fields={"job_title": "VP Engineering"},
        deal_crm_id="7001",
        deal_stage="contractsent",
        owner_id="75000002",
        do_not_contact=True,
    )
    ProspectScore.objects.create(prospect=hub.prospect, account=hub.prospect.account, score=72, grade="Hot")
    answer = _get(api_key, hub.prospect.pk).json()
    assert answer["crm_fields"] == {"job_title": "VP Engineering"}
    assert (answer["deal"]["stage"], answer["owner"]["id"], answer["score"], answer["grade"]) == (
        "contractsent",
        "75000002",
        72,
        "Hot",
    )
    assert (answer["do_not_contact"], answer["unsubscribed"]) == (True, False)


def test_a_prospect_is_found_by_email(hub, api_key):
    assert _get(api_key, "ANN@example.com").json()["prospect_id"] == hub.prospect.pk


def test_a_prospect_without_crm_data_answers_empty_values(hub, api_key):
    answer = _get(api_key, hub.prospect.pk).json()
    assert (answer["crm_fields"], answer["deal"], answer["owner"], answer["score"]) == ({}, None, None, None)


def test_without_an_api_key_it_is_401(hub):
    assert Client().get(_url(hub.prospect.pk)).status_code == 401


def test_another_accounts_prospect_is_404_by_id_and_by_email(hub, make_account):
    _key, other_key = ApiKey.issue(make_account("Other Corp"), "other")
    assert _get(other_key, hub.prospect.pk).status_code == 404
    assert _get(other_key, "ann@example.com").status_code == 404


def test_an_erased_prospect_is_404(hub, api_key):
    Prospect.objects.filter(pk=hub.prospect.pk).update(erased=True)
    assert _get(api_key, hub.prospect.pk).status_code == 404


def test_answers_are_cached(hub, api_key):
    assert _get(api_key, hub.prospect.pk).json()["crm_fields"] == {}
    ProspectCrmData.objects.create(prospect=hub.prospect, fields={"job_title": "written behind the cache's back"})
    assert _get(api_key, hub.prospect.pk).json()["crm_fields"] == {}


def test_a_crm_change_drops_the_cached_answer(hub, api_key, django_capture_on_commit_callbacks):
    assert _get(api_key, hub.prospect.pk).json()["crm_fields"] == {}
    hub.post([_title_change("VP Engineering", 1)])
    with django_capture_on_commit_callbacks(execute=True):
        hub.process()
    assert _get(api_key, hub.prospect.pk).json()["crm_fields"] == {"job_title": "VP Engineering"}


def test_the_route_is_in_the_openapi_schema_with_its_answer(api_key):
    schema = Client().get("/api/v1/openapi.json").json()
    operation = schema["paths"]["/api/v1/prospects/{id_or_email}/personalization"]["get"]
    reference = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    component = schema["components"]["schemas"][reference.rsplit("/", 1)[-1]]
    assert {"crm_fields", "deal", "owner", "score", "grade", "do_not_contact", "unsubscribed"} <= set(
        component["properties"]
    )
