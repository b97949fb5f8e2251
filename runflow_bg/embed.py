"""Metadata written into a WebP without touching its pixels.

Runflow sends WebP. Labelling it (XMP) and tagging it sRGB (an ICC profile) needs no new
encoding: the image's own VP8/VP8L data is kept byte for byte, its EXIF and XMP are dropped (so
nothing of the original's metadata leaks), and ours are added as RIFF chunks. Re-encoding would
lose a generation of quality and cost tens of ms a file. Anything unexpected (an animation, a
malformed file) returns None, and the caller encodes instead.
"""

from __future__ import annotations

import struct

_ICC, _ALPHA, _EXIF, _XMP, _ANIMATION = 0x20, 0x10, 0x08, 0x04, 0x02


def webp_with_metadata(data: bytes, *, icc: bytes, xmp: bytes | None) -> bytes | None:
    """The WebP `data` with `icc` and `xmp` as its only metadata; None when it cannot be done
    without decoding (not a still WebP, or not one this reads as well-formed)."""
    chunks = _chunks(data)
    if not chunks:
        return None
    kinds = [kind for kind, _ in chunks]
    if "ANIM" in kinds or "ANMF" in kinds:
        return None
    images = [(kind, body) for kind, body in chunks if kind in (b"VP8 ", b"VP8L")]
    if len(images) != 1:
        return None
    canvas = _canvas(chunks, images[0])
    if canvas is None:
        return None
    width, height, alpha = canvas
    flags = _ICC | (_ALPHA if alpha else 0) | (_XMP if xmp else 0)
    header = struct.pack("<B3x", flags) + (width - 1).to_bytes(3, "little") + \
        (height - 1).to_bytes(3, "little")
    kept = [(kind, body) for kind, body in chunks if kind in (b"ALPH", b"VP8 ", b"VP8L")]
    out = [(b"VP8X", header), (b"ICCP", icc), *kept]
    if xmp:
        out.append((b"XMP ", xmp))
    payload = b"WEBP" + b"".join(_chunk(kind, body) for kind, body in out)
    return b"RIFF" + struct.pack("<I", len(payload)) + payload


def _chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """The RIFF chunks of a WebP, or [] when it is not one, or not a well-formed one."""
    if len(data) < 20 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        return []
    (size,) = struct.unpack("<I", data[4:8])
    if size + 8 != len(data):
        return []
    chunks, offset = [], 12
    while offset < len(data):
        if offset + 8 > len(data):
            return []
        kind = data[offset:offset + 4]
        (length,) = struct.unpack("<I", data[offset + 4:offset + 8])
        end = offset + 8 + length
        if end > len(data):
            return []
        chunks.append((kind, data[offset + 8:end]))
        offset = end + (length & 1)
    return chunks


def _canvas(chunks: list[tuple[bytes, bytes]],
            image: tuple[bytes, bytes]) -> tuple[int, int, bool] | None:
    """(width, height, has alpha) as the file declares them."""
    kind, body = image
    if chunks[0][0] == b"VP8X":
        header = chunks[0][1]
        if len(header) < 10:
            return None
        width = int.from_bytes(header[4:7], "little") + 1
        height = int.from_bytes(header[7:10], "little") + 1
        return width, height, bool(header[0] & _ALPHA)
    if kind == b"VP8 ":  # a key frame: 3-byte tag, start code, 14-bit width and height
        if len(body) < 10 or body[0] & 1 or body[3:6] != b"\x9d\x01\x2a":
            return None
        width, height = struct.unpack("<HH", body[6:10])
        return width & 0x3FFF, height & 0x3FFF, False
    if len(body) < 5 or body[0] != 0x2F:  # VP8L: signature, then 14 + 14 bits and an alpha bit
        return None
    (bits,) = struct.unpack("<I", body[1:5])
    return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1, bool(bits >> 28 & 1)


def _chunk(kind: bytes, body: bytes) -> bytes:
    return kind + struct.pack("<I", len(body)) + body + (b"\0" if len(body) & 1 else b"")
