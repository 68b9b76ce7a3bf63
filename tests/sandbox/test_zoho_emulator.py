"""The Zoho sandbox speaks Zoho CRM's wire format: real HTTPS, every JSON answer checked against the
vendor's OpenAPI documents (read as tests/integrations/zoho_fixtures.py explains) or, where no spec
was copied (the org API), against crm-reference §4.

No database: these tests start the emulator on loopback and talk to it with ``requests``.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.conf import settings

from integrations.sandbox.zoho import ZohoEmulator
from tests.integrations.zoho_fixtures import *  # noqa: F403
from tests.integrations.zoho_fixtures import ZOHO_CLIENT_ID, ZOHO_CLIENT_SECRET, check_answer

CALLBACK = "http://127.0.0.1:8000/oauth/callback/zoho/"


class Api:
    """A tiny Zoho client: ``Zoho-oauthtoken`` auth, JSON bodies, every answer spec-checked."""

    def __init__(self, app: ZohoEmulator, token: str) -> None:
        self.app, self.token = app, token
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.verify = settings.CRM_CA_BUNDLE

    def call(self, method: str, path: str, *, token: str | None = None, scheme: str = "Zoho-oauthtoken", **kwargs):
        headers = {"Authorization": f"{scheme} {token or self.token}", **kwargs.pop("headers", {})}
        answer = self.session.request(method, self.app.base_url + path, headers=headers, timeout=15, **kwargs)
        body = answer.json() if answer.content else None
        check_answer(method, path, answer.status_code, body)
        return answer.status_code, body

    def get(self, path: str, **kwargs):
        return self.call("GET", path, **kwargs)

    def post(self, path: str, body=None, **kwargs):
        return self.call("POST", path, json=body, **kwargs)

    def put(self, path: str, body=None, **kwargs):
        return self.call("PUT", path, json=body, **kwargs)


@pytest.fixture
def api(zoho_emulator, zoho_token) -> Api:
    return Api(zoho_emulator, zoho_token)


def contact(api: Api, email: str = "ann@example.com", **fields) -> str:
    status, body = api.post("/crm/v8/Contacts", {"data": [{"Last_Name": "Lee", "Email": email, **fields}]})
    assert status == 200, body
    return body["data"][0]["details"]["id"]


# -- authentication --------------------------------------------------------------------------------------------


def test_the_api_takes_zoho_oauthtoken_and_refuses_bearer(api):
    assert api.get("/crm/v8/users?type=CurrentUser")[0] == 200
    status, body = api.get("/crm/v8/users?type=CurrentUser", scheme="Bearer")
    assert status == 401 and body["code"] == "AUTHENTICATION_FAILURE"
    status, body = api.get("/crm/v8/users?type=CurrentUser", token="1000.unknown")
    assert (status, body["code"], body["message"]) == (401, "INVALID_TOKEN", "invalid oauth token")


@pytest.mark.parametrize("version", ["v2", "v2.1", "v5", "v7", "v8"])
def test_every_api_version_from_v2_to_v8_is_served(api, version):
    status, body = api.post(f"/crm/{version}/Contacts", {"data": [{"Last_Name": "Lee", "Email": f"{version}@x.io"}]})
    assert status == 200 and body["data"][0]["code"] == "SUCCESS"


def test_scopes_are_checked_when_enforced(api, zoho_emulator):
    zoho_emulator.enforce_scopes = True
    narrow = zoho_emulator.issue_token(scopes=["zohocrm.modules.contacts.read"]).access_token  # case-insensitive
    assert api.get("/crm/v8/Contacts?fields=Email", token=narrow)[0] == 204
    status, body = api.post("/crm/v8/Contacts", {"data": [{"Last_Name": "x"}]}, token=narrow)
    assert status == 401 and body["code"] == "OAUTH_SCOPE_MISMATCH"
    assert api.get("/crm/v8/org", token=narrow)[1]["code"] == "OAUTH_SCOPE_MISMATCH"


# -- records ---------------------------------------------------------------------------------------------------


def test_insert_answers_per_record_in_order(api, zoho_emulator):
    status, body = api.post(
        "/crm/v8/Contacts",
        {
            "data": [
                {"Last_Name": "Lee", "Email": "ann@example.com"},
                {"Email": "nolast@example.com"},
                {"Last_Name": "Bad", "Email": "not-an-email"},
            ]
        },
    )
    assert status == 200
    ok, missing, invalid = body["data"]
    assert (ok["code"], ok["message"], ok["status"]) == ("SUCCESS", "record added", "success")
    assert ok["details"]["Created_By"]["id"] == zoho_emulator.integration_user["id"]
    assert missing == {
        "code": "MANDATORY_NOT_FOUND",
        "details": {"api_name": "Last_Name", "json_path": "$.data[1].Last_Name"},
        "message": "required field not found",
        "status": "error",
    }
    assert invalid["code"] == "INVALID_DATA" and invalid["details"]["api_name"] == "Email"
    assert [r["Email"] for r in zoho_emulator.records("Contacts")] == ["ann@example.com"]


def test_a_write_with_no_record_written_answers_400_with_its_results(api):
    status, body = api.post("/crm/v8/Leads", {"data": [{"Last_Name": "Lee"}]})
    assert status == 400 and body["data"][0]["details"]["api_name"] == "Company"


def test_a_write_of_more_than_100_records_is_refused_whole(api, zoho_emulator):
    status, body = api.post("/crm/v8/Contacts", {"data": [{"Last_Name": str(i)} for i in range(101)]})
    assert status == 400 and body["code"] == "LIMIT_EXCEEDED" and body["details"] == {"limit": 100}
    assert zoho_emulator.records("Contacts") == []


def test_upsert_reports_its_action_and_the_field_that_matched(api, zoho_emulator):
    first = contact(api, "ann@example.com")
    status, body = api.post(
        "/crm/v8/Contacts/upsert",
        {
            "data": [
                {"Last_Name": "Lee", "Email": "ANN@example.com", "First_Name": "Ann"},
                {"Last_Name": "Roe", "Email": "bob@example.com"},
                {"Email": "nolast@example.com"},
            ],
            "duplicate_check_fields": ["Email"],
        },
    )
    assert status == 200
    update, insert, error = body["data"]
    assert (update["action"], update["duplicate_field"], update["message"]) == ("update", "Email", "record updated")
    assert update["details"]["id"] == first
    assert insert["action"] == "insert" and "duplicate_field" not in insert and insert["message"] == "record added"
    assert error["code"] == "MANDATORY_NOT_FOUND"
    assert zoho_emulator.get("Contacts", first)["First_Name"] == "Ann"


def test_upsert_uses_the_system_duplicate_fields_when_none_are_named(api):
    first = contact(api, "ann@example.com")
    status, body = api.post("/crm/v8/Contacts/upsert", {"data": [{"Last_Name": "Lee", "Email": "ann@example.com"}]})
    assert status == 200 and body["data"][0]["details"]["id"] == first and body["data"][0]["action"] == "update"


def test_upsert_takes_only_duplicate_check_or_unique_fields(api, zoho_emulator):
    status, body = api.post("/crm/v8/Tasks/upsert", {"data": [{"Subject": "x"}], "duplicate_check_fields": ["Subject"]})
    assert status == 400 and body["code"] == "INVALID_DATA" and body["details"]["api_name"] == "Subject"
    zoho_emulator.add_custom_field("Tasks", "Capsule Event Id", unique=True)
    item = {"Subject": "Viewed", "Capsule_Event_Id": "k1"}
    first = api.post("/crm/v8/Tasks/upsert", {"data": [item], "duplicate_check_fields": ["Capsule_Event_Id"]})[1]
    again = api.post("/crm/v8/Tasks/upsert", {"data": [item], "duplicate_check_fields": ["Capsule_Event_Id"]})[1]
    assert first["data"][0]["action"] == "insert" and again["data"][0]["action"] == "update"
    assert len(zoho_emulator.records("Tasks")) == 1


def test_a_unique_field_refuses_a_second_record_with_duplicate_data(api, zoho_emulator):
    zoho_emulator.add_custom_field("Contacts", "External Ref", unique=True)
    first = contact(api, "a@example.com", External_Ref="R-1")
    status, body = api.post(
        "/crm/v8/Contacts", {"data": [{"Last_Name": "B", "Email": "b@example.com", "External_Ref": "r-1"}]}
    )
    assert status == 400
    error = body["data"][0]
    assert error["code"] == "DUPLICATE_DATA" and error["message"] == "duplicate data"
    assert error["details"]["api_name"] == "External_Ref" and error["details"]["duplicate_record"]["id"] == first


def test_update_by_id_and_by_path(api, zoho_emulator):
    ann = contact(api)
    status, body = api.put(
        "/crm/v8/Contacts", {"data": [{"id": ann, "Title": "CTO"}, {"id": "5725767000009999999"}, {"Title": "no id"}]}
    )
    assert status == 200
    assert body["data"][0]["message"] == "record updated"
    assert (
        body["data"][1]["message"] == "the id given seems to be invalid"
        and body["data"][1]["details"]["api_name"] == "id"
    )
    assert body["data"][2]["code"] == "MANDATORY_NOT_FOUND"
    assert api.put(f"/crm/v8/Contacts/{ann}", {"data": [{"Title": "CEO"}]})[0] == 200
    assert zoho_emulator.get("Contacts", ann)["Title"] == "CEO"
    status, body = api.put(f"/crm/v8/Contacts/{ann}", {"data": [{"Last_Name": ""}]})
    assert status == 400 and body["data"][0]["code"] == "MANDATORY_NOT_FOUND"


def test_reads_list_get_and_answer_204_when_empty(api, zoho_emulator):
    assert api.get("/crm/v8/Contacts?fields=Email") == (204, None)
    status, body = api.get("/crm/v8/Contacts")
    assert status == 400 and body["code"] == "REQUIRED_PARAM_MISSING"  # v8 wants `fields`
    ids = [contact(api, f"p{i}@example.com") for i in range(3)]
    status, body = api.get("/crm/v8/Contacts?fields=Email,Last_Name&per_page=2&sort_by=id&sort_order=asc")
    assert [r["id"] for r in body["data"]] == ids[:2] and set(body["data"][0]) == {"id", "Email", "Last_Name"}
    assert body["info"] == {
        "per_page": 2,
        "count": 2,
        "page": 1,
        "sort_by": "id",
        "sort_order": "asc",
        "more_records": True,
    }
    assert api.get("/crm/v8/Contacts?fields=Email&per_page=2&page=3")[0] == 204
    status, body = api.get(f"/crm/v8/Contacts/{ids[0]}")
    assert body["data"][0]["Email"] == "p0@example.com" and body["data"][0]["Owner"]["name"] == "Capsule Sync"
    assert api.get("/crm/v8/Contacts/5725767000009999999") == (204, None)
    later = (zoho_emulator.store.now() + dt.timedelta(hours=1)).isoformat()
    assert api.get("/crm/v8/Contacts?fields=Email", headers={"If-Modified-Since": later})[0] == 204


def test_unknown_modules_and_paths_answer_zohos_errors(api):
    status, body = api.get("/crm/v8/Widgets?fields=Name")
    assert status == 400 and body["code"] == "INVALID_MODULE"
    status, body = api.get("/crm/v8/Contacts/1/2/3/4")
    assert status == 404 and body["code"] == "INVALID_URL_PATTERN"


def test_search_by_email_and_by_criteria(api):
    ann = contact(api, "ann@example.com", First_Name="Ann")
    contact(api, "bob@example.com", First_Name="Bob")
    status, body = api.get("/crm/v8/Contacts/search?email=ANN@example.com")
    assert status == 200 and [r["id"] for r in body["data"]] == [ann] and body["info"]["count"] == 1
    status, body = api.get(
        "/crm/v8/Contacts/search", params={"criteria": "((Last_Name:equals:Lee)and(First_Name:starts_with:b))"}
    )
    assert [r["Email"] for r in body["data"]] == ["bob@example.com"]
    status, body = api.get("/crm/v8/Contacts/search", params={"criteria": "(Email:in:ann@example.com,bob@example.com)"})
    assert len(body["data"]) == 2
    assert api.get("/crm/v8/Contacts/search?email=nobody@example.com") == (204, None)
    assert api.get("/crm/v8/Contacts/search", params={"criteria": "(Nope:equals:x)"})[0] == 400


def test_deleted_records_are_gone(api, zoho_emulator):
    ann = contact(api)
    status, body = api.call("DELETE", f"/crm/v8/Contacts?ids={ann},5725767000009999999")
    assert (
        status == 200 and body["data"][0]["message"] == "record deleted" and body["data"][1]["code"] == "INVALID_DATA"
    )
    assert zoho_emulator.records("Contacts") == [] and api.get(f"/crm/v8/Contacts/{ann}")[0] == 204


def test_activities_link_contacts_with_who_id_and_leads_with_what_id(api, zoho_emulator):
    ann = contact(api)
    lead = api.post("/crm/v8/Leads", {"data": [{"Last_Name": "L", "Company": "Acme"}]})[1]["data"][0]["details"]["id"]
    status, body = api.post(
        "/crm/v8/Tasks",
        {
            "data": [
                {"Subject": "a", "Who_Id": {"id": ann}, "Status": "Completed", "Due_Date": "2025-03-04"},
                {"Subject": "b", "What_Id": {"id": lead}, "$se_module": "Leads"},
                {"Subject": "c", "What_Id": {"id": lead}, "$se_module": "Contacts"},
                {"Subject": "d", "Status": "Finished"},
            ]
        },
    )
    results = body["data"]
    assert [r["status"] for r in results] == ["success", "success", "error", "error"]
    assert results[2]["details"]["api_name"] == "What_Id" and results[3]["details"]["api_name"] == "Status"
    task = zoho_emulator.get("Tasks", results[1]["details"]["id"])
    assert task["What_Id"] == {"name": "L", "id": lead} and task["$se_module"] == "Leads"
    status, body = api.post(
        "/crm/v8/Calls",
        {
            "data": [
                {
                    "Subject": "call",
                    "Call_Type": "Outbound",
                    "Call_Start_Time": "2025-03-04T10:00:00+00:00",
                    "Who_Id": {"id": ann},
                }
            ]
        },
    )
    assert status == 200
    status, body = api.post(
        "/crm/v8/Events",
        {
            "data": [
                {
                    "Event_Title": "Demo",
                    "Start_DateTime": "2025-03-04T10:00:00Z",
                    "End_DateTime": "2025-03-04T11:00:00+00:00",
                }
            ]
        },
    )
    assert status == 400 and body["data"][0]["details"]["api_name"] == "Start_DateTime"  # Zoho wants ±HH:MM


def test_deals_take_their_fields_and_a_contact(api, zoho_emulator):
    ann = contact(api)
    deal = {
        "Deal_Name": "Big one",
        "Stage": "Closed Won",
        "Closing_Date": "2025-03-04",
        "Amount": 1200.5,
        "Contact_Name": {"id": ann},
        "Currency": "EUR",
    }
    status, body = api.post("/crm/v8/Deals", {"data": [deal, {**deal, "Stage": "Won-ish"}, {"Deal_Name": "x"}]})
    assert status == 200 and [r["status"] for r in body["data"]] == ["success", "error", "error"]
    stored = zoho_emulator.records("Deals")[0]
    assert stored["Contact_Name"] == {"name": "Lee", "id": ann} and stored["Amount"] == 1200.5


def test_notes_post_directly_and_through_the_related_list(api, zoho_emulator):
    ann = contact(api)
    status, body = api.post(
        "/crm/v8/Notes",
        {
            "data": [
                {"Note_Title": "t", "Note_Content": "c", "Parent_Id": {"module": {"api_name": "Contacts"}, "id": ann}}
            ]
        },
    )
    assert status == 200 and body["data"][0]["message"] == "record added"
    status, body = api.post(f"/crm/v8/Contacts/{ann}/Notes", {"data": [{"Note_Title": "t2", "Note_Content": "c2"}]})
    assert status == 200
    status, body = api.post(
        "/crm/v8/Notes",
        {"data": [{"Note_Title": "no content", "Parent_Id": {"module": {"api_name": "Contacts"}, "id": ann}}]},
    )
    assert status == 202 and body["data"][0]["code"] == "MANDATORY_NOT_FOUND"
    status, body = api.get("/crm/v8/Notes?fields=Note_Title,Note_Content")
    assert sorted(n["Note_Title"] for n in body["data"]) == ["t", "t2"]
    assert all(n["Parent_Id"]["id"] == ann for n in body["data"])
    assert api.get(f"/crm/v8/Notes/{body['data'][0]['id']}")[0] == 200


# -- COQL ------------------------------------------------------------------------------------------------------


def test_coql_reads_modified_since_with_an_id_tie_break(api, zoho_emulator):
    ids = [contact(api, f"p{i}@example.com") for i in range(4)]
    zoho_emulator.set_modified("Contacts", ids, "2025-01-01T12:00:00+00:00")
    query = (
        "select Email, Modified_Time from Contacts where (Modified_Time > '2025-01-01T12:00:00+00:00') or "
        f"(Modified_Time = '2025-01-01T12:00:00+00:00' and id > {ids[1]}) order by Modified_Time asc, id asc limit 1"
    )
    status, body = api.post("/crm/v8/coql", {"select_query": query})
    assert status == 200 and [r["id"] for r in body["data"]] == [ids[2]]
    assert body["info"] == {"count": 1, "more_records": True}
    assert body["data"][0]["Modified_Time"] == "2025-01-01T12:00:00+00:00"
    status, body = api.post(
        "/crm/v8/coql",
        {"select_query": "select Email from Contacts where Email in ('p0@example.com', 'P3@EXAMPLE.COM') limit 200"},
    )
    assert sorted(r["Email"] for r in body["data"]) == ["p0@example.com", "p3@example.com"]
    status, body = api.post("/crm/v8/coql", {"select_query": "select Email from Contacts where Email like '%3@%'"})
    assert [r["Email"] for r in body["data"]] == ["p3@example.com"]
    assert api.post("/crm/v8/coql", {"select_query": "select Email from Contacts where Email is null"}) == (204, None)


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("select Email frm Contacts", "SYNTAX_ERROR"),
        ("select Nope from Contacts where id > 1", "INVALID_QUERY"),
        ("select Email from Widgets where id > 1", "INVALID_QUERY"),
        ("select Email from Contacts where id > 1 limit 5000", "LIMIT_EXCEEDED"),
        ("select Email from Contacts where Modified_Time > 'yesterday'", "INVALID_QUERY"),
    ],
)
def test_coql_errors_are_zohos(api, query, code):
    status, body = api.post("/crm/v8/coql", {"select_query": query})
    assert status == 400 and body["code"] == code


def test_coql_costs_credits_by_its_limit(api, zoho_emulator):
    contact(api)
    before = zoho_emulator.credits_used
    for limit in ("200", "1000", "2000", "5, 1000", "1000 offset 5"):
        api.post("/crm/v8/coql", {"select_query": f"select Email from Contacts where id > 1 limit {limit}"})
    assert zoho_emulator.credits_used - before == 1 + 2 + 3 + 2 + 2


# -- fields, users, org ----------------------------------------------------------------------------------------


def test_fields_describe_types_picklists_and_mandatory_ones(api):
    status, body = api.get("/crm/v8/settings/fields?module=Leads")
    assert status == 200
    fields = {f["api_name"]: f for f in body["fields"]}
    assert fields["Last_Name"]["system_mandatory"] and fields["Company"]["system_mandatory"]
    assert fields["Lead_Source"]["data_type"] == "picklist" and fields["Email"]["json_type"] == "string"
    assert {"display_value": "Web Download", "actual_value": "Web Download"}.items() <= next(
        o for o in fields["Lead_Source"]["pick_list_values"] if o["actual_value"] == "Web Download"
    ).items()
    assert fields["Modified_Time"]["read_only"] and not fields["Email"]["custom_field"]
    assert api.get("/crm/v8/settings/fields?module=Leads&type=unused") == (204, None)
    assert api.get("/crm/v8/settings/fields?module=Widgets")[1]["code"] == "INVALID_MODULE"
    assert api.get("/crm/v8/settings/fields")[1]["code"] == "REQUIRED_PARAM_MISSING"


def test_custom_fields_are_created_through_the_fields_api(api, zoho_emulator):
    status, body = api.post(
        "/crm/v8/settings/fields?module=Contacts",
        {
            "fields": [
                {
                    "field_label": "Capsule Grade",
                    "data_type": "picklist",
                    "pick_list_values": [{"display_value": "A", "actual_value": "A"}],
                }
            ]
        },
    )
    assert status == 201 and body["fields"][0]["message"] == "field created"
    fields = {f["api_name"]: f for f in api.get("/crm/v8/settings/fields?module=Contacts")[1]["fields"]}
    assert (
        fields["Capsule_Grade"]["custom_field"]
        and fields["Capsule_Grade"]["pick_list_values"][0]["actual_value"] == "A"
    )
    status, body = api.post(
        "/crm/v8/settings/fields?module=Contacts",
        {
            "fields": [
                {"field_label": "Capsule Grade", "data_type": "text"},
                {"field_label": "Blob", "data_type": "blob"},
            ]
        },
    )
    assert status == 400 and [e["details"]["api_name"] for e in body["fields"]] == ["field_label", "data_type"]
    zoho_emulator.can_create_fields = False
    status, body = api.post(
        "/crm/v8/settings/fields?module=Contacts", {"fields": [{"field_label": "X", "data_type": "text"}]}
    )
    assert status == 403 and body["code"] == "NO_PERMISSION"


def test_the_current_user_and_the_org_identify_the_connection(api, zoho_emulator):
    status, body = api.get("/crm/v8/users?type=CurrentUser")
    assert [u["email"] for u in body["users"]] == [zoho_emulator.integration_user["email"]]
    assert len(api.get("/crm/v8/users?type=AllUsers")[1]["users"]) == 2
    status, body = api.get("/crm/v8/org")  # no org.json was copied: the shape of Zoho's Org API docs
    assert status == 200
    [org] = body["org"]
    assert {"id", "company_name", "primary_email", "domain_name", "zgid", "currency"} <= set(org)
    assert org["company_name"] == zoho_emulator.company_name


# -- limits ------------------------------------------------------------------------------------------------------


def test_calls_spend_credits_and_a_spent_budget_answers_429(api, zoho_emulator):
    zoho_emulator.daily_credits = 3
    zoho_emulator.reset()
    for _ in range(3):
        status, _body = api.get("/crm/v8/org")
    status, body = api.get("/crm/v8/org")
    assert status == 429 and body["code"] == "LIMIT_EXCEEDED" and body["details"]["limit"] == 3
    assert zoho_emulator.credits_used == 3 and zoho_emulator.rate_limited_count == 1
    answer = api.session.get(
        zoho_emulator.base_url + "/crm/v8/org", headers={"Authorization": f"Zoho-oauthtoken {api.token}"}
    )
    assert answer.headers["X-RATELIMIT-LIMIT"] == "3" and answer.headers["X-RATELIMIT-REMAINING"] == "0"


def test_requests_over_the_concurrency_cap_answer_too_many_requests(api, zoho_emulator):
    zoho_emulator.concurrency_limit = 2
    zoho_emulator.reset()
    zoho_emulator.faults.inject("slow", count=2, path_prefix="/crm/v8/users", seconds=1.5)
    with ThreadPoolExecutor(2) as pool:
        slow = [pool.submit(api.get, "/crm/v8/users?type=CurrentUser") for _ in range(2)]
        deadline = time.monotonic() + 10
        while zoho_emulator.gate.in_flight < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert zoho_emulator.gate.in_flight == 2
        status, body = api.get("/crm/v8/org")
        assert status == 429 and body["code"] == "TOO_MANY_REQUESTS"
        assert [f.result()[0] for f in slow] == [200, 200]
    assert api.get("/crm/v8/org")[0] == 200  # slots free again


def test_heavy_calls_have_their_own_cap(api, zoho_emulator):
    zoho_emulator.heavy_concurrency_limit = 1
    zoho_emulator.reset()
    zoho_emulator.faults.inject("slow", count=1, path_prefix="/crm/v8/coql", seconds=1.5)
    query = {"select_query": "select Email from Contacts where id > 1"}
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(api.post, "/crm/v8/coql", query)
        deadline = time.monotonic() + 10
        while zoho_emulator.gate.heavy_in_flight < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert api.post("/crm/v8/coql", query)[1]["code"] == "TOO_MANY_REQUESTS"
        assert api.get("/crm/v8/org")[0] == 200  # a light call still goes
        assert slow.result()[0] == 204


# -- faults ------------------------------------------------------------------------------------------------------


def test_each_fault_kind_answers_in_zohos_shape(api, zoho_emulator):
    zoho_emulator.faults.inject("rate_limit")
    assert api.get("/crm/v8/org") == (
        429,
        {"code": "TOO_MANY_REQUESTS", "details": {}, "message": "concurrency limit exceeded", "status": "error"},
    )
    zoho_emulator.faults.inject("server_error")
    status, body = api.get("/crm/v8/org")
    assert (status, body["code"], body["message"]) == (500, "INTERNAL_ERROR", "Internal server error occurred.")
    zoho_emulator.faults.inject("expire_token")
    assert api.get("/crm/v8/org")[1]["code"] == "INVALID_TOKEN"
    assert api.get("/crm/v8/org")[0] == 401  # the token stays expired
    fresh = zoho_emulator.issue_token().access_token
    zoho_emulator.faults.inject("drop")
    with pytest.raises(requests.ConnectionError):
        api.get("/crm/v8/org", token=fresh)
    zoho_emulator.faults.inject("slow", seconds=0.2)
    assert api.get("/crm/v8/org", token=fresh)[0] == 200  # slow, then answered
    assert zoho_emulator.faults.pending() == 0


def test_the_control_api_injects_faults_and_reports_state(api, zoho_emulator):
    session = api.session
    session.post(zoho_emulator.base_url + "/__sandbox__/faults", json={"kind": "server_error", "count": 1})
    assert api.get("/crm/v8/org")[0] == 500
    state = session.get(zoho_emulator.base_url + "/__sandbox__/state").json()
    assert state["name"] == "zoho" and state["api_calls"] == 1 and state["records"]["Contacts"] == 0


# -- OAuth -------------------------------------------------------------------------------------------------------


def authorize(app: ZohoEmulator, decision: str = "allow", access_type: str = "offline") -> dict[str, str]:
    params = {
        "client_id": ZOHO_CLIENT_ID,
        "redirect_uri": app.client.redirect_uris[0],
        "response_type": "code",
        "scope": "ZohoCRM.modules.ALL,ZohoCRM.org.READ",
        "state": "st",
        "access_type": access_type,
        "prompt": "consent",
    }
    page = requests.get(app.base_url + "/oauth/v2/auth", params=params, verify=settings.CRM_CA_BUNDLE, timeout=10)
    assert page.status_code == 200 and 'id="allow"' in page.text and 'id="deny"' in page.text
    answer = requests.post(
        app.base_url + "/oauth/v2/auth",
        data={**params, "decision": decision},
        allow_redirects=False,
        verify=settings.CRM_CA_BUNDLE,
        timeout=10,
    )
    assert answer.status_code == 302
    return {k: v[0] for k, v in parse_qs(urlsplit(answer.headers["Location"]).query).items()}


def token(app: ZohoEmulator, **form) -> tuple[int, dict]:
    data = {"client_id": ZOHO_CLIENT_ID, "client_secret": ZOHO_CLIENT_SECRET, **form}
    answer = requests.post(app.base_url + "/oauth/v2/token", data=data, verify=settings.CRM_CA_BUNDLE, timeout=10)
    return answer.status_code, answer.json()


def test_consent_redirects_with_the_code_and_the_data_centre(zoho_emulator):
    query = authorize(zoho_emulator)
    assert query["state"] == "st" and query["code"]
    assert query["location"] == "us" and query["accounts-server"] == zoho_emulator.base_url
    denied = authorize(zoho_emulator, decision="deny")
    assert denied["error"] == "access_denied" and "code" not in denied


def test_the_code_exchange_gives_tokens_and_the_api_domain(zoho_emulator):
    code = authorize(zoho_emulator)["code"]
    redirect = zoho_emulator.client.redirect_uris[0]
    status, body = token(zoho_emulator, grant_type="authorization_code", code=code, redirect_uri=redirect)
    assert status == 200 and set(body) == {"access_token", "refresh_token", "api_domain", "token_type", "expires_in"}
    assert body["api_domain"] == zoho_emulator.base_url and body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    api = Api(zoho_emulator, body["access_token"])
    assert api.get("/crm/v8/org")[0] == 200
    status, again = token(zoho_emulator, grant_type="authorization_code", code=code, redirect_uri=redirect)
    assert (status, again) == (200, {"error": "invalid_code"})  # errors are HTTP 200


def test_online_access_gets_no_refresh_token(zoho_emulator):
    code = authorize(zoho_emulator, access_type="online")["code"]
    status, body = token(
        zoho_emulator, grant_type="authorization_code", code=code, redirect_uri=zoho_emulator.client.redirect_uris[0]
    )
    assert status == 200 and "access_token" in body and "refresh_token" not in body


def test_a_refresh_does_not_rotate_and_revoke_ends_it(zoho_emulator):
    issued = zoho_emulator.issue_token()
    status, body = token(zoho_emulator, grant_type="refresh_token", refresh_token=issued.refresh_token)
    assert status == 200 and "refresh_token" not in body and body["api_domain"] == zoho_emulator.base_url
    assert zoho_emulator.oauth.refresh_calls == 1
    answer = requests.post(
        zoho_emulator.base_url + "/oauth/v2/token/revoke",
        params={"token": issued.refresh_token},
        verify=settings.CRM_CA_BUNDLE,
        timeout=10,
    )
    assert answer.json() == {"status": "success"}
    assert token(zoho_emulator, grant_type="refresh_token", refresh_token=issued.refresh_token)[1] == {
        "error": "invalid_code"
    }
    assert zoho_emulator.oauth.token_state(body["access_token"]) == "invalid"


@pytest.mark.parametrize(
    ("form", "error"),
    [
        ({"client_secret": "wrong", "grant_type": "refresh_token", "refresh_token": "x"}, "invalid_client"),
        ({"grant_type": "password"}, "unsupported_grant_type"),
        ({"grant_type": "authorization_code", "code": "nope", "redirect_uri": CALLBACK}, "invalid_code"),
    ],
)
def test_token_errors_are_http_200_with_an_error(zoho_emulator, form, error):
    assert token(zoho_emulator, **form) == (200, {"error": error})


# -- notification channels ---------------------------------------------------------------------------------------


def watch(channel="1000000068001", **extra):
    return {
        "watch": [
            {
                "channel_id": channel,
                "events": ["Contacts.all", "Deals.edit"],
                "notify_url": "https://capsule.example.com/hook",
                "token": "tok",
                **extra,
            }
        ]
    }


def test_channels_are_subscribed_listed_patched_and_removed(api, zoho_emulator):
    expiry = (zoho_emulator.store.now() + dt.timedelta(hours=20)).isoformat()
    status, body = api.post("/crm/v8/actions/watch", watch(channel_expiry=expiry))
    assert status == 201 and body["watch"][0]["message"].startswith("Successfully subscribed")
    assert body["watch"][0]["details"]["events"][0]["channel_expiry"] == expiry
    status, body = api.get("/crm/v8/actions/watch")
    assert status == 200 and body["watch"][0]["channel_id"] == 1000000068001 and body["watch"][0]["token"] == "tok"
    status, body = api.call(
        "PATCH",
        "/crm/v8/actions/watch",
        json={"watch": [{"channel_id": "1000000068001", "events": ["Deals.edit"], "_delete_events": True}]},
    )
    assert status == 200 and zoho_emulator.channels["1000000068001"].events == ["Contacts.all"]
    status, body = api.put("/crm/v8/actions/watch", watch(channel="42"))
    assert status == 202 and body["watch"][0]["code"] == "NOT_SUBSCRIBED"
    status, body = api.call("DELETE", "/crm/v8/actions/watch?channel_ids=1000000068001")
    assert status == 200 and body["watch"][0]["message"] == "Successfully un-subscribed from actions-watch"
    assert api.get("/crm/v8/actions/watch") == (204, None)


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"token": "t" * 51}, "token"),
        ({"events": ["Widgets.all"]}, "events"),
        ({"notify_url": "ftp://x"}, "notify_url"),
        ({"channel_id": "abc"}, "channel_id"),
    ],
)
def test_bad_channels_are_refused_per_channel(api, extra, field):
    status, body = api.post("/crm/v8/actions/watch", watch(**extra))
    assert status == 202 and body["watch"][0]["details"]["api_name"] == field


def test_a_channel_lives_at_most_a_day_and_stops_notifying_when_it_expires(api, zoho_emulator, zoho_receiver):
    too_far = (zoho_emulator.store.now() + dt.timedelta(days=3)).isoformat()
    api.post("/crm/v8/actions/watch", watch(channel_expiry=too_far, notify_url=zoho_receiver.url))
    channel = zoho_emulator.channels["1000000068001"]
    assert channel.expiry - zoho_emulator.store.now() == dt.timedelta(hours=1)  # Zoho's default instead
    ann = contact(api)
    assert zoho_emulator.send_notification("1000000068001", "Contacts", "insert", [ann])[0] == 200
    assert zoho_emulator.send_notification("1000000068001", "Deals", "insert", [ann]) is None  # only Deals.edit
    channel.expiry = zoho_emulator.store.now() - dt.timedelta(seconds=1)
    assert zoho_emulator.send_notification("1000000068001", "Contacts", "update", [ann]) is None
    assert api.get("/crm/v8/actions/watch") == (204, None)  # expired channels are not listed
    [delivered] = zoho_receiver.received
    body = json.loads(delivered)
    assert {k: body[k] for k in ("module", "operation", "ids", "channel_id", "token")} == {
        "module": "Contacts",
        "operation": "insert",
        "ids": [ann],
        "channel_id": "1000000068001",
        "token": "tok",
    }
    assert isinstance(body["server_time"], int) and body["resource_uri"].endswith("/crm/v8/Contacts")
    assert zoho_emulator.deliveries[0]["status"] == 200


def test_update_callbacks_name_the_affected_fields_and_their_values(api, zoho_emulator):
    api.post("/crm/v8/actions/watch", watch(return_affected_field_values=True))
    ann = contact(api, Title="CTO")
    body = zoho_emulator.callback_body("1000000068001", "Contacts", "update", [ann], affected_fields=["Title"])
    assert body["affected_fields"] == [{ann: ["Title"]}]
    assert body["affected_values"] == [{"id": ann, "fields": {"Title": "CTO"}}]


def test_api_writes_and_ui_edits_are_told_apart_by_modified_by(api, zoho_emulator):
    ann = contact(api)
    assert zoho_emulator.get("Contacts", ann)["Modified_By"]["id"] == zoho_emulator.integration_user["id"]
    zoho_emulator.edit_in_ui("Contacts", ann, {"Title": "CFO"})
    assert zoho_emulator.get("Contacts", ann)["Modified_By"]["id"] == zoho_emulator.ui_user["id"]
    assert [c.operation for c in zoho_emulator.changes()] == ["insert", "update"]
