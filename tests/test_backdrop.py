"""The backdrop check's figures are exactly those of the plain algorithm it replaced (edge crops
of a whiteness image, a histogram each, medians of the histograms), on any image."""

from __future__ import annotations

import io
import random
from bisect import bisect_left
from itertools import accumulate
from operator import add

import pytest
from hypothesis import given, settings, strategies as st
from PIL import Image, ImageChops, ImageDraw, ImageFilter

from runflow_bg.backdrop import BAND, SIDE, _median, border_whiteness

MODES = ("1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "I", "F", "I;16")


def reference_whiteness(image: Image.Image) -> tuple[dict[str, int], int]:
    """The backdrop figures as first written: one Pillow crop and histogram an edge."""
    small = image.convert("RGB")
    small.thumbnail((SIDE, SIDE), Image.Resampling.BOX)
    red, green, blue = small.split()
    whiteness = ImageChops.darker(ImageChops.darker(red, green), blue)
    width, height = whiteness.size
    band = max(1, round(min(width, height) * BAND))
    edges = {"top": (0, 0, width, band), "bottom": (0, height - band, width, height),
             "left": (0, 0, band, height), "right": (width - band, 0, width, height)}
    counts = {edge: whiteness.crop(box).histogram() for edge, box in edges.items()}
    top, bottom, left, right = counts.values()
    border = list(map(add, map(add, top, bottom), map(add, left, right)))
    level = histogram_median(border)
    above = border[level:] + [0] * level
    below = border[level::-1] + [0] * (255 - level)
    distances = list(map(add, above, below))
    distances[0] = border[level]
    return ({edge: histogram_median(edge_counts) for edge, edge_counts in counts.items()},
            histogram_median(distances))


def histogram_median(counts: list[int]) -> int:
    totals = list(accumulate(counts))
    return bisect_left(totals, totals[-1] / 2)


def product_photo(size, backdrop, product=(40, 90, 160), box=(0.3, 0.25, 0.7, 0.8)):
    image = Image.new("RGB", size, backdrop)
    width, height = size
    left, top, right, bottom = box
    ImageDraw.Draw(image).rectangle((left * width, top * height, right * width, bottom * height),
                                    fill=product)
    return image


def noisy(image: Image.Image, amount: int, seed: int) -> Image.Image:
    random.seed(seed)  # effect_noise draws from C's rand; the blend keeps the image's own colours
    noise = Image.effect_noise(image.size, amount).convert(image.mode)
    return Image.blend(image, noise, 0.15)


def jpeg(image: Image.Image, quality: int = 70) -> Image.Image:
    out = io.BytesIO()
    image.convert("RGB").save(out, "JPEG", quality=quality)
    return Image.open(io.BytesIO(out.getvalue()))


def falloff(size, darkest: int) -> Image.Image:
    ramp = Image.linear_gradient("L").resize(size).point(lambda v: 255 - (255 - darkest) * v // 255)
    return Image.merge("RGB", (ramp, ramp, ramp))


def blotchy(size, level: int, amplitude: int, seed: int) -> Image.Image:
    rng = random.Random(seed)
    cells = Image.new("L", (16, 12))
    cells.putdata([max(0, min(255, level + rng.randint(-amplitude, amplitude)))
                   for _ in range(16 * 12)])
    texture = cells.resize(size, Image.Resampling.BICUBIC)
    return Image.merge("RGB", (texture, texture, ImageChops.add(texture, texture, 2.2)))


REAL_LOOKING = {
    "white": product_photo((320, 240), "white"),
    "off-white jpeg": jpeg(noisy(product_photo((640, 480), (246, 246, 244)), 60, 1)),
    "touching the bottom": product_photo((300, 200), "white", box=(0.3, 0.4, 0.7, 1.0)),
    "touching left and top": product_photo((200, 300), "white", box=(0, 0, 0.6, 0.6)),
    "covering most of an edge": product_photo((256, 256), "white", box=(-0.1, 0.5, 1.1, 1.0)),
    "light cyan": product_photo((320, 240), (215, 255, 255)),
    "warm tint": jpeg(product_photo((500, 375), (255, 236, 214))),
    "grey floor": ImageChops.darker(product_photo((320, 240), "white"),
                                    product_photo((320, 240), "white", (200, 200, 200),
                                                  box=(0, 0.7, 1, 1))),
    "soft falloff": falloff((400, 300), 242),
    "steep falloff": falloff((400, 300), 200),
    "blotchy": blotchy((320, 240), 248, 35, 7),
    "blurred product": product_photo((333, 251), "white").filter(ImageFilter.GaussianBlur(9)),
    "scene": Image.linear_gradient("L").resize((300, 200)).convert("RGB"),
    "large": jpeg(noisy(product_photo((2000, 1500), (250, 250, 250)), 40, 2), 85),
    "tall strip": product_photo((40, 1200), "white"),
    "wide strip": product_photo((1500, 9), (240, 240, 240)),
}


@pytest.mark.parametrize("name", REAL_LOOKING)
@pytest.mark.parametrize("mode", ("RGB", "RGBA", "L", "P", "CMYK"))
def test_real_looking_photos_give_the_same_figures(name, mode):
    image = REAL_LOOKING[name].convert(mode)
    assert border_whiteness(image) == reference_whiteness(image)


@pytest.mark.parametrize("size", [(1, 1), (1, 7), (7, 1), (2, 2), (3, 5), (24, 24), (25, 25),
                                  (26, 38), (37, 13), (96, 72), (255, 256), (256, 255),
                                  (257, 130), (511, 513), (1001, 3)])
def test_tiny_odd_and_large_sizes_give_the_same_figures(size):
    rng = random.Random(hash(size))
    for mode in MODES:
        image = Image.frombytes("RGB", size, rng.randbytes(size[0] * size[1] * 3)).convert(mode)
        assert border_whiteness(image) == reference_whiteness(image), (mode, size)


def test_random_drawings_give_the_same_figures():
    rng = random.Random(11)
    for _ in range(400):
        width, height = rng.randint(1, 420), rng.randint(1, 420)
        image = Image.new("RGB", (width, height), tuple(rng.randint(150, 255) for _ in range(3)))
        draw = ImageDraw.Draw(image)
        for _ in range(rng.randint(0, 6)):
            x, y = rng.randint(-width, width), rng.randint(-height, height)
            draw.rectangle((x, y, x + rng.randint(0, 2 * width), y + rng.randint(0, 2 * height)),
                           fill=tuple(rng.randint(0, 255) for _ in range(3)))
        if rng.random() < 0.5:
            image = noisy(image, rng.randint(1, 80), rng.randint(0, 1000))
        image = image.convert(rng.choice(MODES))
        assert border_whiteness(image) == reference_whiteness(image), (image.mode, image.size)


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 40), st.integers(1, 40), st.sampled_from(MODES), st.data())
def test_any_pixels_give_the_same_figures(width, height, mode, data):
    pixels = data.draw(st.binary(min_size=width * height * 3, max_size=width * height * 3))
    image = Image.frombytes("RGB", (width, height), pixels).convert(mode)
    assert border_whiteness(image) == reference_whiteness(image)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from([0, 1, 2, 127, 128, 253, 254, 255]), min_size=1, max_size=12))
def test_medians_near_either_end_of_the_levels(levels):
    counts = Image.frombytes("L", (len(levels), 1), bytes(levels)).histogram()
    assert _median(bytes(levels)) == histogram_median(counts)
