"""The emulator's compositor: subject masks against known shapes, the composite, its failures."""

from __future__ import annotations

import io
import time
import zipfile
from typing import Callable, NamedTuple

import pytest
from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageOps, ImageStat

from runflow_bg.emulator.compositor import CompositeError, composite, subject_mask

SIZE = (480, 360)


def off_white_background(size: tuple[int, int]) -> Image.Image:
    """White with mild noise: every channel between 245 and 255."""
    channels = [
        Image.effect_noise(size, 40).point(lambda v: 245 + v * 10 // 255) for _ in range(3)
    ]
    return Image.merge("RGB", channels)


def photo_of(truth: Image.Image, colour: tuple[int, int, int]) -> Image.Image:
    photo = off_white_background(truth.size)
    photo.paste(colour, (0, 0), truth)
    return photo


def shape(draw_subject, size: tuple[int, int] = SIZE) -> Image.Image:
    truth = Image.new("L", size, 0)
    draw_subject(ImageDraw.Draw(truth))
    return truth


def iou(mask: Image.Image, truth: Image.Image) -> float:
    ours = mask.point(lambda v: 255 if v > 127 else 0)
    intersection = ImageChops.darker(ours, truth).histogram()[255]
    union = ImageChops.lighter(ours, truth).histogram()[255]
    return intersection / union


def zip_of(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()


def encoded(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def gradient_scene(size: tuple[int, int]) -> Image.Image:
    """A smooth left-to-right blend, so a lossy output still matches it pixel by pixel."""
    left, right = (30, 90, 160), (200, 170, 90)
    ramp = Image.linear_gradient("L").rotate(90, expand=True).resize(size)
    return Image.composite(Image.new("RGB", size, left), Image.new("RGB", size, right), ramp)


def run_composite(photo: Image.Image, scene: Image.Image) -> Image.Image:
    data = zip_of({"image.png": encoded(photo), "reference.png": encoded(scene)})
    result = composite(data, "image.png", "reference.png", "a marble counter")
    assert result[:4] == b"RIFF" and result[8:12] == b"WEBP"
    return Image.open(io.BytesIO(result)).convert("RGB")


def mean_difference(a: Image.Image, b: Image.Image) -> float:
    return sum(ImageStat.Stat(ImageChops.difference(a, b)).mean) / 3


class Subject(NamedTuple):
    """A drawn product: its true silhouette, its colour, white areas enclosed by it, and how
    soft its edges are (a blur radius standing for a lens's anti-aliasing)."""

    silhouette: Callable[[ImageDraw.ImageDraw], object]
    colour: tuple[int, int, int]
    enclosed_white: Callable[[ImageDraw.ImageDraw], object] | None = None
    soft_edge: float = 0

    def truth(self) -> Image.Image:
        return shape(self.silhouette)

    def photo(self) -> Image.Image:
        photo = off_white_background(SIZE)
        photo.paste(self.colour, (0, 0), self._softened(self.silhouette))
        if self.enclosed_white is not None:
            photo.paste((250, 250, 250), (0, 0), self._softened(self.enclosed_white))
        return photo

    def _softened(self, draw_area) -> Image.Image:
        area = shape(draw_area)
        return area.filter(ImageFilter.GaussianBlur(self.soft_edge)) if self.soft_edge else area


SUBJECTS = {
    "ellipse": Subject(lambda draw: draw.ellipse((120, 70, 360, 300), fill=255), (200, 20, 30)),
    "polygon": Subject(
        lambda draw: draw.polygon(
            [(240, 40), (400, 200), (300, 330), (90, 280), (140, 120)], fill=255
        ),
        (20, 60, 200),
    ),
    "horseshoe": Subject(
        lambda draw: (
            draw.ellipse((100, 40, 380, 320), fill=255),
            draw.ellipse((170, 110, 310, 250), fill=0),
            draw.rectangle((215, 180, 265, 330), fill=0),
        ),
        (30, 140, 40),
    ),
    "thin_stick": Subject(
        lambda draw: draw.polygon([(60, 300), (68, 308), (420, 56), (412, 48)], fill=255),
        (10, 10, 10),
    ),
    "ring": Subject(
        lambda draw: draw.ellipse((140, 60, 340, 260), fill=255),
        (120, 40, 160),
        enclosed_white=lambda draw: draw.ellipse((170, 90, 310, 230), fill=255),
    ),
    "bottle_with_label": Subject(
        lambda draw: draw.rounded_rectangle((180, 60, 300, 330), radius=30, fill=255),
        (25, 30, 35),
        enclosed_white=lambda draw: draw.rectangle((200, 150, 280, 240), fill=255),
    ),
    "soft_edged_bottle_with_label": Subject(
        lambda draw: draw.rounded_rectangle((180, 60, 300, 330), radius=30, fill=255),
        (160, 110, 40),
        enclosed_white=lambda draw: draw.rectangle((200, 150, 280, 240), fill=255),
        soft_edge=0.8,
    ),
}


@pytest.mark.parametrize("name", sorted(SUBJECTS))
def test_subject_mask_matches_drawn_shapes(name):
    subject = SUBJECTS[name]
    score = iou(subject_mask(subject.photo()), subject.truth())
    print(f"IoU {name}: {score:.3f}")
    assert score >= 0.95


def test_enclosed_white_label_stays_subject():
    mask = subject_mask(SUBJECTS["bottle_with_label"].photo())
    assert mask.getpixel((240, 195)) == 255
    assert mask.getpixel((100, 195)) == 0


def test_concave_white_pocket_open_to_the_border_is_background():
    mask = subject_mask(SUBJECTS["horseshoe"].photo())
    assert mask.getpixel((240, 180)) == 0
    assert mask.getpixel((240, 300)) == 0


def test_subject_mask_on_a_large_photo_uses_the_coarse_grid_accurately():
    size = (2400, 1800)
    truth = shape(
        lambda draw: (
            draw.rounded_rectangle((900, 300, 1500, 1650), radius=150, fill=255),
            draw.ellipse((300, 1200, 800, 1700), fill=255),
        ),
        size,
    )
    label = shape(lambda draw: draw.rectangle((1000, 750, 1400, 1200), fill=255), size)
    photo = photo_of(truth, (90, 20, 20))
    photo.paste((252, 252, 252), (0, 0), label)
    mask = subject_mask(photo)
    score = iou(mask, truth)
    print(f"IoU large_bottle: {score:.3f}")
    assert score >= 0.95
    assert mask.getpixel((1200, 975)) == 255


def test_transparent_pixels_are_background():
    truth = SUBJECTS["ellipse"].truth()
    photo = Image.new("RGBA", SIZE, (0, 0, 0, 0))
    photo.paste((200, 20, 30, 255), (0, 0), truth)
    score = iou(subject_mask(photo), truth)
    print(f"IoU transparent_png: {score:.3f}")
    assert score >= 0.95


def test_composite_places_the_subject_on_the_fitted_scene():
    photo = SUBJECTS["ellipse"].photo()
    scene = gradient_scene((900, 400))
    fitted = ImageOps.fit(scene, SIZE)

    result = run_composite(photo, scene)

    assert result.size == SIZE
    assert mean_difference(result, photo) > 20
    assert mean_difference(result, fitted) > 20
    for corner in ((5, 5), (474, 5), (5, 354), (474, 354)):
        expected = fitted.getpixel(corner)
        got = result.getpixel(corner)
        assert all(abs(a - b) <= 12 for a, b in zip(got, expected)), (corner, got, expected)
    red, green, blue = result.getpixel((240, 185))
    assert red > 150 and green < 80 and blue < 80


def test_composite_casts_a_contact_shadow_below_the_subject():
    truth = shape(lambda draw: draw.rectangle((180, 80, 300, 280), fill=255))
    scene = Image.new("RGB", (640, 480), (180, 180, 180))

    result = run_composite(photo_of(truth, (20, 60, 200)), scene)

    below_subject = ImageStat.Stat(result.crop((200, 283, 280, 290))).mean
    far_from_subject = ImageStat.Stat(result.crop((20, 283, 100, 290))).mean
    assert sum(below_subject) < sum(far_from_subject) - 30


def test_composite_reads_webp_members_and_reports_its_time():
    size = (1200, 1600)
    truth = shape(
        lambda draw: draw.rounded_rectangle((350, 300, 850, 1450), radius=120, fill=255), size
    )
    photo = photo_of(truth, (150, 90, 40))
    scene = gradient_scene((2048, 1365))
    data = zip_of({
        "image.webp": encoded(photo, "WEBP", quality=90),
        "reference.webp": encoded(scene, "WEBP", quality=90),
    })

    started = time.perf_counter()
    result = composite(data, "image.webp", "reference.webp")
    elapsed = time.perf_counter() - started

    print(f"composite 1200x1600 photo + 2048x1365 scene: {elapsed:.3f} s")
    assert Image.open(io.BytesIO(result)).size == size


def test_exif_orientation_of_the_photo_is_applied():
    exif = Image.Exif()
    exif[0x0112] = 6
    data = zip_of({
        "image.jpg": encoded(SUBJECTS["ellipse"].photo(), "JPEG", exif=exif),
        "reference.jpg": encoded(gradient_scene((900, 400)), "JPEG"),
    })

    result = Image.open(io.BytesIO(composite(data, "image.jpg", "reference.jpg")))

    assert result.size == (SIZE[1], SIZE[0])


def _members() -> dict[str, bytes]:
    return {
        "image.png": encoded(SUBJECTS["ellipse"].photo()),
        "reference.png": encoded(gradient_scene(SIZE)),
    }


def test_bytes_that_are_not_a_zip_fail_as_invalid_input_zip():
    with pytest.raises(CompositeError) as failure:
        composite(b"this is not a zip", "image.png", "reference.png")
    assert failure.value.code == "INVALID_INPUT_ZIP"


@pytest.mark.parametrize("missing", ["image.png", "reference.png"])
def test_a_missing_member_fails_as_input_file_not_found(missing):
    members = _members()
    del members[missing]
    with pytest.raises(CompositeError) as failure:
        composite(zip_of(members), "image.png", "reference.png")
    assert failure.value.code == "INPUT_FILE_NOT_FOUND"
    assert missing in failure.value.message


@pytest.mark.parametrize("broken", ["image.png", "reference.png"])
def test_a_member_that_is_not_an_image_fails_as_invalid_image(broken):
    members = _members()
    members[broken] = b"just some text, not pixels\n"
    with pytest.raises(CompositeError) as failure:
        composite(zip_of(members), "image.png", "reference.png")
    assert failure.value.code == "INVALID_IMAGE"
    assert broken in failure.value.message
