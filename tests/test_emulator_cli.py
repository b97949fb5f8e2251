"""`runflow-bg emulator` as users run it: a real server process that scripts can point at."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import httpx
import pytest

from helpers import cli_env, run_cli, sample_zip, write_photo, write_scene


@pytest.fixture
def server(tmp_path, isolated_env):
    """Start the emulator on a free port with a fault knob; yield (process, base_url, key)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "runflow_bg", "emulator", "--port", "0", "--run-seconds", "0.2",
         "--fail", "run_get=503x1@0", "--output-shape", "outputs"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=cli_env(None, isolated_env, key=None))
    base_url = process.stdout.readline().strip().split("=", 1)[1]
    key = process.stdout.readline().strip().split("=", 1)[1]
    yield process, base_url, key
    if process.poll() is None:
        process.kill()
        process.wait()


def test_serves_until_sigterm_and_prints_how_to_use_it(server, tmp_path, isolated_env):
    process, base_url, key = server
    assert base_url.startswith("http://127.0.0.1:") and key.startswith("rf_emu_")
    assert httpx.get(f"{base_url}/v1/health").json()["ok"] is True
    assert httpx.get(f"{base_url}/v1/auth/me").status_code == 401
    write_photo(tmp_path / "bottle.png")
    write_scene(tmp_path / "scene.jpg")
    result = run_cli("replace", "bottle.png", "scene.jpg", env=cli_env(base_url, isolated_env, key),
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    assert (tmp_path / "bottle-bg.webp").exists()
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0
    assert process.stdout.read() == ""  # two lines only, without --tls
    assert "emulator stopped" in process.stderr.read()


def test_ctrl_c_stops_it(server):
    process, base_url, _ = server
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=10) == 0


def test_ignore_idempotency_and_listing_lag(isolated_env):
    process = subprocess.Popen(
        [sys.executable, "-m", "runflow_bg", "emulator", "--port", "0", "--ignore-idempotency",
         "--listing-lag", "30"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=cli_env(None, isolated_env, key=None))
    try:
        base_url = process.stdout.readline().strip().split("=", 1)[1]
        key = process.stdout.readline().strip().split("=", 1)[1]
        body = {"input": {"zip_url": "http://127.0.0.1:9/inputs.zip", "file_image": "image.png",
                          "file_reference": "reference.png"}, "client_ref": "x"}
        with httpx.Client(base_url=f"{base_url}/v1", headers={"Authorization": f"Bearer {key}"},
                          timeout=5) as api:
            ids = {api.post("/models/runflow/background-replace/runs", json=body,
                            headers={"Idempotency-Key": "x"}).json()["id"] for _ in range(2)}
            assert len(ids) == 2  # the same key and body made two runs
            assert api.get("/runs", params={"q": "client_ref.EQ:'x'"}).json()["items"] == []
            assert all(api.get(f"/runs/{run_id}").status_code == 200 for run_id in ids)
    finally:
        process.kill()
        process.wait()


def test_status_and_output_knobs(isolated_env):
    process = subprocess.Popen(
        [sys.executable, "-m", "runflow_bg", "emulator", "--port", "0", "--run-seconds", "0.1",
         "--status-spelling", "older-docs", "--fail-runs", "1", "--fail-status", "canceled",
         "--output-count", "2", "--partial-success", "--callback-retry-rule", "5xx-and-network"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=cli_env(None, isolated_env, key=None))
    try:
        base_url = process.stdout.readline().strip().split("=", 1)[1]
        key = process.stdout.readline().strip().split("=", 1)[1]
        with httpx.Client(base_url=f"{base_url}/v1", headers={"Authorization": f"Bearer {key}"},
                          timeout=5) as api:
            data = sample_zip()
            session = api.post("/asset-uploads", json={"filename": "inputs.zip", "size_bytes": len(data),
                                                       "mime_type": "application/zip"}).json()
            assert httpx.put(session["upload_url"], content=data).status_code == 200
            asset = api.post(f"/asset-uploads/{session['asset_id']}/confirmations", json={}).json()
            body = {"input": {"zip_url": asset["url"], "file_image": "image.png",
                              "file_reference": "reference.png"}}
            ids = [api.post("/models/runflow/background-replace/runs", json=body).json()["id"]
                   for _ in range(2)]
            deadline = time.monotonic() + 10
            while True:
                canceled, partial = (api.get(f"/runs/{run_id}").json() for run_id in ids)
                if partial["completed_at"] or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
        assert canceled["status_code"] == "cancelled"
        assert partial["status_code"] == "partial_succeeded" and len(partial["output"]["image_urls"]) == 1
    finally:
        process.kill()
        process.wait()


@pytest.mark.parametrize("args,needle", [
    (["--fail", "run_create"], "Invalid --fail"),
    (["--fail", "run_create=99"], "Invalid --fail"),
    (["--delay", "run_get=soon"], "Invalid --delay"),
    (["--fail-status", "exploded"], "Invalid --fail-status"),
    (["--output-shape", "xml"], "Invalid --output-shape"),
    (["--output-count", "-1"], "Invalid --output-count"),
    (["--status-spelling", "alt"], "Invalid --status-spelling"),
    (["--callback-retry-rule", "5xx"], "Invalid --callback-retry-rule"),
    (["--listing-lag", "-1"], "Invalid --listing-lag"),
    (["--listing-lag", "nan"], "Invalid --listing-lag"),
])
def test_bad_knobs_exit_2(tmp_path, isolated_env, args, needle):
    result = run_cli("emulator", "--port", "0", *args, env=cli_env(None, isolated_env, key=None),
                     cwd=tmp_path, timeout=30)
    assert result.returncode == 2 and needle in result.stderr.decode()


def test_port_in_use_exits_2(server, tmp_path, isolated_env):
    _, base_url, _ = server
    port = base_url.rsplit(":", 1)[1]
    result = run_cli("emulator", "--port", port, env=cli_env(None, isolated_env, key=None),
                     cwd=tmp_path, timeout=30)
    assert result.returncode == 2 and "Cannot listen" in result.stderr.decode()
