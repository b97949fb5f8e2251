"""Turn the image Runflow sent into the file a shop accepts, locally and deterministically.

Shops want a given format, size and weight, colours they can trust (sRGB), no location data,
and, more and more, a machine-readable statement that the image was edited by a model. Every
step here is plain Pillow, with nothing time- or machine-dependent written into the file, so the
same original and the same Spec always give the same bytes.
"""

from __future__ import annotations

import io
import re
import struct
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import BinaryIO
from xml.sax.saxutils import escape

from runflow_bg import __version__
from runflow_bg.images import EXTENSIONS
from runflow_bg.reduced import png_trailer

FORMATS = {"jpg": "JPEG", "jpeg": "JPEG", "png": "PNG", "webp": "WEBP"}
FITS = ("contain", "cover", "pad")
DEFAULT_QUALITY = 92
LOWEST_QUALITY = 40
QUALITY_STEP = 8
SCALE_STEP = 0.9
MAX_SIDE = 16383  # WebP's largest side; also keeps a mistyped size from allocating gigabytes

COMPOSITE_WITH_AI = ("http://cv.iptc.org/newscodes/digitalsourcetype/"
                     "compositeWithTrainedAlgorithmicMedia")
RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
DC = "http://purl.org/dc/elements/1.1/"
XMP = "http://ns.adobe.com/xap/1.0/"
IPTC_EXT = "http://iptc.org/std/Iptc4xmpExt/2008-02-29/"
RUNFLOW_BG = "urn:runflow-bg:xmp:1.0/"

_EXIF_ARTIST, _EXIF_COPYRIGHT, _EXIF_GPS, _EXIF_ORIENTATION = 0x013B, 0x8298, 0x8825, 0x0112
_IPTC_BYLINE, _IPTC_COPYRIGHT = (2, 80), (2, 116)


@dataclass(frozen=True)
class Spec:
    """What the delivered file must be; checked on creation, so a bad option fails early."""

    format: str = "keep"
    quality: int | None = None
    max_bytes: int | None = None
    fill: str = "white"
    size: tuple[int, int] | None = None
    max_side: int | None = None
    fit: str = "contain"
    pad_color: str = "white"
    ai_label: bool = True

    def __post_init__(self):
        if self.format != "keep" and self.format not in FORMATS:
            raise ValueError(f"format {self.format!r}: use keep, jpg, png or webp.")
        if self.fit not in FITS:
            raise ValueError(f"fit {self.fit!r}: use contain, cover or pad.")
        if self.quality is not None and not 1 <= self.quality <= 100:
            raise ValueError(f"quality {self.quality}: use 1 to 100.")
        if self.max_bytes is not None and self.max_bytes < 1:
            raise ValueError(f"max_bytes {self.max_bytes}: use a positive number of bytes.")
        if self.max_side is not None and not 1 <= self.max_side <= MAX_SIDE:
            raise ValueError(f"max_side {self.max_side}: use 1 to {MAX_SIDE} px.")
        if self.size is not None:
            _check_size(*self.size)
        parse_color(self.fill)
        parse_color(self.pad_color)

    @property
    def exact_canvas(self) -> bool:
        """True when the pixel size is the shop's demand, so max_bytes may not shrink it."""
        return self.size is not None and self.fit in ("cover", "pad")


@dataclass(frozen=True)
class Provenance:
    """Where a delivered image came from; copyright and creator are the input photo's own."""

    run_id: str
    model: str
    source_name: str
    copyright: str | None = None
    creator: str | None = None


def deliver(original: bytes, spec: Spec, provenance: Provenance) -> tuple[bytes, str]:
    """Return (file bytes, extension) for the shop.

    'keep' keeps the original format (PNG for one a shop may not take). When nothing asks for a
    change (no size, quality, label, colour conversion or location data to drop, and within
    max_bytes) the original bytes come back untouched, so no generation is lost; when only the
    label and the sRGB profile are to be added to a WebP, they are written around its image data
    (embed.py), its pixels untouched too.
    """
    from PIL import Image, ImageOps

    image = _open_metadata(io.BytesIO(original))  # decoded below, only if it must be
    source_format = "JPEG" if image.format == "MPO" else image.format  # Pillow names some JPEGs MPO
    target = FORMATS.get(spec.format) or (source_format if source_format in EXTENSIONS else "PNG")
    ext = EXTENSIONS[target]
    icc = image.info.get("icc_profile")
    if (spec.format == "keep" and target == source_format and not spec.ai_label
            and spec.size is None and spec.max_side is None and spec.quality is None
            and (spec.max_bytes is None or len(original) <= spec.max_bytes)
            and (not icc or _is_srgb(icc)) and not _has_location(image)):
        _load(image)
        return original, ext
    xmp = _xmp_packet(provenance) if spec.ai_label else None
    if (spec.format == "keep" and target == source_format == "WEBP" and spec.size is None
            and spec.max_side is None and spec.quality is None and (not icc or _is_srgb(icc))
            and not _has_location(image) and image.getexif().get(_EXIF_ORIENTATION, 1) == 1):
        from runflow_bg.embed import webp_with_metadata

        tagged = webp_with_metadata(original, icc=_srgb_icc(), xmp=xmp)  # the pixels as sent
        if tagged is not None and (spec.max_bytes is None or len(tagged) <= spec.max_bytes):
            return tagged, ext

    _load(image)
    image = _to_srgb(ImageOps.exif_transpose(image), icc)
    if spec.size is not None:
        image = _fit(image, spec.size, spec.fit, parse_color(spec.pad_color))
    if spec.max_side is not None and max(image.size) > spec.max_side:
        image = ImageOps.contain(image, (spec.max_side, spec.max_side), Image.Resampling.LANCZOS)
    if target == "JPEG" and image.mode == "RGBA":
        canvas = Image.new("RGB", image.size, parse_color(spec.fill))
        canvas.paste(image, mask=image.getchannel("A"))
        image = canvas
    quality = spec.quality or DEFAULT_QUALITY
    if spec.max_bytes is None:
        return _encode(image, target, quality, xmp), ext
    return _fit_bytes(image, target, quality, xmp, spec), ext


def photo_rights(photo: bytes | BinaryIO) -> tuple[str | None, str | None]:
    """(copyright, creator) of a photo, from XMP, else EXIF, else IPTC; nothing else is read.

    A file is read for its metadata only, its pixels skipped (a PNG's text after them too).
    """
    from PIL import Image, IptcImagePlugin

    image = _open(photo) if isinstance(photo, bytes) else _open_metadata(photo)
    xmp = _read_xmp(image)
    exif = Image.Image.getexif(image)  # from what was read: a PNG's own would decode it
    iptc = IptcImagePlugin.getiptcinfo(image) or {}
    rights = (xmp.get(_tag(DC, "rights")) or _text(exif.get(_EXIF_COPYRIGHT))
              or _text(iptc.get(_IPTC_COPYRIGHT)))
    creator = (xmp.get(_tag(DC, "creator")) or _text(exif.get(_EXIF_ARTIST))
               or _text(iptc.get(_IPTC_BYLINE)))
    return rights or None, creator or None


def _open_metadata(stream: BinaryIO):
    """The image opened for its metadata, without decoding its pixels (see png_trailer)."""
    from PIL import Image

    try:
        image = Image.open(stream)
        image.info.update(png_trailer(image))
    except Image.DecompressionBombError:
        raise ValueError("too many pixels to be a photo.") from None
    except (OSError, SyntaxError, ValueError, struct.error):
        raise ValueError("not an image Pillow can read, or a damaged one.") from None
    return image


def describe(path_or_bytes: str | Path | bytes) -> dict:
    """What a delivered (or any) image is, for checks and reports."""
    data = path_or_bytes if isinstance(path_or_bytes, bytes) else Path(path_or_bytes).read_bytes()
    image = _open(data)
    icc = image.info.get("icc_profile")
    xmp = _read_xmp(image)
    return {
        "format": image.format,
        "width": image.width,
        "height": image.height,
        "bytes": len(data),
        "mode": image.mode,
        "icc": _profile_name(icc) if icc else None,
        "has_alpha": image.has_transparency_data,
        "ai_label": xmp.get(_tag(IPTC_EXT, "DigitalSourceType")),
        "run_id": xmp.get(_tag(RUNFLOW_BG, "RunID")),
    }


def parse_color(text: str) -> tuple[int, int, int]:
    """An opaque RGB colour from a name, #rgb, #rrggbb or rgb(r,g,b)."""
    from PIL import ImageColor

    try:
        color = ImageColor.getrgb(str(text).strip())
    except ValueError:
        raise ValueError(f"colour {text!r}: use a name, #rrggbb or rgb(r,g,b).") from None
    if len(color) != 3:
        raise ValueError(f"colour {text!r}: use an opaque colour (no alpha).")
    return color


def parse_size(text: str) -> tuple[int, int]:
    """A WxH pixel size such as '2000x2000'."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", str(text))
    if not match:
        raise ValueError(f"size {text!r}: use WIDTHxHEIGHT, e.g. 2000x2000.")
    width, height = int(match[1]), int(match[2])
    _check_size(width, height)
    return width, height


def _check_size(width: int, height: int) -> None:
    if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE):
        raise ValueError(f"size {width}x{height}: each side must be 1 to {MAX_SIDE} px.")


def _open(data: bytes):
    """The decoded image; loading it reads PNG text chunks that follow the pixels too."""
    from PIL import Image

    try:
        image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:
        raise ValueError("too many pixels to be a photo.") from None
    except (OSError, SyntaxError, ValueError):
        raise ValueError("not an image Pillow can read, or a damaged one.") from None
    return _load(image)


def _load(image):
    """The image, decoded; damaged data is a ValueError as for a file that does not open."""
    try:
        image.load()
    except (OSError, SyntaxError, ValueError):
        raise ValueError("not an image Pillow can read, or a damaged one.") from None
    return image


@cache
def _srgb_icc() -> bytes:
    """lcms's sRGB profile with a fixed creation date: lcms stamps the current time otherwise."""
    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    return icc[:24] + struct.pack(">6H", 2000, 1, 1, 0, 0, 0) + icc[36:]


def _is_srgb(icc: bytes) -> bool:
    """A profile named sRGB (ours, or a camera's 'sRGB IEC61966-2.1') needs no conversion."""
    return (_profile_name(icc) or "").startswith("sRGB")


def _profile_name(icc: bytes) -> str | None:
    from PIL import ImageCms

    try:
        return ImageCms.ImageCmsProfile(io.BytesIO(icc)).profile.profile_description
    except (ImageCms.PyCMSError, OSError):
        raise ValueError("the image's colour profile is damaged.") from None


def _to_srgb(image, icc: bytes | None):
    """RGB or RGBA pixels in sRGB, with none of the original's metadata left attached.

    Pixels under another embedded profile are converted, not relabelled, so colours stay right;
    metadata is dropped wholesale, so EXIF (and its GPS) or old XMP cannot leak into the output.
    """
    from PIL import ImageCms

    alpha = image.convert("RGBA").getchannel("A") if image.has_transparency_data else None
    base = image.convert({"L": "L", "LA": "L", "CMYK": "CMYK"}.get(image.mode, "RGB"))
    if icc and not _is_srgb(icc):
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            srgb = ImageCms.ImageCmsProfile(io.BytesIO(_srgb_icc()))
            rgb = ImageCms.profileToProfile(base, source, srgb, outputMode="RGB")
        except (ImageCms.PyCMSError, OSError) as exc:
            raise ValueError(f"the original's colour profile cannot be applied ({exc}).") from None
    else:
        rgb = base.convert("RGB")
    if alpha is not None:
        rgb.putalpha(alpha)
    rgb.info = {}
    return rgb


def _has_location(image) -> bool:
    xmp = image.info.get("xmp") or image.info.get("XML:com.adobe.xmp") or b""
    xmp = xmp.encode() if isinstance(xmp, str) else xmp
    return _EXIF_GPS in image.getexif() or b"GPSLatitude" in xmp


def _fit(image, size: tuple[int, int], fit: str, pad_color: tuple[int, int, int]):
    from PIL import Image, ImageOps

    lanczos = Image.Resampling.LANCZOS
    if fit == "cover":
        return ImageOps.fit(image, size, lanczos)
    if fit == "pad":
        return ImageOps.pad(image, size, lanczos, color=pad_color)
    return ImageOps.contain(image, size, lanczos)


def _encode(image, target: str, quality: int, xmp: bytes | None) -> bytes:
    from PIL import PngImagePlugin

    options: dict = {"icc_profile": _srgb_icc()}
    if target == "PNG":
        if xmp:
            info = PngImagePlugin.PngInfo()
            info.add_itxt("XML:com.adobe.xmp", xmp.decode("utf-8"))
            options["pnginfo"] = info
    else:
        options["quality"] = quality
        if target == "JPEG":
            options["optimize"] = True
        if xmp:
            options["xmp"] = xmp
    out = io.BytesIO()
    image.save(out, target, **options)
    return out.getvalue()


def _fit_bytes(image, target: str, quality: int, xmp: bytes | None, spec: Spec) -> bytes:
    """Lower the quality, then the pixel size by ~10% steps, until the file fits max_bytes."""
    from PIL import Image

    limit = spec.max_bytes
    qualities = [quality] if target == "PNG" or quality <= LOWEST_QUALITY else (
        [*range(quality, LOWEST_QUALITY, -QUALITY_STEP), LOWEST_QUALITY])
    for q in qualities:
        data = _encode(image, target, q, xmp)
        if len(data) <= limit:
            return data
    if spec.exact_canvas:
        raise ValueError(f"cannot fit {image.width}x{image.height} in {limit:,} bytes "
                         f"({len(data):,} at the lowest quality); "
                         "allow more bytes or a smaller size.")

    def encode_at(size: tuple[int, int]) -> bytes:
        return _encode(image.resize(size, Image.Resampling.LANCZOS), target, qualities[-1], xmp)

    floor = len(encode_at((1, 1)))
    if floor > limit:
        raise ValueError(f"cannot fit in {limit:,} bytes: the colour profile and labels alone "
                         f"take {floor:,}; allow more bytes.")
    width, height = image.size
    scale = 1.0
    while True:  # ends: the steps reach 1x1, which fits as the floor check just showed
        scale *= SCALE_STEP
        data = encode_at((max(1, round(width * scale)), max(1, round(height * scale))))
        if len(data) <= limit:
            return data


def _xmp_packet(provenance: Provenance) -> bytes:
    """The provenance as XMP, using well-known properties wherever one fits."""
    fields = [
        f"<Iptc4xmpExt:DigitalSourceType>{COMPOSITE_WITH_AI}</Iptc4xmpExt:DigitalSourceType>",
        f"<Iptc4xmpExt:AISystemUsed>{_xml(provenance.model)}</Iptc4xmpExt:AISystemUsed>",
        f"<runflowbg:RunID>{_xml(provenance.run_id)}</runflowbg:RunID>",
        f"<dc:source>{_xml(provenance.source_name)}</dc:source>",
        f"<xmp:CreatorTool>runflow-bg {__version__}</xmp:CreatorTool>",
    ]
    if provenance.copyright:
        fields.append(f'<dc:rights><rdf:Alt><rdf:li xml:lang="x-default">'
                      f"{_xml(provenance.copyright)}</rdf:li></rdf:Alt></dc:rights>")
    if provenance.creator:
        fields.append(f"<dc:creator><rdf:Seq><rdf:li>{_xml(provenance.creator)}"
                      f"</rdf:li></rdf:Seq></dc:creator>")
    body = "\n   ".join(fields)
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
        f' <rdf:RDF xmlns:rdf="{RDF}">\n'
        f'  <rdf:Description rdf:about="" xmlns:dc="{DC}" xmlns:xmp="{XMP}"\n'
        f'    xmlns:Iptc4xmpExt="{IPTC_EXT}" xmlns:runflowbg="{RUNFLOW_BG}">\n'
        f"   {body}\n"
        "  </rdf:Description>\n"
        " </rdf:RDF>\n"
        "</x:xmpmeta>\n"
        '<?xpacket end="w"?>'
    ).encode("utf-8")


def _xml(value: str) -> str:
    """Escaped text with the control characters XML 1.0 forbids removed (EXIF may hold NULs)."""
    return escape("".join(c for c in value if c >= " " or c in "\t\n\r"))


def _read_xmp(image) -> dict[str, str]:
    """XMP properties as {namespace+name: text}; Alt gives its first item, Seq/Bag all, joined."""
    import xml.etree.ElementTree as ET

    raw = image.info.get("xmp") or image.info.get("XML:com.adobe.xmp")
    if not raw:
        return {}
    try:
        root = ET.fromstring(raw.strip(b"\x00 \t\r\n") if isinstance(raw, bytes) else raw.strip())
    except ET.ParseError:
        return {}
    values: dict[str, str] = {}
    for description in root.iter(_tag(RDF, "Description")):
        for key, value in description.attrib.items():
            values.setdefault(key, value)
        for prop in description:
            items = [(li.text or "").strip() for li in prop.iter(_tag(RDF, "li"))]
            if len(prop) and prop[0].tag == _tag(RDF, "Alt"):
                items = items[:1]
            values.setdefault(prop.tag, "; ".join(items) if items else (prop.text or "").strip())
    return values


def _tag(namespace: str, name: str) -> str:
    """A name as ElementTree spells it."""
    return f"{{{namespace}}}{name}"


def _text(value) -> str | None:
    """An EXIF or IPTC value as clean text; EXIF separates photographer and editor with NUL."""
    if value is None:
        return None
    if isinstance(value, list):
        return "; ".join(filter(None, map(_text, value))) or None
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            value = value.decode("latin-1")
    return "; ".join(part.strip() for part in str(value).split("\x00") if part.strip()) or None
