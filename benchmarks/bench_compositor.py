"""How good the local compositor's cut-outs are, and how fast (run by hand:
python benchmarks/bench_compositor.py).

Each case is a generated photo with a known product mask (tests/compositor_cases.py). Columns:
IoU of the subject mask with the true mask; colour delta, the mean largest per-channel
difference between composite and photo on the product's fully opaque pixels; shadow error,
for a photo with a contact shadow, the mean error of the composite's darkening against the
shadow's true opacity (0..1). Last, the median time to composite a 1200x1600 photo.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from compositor_cases import (  # noqa: E402
    CASES, encoded, measure, off_white_background, shape, warm_scene, zip_of,
)

from runflow_bg.emulator.compositor import composite  # noqa: E402


def large_photo_zip() -> bytes:
    size = (1200, 1600)
    photo = off_white_background(size)
    truth = shape(
        lambda draw: draw.rounded_rectangle((350, 300, 850, 1450), radius=120, fill=255), size
    )
    photo.paste((150, 90, 40), (0, 0), truth)
    return zip_of({
        "image.webp": encoded(photo, "WEBP", quality=90),
        "reference.webp": encoded(warm_scene((2048, 1365)), "WEBP", quality=90),
    })


def composite_seconds(repeats: int) -> float:
    data = large_photo_zip()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        composite(data, "image.webp", "reference.webp")
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    print(f"{'case':<30} {'IoU':>6} {'colour Δ':>9} {'shadow err':>11}")
    for name, make in CASES.items():
        score = measure(make())
        shadow = "" if score.shadow_error is None else f"{score.shadow_error:.3f}"
        print(f"{name:<30} {score.iou:>6.3f} {score.colour_delta:>9.1f} {shadow:>11}")
    seconds = composite_seconds(args.repeats)
    print(f"\ncomposite, 1200x1600 photo + 2048x1365 scene: {seconds:.3f} s"
          f" (median of {args.repeats})")


if __name__ == "__main__":
    main()
