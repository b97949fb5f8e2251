"""Labelling Runflow's WebP without encoding it again: the pixels as sent, our metadata only."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from runflow_bg.delivery import COMPOSITE_WITH_AI, Provenance, Spec, _srgb_icc, deliver
from runflow_bg.embed import webp_with_metadata

PROVENANCE = Provenance("run_7", "runflow/background-replace", "mug.png")


def webp(mode: str = "RGB", **options) -> bytes:
    image = Image.new(mode, (96, 64), (30, 120, 200, 255) if mode == "RGBA" else (30, 120, 200))
    image.paste((250, 250, 250) if mode == "RGB" else (250, 250, 250, 90), (10, 10, 50, 40))
    out = io.BytesIO()
    image.save(out, "WEBP", **options)
    return out.getvalue()


def pixels(data: bytes) -> tuple[str, tuple[int, int], bytes]:
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return image.mode, image.size, image.tobytes()


@pytest.mark.parametrize("original", [webp(quality=80), webp(lossless=True),
                                      webp("RGBA", quality=80), webp("RGBA", lossless=True)],
                         ids=["lossy", "lossless", "lossy with alpha", "lossless with alpha"])
def test_the_label_and_profile_are_added_and_the_pixels_stay_as_sent(original):
    data, ext = deliver(original, Spec(), PROVENANCE)
    assert ext == "webp" and data != original
    assert pixels(data) == pixels(original)
    with Image.open(io.BytesIO(data)) as image:
        assert image.info["icc_profile"] == _srgb_icc()
        xmp = image.info["xmp"]
    assert COMPOSITE_WITH_AI.encode() in xmp and b"run_7" in xmp
    assert deliver(original, Spec(), PROVENANCE)[0] == data, "the same file every time"


def test_the_originals_own_metadata_is_dropped():
    exif = Image.Exif()
    exif[0x010F] = "CameraMaker"  # Make
    original = webp(quality=80, exif=exif.tobytes(), xmp=b"<x:xmpmeta>old packet</x:xmpmeta>")
    data, _ = deliver(original, Spec(), PROVENANCE)
    assert b"CameraMaker" not in data and b"old packet" not in data
    assert pixels(data) == pixels(original)


def test_an_animation_or_a_damaged_file_is_left_to_the_encoder():
    frames = [Image.new("RGB", (32, 32), colour) for colour in ("red", "blue")]
    animated = io.BytesIO()
    frames[0].save(animated, "WEBP", save_all=True, append_images=frames[1:], duration=100)
    assert webp_with_metadata(animated.getvalue(), icc=b"icc", xmp=b"x") is None
    good = webp(quality=80)
    for damaged in (good[:-7], good[:8] + b"WEBX" + good[12:], b"RIFF" + b"\0" * 30):
        assert webp_with_metadata(damaged, icc=b"icc", xmp=b"x") is None


def test_a_byte_cap_the_tagged_file_misses_is_met_by_encoding_again():
    original = webp(lossless=True)
    tagged, _ = deliver(original, Spec(), PROVENANCE)
    capped, _ = deliver(original, Spec(max_bytes=len(tagged) - 1), PROVENANCE)
    assert len(capped) < len(tagged)
    with Image.open(io.BytesIO(capped)) as image:
        assert image.format == "WEBP" and COMPOSITE_WITH_AI.encode() in image.info["xmp"]


def test_asking_for_a_change_still_encodes():
    original = webp(quality=80)
    data, _ = deliver(original, Spec(max_side=48), PROVENANCE)
    assert pixels(data)[1] == (48, 32)
