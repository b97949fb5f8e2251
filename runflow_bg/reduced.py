"""A small copy of a large image, decoded without ever holding the image whole.

A 12 MP photo takes 48 MB once decoded (Pillow keeps RGB in four bytes a pixel), while a check
of its backdrop or a local preview needs a few hundred pixels a side. A JPEG is decoded at a
reduced scale (`draft`); a plain PNG (8-bit, not interlaced, no transparency chunk) band by
band: its scanlines are inflated here, and each band is decoded by Pillow as a PNG of its own,
led by the band's previous row so that the row filters read what they should; then the band is
reduced and dropped. Anything else is decoded whole.
"""

from __future__ import annotations

import io
import math
import struct
import zlib
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from PIL import Image

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_CHANNELS = {"L": (1, 0), "LA": (2, 4), "RGB": (3, 2), "RGBA": (4, 6)}  # bytes, colour type
_BAND_BYTES = 1 << 20  # decoded bytes in a band, about: what the copy costs beyond its own size
_WHOLE_BYTES = 4 << 20  # a PNG smaller than this once decoded is decoded whole: faster
_READ = 1 << 16


def reduced_copy(image: Image.Image, longest: int) -> Image.Image:
    """A copy of an opened, not yet loaded image, reduced by the largest whole factor that
    leaves its longest side at least `longest` (thumbnail it to the exact size wanted); same
    mode and info (the ICC profile, EXIF). It may be the image itself, loaded: read the
    image's size before.

    Damaged data raises what a full decode would (OSError, SyntaxError, ValueError).
    """
    factor = max(1, max(image.size) // max(1, longest))
    if image.format == "PNG" and image.width * image.height * 4 > _WHOLE_BYTES and _banded(image):
        return _png_in_bands(image, factor)
    if image.format == "JPEG" and factor > 1:
        image.draft(image.mode, (math.ceil(image.width / factor), math.ceil(image.height / factor)))
    image.load()
    scale = max(1, max(image.size) // max(1, longest))
    if scale == 1:
        return image  # loaded already: no copy
    small = image.reduce(scale)
    small.info = dict(image.info)
    return small


def _banded(image: Image.Image) -> bool:
    tile = image.tile
    return (len(tile) == 1 and tile[0][0] == "zip" and tile[0][3] in _PNG_CHANNELS
            and image.mode == tile[0][3] and "interlace" not in image.info
            and "transparency" not in image.info and image.fp is not None)


def _png_in_bands(image: Image.Image, factor: int) -> Image.Image:
    from PIL import Image

    width, height = image.size
    mode = image.mode
    channels, colour_type = _PNG_CHANNELS[mode]
    stride = width * channels + 1  # a filter byte, then the row
    rows = max(factor, _BAND_BYTES // stride // factor * factor)
    small = Image.new(mode, (math.ceil(width / factor), math.ceil(height / factor)))
    fp = image.fp
    fp.seek(image.tile[0][2] - 8)  # the first IDAT chunk's header
    scanlines = _scanlines(_idat(fp), stride, height)
    previous = bytes(stride)  # filter "none" and zeros: what PNG filters read above the top row
    for top in range(0, height, rows):
        count = min(rows, height - top)
        band = bytearray(previous)
        for _ in range(count):
            band += next(scanlines)
        with Image.open(_single_png(bytes(band), width, count + 1, colour_type)) as decoded:
            decoded.load()
            pixels = decoded.crop((0, 1, width, count + 1))
            previous = b"\0" + decoded.crop((0, count, width, count + 1)).tobytes()
        small.paste(pixels.reduce(factor) if factor > 1 else pixels, (0, top // factor))
    small.info = dict(image.info)
    return small


def _idat(fp: IO[bytes]) -> Iterator[bytes]:
    """The compressed image data, chunk after chunk, up to the first chunk of another kind."""
    while True:
        header = fp.read(8)
        if len(header) < 8:
            raise OSError("the PNG ends inside its image data")
        length, kind = struct.unpack(">I4s", header)
        if kind != b"IDAT":
            return
        left = length
        while left:
            data = fp.read(min(left, _READ))
            if not data:
                raise OSError("the PNG ends inside its image data")
            left -= len(data)
            yield data
        fp.read(4)  # its CRC: zlib's own check covers the data


def _scanlines(chunks: Iterator[bytes], stride: int, height: int) -> Iterator[bytes]:
    """The inflated rows, each with its filter byte; OSError when the data is short or broken."""
    inflater = zlib.decompressobj()
    pending = bytearray()
    produced = 0
    try:
        for chunk in chunks:
            pending += inflater.decompress(chunk)
            while len(pending) >= stride and produced < height:
                yield bytes(pending[:stride])
                del pending[:stride]
                produced += 1
        pending += inflater.flush()
    except zlib.error as exc:
        raise OSError(f"broken PNG image data ({exc})") from None
    while len(pending) >= stride and produced < height:
        yield bytes(pending[:stride])
        del pending[:stride]
        produced += 1
    if produced < height:
        raise OSError("the PNG's image data is shorter than its size")


def _single_png(rows: bytes, width: int, height: int, colour_type: int):
    """A PNG file holding these filtered rows as they are (stored, not compressed again)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))

    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return io.BytesIO(_PNG_SIGNATURE + chunk(b"IHDR", header)
                      + chunk(b"IDAT", zlib.compress(rows, 0)) + chunk(b"IEND", b""))


def png_trailer(image: Image.Image) -> dict:
    """What the text and EXIF chunks after an opened PNG's image data say (Pillow reads them
    only with the pixels): found by skipping over that data, read by Pillow from a PNG made of
    the header and those chunks alone. Empty for other formats."""
    from PIL import Image

    if image.format != "PNG" or not image.tile or image.fp is None:
        return {}
    stream = image.fp
    stream.seek(image.tile[0][2] - 8)
    kept = []
    while len(header := stream.read(8)) == 8:
        length, kind = struct.unpack(">I4s", header)
        if kind == b"IEND":
            break
        if kind in (b"tEXt", b"iTXt", b"zTXt", b"eXIf"):
            kept.append(header + stream.read(length + 4))
        else:
            stream.seek(length + 4, 1)
    if not kept:
        return {}
    stream.seek(0)
    head = stream.read(33)  # the signature and the IHDR chunk
    end = struct.pack(">I4sI", 0, b"IEND", 0xAE426082)
    with Image.open(io.BytesIO(head + b"".join(kept) + end)) as trailer:
        return dict(trailer.info)
