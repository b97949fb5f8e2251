"""Never pay twice, never pay before every check passed: the CLI against the emulator.

Each test counts what reached the emulator: creates, and for refusals any request at all.
Races between real processes and interrupts are in the reliability suite (tests/reliability.py).
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

from helpers import cli_env, run_cli, write_photo, write_scene

REPLACE = ("replace", "bottle.png", "marble.jpg")


def journal_rows(home: Path, name: str = "journal.sqlite3") -> list[dict]:
    with sqlite3.connect(home / "state" / name) as db:
        db.row_factory = sqlite3.Row
        return [dict(row) for row in db.execute("SELECT * FROM requests ORDER BY created_at")]


def catalogue(root: Path, count: int) -> None:
    (root / "photos").mkdir()
    for index in range(count):
        write_photo(root / "photos" / f"p{index}.png", size=(48, 36), color=(40 + 30 * index, 80, 120))
    write_scene(root / "scene.jpg")


# -- checked before paying -----------------------------------------------------------------------

def test_an_unwritable_report_path_is_refused_before_any_request(emu, env, tmp_path):
    catalogue(tmp_path, 2)
    result = run_cli("batch", "photos", "--scene", "scene.jpg", "--yes",
                     "--report", "missing-folder/report.html", env=env, cwd=tmp_path)
    assert result.returncode == 4, result.stderr.decode()
    assert "missing-folder" in result.stderr.decode() and "Hint:" in result.stderr.decode()
    assert emu.requests == []


def test_a_folder_at_the_output_name_is_refused_before_any_request(emu, work, env):
    (work / "bottle-bg.webp").mkdir()
    result = run_cli(*REPLACE, "--overwrite", env=env, cwd=work)
    assert result.returncode == 4 and "bottle-bg.webp is a folder" in result.stderr.decode()
    assert emu.requests == []


def test_a_dangling_link_at_the_output_name_is_refused_before_any_request(emu, work, env):
    (work / "bottle-bg.webp").symlink_to(work / "nowhere.webp")
    plain = run_cli(*REPLACE, env=env, cwd=work)
    assert plain.returncode == 4 and "already exists" in plain.stderr.decode()
    forced = run_cli(*REPLACE, "--overwrite", env=env, cwd=work)
    assert forced.returncode == 4 and "link to nothing" in forced.stderr.decode()
    assert emu.requests == []


def test_two_items_saved_under_one_name_are_refused_before_any_request(emu, env, tmp_path):
    catalogue(tmp_path, 2)
    result = run_cli("batch", "photos", "--scene", "scene.jpg", "--yes", "--name", "{scene}.{ext}",
                     env=env, cwd=tmp_path)
    assert result.returncode == 2 and "would both be saved as" in result.stderr.decode()
    assert emu.requests == []


def test_a_run_id_with_a_slash_is_recorded_and_settled(emu, work, env):
    emu.faults.run_id_prefix = "tenant/"
    result = run_cli(*REPLACE, "--json", env=env, cwd=work)
    assert result.returncode == 0, result.stderr.decode()
    data = json.loads(result.stdout)
    assert data["run_id"].startswith("tenant/") and data["outputs"][0]["path"] == "bottle-bg.webp"


# -- the tool's own outputs are not inputs ----------------------------------------------------

def test_a_second_batch_over_a_folder_does_not_process_its_own_outputs(emu, env, tmp_path):
    catalogue(tmp_path, 3)
    first = run_cli("batch", "photos", "--scene", "scene.jpg", "--yes", env=env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr.decode()
    assert len(list((tmp_path / "photos").glob("*-bg.webp"))) == 3
    again = run_cli("batch", "photos", "--scene", "scene.jpg", "--yes", env=env, cwd=tmp_path)
    assert again.returncode == 0, again.stderr.decode()
    assert "3 excluded (earlier outputs" in again.stderr.decode()
    assert emu.created_run_count == 3 and not list((tmp_path / "photos").glob("*-bg-bg.*"))
    plan = run_cli("batch", "photos", "--scene", "scene.jpg", "--include-outputs", "--dry-run",
                   env=env, cwd=tmp_path)
    assert plan.returncode == 0 and plan.stdout.decode().count("p0-bg.webp") == 1


def test_earlier_outputs_are_known_without_the_journal(emu, env, tmp_path, isolated_env):
    catalogue(tmp_path, 2)
    assert run_cli("batch", "photos", "--scene", "scene.jpg", "--yes", env=env,
                   cwd=tmp_path).returncode == 0
    fresh = cli_env(emu.base_url, tmp_path / "other-home")
    plan = run_cli("batch", "photos", "--scene", "scene.jpg", "--dry-run", env=fresh, cwd=tmp_path)
    assert "2 excluded (earlier outputs" in plan.stderr.decode()
    assert "p0-bg.webp" not in plan.stdout.decode()


# -- journal and disk agree -------------------------------------------------------------------

def test_running_a_finished_replace_again_is_done_without_any_request(emu, work, env):
    first = run_cli(*REPLACE, env=env, cwd=work)
    assert first.returncode == 0, first.stderr.decode()
    before = len(emu.requests)
    again = run_cli(*REPLACE, env=env, cwd=work)
    assert again.returncode == 0, again.stderr.decode()
    assert again.stdout == first.stdout == b"bottle-bg.webp\n"
    assert "already done by run" in again.stderr.decode() and len(emu.requests) == before


def test_an_output_in_place_while_the_journal_lags_is_reconciled(emu, work, env, isolated_env):
    assert run_cli(*REPLACE, env=env, cwd=work).returncode == 0
    with sqlite3.connect(isolated_env / "state" / "journal.sqlite3") as db:
        db.execute("UPDATE requests SET status = 'submitted', outputs = '[]'")  # killed before the record
    again = run_cli(*REPLACE, env=env, cwd=work)
    assert again.returncode == 0, again.stderr.decode()
    assert emu.created_run_count == 1 and again.stdout == b"bottle-bg.webp\n"
    assert journal_rows(isolated_env)[-1]["status"] == "succeeded"


def test_leftover_temporary_files_of_dead_processes_are_removed(emu, work, env):
    dead = work / ".runflow-bg-999999999-run-0.abc.part"
    alive = work / f".runflow-bg-{os.getpid()}-run-0.def.part"
    dead.write_bytes(b"half")
    alive.write_bytes(b"being written")
    assert run_cli(*REPLACE, env=env, cwd=work).returncode == 0
    assert not dead.exists() and alive.exists()


# -- lost answers: the grace window and exit 9 --------------------------------------------------

def test_a_lost_create_with_no_run_behind_it_is_unknown_then_created_by_the_next_run(
        emu, work, env, isolated_env):
    emu.faults.fail_next("run_create", 502)
    first = run_cli(*REPLACE, env=env, cwd=work)
    assert first.returncode == 9, first.stderr.decode()
    stderr = first.stderr.decode()
    assert "unknown" in stderr and "Hint: Run the same command again" in stderr
    assert emu.created_run_count == 0 and emu.count("run_list") >= 10
    assert journal_rows(isolated_env)[-1]["status"] == "unknown"
    again = run_cli(*REPLACE, env={**env, "RUNFLOW_BG_CREATE_GRACE": "0"}, cwd=work)
    assert again.returncode == 0, again.stderr.decode()
    assert emu.created_run_count == 1
    rows = journal_rows(isolated_env)
    assert len(rows) == 1 and rows[0]["status"] == "succeeded", "the same request, resumed"


def test_a_lost_create_whose_run_exists_is_found_not_paid_again(emu, work, env):
    emu.faults.drop_after_create(1)
    result = run_cli(*REPLACE, env=env, cwd=work)
    assert result.returncode == 0, result.stderr.decode()
    assert emu.created_run_count == 1 and emu.count("run_create") == 1


def test_the_next_run_looks_an_unknown_create_up_first(emu, work, env, isolated_env):
    emu.faults.drop_after_create(1)
    emu.faults.fail_next("run_list", 503, count=1000, retry_after=0)
    first = run_cli(*REPLACE, env=env, cwd=work)
    assert first.returncode == 9 and emu.created_run_count == 1
    emu.faults.clear()
    again = run_cli(*REPLACE, env=env, cwd=work)
    assert again.returncode == 0, again.stderr.decode()
    assert emu.created_run_count == 1 and emu.count("run_create") == 1
    assert "resuming run" in again.stderr.decode()


# -- --local is free and has a journal of its own ---------------------------------------------

def test_local_is_free_and_says_so(work, isolated_env):
    env = cli_env(None, isolated_env, key=None, RUNFLOW_BG_LOCAL_RUN_SECONDS="0")
    dry = run_cli(*REPLACE, "--local", "--dry-run", env=env, cwd=work)
    assert "free" in dry.stdout.decode() and "$" not in dry.stdout.decode()
    result = run_cli(*REPLACE, "--local", "--json", env=env, cwd=work)
    assert result.returncode == 0, result.stderr.decode()
    assert json.loads(result.stdout)["cost"] in (None, "0.00")
    assert "cost" not in result.stderr.decode()
    assert journal_rows(isolated_env, "journal-local.sqlite3")[0]["status"] == "succeeded"


def test_a_local_result_is_never_reused_for_a_real_request(emu, work, env):
    local_env = {**env, "RUNFLOW_BG_LOCAL_RUN_SECONDS": "0"}
    assert run_cli(*REPLACE, "--local", "-o", "local", env=local_env, cwd=work).returncode == 0
    real = run_cli(*REPLACE, "-o", "real", env=env, cwd=work)
    assert real.returncode == 0, real.stderr.decode()
    assert emu.created_run_count == 1 and "reused" not in real.stderr.decode()
