"""`runflow-bg replace` as a user runs it: a real process against the emulator on loopback."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
import pytest
from PIL import Image

from helpers import JSON_KEYS, KEY, cli_env, has_control_chars, run_cli, run_process, write_photo
from runflow_bg.client import RunflowClient


def test_success_saves_the_file_and_prints_its_path(emu, work, env):
    result = run_cli("replace", "bottle.png", "marble.jpg", "-o", "out", env=env, cwd=work)
    assert result.returncode == 0, result.stderr.decode()
    stdout, stderr = result.stdout.decode(), result.stderr.decode()
    assert stdout == "out/bottle-bg.webp\n"
    saved = work / "out" / "bottle-bg.webp"
    assert Image.open(saved).format == "WEBP" and Image.open(saved).size == (160, 120)
    assert not has_control_chars(stderr)
    run_id = emu.runs()[0]["id"]
    for line in ("checked bottle.png (160x120 PNG) and marble.jpg (200x150 JPEG)",
                 "uploaded inputs.zip", f"run {run_id} queued", f"run {run_id} succeeded",
                 "saved out/bottle-bg.webp"):
        assert line in stderr
    lines = stderr.splitlines()
    assert len(lines) == len(set(lines)), "no repeated lines off a terminal"
    assert not list((work / "out").glob(".*part")), "no temporary file left behind"


def test_json_output_matches_the_spec(emu, work, env):
    result = run_cli("replace", "bottle.png", "marble.jpg", "--json", "-p", "soft light",
                     "--metadata", "sku=A1", env=env, cwd=work)
    assert result.returncode == 0, result.stderr.decode()
    data = json.loads(result.stdout)
    assert set(data) == JSON_KEYS
    assert data["status"] == "succeeded" and data["prompt"] == "soft light"
    assert data["photo"] == "bottle.png" and data["scene"] == "marble.jpg"
    assert data["cost"] == "0.35" and data["cached"] is False and data["error"] is None
    assert data["outputs"][0]["path"] == "bottle-bg.webp" and data["outputs"][0]["url"]
    run = emu.runs()[0]
    assert data["run_id"] == run["id"] and data["client_ref"] == run["client_ref"]
    assert run["input"]["prompt"] == "soft light" and run["metadata"] == {"sku": "A1"}


def test_wrong_key_exits_3(emu, work, env):
    env["RUNFLOW_API_KEY"] = "rf_wrong_key"
    result = run_cli("replace", "bottle.png", "marble.jpg", env=env, cwd=work)
    stderr = result.stderr.decode()
    assert result.returncode == 3
    assert "Error: Runflow refused the API key (401 UNAUTHORIZED)." in stderr
    assert "RUNFLOW_API_KEY" in stderr and "Request id: req_" in stderr
    assert "rf_wrong_key" not in stderr + result.stdout.decode()
    assert emu.created_run_count == 0


def test_no_key_exits_3_and_names_every_way_to_get_one(emu, work, isolated_env):
    env = cli_env(emu.base_url, isolated_env, key=None)
    result = run_cli("replace", "bottle.png", "marble.jpg", env=env, cwd=work)
    stderr = result.stderr.decode()
    assert result.returncode == 3
    for needle in ("RUNFLOW_API_KEY", "runflow-bg auth login", "--local"):
        assert needle in stderr
    assert emu.requests == []


@pytest.mark.parametrize("setup,args,needle", [
    (None, ["missing.png", "marble.jpg"], "missing.png: no such file"),
    ("text", ["fake.png", "marble.jpg"], "fake.png: not an image"),
    ("empty", ["empty.png", "marble.jpg"], "empty.png: the file is empty"),
    ("truncated", ["cut.png", "marble.jpg"], "cut.png: a damaged image"),
    (None, ["bottle.png", "bottle.png"], "bottle.png is given as both"),
    (None, [".", "marble.jpg"], ".: not a regular file"),
    ("existing", ["bottle.png", "marble.jpg"], "bottle-bg.png already exists"),
    ("outfile", ["bottle.png", "marble.jpg", "-o", "occupied"], "occupied is not a folder"),
])
def test_bad_input_exits_4_before_any_request(emu, work, env, setup, args, needle):
    if setup == "text":
        (work / "fake.png").write_text("not an image")
    elif setup == "empty":
        (work / "empty.png").write_bytes(b"")
    elif setup == "truncated":
        data = (work / "bottle.png").read_bytes()
        (work / "cut.png").write_bytes(data[: len(data) // 2])
    elif setup == "existing":
        (work / "bottle-bg.png").write_bytes(b"earlier result")
    elif setup == "outfile":
        (work / "occupied").write_text("a file")
    result = run_cli("replace", *args, env=env, cwd=work)
    assert result.returncode == 4, result.stderr.decode()
    assert needle in result.stderr.decode()
    assert emu.requests == [], "nothing may be sent before local validation passes"


def test_overwrite_replaces_an_existing_output(emu, work, env):
    (work / "bottle-bg.webp").write_bytes(b"old")
    result = run_cli("replace", "bottle.png", "marble.jpg", "--overwrite", env=env, cwd=work)
    assert result.returncode == 0, result.stderr.decode()
    assert Image.open(work / "bottle-bg.webp").format == "WEBP"


def test_service_unavailable_exits_5_without_creating(emu, work, env):
    emu.faults.fail_next("run_create", 503, count=50, retry_after=0)
    result = run_cli("replace", "bottle.png", "marble.jpg", env=env, cwd=work)
    assert result.returncode == 5
    assert "503" in result.stderr.decode() and "No run was created" in result.stderr.decode()
    assert emu.created_run_count == 0


def test_failed_run_exits_6_with_its_id(emu, work, env):
    emu.faults.fail_runs(1, status="failed", code="MODEL_ERROR", message="model crashed")
    result = run_cli("replace", "bottle.png", "marble.jpg", "--json", env=env, cwd=work)
    assert result.returncode == 6
    run_id = emu.runs()[0]["id"]
    assert f"Run {run_id} failed (MODEL_ERROR: model crashed)" in result.stderr.decode()
    data = json.loads(result.stdout)
    assert data["run_id"] == run_id and data["error"]["exit_code"] == 6
    assert data["error"]["code"] == "MODEL_ERROR" and data["outputs"] == []


def test_canceled_run_exits_6(emu, work, env):
    emu.faults.fail_runs(1, status="cancelled", code="CANCELED", message="canceled by user")
    result = run_cli("replace", "bottle.png", "marble.jpg", env=env, cwd=work)
    assert result.returncode == 6 and "was canceled" in result.stderr.decode()


def test_timeout_exits_7_with_the_way_to_resume(emu, work, env):
    emu.run_seconds = 30
    result = run_cli("replace", "bottle.png", "marble.jpg", "--timeout", "0.5s", env=env, cwd=work)
    run_id = emu.runs()[0]["id"]
    stderr = result.stderr.decode()
    assert result.returncode == 7
    assert run_id in stderr and f"runflow-bg runs wait {run_id}" in stderr


def test_insufficient_credit_exits_8(emu, work, env):
    emu.set_balance("0.00")
    result = run_cli("replace", "bottle.png", "marble.jpg", env=env, cwd=work)
    assert result.returncode == 8 and "402" in result.stderr.decode()
    assert emu.created_run_count == 0


def test_no_wait_prints_the_run_id(emu, work, env):
    result = run_cli("replace", "bottle.png", "marble.jpg", "--no-wait", env=env, cwd=work)
    assert result.returncode == 0
    assert result.stdout.decode() == emu.runs()[0]["id"] + "\n"
    assert not (work / "bottle-bg.webp").exists()


def test_rerun_after_no_wait_resumes_instead_of_paying_twice(emu, work, env):
    run_cli("replace", "bottle.png", "marble.jpg", "--no-wait", env=env, cwd=work)
    result = run_cli("replace", "bottle.png", "marble.jpg", env=env, cwd=work)
    assert result.returncode == 0, result.stderr.decode()
    assert emu.created_run_count == 1 and (work / "bottle-bg.webp").exists()


def test_identical_request_reuses_the_saved_result(emu, work, env):
    run_cli("replace", "bottle.png", "marble.jpg", "-o", "a", env=env, cwd=work)
    result = run_cli("replace", "bottle.png", "marble.jpg", "-o", "b", "--json", env=env, cwd=work)
    assert json.loads(result.stdout)["cached"] is True
    assert (work / "b" / "bottle-bg.webp").read_bytes() == (work / "a" / "bottle-bg.webp").read_bytes()
    assert emu.created_run_count == 1
    result = run_cli("replace", "bottle.png", "marble.jpg", "-o", "c", "--no-cache", env=env, cwd=work)
    assert result.returncode == 0 and emu.created_run_count == 2


def test_zip_url(emu, work, env):
    with RunflowClient(KEY, emu.base_url) as client:
        members = {"image.png": (work / "bottle.png").read_bytes(),
                   "reference.jpg": (work / "marble.jpg").read_bytes()}
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            for name, data in members.items():
                archive.writestr(name, data)
        asset = client.upload(buffer.getvalue(), "inputs.zip")
    before = emu.count("asset_create")
    result = run_cli("replace", "--zip-url", asset.url, "--image", "image.png",
                     "--reference", "reference.jpg", env=env, cwd=work)
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode() == "image-bg.webp\n"
    assert emu.count("asset_create") == before, "--zip-url uploads nothing"
    assert "sig=" not in result.stderr.decode()


def test_zip_url_needs_member_names(emu, work, env):
    result = run_cli("replace", "--zip-url", "https://example.com/in.zip", env=env, cwd=work)
    assert result.returncode == 2 and "--image" in result.stderr.decode()


def test_dry_run_makes_no_request(emu, work, env):
    result = run_cli("replace", "bottle.png", "marble.jpg", "--dry-run", "--json", env=env, cwd=work)
    assert result.returncode == 0
    data = json.loads(result.stdout)
    assert data["estimated_cost"] == "0.35" and data["model"] == "runflow/background-replace"
    assert [m["name"] for m in data["members"]] == ["image.png", "reference.jpg"]
    assert emu.requests == []
    human = run_cli("replace", "bottle.png", "marble.jpg", "--dry-run", env=env, cwd=work)
    assert "$0.35" in human.stdout.decode() and emu.requests == []


def test_local_needs_no_key_and_no_network(work, isolated_env):
    env = cli_env(None, isolated_env, key=None, RUNFLOW_BG_LOCAL_RUN_SECONDS="0.2")
    result = run_cli("replace", "--local", "bottle.png", "marble.jpg", env=env, cwd=work)
    assert result.returncode == 0, result.stderr.decode()
    assert Image.open(work / "bottle-bg.webp").size == (160, 120)


def test_photo_from_stdin(emu, work, env):
    result = run_cli("replace", "-", "marble.jpg", stdin=(work / "bottle.png").read_bytes(),
                     env=env, cwd=work)
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode() == "stdin-bg.webp\n"


def test_exif_rotated_photo_reaches_the_model_upright(emu, work, env):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    write_photo(work / "phone.jpg", size=(200, 100), fmt="JPEG", exif=exif.tobytes())
    result = run_cli("replace", "phone.jpg", "marble.jpg", env=env, cwd=work)
    assert result.returncode == 0, result.stderr.decode()
    zip_url = emu.runs()[0]["input"]["zip_url"]
    with zipfile.ZipFile(io.BytesIO(httpx.get(zip_url).content)) as archive:
        member = Image.open(io.BytesIO(archive.read("image.jpg")))
    assert member.size == (100, 200)
    assert member.getexif().get(0x0112) in (None, 1)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_while_waiting_exits_130_with_the_run_id(emu, work, env, signum):
    emu.run_seconds = 60
    process = subprocess.Popen([sys.executable, "-m", "runflow_bg", "replace", "bottle.png",
                                "marble.jpg"], env=env, cwd=work, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while emu.count("run_get") == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=30)
    run_id = emu.runs()[0]["id"]
    assert process.returncode == 130
    assert run_id in stderr.decode() and f"runflow-bg runs wait {run_id}" in stderr.decode()
    assert emu.created_run_count == 1


def test_usage_errors_exit_2(work, env):
    assert run_cli("replace", "--bogus", env=env, cwd=work).returncode == 2
    result = run_cli("replace", "bottle.png", "marble.jpg", "--timeout", "soon", env=env, cwd=work)
    assert result.returncode == 2 and "--timeout" in result.stderr.decode()
    result = run_cli("replace", "bottle.png", "marble.jpg", "--name", "{nope}", env=env, cwd=work)
    assert result.returncode == 2 and "{nope}" in result.stderr.decode()


def run_with_terminal_stderr(args, env, cwd) -> tuple[int, str, str]:
    """Run the CLI with stderr on a pseudo-terminal, as a person at a shell sees it."""
    import os
    import pty

    master, slave = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "runflow_bg", *args], env=env, cwd=cwd,
                               stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    stdout = process.stdout.read().decode()
    process.wait(timeout=60)
    os.close(master)
    return process.returncode, stdout, b"".join(chunks).decode("utf-8", "replace")


def test_terminal_shows_a_spinner_and_transfer_bars(emu, work, env):
    import random

    env = {k: v for k, v in env.items() if k != "NO_COLOR"}
    env["TERM"] = "xterm-256color"
    emu.run_seconds = 1.5
    noise = Image.frombytes("RGB", (1200, 1000), random.Random(1).randbytes(1200 * 1000 * 3))
    noise.save(work / "big.png")
    code, stdout, screen = run_with_terminal_stderr(["replace", "big.png", "marble.jpg"], env, work)
    assert code == 0, screen
    run_id = emu.runs()[0]["id"]
    assert stdout == "big-bg.webp\n"
    assert "\x1b[" in screen, "animated on a terminal"
    assert f"run {run_id[:8]}… running" in screen
    assert "upload" in screen and "MB" in screen
    assert "✓ checked big.png (1200x1000 PNG)" in screen
    assert f"✓ run {run_id} succeeded" in screen


@pytest.mark.parametrize("setting", [{"TERM": "dumb"}, {"CI": "true"}, {"NO_COLOR": "1"}])
def test_a_terminal_can_ask_for_plain_lines(emu, work, env, setting):
    env = {**{k: v for k, v in env.items() if k != "NO_COLOR"}, "TERM": "xterm-256color", **setting}
    code, stdout, screen = run_with_terminal_stderr(["replace", "bottle.png", "marble.jpg"], env, work)
    assert code == 0, screen
    assert "\x1b[" not in screen and "saved bottle-bg.webp" in screen


def test_quiet_and_verbose(emu, work, env):
    quiet = run_cli("replace", "bottle.png", "marble.jpg", "-q", "-o", "q", env=env, cwd=work)
    assert quiet.returncode == 0 and quiet.stderr == b"" and quiet.stdout == b"q/bottle-bg.webp\n"
    verbose = run_cli("--debug", "replace", "bottle.png", "marble.jpg", "-v", "-o", "v", "--no-cache",
                      env=env, cwd=work)
    stderr = verbose.stderr.decode()
    assert verbose.returncode == 0 and "debug: POST http://127.0.0.1" in stderr
    assert KEY not in stderr and "sig=" not in stderr


def test_the_installed_console_script_keeps_streams_apart_and_exits_honestly(work, isolated_env):
    """The entry point users run: data on stdout, messages on stderr, the documented codes."""
    script = Path(sys.executable).with_name("runflow-bg")
    if not script.exists():
        pytest.skip("the console script is not installed next to this interpreter")
    env = cli_env(None, isolated_env, key=None, RUNFLOW_BG_LOCAL_RUN_SECONDS="0")
    done = subprocess.run([str(script), "replace", "--local", "bottle.png", "marble.jpg", "-o", "out"],
                          env=env, cwd=work, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode() == "out/bottle-bg.webp\n" and b"saved out/bottle-bg.webp" in done.stderr
    refused = subprocess.run([str(script), "replace", "bottle.png", "marble.jpg"], env=env, cwd=work,
                             capture_output=True, timeout=60)
    assert refused.returncode == 3 and refused.stdout == b""
    assert "\nError: No Runflow API key found.\nHint: Set RUNFLOW_API_KEY" in refused.stderr.decode()


def test_a_clean_finish_ends_the_process_with_everything_written(work, isolated_env):
    """The process ends without the interpreter's teardown only once stdout (a pipe here) is
    flushed, the saved file closed and the run in the journal: the same command again finds it."""
    env = cli_env(None, isolated_env, key=None, RUNFLOW_BG_LOCAL_RUN_SECONDS="0")
    args = ("replace", "--local", "bottle.png", "marble.jpg", "--json")
    first = run_process(*args, env=env, cwd=work)
    assert first.returncode == 0, first.stderr.decode()
    saved = json.loads(first.stdout)["outputs"][0]["path"]
    with Image.open(work / saved) as image:
        image.load()
    again = run_process(*args, env=env, cwd=work)
    assert again.returncode == 0, again.stderr.decode()
    assert json.loads(again.stdout)["skipped"] is True and b"already done" in again.stderr
