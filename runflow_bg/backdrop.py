"""Does the photo look like a product on white? Checked locally, before anything is paid.

The model replaces the white area of the photo, so a grey, tinted or textured backdrop (or a
scene given in the photo's place) costs a run for a poor result. A product photo's border is
almost all backdrop, so the border of a small copy is enough to tell.
"""

from __future__ import annotations

from bisect import bisect_left
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL import Image

SIDE = 256           # the copy's longest side: enough to see a backdrop, fast for any photo
BAND = 0.04          # the border's width, as a share of the shorter side
MIN_WHITENESS = 235  # each edge's median whiteness, of 255: white paper and JPEG white are 245+
MAX_SPREAD = 8       # the border's median distance from its median: a studio's soft falloff
                     # (up to ~15 levels across the frame) stays under, blotches of +-35 do not

# The levels above each level: deleting them from bytes leaves those at or below it.
_ABOVE = tuple(bytes(range(level + 1, 256)) for level in range(256))


def border_whiteness(image: Image.Image) -> tuple[dict[str, int], int]:
    """The median whiteness of each edge, and the spread of the whole border around its median.

    A pixel is as white as its darkest channel, so a tinted backdrop is not white either.
    Medians ignore a product that touches an edge, as long as it covers less than half of it.
    The corners belong to two edges, and count twice. The whiteness is taken as bytes (a pixel a
    byte), the edges are sliced from it and every median is counted with `bytes.translate`: a few
    Pillow calls and no Python loop over pixels or histogram bins, which planning a catalogue
    pays for once a photo.
    """
    from PIL import Image, ImageChops

    small = image.convert("RGB")
    small.thumbnail((SIDE, SIDE), Image.Resampling.BOX)
    red, green, blue = small.split()
    whiteness = ImageChops.darker(ImageChops.darker(red, green), blue).tobytes()
    width, height = small.size
    band = max(1, round(min(width, height) * BAND))
    edges = {"top": whiteness[:width * band], "bottom": whiteness[-width * band:],
             "left": b"".join(whiteness[column::width] for column in range(band)),
             "right": b"".join(whiteness[column::width] for column in range(width - band, width))}
    border = b"".join(edges.values())
    level = _median(border)
    spread = _median(border.translate(_distances_from(level)))
    return {edge: _median(levels) for edge, levels in edges.items()}, spread


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


def _median(levels: bytes) -> int:
    """The median of levels (bytes, not empty): the lowest level that at least half of them are
    at or below. Most medians here are 255 (an edge of pure white) or 0 (the spread of an even
    border): those two are tried first, then the levels between are bisected."""
    half = len(levels) / 2

    def at_most(level: int) -> int:
        return len(levels.translate(None, _ABOVE[level]))

    if at_most(0) >= half:
        return 0
    if at_most(254) < half:
        return 255
    return bisect_left(range(1, 255), half, key=at_most) + 1


@lru_cache(maxsize=256)
def _distances_from(level: int) -> bytes:
    """A `bytes.translate` table from each level to its distance from `level`."""
    return bytes(abs(value - level) for value in range(256))
