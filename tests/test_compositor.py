"""The emulator's compositor: subject masks against known shapes, the composite, its failures.

The generated photos and the measures live in compositor_cases.py, which
benchmarks/bench_compositor.py prints as a table; here they meet quality floors.
"""

from __future__ import annotations

import io
import time

import pytest
from compositor_cases import (
    CASES,
    OLIVE,
    SIZE,
    encoded,
    iou,
    measure,
    off_white_background,
    run_composite,
    shape,
    warm_scene,
    zip_of,
)
from PIL import Image, ImageChops, ImageOps, ImageStat

from runflow_bg.emulator.compositor import CompositeError, composite, cut_out, subject_mask

IOU_FLOORS = {"vignetted_backdrop": 0.9}
"""The least mask agreement each case must reach; 0.95 for those not named."""
MAX_COLOUR_DELTA = 6


def photo_of(truth: Image.Image, colour: tuple[int, int, int]) -> Image.Image:
    photo = off_white_background(truth.size)
    photo.paste(colour, (0, 0), truth)
    return photo


def gradient_scene(size: tuple[int, int]) -> Image.Image:
    """A smooth left-to-right blend, so a lossy output still matches it pixel by pixel."""
    left, right = (30, 90, 160), (200, 170, 90)
    ramp = Image.linear_gradient("L").rotate(90, expand=True).resize(size)
    return Image.composite(Image.new("RGB", size, left), Image.new("RGB", size, right), ramp)


def mean_difference(a: Image.Image, b: Image.Image) -> float:
    return sum(ImageStat.Stat(ImageChops.difference(a, b)).mean) / 3


@pytest.mark.parametrize("name", list(CASES))
def test_generated_photos_are_cut_out_and_keep_their_colours(name):
    score = measure(CASES[name]())
    print(f"{name}: IoU {score.iou:.3f}, colour delta {score.colour_delta:.1f}")
    assert score.iou >= IOU_FLOORS.get(name, 0.95)
    assert score.colour_delta <= MAX_COLOUR_DELTA


def test_enclosed_white_label_stays_subject():
    mask = subject_mask(CASES["bottle_with_label"]().photo)
    assert mask.getpixel((240, 195)) == 255
    assert mask.getpixel((100, 195)) == 0


def test_a_label_lighter_than_a_grey_backdrop_stays_subject():
    mask = subject_mask(CASES["white_label_on_grey"]().photo)
    assert mask.getpixel((240, 195)) == 255
    assert mask.getpixel((100, 195)) == 0


@pytest.mark.parametrize("name, inside", [("ring", (240, 160)), ("mug_with_handle", (315, 195))])
def test_backdrop_seen_through_a_hole_is_background(name, inside):
    mask = subject_mask(CASES[name]().photo)
    assert mask.getpixel(inside) == 0


def test_concave_white_pocket_open_to_the_border_is_background():
    mask = subject_mask(CASES["horseshoe"]().photo)
    assert mask.getpixel((240, 180)) == 0
    assert mask.getpixel((240, 300)) == 0


def test_a_contact_shadow_stays_a_soft_shadow():
    case = CASES["contact_shadow"]()
    cut = cut_out(case.photo)
    below = [cut.shadow.getpixel((240, y)) for y in range(286, 310)]
    beside = [cut.shadow.getpixel((x, 278)) for x in range(120, 172)]

    assert cut.mask.getpixel((240, 290)) == 0
    assert 0.4 * 255 < cut.shadow.getpixel((240, 290)) < 0.7 * 255
    for profile in (below, beside):
        assert max(abs(a - b) for a, b in zip(profile, profile[1:])) <= 12
    assert measure(case).shadow_error <= 0.06


def test_the_olive_cap_keeps_its_colour_on_any_scene():
    case = CASES["olive_cap"]()
    for scene in (warm_scene(), gradient_scene(SIZE), Image.new("RGB", SIZE, (20, 40, 90))):
        result = run_composite(case.photo, scene)
        cap = ImageStat.Stat(result, case.colour_area).mean
        assert all(abs(got - want) <= MAX_COLOUR_DELTA for got, want in zip(cap, OLIVE)), cap


def test_a_photo_without_a_light_backdrop_is_kept_whole():
    photo = Image.new("RGB", SIZE, (40, 40, 60))
    photo.paste((200, 20, 30), (100, 100, 300, 250))
    assert subject_mask(photo).getextrema() == (255, 255)


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
    truth = CASES["ellipse"]().truth
    photo = Image.new("RGBA", SIZE, (0, 0, 0, 0))
    photo.paste((200, 20, 30, 255), (0, 0), truth)
    score = iou(subject_mask(photo), truth)
    print(f"IoU transparent_png: {score:.3f}")
    assert score >= 0.95


def test_composite_places_the_subject_on_the_fitted_scene():
    photo = CASES["ellipse"]().photo
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
        "image.jpg": encoded(CASES["ellipse"]().photo, "JPEG", exif=exif),
        "reference.jpg": encoded(gradient_scene((900, 400)), "JPEG"),
    })

    result = Image.open(io.BytesIO(composite(data, "image.jpg", "reference.jpg")))

    assert result.size == (SIZE[1], SIZE[0])


def _members() -> dict[str, bytes]:
    return {
        "image.png": encoded(CASES["ellipse"]().photo),
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
