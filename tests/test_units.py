"""Narrow unit tests: image preparation, packing, naming, durations, settings."""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from runflow_bg import config
from runflow_bg.durations import format_duration, parse_duration
from runflow_bg.errors import AuthError, InputError, UsageError
from runflow_bg.images import InputFile, prepare_image, read_input
from runflow_bg.naming import check_template, output_path, render, safe_component
from runflow_bg.packing import pack


def encoded(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


# -- images -----------------------------------------------------------------------------------

def test_png_jpeg_and_webp_go_through_untouched():
    image = Image.new("RGB", (50, 40), (10, 200, 30))
    for fmt, ext in (("PNG", "png"), ("JPEG", "jpg"), ("WEBP", "webp")):
        data = encoded(image, fmt)
        prepared = prepare_image(InputFile(f"a.{ext}", data))
        assert prepared.open().read() == data and prepared.ext == ext and prepared.notices == ()


def test_other_formats_become_png():
    prepared = prepare_image(InputFile("a.gif", encoded(Image.new("P", (20, 10)), "GIF")))
    assert prepared.ext == "png" and Image.open(io.BytesIO(prepared.open().read())).format == "PNG"
    assert "converted GIF to PNG" in prepared.notices[0]


def test_large_images_are_downscaled_with_a_notice():
    prepared = prepare_image(InputFile("big.png", encoded(Image.new("RGB", (5000, 2500)), "PNG")))
    assert (prepared.width, prepared.height) == (4096, 2048)
    assert Image.open(io.BytesIO(prepared.open().read())).size == (4096, 2048)
    assert "downscaled from 5000x2500 to 4096x2048" in prepared.notices[0]


def test_exif_orientation_is_applied():
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encoded(Image.new("RGB", (60, 30), "red"), "JPEG", exif=exif.tobytes())
    prepared = prepare_image(InputFile("phone.jpg", data))
    assert (prepared.width, prepared.height) == (30, 60)
    assert Image.open(io.BytesIO(prepared.open().read())).getexif().get(0x0112) in (None, 1)


@pytest.mark.parametrize("data,needle", [
    (b"hello", "not an image"),
    (encoded(Image.new("RGB", (300, 300)), "PNG")[:200], "a damaged image"),
])
def test_bad_images_are_input_errors(data, needle):
    with pytest.raises(InputError, match=needle):
        prepare_image(InputFile("x.png", data))


def test_read_input_refuses_oversized_files(tmp_path):
    big = tmp_path / "huge.png"
    with open(big, "wb") as handle:
        handle.truncate(60 * 1024 * 1024)
    with pytest.raises(InputError, match="huge.png: .* over Runflow's 50 MiB limit"):
        read_input(str(big))


def test_pack_names_members_by_extension_and_is_deterministic(tmp_path):
    photo = prepare_image(InputFile("p.png", encoded(Image.new("RGB", (8, 8)), "PNG")))
    scene = prepare_image(InputFile("s.jpg", encoded(Image.new("RGB", (8, 8)), "JPEG")))
    first, second = pack(photo, scene), pack(photo, scene)
    first.file.seek(0)
    second.file.seek(0)
    assert first.file.read() == second.file.read() and first.size == first.file.tell()
    with zipfile.ZipFile(first.file) as archive:
        assert archive.namelist() == ["image.png", "reference.jpg"]
        assert archive.read("image.png") == photo.open().read()


# -- naming -----------------------------------------------------------------------------------

def test_default_names_count_outputs():
    names = [render("{stem}-bg{n}.{ext}", stem="bottle", scene="s", index=i, run_id="r", ext="webp")
             for i in range(3)]
    assert names == ["bottle-bg.webp", "bottle-bg-2.webp", "bottle-bg-3.webp"]


@pytest.mark.parametrize("text,expected", [
    ("../../etc/passwd", "_.._etc_passwd"), ("a/b", "a_b"), ("\x1b[31mred", "_[31mred"),
    ("...", "output"), ("x" * 1000, "x" * 120), ("CON:", "CON_"),
])
def test_safe_component(text, expected):
    assert safe_component(text) == expected


def test_templates_stay_inside_the_output_folder(tmp_path):
    for bad in ("../{stem}.{ext}", "/tmp/{stem}.{ext}", "{unknown}"):
        with pytest.raises(UsageError):
            check_template(bad)
    assert check_template("{scene}/{stem}-{run}.{ext}")
    assert output_path(tmp_path, "sub/x.webp") == tmp_path / "sub/x.webp"
    with pytest.raises(InputError):
        output_path(tmp_path, "../x.webp")


# -- durations --------------------------------------------------------------------------------

@pytest.mark.parametrize("text,seconds", [("90s", 90), ("10m", 600), ("1h", 3600),
                                          ("1h30m", 5400), ("500ms", 0.5), ("2.5", 2.5)])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["soon", "10x", "-5", "1h-3m", ""])
def test_parse_duration_refuses(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def test_format_duration():
    assert format_duration(41.23) == "41.2 s" and format_duration(62) == "1m 02s"
    assert format_duration(3780) == "1h 03m"


# -- settings ---------------------------------------------------------------------------------

def settings(**flags):
    return config.Settings(os.environ, **flags)


def test_key_precedence(monkeypatch, tmp_path):
    shared = Path(os.environ["HOME"]) / ".config" / "runflow" / "credentials.json"
    shared.parent.mkdir(parents=True)
    shared.write_text(json.dumps({"api_key": "rf_shared"}))
    assert settings().key_source == config.KeySource("rf_shared", str(shared))
    path = config.save_api_key(settings().paths.credentials_file, "rf_saved")
    assert settings().key_source.key == "rf_saved"
    assert path.stat().st_mode & 0o777 == 0o600 and path.parent.stat().st_mode & 0o777 == 0o700
    monkeypatch.setenv("RUNFLOW_API_KEY", "rf_env")
    assert settings().key_source == config.KeySource("rf_env", "RUNFLOW_API_KEY")
    assert settings(api_key_flag="rf_flag").key_source.origin == "--api-key"


def test_no_key_names_every_way_to_get_one():
    with pytest.raises(AuthError) as info:
        settings().require_key()
    for needle in ("RUNFLOW_API_KEY", "runflow-bg auth login", "--local"):
        assert needle in info.value.hint


def test_base_url_precedence_and_http_refusal(monkeypatch):
    assert settings().base_url_source == ("https://api.runflow.io", "default")
    monkeypatch.setenv("RUNFLOW_BASE_URL", "http://127.0.0.1:9/v1/")
    assert settings().base_url_source == ("http://127.0.0.1:9", "RUNFLOW_BASE_URL")
    assert settings(base_url_flag="https://eu.example").base_url_source[1] == "--base-url"
    with pytest.raises(UsageError, match="must be https"):
        settings(base_url_flag="http://api.example.com").base_url_source


@pytest.mark.parametrize("name,value", [("RUNFLOW_BG_HTTP_TIMEOUT", "nan"),
                                        ("RUNFLOW_BG_HTTP_TIMEOUT", "0"),
                                        ("RUNFLOW_BG_HTTP_TIMEOUT", "inf"),
                                        ("RUNFLOW_BG_RETRIES", "0"),
                                        ("RUNFLOW_BG_LOCAL_RUN_SECONDS", "-1")])
def test_bad_environment_settings_are_usage_errors(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    attribute = {"RUNFLOW_BG_HTTP_TIMEOUT": "http_timeout", "RUNFLOW_BG_RETRIES": "retries",
                 "RUNFLOW_BG_LOCAL_RUN_SECONDS": "local_run_seconds"}[name]
    with pytest.raises(UsageError, match=name):
        getattr(settings(), attribute)


def test_settings_are_resolved_once(monkeypatch):
    resolved = settings()
    assert resolved.http_timeout == 30.0
    monkeypatch.setenv("RUNFLOW_BG_HTTP_TIMEOUT", "5")
    assert resolved.http_timeout == 30.0 and settings().http_timeout == 5.0


def test_runflow_bg_home_moves_all_state(isolated_env):
    paths = settings().paths
    for folder in (paths.config_dir, paths.state_dir, paths.cache_dir):
        assert isolated_env in folder.parents
