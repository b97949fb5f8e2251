"""The emulator over https (`--tls`): what SDKs that refuse plain-http upload URLs need."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile

import httpx
import pytest
from PIL import Image

from helpers import KEY, QuickClock, cli_env, run_cli, run_process, sample_zip, write_photo, write_scene
from runflow_bg.client import RunflowClient
from runflow_bg.emulator import Emulator
from runflow_bg.transport import RetryPolicy

FAST_RETRY = RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=0.05, jitter=0.0)
INPUT = {"file_image": "image.png", "file_reference": "reference.png"}


class Recording(httpx.HTTPTransport):
    """An httpx transport that notes every URL it is asked for."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.urls: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.urls.append(str(request.url))
        return super().handle_request(request)


@pytest.fixture
def tls_emu():
    with Emulator(api_key=KEY, run_seconds=0.3, tls=True) as server:
        yield server


@pytest.fixture
def trusting(tls_emu):
    """A recording transport that trusts the emulator's CA, and nothing else."""
    return Recording(verify=ssl.create_default_context(cafile=tls_emu.ca_file))


def test_client_uploads_creates_waits_and_downloads_over_https_only(tls_emu, trusting):
    with RunflowClient(KEY, tls_emu.base_url, transport=trusting, retry=FAST_RETRY,
                       clock=QuickClock()) as client:
        asset = client.upload(sample_zip(), "inputs.zip")
        run = client.create_run({"zip_url": asset.url, **INPUT})
        tls_emu.finish_runs()
        done = client.get_run(run.id)
        sink = io.BytesIO()
        client.download(done.output_urls[0], sink)
    assert done.status == "succeeded" and Image.open(sink).size == (64, 48)
    assert tls_emu.base_url.startswith("https://127.0.0.1:")
    assert {"asset_create", "storage_put", "asset_confirm", "run_create", "run_get", "output"} <= {
        record.endpoint for record in tls_emu.requests}
    handed_out = [asset.url, *done.output_urls]
    assert all(url.startswith(f"{tls_emu.base_url}/") for url in trusting.urls + handed_out)
    assert any("/storage/uploads/" in url for url in trusting.urls)


def test_a_connection_that_never_says_hello_holds_up_no_one(tls_emu, trusting):
    with socket.create_connection(("127.0.0.1", tls_emu.port)):
        with httpx.Client(transport=trusting, timeout=5) as http:
            assert http.get(f"{tls_emu.base_url}/v1/health").status_code == 200


def test_a_zip_url_naming_the_emulator_otherwise_is_fetched_trusting_its_ca(tls_emu, trusting):
    with RunflowClient(KEY, tls_emu.base_url, transport=trusting, retry=FAST_RETRY) as client:
        asset = client.upload(sample_zip(), "inputs.zip")
        by_name = asset.url.replace("https://127.0.0.1:", "https://localhost:", 1)
        run = client.create_run({"zip_url": by_name, **INPUT})
        tls_emu.finish_runs()
        assert client.get_run(run.id).status == "succeeded"
    assert tls_emu.count("asset_file") == 1  # fetched over https, not read from the store


def test_the_ca_file_is_deleted_on_stop():
    emu = Emulator(tls=True).start()
    ca_file = emu.ca_file
    assert open(ca_file).read().startswith("-----BEGIN CERTIFICATE-----")
    emu.stop()
    assert not os.path.exists(os.path.dirname(ca_file))


def test_a_failed_bind_leaves_no_ca_behind(tls_emu, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with pytest.raises(OSError) as failed:  # its traceback keeps start()'s locals alive
        Emulator(port=tls_emu.port, tls=True).start()
    assert list(tmp_path.iterdir()) == [], failed.value


def test_plain_mode_stays_http_and_never_imports_trustme():
    probe = ("import json, sys\n"
             "from runflow_bg.cli.app import app\n"
             "from runflow_bg.emulator import Emulator\n"
             "with Emulator() as emu:\n"
             "    print(json.dumps([emu.base_url, emu.ca_file, 'trustme' in sys.modules]))\n")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    base_url, ca_file, imported = json.loads(result.stdout)
    assert base_url.startswith("http://127.0.0.1:") and ca_file is None and imported is False


def test_cli_replace_trusts_the_emulator_through_ssl_cert_file(tls_emu, tmp_path, isolated_env):
    write_photo(tmp_path / "bottle.png")
    write_scene(tmp_path / "marble.jpg")
    env = cli_env(tls_emu.base_url, isolated_env)
    env["SSL_CERT_FILE"] = tls_emu.ca_file  # after cli_env, which strips it
    result = run_process("replace", "bottle.png", "marble.jpg", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    assert (tmp_path / "bottle-bg.webp").exists()


def test_a_client_not_trusting_the_ca_exits_5(tls_emu, tmp_path, isolated_env):
    write_photo(tmp_path / "bottle.png")
    write_scene(tmp_path / "marble.jpg")
    result = run_cli("replace", "bottle.png", "marble.jpg", env=cli_env(tls_emu.base_url, isolated_env),
                     cwd=tmp_path)
    assert result.returncode == 5
    assert "its TLS certificate is not trusted" in result.stderr.decode()
    assert tls_emu.requests == []


def test_emulator_command_prints_the_ca_variables_and_stops_on_sigterm(isolated_env):
    process = subprocess.Popen(
        [sys.executable, "-m", "runflow_bg", "emulator", "--tls", "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=cli_env(None, isolated_env, key=None))
    try:
        lines = dict(process.stdout.readline().strip().split("=", 1) for _ in range(4))
        assert list(lines) == ["RUNFLOW_BASE_URL", "RUNFLOW_API_KEY", "SSL_CERT_FILE", "NODE_EXTRA_CA_CERTS"]
        ca_file = lines["SSL_CERT_FILE"]
        assert lines["NODE_EXTRA_CA_CERTS"] == ca_file and lines["RUNFLOW_BASE_URL"].startswith("https://")
        trust = ssl.create_default_context(cafile=ca_file)
        assert httpx.get(f"{lines['RUNFLOW_BASE_URL']}/v1/health", verify=trust).json()["ok"] is True
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        stderr = process.stderr.read()
        assert "NODE_EXTRA_CA_CERTS makes Node" in stderr and "emulator stopped" in stderr
        assert not os.path.exists(ca_file)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_tls_without_trustme_is_a_usage_error(tmp_path, isolated_env, monkeypatch):
    monkeypatch.setitem(sys.modules, "trustme", None)  # what an install without the extra sees
    result = run_cli("emulator", "--tls", "--port", "0", env=cli_env(None, isolated_env, key=None),
                     cwd=tmp_path)
    assert result.returncode == 2
    assert "pip install 'runflow-bg[tls]'" in result.stderr.decode()
