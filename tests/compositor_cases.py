"""Generated product photos with known masks, and how well the compositor does on them.

Shared by tests/test_compositor.py (quality floors) and benchmarks/bench_compositor.py (the
table). Each case is a product drawn on a known backdrop: its true silhouette, the part whose
colour must come through the composite unchanged and, when the photo has a contact shadow, the
shadow's true opacity.
"""

from __future__ import annotations

import io
from typing import Callable, NamedTuple

from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageStat

from helpers import zip_bytes as zip_of
from runflow_bg.emulator.compositor import composite, subject_mask

SIZE = (480, 360)
OLIVE = (0x6B, 0x7A, 0x2A)

Draw = Callable[[ImageDraw.ImageDraw], object]


def shape(draw_area: Draw, size: tuple[int, int] = SIZE) -> Image.Image:
    """A 0/255 mask of what `draw_area` fills with 255."""
    area = Image.new("L", size, 0)
    draw_area(ImageDraw.Draw(area))
    return area


def noisy_backdrop(size: tuple[int, int], level: int) -> Image.Image:
    """A flat backdrop of `level` with mild noise: every channel within level-5..level+5."""
    low = level - 5
    channels = [Image.effect_noise(size, 40).point(lambda v: low + v * 10 // 255) for _ in range(3)]
    return Image.merge("RGB", channels)


def off_white_background(size: tuple[int, int]) -> Image.Image:
    """White with mild noise: every channel between 245 and 255."""
    return noisy_backdrop(size, 250)


def vignetted_backdrop(size: tuple[int, int], centre: int = 242, corner: int = 196) -> Image.Image:
    """Lighter in the middle, darker toward the corners (a lens's falloff), with mild noise."""
    grid_width, grid_height = 49, 37
    levels = []
    for y in range(grid_height):
        for x in range(grid_width):
            dx, dy = 2 * x / (grid_width - 1) - 1, 2 * y / (grid_height - 1) - 1
            r = ((dx * dx + dy * dy) / 2) ** 0.5
            levels.append(round(centre - (centre - corner) * r**2.4))
    falloff = Image.new("L", (grid_width, grid_height))
    falloff.putdata(levels)
    falloff = falloff.resize(size, Image.Resampling.BILINEAR).convert("RGB")
    return ImageChops.add(falloff, noisy_backdrop(size, 5), offset=-5)


class Case(NamedTuple):
    """A generated photo with what the compositor should find in it."""

    photo: Image.Image
    truth: Image.Image
    colour_area: Image.Image
    shadow: Image.Image | None = None


def product_case(
    silhouette: Draw,
    colour: tuple[int, int, int],
    backdrop: Image.Image | None = None,
    enclosed_white: Draw | None = None,
    white: tuple[int, int, int] = (250, 250, 250),
    soft_edge: float = 0,
    holes: Draw | None = None,
) -> Case:
    """A product of one colour, maybe with a white area on it (a label) and holes through it
    (a mug's handle) that show the backdrop; soft_edge stands for a lens's anti-aliasing."""
    photo = backdrop.copy() if backdrop is not None else off_white_background(SIZE)
    truth = shape(silhouette)
    if holes is not None:
        truth = ImageChops.subtract(truth, shape(holes))

    def softened(area: Image.Image) -> Image.Image:
        return area.filter(ImageFilter.GaussianBlur(soft_edge)) if soft_edge else area

    photo.paste(colour, (0, 0), softened(truth))
    if enclosed_white is not None:
        photo.paste(white, (0, 0), softened(shape(enclosed_white)))
    return Case(photo, truth, interior(truth))


def interior(area: Image.Image) -> Image.Image:
    """The area less a 4-pixel rim: where a product is fully opaque, away from its edge."""
    return area.filter(ImageFilter.MinFilter(9))


def bottle_with_cap() -> Case:
    """A green bottle with an olive cap, the cap being the colour to keep."""
    cap = shape(lambda draw: draw.rounded_rectangle((195, 40, 285, 105), radius=8, fill=255))
    case = product_case(
        lambda draw: (
            draw.rounded_rectangle((170, 130, 310, 335), radius=28, fill=255),
            draw.rectangle((215, 100, 265, 135), fill=255),
        ),
        (40, 110, 90),
    )
    case.photo.paste(OLIVE, (0, 0), cap)
    truth = ImageChops.lighter(case.truth, cap)
    return Case(case.photo, truth, interior(cap))


def box_with_contact_shadow() -> Case:
    """A box standing on a light-grey backdrop, with the soft shadow it casts where it stands."""
    truth = shape(lambda draw: draw.rectangle((175, 70, 305, 280), fill=255))
    spread = shape(lambda draw: draw.ellipse((135, 250, 365, 302), fill=255))
    opacity = spread.filter(ImageFilter.GaussianBlur(10)).point(lambda v: v * 55 // 100)
    backdrop = noisy_backdrop(SIZE, 230)
    photo = Image.composite(Image.new("RGB", SIZE, 0), backdrop, opacity)
    photo.paste((40, 80, 170), (0, 0), truth)
    shadow = ImageChops.subtract(opacity, truth.filter(ImageFilter.MaxFilter(5)))
    return Case(photo, truth, interior(truth), shadow)


def ellipse(draw: ImageDraw.ImageDraw) -> None:
    draw.ellipse((120, 70, 360, 300), fill=255)


def polygon(draw: ImageDraw.ImageDraw) -> None:
    draw.polygon([(240, 40), (400, 200), (300, 330), (90, 280), (140, 120)], fill=255)


def bottle(draw: ImageDraw.ImageDraw) -> None:
    draw.rounded_rectangle((180, 60, 300, 330), radius=30, fill=255)


def label(draw: ImageDraw.ImageDraw) -> None:
    draw.rectangle((200, 150, 280, 240), fill=255)


RED, BLUE, GREY, BLACKISH = (200, 20, 30), (20, 60, 200), (128, 128, 128), (25, 30, 35)

CASES: dict[str, Callable[[], Case]] = {
    "ellipse": lambda: product_case(ellipse, RED),
    "polygon": lambda: product_case(polygon, BLUE),
    "horseshoe": lambda: product_case(
        lambda draw: (
            draw.ellipse((100, 40, 380, 320), fill=255),
            draw.ellipse((170, 110, 310, 250), fill=0),
            draw.rectangle((215, 180, 265, 330), fill=0),
        ),
        (30, 140, 40),
    ),
    "thin_stick": lambda: product_case(
        lambda draw: draw.polygon([(60, 300), (68, 308), (420, 56), (412, 48)], fill=255),
        (10, 10, 10),
    ),
    "bottle_with_label": lambda: product_case(bottle, BLACKISH, enclosed_white=label),
    "soft_edged_bottle_with_label": lambda: product_case(
        bottle, (160, 110, 40), enclosed_white=label, soft_edge=0.8
    ),
    "ring": lambda: product_case(
        lambda draw: draw.ellipse((140, 60, 340, 260), fill=255),
        (120, 40, 160),
        holes=lambda draw: draw.ellipse((170, 90, 310, 230), fill=255),
    ),
    "mug_with_handle": lambda: product_case(
        lambda draw: (
            draw.rounded_rectangle((120, 90, 290, 300), radius=14, fill=255),
            draw.ellipse((240, 130, 370, 260), fill=255),
        ),
        (200, 60, 40),
        holes=lambda draw: draw.ellipse((290, 165, 340, 225), fill=255),
    ),
    "grey_product": lambda: product_case(ellipse, GREY),
    "grey_d0_backdrop": lambda: product_case(polygon, BLUE, noisy_backdrop(SIZE, 0xD0)),
    "grey_f0_backdrop": lambda: product_case(polygon, BLUE, noisy_backdrop(SIZE, 0xF0)),
    "vignetted_backdrop": lambda: product_case(ellipse, RED, vignetted_backdrop(SIZE)),
    "white_label_on_grey": lambda: product_case(
        bottle, BLACKISH, noisy_backdrop(SIZE, 0xD8), enclosed_white=label, white=(252, 252, 250)
    ),
    "contact_shadow": box_with_contact_shadow,
    "olive_cap": bottle_with_cap,
}


def warm_scene(size: tuple[int, int] = SIZE) -> Image.Image:
    """A light, warm top-to-bottom blend, like a marble counter."""
    ramp = Image.linear_gradient("L").resize(size)
    return Image.composite(
        Image.new("RGB", size, (196, 180, 160)), Image.new("RGB", size, (228, 218, 205)), ramp
    )


def encoded(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def run_composite(photo: Image.Image, scene: Image.Image) -> Image.Image:
    data = zip_of({"image.png": encoded(photo), "reference.png": encoded(scene)})
    result = composite(data, "image.png", "reference.png", "a marble counter")
    assert result[:4] == b"RIFF" and result[8:12] == b"WEBP"
    return Image.open(io.BytesIO(result)).convert("RGB")


def iou(mask: Image.Image, truth: Image.Image) -> float:
    """Agreement of a soft mask, cut at half, with a 0/255 truth: intersection over union."""
    ours = mask.point(lambda v: 255 if v > 127 else 0)
    intersection = ImageChops.darker(ours, truth).histogram()[255]
    union = ImageChops.lighter(ours, truth).histogram()[255]
    return intersection / union


def colour_delta(result: Image.Image, photo: Image.Image, area: Image.Image) -> float:
    """Mean over `area` of the largest per-channel difference between composite and photo."""
    red, green, blue = ImageChops.difference(result, photo).split()
    largest = ImageChops.lighter(ImageChops.lighter(red, green), blue)
    return ImageStat.Stat(largest, area).mean[0]


def shadow_error(result: Image.Image, scene: Image.Image, shadow: Image.Image) -> float:
    """Mean error, as a fraction of full opacity, of how much the composite darkens the scene
    where the photo has a shadow, against the photo's true shadow opacity."""
    pixels = zip(result.convert("L").tobytes(), scene.convert("L").tobytes(), shadow.tobytes())
    errors = [abs(1 - got / light - truth / 255) for got, light, truth in pixels if truth >= 13]
    return sum(errors) / len(errors)


class Measure(NamedTuple):
    iou: float
    colour_delta: float
    shadow_error: float | None


def measure(case: Case) -> Measure:
    """How the compositor does on a case: mask IoU, colour delta, and shadow error if any."""
    scene = warm_scene(case.photo.size)
    result = run_composite(case.photo, scene)
    shadow = None if case.shadow is None else shadow_error(result, scene, case.shadow)
    return Measure(
        iou(subject_mask(case.photo), case.truth),
        colour_delta(result, case.photo, case.colour_area),
        shadow,
    )
