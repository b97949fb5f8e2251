"""Local stand-in for the background-replace model: cut the product out, set it in the scene."""

from __future__ import annotations

import io
import math
import operator
import re
import zipfile
from typing import IO, NamedTuple

from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageOps, ImageStat

WEBP_QUALITY = 85
WEBP_METHOD = 2
"""Encoder effort: a preview is better fast than smallest (the default effort takes 2-3x longer)."""
WORK_SIDE = 1024
"""Longest side of the coarse grid on which background connectivity is found."""
MODEL_SIDE = 48
"""Longest side of the thumbnail whose border cells the backdrop's colour is estimated from."""
MIN_BACKDROP_LUMA = 160
"""A border darker than this is no light backdrop, and the photo is kept whole."""
SHADOW_FLOOR = 0.4
"""The least light a shadow leaves on the backdrop (as a fraction); anything darker is product."""
EDGE_SLOPE = 12
"""The steepest a shadow's light may change, per pixel of the coarse grid; a product's outline,
a step, changes by half its contrast."""
MIN_HOLE = 0.002
"""Smallest enclosed patch of backdrop, as a fraction of the photo, opened as a hole; smaller
ones (gaps in a label's print, highlights) stay product."""
MIN_TOLERANCE = 24
"""The least distance from the backdrop's colour at which a pixel is product; a noisier
backdrop gets three times its noise and a little more."""
SHADOW_MARGIN = 4
"""Darkening of the backdrop, beyond its noise, that is not yet shadow."""
HOLE_COLOUR = 4
"""Largest difference of an enclosed patch's mean colour from the backdrop's, to be a hole."""
SHADOW_OPACITY = 0.45
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)
_RUN_OF_WHITE = re.compile(rb"\xff+")


class CompositeError(Exception):
    """A run failure, named the way the service names it (failure_code, failure_message)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class Cutout(NamedTuple):
    """The product's alpha (255 on the product) and the opacity of the shadow the photo shows it
    casting on its backdrop, both "L" images of the photo's size."""

    mask: Image.Image
    shadow: Image.Image


def composite(
    zip_file: bytes | IO[bytes], file_image: str, file_reference: str, prompt: str | None = None,
    *, max_side: int | None = None
) -> bytes:
    """The emulated run's output: the photo's subject over the scene, as WebP of the photo's size.

    The subject keeps its own colours. `prompt` is accepted for parity with the service; the
    local compositor has no use for text. With `max_side`, a larger photo is composited (and
    returned) at that size, from a copy decoded small (see reduced.py): a preview whose memory
    stays small whatever the photo's size.
    """
    photo, scene = _read_members(zip_file, file_image, file_reference, max_side)
    scene = scene.convert("RGB")
    cut = cut_out(photo)
    mask = _choke(cut.mask)
    backdrop = ImageOps.fit(scene, photo.size, Image.Resampling.BICUBIC)
    backdrop.paste((0, 0, 0), (0, 0), ImageChops.lighter(cut.shadow, _contact_shadow(mask)))
    result = Image.composite(photo.convert("RGB"), backdrop, mask)
    out = io.BytesIO()
    result.save(out, "WEBP", quality=WEBP_QUALITY, method=WEBP_METHOD)
    return out.getvalue()


def subject_mask(photo: Image.Image) -> Image.Image:
    """An "L" mask, 255 on the subject (see cut_out)."""
    return cut_out(photo).mask


def cut_out(photo: Image.Image, feather: float = 1.5) -> Cutout:
    """Tell the product and its shadow from the photo's backdrop.

    The backdrop is a smooth light surface estimated from the photo's border, so a white or grey
    sweep and a lens's falloff are keyed alike. Background is what reaches the border through
    pixels close to that surface or through smooth, even darkenings of it (the product's shadow,
    kept as a partial opacity), plus enclosed patches that look like the backdrop in colour and
    grain (a mug's handle); a white label differs in one or the other and stays product.

    Connectivity is found on a coarse grid of block averages, so speckle does not cut the
    background apart while a dark outline still does; the coarse background is then widened by
    one block and intersected with the full-resolution backdrop pixels, which restores the edge.
    """
    colours, alpha = _split_alpha(photo)
    if alpha is not None:
        colours = _flatten_on_white(colours, alpha)
    factor = max(1, math.ceil(max(photo.size) / WORK_SIDE))
    coarse = colours.reduce(factor)
    thumb = _thumbnail(coarse)
    fitted = _fit_backdrop(thumb, _border_cells(thumb.size))
    if fitted is None:
        whole = Image.new("L", photo.size, 255) if alpha is None else alpha
        return Cutout(whole, Image.new("L", photo.size, 0))
    backdrop = _surface(fitted, thumb.size).resize(coarse.size, Image.Resampling.BILINEAR)
    distance = _distance(coarse, backdrop)
    noise = _border_noise(distance)
    tolerance = max(MIN_TOLERANCE, 3 * noise + 6)
    near = _at_most(distance, tolerance)
    light = _relative_light(coarse, backdrop)
    smooth = _at_most(_slope(light), EDGE_SLOPE)
    shaded = ImageChops.darker(_shadow_like(coarse, backdrop, light, tolerance), smooth)
    outside, enclosed = _regions(ImageChops.lighter(ImageChops.darker(near, smooth), shaded))
    background = _render(outside, coarse.size)

    # all the backdrop found measures the surface better than the border alone (a falloff's centre)
    seen = _cells_within(ImageChops.darker(background, near), thumb.size)
    surface = _surface(_fit_backdrop(thumb, seen, fitted) or fitted, thumb.size)
    backdrop = surface.resize(coarse.size, Image.Resampling.BILINEAR)
    background = _open_holes(background, enclosed, near, coarse, backdrop)
    shadow = _shadow_opacity(light, background, noise + SHADOW_MARGIN, photo.size)

    if factor > 1:
        full_backdrop = surface.resize(photo.size, Image.Resampling.BILINEAR)
        near = _at_most(_distance(colours, full_backdrop), tolerance)
        shaded = _upscale(shaded, factor, photo.size)
    reached = _upscale(background.filter(ImageFilter.MaxFilter(3)), factor, photo.size)
    mask = ImageOps.invert(ImageChops.darker(reached, ImageChops.lighter(near, shaded)))
    if feather > 0:
        mask = mask.filter(ImageFilter.GaussianBlur(feather))
    return Cutout(mask if alpha is None else ImageChops.darker(mask, alpha), shadow)


def _read_members(zip_file: bytes | IO[bytes], file_image: str, file_reference: str,
                  max_side: int | None) -> tuple[Image.Image, Image.Image]:
    source = io.BytesIO(zip_file) if isinstance(zip_file, bytes) else zip_file
    try:
        with zipfile.ZipFile(source) as archive:
            return (_decode(archive, file_image, max_side),
                    _decode(archive, file_reference, max_side))
    except zipfile.BadZipFile as error:
        message = f"the input is not a readable zip: {error}"
        raise CompositeError("INVALID_INPUT_ZIP", message) from None


def _decode(archive: zipfile.ZipFile, name: str, max_side: int | None) -> Image.Image:
    """Decode fully now (or to a copy at most `max_side` a side), so a broken file fails the run
    here, upright as a viewer shows it."""
    from runflow_bg.reduced import reduced_copy

    try:
        member = archive.open(name)
    except KeyError:
        raise CompositeError("INPUT_FILE_NOT_FOUND", f"{name!r} is not in the input zip") from None
    try:
        with member:
            image = Image.open(member)
            if max_side is not None and max(image.size) > max_side:
                image = reduced_copy(image, max_side)
                image.thumbnail((max_side, max_side))
            else:
                image.load()
        ImageOps.exif_transpose(image, in_place=True)
    except _DECODE_ERRORS:
        raise CompositeError("INVALID_IMAGE", f"{name!r} is not a readable image") from None
    return image


def _split_alpha(photo: Image.Image) -> tuple[Image.Image, Image.Image | None]:
    """RGB colours and, when the photo has any, its alpha channel."""
    if "A" in photo.getbands() or "transparency" in photo.info:
        rgba = photo.convert("RGBA")
        return rgba.convert("RGB"), rgba.getchannel("A")
    return photo.convert("RGB"), None


def _flatten_on_white(colours: Image.Image, alpha: Image.Image) -> Image.Image:
    """Transparent areas become white, so they join the background they usually stand for."""
    flat = Image.new("RGB", colours.size, (255, 255, 255))
    flat.paste(colours, mask=alpha)
    return flat


def _thumbnail(image: Image.Image) -> Image.Image:
    """Block averages of the image, MODEL_SIDE cells along its longest side at most."""
    scale = min(1.0, MODEL_SIDE / max(image.size))
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.BOX)


def _border_cells(size: tuple[int, int]) -> list[tuple[int, int]]:
    columns, rows = size
    cells = {(x, y) for x in range(columns) for y in (0, rows - 1)}
    return sorted(cells | {(x, y) for x in (0, columns - 1) for y in range(rows)})


def _cells_within(mask: Image.Image, size: tuple[int, int]) -> list[tuple[int, int]]:
    """The cells of a thumbnail of `size` that lie wholly inside a 0/255 mask, a few hundred at
    most: plenty for six coefficients, and the fit stays quick."""
    inside = mask.resize(size, Image.Resampling.BOX).load()
    cells = [(x, y) for y in range(size[1]) for x in range(size[0]) if inside[x, y] == 255]
    return cells[:: max(1, len(cells) // 400)]


def _fit_backdrop(
    thumb: Image.Image, cells: list[tuple[int, int]], start: list[list[float]] | None = None
) -> list[list[float]] | None:
    """Per channel, a quadratic in x and y fitted to those of the thumbnail's `cells` that lie
    close to it, or None when fewer than half do or they are not light.

    A quadratic follows a sweep's gradient and a lens's falloff (lighter centre, darker corners).
    Starting from `start`, or from the cells' median colour, it is refitted to the cells near the
    last fit, which leaves out the product and its shadow where they reach the border.
    """
    if not cells:
        return None
    pixels = thumb.load()
    samples = [(_terms(x, y, thumb.size), pixels[x, y]) for x, y in cells]
    fitted = start or [
        [sorted(colour[band] for _, colour in samples)[len(samples) // 2], 0, 0, 0, 0, 0]
        for band in range(3)
    ]
    for limit in (48, 16, 16):
        inliers = [
            (terms, colour) for terms, colour in samples
            if all(abs(level - _value(terms, c)) <= limit for level, c in zip(colour, fitted))
        ]
        if 2 * len(inliers) < len(samples):
            return None
        fitted = _least_squares([terms for terms, _ in inliers], [colour for _, colour in inliers])
    red, green, blue = (sum(band) / len(inliers) for band in zip(*(c for _, c in inliers)))
    return fitted if 0.299 * red + 0.587 * green + 0.114 * blue >= MIN_BACKDROP_LUMA else None


def _terms(x: int, y: int, size: tuple[int, int]) -> tuple[float, ...]:
    """The quadratic's terms at a cell's centre, in coordinates running from -1 to 1."""
    u = 2 * (x + 0.5) / size[0] - 1
    v = 2 * (y + 0.5) / size[1] - 1
    return (1.0, u, v, u * u, u * v, v * v)


def _value(terms: tuple[float, ...], coefficients: list[float]) -> float:
    return sum(map(operator.mul, terms, coefficients))


def _least_squares(
    rows: list[tuple[float, ...]], colours: list[tuple[int, ...]]
) -> list[list[float]]:
    """Per channel, the coefficients that fit the colours best: the normal equations, solved for
    the three channels at once by Gauss-Jordan; a tiny ridge keeps them solvable when few cells
    are left to go on."""
    terms, bands = list(zip(*rows)), list(zip(*colours))
    size = len(terms)
    system = [
        [sum(map(operator.mul, a, b)) + (1e-3 if i == j else 0) for j, b in enumerate(terms)]
        + [sum(map(operator.mul, a, band)) for band in bands]
        for i, a in enumerate(terms)
    ]
    for column in range(size):
        pivot = max(range(column, size), key=lambda r: abs(system[r][column]))
        system[column], system[pivot] = system[pivot], system[column]
        for r in range(size):
            if r != column:
                factor = system[r][column] / system[column][column]
                system[r] = [a - factor * b for a, b in zip(system[r], system[column])]
    return [[system[i][size + band] / system[i][i] for i in range(size)] for band in range(3)]


def _surface(fitted: list[list[float]], size: tuple[int, int]) -> Image.Image:
    """The fitted backdrop's colour at every cell of a thumbnail of `size` (the terms of
    _terms, written out: this runs for every cell)."""
    us = [2 * (x + 0.5) / size[0] - 1 for x in range(size[0])]
    vs = [2 * (y + 0.5) / size[1] - 1 for y in range(size[1])]
    bands = []
    for c0, c1, c2, c3, c4, c5 in fitted:
        band = Image.new("L", size)
        band.putdata([
            min(255, max(0, round(c0 + c1 * u + c2 * v + c3 * u * u + c4 * u * v + c5 * v * v)))
            for v in vs for u in us
        ])
        bands.append(band)
    return Image.merge("RGB", bands)


def _distance(colours: Image.Image, backdrop: Image.Image) -> Image.Image:
    """The largest per-channel difference between two RGB images, as "L"."""
    red, green, blue = ImageChops.difference(colours, backdrop).split()
    return ImageChops.lighter(ImageChops.lighter(red, green), blue)


def _at_most(image: Image.Image, limit: int) -> Image.Image:
    return image.point([255 if v <= limit else 0 for v in range(256)])


def _border_noise(distance: Image.Image) -> int:
    """The median distance from the backdrop surface along the photo's edges: its noise."""
    width, height = distance.size
    edges = [(0, 0, width, 1), (0, height - 1, width, height), (0, 0, 1, height),
             (width - 1, 0, width, height)]
    counts = [sum(column) for column in zip(*(distance.crop(box).histogram() for box in edges))]
    below, median = 0, 0
    while 2 * (below + counts[median]) < sum(counts):
        below += counts[median]
        median += 1
    return median


def _relative_light(colours: Image.Image, backdrop: Image.Image) -> Image.Image:
    """Each pixel's brightness as a fraction of the backdrop's there (255 = as light, clipped).

    Pillow has no per-pixel division, but the backdrop is known: a table turns it into a gain,
    and a multiplication applies it.
    """
    luma, backdrop_luma = colours.convert("L"), backdrop.convert("L")
    darkest = max(1, backdrop_luma.getextrema()[0])
    gain = backdrop_luma.point([round(255 * darkest / max(v, darkest)) for v in range(256)])
    scale = [min(255, round(v * 255 / darkest)) for v in range(256)]
    return ImageChops.multiply(luma, gain).point(scale)


def _shadow_like(
    colours: Image.Image, backdrop: Image.Image, light: Image.Image, tolerance: int
) -> Image.Image:
    """255 where a pixel's colour could be the backdrop's in shadow: darkened evenly, to no less
    than SHADOW_FLOOR of its light."""
    darkened = ImageChops.multiply(backdrop, Image.merge("RGB", (light, light, light)))
    same_hue = _at_most(_distance(colours, darkened), tolerance)
    floor = SHADOW_FLOOR * 255
    lit_enough = light.point([255 if v >= floor else 0 for v in range(256)])
    return ImageChops.darker(same_hue, lit_enough)


def _shadow_opacity(
    light: Image.Image, background: Image.Image, margin: int, size: tuple[int, int]
) -> Image.Image:
    """How much of the backdrop's light the background has lost, less a margin for noise, at
    `size`: the photo's own shadow, as soft as it is in the photo."""
    opacity = [round(max(0, 255 - margin - v) * 255 / (255 - margin)) for v in range(256)]
    shadow = ImageChops.darker(light.point(opacity), background)
    return shadow.filter(ImageFilter.GaussianBlur(1)).resize(size, Image.Resampling.BILINEAR)


def _slope(image: Image.Image) -> Image.Image:
    """How steeply an "L" image changes at each pixel (Sobel), per pixel, the larger of x and y.

    The kernel leaves the outermost pixels as they were, so those count as flat.
    """
    absolute = [min(255, abs(v - 128)) for v in range(256)]
    across, down = (
        image.filter(ImageFilter.Kernel((3, 3), weights, scale=8, offset=128)).point(absolute)
        for weights in ((-1, 0, 1, -2, 0, 2, -1, 0, 1), (-1, -2, -1, 0, 0, 0, 1, 2, 1))
    )
    slope = ImageChops.lighter(across, down)
    ImageDraw.Draw(slope).rectangle((0, 0, image.width - 1, image.height - 1), outline=0)
    return slope


def _open_holes(
    background: Image.Image,
    enclosed: list[list[tuple[int, int]]],
    near: Image.Image,
    colours: Image.Image,
    backdrop: Image.Image,
) -> Image.Image:
    """The background with the enclosed regions added that are large and, away from their rim,
    look like the backdrop where it reaches the border: the same mean colour and a similar grain
    (a flat label on a noisy backdrop is not a hole onto it)."""
    difference = ImageChops.subtract(colours, backdrop, offset=128)
    reference = ImageStat.Stat(difference, ImageChops.darker(background, near))
    if not reference.count[0]:
        return background
    reference_grain = sum(reference.stddev) / 3
    least = MIN_HOLE * background.size[0] * background.size[1]
    for runs in enclosed:
        if sum(end - start for start, end in runs) < least:
            continue
        region = _render(runs, background.size)
        left, top, right, bottom = region.getbbox()
        box = (left - 2, top - 2, right + 2, bottom + 2)
        inner = ImageChops.darker(region, near).crop(box).filter(ImageFilter.MinFilter(5))
        stat = ImageStat.Stat(difference.crop(box), inner)
        if stat.count[0] < least:
            continue
        offset = max(abs(a - b) for a, b in zip(stat.mean, reference.mean))
        grain = sum(stat.stddev) / 3
        if offset <= HOLE_COLOUR and reference_grain / 2 <= grain <= 2 * reference_grain + 1:
            background = ImageChops.lighter(background, region)
    return background


def _regions(candidate: Image.Image) -> tuple[list[tuple[int, int]], list[list[tuple[int, int]]]]:
    """The 255 pixels of a 0/255 mask in 4-connected regions, each a list of runs (start, end
    byte offsets): those touching the image border together, then each enclosed region.

    Works on horizontal runs of 255 rather than on pixels: runs that overlap between adjacent
    rows are joined in a union-find whose node 0 stands for the outside of the image.
    """
    width, height = candidate.size
    data = candidate.tobytes()
    parent = [0]

    def root(node: int) -> int:
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    def join(a: int, b: int) -> None:
        parent[root(a)] = root(b)

    runs: list[tuple[int, int, int]] = []
    above: list[tuple[int, int, int]] = []
    for y in range(height):
        row_start = y * width
        row = []
        for match in _RUN_OF_WHITE.finditer(data, row_start, row_start + width):
            start, end = match.start() - row_start, match.end() - row_start
            node = len(parent)
            parent.append(node)
            if y in (0, height - 1) or start == 0 or end == width:
                join(node, 0)
            row.append((start, end, node))
            runs.append((row_start + start, row_start + end, node))
        first = 0
        for start, end, node in row:
            while first < len(above) and above[first][1] <= start:
                first += 1
            index = first
            while index < len(above) and above[index][0] < end:
                join(node, above[index][2])
                index += 1
        above = row

    regions: dict[int, list[tuple[int, int]]] = {root(0): []}
    for start, end, node in runs:
        regions.setdefault(root(node), []).append((start, end))
    outside = regions.pop(root(0))
    return outside, list(regions.values())


def _render(runs: list[tuple[int, int]], size: tuple[int, int]) -> Image.Image:
    """A 0/255 mask with the runs set."""
    pixels = bytearray(size[0] * size[1])
    for start, end in runs:
        pixels[start:end] = b"\xff" * (end - start)
    return Image.frombytes("L", size, bytes(pixels))


def _upscale(coarse: Image.Image, factor: int, size: tuple[int, int]) -> Image.Image:
    """A coarse-grid mask back at full resolution, each block repeated."""
    width, height = coarse.size
    return coarse.resize((width * factor, height * factor), Image.Resampling.NEAREST).crop(
        (0, 0, *size)
    )


def _choke(mask: Image.Image) -> Image.Image:
    """Pull the soft edge about a pixel inward, off the photo's pale anti-aliased rim."""
    return mask.point([max(0, 2 * v - 255) for v in range(256)])


def _contact_shadow(mask: Image.Image) -> Image.Image:
    """A shadow's opacity under the subject's base, so it stands on the scene instead of floating.

    The shadow is the bottom band of the mask, dropped a little and blurred; only the patch
    around that band is blurred.
    """
    shadow = Image.new("L", mask.size, 0)
    box = mask.getbbox()
    if box is None:
        return shadow
    left, top, right, bottom = box
    height = bottom - top
    band_top = bottom - max(1, round(height * 0.08))
    drop = max(1, round(height * 0.015))
    radius = max(2.0, (right - left) * 0.03)
    margin = math.ceil(3 * radius)
    patch = Image.new("L", (right - left + 2 * margin, bottom - band_top + drop + 2 * margin), 0)
    patch.paste(mask.crop((left, band_top, right, bottom)), (margin, margin + drop))
    opacity = [round(v * SHADOW_OPACITY) for v in range(256)]
    shadow.paste(patch.filter(ImageFilter.GaussianBlur(radius)).point(opacity),
                 (left - margin, band_top - margin))
    return shadow
