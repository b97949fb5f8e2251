"""Inputs reach the model as 8-bit sRGB RGB on white, and a photo without a white backdrop is
named before anything is paid."""

from __future__ import annotations

import io
import random
import struct
import zipfile
import zlib

import pytest
from PIL import Image, ImageCms, ImageDraw

from runflow_bg.backdrop import backdrop_problem, looks_swapped
from runflow_bg.errors import ExitCode, InputError
from runflow_bg.images import InputFile, prepare_image
from runflow_bg.packing import pack
from runflow_bg.service.inputs import replace_inputs


def encoded(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def decoded(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def profile_name(image: Image.Image) -> str:
    icc = image.info.get("icc_profile")
    return ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(icc))).strip()


# -- ICC profiles that Pillow cannot create -------------------------------------------------

def _s15(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def _xyz(x: float, y: float, z: float) -> bytes:
    return b"XYZ \0\0\0\0" + _s15(x) + _s15(y) + _s15(z)


def _desc(text: str) -> bytes:
    ascii_text = text.encode() + b"\0"
    return b"desc\0\0\0\0" + struct.pack(">I", len(ascii_text)) + ascii_text + bytes(78)


def icc_v2(device_class: bytes, space: bytes, pcs: bytes, tags: list[tuple[bytes, bytes]]) -> bytes:
    """A minimal ICC v2 profile: the 128-byte header, the tag table and the tags."""
    offset = 128 + 4 + 12 * len(tags)
    table = body = b""
    for signature, data in tags:
        table += signature + struct.pack(">II", offset + len(body), len(data))
        body += data + bytes(-len(data) % 4)
    header = (struct.pack(">I", offset + len(body)) + b"lcms" + bytes([2, 0x10, 0, 0])
              + device_class + space + pcs + struct.pack(">6H", 2024, 1, 1, 0, 0, 0) + b"acsp"
              + bytes(24) + struct.pack(">I", 0) + _s15(0.9642) + _s15(1.0) + _s15(0.8249)
              + bytes(48))
    return header + struct.pack(">I", len(tags)) + table + body


def rgb_profile(name: str, red, green, blue, gamma: float) -> bytes:
    """A matrix/TRC display profile: D50-adapted primaries and one gamma for the three curves."""
    curve = b"curv\0\0\0\0" + struct.pack(">IH", 1, round(gamma * 256)) + b"\0\0"
    return icc_v2(b"mntr", b"RGB ", b"XYZ ", [
        (b"desc", _desc(name)), (b"wtpt", _xyz(0.9642, 1.0, 0.8249)), (b"rXYZ", _xyz(*red)),
        (b"gXYZ", _xyz(*green)), (b"bXYZ", _xyz(*blue)), (b"rTRC", curve), (b"gTRC", curve),
        (b"bTRC", curve)])


ADOBE_RGB = rgb_profile("Adobe RGB (1998)", (0.60974, 0.31111, 0.01947),
                        (0.20528, 0.62567, 0.06087), (0.14919, 0.06322, 0.74457), 563 / 256)
DISPLAY_P3 = rgb_profile("Display P3", (0.51510, 0.24118, -0.00105), (0.29197, 0.69224, 0.04188),
                         (0.15715, 0.06658, 0.78438), 2.2)
SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
PRESS_CYAN = (0, 160, 230)  # what the CMYK profile below makes of pure cyan


def cmyk_profile() -> bytes:
    """A CMYK printer profile (an 8-bit A2B0 table to Lab) in which pure cyan prints PRESS_CYAN."""
    corners = []
    for c in (0, 1):
        for m in (0, 1):
            for y in (0, 1):
                for k in (0, 1):
                    rgb = tuple(round(255 * (1 - ink) * (1 - k)) for ink in (c, m, y))
                    corners.append(PRESS_CYAN if (c, m, y, k) == (1, 0, 0, 0) else rgb)
    swatch = Image.new("RGB", (16, 1))
    swatch.putdata(corners)
    lab = ImageCms.profileToProfile(swatch, ImageCms.createProfile("sRGB"),
                                    ImageCms.createProfile("LAB"), outputMode="LAB")
    # Pillow keeps a* and b* as signed bytes; ICC's 8-bit Lab adds 128 to them.
    grid = bytes(v if i % 3 == 0 else (v + 128) % 256 for i, v in enumerate(lab.tobytes()))
    ramp = bytes(range(256))
    table = (b"mft1\0\0\0\0" + bytes([4, 3, 2, 0])
             + b"".join(_s15(1.0 if row == col else 0.0) for row in range(3) for col in range(3))
             + ramp * 4 + grid + ramp * 3)
    return icc_v2(b"prtr", b"CMYK", b"Lab ", [(b"desc", _desc("Test press CMYK")),
                                              (b"wtpt", _xyz(0.9642, 1.0, 0.8249)),
                                              (b"A2B0", table)])


def png_16_bit(size: tuple[int, int], pixel: tuple[int, ...]) -> bytes:
    """A 16-bit PNG (Pillow writes 16-bit greyscale only): RGB or RGBA by the pixel's length."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        checksum = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + checksum

    width, height = size
    colour_type = {3: 2, 4: 6}[len(pixel)]
    row = b"\0" + struct.pack(f">{len(pixel)}H", *pixel) * width
    return (b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(row * height)) + chunk(b"IEND", b""))


# -- colour -----------------------------------------------------------------------------------

MID_GREEN = (60, 180, 90)


@pytest.mark.parametrize("name,fmt,icc,expected", [
    ("photo.png", "PNG", ADOBE_RGB, "Adobe RGB (1998)"),
    ("photo.jpg", "JPEG", DISPLAY_P3, "Display P3"),
])
def test_wide_gamut_photos_are_converted_to_srgb(name, fmt, icc, expected):
    image = Image.new("RGB", (40, 20), "white")
    image.paste(MID_GREEN, (0, 0, 20, 20))
    prepared = prepare_image(InputFile(name, encoded(image, fmt, icc_profile=icc, quality=100)))
    assert prepared.notices == (f"{name}: converted {expected} to sRGB",)
    out = decoded(prepared.open().read())
    assert out.format == fmt and out.mode == "RGB" and "sRGB" in profile_name(out)
    red, green, _ = out.getpixel((5, 5))
    assert red < 15 and abs(green - 180) <= 8  # the same green, more saturated in sRGB numbers
    assert out.getpixel((35, 5)) == (255, 255, 255)  # the white backdrop stays white


def test_pure_green_clips_to_srgb_green_and_a_softer_green_moves():
    swatch = Image.new("RGB", (2, 1))
    swatch.putdata([(0, 255, 0), MID_GREEN])
    out = decoded(prepare_image(InputFile("g.png", encoded(swatch, "PNG",
                                                          icc_profile=ADOBE_RGB))).open().read())
    assert out.getpixel((0, 0)) == (0, 255, 0)  # out of sRGB's gamut: its most saturated green
    assert out.getpixel((1, 0))[0] < MID_GREEN[0] - 40


def test_keep_profile_leaves_the_profile_and_the_bytes_alone():
    data = encoded(Image.new("RGB", (20, 20), MID_GREEN), "JPEG", icc_profile=DISPLAY_P3)
    prepared = prepare_image(InputFile("p3.jpg", data), keep_profile=True)
    assert prepared.open().read() == data and prepared.notices == ()


def test_keep_profile_still_flattens_and_keeps_the_profile_it_re_encodes():
    data = encoded(Image.new("RGBA", (20, 20), (*MID_GREEN, 0)), "PNG", icc_profile=DISPLAY_P3)
    prepared = prepare_image(InputFile("p3.png", data), keep_profile=True)
    out = decoded(prepared.open().read())
    assert profile_name(out) == "Display P3" and out.getpixel((0, 0)) == (255, 255, 255)
    assert prepared.notices == ("p3.png: flattened transparency onto white",)


@pytest.mark.parametrize("icc", [None, SRGB])
def test_srgb_jpeg_goes_through_untouched(icc):
    kwargs = {"icc_profile": icc} if icc else {}
    data = encoded(Image.new("RGB", (30, 20), MID_GREEN), "JPEG", **kwargs)
    prepared = prepare_image(InputFile("s.jpg", data))
    assert prepared.open().read() == data and prepared.notices == ()


def test_a_damaged_profile_is_read_as_srgb():
    data = encoded(Image.new("RGB", (10, 10), MID_GREEN), "JPEG", icc_profile=b"not a profile" * 20)
    assert prepare_image(InputFile("odd.jpg", data)).open().read() == data


def test_cmyk_without_a_profile_becomes_rgb():
    data = encoded(Image.new("CMYK", (10, 10), (255, 0, 0, 0)), "JPEG", quality=100)
    prepared = prepare_image(InputFile("print.jpg", data))
    out = decoded(prepared.open().read())
    assert out.format == "JPEG" and out.mode == "RGB" and "sRGB" in profile_name(out)
    assert all(abs(a - b) <= 3 for a, b in zip(out.getpixel((5, 5)), (0, 255, 255)))
    assert prepared.notices == ("print.jpg: converted CMYK to sRGB (it has no ICC profile)",)


def test_cmyk_with_a_profile_is_converted_through_it():
    data = encoded(Image.new("CMYK", (10, 10), (255, 0, 0, 0)), "TIFF", icc_profile=cmyk_profile())
    prepared = prepare_image(InputFile("print.tif", data))
    assert prepared.notices == ("print.tif: converted TIFF to PNG",
                                "print.tif: converted CMYK (Test press CMYK) to sRGB")
    pixel = decoded(prepared.open().read()).getpixel((5, 5))
    assert all(abs(a - b) <= 10 for a, b in zip(pixel, PRESS_CYAN))  # an 8-bit Lab table is coarse


def test_sixteen_bit_greyscale_is_scaled_not_clipped():
    grey = Image.new("I;16", (3, 1))
    grey.putdata([0, 40000, 65535])
    prepared = prepare_image(InputFile("scan.png", encoded(grey, "PNG")))
    out = decoded(prepared.open().read())
    assert out.mode == "RGB" and [out.getpixel((x, 0)) for x in range(3)] == [
        (0, 0, 0), (156, 156, 156), (255, 255, 255)]
    assert prepared.notices == ("scan.png: 16-bit greyscale made 8-bit RGB",)


def test_sixteen_bit_colour_is_re_encoded_as_8_bit():
    data = png_16_bit((4, 4), (65535, 32896, 0))
    prepared = prepare_image(InputFile("deep.png", data))
    assert prepared.notices == ("deep.png: 16-bit colour made 8-bit RGB",)
    with Image.open(io.BytesIO(prepared.open().read())) as out:
        assert out.tile[0][3] == "RGB"  # 8 bits a channel in the file, not RGB;16B
        assert out.getpixel((0, 0)) == (255, 128, 0)


@pytest.mark.parametrize("image,fmt,pixel,notice", [
    (Image.new("L", (4, 4), 100), "JPEG", (100, 100, 100), "greyscale made 8-bit RGB"),
    (Image.new("I;16B", (4, 4), 257 * 100), "TIFF", (100, 100, 100),
     "16-bit greyscale made 8-bit RGB"),
    (Image.new("I", (4, 4), 257 * 100), "TIFF", (100, 100, 100), "16-bit greyscale made 8-bit RGB"),
    (Image.new("F", (4, 4), 0.5), "TIFF", (128, 128, 128),
     "floating-point greyscale made 8-bit RGB"),
    (Image.new("P", (4, 4), 1), "PNG", (10, 20, 30), "palette colour made 8-bit RGB"),
])
def test_other_pixel_formats_become_8_bit_rgb(image, fmt, pixel, notice):
    if image.mode == "P":
        image.putpalette([0, 0, 0, 10, 20, 30])
    prepared = prepare_image(InputFile(f"x.{fmt.lower()}", encoded(image, fmt)))
    out = decoded(prepared.open().read())
    assert out.mode == "RGB" and out.getpixel((1, 1)) == pixel
    assert prepared.notices[-1] == f"x.{fmt.lower()}: {notice}"


@pytest.mark.parametrize("name,image,fmt", [
    ("cutout.png", Image.new("RGBA", (4, 4), (255, 0, 0, 128)), "PNG"),
    ("cutout.webp", Image.new("RGBA", (4, 4), (255, 0, 0, 128)), "WEBP"),
    ("grey.png", Image.new("LA", (4, 4), (0, 128)), "PNG"),
])
def test_transparency_is_flattened_onto_white(name, image, fmt):
    prepared = prepare_image(InputFile(name, encoded(image, fmt, lossless=True)))
    out = decoded(prepared.open().read())
    assert out.format == fmt and out.mode == "RGB"
    expected = (255, 127, 127) if image.mode == "RGBA" else (127, 127, 127)
    assert all(abs(a - b) <= 2 for a, b in zip(out.getpixel((1, 1)), expected))
    assert f"{name}: flattened transparency onto white" in prepared.notices


def test_a_palette_gif_with_transparency_is_flattened():
    image = Image.new("P", (4, 4), 0)
    image.putpalette([0, 0, 0, 200, 0, 0])
    image.putpixel((0, 0), 1)
    prepared = prepare_image(InputFile("a.gif", encoded(image, "GIF", transparency=0)))
    out = decoded(prepared.open().read())
    assert out.getpixel((0, 0)) == (200, 0, 0) and out.getpixel((1, 1)) == (255, 255, 255)
    assert prepared.notices == ("a.gif: converted GIF to PNG",
                                "a.gif: flattened transparency onto white",
                                "a.gif: palette colour made 8-bit RGB")


def test_the_zip_carries_srgb_rgb_without_alpha():
    photo = Image.new("RGBA", (40, 30), (0, 0, 0, 0))
    photo.paste((*MID_GREEN, 255), (10, 10, 30, 20))
    scene = Image.new("CMYK", (40, 30), (0, 255, 255, 0))
    package = pack(
        prepare_image(InputFile("bottle.png", encoded(photo, "PNG", icc_profile=ADOBE_RGB))),
        prepare_image(InputFile("wall.jpg", encoded(scene, "JPEG", quality=100))))
    with zipfile.ZipFile(package.file) as archive:
        image, reference = (decoded(archive.read(name)) for name in ("image.png", "reference.jpg"))
    for member in (image, reference):
        assert member.mode == "RGB" and "sRGB" in profile_name(member)
        assert "transparency" not in member.info
    assert image.getpixel((0, 0)) == (255, 255, 255) and image.getpixel((20, 15))[0] < 15
    assert all(abs(a - b) <= 3 for a, b in zip(reference.getpixel((20, 15)), (255, 0, 0)))


# -- the backdrop -----------------------------------------------------------------------------

def product_on(backdrop, size=(320, 240)) -> Image.Image:
    image = Image.new("RGB", size, backdrop)
    ImageDraw.Draw(image).rectangle((100, 60, 220, 200), fill=(40, 90, 160))
    return image


def blotchy_backdrop(level: int, amplitude: int) -> Image.Image:
    """Backdrop blotches a few dozen pixels wide: crumpled paper or cloth, not sensor noise."""
    rng = random.Random(7)
    cells = Image.new("L", (16, 12))
    cells.putdata([max(0, min(255, level + rng.randint(-amplitude, amplitude)))
                   for _ in range(16 * 12)])
    texture = cells.resize((320, 240), Image.Resampling.BICUBIC)
    image = Image.merge("RGB", (texture, texture, texture))
    ImageDraw.Draw(image).rectangle((100, 60, 220, 200), fill=(40, 90, 160))
    return image


def a_scene() -> Image.Image:
    image = Image.new("RGB", (320, 240), (120, 170, 230))
    ImageDraw.Draw(image).rectangle((0, 140, 320, 240), fill=(90, 140, 60))
    return image


def with_grey_floor() -> Image.Image:
    image = product_on("white")
    ImageDraw.Draw(image).rectangle((0, 170, 320, 240), fill=(200, 200, 200))
    return image


def with_falloff(darkest: int) -> Image.Image:
    """A studio sweep: white at the top, a little darker towards the bottom."""
    ramp = Image.linear_gradient("L").resize((320, 240)).point(
        lambda v: 255 - (255 - darkest) * v / 255)
    image = Image.merge("RGB", (ramp, ramp, ramp))
    ImageDraw.Draw(image).rectangle((100, 60, 220, 200), fill=(40, 90, 160))
    return image


@pytest.mark.parametrize("image", [
    product_on("white"), product_on((245, 245, 245)), with_falloff(242),
    Image.open(io.BytesIO(encoded(product_on("white"), "JPEG", quality=60))),
    product_on("white").crop((0, 0, 320, 180)),  # the product runs off the bottom edge
], ids=["white", "off-white", "soft falloff", "jpeg", "touching"])
def test_a_white_backdrop_passes(image):
    assert backdrop_problem(image) is None


@pytest.mark.parametrize("image,needle", [
    (product_on((216, 216, 216)), "not white (its top edge is 216 of 255"),
    (product_on((215, 255, 255)), "not white"),  # light cyan: bright, but tinted
    (with_grey_floor(), "not white (its bottom edge is 200 of 255"),
    (blotchy_backdrop(248, 35), "uneven or textured"),
    (with_falloff(215), "not white (its bottom edge"),
], ids=["light grey", "tinted", "grey floor", "blotchy", "steep falloff"])
def test_a_backdrop_that_is_not_white_or_even_is_named(image, needle):
    assert needle in backdrop_problem(image)


def test_a_scene_and_a_photo_given_the_wrong_way_round_look_swapped():
    assert looks_swapped(a_scene(), product_on("white"))
    assert not looks_swapped(product_on("white"), a_scene())
    assert not looks_swapped(a_scene(), a_scene())


class Notes:
    def __init__(self) -> None:
        self.notices: list[str] = []

    def on_stage(self, message: str) -> None:
        pass

    def on_notice(self, message: str) -> None:
        self.notices.append(message)


@pytest.fixture
def files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    product_on("white").save("bottle.png")
    product_on((216, 216, 216)).save("grey.png")
    a_scene().save("kitchen.jpg")
    return tmp_path


def test_a_good_pair_has_no_warnings(files):
    notes = Notes()
    inputs = replace_inputs("bottle.png", "kitchen.jpg", None, notes)
    assert inputs.warnings == () and notes.notices == []


def test_a_grey_backdrop_is_a_warning(files):
    notes = Notes()
    inputs = replace_inputs("grey.png", "kitchen.jpg", None, notes)
    assert len(inputs.warnings) == 1 and inputs.warnings[0].startswith("grey.png: its backdrop")
    assert notes.notices == list(inputs.warnings) and inputs.package is not None


def test_swapped_files_are_a_warning(files):
    inputs = replace_inputs("kitchen.jpg", "bottle.png", None, Notes())
    assert inputs.warnings == ("kitchen.jpg looks like a scene and bottle.png like a product on "
                               "white: they seem to be given the wrong way round",)


@pytest.mark.parametrize("photo,scene,needle", [
    ("grey.png", "kitchen.jpg", "grey.png: its backdrop is not white"),
    ("kitchen.jpg", "bottle.png", "kitchen.jpg looks like a scene"),
])
def test_strict_refuses_before_anything_is_packed(files, photo, scene, needle):
    with pytest.raises(InputError) as caught:
        replace_inputs(photo, scene, None, Notes(), strict=True)
    assert needle in caught.value.message and caught.value.exit_code == ExitCode.BAD_INPUT
    assert "--strict-inputs" in caught.value.hint


def test_keep_profile_reaches_the_zip(files):
    Image.new("RGB", (40, 30), "white").save("p3.png", icc_profile=DISPLAY_P3)
    for keep, expected in ((False, "sRGB built-in"), (True, "Display P3")):
        package = replace_inputs("p3.png", "kitchen.jpg", None, Notes(), keep_profile=keep).package
        with zipfile.ZipFile(package.file) as archive:
            kept = decoded(archive.read("image.png"))
        assert profile_name(kept) == expected
