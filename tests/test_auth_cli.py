"""`runflow-bg auth login|logout|status`: real processes against the emulator on loopback."""

from __future__ import annotations

import json
import os
import pty
import select
import stat
import sys
import time

import pytest

from helpers import KEY, cli_env, run_cli

NO_API = "http://127.0.0.1:9"  # the discard port: nothing listens there


@pytest.fixture
def env(emu, isolated_env):
    """No key in the environment: the commands must find (or save) one themselves."""
    return cli_env(emu.base_url, isolated_env, key=None)


@pytest.fixture
def credentials(isolated_env):
    return isolated_env / "config" / "credentials.json"


def login(env, cwd, key: str = KEY):
    return run_cli("auth", "login", "--with-token", stdin=f"{key}\n".encode(), env=env, cwd=cwd)


def output(result) -> str:
    return result.stdout.decode() + result.stderr.decode()


def test_login_checks_the_key_then_saves_it_privately(emu, env, tmp_path, credentials):
    result = login(env, tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    assert emu.count("me") == 1
    assert json.loads(credentials.read_text()) == {"api_key": KEY}
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
    assert stat.S_IMODE(credentials.parent.stat().st_mode) == 0o700
    assert f"…{KEY[-4:]}" in result.stderr.decode() and "emulator@localhost" in result.stderr.decode()
    assert KEY not in output(result)
    status = run_cli("auth", "status", env=env, cwd=tmp_path)
    assert status.returncode == 0 and f"(from {credentials})" in status.stdout.decode()


def test_login_tightens_an_existing_directory(emu, env, tmp_path, credentials):
    credentials.parent.mkdir(parents=True, mode=0o755)
    os.chmod(credentials.parent, 0o755)
    assert login(env, tmp_path).returncode == 0
    assert stat.S_IMODE(credentials.parent.stat().st_mode) == 0o700


def test_login_with_a_refused_key_saves_nothing_and_exits_3(emu, env, tmp_path, credentials):
    result = login(env, tmp_path, key="rf_wrong_key_0000")
    assert result.returncode == 3
    assert "Runflow refused the API key (401 UNAUTHORIZED). Nothing was saved." in result.stderr.decode()
    assert not credentials.exists() and "rf_wrong_key_0000" not in output(result)


@pytest.mark.parametrize("stdin,needle", [(b"", "No API key was given"),
                                          (b"rf_two words\n", "whitespace")])
def test_login_with_no_or_a_malformed_key_exits_3(emu, env, tmp_path, credentials, stdin, needle):
    result = run_cli("auth", "login", "--with-token", stdin=stdin, env=env, cwd=tmp_path)
    assert result.returncode == 3 and needle in result.stderr.decode()
    assert not credentials.exists() and emu.requests == []


def test_login_without_a_terminal_or_with_token_exits_2(emu, env, tmp_path, credentials):
    result = run_cli("auth", "login", stdin=KEY.encode(), env=env, cwd=tmp_path)
    assert result.returncode == 2 and "--with-token" in result.stderr.decode()
    assert not credentials.exists()


def test_login_when_the_api_is_unreachable_exits_5(env, tmp_path, credentials):
    env.update(RUNFLOW_BASE_URL=NO_API, RUNFLOW_BG_RETRIES="1")
    result = login(env, tmp_path)
    assert result.returncode == 5 and "Could not reach" in result.stderr.decode()
    assert not credentials.exists()


def test_login_notes_that_the_environment_key_wins(emu, env, tmp_path):
    env["RUNFLOW_API_KEY"] = "rf_env_key_9999"
    result = login(env, tmp_path)
    assert result.returncode == 0
    assert "RUNFLOW_API_KEY is set in this environment and takes precedence" in result.stderr.decode()


def test_login_on_a_terminal_asks_without_echo(emu, env, tmp_path, credentials):
    pid, master = pty.fork()
    if pid == 0:  # the child: a real terminal on stdin, stdout and stderr
        os.chdir(tmp_path)
        os.execve(sys.executable, [sys.executable, "-m", "runflow_bg", "auth", "login"], env)
    seen = read_until(master, b"Runflow API key")
    assert b"Runflow API key (input hidden):" in seen
    os.write(master, f"{KEY}\n".encode())
    seen += read_until(master, None)
    _, status = os.waitpid(pid, 0)
    os.close(master)
    assert os.waitstatus_to_exitcode(status) == 0, seen.decode(errors="replace")
    assert KEY.encode() not in seen, "the key is not echoed"
    assert json.loads(credentials.read_text()) == {"api_key": KEY}


def read_until(fd: int, marker: bytes | None, timeout: float = 20.0) -> bytes:
    """Read a pty until `marker` appears (or, with None, until the child closes it)."""
    data, deadline = b"", time.monotonic() + timeout
    while time.monotonic() < deadline and (marker is None or marker not in data):
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            data += chunk
    return data


def test_logout_removes_the_saved_key(emu, env, tmp_path, credentials):
    login(env, tmp_path)
    result = run_cli("auth", "logout", env=env, cwd=tmp_path)
    assert result.returncode == 0 and "Removed the saved key" in result.stderr.decode()
    assert not credentials.exists()
    again = run_cli("auth", "logout", env=env, cwd=tmp_path)
    assert again.returncode == 0 and "No saved key to remove" in again.stderr.decode()
    status = run_cli("auth", "status", env=env, cwd=tmp_path)
    assert status.returncode == 3


def test_logout_says_what_still_provides_a_key(env, tmp_path, isolated_env):
    shared = isolated_env / "user-home" / ".config" / "runflow" / "credentials.json"
    shared.parent.mkdir(parents=True)
    shared.write_text(json.dumps({"api_key": "rf_shared_key_4321"}))
    env["RUNFLOW_API_KEY"] = "rf_env_key_9999"
    result = run_cli("auth", "logout", env=env, cwd=tmp_path)
    assert "RUNFLOW_API_KEY is still set" in result.stderr.decode()
    assert f"{shared} is left alone" in result.stderr.decode()


@pytest.mark.parametrize("where", ["flag", "env", "file", "shared"])
def test_status_names_where_the_key_comes_from(emu, env, tmp_path, isolated_env, credentials, where):
    args = ["auth", "status"]
    if where == "flag":
        args = ["--api-key", KEY, *args]
        origin = "--api-key"
    elif where == "env":
        env["RUNFLOW_API_KEY"] = KEY
        origin = "RUNFLOW_API_KEY"
    elif where == "file":
        login(env, tmp_path)
        origin = str(credentials)
    else:
        shared = isolated_env / "user-home" / ".config" / "runflow" / "credentials.json"
        shared.parent.mkdir(parents=True)
        shared.write_text(json.dumps({"api_key": KEY}))
        origin = str(shared)
    result = run_cli(*args, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    stdout = result.stdout.decode()
    assert f"key       …{KEY[-4:]} (from {origin})\n" in stdout
    assert "status    Runflow accepts the key" in stdout and "emulator@localhost" in stdout
    assert KEY not in output(result)


def test_status_prefers_the_environment_to_the_file(emu, env, tmp_path):
    login(env, tmp_path)
    env["RUNFLOW_API_KEY"] = "rf_env_key_9999"
    result = run_cli("auth", "status", env=env, cwd=tmp_path)
    assert "…9999 (from RUNFLOW_API_KEY)" in result.stdout.decode()


def test_status_without_a_key_exits_3_with_every_way_to_get_one(env, tmp_path):
    result = run_cli("auth", "status", env=env, cwd=tmp_path)
    assert result.returncode == 3
    for needle in ("No Runflow API key found.", "RUNFLOW_API_KEY", "runflow-bg auth login", "--local"):
        assert needle in result.stderr.decode()


def test_status_with_a_refused_key_exits_3(emu, env, tmp_path):
    env["RUNFLOW_API_KEY"] = "rf_revoked_key_7777"
    result = run_cli("auth", "status", env=env, cwd=tmp_path)
    assert result.returncode == 3
    assert "…7777 (from RUNFLOW_API_KEY)" in result.stdout.decode()
    assert "401 UNAUTHORIZED" in result.stderr.decode()
    assert "The key comes from RUNFLOW_API_KEY" in result.stderr.decode()
    assert "rf_revoked_key_7777" not in output(result)


def test_status_when_the_api_is_unreachable_exits_5(env, tmp_path):
    env.update(RUNFLOW_BASE_URL=NO_API, RUNFLOW_API_KEY=KEY, RUNFLOW_BG_RETRIES="1")
    result = run_cli("auth", "status", env=env, cwd=tmp_path)
    assert result.returncode == 5
    assert "Could not reach http://127.0.0.1:9/v1/auth/me" in result.stderr.decode()


def test_a_credentials_file_others_can_read_draws_a_warning(emu, env, tmp_path, credentials):
    login(env, tmp_path)
    os.chmod(credentials, 0o644)
    for args in (["auth", "status"], ["runs", "list"]):
        result = run_cli(*args, env=env, cwd=tmp_path)
        assert result.returncode == 0, result.stderr.decode()
        assert f"Warning: other users can read {credentials}; run `chmod 600 {credentials}`." \
            in result.stderr.decode()
    os.chmod(credentials, 0o600)
    assert "Warning" not in run_cli("auth", "status", env=env, cwd=tmp_path).stderr.decode()


def test_an_unreadable_credentials_file_exits_3(env, tmp_path, credentials):
    credentials.parent.mkdir(parents=True)
    credentials.write_text("{not json")
    result = run_cli("auth", "status", env=env, cwd=tmp_path)
    assert result.returncode == 3
    assert f"Cannot read the credentials file {credentials}" in result.stderr.decode()
