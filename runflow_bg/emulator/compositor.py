"""Local stand-in for the background-replace model: cut the product out, set it in the scene."""

from __future__ import annotations

import io
import math
import re
import zipfile

from PIL import Image, ImageChops, ImageFilter, ImageOps, ImageStat

WEBP_QUALITY = 85
WEBP_METHOD = 2
"""Encoder effort: a preview is better fast than smallest (the default effort takes 2-3x longer)."""
WORK_SIDE = 1024
"""Longest side of the coarse grid on which background connectivity is found."""
LIGHT_MATCH = 0.15
"""Fraction of the way the subject's mean colour moves toward the scene's."""
MAX_LIGHT_GAIN = 0.15
"""Largest change of any channel's brightness, so the nudge stays slight."""
SHADOW_OPACITY = 0.45
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)
_RUN_OF_WHITE = re.compile(rb"\xff+")


class CompositeError(Exception):
    """A run failure, named the way the service names it (failure_code, failure_message)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def composite(
    zip_bytes: bytes, file_image: str, file_reference: str, prompt: str | None = None
) -> bytes:
    """The emulated run's output: the photo's subject over the scene, as WebP of the photo's size.

    `prompt` is accepted for parity with the service; the local compositor has no use for text.
    """
    photo_bytes, scene_bytes = _read_members(zip_bytes, file_image, file_reference)
    photo = _decode(photo_bytes, file_image)
    scene = _decode(scene_bytes, file_reference).convert("RGB")
    mask = _choke(subject_mask(photo))
    backdrop = ImageOps.fit(scene, photo.size, Image.Resampling.BICUBIC)
    subject = _match_light(photo.convert("RGB"), mask, backdrop)
    _cast_contact_shadow(backdrop, mask)
    result = Image.composite(subject, backdrop, mask)
    out = io.BytesIO()
    result.save(out, "WEBP", quality=WEBP_QUALITY, method=WEBP_METHOD)
    return out.getvalue()


def subject_mask(photo: Image.Image, tolerance: int = 24, feather: float = 1.5) -> Image.Image:
    """An "L" mask, 255 on the subject: the background is the near-white reaching the border.

    Near-white areas enclosed by the subject (a white label) stay subject. Connectivity is found
    on a coarse grid of block averages, so speckle does not cut the background apart while a dark
    outline still does; the coarse background is then widened by one block and intersected with
    the full-resolution near-white pixels, which restores the full-resolution edge.
    """
    colours, alpha = _split_alpha(photo)
    if alpha is not None:
        colours = _flatten_on_white(colours, alpha)
    factor = max(1, math.ceil(max(photo.size) / WORK_SIDE))
    coarse = _border_connected(_near_white(colours.reduce(factor), tolerance))
    if factor > 1:
        coarse = coarse.filter(ImageFilter.MaxFilter(3))
    coarse_width, coarse_height = coarse.size
    reached = coarse.resize(
        (coarse_width * factor, coarse_height * factor), Image.Resampling.NEAREST
    ).crop((0, 0, *photo.size))
    background = ImageChops.darker(reached, _near_white(colours, tolerance))
    mask = ImageOps.invert(background)
    if feather > 0:
        mask = mask.filter(ImageFilter.GaussianBlur(feather))
    return mask if alpha is None else ImageChops.darker(mask, alpha)


def _read_members(zip_bytes: bytes, file_image: str, file_reference: str) -> tuple[bytes, bytes]:
    try:
        with zipfile.ZipFile(io.BytesIO(zip_bytes)) as archive:
            return _read_member(archive, file_image), _read_member(archive, file_reference)
    except zipfile.BadZipFile as error:
        message = f"the input is not a readable zip: {error}"
        raise CompositeError("INVALID_INPUT_ZIP", message) from None


def _read_member(archive: zipfile.ZipFile, name: str) -> bytes:
    try:
        return archive.read(name)
    except KeyError:
        raise CompositeError("INPUT_FILE_NOT_FOUND", f"{name!r} is not in the input zip") from None


def _decode(data: bytes, name: str) -> Image.Image:
    """Decode fully now, so a broken file fails the run here, upright as a viewer shows it."""
    try:
        image = Image.open(io.BytesIO(data))
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


def _near_white(colours: Image.Image, tolerance: int) -> Image.Image:
    """255 where every channel is at least 255 - tolerance, else 0."""
    threshold = 255 - tolerance
    red, green, blue = colours.point([255 if v >= threshold else 0 for v in range(256)] * 3).split()
    return ImageChops.darker(ImageChops.darker(red, green), blue)


def _border_connected(candidate: Image.Image) -> Image.Image:
    """The 255 pixels of a 0/255 mask that are 4-connected to the image border.

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

    connected = bytearray(width * height)
    white_row = b"\xff" * width
    outside = root(0)
    for start, end, node in runs:
        if root(node) == outside:
            connected[start:end] = white_row[: end - start]
    return Image.frombytes("L", candidate.size, bytes(connected))


def _choke(mask: Image.Image) -> Image.Image:
    """Pull the soft edge about a pixel inward, off the photo's pale anti-aliased rim."""
    return mask.point([max(0, 2 * v - 255) for v in range(256)])


def _match_light(colours: Image.Image, mask: Image.Image, backdrop: Image.Image) -> Image.Image:
    """Move the subject's mean colour a little toward the scene's, as if lit by the scene."""
    if mask.getbbox() is None:
        return colours
    subject_mean = ImageStat.Stat(colours, mask).mean
    scene_mean = ImageStat.Stat(backdrop).mean
    table = []
    for subject_channel, scene_channel in zip(subject_mean, scene_mean):
        ratio = scene_channel / max(subject_channel, 1.0)
        gain = 1 + LIGHT_MATCH * (ratio - 1)
        gain = min(max(gain, 1 - MAX_LIGHT_GAIN), 1 + MAX_LIGHT_GAIN)
        table += [min(255, round(v * gain)) for v in range(256)]
    return colours.point(table)


def _cast_contact_shadow(backdrop: Image.Image, mask: Image.Image) -> None:
    """Darken the backdrop under the subject's base, so it stands on the scene instead of floating.

    The shadow is the bottom band of the mask, dropped a little and blurred, and is drawn only
    in the patch around that band.
    """
    box = mask.getbbox()
    if box is None:
        return
    left, top, right, bottom = box
    height = bottom - top
    band_top = bottom - max(1, round(height * 0.08))
    drop = max(1, round(height * 0.015))
    radius = max(2.0, (right - left) * 0.03)
    margin = math.ceil(3 * radius)
    patch = Image.new("L", (right - left + 2 * margin, bottom - band_top + drop + 2 * margin), 0)
    patch.paste(mask.crop((left, band_top, right, bottom)), (margin, margin + drop))
    opacity = [round(v * SHADOW_OPACITY) for v in range(256)]
    shadow = patch.filter(ImageFilter.GaussianBlur(radius)).point(opacity)
    backdrop.paste((0, 0, 0), (left - margin, band_top - margin), shadow)
