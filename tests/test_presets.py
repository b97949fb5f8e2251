"""Shop presets and `runflow-bg check`/`presets`: every rule reported, exit codes, JSON."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import zlib

import pytest
from PIL import Image, ImageCms, PngImagePlugin

from helpers import cli_env, run_cli
from test_layers import PROBE
from runflow_bg.presets import PRESETS, check_file

SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
LAB = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()
AI_SOURCE = "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia"


def xmp_packet(source_type: str = AI_SOURCE, *, as_element: bool = False) -> bytes:
    """An XMP packet with the IPTC DigitalSourceType, as an attribute or as an element."""
    if as_element:
        body = (f"<rdf:Description><Iptc4xmpExt:DigitalSourceType>{source_type}"
                "</Iptc4xmpExt:DigitalSourceType></rdf:Description>")
    else:
        body = f'<rdf:Description rdf:about="" Iptc4xmpExt:DigitalSourceType="{source_type}"/>'
    return ('<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?>'
            '<x:xmpmeta xmlns:x="adobe:ns:meta/">'
            '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" '
            'xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/">'
            f'{body}</rdf:RDF></x:xmpmeta><?xpacket end="w"?>').encode()


def write(path, size=(2000, 2000), fmt="JPEG", *, mode="RGB", icc=SRGB, xmp=None):
    """A product on white, saved with the colour profile and XMP packet asked for."""
    image = Image.new(mode, size, "white")
    w, h = size
    product = "red" if mode == "RGB" else (0, 255, 255, 0)
    image.paste(product, (w // 4, h // 4, w * 3 // 4, h * 3 // 4))
    options = {"icc_profile": icc} if icc else {}
    if xmp and fmt == "PNG":
        info = PngImagePlugin.PngInfo()
        info.add_itxt("XML:com.adobe.xmp", xmp.decode())
        options["pnginfo"] = info
    elif xmp:
        options["xmp"] = xmp
    image.save(path, fmt, **options)
    return path


def png_header(path, width, height):
    """A PNG that is only a header: enough for a check, which never decodes pixels."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"")
                     + chunk(b"IEND", b""))
    return path


@pytest.fixture
def env(isolated_env):
    return cli_env(None, isolated_env, key=None)


def check(env, tmp_path, *args):
    result = run_cli("check", *map(str, args), env=env, cwd=tmp_path)
    return result, result.stdout.decode(), result.stderr.decode()


# -- the presets -----------------------------------------------------------------------------


def test_six_presets_each_with_sources():
    assert list(PRESETS) == ["amazon", "shopify", "etsy", "ebay", "google-merchant",
                             "woocommerce"]
    for preset in PRESETS.values():
        assert preset.sources and all(s.url.startswith(("https://", "http://")) and s.statement
                                      for s in preset.sources), preset.name
        assert preset.deliver_format == "jpg" and "JPEG" in preset.formats


def test_delivery_options_are_a_plain_dict():
    assert PRESETS["shopify"].delivery_options() == {
        "format": "jpg", "max_bytes": 20_000_000, "size": (2048, 2048), "max_side": 2048,
        "fit": "pad", "pad_color": "white", "ai_label": True}
    amazon = PRESETS["amazon"].delivery_options()
    assert amazon["size"] is None and amazon["max_side"] == 2000 and amazon["fit"] == "contain"


@pytest.mark.parametrize("name", list(PRESETS))
def test_a_file_written_as_delivery_options_say_passes_its_preset(tmp_path, name):
    preset = PRESETS[name]
    options = preset.delivery_options()
    size = options["size"] or (options["max_side"], options["max_side"] * 3 // 4)
    path = write(tmp_path / "out.jpg", size, xmp=xmp_packet())
    assert check_file(path, preset) == []


# -- every kind of problem, with its line ------------------------------------------------------


@pytest.mark.parametrize("preset,make,line", [
    ("amazon", lambda p: write(p / "a.png", fmt="PNG"),
     "PNG is not accepted; Amazon takes JPEG, TIFF"),
    ("etsy", lambda p: write(p / "a.jpg", (1500, 2500)),
     "too small: 1500x2500 px; Etsy wants both sides at least 2000 px"),
    ("amazon", lambda p: write(p / "a.jpg", (900, 600)),
     "too small: 900x600 px; Amazon wants the longest side at least 1000 px"),
    ("ebay", lambda p: write(p / "a.jpg", (6100, 100)),
     "too large: 6100x100 px; eBay takes at most 6000 px a side"),
    ("google-merchant", lambda p: png_header(p / "a.png", 8100, 8100),
     "too large: 65.6 MP; Google Merchant Center takes at most 64 MP"),
    ("shopify", lambda p: write(p / "a.jpg", (2000, 1500)),
     "aspect 1.33 (2000x1500 px); Shopify wants 1:1"),
    ("woocommerce", lambda p: write(p / "a.jpg", (1000, 1000), icc=None),
     "no ICC colour profile; sRGB expected"),
    ("woocommerce", lambda p: write(p / "a.jpg", (1000, 1000), icc=LAB),
     "colour profile 'Lab identity built-in', not sRGB"),
    ("ebay", lambda p: write(p / "a.jpg", (1600, 1200), mode="CMYK", icc=None),
     "CMYK colour; sRGB expected"),
    ("google-merchant", lambda p: write(p / "a.jpg", (1500, 1500)),
     "no IPTC DigitalSourceType trainedAlgorithmicMedia label in the XMP; Google Merchant "
     "Center requires it on AI-made images"),
])
def test_each_problem_is_one_line(env, tmp_path, preset, make, line):
    path = make(tmp_path)
    result, out, err = check(env, tmp_path, path.name, "--preset", preset)
    assert result.returncode == 4, err
    assert f"{path.name}: {line}" in out.splitlines()
    assert "0 of 1 passed the " + preset + " checks." in err


def test_bytes_over_the_cap(env, tmp_path):
    path = write(tmp_path / "heavy.jpg")
    with path.open("ab") as file:  # bytes after the end of the image: read by no one, counted
        file.write(b"\0" * 1_000_000)
    size = path.stat().st_size
    _, out, _ = check(env, tmp_path, "heavy.jpg", "--preset", "etsy")
    assert out == f"heavy.jpg: {size:,} bytes; Etsy takes at most 1,000,000\n"


def test_several_problems_several_lines(tmp_path):
    path = write(tmp_path / "small.png", (300, 200), "PNG", icc=None)
    assert check_file(path, PRESETS["amazon"]) == [
        "too small: 300x200 px; Amazon wants the longest side at least 1000 px",
        "PNG is not accepted; Amazon takes JPEG, TIFF",
        "no ICC colour profile; sRGB expected"]


def test_a_png_sRGB_chunk_counts_as_srgb(tmp_path):
    info = PngImagePlugin.PngInfo()
    info.add(b"sRGB", b"\0")
    Image.new("RGB", (900, 900), "white").save(tmp_path / "a.png", pnginfo=info)
    assert check_file(tmp_path / "a.png", PRESETS["woocommerce"]) == []


def test_a_nearly_square_file_is_square(tmp_path):
    assert check_file(write(tmp_path / "a.jpg", (1000, 1008)), PRESETS["woocommerce"]) == []


# -- the AI label --------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt,packet", [
    ("JPEG", xmp_packet()),
    ("JPEG", xmp_packet("http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia",
                        as_element=True)),
    ("PNG", xmp_packet()),
    ("WEBP", xmp_packet()),
])
def test_the_iptc_label_in_xmp_is_found(tmp_path, fmt, packet):
    path = write(tmp_path / f"a.{fmt.lower()}", (1500, 1500), fmt, xmp=packet)
    assert check_file(path, PRESETS["google-merchant"]) == []


def test_another_digital_source_type_is_no_ai_label(tmp_path):
    packet = xmp_packet("http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture")
    problems = check_file(write(tmp_path / "a.jpg", (1500, 1500), xmp=packet),
                          PRESETS["google-merchant"])
    assert problems == ["no IPTC DigitalSourceType trainedAlgorithmicMedia label in the XMP; "
                        "Google Merchant Center requires it on AI-made images"]


# -- the command: output and exit codes ------------------------------------------------------------


def test_a_passing_file_exits_0_and_prints_nothing(env, tmp_path):
    write(tmp_path / "good.jpg", (2000, 1500))
    result, out, err = check(env, tmp_path, "good.jpg", "--preset", "amazon")
    assert result.returncode == 0 and out == ""
    assert "1 of 1 passed the amazon checks." in err


def test_json_lines_one_per_file(env, tmp_path):
    write(tmp_path / "good.jpg", (2048, 2048))
    write(tmp_path / "wide.jpg", (2048, 1024))
    result, out, _ = check(env, tmp_path, "good.jpg", "wide.jpg", "--preset", "shopify", "--json")
    assert result.returncode == 4
    assert [json.loads(line) for line in out.splitlines()] == [
        {"path": "good.jpg", "preset": "shopify", "ok": True, "problems": []},
        {"path": "wide.jpg", "preset": "shopify", "ok": False,
         "problems": ["aspect 2.00 (2048x1024 px); Shopify wants 1:1"]}]


def test_a_missing_file_exits_4_with_a_hint_and_the_others_are_checked(env, tmp_path):
    write(tmp_path / "good.jpg", (2000, 1500))
    result, out, err = check(env, tmp_path, "gone.jpg", "good.jpg", "--preset", "amazon")
    assert result.returncode == 4 and out == ""
    assert "Error: gone.jpg: no such file.\nHint: Check the path." in err
    assert "1 of 2 passed the amazon checks." in err


def test_a_file_that_is_not_an_image_exits_4(env, tmp_path):
    (tmp_path / "notes.jpg").write_text("not an image")
    result, out, err = check(env, tmp_path, "notes.jpg", "--preset", "ebay", "--json")
    assert result.returncode == 4 and "Hint: " in err
    assert json.loads(out)["problems"] == ["notes.jpg: not an image that can be read."]


def test_an_unknown_preset_exits_2_and_lists_the_names(env, tmp_path):
    write(tmp_path / "good.jpg")
    result, out, err = check(env, tmp_path, "good.jpg", "--preset", "walmart")
    assert result.returncode == 2 and out == ""
    assert "Unknown preset 'walmart'." in err
    assert "amazon, shopify, etsy, ebay, google-merchant, woocommerce" in err


# -- runflow-bg presets ---------------------------------------------------------------------------


def test_presets_json_lists_all_six_with_their_sources(env, tmp_path):
    result = run_cli("presets", "--json", env=env, cwd=tmp_path)
    assert result.returncode == 0
    presets = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert [p["name"] for p in presets] == list(PRESETS)
    for preset in presets:
        assert preset["sources"] and all(s["url"] and s["statement"] for s in preset["sources"])
        assert preset["delivery"]["format"] == "jpg"
    google = presets[4]
    assert google["ai_label_required"] and google["max_pixels"] == 64_000_000


def test_presets_in_plain_lines_name_every_rule_and_source(env, tmp_path):
    result = run_cli("presets", env=env, cwd=tmp_path)
    lines = result.stdout.decode().splitlines()
    assert lines[0].startswith("amazon: accepts JPEG, TIFF; pixels long side ≥ 1000")
    assert "woocommerce: accepts JPEG, PNG, GIF; pixels sides ≥ 800; aspect 1:1" in lines[5]
    for preset in PRESETS.values():
        assert all(f"  {source.url}" in lines for source in preset.sources)


@pytest.mark.parametrize("argv", [["check", "--help"], ["presets"], ["presets", "--json"]])
def test_listing_presets_and_help_import_no_pillow(argv):
    result = subprocess.run([sys.executable, "-c", PROBE, json.dumps(argv)],
                            capture_output=True, text=True, timeout=60)
    line = [l for l in result.stderr.splitlines() if l.startswith("HEAVY=")][-1]
    assert json.loads(line[len("HEAVY="):]) == []
