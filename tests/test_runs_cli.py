"""`runflow-bg runs get|list|wait|download`: real processes against the emulator on loopback."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
from PIL import Image

from helpers import JSON_KEYS, KEY, cli_env, run_cli, zip_bytes
from runflow_bg.client import RunflowClient
from runflow_bg.errors import InputError, RunFailed, UnavailableError, WaitTimeout
from runflow_bg.journal import Journal
from runflow_bg.service.results import Outcome
from runflow_bg.service.runs import exit_code, list_runs


def submit_here(work, env, *extra: str) -> str:
    """A run submitted by this machine (recorded in its journal), not waited for."""
    result = run_cli("replace", "bottle.png", "marble.jpg", "--no-wait", "--no-cache", *extra,
                     env=env, cwd=work)
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode().strip()


def submit_elsewhere(emu, work, prompt: str | None = None) -> str:
    """A run created through the API directly, as another machine would: no journal entry."""
    members = {"image.png": (work / "bottle.png").read_bytes(),
               "reference.jpg": (work / "marble.jpg").read_bytes()}
    with RunflowClient(KEY, emu.base_url) as client:
        asset = client.upload(zip_bytes(members), "inputs.zip")
        run_input = {"zip_url": asset.url, "file_image": "image.png",
                     "file_reference": "reference.jpg"}
        if prompt:
            run_input["prompt"] = prompt
        return client.create_run(run_input).id


def json_lines(result) -> list[dict]:
    return [json.loads(line) for line in result.stdout.decode().splitlines()]


# -- runs get ------------------------------------------------------------------------------------

def test_get_shows_a_run_submitted_here_with_what_was_saved(emu, work, env):
    run_cli("replace", "bottle.png", "marble.jpg", "-o", "out", env=env, cwd=work)
    run_id = emu.runs()[0]["id"]
    result = run_cli("runs", "get", run_id, "--json", env=env, cwd=work)
    assert result.returncode == 0, result.stderr.decode()
    data = json.loads(result.stdout)
    assert set(data) == JSON_KEYS
    assert data["run_id"] == run_id and data["status"] == "succeeded"
    assert data["photo"] == "bottle.png" and data["scene"] == "marble.jpg"
    assert data["outputs"][0]["path"] == "out/bottle-bg.webp" and data["outputs"][0]["url"]
    assert data["cost"] == "0.35" and data["error"] is None

    human = run_cli("runs", "get", run_id, env=env, cwd=work).stdout.decode()
    assert f"run        {run_id}\n" in human and "status     succeeded\n" in human
    assert "photo      bottle.png\n" in human and "saved      out/bottle-bg.webp\n" in human
    assert "sig=" not in human, "presigned query strings stay out of human output"


def test_get_of_a_failed_run_carries_its_error_and_exits_0(emu, work, env):
    emu.faults.fail_runs(1, code="MODEL_ERROR", message="model crashed")
    run_id = submit_elsewhere(emu, work, prompt="soft light")
    time.sleep(0.4)
    result = run_cli("runs", "get", run_id, "--json", env=env, cwd=work)
    assert result.returncode == 0
    data = json.loads(result.stdout)
    assert data["status"] == "failed" and data["photo"] is None and data["prompt"] == "soft light"
    assert data["error"] == {"code": "MODEL_ERROR", "exit_code": 6,
                             "message": f"Run {run_id} failed (MODEL_ERROR: model crashed)."}


def test_get_of_an_unknown_run_exits_4(emu, work, env):
    result = run_cli("runs", "get", "no-such-run", env=env, cwd=work)
    assert result.returncode == 4
    assert "Run no-such-run was not found (404 RUN_NOT_FOUND)." in result.stderr.decode()
    assert result.stdout == b""


def test_get_without_a_key_exits_3(emu, work, isolated_env):
    result = run_cli("runs", "get", "x", env=cli_env(emu.base_url, isolated_env, key=None), cwd=work)
    assert result.returncode == 3
    for needle in ("RUNFLOW_API_KEY", "runflow-bg auth login", "--local"):
        assert needle in result.stderr.decode()


def test_get_with_a_refused_key_exits_3(emu, work, isolated_env):
    env = cli_env(emu.base_url, isolated_env, key="rf_wrong_key_0000")
    result = run_cli("runs", "get", "x", env=env, cwd=work)
    assert result.returncode == 3 and "401 UNAUTHORIZED" in result.stderr.decode()
    assert "rf_wrong_key_0000" not in result.stderr.decode()


def test_get_when_the_service_is_down_exits_5(emu, work, env):
    emu.faults.fail_next("run_get", 503, count=10, retry_after=0)
    result = run_cli("runs", "get", "x", env=env, cwd=work)
    assert result.returncode == 5 and "503" in result.stderr.decode()


# -- runs list -----------------------------------------------------------------------------------

def test_list_prints_tab_separated_lines_off_a_terminal(emu, work, env):
    first = submit_here(work, env)
    second = submit_elsewhere(emu, work)
    result = run_cli("runs", "list", env=env, cwd=work)
    assert result.returncode == 0, result.stderr.decode()
    rows = [line.split("\t") for line in result.stdout.decode().splitlines()]
    assert [row[0] for row in rows] == [second, first], "newest first"
    assert rows[1][5] == "bottle.png" and rows[0][5] == "", "photo only for runs submitted here"
    assert all(len(row) == 6 and row[4] == "0.35" for row in rows)


def test_list_json_limit_and_status(emu, work, env):
    emu.faults.fail_runs(1)
    failed = submit_elsewhere(emu, work)
    ok = [submit_elsewhere(emu, work) for _ in range(2)]
    time.sleep(0.4)
    limited = json_lines(run_cli("runs", "list", "--limit", "2", "--json", env=env, cwd=work))
    assert [item["run_id"] for item in limited] == ok[::-1]
    assert all(set(item) == JSON_KEYS for item in limited)
    only_failed = json_lines(run_cli("runs", "list", "--status", "failed", "--json", env=env, cwd=work))
    assert [item["run_id"] for item in only_failed] == [failed]


def test_list_pages_through_the_api(emu, work, monkeypatch):
    monkeypatch.setattr("runflow_bg.service.runs.LIST_PAGE_SIZE", 2)
    ids = [submit_elsewhere(emu, work) for _ in range(5)]
    with RunflowClient(KEY, emu.base_url) as client:
        reports = list_runs(client, Journal(work / "journal.db"), limit=4)
    assert [report.run_id for report in reports] == ids[::-1][:4]
    assert emu.count("run_list") == 2


@pytest.mark.parametrize("args,needle", [
    (["--status", "done"], "Unknown status 'done'"),
    (["--limit", "0"], "--limit"),
])
def test_list_usage_errors_exit_2(emu, work, env, args, needle):
    result = run_cli("runs", "list", *args, env=env, cwd=work)
    assert result.returncode == 2 and needle in result.stderr.decode()
    assert emu.count("run_list") == 0


# -- runs wait -----------------------------------------------------------------------------------

def test_wait_names_outputs_as_the_request_asked_and_records_them(emu, work, env):
    run_id = submit_here(work, env, "-o", "ignored", "--name", "{stem}-on-{scene}{n}.{ext}")
    result = run_cli("runs", "wait", run_id, "-o", "out", env=env, cwd=work)
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode() == "out/bottle-on-marble.webp\n"
    assert Image.open(work / "out" / "bottle-on-marble.webp").format == "WEBP"
    assert f"run {run_id} succeeded" in result.stderr.decode()
    again = run_cli("replace", "bottle.png", "marble.jpg", "-o", "copy", "--json", env=env, cwd=work)
    assert json.loads(again.stdout)["cached"] is True, "the journal knows the outputs were saved"
    assert emu.created_run_count == 1


def test_wait_for_a_run_submitted_elsewhere_names_it_by_run_id(emu, work, env):
    run_id = submit_elsewhere(emu, work)
    result = run_cli("runs", "wait", run_id, "--json", env=env, cwd=work)
    assert result.returncode == 0, result.stderr.decode()
    data = json.loads(result.stdout)
    assert set(data) == JSON_KEYS and data["status"] == "succeeded"
    assert data["outputs"][0]["path"] == f"{run_id}-bg.webp"
    assert (work / f"{run_id}-bg.webp").is_file()


def test_wait_on_several_runs_prints_json_lines(emu, work, env):
    ids = [submit_elsewhere(emu, work) for _ in range(3)]
    result = run_cli("runs", "wait", *ids, "--json", "-o", "out", env=env, cwd=work)
    assert result.returncode == 0, result.stderr.decode()
    lines = json_lines(result)
    assert [line["run_id"] for line in lines] == ids
    assert all((work / line["outputs"][0]["path"]).is_file() for line in lines)


def test_wait_exits_6_when_one_run_failed_and_saves_the_others(emu, work, env):
    good = submit_elsewhere(emu, work)
    emu.faults.fail_runs(1, code="MODEL_ERROR", message="model crashed")
    bad = submit_elsewhere(emu, work)
    result = run_cli("runs", "wait", good, bad, env=env, cwd=work)
    assert result.returncode == 6
    assert result.stdout.decode() == f"{good}-bg.webp\n"
    assert f"Error: Run {bad} failed (MODEL_ERROR: model crashed)." in result.stderr.decode()


def test_wait_records_a_failure_in_the_journal(emu, work, env, isolated_env):
    emu.faults.fail_runs(1, status="canceled", code="CANCELED", message="canceled by user")
    run_id = submit_here(work, env)
    result = run_cli("runs", "wait", run_id, env=env, cwd=work)
    assert result.returncode == 6 and "was canceled" in result.stderr.decode()
    journal = Journal(isolated_env / "state" / "journal.sqlite3")
    assert journal.by_run_id(run_id).status == "failed"


def test_wait_timeout_exits_7_with_the_way_to_resume(emu, work, env):
    emu.run_seconds = 30
    run_id = submit_elsewhere(emu, work)
    result = run_cli("runs", "wait", run_id, "--timeout", "0.5s", env=env, cwd=work)
    assert result.returncode == 7
    stderr = result.stderr.decode()
    assert f"Run {run_id} is still queued after --timeout 0.5 s" in stderr
    assert f"runflow-bg runs wait {run_id}" in stderr


def test_wait_timeout_is_one_deadline_for_all_runs(emu, work, env):
    emu.run_seconds = 30
    ids = [submit_elsewhere(emu, work) for _ in range(3)]
    started = time.monotonic()
    result = run_cli("runs", "wait", *ids, "--timeout", "0.5s", "--json", env=env, cwd=work)
    assert time.monotonic() - started < 10
    assert result.returncode == 7
    assert [line["error"]["exit_code"] for line in json_lines(result)] == [7, 7, 7]


def test_wait_refuses_an_existing_output_before_waiting(emu, work, env):
    emu.run_seconds = 30
    run_id = submit_elsewhere(emu, work)
    (work / f"{run_id}-bg.png").write_bytes(b"earlier")
    result = run_cli("runs", "wait", run_id, env=env, cwd=work)
    assert result.returncode == 4
    assert f"{run_id}-bg.png already exists" in result.stderr.decode()
    assert "--overwrite" in result.stderr.decode()
    assert emu.count("run_get") == 0


def test_wait_overwrite_replaces_an_existing_output(emu, work, env):
    run_id = submit_elsewhere(emu, work)
    (work / f"{run_id}-bg.webp").write_bytes(b"earlier")
    result = run_cli("runs", "wait", run_id, "--overwrite", "-q", env=env, cwd=work)
    assert result.returncode == 0 and result.stderr == b""
    assert Image.open(work / f"{run_id}-bg.webp").format == "WEBP"


def test_wait_on_an_unknown_run_exits_4_and_goes_on_with_the_others(emu, work, env):
    good = submit_elsewhere(emu, work)
    result = run_cli("runs", "wait", "no-such-run", good, env=env, cwd=work)
    assert result.returncode == 4
    assert "Run no-such-run was not found" in result.stderr.decode()
    assert result.stdout.decode() == f"{good}-bg.webp\n"


def test_wait_with_a_refused_key_stops_at_the_first_run(emu, work, isolated_env):
    env = cli_env(emu.base_url, isolated_env, key="rf_wrong_key_0000")
    result = run_cli("runs", "wait", "a", "b", "--json", env=env, cwd=work)
    assert result.returncode == 3
    assert [line["run_id"] for line in json_lines(result)] == ["a"]
    assert result.stderr.decode().count("Error:") == 1


@pytest.mark.parametrize("args,needle", [
    (["--timeout", "soon"], "--timeout"),
    (["--poll-interval", "0"], "--poll-interval"),
    (["--name", "{nope}"], "{nope}"),
    ([], "Missing argument"),
])
def test_wait_usage_errors_exit_2(emu, work, env, args, needle):
    run_ids = ["some-run"] if args else []
    result = run_cli("runs", "wait", *run_ids, *args, env=env, cwd=work)
    assert result.returncode == 2 and needle in result.stderr.decode()
    assert emu.requests == []


def test_wait_into_a_file_instead_of_a_folder_exits_4(emu, work, env):
    (work / "occupied").write_text("a file")
    result = run_cli("runs", "wait", "some-run", "-o", "occupied", env=env, cwd=work)
    assert result.returncode == 4 and "occupied is not a folder" in result.stderr.decode()


def test_sigint_while_waiting_exits_130_with_the_runs_to_resume(emu, work, env):
    emu.run_seconds = 60
    ids = [submit_elsewhere(emu, work) for _ in range(2)]
    process = subprocess.Popen([sys.executable, "-m", "runflow_bg", "runs", "wait", *ids],
                               env=env, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while emu.count("run_get") < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 130
    assert f"runflow-bg runs wait {ids[0]} {ids[1]}" in stderr.decode()


# -- runs download -------------------------------------------------------------------------------

def test_download_of_an_unfinished_run_exits_4_pointing_to_wait(emu, work, env):
    emu.run_seconds = 30
    run_id = submit_elsewhere(emu, work)
    result = run_cli("runs", "download", run_id, env=env, cwd=work)
    assert result.returncode == 4
    stderr = result.stderr.decode()
    assert f"Run {run_id} is still" in stderr and f"runflow-bg runs wait {run_id}" in stderr


def test_download_fetches_expired_output_urls_afresh(emu, work, env, isolated_env):
    import shutil

    run_id = submit_here(work, env)
    assert run_cli("runs", "wait", run_id, "-o", "first", env=env, cwd=work).returncode == 0
    shutil.rmtree(isolated_env / "cache" / "originals")  # as on another machine: download again
    emu.faults.expire_output_urls(1)
    reads = emu.count("run_get")
    result = run_cli("runs", "download", run_id, "-o", "again", "--json", env=env, cwd=work)
    assert result.returncode == 0, result.stderr.decode()
    assert json.loads(result.stdout)["outputs"][0]["path"] == "again/bottle-bg.webp"
    assert emu.count("run_get") == reads + 2, "one read of the run, one more for a fresh URL"
    again, first = work / "again" / "bottle-bg.webp", work / "first" / "bottle-bg.webp"
    assert again.read_bytes() == first.read_bytes()


def test_download_of_a_failed_run_exits_6(emu, work, env):
    emu.faults.fail_runs(1)
    run_id = submit_elsewhere(emu, work)
    time.sleep(0.4)
    result = run_cli("runs", "download", run_id, env=env, cwd=work)
    assert result.returncode == 6 and f"Run {run_id} failed" in result.stderr.decode()


def test_download_when_output_urls_keep_failing_exits_5(emu, work, env):
    run_id = submit_elsewhere(emu, work)
    time.sleep(0.4)
    emu.faults.fail_next("output", 503, count=10)
    result = run_cli("runs", "download", run_id, env=env, cwd=work)
    assert result.returncode == 5
    assert f"runflow-bg runs download {run_id}" in result.stderr.decode()
    assert "sig=" not in result.stderr.decode()


# -- the exit code of several runs ---------------------------------------------------------------

@pytest.mark.parametrize("errors,code", [
    ([], 0),
    ([None, WaitTimeout("t")], 7),
    ([WaitTimeout("t"), RunFailed("f")], 6),
    ([RunFailed("f"), InputError("missing")], 4),
    ([WaitTimeout("t"), UnavailableError("down"), InputError("missing")], 5),
])
def test_the_most_serious_problem_sets_the_exit_code(errors, code):
    reports = [Outcome(run_id=f"run{i}", error=error) for i, error in enumerate(errors)]
    assert exit_code(reports) == code
