"""`runflow-bg webhook verify` against callbacks the emulator really sends and signs."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from helpers import KEY, cli_env, run_cli, write_photo, write_scene, zip_bytes
from runflow_bg.client import RunflowClient
from runflow_bg.emulator import Emulator
from runflow_bg.webhook import is_valid, parse_event, sign

SECRET = "whsec_test_0f1e2d3c4b5a"


class Receiver:
    """A callback endpoint on loopback that keeps the raw bytes and headers of every POST."""

    def __init__(self) -> None:
        self.received: list[tuple[dict, bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append((dict(self.headers), body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/runflow"

    def wait_for(self, count: int = 1, timeout: float = 15.0) -> list[tuple[dict, bytes]]:
        deadline = time.monotonic() + timeout
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(self.received) >= count, "the emulator sent no callback"
        return self.received

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def emu():
    with Emulator(api_key=KEY, run_seconds=0.2, callback_secret=SECRET,
                  callback_retry_delays=(0.05, 0.1)) as server:
        yield server


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def env(emu, isolated_env):
    return cli_env(emu.base_url, isolated_env, RUNFLOW_WEBHOOK_SECRET=SECRET)


def callback(emu, receiver, tmp_path) -> tuple[str, bytes, str]:
    """Run the model with a callback URL; the run id, raw body and signature it POSTed."""
    photo, scene = write_photo(tmp_path / "p.png"), write_scene(tmp_path / "s.jpg")
    members = {"image.png": photo.read_bytes(), "reference.jpg": scene.read_bytes()}
    with RunflowClient(KEY, emu.base_url) as client:
        asset = client.upload(zip_bytes(members), "inputs.zip")
        run = client.create_run({"zip_url": asset.url, "file_image": "image.png",
                                 "file_reference": "reference.jpg"}, callback_url=receiver.url)
    headers, body = receiver.wait_for()[-1]
    return run.id, body, headers["Runflow-Signature"]


def test_a_real_callback_verifies(emu, receiver, env, tmp_path):
    run_id, body, signature = callback(emu, receiver, tmp_path)
    (tmp_path / "body.json").write_bytes(body)
    result = run_cli("webhook", "verify", "body.json", "--signature", signature, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == b"" and "Signature is valid." in result.stderr.decode()
    assert emu.callback_deliveries[0].body == body


def test_json_prints_the_verified_event(emu, receiver, env, tmp_path):
    run_id, body, signature = callback(emu, receiver, tmp_path)
    result = run_cli("webhook", "verify", "-", "--signature", signature, "--json",
                     stdin=body, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    event = json.loads(result.stdout)
    assert event["event"] == "run.completed" and event["run_id"] == run_id
    assert event["status"] == "succeeded" and event["output"]["image_urls"]


def test_body_from_stdin_without_a_dash(emu, receiver, env, tmp_path):
    _, body, signature = callback(emu, receiver, tmp_path)
    result = run_cli("webhook", "verify", "--signature", signature, stdin=body, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr.decode()


def test_a_failed_run_callback_verifies(emu, receiver, env, tmp_path):
    emu.faults.fail_runs(1, code="MODEL_ERROR", message="model crashed")
    run_id, body, signature = callback(emu, receiver, tmp_path)
    result = run_cli("webhook", "verify", "-", "--signature", signature, "--json",
                     stdin=body, env=env, cwd=tmp_path)
    event = json.loads(result.stdout)
    assert event["event"] == "run.failed"
    assert event["output"] == {"code": "MODEL_ERROR", "message": "model crashed"}


def test_a_changed_body_exits_4(emu, receiver, env, tmp_path):
    _, body, signature = callback(emu, receiver, tmp_path)
    tampered = body.replace(b'"succeeded"', b'"succeedeD"')
    assert tampered != body
    result = run_cli("webhook", "verify", "-", "--signature", signature, "--json",
                     stdin=tampered, env=env, cwd=tmp_path)
    assert result.returncode == 4 and result.stdout == b""
    assert "The signature does not match the body" in result.stderr.decode()
    assert SECRET not in result.stderr.decode()


def test_re_encoded_json_exits_4(emu, receiver, env, tmp_path):
    _, body, signature = callback(emu, receiver, tmp_path)
    reencoded = json.dumps(json.loads(body), indent=2).encode()
    result = run_cli("webhook", "verify", "-", "--signature", signature, stdin=reencoded,
                     env=env, cwd=tmp_path)
    assert result.returncode == 4 and "raw bytes" in result.stderr.decode()


def test_another_secret_exits_4(emu, receiver, env, tmp_path):
    _, body, signature = callback(emu, receiver, tmp_path)
    env["RUNFLOW_WEBHOOK_SECRET"] = "whsec_someone_else"
    result = run_cli("webhook", "verify", "-", "--signature", signature, stdin=body, env=env,
                     cwd=tmp_path)
    assert result.returncode == 4


def test_secret_env_names_the_variable(emu, receiver, env, tmp_path):
    _, body, signature = callback(emu, receiver, tmp_path)
    env["RUNFLOW_WEBHOOK_SECRET"] = "whsec_wrong"
    env["SHOP_HOOK_SECRET"] = SECRET
    result = run_cli("webhook", "verify", "-", "--signature", signature, "--secret-env",
                     "SHOP_HOOK_SECRET", stdin=body, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr.decode()


def test_missing_secret_exits_2_naming_the_variable(tmp_path, isolated_env):
    env = cli_env(None, isolated_env)
    result = run_cli("webhook", "verify", "-", "--signature", "00", stdin=b"{}", env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert "RUNFLOW_WEBHOOK_SECRET is not set" in result.stderr.decode()
    result = run_cli("webhook", "verify", "-", "--signature", "00", "--secret-env", "HOOK",
                     stdin=b"{}", env=env, cwd=tmp_path)
    assert result.returncode == 2 and "HOOK is not set" in result.stderr.decode()


@pytest.mark.parametrize("signature", ["", "zz-not-hex", "é" * 64, sign(SECRET, b"other")])
def test_malformed_or_foreign_signatures_exit_4(tmp_path, isolated_env, signature):
    env = cli_env(None, isolated_env, RUNFLOW_WEBHOOK_SECRET=SECRET)
    result = run_cli("webhook", "verify", "-", "--signature", signature, stdin=b'{"event": "x"}',
                     env=env, cwd=tmp_path)
    assert result.returncode == 4, result.stderr.decode()


def test_missing_body_file_exits_4_and_missing_signature_exits_2(tmp_path, isolated_env):
    env = cli_env(None, isolated_env, RUNFLOW_WEBHOOK_SECRET=SECRET)
    result = run_cli("webhook", "verify", "nope.json", "--signature", "00", env=env, cwd=tmp_path)
    assert result.returncode == 4 and "nope.json: no such file" in result.stderr.decode()
    result = run_cli("webhook", "verify", "nope.json", env=env, cwd=tmp_path)
    assert result.returncode == 2 and "--signature" in result.stderr.decode()


def test_a_body_too_large_for_a_callback_is_refused_unread(tmp_path, isolated_env):
    env = cli_env(None, isolated_env, RUNFLOW_WEBHOOK_SECRET=SECRET)
    body = b" " * (2 * 1024 * 1024)
    (tmp_path / "big.json").write_bytes(body)
    for args, stdin in ((["big.json"], None), (["-"], body)):
        result = run_cli("webhook", "verify", *args, "--signature", sign(SECRET, body),
                         stdin=stdin, env=env, cwd=tmp_path)
        assert result.returncode == 4 and "too large for a callback body" in result.stderr.decode()


def test_json_of_a_signed_body_that_is_not_json_exits_4(tmp_path, isolated_env):
    env = cli_env(None, isolated_env, RUNFLOW_WEBHOOK_SECRET=SECRET)
    body = b"not json"
    result = run_cli("webhook", "verify", "-", "--signature", sign(SECRET, body), "--json",
                     stdin=body, env=env, cwd=tmp_path)
    assert result.returncode == 4 and "not JSON" in result.stderr.decode()


def test_verification_is_over_raw_bytes_and_case_insensitive_in_hex():
    body = b'{"event": "run.completed"}'
    signature = sign(SECRET, body)
    assert len(signature) == 64 and signature == signature.lower()
    assert is_valid(SECRET, body, signature.upper())
    assert is_valid(SECRET, body, f" {signature}\n")
    assert not is_valid(SECRET, body + b" ", signature)
    assert not is_valid(SECRET.removeprefix("whsec_"), body, signature), "the prefix is part of the key"
    assert parse_event(body) == {"event": "run.completed"}
