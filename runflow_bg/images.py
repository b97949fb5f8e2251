"""Check input images locally and prepare them for the model, before anything is spent.

Original bytes go into the zip untouched whenever possible; an image is re-encoded only when it
must be: an EXIF rotation to apply, a side over 4096 px, a format the model does not take, or
pixels that are not 8-bit sRGB RGB without transparency (the model reads them as such: a wide
gamut profile would be ignored, a transparent backdrop would not be the white it replaces).
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache, cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

if TYPE_CHECKING:
    from PIL import Image

from runflow_bg.errors import InputError
from runflow_bg.naming import input_stem
from runflow_bg.urls import input_label, is_url

MAX_SIDE = 4096
LARGE_PIXELS = 24_000_000
MAX_DECODED_PIXELS = 64_000_000
MAX_INPUT_BYTES = 52_428_800
IN_MEMORY_BYTES = 1024 * 1024  # files up to this are read once and kept; larger ones streamed
_CHUNK = 1024 * 1024
EXTENSIONS = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp"}
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff"})
PREVIEW_SIDE = 256
_BAD_IMAGE_HINT = "Use a PNG, JPEG or WebP image."
_PROFILE_SPACES = {"RGB": "RGB", "CMYK": "CMYK", "L": "GRAY"}
# Colours that any two sRGB profiles map alike, and a wide gamut profile does not.
_PROBE = ((255, 255, 255), (0, 0, 0), (64, 64, 64), (128, 128, 128), (200, 200, 200),
          (60, 180, 90), (200, 100, 50), (90, 60, 200), (230, 200, 40))


@dataclass(frozen=True)
class InputFile:
    """A photo or scene as given: its bytes (a small file, standard input, an image made in
    memory), or a large file on disk, read a piece at a time whenever needed, never held whole."""

    name: str
    data: bytes | None = None
    path: Path | None = None

    def open(self) -> BinaryIO:
        return io.BytesIO(self.data) if self.data is not None else self.path.open("rb")

    @cached_property
    def size(self) -> int:
        return len(self.data) if self.data is not None else self.path.stat().st_size

    @cached_property
    def digest(self) -> str:
        """The SHA-256 of its bytes, read in chunks."""
        digest = hashlib.sha256()
        with self.open() as stream:
            while chunk := stream.read(_CHUNK):
                digest.update(chunk)
        return digest.hexdigest()


@dataclass(frozen=True)
class PreparedImage:
    """An image ready to pack: what to send, its extension, size and what was done to it."""

    name: str
    content: bytes | InputFile
    """The re-encoded bytes, or the input itself when it is sent as it is."""
    ext: str
    width: int
    height: int
    source_format: str
    preview: Image.Image = field(compare=False, repr=False)
    """A copy at most PREVIEW_SIDE px a side, as packed, for checks that need no detail."""
    notices: tuple[str, ...] = ()

    @cached_property  # a batch names every item's outputs after its scene
    def stem(self) -> str:
        return input_stem(self.name)

    @property
    def byte_size(self) -> int:
        return len(self.content) if isinstance(self.content, bytes) else self.content.size

    def open(self) -> BinaryIO:
        """Its bytes as sent, from the start."""
        return io.BytesIO(self.content) if isinstance(self.content, bytes) else self.content.open()

    def describe(self) -> str:
        return f"{self.name} ({self.width}x{self.height} {self.source_format})"


UrlReader = Callable[[str], InputFile]
_url_reader: UrlReader | None = None


def read_urls_with(reader: UrlReader | None) -> UrlReader | None:
    """Let `read_input` take URLs, read by `reader` (None: refuse them); returns the reader it
    replaces. A use case sets one for its length (`Workspace.url_inputs`), so that `replace`,
    `batch` and manifests all take URLs the same way."""
    global _url_reader
    previous, _url_reader = _url_reader, reader
    return previous


def read_input(name: str, stdin: BinaryIO | None = None) -> InputFile:
    """A photo or scene: a regular, readable, non-empty file under 50 MiB, `-` for stdin, or a
    URL (fetched by the reader `read_urls_with` set, then checked like a file)."""
    if is_url(name):
        if _url_reader is None:
            raise InputError(f"{input_label(name)}: URLs are not read here.",
                             hint="Download the image and give its file.")
        source = _url_reader(name)  # capped at MAX_INPUT_BYTES as it was fetched
        if not source.data:
            raise InputError(f"{source.name}: the file is empty.", hint=_BAD_IMAGE_HINT)
        return source
    if name == "-":
        if stdin is None:
            raise InputError("Standard input is not available.")
        data = stdin.read(MAX_INPUT_BYTES + 1)
        if not data:
            raise InputError(f"{name}: the file is empty.", hint=_BAD_IMAGE_HINT)
        if len(data) > MAX_INPUT_BYTES:
            raise InputError(f"{name}: over Runflow's 50 MiB limit.", hint="Use a smaller image.")
        return InputFile(name, data)
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
    if not info.st_size:
        raise InputError(f"{name}: the file is empty.", hint=_BAD_IMAGE_HINT)
    try:
        with path.open("rb", buffering=0) as stream:  # read whole: no buffer to fill first
            data = stream.read() if info.st_size <= IN_MEMORY_BYTES else None
    except OSError as exc:
        raise InputError(f"{name}: cannot read it ({exc.strerror}).",
                         hint="Check the file's permissions.") from None
    return InputFile(name, data, path)


def same_file(a: InputFile, b: InputFile) -> bool:
    """True when both inputs are one file on disk."""
    if a.path is None or b.path is None:
        return False
    try:
        return os.path.samefile(a.path, b.path)
    except OSError:
        return False


def _encode(image: Image.Image, fmt: str, icc: bytes) -> bytes:
    out = io.BytesIO()
    options: dict[str, Any] = {"icc_profile": icc}
    if fmt == "JPEG":
        options.update(quality=95, subsampling=0)
    elif fmt == "WEBP":
        options.update(quality=95, method=4)
    image.save(out, fmt, **options)
    return out.getvalue()


def prepare_image(source: InputFile, on_large: Callable[[str], None] | None = None, *,
                  keep_profile: bool = False) -> PreparedImage:
    """Decode, orient, make 8-bit sRGB, downscale and (if needed) convert one input image.

    The size is read from the header first: a JPEG larger than the service takes is decoded
    at a reduced scale (fast and small), other formats over MAX_DECODED_PIXELS are refused
    rather than decoded whole, and `on_large` hears about a large photo before the wait.
    An image that can go as it is (most photos) is only decoded to a small copy, band by band
    (see reduced.py), and sent from its file; only one that must change is decoded whole.
    `keep_profile` leaves an RGB image's ICC profile and pixels as they are (see _colour).
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with source.open() as stream, Image.open(stream) as original:
            size = original.size
            if size[0] * size[1] > MAX_DECODED_PIXELS and original.format != "JPEG":
                raise InputError(
                    f"{source.name}: {size[0]}x{size[1]} is too many pixels to decode "
                    f"({size[0] * size[1] / 1e6:.0f} MP; a {original.format} may have at most "
                    f"{MAX_DECODED_PIXELS // 1_000_000} MP).",
                    hint=f"Downscale it to at most {MAX_SIDE} px a side, or save it as JPEG.")
            pixels = size[0] * size[1]
            if pixels > LARGE_PIXELS and on_large is not None:
                on_large(f"{source.name}: preparing a large photo ({pixels / 1e6:.0f} MP)")
            # Pillow reads a 16-bit colour PNG as 8-bit: only its raw mode, before loading, says so
            sixteen_bit = original.format == "PNG" and any(";16" in t[3] for t in original.tile)
            prepared = None if sixteen_bit else _as_it_is(source, original, keep_profile)
        if prepared is None:
            with source.open() as stream, Image.open(stream) as original:
                prepared = _converted(source, original, keep_profile, sixteen_bit)
    except Image.DecompressionBombError:
        raise InputError(f"{source.name}: too many pixels to be a photo.",
                         hint="Use an image of at most 4096 px a side.") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        reason = "not an image" if isinstance(exc, UnidentifiedImageError) else "a damaged image"
        raise InputError(f"{source.name}: {reason}.", hint=_BAD_IMAGE_HINT) from None
    return prepared


def _as_it_is(source: InputFile, original: Image.Image, keep_profile: bool) -> PreparedImage | None:
    """The image sent as its own bytes, with a preview decoded small; None when it must change
    (its format, orientation, size or colours are not what the model reads)."""
    from runflow_bg.reduced import reduced_copy

    if (original.format not in EXTENSIONS or max(original.size) > MAX_SIDE
            or _orientation(original) not in (None, 1)):
        return None
    size, source_format = original.size, original.format
    small = reduced_copy(original, PREVIEW_SIDE)
    preview, _, notices = _colour(small, source.name, original.info.get("icc_profile"),
                                  sixteen_bit=False, keep_profile=keep_profile)
    if notices:
        return None
    if preview is small:
        preview = small.copy()  # a preview of its own, with no file behind it
    preview.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE))
    return PreparedImage(source.name, source, EXTENSIONS[source_format], *size, source_format,
                         preview)


def _converted(source: InputFile, original: Image.Image, keep_profile: bool,
               sixteen_bit: bool) -> PreparedImage:
    """The image decoded whole, oriented, made 8-bit sRGB RGB, downscaled, and re-encoded."""
    from PIL import Image, ImageOps

    source_format = original.format or "unknown"
    width, height = original.size
    display = (height, width) if _orientation(original) in (5, 6, 7, 8) else (width, height)
    if source_format == "JPEG" and max(width, height) > MAX_SIDE:
        scale = MAX_SIDE / max(width, height)
        original.draft(original.mode, (math.ceil(width * scale), math.ceil(height * scale)))
    original.load()
    oriented = ImageOps.exif_transpose(original)
    oriented, icc, colour_notices = _colour(oriented, source.name,
                                            original.info.get("icc_profile"),
                                            sixteen_bit=sixteen_bit, keep_profile=keep_profile)
    notices = []
    if oriented.size != original.size or _orientation(original) not in (None, 1):
        notices.append(f"{source.name}: applied its EXIF orientation")
    if max(display) > MAX_SIDE:
        oriented = oriented.copy()
        oriented.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
        notices.append(f"{source.name}: downscaled from {display[0]}x{display[1]} to "
                       f"{oriented.size[0]}x{oriented.size[1]} (the service's limit is "
                       f"{MAX_SIDE} px a side)")
    target = source_format if source_format in EXTENSIONS else "PNG"
    if target != source_format:
        notices.append(f"{source.name}: converted {source_format} to PNG")
    notices += colour_notices
    preview = oriented.copy()
    preview.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE))
    return PreparedImage(source.name, _encode(oriented, target, icc), EXTENSIONS[target],
                         *oriented.size, source_format, preview, tuple(notices))


def _colour(image: Image.Image, name: str, icc: bytes | None, *, sixteen_bit: bool,
            keep_profile: bool) -> tuple[Image.Image, bytes, list[str]]:
    """The image as 8-bit RGB in sRGB, transparency flattened onto white (the model's backdrop).

    Returns it with the ICC profile to embed if it is re-encoded, and a notice for each change
    (no notice: the pixels are as decoded). `keep_profile` keeps an RGB profile; a CMYK or
    greyscale one cannot stay with RGB pixels, so those are always converted through it.
    """
    from PIL import Image

    notices = []
    kind = _kind(image.mode, sixteen_bit)
    if image.mode == "F" or image.mode.startswith("I"):
        image = _grey_to_8bit(image)
    if "transparency" in image.info or image.mode in ("PA", "La", "RGBa"):
        image = image.convert("LA" if image.mode in ("1", "L", "La") else "RGBA")
    if image.mode in ("RGBA", "LA"):
        alpha = image.getchannel("A")
        flat = Image.new(image.mode[:-1], image.size, "white")
        flat.paste(image.convert(flat.mode), mask=alpha)
        image = flat
        notices.append(f"{name}: flattened transparency onto white" if alpha.getextrema()[0] < 255
                       else f"{name}: dropped its alpha channel (nothing was transparent)")
    if image.mode not in _PROFILE_SPACES:
        image = image.convert("L" if image.mode == "1" else "RGB")
    found = _transform_to_srgb(icc, image.mode)
    keep = found is not None and image.mode == "RGB" and (keep_profile or _is_srgb(found[1]))
    if found is not None and not keep:
        description, transform = found
        if image.mode == "CMYK":
            description = f"CMYK ({description})"
        image = transform.apply(image)
        notices.append(f"{name}: converted {description} to sRGB")
    elif image.mode == "CMYK":
        notices.append(f"{name}: converted CMYK to sRGB (it has no ICC profile)")
    if image.mode != "RGB":
        image = image.convert("RGB")
    if kind:
        notices.append(f"{name}: {kind} made 8-bit RGB")
    return image, icc if keep and keep_profile else _srgb_bytes(), notices


def _kind(mode: str, sixteen_bit: bool) -> str | None:
    """What the pixels were, when not 8-bit RGB(A) or CMYK: named in the notice."""
    if mode == "F":
        return "floating-point greyscale"
    if mode.startswith("I") or sixteen_bit and mode in ("L", "LA"):
        return "16-bit greyscale"
    if sixteen_bit:
        return "16-bit colour"
    if mode in ("1", "L", "LA", "La"):
        return "greyscale"
    if mode in ("P", "PA"):
        return "palette colour"
    return None if mode in ("RGB", "RGBA", "CMYK") else mode


def _grey_to_8bit(image: Image.Image) -> Image.Image:
    """Scale to 0..255: Pillow's own conversion clips 16-bit values (0..65535) to white.

    Floating-point pixels span 0..1 when written by most tools, 0..255 when made by Pillow.
    """
    if image.mode == "F":
        if image.getextrema()[1] <= 1:
            image = image.point(lambda v: v * 255 + 0.5)
        return image.convert("L")
    return image.convert("I").point(lambda v: v / 257 + 0.5).convert("L")


def _transform_to_srgb(icc: bytes | None, mode: str):
    """The embedded profile's name and a transform from it to sRGB RGB, or None.

    None also when the profile is damaged or made for other colours than the image's: it says
    nothing reliable then, and the pixels are read as sRGB.
    """
    from PIL import ImageCms

    if not icc:
        return None
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        if profile.profile.xcolor_space.strip() != _PROFILE_SPACES[mode]:
            return None
        transform = ImageCms.buildTransform(profile, _srgb(), mode, "RGB")
    except (OSError, ImageCms.PyCMSError):
        return None
    return ImageCms.getProfileDescription(profile).strip() or "its ICC profile", transform


def _is_srgb(transform) -> bool:
    """True when an RGB profile's transform to sRGB changes no colour visibly.

    sRGB profiles go by many names ("sRGB IEC61966-2.1", "sRGB built-in", "c2"), so the test
    is what the profile does to a few colours, not what it is called.
    """
    from PIL import Image

    probe = Image.frombytes("RGB", (len(_PROBE), 1), bytes(v for rgb in _PROBE for v in rgb))
    converted = transform.apply(probe)
    return all(abs(a - b) <= 2 for a, b in zip(probe.tobytes(), converted.tobytes()))


@cache
def _srgb():
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


@cache
def _srgb_bytes() -> bytes:
    return _srgb().tobytes()


def _orientation(image) -> int | None:
    """The EXIF orientation, read without decoding the pixels (a PNG's getexif would)."""
    from PIL import Image

    from runflow_bg.reduced import png_trailer

    try:
        if "exif" not in image.info:
            image.info.update(png_trailer(image))
        return Image.Image.getexif(image).get(0x0112)
    except Exception:  # a broken EXIF block is no reason to refuse the photo
        return None
