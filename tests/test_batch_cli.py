"""`runflow-bg batch` as CI jobs run it: real processes against the emulator on loopback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path


from helpers import JSON_KEYS, cli_env, has_control_chars, run_cli, write_photo, write_scene


def make_catalogue(root: Path, count: int, folders=("shoes", "bags", "hats")) -> list[Path]:
    """`count` distinct photos spread over folders; every photo's bytes differ."""
    paths = []
    for index in range(count):
        folder = root / "photos" / folders[index % len(folders)]
        folder.mkdir(parents=True, exist_ok=True)
        color = (40 + (index * 7) % 200, 30 + (index * 13) % 200, 60 + (index * 29) % 180)
        paths.append(write_photo(folder / f"item{index:02d}.png", size=(64, 48), color=color))
    write_scene(root / "scene.jpg")
    return paths


def outputs_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*-bg.webp"))


def batch(*args: str, env: dict, cwd: Path, **kwargs) -> subprocess.CompletedProcess:
    return run_cli("batch", *args, env=env, cwd=cwd, **kwargs)


def test_failures_then_retry_failed_pays_only_for_the_failed(emu, env, tmp_path):
    make_catalogue(tmp_path, 30)
    emu.faults.fail_runs(3, status="failed", code="MODEL_ERROR", message="bad luck")
    first = batch("photos", "--scene", "scene.jpg", "-o", "out", "-j", "8", "--yes", "--json",
                  env=env, cwd=tmp_path)
    assert first.returncode == 6, first.stderr.decode()
    lines = [json.loads(line) for line in first.stdout.decode().splitlines()]
    assert len(lines) == 30 and all(set(line) == JSON_KEYS for line in lines)
    failed = [line for line in lines if line["error"]]
    assert len(failed) == 3 and len(outputs_under(tmp_path / "out")) == 27
    assert "3 of 30 items failed" in first.stderr.decode()

    again = batch("photos", "--scene", "scene.jpg", "-o", "out", "-j", "8", "--yes",
                  env=env, cwd=tmp_path)
    assert again.returncode == 6, "failed items stay failed without --retry-failed"
    assert emu.created_run_count == 30

    retry = batch("photos", "--scene", "scene.jpg", "-o", "out", "-j", "8", "--yes",
                  "--retry-failed", env=env, cwd=tmp_path)
    assert retry.returncode == 0, retry.stderr.decode()
    assert len(outputs_under(tmp_path / "out")) == 30
    assert emu.created_run_count == 33


def test_output_tree_mirrors_the_input_tree(emu, env, tmp_path):
    make_catalogue(tmp_path, 3)
    (tmp_path / "photos" / "bags" / "item00.png").write_bytes(
        (tmp_path / "photos" / "shoes" / "item00.png").read_bytes())
    result = batch("photos", "--scene", "scene.jpg", "-o", "out", "--yes", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    saved = {p.relative_to(tmp_path / "out").as_posix() for p in outputs_under(tmp_path / "out")}
    assert saved == {"photos/shoes/item00-bg.webp", "photos/bags/item01-bg.webp",
                     "photos/bags/item00-bg.webp", "photos/hats/item02-bg.webp"}


def test_same_bytes_in_two_folders_cost_one_run(emu, env, tmp_path):
    write_scene(tmp_path / "scene.jpg")
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        write_photo(tmp_path / folder / "bottle.png")
    result = batch("a", "b", "--scene", "scene.jpg", "-o", "out", "--yes", "--json",
                   env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    assert emu.created_run_count == 1
    from PIL import Image

    first, second = (Image.open(tmp_path / f"out/{folder}/bottle-bg.webp") for folder in "ab")
    assert first.tobytes() == second.tobytes(), "one result, delivered twice"
    lines = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert sorted(line["cached"] for line in lines) == [False, True]


def test_shards_cover_every_item_exactly_once(emu, env, tmp_path):
    make_catalogue(tmp_path, 10)
    for k in (1, 2, 3):
        result = batch("photos", "--scene", "scene.jpg", "-o", "out", "--yes", "--shard", f"{k}/3",
                       env=env, cwd=tmp_path)
        assert result.returncode == 0, result.stderr.decode()
    assert emu.created_run_count == 10 and len(outputs_under(tmp_path / "out")) == 10
    assert batch("photos", "--scene", "s.jpg", "--shard", "4/3", env=env, cwd=tmp_path).returncode == 2


def test_off_a_terminal_without_yes_exits_2_before_any_request(emu, env, tmp_path):
    make_catalogue(tmp_path, 3)
    result = batch("photos", "--scene", "scene.jpg", "-o", "out", env=env, cwd=tmp_path,
                   stdin=b"")
    assert result.returncode == 2
    assert "3 runs" in result.stderr.decode() and "--yes" in result.stderr.decode()
    assert emu.requests == []


def test_max_cost_caps_the_runs_created(emu, env, tmp_path):
    make_catalogue(tmp_path, 5)
    result = batch("photos", "--scene", "scene.jpg", "-o", "out", "--yes", "--max-cost", "1.00",
                   "-j", "4", env=env, cwd=tmp_path)
    assert result.returncode == 8, result.stderr.decode()
    assert emu.created_run_count <= 2 and len(outputs_under(tmp_path / "out")) == emu.created_run_count
    assert "--max-cost reached; 3 items were not submitted" in result.stderr.decode()


def test_insufficient_credit_stops_submitting_and_exits_8(emu, env, tmp_path):
    make_catalogue(tmp_path, 4)
    emu.set_balance("0.70")
    result = batch("photos", "--scene", "scene.jpg", "-o", "out", "--yes", "-j", "1",
                   env=env, cwd=tmp_path)
    assert result.returncode == 8, result.stderr.decode()
    assert emu.created_run_count == 2 and len(outputs_under(tmp_path / "out")) == 2


def test_rerun_after_success_skips_everything(emu, env, tmp_path):
    make_catalogue(tmp_path, 4)
    assert batch("photos", "--scene", "scene.jpg", "-o", "out", "--yes", env=env,
                 cwd=tmp_path).returncode == 0
    result = batch("photos", "--scene", "scene.jpg", "-o", "out", "--json", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    assert all(json.loads(line)["skipped"] for line in result.stdout.decode().splitlines())
    assert emu.created_run_count == 4


def test_existing_output_is_skipped_not_paid(emu, env, tmp_path):
    make_catalogue(tmp_path, 2)
    (tmp_path / "out" / "photos" / "shoes").mkdir(parents=True)
    (tmp_path / "out" / "photos" / "shoes" / "item00-bg.webp").write_bytes(b"mine")
    result = batch("photos", "--scene", "scene.jpg", "-o", "out", "--yes", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    assert emu.created_run_count == 1
    assert (tmp_path / "out/photos/shoes/item00-bg.webp").read_bytes() == b"mine"


def test_unreadable_photo_fails_alone(emu, env, tmp_path):
    make_catalogue(tmp_path, 2)
    (tmp_path / "photos" / "shoes" / "broken.png").write_text("not an image")
    result = batch("photos", "--scene", "scene.jpg", "-o", "out", "--yes", env=env, cwd=tmp_path)
    assert result.returncode == 6
    assert "broken.png: not an image" in result.stderr.decode()
    assert emu.created_run_count == 2


def test_dry_run_sends_nothing(emu, env, tmp_path):
    make_catalogue(tmp_path, 3)
    result = batch("photos", "--scene", "scene.jpg", "-o", "out", "--dry-run", "--json",
                   env=env, cwd=tmp_path)
    assert result.returncode == 0
    lines = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert lines[-1]["runs_to_create"] == 3 and lines[-1]["estimated_cost"] == "1.05"
    assert emu.requests == [] and not (tmp_path / "out").exists()


def test_globs_and_files(emu, env, tmp_path):
    make_catalogue(tmp_path, 6)
    result = batch("photos/*/item0[01].png", "--scene", "scene.jpg", "-o", "out", "--yes",
                   "--dry-run", env=env, cwd=tmp_path)
    assert result.returncode == 0 and result.stdout.decode().count("submit") == 2
    assert batch("photos/*.gif", "--scene", "scene.jpg", env=env, cwd=tmp_path).returncode == 2


def test_report_and_github_annotations(emu, env, tmp_path):
    make_catalogue(tmp_path, 3)
    emu.faults.fail_runs(1, status="failed", code="MODEL_ERROR", message="bad luck")
    summary = tmp_path / "summary.md"
    env.update(GITHUB_ACTIONS="true", GITHUB_STEP_SUMMARY=str(summary))
    result = batch("photos", "--scene", "scene.jpg", "-o", "out", "--yes", "-j", "1",
                   "--report", "report.html", env=env, cwd=tmp_path)
    assert result.returncode == 6
    stderr = result.stderr.decode()
    assert stderr.count("::error file=photos/") == 1 and "bad luck" in stderr
    assert "| failed | 1 |" in summary.read_text() and "| succeeded | 2 |" in summary.read_text()
    html = (tmp_path / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 3 * 2 + 2  # PNG thumbnails keep alpha
    for run in emu.runs():
        assert run["id"] in html
    assert "item00.png" in html and "failed" in html


def test_plain_progress_has_no_control_characters(emu, env, tmp_path):
    make_catalogue(tmp_path, 3)
    result = batch("photos", "--scene", "scene.jpg", "-o", "out", "--yes", env=env, cwd=tmp_path)
    stderr = result.stderr.decode()
    assert not has_control_chars(stderr)
    assert "runs created  3" in stderr and "money spent   $1.05" in stderr
    assert sorted(result.stdout.decode().split()) == sorted(
        str(p.relative_to(tmp_path)) for p in outputs_under(tmp_path / "out"))


def _start(args, env, cwd):
    return subprocess.Popen([sys.executable, "-m", "runflow_bg", "batch", *args], env=env, cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_until(predicate, seconds=30.0):
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.02)


def test_sigkill_halfway_then_rerun_creates_each_run_once(emu, env, tmp_path):
    make_catalogue(tmp_path, 12)
    emu.run_seconds = 1.0
    args = ["photos", "--scene", "scene.jpg", "-o", "out", "--yes", "-j", "4"]
    process = _start(args, env, tmp_path)
    _wait_until(lambda: emu.created_run_count >= 6)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    created_before = emu.created_run_count
    assert created_before < 12
    result = batch(*args, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    assert len(outputs_under(tmp_path / "out")) == 12
    assert emu.created_run_count == 12


def test_sigint_exits_130_names_runs_in_flight_and_resumes(emu, env, tmp_path):
    make_catalogue(tmp_path, 6)
    emu.run_seconds = 30
    args = ["photos", "--scene", "scene.jpg", "-o", "out", "--yes", "-j", "3"]
    process = _start(args, env, tmp_path)
    _wait_until(lambda: emu.created_run_count >= 3 and emu.count("run_get") >= 3)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, stderr.decode()
    for run in emu.runs():
        assert run["id"] in stderr.decode()
    assert "Run the same command again to resume" in stderr.decode()
    emu.run_seconds = 0.2  # for the runs the re-run creates
    emu.finish_runs()  # the runs in flight end now instead of after 30 s
    result = batch(*args, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    assert emu.created_run_count == 6 and len(outputs_under(tmp_path / "out")) == 6


def test_bad_options_exit_2(env, tmp_path):
    make_catalogue(tmp_path, 1)
    for extra in (["--max-cost", "lots"], ["-j", "0"], ["--shard", "2"]):
        result = batch("photos", "--scene", "scene.jpg", *extra, env=env, cwd=tmp_path)
        assert result.returncode == 2, extra


def test_missing_scene_exits_4(emu, env, tmp_path):
    make_catalogue(tmp_path, 1)
    result = batch("photos", "--scene", "nope.jpg", "--yes", env=env, cwd=tmp_path)
    assert result.returncode == 4 and "nope.jpg: no such file" in result.stderr.decode()
    assert emu.requests == []


def test_service_unavailable_throughout_exits_5(emu, env, tmp_path):
    make_catalogue(tmp_path, 2)
    emu.faults.fail_next("run_create", 503, count=100, retry_after=0)
    result = batch("photos", "--scene", "scene.jpg", "-o", "out", "--yes", env=env, cwd=tmp_path)
    assert result.returncode == 5, result.stderr.decode()
    assert "Runflow stayed unavailable" in result.stderr.decode()
    assert emu.created_run_count == 0


def test_local_batch_needs_no_key(work, isolated_env):
    env = cli_env(None, isolated_env, key=None, RUNFLOW_BG_LOCAL_RUN_SECONDS="0.2")
    write_photo(work / "second.png", color=(20, 90, 200))
    result = batch("bottle.png", "second.png", "--scene", "marble.jpg", "--local", "--yes",
                   env=env, cwd=work)
    assert result.returncode == 0, result.stderr.decode()
    assert sorted(result.stdout.decode().split()) == ["bottle-bg.webp", "second-bg.webp"]
    stderr = result.stderr.decode()
    assert "2 local runs, on this machine and free" in stderr
    assert "balance" not in stderr and "money spent" not in stderr and "$" not in stderr


def test_terminal_shows_a_live_display(emu, env, tmp_path):
    from test_replace_cli import run_with_terminal_stderr

    make_catalogue(tmp_path, 4)
    env = {k: v for k, v in env.items() if k != "NO_COLOR"}
    env["TERM"] = "xterm-256color"
    emu.run_seconds = 1.0
    code, stdout, screen = run_with_terminal_stderr(
        ["batch", "photos", "--scene", "scene.jpg", "-o", "out", "--yes", "-j", "2"], env, tmp_path)
    assert code == 0, screen
    assert "\x1b[" in screen and "in flight 2" in screen and "ETA" in screen
    assert "succeeded 4 · failed 0 · skipped 0 · cached 0" in screen
    assert "money spent" in screen and len(stdout.split()) == 4
