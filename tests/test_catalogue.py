"""A catalogue end to end: a manifest of two photos times two scenes, one photo served over
https on loopback, a results file fed back as the next manifest, and reruns that create nothing
new; from the command line and from Python."""

from __future__ import annotations

import csv

import pytest

from helpers import KEY, QuickClock, cli_env, run_cli, write_photo, write_scene
from image_host import ImageHost
from runflow_bg import Runflow
from runflow_bg.emulator import Emulator
from runflow_bg.errors import RunFailed


@pytest.fixture
def emu():
    with Emulator(api_key=KEY, run_seconds=0.01) as server:
        yield server


@pytest.fixture
def host():
    with ImageHost() as server:
        yield server


@pytest.fixture
def catalogue(tmp_path, host):
    """Two products (one of them by URL) and two scenes, as a shop's sheet names them."""
    write_photo(tmp_path / "mug.png")
    (tmp_path / "elsewhere").mkdir()
    lamp = write_photo(tmp_path / "elsewhere" / "lamp.png", color=(30, 160, 60))
    lamp_url = host.put("/feed/lamp.png", lamp.read_bytes())
    (tmp_path / "scenes").mkdir()
    write_scene(tmp_path / "scenes" / "beach.jpg")
    write_scene(tmp_path / "scenes" / "loft.jpg", color=(120, 80, 40))
    (tmp_path / "catalogue.csv").write_text(
        "photo,sku,metadata.sku\n"
        f"mug.png,M-1,M-1\n"
        f"{lamp_url}?sig=secret,L-2,L-2\n")
    return tmp_path


def rows_of(path) -> list[dict]:
    return list(csv.DictReader(path.open()))


def test_the_catalogue_from_the_command_line(catalogue, emu, host, isolated_env):
    env = cli_env(emu.base_url, isolated_env, SSL_CERT_FILE=host.ca_file)
    args = ("batch", "--manifest", "catalogue.csv", "--scene", "scenes", "-o", "out",
            "--name", "{sku}.{scene}.{ext}", "--results", "results.csv", "--yes")
    first = run_cli(*args, env=env, cwd=catalogue)
    assert first.returncode == 0, first.stderr.decode()
    assert emu.created_run_count == 4
    assert sorted(p.name for p in (catalogue / "out").iterdir()) == [
        "L-2.beach.webp", "L-2.loft.webp", "M-1.beach.webp", "M-1.loft.webp"]
    results = rows_of(catalogue / "results.csv")
    assert len(results) == 4 and {r["status"] for r in results} == {"succeeded"}
    assert {r["scene"] for r in results} == {"scenes/beach.jpg", "scenes/loft.jpg"}
    assert all(r["run_id"] and r["outputs"] for r in results)
    assert b"secret" not in first.stdout + first.stderr
    assert {r["photo"] for r in results} >= {"mug.png"}, "cells as given, to feed back"
    assert {r["metadata.sku"] for r in results} == {"M-1", "L-2"}
    assert len(host.seen("/feed/lamp.png")) == 1, "fetched once for both scenes"

    again = run_cli(*args, env=env, cwd=catalogue)
    assert again.returncode == 0 and emu.created_run_count == 4
    fed_back = run_cli("batch", "--manifest", "results.csv", "-o", "out",
                       "--name", "{sku}.{scene}.{ext}", "--yes", env=env, cwd=catalogue)
    assert fed_back.returncode == 0, fed_back.stderr.decode()
    assert emu.created_run_count == 4, "the results file is the same requests: nothing new"


def test_failed_rows_of_a_results_file_run_again(catalogue, emu, host, isolated_env):
    env = cli_env(emu.base_url, isolated_env, SSL_CERT_FILE=host.ca_file)
    emu.faults.fail_runs(1)
    first = run_cli("batch", "--manifest", "catalogue.csv", "--scene", "scenes/beach.jpg",
                    "-o", "out", "--results", "results.csv", "--yes", "-j", "1",
                    env=env, cwd=catalogue)
    assert first.returncode == 6
    assert [r["status"] for r in rows_of(catalogue / "results.csv")].count("failed") == 1
    retry = run_cli("batch", "--manifest", "results.csv", "-o", "out", "--retry-failed",
                    "--results", "retried.csv", "--yes", env=env, cwd=catalogue)
    assert retry.returncode == 0, retry.stderr.decode()
    assert emu.created_run_count == 3
    assert [r["status"] for r in rows_of(catalogue / "retried.csv")] == ["succeeded"]


def test_the_catalogue_from_python(catalogue, emu, host, isolated_env, monkeypatch):
    monkeypatch.chdir(catalogue)
    monkeypatch.setenv("SSL_CERT_FILE", host.ca_file)  # the network's settings are the process's
    rf = Runflow(KEY, base_url=emu.base_url, home=isolated_env, clock=QuickClock(), environ={})
    seen = []
    with rf.plan_batch(manifest="catalogue.csv", scenes=["scenes"], out="out",
                       name="{sku}.{scene}.{ext}", results="results.csv") as job:
        assert job.plan.runs_to_create == 4 and emu.created_run_count == 0
        assert str(job.plan.estimated_cost()) == "1.40"
        result = job.run(on_outcome=lambda item, outcome: seen.append(item.photo.label))
    assert result.failure() is None and result.runs_created == 4 and len(seen) == 4
    assert len(rows_of(catalogue / "results.csv")) == 4
    again = rf.batch(manifest="results.csv", out="out", name="{sku}.{scene}.{ext}")
    assert again.runs_created == 0 and emu.created_run_count == 4


def test_a_failed_item_is_in_its_outcome_and_raised_on_request(catalogue, emu, host,
                                                                isolated_env, monkeypatch):
    monkeypatch.chdir(catalogue)
    monkeypatch.setenv("SSL_CERT_FILE", host.ca_file)  # the network's settings are the process's
    rf = Runflow(KEY, base_url=emu.base_url, home=isolated_env, clock=QuickClock(), environ={})
    emu.faults.fail_runs(1, message="model crashed")
    result = rf.batch(["mug.png"], scenes="scenes/beach.jpg", out="out")
    assert [o.error.message for o in result.outcomes if o.error][0].count("model crashed") == 1
    with pytest.raises(RunFailed, match="1 of 1 items failed"):
        result.raise_for_failure()
