"""The emulator's list grammar, cursors, small endpoints, and asset refs and `data:` inputs, over HTTP."""

from __future__ import annotations

import base64
import time
import uuid

import httpx
import pytest

from helpers import sample_zip
from runflow_bg.cli.auth_cmd import account_name
from runflow_bg.emulator import Emulator, Faults
from runflow_bg.models import parse_run_page

KEY = "rf_emulator_api_key"
AUTH = {"Authorization": f"Bearer {KEY}"}
RUNS = "/models/runflow/background-replace/runs"
ZIP_DATA = "data:application/zip;base64," + base64.b64encode(sample_zip()).decode()
REFS = ("a", "b", "c d")  # b fails; created in this order


def client(emu: Emulator) -> httpx.Client:
    return httpx.Client(base_url=f"{emu.base_url}/v1", headers=AUTH, timeout=5)


def create(api: httpx.Client, zip_url: str = ZIP_DATA, **extra) -> httpx.Response:
    body = {"input": {"zip_url": zip_url, "file_image": "image.png", "file_reference": "reference.png"},
            **extra}
    return api.post(RUNS, json=body)


def upload(api: httpx.Client, data: bytes, confirm: bool = True) -> str:
    """An uploaded asset's id."""
    session = api.post("/asset-uploads", json={"filename": "inputs.zip", "mime_type": "application/zip",
                                               "size_bytes": len(data)}).json()
    assert httpx.put(session["upload_url"], content=data).status_code == 200
    if confirm:
        assert api.post(f"/asset-uploads/{session['asset_id']}/confirmations", json={}).status_code == 201
    return session["asset_id"]


def refs(answer: httpx.Response) -> list[str]:
    assert answer.status_code == 200, answer.text
    return [item["client_ref"] for item in answer.json()["items"]]


@pytest.fixture
def emu():
    with Emulator(api_key=KEY, run_seconds=0.05) as server:
        yield server


@pytest.fixture
def api(emu):
    with client(emu) as http:
        yield http


@pytest.fixture(scope="module")
def listed():
    """Three finished runs, `a` and `c d` succeeded and `b` failed, for read-only list tests."""
    with Emulator(api_key=KEY, run_seconds=0.05) as emu, client(emu) as api:
        for ref in REFS:
            if ref == "b":
                emu.faults.fail_runs(count=1)
            assert create(api, client_ref=ref).status_code == 201
            time.sleep(0.003)  # distinct created_at milliseconds
        emu.finish_runs()
        yield api, {run["client_ref"]: run for run in emu.runs()}


# -- q, sort_by, fields ----------------------------------------------------------------------

@pytest.mark.parametrize("q, expected", [
    ("client_ref=a", {"a"}),
    ("client_ref:b", {"b"}),
    ("client_ref>a", {"b", "c d"}),
    ("client_ref<b", {"a"}),
    ("client_ref>=b", {"b", "c d"}),
    ("client_ref<=b", {"a", "b"}),
    ("client_ref.EQ:'a'", {"a"}),
    ("client_ref.NE:'a'", {"b", "c d"}),
    ("client_ref.GT:b", {"c d"}),
    ("client_ref:'c d'", {"c d"}),
    ('client_ref:"c d"', {"c d"}),
    ("client_ref:A", set()),  # case-sensitive
    ("status_code:failed", {"b"}),
    ("status_code:succeeded AND client_ref>a", {"c d"}),
    ("client_ref:a OR client_ref:b", {"a", "b"}),
    ("NOT status_code:failed", {"a", "c d"}),
    ("NOT (client_ref:a OR client_ref:b)", {"c d"}),
    ("client_ref:a OR client_ref:b AND status_code:failed", {"a", "b"}),  # AND binds tighter
    ("(client_ref:a OR client_ref:b) AND status_code:failed", {"b"}),
    ("created_at>2020-01-01 AND created_at<2999-12-31T00:00:00Z", set(REFS)),
    ("duration_ms>=0 AND cost<=0.35", set(REFS)),
    ("failure_code:null", {"a", "c d"}),
    ("model_id:x", set()),  # a reference field, known even where the run view leaves it null
])
def test_q_operators(listed, q, expected):
    api, _ = listed
    assert set(refs(api.get("/runs", params={"q": q}))) == expected


def test_q_compares_timestamps_by_value(listed):
    api, runs = listed
    since = runs["a"]["created_at"]
    assert set(refs(api.get("/runs", params={"q": f"created_at>'{since}'"}))) == {"b", "c d"}
    assert set(refs(api.get("/runs", params={"q": f"created_at<={since}"}))) == {"a"}


def test_sort_by_several_fields_and_project_fields(listed):
    api, _ = listed
    assert refs(api.get("/runs")) == ["c d", "b", "a"]
    assert refs(api.get("/runs", params={"sort_by": "status_code:asc,created_at:desc"})) == ["b", "c d", "a"]
    assert refs(api.get("/runs", params={"sort_by": "client_ref:desc"})) == ["c d", "b", "a"]
    items = api.get("/runs", params={"fields": "id,client_ref", "sort_by": "created_at:asc"}).json()["items"]
    assert [list(item) for item in items] == [["id", "client_ref"]] * 3
    assert [item["client_ref"] for item in items] == list(REFS)


def test_cursors_walk_forward_then_back(listed):
    api, _ = listed
    pages, params = [], {"limit": 1}
    while True:
        page = api.get("/runs", params=params).json()
        assert page.keys() == {"items", "first", "next", "previous"}
        pages.append(page)
        if not page["next"]:
            break
        params = {"limit": 1, "pq": page["next"]}
    assert [p["items"][0]["client_ref"] for p in pages] == ["c d", "b", "a"]
    assert pages[0]["previous"] is None and all(p["first"] == pages[0]["first"] for p in pages)
    back = api.get("/runs", params={"limit": 1, "pq": pages[2]["previous"], "from_prev": "true"}).json()
    assert refs_of(back) == ["b"]
    assert refs_of(api.get("/runs", params={"limit": 1, "pq": back["previous"]}).json()) == ["c d"]
    # from_prev reads the page before any cursor's place: before the third page is the second
    before = api.get("/runs", params={"limit": 1, "pq": pages[1]["next"], "from_prev": "true"}).json()
    assert refs_of(before) == ["b"]


def refs_of(page: dict) -> list[str]:
    return [item["client_ref"] for item in page["items"]]


def test_next_pq_envelope_knob(emu, api):
    emu.faults.list_envelope = "next_pq"
    for ref in ("x", "y"):
        create(api, client_ref=ref)
    first = api.get("/runs", params={"limit": 1}).json()
    assert first.keys() == {"items", "next_pq", "prev_pq"} and first["prev_pq"] is None
    second = api.get("/runs", params={"limit": 1, "pq": first["next_pq"]}).json()
    assert refs_of(first) + refs_of(second) == ["y", "x"] and second["next_pq"] is None
    assert refs_of(api.get("/runs", params={"limit": 1, "pq": second["prev_pq"]}).json()) == ["y"]
    assert parse_run_page(first).next_cursor == first["next_pq"]
    with pytest.raises(ValueError):
        emu.faults.list_envelope = "links"


def test_client_reads_next_pq_else_next():
    assert parse_run_page({"items": [], "next": "n"}).next_cursor == "n"
    assert parse_run_page({"items": [], "next_pq": "p", "next": "n"}).next_cursor == "p"
    assert parse_run_page({"items": [], "next": None}).next_cursor is None


@pytest.mark.parametrize("params, field", [
    ({"q": "colour:red"}, "q"),
    ({"q": "status_code:"}, "q"),
    ({"q": "status_code:failed AND"}, "q"),
    ({"q": "(status_code:failed"}, "q"),
    ({"q": "status_code:failed client_ref:a"}, "q"),
    ({"q": "status_code:failed and client_ref:a"}, "q"),
    ({"q": "client_ref:c d"}, "q"),
    ({"q": "client_ref.XX:'a'"}, "q"),
    ({"q": "created_at>yesterday"}, "q"),
    ({"q": "input:x"}, "q"),
    ({"sort_by": "colour:asc"}, "sort_by"),
    ({"sort_by": "created_at:up"}, "sort_by"),
    ({"fields": "id,colour"}, "fields"),
    ({"limit": "0"}, "limit"),
    ({"limit": "501"}, "limit"),
    ({"limit": "ten"}, "limit"),
    ({"pq": "not-a-cursor"}, "pq"),
    ({"from_prev": "maybe"}, "from_prev"),
])
def test_bad_list_parameters_are_422_never_an_empty_page(listed, params, field):
    api, _ = listed
    answer = api.get("/runs", params=params)
    assert answer.status_code == 422 and answer.json()["code"] == "VALIDATION_ERROR"
    assert [error["field"] for error in answer.json()["errors"]] == [field]


def test_every_bad_list_parameter_is_named_at_once(listed):
    api, _ = listed
    answer = api.get("/runs", params={"q": "colour:red", "limit": "0", "fields": "nope"})
    assert answer.status_code == 422
    errors = answer.json()["errors"]
    assert [error["field"] for error in errors] == ["q", "fields", "limit"]
    assert "colour" in errors[0]["msg"] and "colour" in answer.json()["message"]


# -- statuses, logs, readiness ---------------------------------------------------------------

def test_statuses_are_never_read_as_a_run_id(emu, api):
    answer = api.get("/runs/statuses")
    assert answer.status_code == 200 and emu.requests[-1].endpoint == "run_statuses"
    codes = {item["code"]: item["is_terminal"] for item in answer.json()["items"]}
    assert codes == {"queued": False, "dispatching": False, "running": False, "succeeded": True,
                     "partial_succeeded": True, "failed": True, "canceled": True}


def test_logs_tell_a_failed_run_and_page(emu, api):
    emu.faults.fail_runs(count=1, message="The scene is too dark.")
    run_id = create(api).json()["id"]
    emu.finish_runs()
    logs = api.get(f"/runs/{run_id}/logs").json()
    assert logs.keys() == {"items", "first", "next", "previous"} and logs["next"] is None
    lines = logs["items"]
    assert [line["level_code"] for line in lines] == ["info", "info", "error"]
    assert lines[-1]["message"] == "The scene is too dark." and lines[-1]["meta"]["failure_code"]
    assert {line["run_id"] for line in lines} == {run_id}
    assert lines[0].keys() == {"id", "run_id", "level_code", "message", "timestamp", "meta"}
    paged, params = [], {"limit": 2}
    while params:
        page = api.get(f"/runs/{run_id}/logs", params=params).json()
        paged += page["items"]
        params = {"limit": 2, "pq": page["next"]} if page["next"] else None
    assert paged == lines
    assert api.get(f"/runs/{run_id}/logs", params={"limit": 0}).status_code == 422
    assert api.get("/runs/no-such-run/logs").json()["code"] == "RUN_NOT_FOUND"


def test_readiness_needs_no_key(emu):
    answer = httpx.get(f"{emu.base_url}/v1/readiness")
    assert answer.status_code == 200 and isinstance(answer.json(), dict)
    assert emu.requests[-1].endpoint == "readiness" and not emu.requests[-1].had_authorization


@pytest.mark.parametrize("endpoint, path", [
    ("run_statuses", "/runs/statuses"), ("readiness", "/readiness"), ("asset_types", "/assets/types"),
    ("pricing", "/models/runflow/background-replace/pricing"), ("credit_balances", "/credit-balances"),
])
def test_new_endpoints_take_fault_knobs(emu, api, endpoint, path):
    emu.faults.fail_next(endpoint, 503)
    assert api.get(path).status_code == 503 and api.get(path).status_code == 200


# -- asset types and filenames ---------------------------------------------------------------

def session(api: httpx.Client, mime_type: str = "application/zip", filename: str = "inputs.zip"):
    return api.post("/asset-uploads", json={"filename": filename, "mime_type": mime_type, "size_bytes": 10})


def test_asset_types_are_listed_and_enforced(emu, api):
    answer = api.get("/assets/types")
    assert answer.status_code == 200 and emu.requests[-1].endpoint == "asset_types"
    listed = [item["mime_type"] for item in answer.json()["items"]]
    assert listed == ["application/zip", "application/x-zip-compressed", "application/octet-stream",
                      "image/png", "image/jpeg", "image/webp"]
    assert all(session(api, mime_type).status_code == 201 for mime_type in listed)
    assert session(api, "text/plain").json()["errors"][0]["field"] == "mime_type"
    emu.faults.asset_types = ["application/zip"]
    assert [item["mime_type"] for item in api.get("/assets/types").json()["items"]] == ["application/zip"]
    assert session(api, "image/png").status_code == 422 and session(api).status_code == 201
    for bad in ([], "application/zip", [""]):
        with pytest.raises(ValueError):
            Faults().asset_types = bad


@pytest.mark.parametrize("filename, status", [("a", 201), ("a" * 500, 201), ("a" * 501, 422), ("", 422)])
def test_filenames_of_1_to_500_characters(api, filename, status):
    assert session(api, filename=filename).status_code == status


# -- pricing, balances, account --------------------------------------------------------------

def test_pricing_by_slug_and_by_uuid():
    with Emulator(api_key=KEY, price="1.50") as emu, client(emu) as api:
        page = api.get("/models/runflow/background-replace/pricing").json()
        assert page.keys() == {"items", "first", "next", "previous"} and page["next"] is None
        item = page["items"][0]
        assert item["price"] == "1.50" and item["currency_code"] == "USD" and item["unit_code"] == "request"
        assert {"id", "model_id", "pricing_model_code", "dimension_code"} <= item.keys()
        by_uuid = api.get(f"/models/{item['model_id']}/pricing").json()
        encoded = api.get("/models/runflow%2Fbackground-replace/pricing").json()
        assert by_uuid["items"] == encoded["items"] == [item]
        assert api.get("/models/runflow/other/pricing").json()["code"] == "MODEL_NOT_FOUND"
    with Emulator(api_key=KEY) as emu, client(emu) as api:
        assert api.get("/models/runflow/background-replace/pricing").json()["items"][0]["price"] == "0.35"


def test_both_balances(emu, api):
    balance = api.get("/billing/balance").json()
    assert balance.keys() == {"id", "org_id", "balance", "low_balance_threshold", "low_balance_notified_at",
                              "created_at", "updated_at"}
    assert balance["balance"] == "100.00"
    assert api.get("/credit-balances").json() == {"items": [{"balance_usd": "100.00", "balance": "100.00"}]}
    emu.set_balance(None)
    assert api.get("/billing/balance").status_code == api.get("/credit-balances").status_code == 404


def test_me_with_and_without_memberships(api):
    me = api.get("/auth/me").json()
    assert me.keys() == {"id", "email", "first_name", "last_name", "avatar_url", "timezone", "locale_code",
                         "email_verified_at", "memberships"}
    assert me["memberships"] is None
    embedded = api.get("/auth/me", params={"embed": "memberships"}).json()
    membership = embedded["memberships"][0]
    assert membership["org"].keys() == {"id", "name", "slug", "plan_code"}
    assert membership["role_code"] and "runs:create" in membership["scopes"] and "org" not in embedded
    assert account_name(embedded) == embedded["email"]
    assert account_name({**embedded, "email": None}) == membership["org"]["name"]
    assert account_name({"email": None, "memberships": None}) is None


# -- refs and data: URIs as zip_url ----------------------------------------------------------

def test_asset_ref_is_resolved_to_a_signed_url_of_the_emulator(emu, api):
    asset_id = upload(api, sample_zip())
    run = create(api, f"runflow://assets/{asset_id}")
    assert run.status_code == 201, run.text
    zip_url = run.json()["input"]["zip_url"]
    assert zip_url.startswith(f"{emu.base_url}/files/assets/{asset_id}/") and "sig=" in zip_url
    emu.finish_runs()
    assert api.get(f"/runs/{run.json()['id']}").json()["status_code"] == "succeeded"


@pytest.mark.parametrize("ref", [f"runflow://assets/{uuid.uuid4()}", "runflow://assets/", "runflow://flows/x"])
def test_unknown_ref_is_422(emu, api, ref):
    answer = create(api, ref)
    assert answer.status_code == 422 and answer.json()["message"] == f"asset not found or expired: {ref}"
    assert answer.json()["errors"][0]["field"] == "input.zip_url" and emu.created_run_count == 0


def test_ref_to_an_unconfirmed_upload_is_422(api):
    asset_id = upload(api, sample_zip(), confirm=False)
    assert create(api, f"runflow://assets/{asset_id}").status_code == 422


def test_small_data_uri_is_stored_as_an_asset(emu, api):
    run = create(api, ZIP_DATA)
    assert run.status_code == 201, run.text
    zip_url = run.json()["input"]["zip_url"]
    assert zip_url.startswith(f"{emu.base_url}/files/assets/")
    asset_id = zip_url.split("/")[5]
    assert api.get(f"/assets/{asset_id}").json()["size_bytes"] == len(sample_zip())
    assert httpx.get(zip_url).content == sample_zip()
    emu.finish_runs()
    assert api.get(f"/runs/{run.json()['id']}").json()["status_code"] == "succeeded"


@pytest.mark.parametrize("uri", [
    "data:application/zip;base64," + base64.b64encode(b"\0" * (1024 * 1024 + 1)).decode(),
    "data:application/zip;base64,not*base64",
    "data:application/zip,plain-text",
    "data:text/plain;base64,aGVsbG8=",
    "data:application/zip;base64,",
])
def test_bad_data_uri_is_422(emu, api, uri):
    answer = create(api, uri)
    assert answer.status_code == 422 and answer.json()["errors"][0]["field"] == "input.zip_url"
    assert emu.created_run_count == 0


def test_data_uri_of_exactly_1_mib_is_accepted(api):
    uri = "data:application/zip;base64," + base64.b64encode(b"\0" * 1024 * 1024).decode()
    assert create(api, uri).status_code == 201
