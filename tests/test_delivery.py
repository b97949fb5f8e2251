"""Delivery: formats, sizes, weight, sRGB colour and the AI label, on generated images."""

from __future__ import annotations

import io
import struct

import pytest
from PIL import Image, ImageCms

from runflow_bg.delivery import (COMPOSITE_WITH_AI, Provenance, Spec, deliver, describe,
                                 parse_color, parse_size, photo_rights)

PROVENANCE = Provenance("run_01J9", "background-replace-v2", "shoe <red> & co.jpg",
                        copyright="© 2025 Shoe & Co", creator="Ana \"Lens\" Lopez")
RED, CLEAR = (220, 30, 40, 255), (0, 0, 0, 0)


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def cutout(fmt: str = "WEBP", size=(300, 200)) -> bytes:
    """A red product on a transparent left third, as Runflow may send it."""
    image = Image.new("RGBA", size, RED)
    image.paste(CLEAR, (0, 0, size[0] // 3, size[1]))
    return encode(image, fmt, lossless=True) if fmt == "WEBP" else encode(image, fmt)


def noisy(size=(640, 480)) -> bytes:
    """An opaque PNG that compresses badly, so byte limits bite."""
    return encode(Image.effect_noise(size, 80).convert("RGB"), "PNG")


def close(pixel, expected, tolerance: int = 8) -> bool:
    """Lossy formats move a channel by a few steps."""
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, expected, strict=True))


def opened(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def gps_exif(tags: dict[int, str] | None = None) -> Image.Exif:
    exif = Image.Exif()
    exif.update(tags or {})
    exif[0x8825] = {1: "N", 2: (48.0, 51.0, 30.0), 3: "E", 4: (2.0, 17.0, 40.0)}
    return exif


def adobe_rgb_icc() -> bytes:
    """A minimal ICC v2 matrix/TRC profile with Adobe RGB (1998) primaries; Pillow makes none."""
    def s15(value: float) -> bytes:
        return struct.pack(">i", round(value * 65536))

    def xyz(x: float, y: float, z: float) -> bytes:
        return b"XYZ " + bytes(4) + s15(x) + s15(y) + s15(z)

    name = b"Adobe RGB (1998)-like\x00"
    desc = (b"desc" + bytes(4) + struct.pack(">I", len(name)) + name
            + bytes(8) + bytes(3) + bytes(67))
    gamma = b"curv" + bytes(4) + struct.pack(">IH", 1, 563) + bytes(2)  # 563/256 = 2.2
    tags = [(b"desc", desc), (b"wtpt", xyz(0.9642, 1.0, 0.8249)),
            (b"rXYZ", xyz(0.6097, 0.3111, 0.0195)), (b"gXYZ", xyz(0.2053, 0.6257, 0.0609)),
            (b"bXYZ", xyz(0.1492, 0.0632, 0.7446)),
            (b"rTRC", gamma), (b"gTRC", gamma), (b"bTRC", gamma)]
    offset = 128 + 4 + 12 * len(tags)
    table, data = struct.pack(">I", len(tags)), b""
    for signature, body in tags:
        body += bytes(-len(body) % 4)
        table += signature + struct.pack(">II", offset + len(data), len(body))
        data += body
    size = offset + len(data)
    header = (struct.pack(">I", size) + bytes(4) + bytes([2, 0x10, 0, 0]) + b"mntrRGB XYZ "
              + bytes(12) + b"acsp" + bytes(24) + struct.pack(">I", 0)
              + s15(0.9642) + s15(1.0) + s15(0.8249) + bytes(48))
    assert len(header) == 128
    return header + table + data


def iptc_jpeg(copyright: str, byline: str) -> bytes:
    """A JPEG whose only rights are in an IPTC-IIM block (APP13, Photoshop 3.0)."""
    def dataset(number: int, value: str) -> bytes:
        raw = value.encode("utf-8")
        return b"\x1c\x02" + bytes([number]) + struct.pack(">H", len(raw)) + raw

    iim = dataset(116, copyright) + dataset(80, byline)
    resource = b"8BIM\x04\x04\x00\x00" + struct.pack(">I", len(iim)) + iim + bytes(len(iim) % 2)
    payload = b"Photoshop 3.0\x00" + resource
    jpeg = encode(Image.new("RGB", (8, 8), "gray"), "JPEG")
    return jpeg[:2] + b"\xff\xed" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


@pytest.mark.parametrize("source", ["WEBP", "PNG"])
@pytest.mark.parametrize("fmt, ext, mode", [("jpg", "jpg", "RGB"), ("png", "png", "RGBA"),
                                            ("webp", "webp", "RGBA")])
def test_each_format_from_a_cutout(source, fmt, ext, mode):
    data, got_ext = deliver(cutout(source), Spec(format=fmt, fill="#00ff00"), PROVENANCE)
    image = opened(data)
    assert got_ext == ext and image.format == {"jpg": "JPEG"}.get(fmt, fmt.upper())
    assert image.mode == mode and image.size == (300, 200)
    if fmt == "jpg":
        assert close(image.getpixel((20, 100)), (0, 255, 0))
        assert close(image.getpixel((250, 100)), RED[:3])
    else:
        assert image.getpixel((20, 100))[3] == 0
        assert close(image.getpixel((250, 100)), RED, 0 if fmt == "png" else 3)


def test_keep_keeps_webp_and_reencodes_it_for_the_label():
    data, ext = deliver(cutout("WEBP"), Spec(), PROVENANCE)
    assert ext == "webp" and describe(data)["format"] == "WEBP"
    assert describe(data)["ai_label"] == COMPOSITE_WITH_AI


def test_keep_without_changes_returns_the_original_bytes():
    original = cutout("PNG")
    assert deliver(original, Spec(ai_label=False), PROVENANCE) == (original, "png")


def test_keep_reencodes_an_original_with_gps():
    original = encode(Image.new("RGB", (40, 30), "white"), "JPEG", exif=gps_exif())
    data, ext = deliver(original, Spec(ai_label=False), PROVENANCE)
    assert ext == "jpg" and data != original
    assert 0x8825 not in opened(data).getexif()


def test_the_originals_xmp_never_travels():
    xmp = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/'
           b'02/22-rdf-syntax-ns#"><rdf:Description xmlns:exif="http://ns.adobe.com/exif/1.0/" '
           b'exif:GPSLatitude="48,51.5N"/></rdf:RDF></x:xmpmeta>')
    original = encode(Image.new("RGBA", (40, 30), RED), "WEBP", xmp=xmp)
    data, ext = deliver(original, Spec(ai_label=False), PROVENANCE)
    assert ext == "webp" and data != original and "xmp" not in opened(data).info
    data, _ = deliver(original, Spec(), PROVENANCE)
    assert b"GPS" not in opened(data).info["xmp"]


@pytest.mark.parametrize("fmt", ["jpg", "webp", "png"])
def test_max_bytes_fits_by_quality_then_scale(fmt):
    limit = 40_000
    data, _ = deliver(noisy(), Spec(format=fmt, max_bytes=limit), PROVENANCE)
    info = describe(data)
    assert info["bytes"] <= limit and info["ai_label"] == COMPOSITE_WITH_AI
    assert info["width"] < 640
    assert info["width"] / info["height"] == pytest.approx(640 / 480, abs=0.02)


def test_max_bytes_lowers_quality_before_scaling():
    big, _ = deliver(noisy(), Spec(format="jpg"), PROVENANCE)
    data, _ = deliver(noisy(), Spec(format="jpg", max_bytes=len(big) - 1), PROVENANCE)
    assert len(data) < len(big) and opened(data).size == (640, 480)


@pytest.mark.parametrize("fmt", ["jpg", "png"])
def test_max_bytes_that_can_never_fit_is_refused(fmt):
    with pytest.raises(ValueError, match="cannot fit in 1,000 bytes"):
        deliver(noisy((64, 48)), Spec(format=fmt, max_bytes=1000), PROVENANCE)


def test_max_bytes_never_shrinks_an_exact_canvas():
    with pytest.raises(ValueError, match="cannot fit 500x500"):
        deliver(noisy(), Spec(format="jpg", size=(500, 500), fit="pad", max_bytes=20_000),
                PROVENANCE)


@pytest.mark.parametrize("fit, size", [("contain", (200, 100)), ("cover", (200, 200)),
                                       ("pad", (200, 200))])
def test_fit_modes(fit, size):
    data, _ = deliver(cutout("PNG", (400, 200)), Spec(format="png", size=(200, 200), fit=fit,
                                                      pad_color="#0000ff"), PROVENANCE)
    image = opened(data)
    assert image.size == size
    if fit == "pad":
        assert image.getpixel((100, 10)) == (0, 0, 255, 255)
        assert image.getpixel((150, 100)) == RED


def test_cover_crops_the_centre():
    image = Image.new("RGB", (400, 200), "blue")
    image.paste((255, 255, 0), (100, 0, 300, 200))
    data, _ = deliver(encode(image, "PNG"), Spec(size=(200, 200), fit="cover"), PROVENANCE)
    assert opened(data).getpixel((5, 100)) == (255, 255, 0)


def test_max_side_downscales_keeping_aspect_and_never_upscales():
    data, _ = deliver(cutout("PNG", (400, 200)), Spec(max_side=100), PROVENANCE)
    assert opened(data).size == (100, 50)
    data, _ = deliver(cutout("PNG", (400, 200)), Spec(max_side=1000), PROVENANCE)
    assert opened(data).size == (400, 200)


@pytest.mark.parametrize("fmt", ["keep", "jpg", "png", "webp"])
def test_every_output_carries_srgb(fmt):
    data, _ = deliver(cutout("PNG"), Spec(format=fmt, ai_label=False, max_side=200), PROVENANCE)
    assert describe(data)["icc"].startswith("sRGB")


def test_a_wide_gamut_profile_is_converted_not_relabelled():
    icc = adobe_rgb_icc()
    colour = (40, 160, 60)
    original = encode(Image.new("RGB", (16, 16), colour), "PNG", icc_profile=icc)
    data, _ = deliver(original, Spec(format="png"), PROVENANCE)
    expected = ImageCms.profileToProfile(
        Image.new("RGB", (1, 1), colour), ImageCms.ImageCmsProfile(io.BytesIO(icc)),
        ImageCms.createProfile("sRGB")).getpixel((0, 0))
    got = opened(data).getpixel((8, 8))
    assert got == expected and got != colour
    assert describe(data)["icc"].startswith("sRGB")
    assert describe(original)["icc"] == "Adobe RGB (1998)-like"


def test_an_srgb_profile_is_not_reconverted():
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    original = encode(Image.new("RGB", (16, 16), (40, 160, 60)), "PNG", icc_profile=srgb)
    data, _ = deliver(original, Spec(format="png"), PROVENANCE)
    assert opened(data).getpixel((8, 8)) == (40, 160, 60)


@pytest.mark.parametrize("fmt", ["jpg", "png", "webp"])
def test_provenance_reads_back_from_each_format(fmt):
    photo = encode(Image.new("RGB", (40, 30), "white"), "JPEG",
                   exif=gps_exif({0x8298: "(c) 2025 Shoe & Co", 0x013B: "Ana \"Lens\" Lopez"}))
    copyright, creator = photo_rights(photo)
    assert (copyright, creator) == ("(c) 2025 Shoe & Co", "Ana \"Lens\" Lopez")
    provenance = Provenance("run_01J9", "background-replace-v2", "shoe <red> & co.jpg",
                            copyright, creator)
    original = encode(Image.new("RGB", (40, 30), "white"), "JPEG", exif=gps_exif())
    data, _ = deliver(original, Spec(format=fmt), provenance)
    info = describe(data)
    assert info["ai_label"] == COMPOSITE_WITH_AI and info["run_id"] == "run_01J9"
    assert photo_rights(data) == (copyright, creator)
    image = opened(data)
    assert 0x8825 not in image.getexif() and not image.getexif()
    xmp = image.info.get("xmp") or image.info["XML:com.adobe.xmp"].encode()
    assert b"background-replace-v2" in xmp and b"shoe &lt;red&gt; &amp; co.jpg" in xmp
    assert b"GPS" not in xmp


def test_photo_rights_of_a_photo_with_only_gps():
    assert photo_rights(encode(Image.new("RGB", (4, 4)), "JPEG", exif=gps_exif())) == (None, None)


def test_photo_rights_from_iptc():
    assert photo_rights(iptc_jpeg("© Studio Nord", "Kai Berg")) == ("© Studio Nord", "Kai Berg")


def test_photo_rights_xmp_wins_and_exif_nul_separators_are_cleaned():
    labelled, _ = deliver(cutout("PNG"), Spec(format="png"),
                          Provenance("r", "m", "s", copyright="XMP rights", creator="XMP author"))
    assert photo_rights(labelled) == ("XMP rights", "XMP author")
    exif = Image.Exif()
    exif[0x8298] = "Photographer\x00Editor"
    assert photo_rights(encode(Image.new("RGB", (4, 4)), "JPEG", exif=exif))[0] == \
        "Photographer; Editor"


@pytest.mark.parametrize("fmt", ["keep", "jpg", "png", "webp"])
def test_ai_label_false_writes_no_label(fmt):
    data, _ = deliver(cutout("PNG"), Spec(format=fmt, ai_label=False, max_side=250), PROVENANCE)
    info = describe(data)
    assert info["ai_label"] is None and info["run_id"] is None
    image = opened(data)
    assert "xmp" not in image.info and "XML:com.adobe.xmp" not in image.info


@pytest.mark.parametrize("spec", [Spec(format="jpg"), Spec(format="webp", max_bytes=30_000),
                                  Spec(format="png", size=(120, 120), fit="pad"), Spec()])
def test_deterministic(spec):
    original = noisy((320, 240))
    data, ext = deliver(original, spec, PROVENANCE)
    assert deliver(original, spec, PROVENANCE) == (data, ext)
    created = opened(data).info["icc_profile"][24:36]  # the ICC header's creation date
    assert struct.unpack(">6H", created) == (2000, 1, 1, 0, 0, 0)  # not the time of the run


def test_not_an_image():
    with pytest.raises(ValueError, match="not an image"):
        deliver(b"<html>", Spec(), PROVENANCE)


@pytest.mark.parametrize("kwargs", [{"format": "gif"}, {"fit": "stretch"}, {"quality": 0},
                                    {"quality": 101}, {"max_bytes": 0}, {"max_side": 0},
                                    {"size": (0, 10)}, {"fill": "nope"}, {"pad_color": "#12"}])
def test_bad_spec(kwargs):
    with pytest.raises(ValueError):
        Spec(**kwargs)


@pytest.mark.parametrize("text, rgb", [("white", (255, 255, 255)), ("#fff", (255, 255, 255)),
                                       ("#0a0B0c", (10, 11, 12)), ("rgb(1, 2, 3)", (1, 2, 3)),
                                       (" Navy ", (0, 0, 128))])
def test_parse_color(text, rgb):
    assert parse_color(text) == rgb


@pytest.mark.parametrize("text", ["", "blurple", "#ggg", "rgb(1,2)", "#ffffff80", "12"])
def test_parse_color_errors(text):
    with pytest.raises(ValueError, match="colour"):
        parse_color(text)


def test_parse_size():
    assert parse_size("2000x2000") == (2000, 2000)
    assert parse_size(" 1200 X 800 ") == (1200, 800)


@pytest.mark.parametrize("text", ["", "2000", "2000x", "x2000", "0x10", "-5x5", "20.5x10",
                                  "2000x2000x3", "99999x10"])
def test_parse_size_errors(text):
    with pytest.raises(ValueError, match="size"):
        parse_size(text)
