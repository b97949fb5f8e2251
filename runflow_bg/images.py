"""Check input images locally and prepare them for the model, before anything is spent.

Original bytes go into the zip untouched whenever possible; an image is re-encoded only when it
must be: an EXIF rotation to apply, a side over 4096 px, or a format the model does not take.
"""

from __future__ import annotations

import io
import math
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from runflow_bg.errors import InputError

MAX_SIDE = 4096
LARGE_PIXELS = 24_000_000
MAX_DECODED_PIXELS = 64_000_000
MAX_INPUT_BYTES = 52_428_800
EXTENSIONS = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp"}
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff"})
_BAD_IMAGE_HINT = "Use a PNG, JPEG or WebP image."


@dataclass(frozen=True)
class InputFile:
    """Bytes read from a local file (or stdin) and the name to show for them."""

    name: str
    data: bytes
    path: Path | None = None


@dataclass(frozen=True)
class PreparedImage:
    """An image ready to pack: its bytes, extension, size and what was done to it."""

    name: str
    data: bytes
    ext: str
    width: int
    height: int
    source_format: str
    notices: tuple[str, ...] = ()

    @property
    def stem(self) -> str:
        return Path(self.name).stem if self.name != "-" else "stdin"

    def describe(self) -> str:
        return f"{self.name} ({self.width}x{self.height} {self.source_format})"


def read_input(name: str, stdin: BinaryIO | None = None) -> InputFile:
    """Read a photo or scene: a regular, non-empty file under 50 MiB, or `-` for stdin."""
    if name == "-":
        if stdin is None:
            raise InputError("Standard input is not available.")
        data = stdin.read(MAX_INPUT_BYTES + 1)
        path = None
    else:
        path = Path(name)
        try:
            info = path.stat()
        except FileNotFoundError:
            raise InputError(f"{name}: no such file.", hint="Check the path.") from None
        except OSError as exc:
            raise InputError(f"{name}: cannot read it ({exc.strerror}).") from None
        if not stat.S_ISREG(info.st_mode):
            raise InputError(f"{name}: not a regular file.", hint="Give an image file.")
        if info.st_size > MAX_INPUT_BYTES:
            raise InputError(f"{name}: {info.st_size:,} bytes is over Runflow's 50 MiB limit.",
                             hint="Use a smaller image.")
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise InputError(f"{name}: cannot read it ({exc.strerror}).",
                             hint="Check the file's permissions.") from None
    if not data:
        raise InputError(f"{name}: the file is empty.", hint=_BAD_IMAGE_HINT)
    if len(data) > MAX_INPUT_BYTES:
        raise InputError(f"{name}: over Runflow's 50 MiB limit.", hint="Use a smaller image.")
    return InputFile(name, data, path)


def same_file(a: InputFile, b: InputFile) -> bool:
    """True when both inputs are one file on disk."""
    if a.path is None or b.path is None:
        return False
    try:
        return os.path.samefile(a.path, b.path)
    except OSError:
        return False


def _encode(image, fmt: str, original) -> bytes:
    out = io.BytesIO()
    options = {}
    icc = original.info.get("icc_profile")
    if icc:
        options["icc_profile"] = icc
    if fmt == "JPEG":
        if image.mode not in ("RGB", "L", "CMYK"):
            image = image.convert("RGB")
        options.update(quality=95, subsampling=0)
    elif fmt == "WEBP":
        options.update(quality=95, method=4)
    image.save(out, fmt, **options)
    return out.getvalue()


def prepare_image(source: InputFile,
                  on_large: Callable[[str], None] | None = None) -> PreparedImage:
    """Decode, orient, downscale and (if needed) convert one input image.

    The size is read from the header first: a JPEG larger than the service takes is decoded
    at a reduced scale (fast and small), other formats over MAX_DECODED_PIXELS are refused
    rather than decoded whole, and `on_large` hears about a large photo before the wait.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(source.data)) as original:
            source_format = original.format or "unknown"
            width, height = original.size
            if width * height > MAX_DECODED_PIXELS and source_format != "JPEG":
                raise InputError(
                    f"{source.name}: {width}x{height} is too many pixels to decode "
                    f"({width * height / 1e6:.0f} MP; a {source_format} may have at most "
                    f"{MAX_DECODED_PIXELS // 1_000_000} MP).",
                    hint=f"Downscale it to at most {MAX_SIDE} px a side, or save it as JPEG.")
            if width * height > LARGE_PIXELS and on_large is not None:
                on_large(f"{source.name}: preparing a large photo ({width * height / 1e6:.0f} MP)")
            display = (height, width) if _orientation(original) in (5, 6, 7, 8) else (width, height)
            if source_format == "JPEG" and max(width, height) > MAX_SIDE:
                scale = MAX_SIDE / max(width, height)
                original.draft(original.mode, (math.ceil(width * scale), math.ceil(height * scale)))
            original.load()
            oriented = ImageOps.exif_transpose(original)
            notices = []
            changed = False
            if oriented.size != original.size or _orientation(original) not in (None, 1):
                notices.append(f"{source.name}: applied its EXIF orientation")
                changed = True
            if max(display) > MAX_SIDE:
                before = display
                oriented = oriented.copy()
                oriented.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
                notices.append(f"{source.name}: downscaled from {before[0]}x{before[1]} to "
                               f"{oriented.size[0]}x{oriented.size[1]} (the service's limit is "
                               f"{MAX_SIDE} px a side)")
                changed = True
            target = source_format if source_format in EXTENSIONS else "PNG"
            if target != source_format:
                notices.append(f"{source.name}: converted {source_format} to PNG")
                changed = True
            data = _encode(oriented, target, original) if changed else source.data
            width, height = oriented.size
    except Image.DecompressionBombError:
        raise InputError(f"{source.name}: too many pixels to be a photo.",
                         hint="Use an image of at most 4096 px a side.") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        reason = "not an image" if isinstance(exc, UnidentifiedImageError) else "a damaged image"
        raise InputError(f"{source.name}: {reason}.", hint=_BAD_IMAGE_HINT) from None
    return PreparedImage(source.name, data, EXTENSIONS[target], width, height, source_format,
                         tuple(notices))


def _orientation(image) -> int | None:
    try:
        return image.getexif().get(0x0112)
    except Exception:  # a broken EXIF block is no reason to refuse the photo
        return None
