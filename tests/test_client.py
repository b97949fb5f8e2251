"""RunflowClient against the built-in emulator over real sockets, one test per path."""

from __future__ import annotations

import io
import socket
import time
from decimal import Decimal

import httpx
import pytest
from PIL import Image

from helpers import QuickClock, sample_zip
from runflow_bg.client import MODEL, RunflowClient, model_path
from runflow_bg.emulator import Emulator
from runflow_bg.errors import (
    CreateUnknown,
    AuthError,
    ExitCode,
    InputError,
    InsufficientCredit,
    ProtocolError,
    RunNotFound,
    UnavailableError,
    UsageError,
)
from runflow_bg.models import RunState
from runflow_bg.transport import RetryPolicy

KEY = "rf_test_client_key_1234"
FAST_RETRY = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05, jitter=0.0)




@pytest.fixture
def emu():
    with Emulator(api_key=KEY, run_seconds=0.2, callback_retry_delays=(0.05, 0.1)) as server:
        yield server


@pytest.fixture
def log_lines():
    return []


@pytest.fixture
def client(emu, log_lines):
    with RunflowClient(KEY, emu.base_url, retry=FAST_RETRY, log=log_lines.append,
                       clock=QuickClock()) as c:
        yield c


def assert_no_secret(text: str) -> None:
    assert KEY not in text
    assert "sig=" not in text and "expires=" not in text


def wait_finished(client: RunflowClient, run_id: str, deadline: float = 10.0):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        run = client.get_run(run_id)
        if run.finished:
            return run
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} did not finish")


def upload_and_create(client: RunflowClient, **kwargs):
    asset = client.upload(sample_zip(), "inputs.zip")
    return client.create_run({"zip_url": asset.url, "file_image": "image.png",
                              "file_reference": "reference.png"}, **kwargs)


# -- health, auth, balance ------------------------------------------------------------------

def test_health_needs_no_key(emu):
    with RunflowClient(None, emu.base_url, retry=FAST_RETRY) as anonymous:
        assert anonymous.health() is True


def test_me_with_the_right_key(client):
    assert isinstance(client.me(), dict)


def test_wrong_key_is_refused_with_exit_3(emu):
    with RunflowClient("rf_wrong", emu.base_url, retry=FAST_RETRY) as bad:
        with pytest.raises(AuthError) as info:
            bad.me()
    assert info.value.exit_code == ExitCode.AUTH
    assert "401" in info.value.message and "rf_wrong" not in info.value.message
    assert info.value.request_id and info.value.request_id.startswith("req_")


def test_missing_key_fails_before_any_request(emu):
    with RunflowClient(None, emu.base_url, retry=FAST_RETRY) as anonymous:
        with pytest.raises(AuthError) as info:
            anonymous.create_run({"zip_url": "x", "file_image": "a", "file_reference": "b"})
    assert "RUNFLOW_API_KEY" in info.value.hint
    assert emu.count("run_create") == 0


@pytest.mark.parametrize("key", ["rf live", "rf_live\n", "rf\x00x"])
def test_malformed_keys_are_refused(emu, key):
    with pytest.raises(AuthError):
        RunflowClient(key, emu.base_url)


def test_plain_http_base_url_is_refused_unless_loopback():
    with pytest.raises(UsageError):
        RunflowClient(KEY, "http://api.example.com")
    RunflowClient(KEY, "http://localhost:1").close()
    RunflowClient(KEY, "http://[::1]:1/v1/").close()


def test_balance(emu, client):
    emu.set_balance("12.34")
    assert client.balance() == Decimal("12.34")
    emu.set_balance(None)
    assert client.balance() is None


# -- uploads --------------------------------------------------------------------------------

def test_upload_never_sends_the_key_to_storage(emu, client):
    progress = []
    asset = client.upload(sample_zip(), "inputs.zip", on_bytes=lambda done, total: progress.append(done))
    assert asset.url.startswith(emu.base_url) and asset.id
    assert emu.storage_saw_authorization is False
    puts = [r for r in emu.requests if r.endpoint == "storage_put"]
    assert puts and not any(r.had_authorization for r in puts)
    assert progress[-1] == len(sample_zip())
    assert httpx.get(asset.url).content == sample_zip()


def test_expired_upload_url_starts_a_new_session(emu, client):
    emu.faults.expire_upload_urls(1)
    asset = client.upload(sample_zip(), "inputs.zip")
    assert asset.url
    assert emu.count("asset_create") == 2 and emu.count("asset_confirm") == 1


def test_storage_5xx_is_retried(emu, client):
    emu.faults.fail_next("storage_put", 503, count=2)
    client.upload(sample_zip(), "inputs.zip")
    assert emu.count("storage_put") == 3 and emu.count("asset_create") == 1


def test_confirmation_5xx_is_retried(emu, client):
    emu.faults.fail_next("asset_confirm", 502)
    client.upload(sample_zip(), "inputs.zip")
    assert emu.count("asset_confirm") == 2


def test_oversized_upload_is_refused_locally(emu, client):
    with pytest.raises(InputError) as info:
        client.upload(b"\0" * (50 * 1024 * 1024 + 1), "big.zip")
    assert info.value.exit_code == ExitCode.BAD_INPUT and "50 MiB" in info.value.message
    assert emu.count("asset_create") == 0


def test_fresh_asset_url(emu, client):
    asset = client.upload(sample_zip(), "inputs.zip")
    assert httpx.get(client.signed_asset_url(asset.id)).content == sample_zip()


def test_non_https_upload_url_is_refused():
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(201, json={"asset_id": "a", "upload_url": "http://storage.example/u?sig=s"})

    with RunflowClient(KEY, "https://api.example", transport=httpx.MockTransport(handler)) as c:
        with pytest.raises(ProtocolError) as info:
            c.upload(b"zip", "inputs.zip")
    assert "storage.example/u" in info.value.message
    assert_no_secret(info.value.message)


# -- runs -----------------------------------------------------------------------------------

def test_run_succeeds_and_its_output_downloads(emu, client):
    run = upload_and_create(client, metadata={"sku": "A1"})
    assert run.status == "queued" and run.client_ref.startswith("rfbg-")
    done = wait_finished(client, run.id)
    assert done.state is RunState.SUCCEEDED and done.metadata == {"sku": "A1"}
    assert len(done.output_urls) == 1
    sink = io.BytesIO()
    fetched = client.download(done.output_urls[0], sink)
    assert fetched.content_type == "image/webp" and fetched.size == len(sink.getvalue())
    assert Image.open(io.BytesIO(sink.getvalue())).size == (64, 48)


def test_model_path_encodes_segments_and_refuses_dot_segments():
    assert model_path(MODEL) == "/models/runflow/background-replace/runs"
    assert model_path("a/b c/d") == "/models/a/b%20c/d/runs"
    for bad in ("runflow", "runflow//x", "runflow/..", "./x"):
        with pytest.raises(UsageError):
            model_path(bad)


def test_dropped_create_ends_with_exactly_one_run(emu, client):
    emu.faults.drop_after_create(1)
    run = upload_and_create(client)
    assert emu.created_run_count == 1
    assert run.id == emu.runs()[0]["id"]
    assert emu.count("run_create") == 1 and emu.count("run_list") >= 1


def test_create_read_timeout_looks_up_instead_of_paying_twice(emu):
    emu.faults.delay("run_create", 1.5, count=1)
    with RunflowClient(KEY, emu.base_url, retry=FAST_RETRY, timeout=0.5) as c:
        run = upload_and_create(c)
    assert emu.created_run_count == 1 and run.id == emu.runs()[0]["id"]


def test_create_500_without_a_run_is_unknown_never_created_again(emu, client):
    emu.faults.fail_next("run_create", 500)
    with pytest.raises(CreateUnknown) as info:
        upload_and_create(client)
    assert info.value.exit_code == ExitCode.CREATE_UNKNOWN and "unknown" in info.value.message
    assert emu.created_run_count == 0 and emu.count("run_create") == 1
    # looked for over the whole grace window, not once
    assert emu.count("run_list") == 1 + int(client.create_grace // 2)


def test_every_create_carries_its_client_ref_as_idempotency_key():
    seen = []

    def handler(request):
        seen.append(request.headers.get("Idempotency-Key"))
        return httpx.Response(201, json={"id": "run-1", "status_code": "queued",
                                         "client_ref": "rfbg-key-1"})

    with RunflowClient(KEY, "https://api.example", transport=httpx.MockTransport(handler)) as c:
        run = c.create_run({"zip_url": "https://x/inputs.zip"}, client_ref="rfbg-key-1")
    assert seen == ["rfbg-key-1"] and run.client_ref == "rfbg-key-1"


def test_create_503_with_retry_after_is_retried_without_lookup(emu, client):
    emu.faults.fail_next("run_create", 503, count=2, retry_after=0)
    upload_and_create(client)
    assert emu.count("run_create") == 3 and emu.count("run_list") == 0
    assert emu.created_run_count == 1


def test_create_rate_limited_to_the_end_fails_with_exit_5(emu, client):
    emu.faults.fail_next("run_create", 429, count=100, retry_after=0)
    with pytest.raises(UnavailableError) as info:
        upload_and_create(client)
    assert info.value.exit_code == ExitCode.UNAVAILABLE
    assert "No run was created" in info.value.message
    # a 429 created nothing, so it is worth more patience than other failures
    assert emu.created_run_count == 0
    assert emu.count("run_create") == FAST_RETRY.rate_limited_attempts


def test_create_lookup_failure_never_creates_blindly(emu, client):
    emu.faults.fail_next("run_create", 502)
    emu.faults.fail_next("run_list", 503, count=1000, retry_after=0)
    with pytest.raises(CreateUnknown) as info:
        upload_and_create(client)
    assert "unknown" in info.value.message and "same command again" in info.value.hint
    assert emu.count("run_create") == 1


def test_insufficient_credit_is_exit_8_and_not_retried(emu, client):
    emu.set_balance("0.10")
    with pytest.raises(InsufficientCredit) as info:
        upload_and_create(client)
    assert info.value.exit_code == ExitCode.CREDIT and "402" in info.value.message
    assert emu.count("run_create") == 1


def test_invalid_create_is_exit_4_with_the_field(emu, client):
    with pytest.raises(InputError) as info:
        client.create_run({"zip_url": "", "file_image": "image.png", "file_reference": "reference.png"})
    assert info.value.exit_code == ExitCode.BAD_INPUT and "zip_url" in info.value.message
    assert emu.count("run_create") == 1


def test_unknown_run_is_run_not_found(client):
    with pytest.raises(RunNotFound) as info:
        client.get_run("00000000-0000-0000-0000-000000000000")
    assert info.value.exit_code == ExitCode.BAD_INPUT and "RUN_NOT_FOUND" in info.value.message


def test_reads_retry_5xx_then_succeed(emu, client):
    run = upload_and_create(client)
    emu.faults.fail_next("run_get", 502, count=2)
    assert client.get_run(run.id).id == run.id
    assert emu.count("run_get") == 3


def test_reads_give_up_with_exit_5(emu, client):
    emu.faults.fail_next("me", 504, count=100)
    with pytest.raises(UnavailableError) as info:
        client.me()
    assert "504" in info.value.message and emu.count("me") == FAST_RETRY.max_attempts


def test_other_4xx_are_not_retried(emu, client):
    emu.faults.fail_next("me", 400)
    with pytest.raises(InputError):
        client.me()
    assert emu.count("me") == 1


def test_forbidden_is_exit_3_with_a_scope_hint(emu, client):
    emu.faults.fail_next("run_get", 403)
    with pytest.raises(AuthError) as info:
        client.get_run("whatever")
    assert "scope" in info.value.hint


def test_rate_limit_honours_retry_after(emu):
    emu.faults.fail_next("me", 429, retry_after=0.3)
    clock = QuickClock()
    with RunflowClient(KEY, emu.base_url, retry=FAST_RETRY, clock=clock) as c:
        c.me()
    assert clock.sleeps == [0.3]


def test_connection_refused_is_exit_5_after_retries():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    clock = QuickClock()
    with RunflowClient(KEY, f"http://127.0.0.1:{port}", retry=FAST_RETRY, clock=clock) as c:
        with pytest.raises(UnavailableError) as info:
            c.me()
    assert "refused" in info.value.message and len(clock.sleeps) == FAST_RETRY.max_attempts - 1


def test_list_runs_filters_by_client_ref_and_pages(emu, client):
    runs = [upload_and_create(client, client_ref=f"ref-{i}") for i in range(3)]
    found = client.find_run_by_client_ref("ref-1")
    assert found is not None and found.id == runs[1].id
    assert client.find_run_by_client_ref("nope") is None
    first = client.list_runs(limit=2)
    assert len(first.items) == 2 and first.next_cursor
    second = client.list_runs(limit=2, cursor=first.next_cursor)
    assert {r.id for r in first.items + second.items} == {r.id for r in runs}


# -- every shape the emulator can be told to speak ----------------------------------------

def test_outputs_shape(emu, client):
    emu.faults.output_shape = "outputs"
    run = wait_finished(client, upload_and_create(client).id)
    assert len(run.output_urls) == 1 and run.raw["output"].get("outputs")


def test_every_documented_status_on_the_way(emu, client):
    emu.run_seconds = 1.0  # 0.1 s of it dispatching
    run = upload_and_create(client)
    seen = set()
    end = time.monotonic() + 10
    while time.monotonic() < end:
        current = client.get_run(run.id)
        seen.add(current.status)
        if current.finished:
            break
        time.sleep(0.005)
    assert current.status == "succeeded" and current.state is RunState.SUCCEEDED
    assert seen <= {"queued", "dispatching", "running", "succeeded"} and "dispatching" in seen


def test_partial_success_of_a_multi_output_run(emu, client):
    emu.faults.partial_success, emu.faults.output_count = True, 3
    done = wait_finished(client, upload_and_create(client).id)
    assert done.status == "partial_succeeded" and done.state is RunState.SUCCEEDED
    assert len(done.output_urls) == 2


def test_older_docs_spelling_of_canceled_runs(emu, client):
    emu.faults.status_spelling = "older-docs"
    emu.faults.fail_runs(1, status="canceled", code="CANCELED", message="canceled by an admin")
    done = wait_finished(client, upload_and_create(client).id)
    assert done.status == "cancelled" and done.state is RunState.FAILED


def test_sdk_shape(emu, client):
    emu.faults.sdk_shape = True
    emu.faults.fail_runs(1, status="errored", code="OOM", message="out of memory")
    run = upload_and_create(client)
    assert run.id == emu.runs()[0]["id"]
    done = wait_finished(client, run.id)
    assert done.state is RunState.FAILED and done.failure_code == "OOM"
    assert done.failure_message == "out of memory" and done.completed_at


@pytest.mark.parametrize("status", ["failed", "errored", "canceled", "cancelled"])
def test_failed_runs(emu, client, status):
    emu.faults.fail_runs(1, status=status, code="MODEL_ERROR", message="model crashed")
    done = wait_finished(client, upload_and_create(client).id)
    assert done.status == status and done.state is RunState.FAILED
    assert done.output_urls == ()


def test_zip_that_is_not_a_zip_fails_the_run(emu, client):
    asset = client.upload(b"this is not a zip", "inputs.zip")
    run = client.create_run({"zip_url": asset.url, "file_image": "image.png",
                             "file_reference": "reference.png"})
    done = wait_finished(client, run.id)
    assert done.state is RunState.FAILED and done.failure_code == "INVALID_INPUT_ZIP"


def test_missing_member_fails_the_run(emu, client):
    asset = client.upload(sample_zip(), "inputs.zip")
    run = client.create_run({"zip_url": asset.url, "file_image": "nope.png",
                             "file_reference": "reference.png"})
    done = wait_finished(client, run.id)
    assert done.failure_code == "INPUT_FILE_NOT_FOUND" and "nope.png" in done.failure_message


def test_log_never_holds_the_key_or_a_signature(emu, client, log_lines):
    emu.faults.fail_next("run_get", 500)
    run = upload_and_create(client)
    wait_finished(client, run.id)
    assert log_lines
    for line in log_lines:
        assert_no_secret(line)


def test_a_lost_create_listed_late_is_found_within_the_grace_window(emu, client):
    emu.faults.drop_after_create(1)
    emu.faults.listing_lag = 0.3  # the service is still writing the run when first looked up
    run = upload_and_create(client)
    assert emu.created_run_count == 1 and emu.count("run_create") == 1
    assert run.id == emu.runs()[0]["id"] and emu.count("run_list") >= 2


def test_a_conflict_on_the_idempotency_key_is_looked_up_never_created_again(emu, client):
    first = upload_and_create(client, client_ref="rfbg-same-key")
    again = client.create_run({"zip_url": "https://elsewhere.example/other.zip",
                               "file_image": "a.png", "file_reference": "b.png"},
                              client_ref="rfbg-same-key")
    assert again.id == first.id and emu.created_run_count == 1
    assert emu.count("run_create") == 2 and emu.count("run_list") >= 1


def test_a_create_sent_again_with_its_key_replays_the_same_run(emu, client):
    """What taking over a dead process's create relies on when the service honours the key."""
    asset = client.upload(sample_zip(), "inputs.zip")
    run_input = {"zip_url": asset.url, "file_image": "image.png", "file_reference": "reference.png"}
    first = client.create_run(run_input, client_ref="rfbg-replay")
    again = client.create_run(run_input, client_ref="rfbg-replay")
    assert again.id == first.id and emu.created_run_count == 1
    keys = [r.headers.get("Idempotency-Key") for r in emu.requests if r.endpoint == "run_create"]
    assert keys == ["rfbg-replay", "rfbg-replay"]


@pytest.mark.parametrize("code,needle", [
    ("EMAIL_NOT_VERIFIED", "Confirm your email"),
    ("ORGANIZATION_MEMBERSHIP_REQUIRED", "not a member of the organisation"),
    ("ROLE_UNRESOLVED", "role"),
    ("IMPERSONATION_READ_ONLY", "only read"),
    ("PERMISSION_DENIED", "scope"),
])
def test_each_403_code_gets_its_own_hint(emu, client, code, needle):
    emu.faults.fail_next("run_get", 403, body={"code": code, "message": "no"})
    with pytest.raises(AuthError) as info:
        client.get_run("whatever")
    assert needle in info.value.hint and code in info.value.message
