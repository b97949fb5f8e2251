"""The CLI reads what Runflow documents: both cursors, the price it reports, and run logs."""

from __future__ import annotations

import json

import pytest

from helpers import run_cli, write_photo, write_scene
from runflow_bg.service import runs as runs_service
from test_runs_cli import submit_elsewhere

REPLACE = ("replace", "bottle.png", "marble.jpg")


@pytest.mark.parametrize("envelope", ["reference", "next_pq"])
def test_runs_list_follows_either_cursor(emu, work, env, monkeypatch, envelope):
    emu.faults.list_envelope = envelope
    ids = [submit_elsewhere(emu, work) for _ in range(5)]
    monkeypatch.setattr(runs_service, "LIST_PAGE_SIZE", 2)
    result = run_cli("runs", "list", "--limit", "5", "--json", env=env, cwd=work)
    assert result.returncode == 0, result.stderr.decode()
    listed = [json.loads(line)["run_id"] for line in result.stdout.decode().splitlines()]
    assert sorted(listed) == sorted(ids) and emu.count("run_list") == 3


def catalogue(root, count):
    (root / "photos").mkdir()
    for index in range(count):
        write_photo(root / "photos" / f"p{index}.png", color=(50 * index, 90, 40))
    write_scene(root / "scene.jpg")


def test_estimates_and_money_spent_follow_runflows_price(env, tmp_path):
    from helpers import KEY
    from runflow_bg.emulator import Emulator

    catalogue(tmp_path, 3)
    with Emulator(api_key=KEY, run_seconds=0.1, price="0.50") as emu:
        env = {**env, "RUNFLOW_BASE_URL": emu.base_url}
        result = run_cli("batch", "photos", "--scene", "scene.jpg", "--yes", "--max-cost", "1.20",
                         env=env, cwd=tmp_path)
        stderr = result.stderr.decode()
        assert result.returncode == 8, stderr
        assert "2 runs will be created, estimated cost $1.00 at $0.50 a run" in stderr
        assert "money spent   $1.00" in stderr and emu.created_run_count == 2
        assert emu.count("pricing") == 1
        again = run_cli("batch", "photos", "--scene", "scene.jpg", "--yes", env=env, cwd=tmp_path)
        assert again.returncode == 0 and emu.count("pricing") == 1, "the price is kept for a day"


def test_a_missing_price_falls_back_to_the_published_one_with_a_notice(emu, env, tmp_path):
    catalogue(tmp_path, 2)
    emu.faults.fail_next("pricing", 404, count=10)
    result = run_cli("batch", "photos", "--scene", "scene.jpg", "--yes", env=env, cwd=tmp_path)
    stderr = result.stderr.decode()
    assert result.returncode == 0, stderr
    assert "Runflow did not report a price for runflow/background-replace" in stderr
    assert "at $0.35 a run" in stderr


def test_dry_run_asks_nothing_and_uses_the_known_price(emu, work, env):
    result = run_cli(*REPLACE, "--dry-run", "--json", env=env, cwd=work)
    assert result.returncode == 0 and emu.requests == []
    assert json.loads(result.stdout)["estimated_cost"] == "0.35"


def test_runs_logs_prints_a_runs_lines(emu, work, env):
    emu.faults.fail_runs(1, message="The scene is too dark.")
    run_id = submit_elsewhere(emu, work)
    emu.finish_runs()
    plain = run_cli("runs", "logs", run_id, env=env, cwd=work)
    assert plain.returncode == 0, plain.stderr.decode()
    lines = plain.stdout.decode().splitlines()
    assert len(lines) >= 2 and lines[-1].endswith("ERROR The scene is too dark.")
    tail = run_cli("runs", "logs", run_id, "--tail", "1", "--json", env=env, cwd=work)
    record = json.loads(tail.stdout)
    assert record["level"] == "error" and record["message"] == "The scene is too dark."
    missing = run_cli("runs", "logs", "no-such-run", env=env, cwd=work)
    assert missing.returncode == 4 and "Hint:" in missing.stderr.decode()


def test_a_failed_run_shows_its_last_log_lines(emu, work, env, tmp_path):
    emu.faults.fail_runs(1, message="The scene is too dark.")
    result = run_cli(*REPLACE, "--json", env=env, cwd=work)
    assert result.returncode == 6
    assert "| " in result.stderr.decode() and "The scene is too dark." in result.stderr.decode()
    assert json.loads(result.stdout)["error"]["log"][-1].endswith("The scene is too dark.")


def test_a_failed_batch_item_shows_its_log_in_the_output_and_the_report(emu, env, tmp_path):
    catalogue(tmp_path, 2)
    emu.faults.fail_runs(1, message="The scene is too dark.")
    result = run_cli("batch", "photos", "--scene", "scene.jpg", "--yes", "--report", "r.html",
                     env=env, cwd=tmp_path)
    assert result.returncode == 6
    assert ": | " in result.stderr.decode() and "The scene is too dark." in result.stderr.decode()
    assert "ERROR The scene is too dark." in (tmp_path / "r.html").read_text()
