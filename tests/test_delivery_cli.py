"""Delivering to shops from the command line: formats, sizes, presets, provenance, sidecars."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from helpers import run_cli, write_photo
from runflow_bg.delivery import describe

REPLACE = ("replace", "bottle.png", "marble.jpg")


def test_a_jpeg_with_srgb_and_the_ai_label_carrying_the_run(emu, work, env):
    result = run_cli(*REPLACE, "--format", "jpg", "--json", env=env, cwd=work)
    assert result.returncode == 0, result.stderr.decode()
    data = json.loads(result.stdout)
    facts = describe(work / "bottle-bg.jpg")
    assert data["outputs"][0]["path"] == "bottle-bg.jpg"
    assert facts["format"] == "JPEG" and "sRGB" in (facts["icc"] or "")
    assert "compositeWithTrainedAlgorithmicMedia" in facts["ai_label"]
    assert facts["run_id"] == data["run_id"]


def test_a_shop_preset_delivers_a_file_that_passes_its_check(emu, work, env):
    write_photo(work / "big.png", size=(1200, 900))
    result = run_cli("replace", "big.png", "marble.jpg", "--preset", "shopify", "--sidecar",
                     env=env, cwd=work)
    assert result.returncode == 0, result.stderr.decode()
    saved = work / "big-bg.jpg"
    assert Image.open(saved).size == (2048, 2048)
    check = run_cli("check", "big-bg.jpg", "--preset", "shopify", env=env, cwd=work)
    assert check.returncode == 0, check.stdout.decode() + check.stderr.decode()
    sidecar = json.loads((work / "big-bg.jpg.json").read_text())
    assert sidecar["preset"] == "shopify" and sidecar["preset_ok"] is True
    assert sidecar["source_photo"] == "big.png" and sidecar["run_id"]


def test_another_format_later_costs_nothing(emu, work, env):
    first = run_cli(*REPLACE, "--json", env=env, cwd=work)
    run_id = json.loads(first.stdout)["run_id"]
    downloads = emu.count("output")
    again = run_cli("runs", "download", run_id, "--format", "png", "-o", "png", env=env, cwd=work)
    assert again.returncode == 0, again.stderr.decode()
    assert again.stdout.decode() == "png/bottle-bg.png\n" and emu.count("output") == downloads
    assert Image.open(work / "png" / "bottle-bg.png").format == "PNG"


def test_the_same_batch_in_another_format_reuses_the_paid_results(emu, env, tmp_path):
    (tmp_path / "photos").mkdir()
    for index in range(2):
        write_photo(tmp_path / "photos" / f"p{index}.png", color=(70 * index, 90, 30))
    write_photo(tmp_path / "scene.jpg", color=(10, 10, 200))
    assert run_cli("batch", "photos", "--scene", "scene.jpg", "--yes", "-o", "webp", env=env,
                   cwd=tmp_path).returncode == 0
    again = run_cli("batch", "photos", "--scene", "scene.jpg", "--yes", "-o", "jpg",
                    "--format", "jpg", "--max-side", "100", env=env, cwd=tmp_path)
    assert again.returncode == 0, again.stderr.decode()
    assert emu.created_run_count == 2
    saved = sorted((tmp_path / "jpg").rglob("*-bg.jpg"))
    assert len(saved) == 2 and all(max(Image.open(path).size) == 100 for path in saved)


def test_no_ai_label_warns_and_leaves_it_out(emu, work, env):
    result = run_cli(*REPLACE, "--no-ai-label", env=env, cwd=work)
    assert result.returncode == 0
    assert "Warning: --no-ai-label" in result.stderr.decode()
    assert not describe(work / "bottle-bg.webp")["ai_label"]


@pytest.mark.parametrize("args,needle", [
    (["--format", "gif"], "--format must be"),
    (["--size", "10"], "size"),
    (["--max-bytes", "lots"], "--max-bytes must be"),
    (["--preset", "walmart"], "Unknown --preset"),
    (["--fit", "stretch"], "--fit must be"),
    (["--pad-color", "not-a-colour"], "colour"),
])
def test_bad_delivery_options_are_usage_errors_before_any_request(emu, work, env, args, needle):
    result = run_cli(*REPLACE, *args, env=env, cwd=work)
    assert result.returncode == 2, result.stderr.decode()
    assert needle in result.stderr.decode().lower() or needle in result.stderr.decode()
    assert emu.requests == []


def grey_photo(path):
    image = Image.new("RGB", (160, 120), (200, 200, 200))
    image.paste((200, 30, 30), (40, 30, 120, 90))
    image.save(path)
    return path


def test_a_grey_backdrop_warns_and_strict_inputs_refuses_before_any_request(emu, work, env):
    grey_photo(work / "grey.png")
    strict = run_cli("replace", "grey.png", "marble.jpg", "--strict-inputs", env=env, cwd=work)
    assert strict.returncode == 4 and "grey.png" in strict.stderr.decode()
    assert "Without --strict-inputs this is a warning" in strict.stderr.decode()
    assert emu.requests == []
    warned = run_cli("replace", "grey.png", "marble.jpg", env=env, cwd=work)
    assert warned.returncode == 0 and "only the white area" in warned.stderr.decode()


def test_the_batch_plan_counts_backdrop_warnings_and_strict_refuses_the_batch(emu, env, tmp_path):
    (tmp_path / "photos").mkdir()
    write_photo(tmp_path / "photos" / "white.png")
    grey_photo(tmp_path / "photos" / "grey.png")
    write_photo(tmp_path / "scene.jpg", color=(10, 10, 200))
    plan = run_cli("batch", "photos", "--scene", "scene.jpg", "--dry-run", env=env, cwd=tmp_path)
    assert "1 with backdrop warnings" in plan.stderr.decode()
    strict = run_cli("batch", "photos", "--scene", "scene.jpg", "--yes", "--strict-inputs",
                     env=env, cwd=tmp_path)
    assert strict.returncode == 4 and "Nothing was submitted" in strict.stderr.decode()
    assert emu.created_run_count == 0


def test_keep_profile_is_another_request_than_converted_colours(emu, work, env):
    assert run_cli(*REPLACE, "-o", "a", env=env, cwd=work).returncode == 0
    kept = run_cli(*REPLACE, "-o", "b", "--keep-profile", env=env, cwd=work)
    assert kept.returncode == 0 and emu.created_run_count == 2


def test_the_report_shows_what_was_delivered_and_the_presets_verdict(emu, env, tmp_path):
    (tmp_path / "photos").mkdir()
    write_photo(tmp_path / "photos" / "big.png", size=(1200, 900))
    write_photo(tmp_path / "photos" / "small.png", size=(160, 120), color=(20, 160, 20))
    write_photo(tmp_path / "scene.jpg", color=(10, 10, 200))
    result = run_cli("batch", "photos", "--scene", "scene.jpg", "--yes", "-o", "out",
                     "--preset", "amazon", "--report", "report.html", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    page = (tmp_path / "report.html").read_text()
    assert "JPEG · 1200×900" in page and "passes amazon" in page
    assert "fails amazon" in page and "too small" in page  # a 160 px photo stays small
    assert 'href="out/photos/big-bg.jpg"' in page
    assert "repeating-conic-gradient" in page and "2 items" in page and "1 of 2 pass amazon" in page
    assert "<script>" in page and "localeCompare" in page  # sortable columns
