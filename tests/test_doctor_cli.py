"""`runflow-bg doctor`: a real process against the emulator, healthy and in every kind of trouble."""

from __future__ import annotations

import os
import platform
from importlib.metadata import version


from helpers import KEY, run_cli
from runflow_bg import __version__


def rows(result) -> dict[str, str]:
    """The `label  value` lines (labels padded to 12 characters) as a mapping."""
    return {line[:12].rstrip(): line[13:] for line in result.stdout.decode().splitlines()}


def test_a_healthy_set_up_exits_0_and_says_everything(emu, env, tmp_path, isolated_env):
    result = run_cli("doctor", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    facts = rows(result)
    assert facts["runflow-bg"] == __version__
    assert facts["python"].startswith(platform.python_version())
    assert facts["httpx"] == version("httpx") and facts["typer"] == version("typer")
    assert facts["config"] == str(isolated_env / "config" / "config.json")
    assert facts["state"] == str(isolated_env / "state")
    assert facts["cache"] == str(isolated_env / "cache")
    assert facts["api key"] == f"…{KEY[-4:]} (from RUNFLOW_API_KEY)"
    assert facts["base URL"] == f"{emu.base_url} (RUNFLOW_BASE_URL)"
    assert facts["proxies"] == "none"
    assert facts["CA bundle"] == "httpx's default (certifi)"
    assert facts["health"].startswith("ok (")
    assert facts["key check"] == "accepted (emulator@localhost)"
    assert KEY not in result.stdout.decode() + result.stderr.decode()
    assert emu.count("health") == 1 and emu.count("me") == 1


def test_a_refused_key_exits_3(emu, env, tmp_path):
    env["RUNFLOW_API_KEY"] = "rf_revoked_key_7777"
    result = run_cli("doctor", env=env, cwd=tmp_path)
    assert result.returncode == 3
    assert "FAIL: Runflow refused the API key (401 UNAUTHORIZED)." in rows(result)["key check"]
    stderr = result.stderr.decode()
    assert "Error: Runflow refused the API key" in stderr and "from RUNFLOW_API_KEY" in stderr
    assert "rf_revoked_key_7777" not in result.stdout.decode() + stderr


def test_no_key_exits_3_and_still_checks_the_api(emu, env, tmp_path):
    del env["RUNFLOW_API_KEY"]
    result = run_cli("doctor", env=env, cwd=tmp_path)
    assert result.returncode == 3
    facts = rows(result)
    assert facts["api key"] == "FAIL: No Runflow API key found."
    assert facts["health"].startswith("ok") and facts["key check"] == "skipped: no key"
    for needle in ("RUNFLOW_API_KEY", "runflow-bg auth login", "--local"):
        assert needle in result.stderr.decode()


def test_an_unreachable_api_exits_5(env, tmp_path):
    env.update(RUNFLOW_BASE_URL="http://127.0.0.1:9", RUNFLOW_BG_RETRIES="1")
    result = run_cli("doctor", env=env, cwd=tmp_path)
    assert result.returncode == 5
    assert rows(result)["health"] == ("FAIL: Could not reach http://127.0.0.1:9/v1/health: "
                                      "the connection was refused or failed.")
    assert "HTTPS_PROXY" in result.stderr.decode(), "the hint points at proxy settings"


def test_a_failing_health_check_exits_5(emu, env, tmp_path):
    emu.faults.fail_next("health", 503, count=5, retry_after=0)
    result = run_cli("doctor", env=env, cwd=tmp_path)
    assert result.returncode == 5 and "503" in rows(result)["health"]


def test_proxies_are_listed_without_their_credentials(emu, env, tmp_path):
    env.update(HTTPS_PROXY="http://alice:s3cretpw@proxy.corp.example:3128",
               NO_PROXY="127.0.0.1,localhost")
    result = run_cli("doctor", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    assert rows(result)["proxies"] == ("HTTPS_PROXY=http://proxy.corp.example:3128, "
                                       "NO_PROXY=127.0.0.1,localhost")
    assert "s3cretpw" not in result.stdout.decode() + result.stderr.decode()


def test_a_ca_bundle_that_cannot_be_loaded_exits_2(env, tmp_path):
    env.update(SSL_CERT_FILE=str(tmp_path / "missing-ca.pem"),
               RUNFLOW_BASE_URL="https://api.runflow.example")  # plain http needs no CA bundle
    result = run_cli("doctor", env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert rows(result)["CA bundle"] == f"SSL_CERT_FILE={tmp_path / 'missing-ca.pem'}"
    assert "Cannot load the CA certificates named by SSL_CERT_FILE" in result.stderr.decode()


def test_a_damaged_config_file_exits_2(emu, env, tmp_path, isolated_env):
    config_file = isolated_env / "config" / "config.json"
    config_file.parent.mkdir(parents=True)
    config_file.write_text("[1, 2")
    result = run_cli("doctor", env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert rows(result)["config file"].startswith("FAIL: Cannot read the config file")


def test_a_plain_http_base_url_exits_2(env, tmp_path):
    env["RUNFLOW_BASE_URL"] = "http://api.example.com"
    result = run_cli("doctor", env=env, cwd=tmp_path)
    assert result.returncode == 2 and "must be https" in result.stderr.decode()
    assert "health" not in rows(result)


def test_an_open_credentials_file_draws_a_warning(emu, env, tmp_path, isolated_env):
    del env["RUNFLOW_API_KEY"]
    login = run_cli("auth", "login", "--with-token", stdin=KEY.encode(), env=env, cwd=tmp_path)
    assert login.returncode == 0
    credentials = isolated_env / "config" / "credentials.json"
    os.chmod(credentials, 0o640)
    result = run_cli("doctor", env=env, cwd=tmp_path)
    assert result.returncode == 0
    assert f"Warning: other users can read {credentials}" in result.stderr.decode()
