"""`runflow-bg batch --manifest`: a catalogue of requests, every row checked before any is paid."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from helpers import run_cli, write_photo, write_scene


def catalogue(root: Path) -> None:
    """Two photos, two scenes."""
    write_photo(root / "mug.png", size=(64, 48), color=(200, 30, 30))
    write_photo(root / "lamp.png", size=(64, 48), color=(30, 160, 40))
    write_scene(root / "beach.jpg", color=(40, 90, 160))
    write_scene(root / "loft.jpg", color=(150, 120, 90))


CSV = """photo,scene,sku,metadata.sku,batch_note
mug.png,beach.jpg,M-1,M-1,first
mug.png,loft.jpg,M-1,M-1,second
lamp.png,beach.jpg,L-2,L-2,third
lamp.png,loft.jpg,L-2,L-2,fourth
"""


def batch(*args: str, env: dict, cwd: Path):
    return run_cli("batch", *args, "-o", "out", "--yes", env=env, cwd=cwd)


def test_csv_manifest_sends_each_row_with_its_scene_and_metadata(emu, env, tmp_path):
    catalogue(tmp_path)
    (tmp_path / "items.csv").write_text(CSV)
    result = batch("--manifest", "items.csv", "--name", "{sku}-{scene}.{ext}", "--json",
                   env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    assert emu.created_run_count == 4
    assert sorted(run["metadata"]["sku"] for run in emu.runs()) == ["L-2", "L-2", "M-1", "M-1"]
    saved = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert saved == ["L-2-beach.webp", "L-2-loft.webp", "M-1-beach.webp", "M-1-loft.webp"]
    lines = [json.loads(line) for line in result.stdout.decode().splitlines()]
    by_row = {line["row"]: line for line in lines}
    assert sorted(by_row) == [2, 3, 4, 5]
    assert by_row[3]["scene"] == "loft.jpg"
    assert by_row[3]["columns"] == {"sku": "M-1", "batch_note": "second"}

    again = batch("--manifest", "items.csv", "--name", "{sku}-{scene}.{ext}",
                  env=env, cwd=tmp_path)
    assert again.returncode == 0, again.stderr.decode()
    assert emu.created_run_count == 4, "a rerun resumes: nothing is paid twice"


def test_bad_rows_are_reported_by_number_before_any_request(emu, env, tmp_path):
    catalogue(tmp_path)
    (tmp_path / "notes.png").write_text("not an image")
    (tmp_path / "items.csv").write_text(
        "photo;scene;name\n"
        "mug.png;beach.jpg;\n"
        "missing.png;beach.jpg;\n"
        "notes.png;loft.jpg;\n"
        "lamp.png;;\n"
        "lamp.png;beach.jpg;{nope}.{ext}\n"
        "mug.png;beach.jpg;\n")
    result = batch("--manifest", "items.csv", env=env, cwd=tmp_path)
    assert result.returncode == 4, result.stderr.decode()
    err = " ".join(result.stderr.decode().split())
    for row in (3, 4, 5, 6, 7):
        assert f"row {row}:" in err
    assert "row 2:" not in err and "Nothing was submitted" in err
    assert emu.requests == []

    skipped = batch("--manifest", "items.csv", "--skip-bad-rows", env=env, cwd=tmp_path)
    assert skipped.returncode == 0, skipped.stderr.decode()
    assert "skipped 5 bad rows" in " ".join(skipped.stderr.decode().split())
    assert emu.created_run_count == 1


def test_jsonl_manifest_with_own_prompt_out_and_default_scene(emu, env, tmp_path):
    catalogue(tmp_path)
    rows = [{"photo": "mug.png", "out": "kitchen", "prompt": "morning light", "metadata.sku": "M-1"},
            {"photo": "lamp.png", "scene": "loft.jpg", "shelf": 3}]
    (tmp_path / "items.jsonl").write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    result = batch("--manifest", "items.jsonl", "--scene", "beach.jpg", "--json",
                   env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    assert (tmp_path / "out" / "kitchen" / "mug-bg.webp").is_file()
    assert (tmp_path / "out" / "lamp-bg.webp").is_file()
    runs = emu.runs()
    assert sorted(str(run["metadata"]) for run in runs) == ["None", "{'sku': 'M-1'}"]
    lines = {json.loads(line)["row"]: json.loads(line) for line in result.stdout.decode().splitlines()}
    assert lines[1]["prompt"] == "morning light" and lines[1]["scene"] == "beach.jpg"
    assert lines[2]["scene"] == "loft.jpg" and lines[2]["columns"] == {"shelf": "3"}


def test_photos_and_manifest_together_are_refused(emu, env, tmp_path):
    catalogue(tmp_path)
    (tmp_path / "items.csv").write_text(CSV)
    result = batch("mug.png", "--manifest", "items.csv", "--scene", "beach.jpg",
                   env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert emu.requests == []


def test_results_file_round_trips_as_the_next_manifest(emu, env, tmp_path):
    catalogue(tmp_path)
    (tmp_path / "items.csv").write_text(CSV)
    emu.faults.fail_runs(1, status="failed", code="MODEL_ERROR", message="bad luck")
    first = batch("--manifest", "items.csv", "--name", "{stem}-{scene}.{ext}", "-j", "1",
                  "--results", "results.csv", env=env, cwd=tmp_path)
    assert first.returncode == 6, first.stderr.decode()
    with open(tmp_path / "results.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert list(rows[0]) == ["photo", "scene", "sku", "metadata.sku", "batch_note",
                             "status", "run_id", "cost", "outputs", "error"]
    assert [row["batch_note"] for row in rows] == ["first", "second", "third", "fourth"]
    assert [row["status"] for row in rows] == ["failed", "succeeded", "succeeded", "succeeded"]
    assert "bad luck" in rows[0]["error"] and rows[1]["outputs"] == "out/mug-loft.webp"
    assert emu.created_run_count == 4

    again = batch("--manifest", "results.csv", "--name", "{stem}-{scene}.{ext}",
                  "--results", "results.csv", env=env, cwd=tmp_path)
    assert again.returncode == 6, "the failed row stays failed without --retry-failed"
    assert emu.created_run_count == 4, "the results file resumes the same requests"

    retry = batch("--manifest", "results.csv", "--name", "{stem}-{scene}.{ext}",
                  "--retry-failed", "--results", "retried.csv", env=env, cwd=tmp_path)
    assert retry.returncode == 0, retry.stderr.decode()
    assert emu.created_run_count == 5
    with open(tmp_path / "retried.csv", newline="") as file:
        retried = list(csv.DictReader(file))
    assert [(row["photo"], row["scene"], row["status"]) for row in retried] == [
        ("mug.png", "beach.jpg", "succeeded")]


def test_results_of_photos_named_on_the_command_line(emu, env, tmp_path):
    catalogue(tmp_path)
    result = batch("mug.png", "lamp.png", "--scene", "beach.jpg", "--results", "r.jsonl",
                   env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    rows = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert [(row["photo"], row["scene"], row["status"]) for row in rows] == [
        ("lamp.png", "beach.jpg", "succeeded"), ("mug.png", "beach.jpg", "succeeded")]
    assert rows[0]["outputs"] == ["out/lamp-bg.webp"] and rows[0]["error"] is None


def test_results_folder_is_checked_before_anything_is_spent(emu, env, tmp_path):
    catalogue(tmp_path)
    result = batch("mug.png", "--scene", "beach.jpg", "--results", "missing/r.csv",
                   env=env, cwd=tmp_path)
    assert result.returncode == 4 and emu.requests == []


def test_names_from_columns_and_zero_padded_row_numbers(emu, env, tmp_path):
    catalogue(tmp_path)
    (tmp_path / "items.csv").write_text("photo,scene,sku,name\n"
                                        "mug.png,beach.jpg,M/1,\n"
                                        "lamp.png,beach.jpg,L-2,{sku}.MAIN.{ext}\n")
    result = batch("--manifest", "items.csv", "--name", "{row:03}-{sku}.{ext}",
                   env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["002-M_1.webp",
                                                                   "L-2.MAIN.webp"]

    photos = batch("mug.png", "lamp.png", "--scene", "loft.jpg", "--name", "{row:04}.{ext}",
                   env=env, cwd=tmp_path)
    assert photos.returncode == 0, photos.stderr.decode()
    assert (tmp_path / "out" / "0001.webp").is_file() and (tmp_path / "out" / "0002.webp").is_file()


def test_name_fields_the_manifest_lacks_are_refused(emu, env, tmp_path):
    catalogue(tmp_path)
    (tmp_path / "items.csv").write_text(CSV)
    unknown = batch("--manifest", "items.csv", "--name", "{colour}.{ext}", env=env, cwd=tmp_path)
    assert unknown.returncode == 2 and "{colour}" in unknown.stderr.decode()
    rows = [{"photo": "mug.png", "scene": "beach.jpg", "sku": "M-1"},
            {"photo": "lamp.png", "scene": "beach.jpg"}]
    (tmp_path / "items.jsonl").write_text("\n".join(json.dumps(row) for row in rows))
    missing = batch("--manifest", "items.jsonl", "--name", "{sku}.{ext}", env=env, cwd=tmp_path)
    assert missing.returncode == 4
    assert "row 2: no value for {sku}" in " ".join(missing.stderr.decode().split())
    assert emu.requests == []


def test_a_single_request_is_row_one():
    from runflow_bg.naming import bind_fields, check_template, render

    assert render(check_template("{row:03}.{ext}"), stem="a", scene="b", index=0, run_id="r",
                  ext="png") == "001.png"
    assert bind_fields("{sku}-{stem}{{x}}.{ext}", {"sku": "a/b"}) == "a_b-{stem}{{x}}.{ext}"


def test_shards_of_a_manifest_cover_its_rows_once(emu, env, tmp_path):
    catalogue(tmp_path)
    (tmp_path / "items.csv").write_text(CSV)
    shards = []
    for k in (1, 2):
        result = batch("--manifest", "items.csv", "--name", "{sku}-{scene}.{ext}", "--json",
                       "--shard", f"{k}/2", env=env, cwd=tmp_path)
        assert result.returncode == 0, result.stderr.decode()
        shards.append({json.loads(line)["row"] for line in result.stdout.decode().splitlines()})
    assert shards == [{2, 4}, {3, 5}]
    assert emu.created_run_count == 4 and len(list((tmp_path / "out").iterdir())) == 4


def test_max_cost_stops_a_manifest_and_a_rerun_goes_on(emu, env, tmp_path):
    catalogue(tmp_path)
    (tmp_path / "items.csv").write_text(CSV)
    args = ("--manifest", "items.csv", "--name", "{sku}-{scene}.{ext}")
    capped = batch(*args, "--max-cost", "0.70", env=env, cwd=tmp_path)
    assert capped.returncode == 8, capped.stderr.decode()
    assert "--max-cost reached; 2 items were not submitted" in capped.stderr.decode()
    assert emu.created_run_count == 2 and len(list((tmp_path / "out").iterdir())) == 2
    rest = batch(*args, "--max-cost", "0.70", env=env, cwd=tmp_path)
    assert rest.returncode == 0, rest.stderr.decode()
    assert emu.created_run_count == 4 and len(list((tmp_path / "out").iterdir())) == 4
