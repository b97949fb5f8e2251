"""`runflow-bg batch` with several scenes: every photo with every scene, each pair its own item."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

from helpers import run_cli, write_photo, write_scene

TWO_SCENES = ("--scene", "scenes/beach.jpg", "--scene", "scenes/loft.jpg")


def shop(root: Path) -> None:
    """Two products and, in scenes/, two scenes and a hidden file that is no scene."""
    write_photo(root / "mug.png", size=(64, 48), color=(200, 30, 30))
    write_photo(root / "lamp.png", size=(64, 48), color=(30, 160, 40))
    (root / "scenes").mkdir()
    write_scene(root / "scenes" / "beach.jpg", color=(40, 90, 160))
    write_scene(root / "scenes" / "loft.jpg", color=(150, 120, 90))
    write_scene(root / "scenes" / ".draft.jpg", color=(0, 0, 0))


def batch(*args: str, env: dict, cwd: Path):
    return run_cli("batch", *args, env=env, cwd=cwd)


def files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def json_lines(result) -> list[dict]:
    return [json.loads(line) for line in result.stdout.decode().splitlines()]


def test_two_photos_with_two_scenes_make_four_runs_named_by_scene(emu, env, tmp_path):
    shop(tmp_path)
    args = ("mug.png", "lamp.png", *TWO_SCENES, "-o", "out", "--yes")
    first = batch(*args, "--json", "--report", "report.html", "--results", "results.csv",
                  env=env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr.decode()
    assert emu.created_run_count == 4
    assert files(tmp_path / "out") == ["lamp-beach-bg.webp", "lamp-loft-bg.webp",
                                       "mug-beach-bg.webp", "mug-loft-bg.webp"]
    assert "2 photos x 2 scenes = 4 requests, 4 to submit" in first.stderr.decode()
    lines = json_lines(first)
    assert sorted((line["photo"], line["scene"], line["outputs"][0]["path"]) for line in lines) == [
        ("lamp.png", "scenes/beach.jpg", "out/lamp-beach-bg.webp"),
        ("lamp.png", "scenes/loft.jpg", "out/lamp-loft-bg.webp"),
        ("mug.png", "scenes/beach.jpg", "out/mug-beach-bg.webp"),
        ("mug.png", "scenes/loft.jpg", "out/mug-loft-bg.webp")]
    assert len({line["client_ref"] for line in lines}) == 4

    with open(tmp_path / "results.csv", newline="") as file:
        rows = [(row["photo"], row["scene"], row["status"]) for row in csv.DictReader(file)]
    assert sorted(rows) == [("lamp.png", "scenes/beach.jpg", "succeeded"),
                            ("lamp.png", "scenes/loft.jpg", "succeeded"),
                            ("mug.png", "scenes/beach.jpg", "succeeded"),
                            ("mug.png", "scenes/loft.jpg", "succeeded")]
    html = (tmp_path / "report.html").read_text()
    body = html[html.index("<tbody>"):html.index("</tbody>")]
    scene_cells = re.findall(r"<tr><td>.*?</td><td>(.*?)</td>", body)
    assert len(scene_cells) == 4 and len(set(scene_cells)) == 2, "each item shows its own scene"

    again = batch(*args, "--json", env=env, cwd=tmp_path)
    assert again.returncode == 0, again.stderr.decode()
    assert emu.created_run_count == 4, "a rerun pays for nothing"
    assert all(line["skipped"] for line in json_lines(again))
    assert "4 done before" in again.stderr.decode()


def test_a_folder_of_scenes_and_a_scene_named_twice_count_once(emu, env, tmp_path):
    shop(tmp_path)
    result = batch("mug.png", "--scene", "scenes", "--scene", "./scenes/loft.jpg", "-o", "out",
                   "--yes", "--json", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    assert emu.created_run_count == 2, "the hidden file is no scene, loft.jpg counts once"
    assert sorted(line["scene"] for line in json_lines(result)) == ["scenes/beach.jpg",
                                                                   "scenes/loft.jpg"]
    assert files(tmp_path / "out") == ["mug-beach-bg.webp", "mug-loft-bg.webp"]

    (tmp_path / "empty").mkdir()
    empty = batch("mug.png", "--scene", "empty", "--yes", env=env, cwd=tmp_path)
    assert empty.returncode == 2 and "No scene image in the folder empty" in empty.stderr.decode()
    assert emu.created_run_count == 2


def test_a_manifest_row_without_a_scene_runs_with_every_scene(emu, env, tmp_path):
    shop(tmp_path)
    (tmp_path / "items.csv").write_text("photo,scene,sku\n"
                                        "mug.png,,M-1\n"
                                        "lamp.png,scenes/loft.jpg,L-2\n")
    args = ("--manifest", "items.csv", *TWO_SCENES, "--name", "{sku}-{scene}.{ext}", "-o", "out",
            "--yes", "--json")
    result = batch(*args, "--results", "results.csv", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    assert emu.created_run_count == 3
    assert files(tmp_path / "out") == ["L-2-loft.webp", "M-1-beach.webp", "M-1-loft.webp"]
    assert sorted((line["row"], line["scene"]) for line in json_lines(result)) == [
        (2, "scenes/beach.jpg"), (2, "scenes/loft.jpg"), (3, "scenes/loft.jpg")]
    with open(tmp_path / "results.csv", newline="") as file:
        rows = [(row["photo"], row["scene"], row["sku"]) for row in csv.DictReader(file)]
    assert sorted(rows) == [("lamp.png", "scenes/loft.jpg", "L-2"),
                            ("mug.png", "scenes/beach.jpg", "M-1"),
                            ("mug.png", "scenes/loft.jpg", "M-1")]

    again = batch(*args[2:], "--manifest", "results.csv", env=env, cwd=tmp_path)
    assert again.returncode == 0, again.stderr.decode()
    assert emu.created_run_count == 3, "the results file, fed back, is the same requests"
    assert all(line["skipped"] for line in json_lines(again))


def test_dry_run_shows_the_matrix_and_its_cost(emu, env, tmp_path):
    shop(tmp_path)
    text = batch("mug.png", "lamp.png", "--scene", "scenes", "-o", "out", "--dry-run",
                 env=env, cwd=tmp_path)
    assert text.returncode == 0, text.stderr.decode()
    lines = text.stdout.decode().splitlines()
    assert lines[0] == "dry run: nothing was sent"
    assert [line.split()[:4] for line in lines[1:5]] == [
        ["lamp.png", "+", "scenes/beach.jpg", "submit"], ["lamp.png", "+", "scenes/loft.jpg", "submit"],
        ["mug.png", "+", "scenes/beach.jpg", "submit"], ["mug.png", "+", "scenes/loft.jpg", "submit"]]
    assert lines[5] == "2 photos x 2 scenes = 4 requests; 4 runs, estimated cost $1.40"
    assert "4 runs will be created, estimated cost $1.40" in text.stderr.decode()

    as_json = batch("mug.png", "lamp.png", "--scene", "scenes", "-o", "out", "--dry-run", "--json",
                    env=env, cwd=tmp_path)
    *rows, summary = json_lines(as_json)
    assert sorted((row["photo"], row["scene"], row["action"]) for row in rows) == [
        ("lamp.png", "scenes/beach.jpg", "submit"), ("lamp.png", "scenes/loft.jpg", "submit"),
        ("mug.png", "scenes/beach.jpg", "submit"), ("mug.png", "scenes/loft.jpg", "submit")]
    assert (summary["photos"], summary["scenes"], summary["items"], summary["runs_to_create"],
            summary["estimated_cost"]) == (2, 2, 4, 4, "1.40")
    assert emu.requests == [] and not (tmp_path / "out").exists()


def test_names_that_would_collide_are_refused_before_any_request(emu, env, tmp_path):
    shop(tmp_path)
    no_scene = batch("mug.png", *TWO_SCENES, "--name", "{stem}.{ext}", "--yes",
                     env=env, cwd=tmp_path)
    assert no_scene.returncode == 2
    assert "--name '{stem}.{ext}' has no {scene}" in no_scene.stderr.decode()
    assert "Put {scene} in --name" in no_scene.stderr.decode()

    assert run_cli("config", "set", "name", "{stem}.{ext}", env=env, cwd=tmp_path).returncode == 0
    configured = batch("mug.png", *TWO_SCENES, "--yes", env=env, cwd=tmp_path)
    assert configured.returncode == 2 and "has no {scene}" in configured.stderr.decode()
    assert run_cli("config", "unset", "name", env=env, cwd=tmp_path).returncode == 0

    (tmp_path / "more").mkdir()
    write_scene(tmp_path / "more" / "beach.png", color=(200, 180, 20))
    same_stem = batch("mug.png", "--scene", "scenes/beach.jpg", "--scene", "more/beach.png",
                      "--yes", env=env, cwd=tmp_path)
    assert same_stem.returncode == 2
    err = " ".join(same_stem.stderr.decode().split())
    assert "mug.png + scenes/beach.jpg and mug.png + more/beach.png would both be saved" in err
    assert "Give the scenes different file names" in err

    (tmp_path / "items.csv").write_text("photo,sku\nmug.png,M-1\n")
    manifest = batch("--manifest", "items.csv", *TWO_SCENES, "--name", "{sku}.{ext}", "--yes",
                     env=env, cwd=tmp_path)
    assert manifest.returncode == 2 and "has no {scene}" in manifest.stderr.decode()
    (tmp_path / "named.csv").write_text("photo,name\nmug.png,{stem}-main.{ext}\n")
    row_name = batch("--manifest", "named.csv", *TWO_SCENES, "--yes", env=env, cwd=tmp_path)
    assert row_name.returncode == 4
    err = " ".join(row_name.stderr.decode().split())
    assert "1 bad rows (row 2: writes mug-main.* like row 2 with scenes/beach.jpg)" in err
    assert emu.requests == []


def test_max_cost_counts_each_pair(emu, env, tmp_path):
    shop(tmp_path)
    write_scene(tmp_path / "scenes" / "pool.jpg", color=(20, 160, 200))
    args = ("mug.png", "lamp.png", "--scene", "scenes", "-o", "out", "--yes")
    capped = batch(*args, "--max-cost", "1.00", env=env, cwd=tmp_path)
    assert capped.returncode == 8, capped.stderr.decode()
    err = capped.stderr.decode()
    assert "2 photos x 3 scenes = 6 requests, 6 to submit" in err
    assert "2 runs will be created, estimated cost $0.70" in err and "4 left for later" in err
    assert "--max-cost reached; 4 items were not submitted" in err
    assert emu.created_run_count == 2 and len(files(tmp_path / "out")) == 2

    rest = batch(*args, "--max-cost", "1.40", env=env, cwd=tmp_path)
    assert rest.returncode == 0, rest.stderr.decode()
    assert emu.created_run_count == 6 and len(files(tmp_path / "out")) == 6


def test_shards_split_the_pairs_and_cover_them_together(emu, env, tmp_path):
    shop(tmp_path)
    write_photo(tmp_path / "vase.png", size=(64, 48), color=(90, 40, 160))
    shards = []
    for k in (1, 2):
        result = batch("mug.png", "lamp.png", "vase.png", *TWO_SCENES, "-o", "out", "--yes",
                       "--json", "--shard", f"{k}/2", env=env, cwd=tmp_path)
        assert result.returncode == 0, result.stderr.decode()
        shards.append({(line["photo"], line["scene"]) for line in json_lines(result)})
    assert len(shards[0]) == len(shards[1]) == 3 and not shards[0] & shards[1]
    assert shards[0] | shards[1] == {(photo, scene) for photo in ("mug.png", "lamp.png", "vase.png")
                                     for scene in ("scenes/beach.jpg", "scenes/loft.jpg")}
    assert emu.created_run_count == 6 and len(files(tmp_path / "out")) == 6


def test_a_backdrop_warning_is_given_once_per_photo_not_per_scene(emu, env, tmp_path):
    from test_delivery_cli import grey_photo

    shop(tmp_path)
    grey_photo(tmp_path / "grey.png")
    result = batch("grey.png", *TWO_SCENES, "-o", "out", "--yes", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    err = result.stderr.decode()
    assert "1 with backdrop warnings" in err
    assert err.count("its backdrop is not white") == 2, "once in the plan, once while running"
    assert err.count("the model replaces only the white area") == 1
    assert emu.created_run_count == 2


def test_duplicates_follow_and_cached_results_are_reused_per_pair(emu, env, tmp_path):
    shop(tmp_path)
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "mug.png").write_bytes((tmp_path / "mug.png").read_bytes())
    first = batch("a", "b", *TWO_SCENES, "-o", "out", "--yes", "--json", env=env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr.decode()
    assert emu.created_run_count == 2, "the same bytes in the same scene cost one run"
    assert "2 duplicates" in first.stderr.decode()
    assert sorted(line["cached"] for line in json_lines(first)) == [False, False, True, True]
    assert files(tmp_path / "out") == ["a/mug-beach-bg.webp", "a/mug-loft-bg.webp",
                                       "b/mug-beach-bg.webp", "b/mug-loft-bg.webp"]

    elsewhere = batch("a", *TWO_SCENES, "-o", "other", "--yes", "--json", env=env, cwd=tmp_path)
    assert elsewhere.returncode == 0, elsewhere.stderr.decode()
    assert "2 cached" in elsewhere.stderr.decode()
    assert all(line["cached"] for line in json_lines(elsewhere)) and emu.created_run_count == 2


def test_a_failed_pair_stays_failed_until_retry_failed(emu, env, tmp_path):
    shop(tmp_path)
    args = ("mug.png", *TWO_SCENES, "-o", "out", "--yes", "-j", "1")
    emu.faults.fail_runs(1, status="failed", code="MODEL_ERROR", message="bad luck")
    first = batch(*args, "--json", env=env, cwd=tmp_path)
    assert first.returncode == 6, first.stderr.decode()
    failed = [line["scene"] for line in json_lines(first) if line["error"]]
    assert failed == ["scenes/beach.jpg"] and files(tmp_path / "out") == ["mug-loft-bg.webp"]
    again = batch(*args, env=env, cwd=tmp_path)
    assert again.returncode == 6 and "1 done before, 1 failed before" in again.stderr.decode()
    retry = batch(*args, "--retry-failed", env=env, cwd=tmp_path)
    assert retry.returncode == 0, retry.stderr.decode()
    assert emu.created_run_count == 3 and len(files(tmp_path / "out")) == 2
