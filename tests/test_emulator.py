"""The emulator over real sockets with plain httpx: every endpoint, every fault knob, callbacks."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from urllib.parse import quote, urlsplit

import httpx
import pytest
from PIL import Image

from helpers import sample_zip
from runflow_bg.emulator import Emulator, Faults, callbacks
from runflow_bg.emulator.corrupt import CORRUPT_MODES
from runflow_bg.emulator.idempotency import IdempotencyKeys
from runflow_bg.emulator.runs import Run, Shape

KEY = "rf_emulator_test_key"
AUTH = {"Authorization": f"Bearer {KEY}"}
FAST = {"api_key": KEY, "run_seconds": 0.2, "callback_retry_delays": (0.05, 0.1)}
RUN_FIELDS = {  # the API reference's Run
    "id", "flow_id", "model_id", "comfyui_workflow_id", "target_type", "target_version", "org_id",
    "status_code", "source_code", "input", "output", "context", "duration_ms", "cost", "cost_breakdown",
    "nodes_total", "nodes_completed", "resolved_template_id", "batch_id", "client_ref", "jurisdiction_code",
    "flow_version_id", "request_id", "created_by", "created_at", "started_at", "completed_at",
    "callback_url", "metadata", "has_logs", "has_node_runs", "links", "failure_code", "failure_message",
    "failure_stage_code", "node_runs"}
DELIVERY_FIELDS = {
    "id", "run_id", "callback_url", "payload_bytes", "payload", "signing_secret_id", "is_automatic",
    "status_code", "failure_reason_code", "failure_detail", "attempt_count", "max_attempts",
    "next_attempt_at", "created_at", "updated_at", "completed_at", "attempts"}
ATTEMPT_FIELDS = {"id", "delivery_id", "attempt_number", "status_code", "response_body", "response_time_ms",
                  "error_message", "created_at"}
TLS = ssl.create_default_context()  # shared: building one per httpx client costs ~50 ms
FINISHED = {"succeeded", "partial_succeeded", "failed", "errored", "canceled", "cancelled"}


def plain_get(url: str, **kwargs) -> httpx.Response:
    """A GET without the API key, as presigned file and output URLs are fetched."""
    return httpx.get(url, verify=TLS, **kwargs)


def plain_put(url: str, **kwargs) -> httpx.Response:
    """A PUT without the API key, as presigned upload URLs are used."""
    return httpx.put(url, verify=TLS, **kwargs)


def raw_get(url: str) -> tuple[int, dict[str, str], bytes]:
    """A keep-alive GET over a bare socket, read until the server hangs up: (status, headers, body)."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
        sock.sendall(f"GET {parts.path}?{parts.query} HTTP/1.1\r\nHost: {parts.netloc}\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, body


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


NOWHERE = f"http://127.0.0.1:{closed_port()}/inputs.zip"  # refuses at once, so runs fail fast




def eventually(check, deadline: float = 5.0):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        value = check()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError("condition not met in time")


@pytest.fixture
def emu():
    with Emulator(**FAST) as server:
        yield server


@pytest.fixture
def api(emu):
    with httpx.Client(base_url=f"{emu.base_url}/v1", headers=AUTH, timeout=5, verify=TLS) as client:
        yield client


@pytest.fixture
def receiver():
    """A local callback receiver that answers with queued statuses (then 200), and serves files."""
    hits, answers, files = [], [], {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            hits.append(SimpleNamespace(headers={k.lower(): v for k, v in self.headers.items()}, body=body))
            self.send_response(answers.pop(0) if answers else 200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self):
            data = files.get(self.path)
            self.send_response(200 if data is not None else 404)
            self.send_header("Content-Length", str(len(data or b"")))
            self.end_headers()
            self.wfile.write(data or b"")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    yield SimpleNamespace(base=base, url=f"{base}/hook", hits=hits, answers=answers, files=files)
    server.shutdown()
    server.server_close()
    thread.join()


def session_body(data: bytes) -> dict:
    return {"filename": "inputs.zip", "mime_type": "application/zip", "size_bytes": len(data)}


def upload(api: httpx.Client, data: bytes) -> dict:
    """The three upload steps; returns the asset, whose url serves as a zip_url."""
    session = api.post("/asset-uploads", json=session_body(data))
    assert session.status_code == 201
    put = plain_put(session.json()["upload_url"], content=data, headers={"Content-Type": "application/zip"})
    assert put.status_code == 200
    confirmed = api.post(f"/asset-uploads/{session.json()['asset_id']}/confirmations", json={})
    assert confirmed.status_code == 201
    return confirmed.json()


def run_body(zip_url: str, **extra) -> dict:
    return {"input": {"zip_url": zip_url, "file_image": "image.png", "file_reference": "reference.png",
                      "prompt": None}, **extra}


def create(api: httpx.Client, zip_url: str, **extra) -> dict:
    answer = api.post("/models/runflow/background-replace/runs", json=run_body(zip_url, **extra))
    assert answer.status_code == 201, answer.text
    return answer.json()


def succeeded_run(api: httpx.Client) -> dict:
    return wait_finished(api, create(api, upload(api, sample_zip())["url"])["id"])


def wait_finished(api: httpx.Client, run_id: str) -> dict:
    def finished():
        run = api.get(f"/runs/{run_id}").json()
        return run if run["status_code"] in FINISHED else None

    return eventually(finished)


def statuses_seen(api: httpx.Client, run_id: str) -> list[str]:
    """Each status a run shows, polled every few ms until it finishes."""
    seen, end = [], time.monotonic() + 5
    while not seen or seen[-1] not in FINISHED:
        assert time.monotonic() < end, f"run {run_id} still {seen[-1]}"
        status = api.get(f"/runs/{run_id}").json()["status_code"]
        if not seen or seen[-1] != status:
            seen.append(status)
        time.sleep(0.005)
    return seen


# -- health, auth, account -------------------------------------------------------------------

def test_health_needs_no_key(emu):
    answer = plain_get(f"{emu.base_url}/v1/health")
    assert answer.status_code == 200 and answer.json() == {"ok": True, "status": "ok"}
    assert answer.headers["runflow-request-id"].startswith("req_")
    assert emu.requests[0].endpoint == "health" and emu.requests[0].had_authorization is False


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer rf_wrong"}, {"Authorization": KEY}])
def test_missing_or_wrong_key_is_401(emu, headers):
    answer = plain_get(f"{emu.base_url}/v1/auth/me", headers=headers)
    assert answer.status_code == 401
    assert answer.json()["code"] == "UNAUTHORIZED" and answer.json()["errors"] is None
    assert answer.headers["runflow-request-id"].startswith("req_")
    assert emu.requests[-1].status == 401


def test_me_and_unknown_paths(api):
    me = api.get("/auth/me")
    assert me.status_code == 200 and me.json()["email"] and me.json()["memberships"] is None
    for answer in (api.get("/nothing/here"), api.delete("/runs")):
        assert answer.status_code == 404 and answer.json()["code"] == "NOT_FOUND"


def test_keep_alive_reuses_one_connection(api):
    ports = {api.get("/health").extensions["network_stream"].get_extra_info("client_addr")[1]
             for _ in range(3)}
    assert len(ports) == 1


def test_balance_credit_and_missing_balance(emu, api):
    assert api.get("/billing/balance").json()["balance"] == "100.00"
    create(api, upload(api, sample_zip())["url"])
    assert api.get("/billing/balance").json()["balance"] == "99.65"
    emu.set_balance("0.10")
    refused = api.post("/models/runflow/background-replace/runs", json=run_body(NOWHERE))
    assert refused.status_code == 402 and refused.json()["code"] == "INSUFFICIENT_CREDIT"
    assert emu.created_run_count == 1
    emu.set_balance(None)
    assert api.get("/billing/balance").status_code == 404


# -- uploads ---------------------------------------------------------------------------------

def test_upload_confirm_and_fetch(emu, api):
    data = sample_zip()
    session = api.post("/asset-uploads", json=session_body(data))
    assert session.status_code == 201
    asset_id, upload_url = session.json()["asset_id"], session.json()["upload_url"]
    assert upload_url.startswith(f"{emu.base_url}/storage/uploads/{asset_id}?sig=")
    assert "expires=" in upload_url
    early = api.post(f"/asset-uploads/{asset_id}/confirmations", json={})
    assert early.status_code == 409 and early.json()["code"] == "UPLOAD_INCOMPLETE"

    put = plain_put(upload_url, content=data, headers={"Content-Type": "application/zip"})
    assert put.status_code == 200 and put.headers["etag"] == f'"{hashlib.md5(data).hexdigest()}"'
    assert emu.storage_saw_authorization is False
    asset = api.post(f"/asset-uploads/{asset_id}/confirmations", json={}).json()
    assert asset.keys() >= {"id", "org_id", "folder_id", "name", "r2_key", "url", "thumbnail_url",
                            "mime_type", "size_bytes", "asset_type", "source_type", "source_id",
                            "created_by", "created_at", "updated_at"}
    assert asset["id"] == asset_id and asset["size_bytes"] == len(data)
    assert asset["created_at"].endswith("Z")  # the reference writes Z; only callbacks write +00:00
    assert asset["url"].startswith(f"{emu.base_url}/files/assets/{asset_id}/inputs.zip?sig=")

    fresh = api.get(f"/assets/{asset_id}")
    assert fresh.status_code == 200 and fresh.json()["id"] == asset_id
    download = plain_get(fresh.json()["url"])
    assert download.content == data and download.headers["content-type"] == "application/zip"
    assert plain_get(fresh.json()["url"].replace("sig=", "sig=0")).status_code == 403
    assert api.get("/assets/no-such-asset").json()["code"] == "ASSET_NOT_FOUND"

    assert plain_put(upload_url, content=data, headers=AUTH).status_code == 200
    assert emu.storage_saw_authorization is True


@pytest.mark.parametrize("body, field", [
    ({"filename": "a.zip", "mime_type": "application/zip", "size_bytes": 52_428_801}, "size_bytes"),
    ({"filename": "a.zip", "mime_type": "application/zip", "size_bytes": 0}, "size_bytes"),
    ({"filename": "a.zip", "mime_type": "application/zip", "size_bytes": "12"}, "size_bytes"),
    ({"filename": "a.txt", "mime_type": "text/plain", "size_bytes": 12}, "mime_type"),
    ({"filename": "", "mime_type": "image/png", "size_bytes": 12}, "filename"),
    ([1, 2], "body"),
])
def test_upload_refusals(api, body, field):
    answer = api.post("/asset-uploads", json=body)
    assert answer.status_code == 422 and answer.json()["code"] == "VALIDATION_ERROR"
    assert field in [error["field"] for error in answer.json()["errors"]]


def test_storage_put_checks_signature_length_and_expiry(emu, api):
    data = sample_zip()
    session = api.post("/asset-uploads", json=session_body(data)).json()
    url = session["upload_url"]
    forged = plain_put(url.replace("sig=", "sig=f"), content=data)
    assert forged.status_code == 403 and b"SignatureDoesNotMatch" in forged.content
    assert plain_put(url, content=data[:-1]).status_code == 400
    emu.faults.expire_upload_urls(1)
    expired = plain_put(url, content=data)
    assert expired.status_code == 403 and b"Request has expired" in expired.content
    assert plain_put(url, content=data).status_code == 200
    assert [r.status for r in emu.requests if r.endpoint == "storage_put"] == [403, 400, 403, 200]


def test_chunked_request_bodies_are_read(emu, api):
    data = sample_zip()
    session = api.post("/asset-uploads", json=session_body(data)).json()
    put = plain_put(session["upload_url"], content=iter([data[:100], data[100:]]))
    assert put.status_code == 200 and put.request.headers["transfer-encoding"] == "chunked"
    body = json.dumps(run_body(NOWHERE)).encode()
    created = api.post("/models/runflow/background-replace/runs", content=iter([body[:20], body[20:]]))
    assert created.status_code == 201


# -- runs ------------------------------------------------------------------------------------

def test_run_goes_queued_dispatching_running_succeeded_and_its_output_downloads():
    with Emulator(api_key=KEY, run_seconds=1.5) as slow, \
            httpx.Client(base_url=f"{slow.base_url}/v1", headers=AUTH, timeout=5, verify=TLS) as api:
        created = create(api, upload(api, sample_zip())["url"], metadata={"sku": "A1"}, client_ref="ref-1")
        assert created.keys() == RUN_FIELDS and created["status_code"] == "queued"
        assert created["output"] is None and created["cost"] == "0.35"
        assert created["target_type"] == "model" and created["model_id"] and created["node_runs"] == []
        assert created["created_at"].endswith("Z") and created["flow_id"] is None
        lifecycle = ["queued", "dispatching", "running", "succeeded"]
        seen = statuses_seen(api, created["id"])  # "queued" may pass before the first read
        assert seen == [status for status in lifecycle if status in seen]
        assert set(lifecycle[1:]) <= set(seen)
        done = api.get(f"/runs/{created['id']}").json()
        assert done.keys() == RUN_FIELDS and done["model_id"] == created["model_id"]
        assert done["metadata"] == {"sku": "A1"} and done["client_ref"] == "ref-1"
        assert done["duration_ms"] >= 1500 and done["completed_at"].endswith("Z")
        assert done["failure_code"] is None and done["failure_stage_code"] is None
        [url] = done["output"]["image_urls"]
        assert url.startswith(f"{slow.base_url}/files/outputs/{created['id']}/1.webp?sig=")
        image = plain_get(url)
        assert image.headers["content-type"] == "image/webp"
        assert int(image.headers["content-length"]) == len(image.content)
        assert Image.open(io.BytesIO(image.content)).format == "WEBP"
        assert plain_get(url.replace("sig=", "sig=0")).status_code == 403


def test_run_seconds_can_change_for_later_runs(emu, api):
    emu.run_seconds = 30
    run = create(api, NOWHERE)
    time.sleep(0.1)
    assert api.get(f"/runs/{run['id']}").json()["status_code"] == "queued"


def test_the_phases_by_elapsed_time():
    run = Run(input={}, run_seconds=1.0, created=100.0)
    times = (100.0, 100.15, 100.5, 102.0)
    assert [run.status(t) for t in times] == ["queued", "dispatching", "running", "running"]
    older = Shape(spelling="older-docs")
    assert [run.status(t, older) for t in times] == ["queued", "queued", "running", "running"]


@pytest.mark.parametrize("body, field", [
    ({}, "input"),
    (run_body("ftp://example.com/in.zip"), "input.zip_url"),
    ({"input": {"zip_url": NOWHERE, "file_reference": "r.png"}}, "input.file_image"),
    ({"input": {"zip_url": NOWHERE, "file_image": "i.png", "file_reference": ""}}, "input.file_reference"),
    ({"input": {"zip_url": NOWHERE, "file_image": "i", "file_reference": "r", "prompt": 5}},
     "input.prompt"),
    (run_body(NOWHERE, metadata=[1]), "metadata"),
    (run_body(NOWHERE, client_ref="x" * 256), "client_ref"),
    (run_body(NOWHERE, callback_url="not a url"), "callback_url"),
    ("not an object", "body"),
])
def test_create_refusals(emu, api, body, field):
    answer = api.post("/models/runflow/background-replace/runs", json=body)
    assert answer.status_code == 422 and answer.json()["code"] == "VALIDATION_ERROR"
    assert field in [error["field"] for error in answer.json()["errors"]]
    assert emu.created_run_count == 0


def test_unknown_model_and_unknown_run_are_404(api):
    other = api.post("/models/runflow/other-model/runs", json=run_body(NOWHERE))
    assert other.status_code == 404 and other.json()["code"] == "MODEL_NOT_FOUND"
    for path in ("/runs/no-such-run", "/runs/no-such-run/callback"):
        answer = api.get(path)
        assert answer.status_code == 404 and answer.json()["code"] == "RUN_NOT_FOUND"


@pytest.mark.parametrize("status", ["failed", "errored", "canceled", "cancelled"])
def test_failed_runs(emu, api, status):
    emu.faults.fail_runs(1, status=status, code="MODEL_ERROR", message="model crashed")
    url = upload(api, sample_zip())["url"]
    done = wait_finished(api, create(api, url)["id"])
    assert done["status_code"] == status and done["output"] is None
    assert (done["failure_code"], done["failure_message"]) == ("MODEL_ERROR", "model crashed")
    assert done["failure_stage_code"] == "inference"
    assert wait_finished(api, create(api, url)["id"])["status_code"] == "succeeded"


@pytest.mark.parametrize("data, member, code", [
    (b"this is not a zip", "image.png", "INVALID_INPUT_ZIP"),
    (sample_zip(), "nope.png", "INPUT_FILE_NOT_FOUND"),
])
def test_compositor_errors_fail_the_run(api, data, member, code):
    body = run_body(upload(api, data)["url"])
    body["input"]["file_image"] = member
    run = api.post("/models/runflow/background-replace/runs", json=body).json()
    done = wait_finished(api, run["id"])
    assert done["status_code"] == "failed" and done["failure_code"] == code and done["failure_message"]


def test_zip_url_that_cannot_be_fetched_fails_the_run(api):
    unreachable = f"http://127.0.0.1:{closed_port()}/inputs.zip?sig=secret"
    forged = upload(api, sample_zip())["url"].replace("sig=", "sig=0")
    for url in (unreachable, forged):
        done = wait_finished(api, create(api, url)["id"])
        assert done["failure_code"] == "INPUT_FETCH_FAILED" and "sig=" not in done["failure_message"]


def test_foreign_zip_url_is_downloaded(api, receiver):
    receiver.files["/inputs.zip"] = sample_zip()
    done = wait_finished(api, create(api, f"{receiver.base}/inputs.zip")["id"])
    assert done["status_code"] == "succeeded"


def test_list_filters_and_pages(emu, api):
    url = upload(api, sample_zip())["url"]
    runs = [create(api, url, client_ref=f"ref-{i}") for i in range(3)]
    found = api.get("/runs", params={"q": "client_ref.EQ:'ref-1'"}).json()
    assert [r["id"] for r in found["items"]] == [runs[1]["id"]]
    first = api.get("/runs", params={"limit": 2}).json()
    assert [r["id"] for r in first["items"]] == [runs[2]["id"], runs[1]["id"]]
    assert first["previous"] is None and first["next"]
    second = api.get("/runs", params={"limit": 2, "pq": first["next"]}).json()
    assert [r["id"] for r in second["items"]] == [runs[0]["id"]] and second["next"] is None
    assert second["previous"]
    ascending = api.get("/runs", params={"sort_by": "created_at:asc"}).json()["items"]
    assert [r["id"] for r in ascending] == [r["id"] for r in runs]
    for run in runs:
        wait_finished(api, run["id"])
    assert len(api.get("/runs", params={"q": "status_code:succeeded"}).json()["items"]) == 3
    both = api.get("/runs", params={"q": "client_ref.EQ:'ref-2' AND status_code:succeeded"}).json()["items"]
    assert [r["id"] for r in both] == [runs[2]["id"]]
    assert emu.requests[-1].path == "/v1/runs"


@pytest.mark.parametrize("params, field", [
    ({"limit": 0}, "limit"), ({"limit": 501}, "limit"), ({"limit": "ten"}, "limit"),
    ({"sort_by": "name"}, "sort_by"), ({"q": "colour:x"}, "q"), ({"pq": "not-a-cursor"}, "pq"),
])
def test_list_refusals(api, params, field):
    answer = api.get("/runs", params=params)
    assert answer.status_code == 422 and answer.json()["errors"][0]["field"] == field


# -- idempotency, listing lag, price, request records ---------------------------------------

RUNS = "/models/runflow/background-replace/runs"


def keyed_create(api: httpx.Client, key: str, **extra) -> httpx.Response:
    return api.post(RUNS, json=run_body(NOWHERE, **extra), headers={"Idempotency-Key": key})


def test_same_idempotency_key_and_body_replay_the_first_run(emu, api):
    first = keyed_create(api, "k-1", client_ref="k-1")
    again = keyed_create(api, "k-1", client_ref="k-1")
    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"] and again.json() == first.json()
    assert emu.created_run_count == 1 and api.get("/billing/balance").json()["balance"] == "99.65"


def test_a_lost_create_retried_with_its_key_gets_the_run_it_made(emu, api):
    emu.faults.drop_after_create(1)
    with pytest.raises(httpx.RemoteProtocolError):
        keyed_create(api, "lost", client_ref="lost")
    retried = keyed_create(api, "lost", client_ref="lost")
    assert retried.status_code == 201 and retried.json()["id"] == emu.runs()[0]["id"]
    assert emu.created_run_count == 1


def test_same_idempotency_key_with_another_body_is_409(emu, api):
    first = keyed_create(api, "k-1", client_ref="a")
    conflict = keyed_create(api, "k-1", client_ref="b")
    assert conflict.status_code == 409
    assert conflict.json()["code"] == "CONFLICT" and conflict.json()["message"]
    assert keyed_create(api, "k-1", client_ref="a").json()["id"] == first.json()["id"]
    assert emu.created_run_count == 1


def test_failed_creates_leave_their_idempotency_key_free(emu, api):
    emu.set_balance("0.00")
    assert keyed_create(api, "k-1").status_code == 402
    emu.set_balance("1.00")
    assert keyed_create(api, "k-1").status_code == 201 and emu.created_run_count == 1


def test_without_idempotency_key_every_create_makes_a_run(emu, api):
    ids = {create(api, NOWHERE, client_ref="same")["id"] for _ in range(2)}
    assert len(ids) == 2 and emu.created_run_count == 2


def test_concurrent_creates_with_one_key_make_one_run(emu):
    barrier, answers = threading.Barrier(8), []
    body = run_body(NOWHERE, client_ref="race")

    def post():
        barrier.wait()
        answers.append(httpx.post(f"{emu.base_url}/v1{RUNS}", json=body,
                                  headers={**AUTH, "Idempotency-Key": "race"}, timeout=5))

    threads = [threading.Thread(target=post) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [a.status_code for a in answers] == [201] * 8
    assert len({a.json()["id"] for a in answers}) == 1 and emu.created_run_count == 1
    assert emu.count("run_create") == 8


def test_idempotency_keys_hold_each_key_across_look_up_and_create():
    keys, made, answers, barrier = IdempotencyKeys(), [], [], threading.Barrier(8)

    def slow_create():
        made.append(None)
        time.sleep(0.05)  # a window in which other threads would create too, were the key not held
        return {"id": f"run-{len(made)}"}

    def once():
        barrier.wait()
        answers.append(keys.once("k", b"{}", slow_create))

    threads = [threading.Thread(target=once) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(made) == 1 and answers == [{"id": "run-1"}] * 8


def test_ignore_idempotency_makes_a_run_per_create(emu, api):
    emu.faults.ignore_idempotency = True
    first, again = keyed_create(api, "k-1"), keyed_create(api, "k-1", client_ref="other")
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] != again.json()["id"] and emu.created_run_count == 2


def test_listing_lag_hides_fresh_runs_from_lists_only(emu, api):
    emu.faults.listing_lag = 0.3
    started = time.monotonic()
    run = create(api, NOWHERE, client_ref="x")
    query = {"q": "client_ref.EQ:'x'"}
    assert api.get("/runs", params=query).json()["items"] == []
    assert api.get(f"/runs/{run['id']}").json()["id"] == run["id"]
    found = eventually(lambda: api.get("/runs", params=query).json()["items"])
    assert [r["id"] for r in found] == [run["id"]] and time.monotonic() - started >= 0.3


def test_price_sets_cost_and_charge():
    with Emulator(**FAST, price="0") as free, \
            httpx.Client(base_url=f"{free.base_url}/v1", headers=AUTH, timeout=5, verify=TLS) as api:
        run = create(api, NOWHERE)
        assert run["cost"] == "0.00" and api.get(f"/runs/{run['id']}").json()["cost"] == "0.00"
        assert api.get("/billing/balance").json()["balance"] == "100.00"
        free.set_balance("0.00")
        assert create(api, NOWHERE)["cost"] == "0.00"
    with Emulator(**FAST, price="1.5", balance="2.00") as dear, \
            httpx.Client(base_url=f"{dear.base_url}/v1", headers=AUTH, timeout=5, verify=TLS) as api:
        assert create(api, NOWHERE)["cost"] == "1.50"
        assert api.get("/billing/balance").json()["balance"] == "0.50"
        refused = api.post(RUNS, json=run_body(NOWHERE))
        assert refused.status_code == 402 and "(1.50 USD)" in refused.json()["message"]
    for bad in ("-0.01", "0.355", "free", "NaN", None):
        with pytest.raises(ValueError):
            Emulator(price=bad)


def test_request_records_carry_headers_but_never_the_key(emu, api):
    keyed_create(api, "k-1")
    plain_get(f"{emu.base_url}/v1/health")
    create_record, health_record = emu.requests
    assert create_record.headers["Idempotency-Key"] == "k-1"
    assert create_record.headers["Authorization"] == "***" and "Authorization" not in health_record.headers
    assert health_record.headers["Host"] and KEY not in repr(emu.requests)


# -- fault knobs -----------------------------------------------------------------------------

def test_fail_next_answers_without_processing(emu, api):
    emu.faults.fail_next("run_create", 503, count=2, retry_after=1)
    for _ in range(2):
        answer = api.post("/models/runflow/background-replace/runs", json=run_body(NOWHERE))
        assert answer.status_code == 503 and answer.headers["retry-after"] == "1"
        assert answer.json()["code"] == "MODEL_UNAVAILABLE" and "message" in answer.json()
    assert emu.created_run_count == 0
    create(api, NOWHERE)
    assert emu.count("run_create") == 3 and emu.created_run_count == 1
    assert [r.status for r in emu.requests] == [503, 503, 201]


def test_fail_next_bodies(emu, api):
    emu.faults.fail_next("me", 500, body="upstream exploded")
    emu.faults.fail_next("me", 400, body={"detail": "bad"})
    emu.faults.fail_next("storage_put", 500)
    emu.faults.fail_next("run_get", 422)
    assert api.get("/auth/me").text == "upstream exploded"
    assert api.get("/auth/me").json() == {"detail": "bad"}
    storage = plain_put(f"{emu.base_url}/storage/uploads/x", content=b"")
    assert b"<Code>InternalError</Code>" in storage.content
    assert api.get("/runs/x").json()["errors"][0].keys() == {"field", "msg"}


def test_drop_after_create_records_the_run(emu, api):
    emu.faults.drop_after_create(1)
    with pytest.raises(httpx.RemoteProtocolError):
        api.post("/models/runflow/background-replace/runs", json=run_body(NOWHERE, client_ref="lost"))
    assert emu.created_run_count == 1 and emu.requests[-1].status is None
    found = api.get("/runs", params={"q": "client_ref.EQ:'lost'"}).json()["items"]
    assert [r["id"] for r in found] == [emu.runs()[0]["id"]]


def test_drop_next_on_a_read(emu, api):
    emu.faults.drop_next("me")
    with pytest.raises(httpx.RemoteProtocolError):
        api.get("/auth/me")
    assert api.get("/auth/me").status_code == 200 and emu.count("me") == 2


def test_delay_then_answer_and_a_create_that_times_out_is_still_recorded(emu, api):
    emu.faults.delay("me", 0.3, count=1)
    started = time.monotonic()
    assert api.get("/auth/me").status_code == 200
    assert time.monotonic() - started >= 0.3 and emu.faults.take("delay", "me") is None
    emu.faults.delay("run_create", 2.0)
    with pytest.raises(httpx.ReadTimeout):
        api.post("/models/runflow/background-replace/runs", json=run_body(NOWHERE), timeout=0.2)
    assert emu.created_run_count == 1


def test_expire_output_urls(emu, api):
    emu.faults.expire_output_urls(1)
    done = wait_finished(api, create(api, upload(api, sample_zip())["url"])["id"])
    [url] = done["output"]["image_urls"]
    expired = plain_get(url)
    assert expired.status_code == 403 and b"Request has expired" in expired.content
    assert plain_get(url).status_code == 200


def test_output_shape_outputs(emu, api):
    emu.faults.output_shape = "outputs"
    done = wait_finished(api, create(api, upload(api, sample_zip())["url"])["id"])
    [item] = done["output"]["outputs"]
    assert item["type"] == "image" and plain_get(item["url"]).headers["content-type"] == "image/webp"


def test_status_spelling_older_docs(emu, api, receiver):
    emu.faults.status_spelling = "older-docs"
    emu.run_seconds = 0.6
    url = upload(api, sample_zip())["url"]
    seen = statuses_seen(api, create(api, url)["id"])
    assert seen == ["queued", "running", "succeeded"]
    emu.run_seconds = FAST["run_seconds"]
    emu.faults.fail_runs(1, status="canceled")
    run = create(api, NOWHERE, callback_url=receiver.url)
    assert wait_finished(api, run["id"])["status_code"] == "cancelled"
    [hit] = eventually(lambda: receiver.hits)
    assert json.loads(hit.body)["status"] == "cancelled" and json.loads(hit.body)["event"] == "run.cancelled"


def test_partial_success_leaves_out_an_output_of_multi_output_runs(emu, api, receiver):
    emu.faults.partial_success = True
    url = upload(api, sample_zip())["url"]
    single = wait_finished(api, create(api, url)["id"])
    assert single["status_code"] == "succeeded" and len(single["output"]["image_urls"]) == 1
    emu.faults.output_count = 3
    run = create(api, url, callback_url=receiver.url)
    done = wait_finished(api, run["id"])
    assert done["status_code"] == "partial_succeeded"
    assert [urlsplit(u).path.rsplit("/", 1)[1] for u in done["output"]["image_urls"]] == ["1.webp", "2.webp"]
    [hit] = eventually(lambda: receiver.hits)
    payload = json.loads(hit.body)
    assert (payload["event"], payload["status"]) == ("run.partial_succeeded", "partial_succeeded")
    assert len(payload["output"]["image_urls"]) == 2


def test_sdk_shape_adds_the_sdk_fields_beside_the_documented_ones(emu, api):
    emu.faults.sdk_shape = True
    emu.faults.fail_runs(1, status="errored", code="OOM", message="out of memory")
    url = upload(api, sample_zip())["url"]
    created = api.post("/models/runflow/background-replace/runs", json=run_body(url)).json()
    assert created["id"] == created["run_id"] == emu.runs()[0]["id"]
    assert created.keys() == RUN_FIELDS | {"run_id", "model", "finished_at", "error"}
    failed = wait_finished(api, created["id"])
    assert failed.keys() == RUN_FIELDS | {"model", "finished_at", "error"}
    assert failed["error"] == {"code": "OOM", "message": "out of memory"}
    assert (failed["failure_code"], failed["failure_message"]) == ("OOM", "out of memory")
    assert failed["finished_at"] == failed["completed_at"] and failed["model"] == "runflow/background-replace"
    succeeded = wait_finished(api, api.post("/models/runflow/background-replace/runs",
                                            json=run_body(url)).json()["id"])
    assert succeeded["error"] is None and succeeded["output"]


def test_knobs_refuse_typos_and_clear_resets():
    faults = Faults()
    with pytest.raises(ValueError):
        faults.fail_next("run_creat", 500)
    with pytest.raises(ValueError):
        faults.fail_runs(status="exploded")
    for name, value in (("output_shape", "image"), ("status_spelling", "alt"), ("partial_success", 1),
                        ("callback_retry_rule", "5xx")):
        with pytest.raises(ValueError):
            setattr(faults, name, value)
    with pytest.raises(ValueError):
        faults.drop_next("me", count=0)
    for name, value in (("output_names", "x.png"), ("output_names", ["a.png", ""]), ("output_count", -1),
                        ("output_count", "2"), ("output_content_type", 5), ("status_override", ""),
                        ("listing_lag", -1), ("listing_lag", "1"), ("listing_lag", True),
                        ("listing_lag", float("inf"))):
        with pytest.raises(ValueError):
            setattr(faults, name, value)
    for bad in (lambda: faults.corrupt_runs("garbled"), lambda: faults.corrupt_runs("not_json", endpoints=()),
                lambda: faults.corrupt_runs("not_json", endpoints=("run_list",)),
                lambda: faults.corrupt_runs("not_json", endpoints="run_get"),
                lambda: faults.truncate_outputs(0), lambda: faults.redirect_outputs(None)):
        with pytest.raises(ValueError):
            bad()
    faults.fail_next("me", 500, count=None)
    faults.sdk_shape = True
    faults.status_spelling, faults.partial_success = "older-docs", True
    faults.callback_retry_rule = "5xx-and-network"
    faults.output_names, faults.output_count, faults.output_content_type = ("a.png",), 2, "image/png"
    faults.status_override = "warming_up"
    faults.ignore_idempotency, faults.listing_lag = True, 2
    faults.truncate_outputs(), faults.huge_outputs(), faults.redirect_outputs("{url}")
    faults.corrupt_runs("not_json", endpoints=("run_get", "run_create"))
    assert faults.output_names == ["a.png"] and faults.override()[0] == "warming_up"
    faults.clear()
    assert faults.take("fail", "me") is None and faults.sdk_shape is False
    assert faults.shape() == Shape() and faults.callback_retry_rule == "any-failure"
    assert (faults.output_names, faults.output_count, faults.output_content_type) == (None, 1, None)
    assert faults.status_override is None and faults.override() is None
    assert faults.ignore_idempotency is False and faults.listing_lag == 0
    assert not any(faults.take(kind, "output") for kind in ("truncate", "huge", "redirect"))
    assert faults.take("corrupt", "run_get") is None and faults.take("corrupt", "run_create") is None


# -- hostile answers -------------------------------------------------------------------------

HOSTILE_NAMES = {  # name -> the filename the Content-Disposition header carries
    "../../x.png": "../../x.png",
    "/etc/passwd": "/etc/passwd",
    "a\x1b[31m\n.png": "a?[31m?.png",
    'say "hi"\\.png': 'say \\"hi\\"\\\\.png',
    "ünïcødé 🙂.webp": "ünïcødé 🙂.webp",
    "n" * 1000: "n" * 1000,
}


def test_output_names_are_served_with_their_hostile_names(emu, api):
    emu.faults.output_names = list(HOSTILE_NAMES)
    emu.faults.output_count = 3  # ignored while names are set
    done = succeeded_run(api)
    urls = done["output"]["image_urls"]
    assert len(urls) == len(HOSTILE_NAMES)
    images = set()
    for n, (url, (name, shown)) in enumerate(zip(urls, HOSTILE_NAMES.items()), start=1):
        assert url.startswith(f"{emu.base_url}/files/outputs/{done['id']}/{n}/{quote(name, safe='')}?sig=")
        answer = plain_get(url)
        assert answer.status_code == 200 and answer.headers["content-type"] == "image/webp"
        disposition = {key.lower(): value for key, value in answer.headers.raw}[b"content-disposition"]
        assert disposition == f'attachment; filename="{shown}"'.encode()
        images.add(answer.content)
    [image] = images
    assert Image.open(io.BytesIO(image)).format == "WEBP"
    forged = plain_get(urls[0].replace("x.png", "y.png"))
    assert forged.status_code == 403 and b"SignatureDoesNotMatch" in forged.content


def test_output_count_gives_each_run_that_many_outputs(emu, api):
    emu.faults.output_count = 3
    emu.faults.output_shape = "outputs"
    done = succeeded_run(api)
    urls = [item["url"] for item in done["output"]["outputs"]]
    assert [urlsplit(url).path.rsplit("/", 1)[1] for url in urls] == ["1.webp", "2.webp", "3.webp"]
    answers = [plain_get(url) for url in urls]
    assert [a.status_code for a in answers] == [200] * 3 and len({a.content for a in answers}) == 1
    assert "content-disposition" not in answers[0].headers
    emu.faults.output_count = 0
    assert api.get(f"/runs/{done['id']}").json()["output"] == {"outputs": []}


def test_truncated_outputs_promise_the_whole_body_and_hang_up(emu, api):
    [url] = succeeded_run(api)["output"]["image_urls"]
    full = plain_get(url).content
    emu.faults.truncate_outputs(2)
    with pytest.raises(httpx.RemoteProtocolError):
        plain_get(url)
    status, headers, body = raw_get(url)
    assert status == 200 and int(headers["content-length"]) == len(full)
    assert body == full[:len(full) // 2] and "connection" not in headers
    assert plain_get(url).content == full


def test_huge_outputs_claim_300_mb_and_send_a_few_kb(emu, api):
    [url] = succeeded_run(api)["output"]["image_urls"]
    full = plain_get(url).content
    emu.faults.huge_outputs()
    status, headers, body = raw_get(url)
    assert status == 200 and headers["content-length"] == "300000000"
    assert headers["content-type"] == "image/webp"
    assert 1024 <= len(body) <= 8192 and body.startswith(full[:12])
    assert plain_get(url).content == full


def test_redirected_outputs(emu, api):
    [url] = succeeded_run(api)["output"]["image_urls"]
    emu.faults.redirect_outputs("{url}", count=2)
    followed = plain_get(url, follow_redirects=True)
    assert followed.status_code == 200 and Image.open(io.BytesIO(followed.content)).format == "WEBP"
    assert [(r.status_code, r.headers["location"]) for r in followed.history] == [(302, url)] * 2
    emu.faults.redirect_outputs("ftp://example.com/x.webp", count=1)
    emu.faults.redirect_outputs("file:///etc/passwd")
    locations = [plain_get(url).headers.get("location") for _ in range(3)]
    assert locations == ["ftp://example.com/x.webp", "file:///etc/passwd", "file:///etc/passwd"]
    emu.faults.clear()
    assert plain_get(url).status_code == 200


def test_output_content_type_override(emu, api):
    emu.faults.output_content_type = "application/octet-stream"
    [url] = succeeded_run(api)["output"]["image_urls"]
    emu.faults.truncate_outputs()
    assert raw_get(url)[1]["content-type"] == "application/octet-stream"
    assert plain_get(url).headers["content-type"] == "application/octet-stream"
    emu.faults.output_content_type = "image/png"
    assert plain_get(url).headers["content-type"] == "image/png"


CORRUPT_CHECKS = {
    "not_json": lambda answer, run_id: (answer.headers["content-type"].startswith("text/html")
                                        and answer.text.startswith("<!DOCTYPE html>")),
    "not_object": lambda answer, run_id: answer.json()[0]["id"] == run_id,
    "missing_id": lambda answer, run_id: "id" not in answer.json() and "status_code" in answer.json(),
    "missing_status": lambda answer, run_id: answer.json().keys() == RUN_FIELDS - {"status_code"},
    "wrong_types": lambda answer, run_id: (
        type(answer.json()["id"]) is int and isinstance(answer.json()["status_code"], list)
        and answer.json()["output"].isdigit() and isinstance(answer.json()["cost"], dict)),
    "output_wrong_type": lambda answer, run_id: (
        (answer.json()["status_code"], answer.json()["output"], answer.json()["failure_code"])
        == ("succeeded", 42, None)),
}


@pytest.mark.parametrize("mode", CORRUPT_MODES)
def test_corrupt_run_reads(emu, api, mode):
    run = create(api, NOWHERE)
    emu.faults.corrupt_runs(mode, count=1)
    broken = api.get(f"/runs/{run['id']}")
    assert broken.status_code == 200 and CORRUPT_CHECKS[mode](broken, run["id"])
    assert api.get(f"/runs/{run['id']}").json()["id"] == run["id"]


def test_corrupt_creates_still_make_runs_that_finish(emu, api):
    url = upload(api, sample_zip())["url"]
    emu.faults.corrupt_runs("missing_id", count=2, endpoints=("run_create", "run_get"))
    created = api.post("/models/runflow/background-replace/runs", json=run_body(url))
    assert created.status_code == 201 and "id" not in created.json()
    [run] = emu.runs()
    assert "id" not in api.get(f"/runs/{run['id']}").json()  # the count is shared by both endpoints
    assert wait_finished(api, run["id"])["status_code"] == "succeeded"
    emu.faults.corrupt_runs("not_json", endpoints=("run_create",))
    for _ in range(2):
        html = api.post("/models/runflow/background-replace/runs", json=run_body(url))
        assert html.status_code == 201 and html.text.startswith("<!DOCTYPE html>")
    assert emu.created_run_count == 3 and api.get(f"/runs/{emu.runs()[-1]['id']}").json()["id"]


def test_status_override_holds_runs_until_cleared(emu, api, receiver):
    url = upload(api, sample_zip())["url"]
    before = wait_finished(api, create(api, url)["id"])
    emu.faults.status_override = "warming_up"
    run = create(api, url, callback_url=receiver.url)
    assert run["status_code"] == "warming_up"
    time.sleep(2 * FAST["run_seconds"])
    held = api.get(f"/runs/{run['id']}").json()
    assert (held["status_code"], held["output"], held["completed_at"]) == ("warming_up", None, None)
    assert api.get(f"/runs/{before['id']}").json()["status_code"] == "succeeded"
    assert api.post(f"/runs/{run['id']}/callback-redeliveries").status_code == 409
    emu.faults.status_override = "booting"  # a new spelling does not let held runs go
    assert api.get(f"/runs/{run['id']}").json()["status_code"] == "booting"
    assert not receiver.hits
    emu.faults.status_override = None
    assert wait_finished(api, run["id"])["status_code"] == "succeeded"
    [hit] = eventually(lambda: receiver.hits)
    assert json.loads(hit.body)["status"] == "succeeded"


def test_finish_runs_ends_a_long_run_at_once_with_its_output(emu, api, receiver):
    emu.run_seconds = 60
    run = create(api, upload(api, sample_zip())["url"], callback_url=receiver.url)
    assert api.get(f"/runs/{run['id']}").json()["status_code"] == "queued"
    emu.finish_runs()
    done = api.get(f"/runs/{run['id']}").json()
    assert done["status_code"] == "succeeded" and done["completed_at"] is not None
    assert done["started_at"] <= done["completed_at"] and done["duration_ms"] < 60_000
    [url] = done["output"]["image_urls"]
    assert Image.open(io.BytesIO(plain_get(url).content)).format == "WEBP"
    [hit] = eventually(lambda: receiver.hits)
    assert json.loads(hit.body)["status"] == "succeeded"
    emu.finish_runs()  # a finished run stays as it was
    assert api.get(f"/runs/{run['id']}").json() == done


def test_finish_runs_lets_go_of_runs_held_by_a_status_override(emu, api, receiver):
    emu.faults.status_override = "warming_up"
    url = upload(api, sample_zip())["url"]
    held = create(api, url, callback_url=receiver.url)
    failing = create(api, NOWHERE)
    time.sleep(2 * FAST["run_seconds"])
    assert api.get(f"/runs/{held['id']}").json()["status_code"] == "warming_up"
    emu.finish_runs()
    assert api.get(f"/runs/{held['id']}").json()["output"]["image_urls"]
    assert api.get(f"/runs/{failing['id']}").json()["failure_code"] == "INPUT_FETCH_FAILED"
    [hit] = eventually(lambda: receiver.hits)
    assert json.loads(hit.body)["status"] == "succeeded"
    later = create(api, url)  # the override still holds runs made afterwards
    time.sleep(2 * FAST["run_seconds"])
    assert api.get(f"/runs/{later['id']}").json()["status_code"] == "warming_up"


# -- callbacks -------------------------------------------------------------------------------

def settled_history(api: httpx.Client, run_id: str, deliveries: int = 1) -> list[dict]:
    """The run's callback history once that many deliveries have ended."""
    def settled():
        history = api.get(f"/runs/{run_id}/callback").json()
        return history if len(history) == deliveries and all(d["completed_at"] for d in history) else None

    return eventually(settled)


def test_callback_is_signed_and_shaped_without_polling(receiver):
    with Emulator(**FAST, callback_secret="whsec_test") as signed, \
            httpx.Client(base_url=f"{signed.base_url}/v1", headers=AUTH, timeout=5, verify=TLS) as client:
        run = create(client, upload(client, sample_zip())["url"], callback_url=receiver.url, metadata={"a": 1})
        [hit] = eventually(lambda: receiver.hits)
        payload = json.loads(hit.body)
        assert payload.keys() == {"event", "run_id", "status", "output", "duration_ms", "created_at",
                                  "completed_at", "metadata"}
        assert (payload["event"], payload["status"]) == ("run.completed", "succeeded")
        assert payload["run_id"] == run["id"]
        assert payload["output"]["image_urls"] and payload["metadata"] == {"a": 1}
        assert payload["created_at"].endswith("+00:00") and payload["completed_at"].endswith("+00:00")
        assert payload["duration_ms"] >= 200
        expected = hmac.new(b"whsec_test", hit.body, hashlib.sha256).hexdigest()
        assert hit.headers["runflow-signature"] == expected
        assert hit.headers["content-type"] == "application/json"
        assert hit.headers["runflow-request-id"].startswith("req_")
        [delivery] = settled_history(client, run["id"])
        assert delivery.keys() == DELIVERY_FIELDS and signed.callback_deliveries[0].body == hit.body
        assert delivery["run_id"] == run["id"] and delivery["callback_url"] == receiver.url
        assert delivery["is_automatic"] is True
        assert delivery["payload_bytes"] == hit.body.decode() and delivery["payload"] == payload
        assert delivery["signing_secret_id"] and delivery["status_code"] == "succeeded"
        assert (delivery["attempt_count"], delivery["max_attempts"]) == (1, 3)
        assert delivery["next_attempt_at"] is None
        assert (delivery["failure_reason_code"], delivery["failure_detail"]) == (None, None)
        assert delivery["completed_at"].endswith("Z")
        [attempt] = delivery["attempts"]
        assert attempt.keys() == ATTEMPT_FIELDS and attempt["delivery_id"] == delivery["id"]
        assert (attempt["attempt_number"], attempt["status_code"], attempt["error_message"]) == (1, 200, None)
        assert attempt["response_time_ms"] >= 0


def test_callback_unsigned_without_a_secret_and_canceled_runs_have_no_output(emu, api, receiver):
    emu.faults.fail_runs(1, status="canceled")
    run = create(api, NOWHERE, callback_url=receiver.url)
    [hit] = eventually(lambda: receiver.hits)
    payload = json.loads(hit.body)
    assert (payload["event"], payload["status"], payload["output"]) == ("run.cancelled", "canceled", None)
    assert "runflow-signature" not in hit.headers
    assert settled_history(api, run["id"])[0]["signing_secret_id"] is None


@pytest.mark.parametrize("status", ["failed", "errored"])
def test_failed_run_callbacks_carry_an_error_envelope(emu, api, receiver, status):
    emu.faults.fail_runs(1, status=status, code="MODEL_ERROR", message="model crashed")
    create(api, NOWHERE, callback_url=receiver.url)
    [hit] = eventually(lambda: receiver.hits)
    payload = json.loads(hit.body)
    assert (payload["event"], payload["status"]) == ("run.failed", status)
    assert payload["output"] == {"code": "MODEL_ERROR", "message": "model crashed"}


@pytest.mark.parametrize("answer", [500, 429, 404, 400, 302])
def test_callback_retried_after_any_non_2xx_answer(emu, api, receiver, answer):
    receiver.answers.append(answer)
    run = create(api, NOWHERE, callback_url=receiver.url)
    [delivery] = settled_history(api, run["id"])
    assert [a["status_code"] for a in delivery["attempts"]] == [answer, 200]
    assert delivery["status_code"] == "succeeded" and receiver.hits[0].body == receiver.hits[1].body


def test_the_model_pages_rule_retries_only_5xx_and_network_errors(emu, api, receiver):
    emu.faults.callback_retry_rule = "5xx-and-network"
    receiver.answers.extend([503, 400])
    run = create(api, NOWHERE, callback_url=receiver.url)
    [delivery] = settled_history(api, run["id"])
    assert [a["status_code"] for a in delivery["attempts"]] == [503, 400]
    assert (delivery["status_code"], delivery["failure_reason_code"]) == ("failed", "http_error")
    time.sleep(0.2)  # longer than the last retry delay
    assert len(receiver.hits) == 2


def test_unreachable_callback_is_tried_three_times(emu, api):
    run = create(api, NOWHERE, callback_url=f"http://127.0.0.1:{closed_port()}/hook")
    [delivery] = settled_history(api, run["id"])
    assert [a["attempt_number"] for a in delivery["attempts"]] == [1, 2, 3]
    assert all(a["status_code"] is None and a["error_message"] for a in delivery["attempts"])
    assert (delivery["status_code"], delivery["failure_reason_code"]) == ("failed", "network_error")
    assert delivery["failure_detail"] == delivery["attempts"][-1]["error_message"]


def test_a_callback_that_times_out_is_retried(emu, api, monkeypatch):
    monkeypatch.setattr(callbacks, "ATTEMPT_TIMEOUT", 0.1)
    with socket.socket() as silent:  # connections wait in its backlog and are never answered
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        run = create(api, NOWHERE, callback_url=f"http://127.0.0.1:{silent.getsockname()[1]}/hook")
        [delivery] = settled_history(api, run["id"])
    assert delivery["attempt_count"] == 3
    assert all("timed out" in a["error_message"] for a in delivery["attempts"])


def test_history_shows_a_delivery_waiting_for_its_retry(receiver):
    receiver.answers.append(500)
    with Emulator(api_key=KEY, run_seconds=0.2, callback_retry_delays=(30.0,)) as slow, \
            httpx.Client(base_url=f"{slow.base_url}/v1", headers=AUTH, timeout=5, verify=TLS) as client:
        run = create(client, NOWHERE, callback_url=receiver.url)
        [delivery] = eventually(lambda: [d for d in client.get(f"/runs/{run['id']}/callback").json()
                                         if d["attempt_count"] == 1])
        assert (delivery["status_code"], delivery["max_attempts"]) == ("pending", 2)
        assert delivery["completed_at"] is None
        assert delivery["next_attempt_at"] > delivery["attempts"][0]["created_at"]


def test_callback_redelivery(emu, api, receiver):
    run = create(api, upload(api, sample_zip())["url"], callback_url=receiver.url)
    eventually(lambda: receiver.hits)
    answer = api.post(f"/runs/{run['id']}/callback-redeliveries", json={})
    assert answer.status_code == 201
    redelivery = answer.json()
    assert redelivery.keys() == DELIVERY_FIELDS and redelivery["is_automatic"] is False
    assert redelivery["run_id"] == run["id"] and redelivery["max_attempts"] == 3
    eventually(lambda: len(receiver.hits) == 2)
    assert redelivery["payload_bytes"] == receiver.hits[1].body.decode()
    first, again = (json.loads(hit.body) for hit in receiver.hits)
    for payload in (first, again):  # a redelivery signs its output URLs afresh
        payload["output"]["image_urls"] = [urlsplit(url).path for url in payload["output"]["image_urls"]]
    assert first == again
    history = settled_history(api, run["id"], deliveries=2)
    assert [(d["is_automatic"], d["status_code"]) for d in history] == [(True, "succeeded"),
                                                                         (False, "succeeded")]
    assert history[1]["id"] == redelivery["id"]
    without = create(api, NOWHERE)
    assert api.post(f"/runs/{without['id']}/callback-redeliveries").status_code == 409
    assert api.get(f"/runs/{without['id']}/callback").json() == []


# -- admin cancel ----------------------------------------------------------------------------

def cancel(api: httpx.Client, run_id: str, **body) -> httpx.Response:
    return api.post(f"/admin/runs/{quote(run_id, safe='')}/cancellation", json=body or None)


def test_cancel_ends_an_unfinished_run_and_its_late_result_is_dropped(emu, api, receiver):
    emu.run_seconds = 60
    run = create(api, upload(api, sample_zip())["url"], callback_url=receiver.url)
    answer = cancel(api, run["id"], reason="stuck in the queue")
    assert answer.status_code == 201
    canceled = answer.json()
    assert canceled.keys() == RUN_FIELDS and canceled["status_code"] == "canceled"
    assert canceled["output"] is None and canceled["completed_at"] and canceled["failure_code"] is None
    [hit] = eventually(lambda: receiver.hits)
    payload = json.loads(hit.body)
    assert (payload["event"], payload["status"], payload["output"]) == ("run.cancelled", "canceled", None)
    time.sleep(0.5)  # the result computed meanwhile does not count
    assert api.get(f"/runs/{run['id']}").json() == canceled
    again = cancel(api, run["id"])
    assert again.status_code == 200 and again.json() == canceled
    time.sleep(0.1)
    assert len(receiver.hits) == 1


def test_cancel_leaves_a_finished_run_unchanged(emu, api, receiver):
    run = create(api, NOWHERE, callback_url=receiver.url)
    done = wait_finished(api, run["id"])
    eventually(lambda: receiver.hits)
    answer = cancel(api, run["id"], reason="too late")
    assert answer.status_code == 200 and answer.json() == done and done["status_code"] == "failed"
    time.sleep(0.2)
    assert len(receiver.hits) == 1


def test_cancel_refusals_held_runs_and_the_older_spelling(emu, api):
    emu.run_seconds = 60
    run = create(api, NOWHERE)
    for reason in ("no", "x" * 501, 5):
        answer = cancel(api, run["id"], reason=reason)
        assert answer.status_code == 422 and answer.json()["errors"][0]["field"] == "reason"
    missing = api.post("/admin/runs/no-such-run/cancellation")
    assert missing.status_code == 404 and missing.json()["code"] == "RUN_NOT_FOUND"
    emu.faults.status_spelling = "older-docs"
    assert cancel(api, run["id"]).json()["status_code"] == "cancelled"
    emu.faults.status_override = "warming_up"
    held = create(api, NOWHERE)
    assert cancel(api, held["id"]).status_code == 201
    assert api.get(f"/runs/{held['id']}").json()["status_code"] == "cancelled"


# -- lifecycle -------------------------------------------------------------------------------

def test_stop_closes_idle_connections_and_joins_threads():
    before = set(threading.enumerate())
    emulator = Emulator(**FAST, callback_secret="s").start()
    client = httpx.Client(base_url=f"{emulator.base_url}/v1", headers=AUTH, verify=TLS)
    assert client.get("/auth/me").status_code == 200
    create(client, NOWHERE, callback_url=f"http://127.0.0.1:{closed_port()}/hook")
    emulator.stop()
    assert not [t for t in set(threading.enumerate()) - before if t.name.startswith("runflow-emulator")]
    with pytest.raises(httpx.TransportError):
        client.get("/auth/me")
    client.close()


def test_stop_does_not_wait_out_long_runs():
    before = set(threading.enumerate())
    emulator = Emulator(**{**FAST, "run_seconds": 60}).start()
    hook = f"http://127.0.0.1:{closed_port()}/hook"
    with httpx.Client(base_url=f"{emulator.base_url}/v1", headers=AUTH, verify=TLS) as client:
        url = upload(client, sample_zip())["url"]
        for _ in range(3):
            create(client, url, callback_url=hook)
        emulator.faults.status_override = "warming_up"
        create(client, url, callback_url=hook)
    time.sleep(2 * FAST["run_seconds"])  # each run has its result and is waiting out its time
    assert [run["status_code"] for run in emulator.runs()] == ["warming_up"] * 4
    started = time.monotonic()
    emulator.stop()
    assert time.monotonic() - started < 1.0
    assert not [t for t in set(threading.enumerate()) - before if t.name.startswith("runflow-emulator")]
