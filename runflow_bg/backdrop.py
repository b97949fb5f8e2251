"""Does the photo look like a product on white? Checked locally, before anything is paid.

The model replaces the white area of the photo, so a grey, tinted or textured backdrop (or a
scene given in the photo's place) costs a run for a poor result. A product photo's border is
almost all backdrop, so the border of a small copy is enough to tell.
"""

from __future__ import annotations

from bisect import bisect_left
from itertools import accumulate
from operator import add
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL import Image

SIDE = 256           # the copy's longest side: enough to see a backdrop, fast for any photo
BAND = 0.04          # the border's width, as a share of the shorter side
MIN_WHITENESS = 235  # each edge's median whiteness, of 255: white paper and JPEG white are 245+
MAX_SPREAD = 8       # the border's median distance from its median: a studio's soft falloff
                     # (up to ~15 levels across the frame) stays under, blotches of +-35 do not


def border_whiteness(image: Image.Image) -> tuple[dict[str, int], int]:
    """The median whiteness of each edge, and the spread of the whole border around its median.

    A pixel is as white as its darkest channel, so a tinted backdrop is not white either.
    Medians ignore a product that touches an edge, as long as it covers less than half of it.
    """
    from PIL import Image, ImageChops

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
    level = _median(border)
    # How many border pixels lie each distance away from the median level, either side.
    above = border[level:] + [0] * level
    below = border[level::-1] + [0] * (255 - level)
    distances = list(map(add, above, below))
    distances[0] = border[level]
    return {edge: _median(edge_counts) for edge, edge_counts in counts.items()}, _median(distances)


def backdrop_problem(image: Image.Image) -> str | None:
    """Why the photo's backdrop is not near-white and even, or None when it is."""
    levels, spread = border_whiteness(image)
    edge = min(levels, key=levels.__getitem__)
    if levels[edge] < MIN_WHITENESS:
        return (f"its backdrop is not white (its {edge} edge is {levels[edge]} of 255; white is "
                f"{MIN_WHITENESS} or more)")
    if spread > MAX_SPREAD:
        return f"its backdrop is uneven or textured (its border varies by {spread} of 255)"
    return None


def looks_swapped(photo: Image.Image, scene: Image.Image) -> bool:
    """True when the scene has the white backdrop and the photo has none: given the wrong way."""
    return backdrop_problem(photo) is not None and backdrop_problem(scene) is None


def _median(counts: list[int]) -> int:
    """The median value of a histogram (counts by value)."""
    totals = list(accumulate(counts))
    return bisect_left(totals, totals[-1] / 2)
