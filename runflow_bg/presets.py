"""What each shop asks of a main product image, where each figure comes from, and a check.

Every figure is taken from the marketplace's published help pages where they could be read;
where only third-party summaries (or nothing) gave a figure, the stricter value is kept and its
source line says so. `check_file` reads headers and metadata only, so checking a folder of large
files stays quick. Pillow is imported inside `check_file`: listing presets needs none of it.
"""

from __future__ import annotations

import io
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from runflow_bg.errors import InputError, UsageError

ASPECT_TOLERANCE = 0.01  # 1 %: a 1000x1008 file is still square for every shop
_DIGITAL_SOURCE_TYPE = re.compile(
    rb"DigitalSourceType(?:\s*=\s*[\"']|\s*>\s*|[^>]*?rdf:resource\s*=\s*[\"'])([^\"'<]+)")
_IPTC_SOURCE_TYPES = "cv.iptc.org/newscodes/digitalsourcetype/"


@dataclass(frozen=True)
class Source:
    """A public page and what it says (or what was chosen where it says nothing)."""

    url: str
    statement: str


@dataclass(frozen=True)
class Preset:
    """The rules a delivered main image must meet for one shop, and how to deliver one.

    Formats are Pillow's names. `min_side` applies to both sides, `min_long_side` to the longest
    one, `max_side` to either; `target_side` is the side delivered files are written at (both
    sides when `fit` is "pad", which pads to a white square).
    """

    name: str
    shop: str
    formats: tuple[str, ...]
    deliver_format: str
    min_side: int
    min_long_side: int
    max_side: int | None
    max_pixels: int | None
    aspect: float | None
    max_bytes: int | None
    srgb: bool
    ai_label_required: bool
    target_side: int
    fit: str
    sources: tuple[Source, ...]

    def delivery_options(self) -> dict:
        """What the delivery step needs to write a file that passes `check_file`."""
        square = self.fit == "pad"
        return {"format": self.deliver_format, "max_bytes": self.max_bytes,
                "size": (self.target_side, self.target_side) if square else None,
                "max_side": self.target_side, "fit": self.fit, "pad_color": "white",
                "ai_label": True}

    def to_json(self) -> dict:
        data = asdict(self)
        data["delivery"] = self.delivery_options()
        return data

    def describe(self) -> dict[str, str]:
        """Each rule in a few words: the columns of `runflow-bg presets` and of the README."""
        pixels = []
        if self.min_side and self.max_side:
            pixels.append(f"sides {self.min_side}–{self.max_side}")
        elif self.min_side:
            pixels.append(f"sides ≥ {self.min_side}")
        if self.min_long_side:
            pixels.append(f"long side ≥ {self.min_long_side}")
        if self.max_side and not self.min_side:
            pixels.append(f"sides ≤ {self.max_side}")
        if self.max_pixels:
            pixels.append(f"≤ {self.max_pixels / 1e6:g} MP")
        written = (f"{self.target_side}x{self.target_side}" if self.fit == "pad"
                   else f"long side {self.target_side}")
        return {
            "accepts": ", ".join(self.formats),
            "pixels": ", ".join(pixels),
            "aspect": _ratio(self.aspect) if self.aspect else "any",
            "bytes": f"≤ {self.max_bytes / 1e6:g} MB" if self.max_bytes else "any",
            "colour": "sRGB" if self.srgb else "any",
            "ai_label": "required" if self.ai_label_required else "no",
            "writes": f"{self.deliver_format}, {written}",
        }


def _ratio(aspect: float) -> str:
    return "1:1" if aspect == 1.0 else f"{aspect:g}:1"


PRESETS: dict[str, Preset] = {preset.name: preset for preset in (
    Preset(
        name="amazon", shop="Amazon", formats=("JPEG", "TIFF"), deliver_format="jpg",
        min_side=0, min_long_side=1000, max_side=10_000, max_pixels=None, aspect=None,
        max_bytes=10_000_000, srgb=True, ai_label_required=False, target_side=2000,
        fit="contain",
        sources=(
            Source("https://sellercentral.amazon.com/gp/help/external/G9FUUH87RBNXGKB7",
                   "JPEG, TIFF, PNG or non-animated GIF (JPEG recommended); RGB preferred to "
                   "CMYK; 1,000 px or more on the longest side enables zoom; at most "
                   "10,000 px on the longest side."),
            Source("https://na.account.amazon.com/gp/help/customer/display.html?ie=UTF8&nodeId=201995020",
                   "Images uploaded by file name must be JPEG or TIFF: only these two are "
                   "accepted here, so one file suits every upload route (conservative)."),
            Source("https://sellercentral.amazon.com.au/gp/help/external/help.html?itemID=T8RSE9S9NK4LP6Z",
                   "A main image whose background is not pure white (RGB 255 255 255) is "
                   "suppressed from search: a replaced scene belongs in the other slots."),
            Source("https://www.picovert.com/en/blog/image-size-for-amazon",
                   "10 MB per image and 2000 px recommended: third-party figures, not found "
                   "on Amazon's pages consulted (conservative); sRGB is the RGB browsers "
                   "assume."),
        )),
    Preset(
        name="shopify", shop="Shopify", formats=("JPEG", "PNG", "GIF", "WEBP"),
        deliver_format="jpg", min_side=800, min_long_side=0, max_side=4472,
        max_pixels=20_000_000, aspect=1.0, max_bytes=20_000_000, srgb=True,
        ai_label_required=False, target_side=2048, fit="pad",
        sources=(
            Source("https://www.pixfocal.com/guides/shopify-product-image-size",
                   "Up to 4472 x 4472 px and 20 MB; JPEG, PNG, GIF, WebP; 2048 x 2048 square "
                   "recommended. A third-party summary: Shopify's own help page could not be "
                   "consulted; colour space not stated, sRGB kept (conservative)."),
            Source("https://grokipedia.com/page/Shopify_product_media",
                   "Cites Shopify's help for 5000 x 5000 px or 25 MP: the smaller 4472 px and "
                   "20 MP are kept (conservative)."),
            Source("https://www.sizemarker.com/blog/shopify-product-image-best-practices",
                   "800 x 800 px is the least that zooms in most themes (third-party): kept "
                   "as the minimum."),
        )),
    Preset(
        name="etsy", shop="Etsy", formats=("JPEG", "PNG", "GIF"), deliver_format="jpg",
        min_side=2000, min_long_side=0, max_side=None, max_pixels=None, aspect=None,
        max_bytes=1_000_000, srgb=True, ai_label_required=False, target_side=2000, fit="pad",
        sources=(
            Source("https://www.etsy.com/de-en/legal/policy/listing-image-requirements/253962679005",
                   "Listing images must show the item itself; the policy gives no pixel or "
                   "byte figures."),
            Source("https://hauld.app/blog/etsy-listing-photo-checklist",
                   "JPEG, PNG or GIF; 2000 px, up to 10 MB, a 2000 x 2000 square as thumbnails "
                   "are cropped square (third-party). Etsy's own advice (2000 px on the "
                   "shortest side, files under 1 MB) could not be consulted: both are "
                   "kept as limits, and sRGB too (conservative)."),
        )),
    Preset(
        name="ebay", shop="eBay", formats=("JPEG", "PNG", "GIF", "TIFF", "BMP", "WEBP", "AVIF"),
        deliver_format="jpg", min_side=0, min_long_side=500, max_side=6000, max_pixels=None,
        aspect=None, max_bytes=7_000_000, srgb=True, ai_label_required=False,
        target_side=1600, fit="contain",
        sources=(
            Source("https://www.ebay.com/help/policies/listing-policies/picture-policy?id=4370",
                   "Photos must be at least 500 px on the longest side; no added borders, "
                   "text or watermarks."),
            Source("https://entwickler.ebay.de/api-docs/user-guides/static/trading-user-guide/picture-hosting.html",
                   "eBay Picture Services take AVIF, BMP, GIF, HEIC, JPG, PNG, TIF and WEBP, "
                   "convert them to JPG and keep at most 1600 x 1600 px: delivered at 1600 px."),
            Source("http://t.zoukankan.com/starluck-p-11803312.html",
                   "A copy of eBay's older developer page: width + height at most 12,000 px, "
                   "files at most 12 MB: 6000 px a side keeps any shape within the sum "
                   "(conservative)."),
            Source("https://clippingpath.in/blog/ebays-image-guidelines-store-owner/amp",
                   "Gives 7 MB as the largest upload (third-party): the smaller figure is kept; "
                   "colour space not stated, sRGB kept (conservative)."),
        )),
    Preset(
        name="google-merchant", shop="Google Merchant Center",
        formats=("JPEG", "WEBP", "PNG", "GIF", "BMP", "TIFF"), deliver_format="jpg",
        min_side=250, min_long_side=0, max_side=None, max_pixels=64_000_000, aspect=None,
        max_bytes=16_000_000, srgb=True, ai_label_required=True, target_side=1500,
        fit="contain",
        sources=(
            Source("https://support.google.com/merchants/answer/6324350",
                   "image_link takes JPEG, WebP, PNG, GIF, BMP and TIFF; the file extension "
                   "should match the format."),
            Source("https://sharpfeed.io/docs/fields/image-link",
                   "At least 100 x 100 px (250 x 250 px for apparel), at most 64 MP and 16 MB, "
                   "after Google's page: the apparel minimum applies to every product, and "
                   "sRGB is kept as colour space is not stated (conservative)."),
            Source("https://www.iptc.org/news/2024/02/",
                   "Quotes Google's policy: AI-generated images must contain the IPTC "
                   "DigitalSourceType trainedAlgorithmicMedia tag (image_link, "
                   "additional_image_link, lifestyle_image_link)."),
            Source("https://help.mergado.com/en/mergado-editor/advertising-channels-and-listings/google/google-element-reference/element-g-image-link/",
                   "Google recommends 1500 x 1500 px or more: delivered at 1500 px."),
        )),
    Preset(
        name="woocommerce", shop="WooCommerce", formats=("JPEG", "PNG", "GIF"),
        deliver_format="jpg", min_side=800, min_long_side=0, max_side=None, max_pixels=None,
        aspect=1.0, max_bytes=2_000_000, srgb=True, ai_label_required=False,
        target_side=1200, fit="pad",
        sources=(
            Source("https://github.com/woocommerce/woocommerce/blob/trunk/docs/theme-development/image-sizes.md",
                   "Catalog thumbnails are square-cropped by default (300 px; gallery 100 x "
                   "100) and single-product images 600 px wide: a square keeps the crop from "
                   "cutting the product."),
            Source("https://developer.wordpress.org/reference/functions/wp_max_upload_size/",
                   "The media uploader's limit is the smaller of PHP's upload_max_filesize "
                   "and post_max_size."),
            Source("https://php-editors.com/php_manual/features.file-upload.common-pitfalls.html",
                   "upload_max_filesize defaults to 2 MB: kept as the limit, as a shop's host "
                   "may not have raised it (conservative)."),
            Source("https://arcgruppen.se/en/blog/woocommerce-5/produktbilder-i-woocommerce-sa-gor-du-ratt-148",
                   "Originals of at least 1200 px recommended (third-party): delivered at 1200 "
                   "px. The 800 x 800 px minimum, JPEG/PNG/GIF and sRGB are conservative "
                   "choices, not found on the pages consulted."),
        )),
)}


def get_preset(name: str) -> Preset:
    """The preset called `name`; an unknown name is a usage error that lists the known ones."""
    try:
        return PRESETS[name]
    except KeyError:
        raise UsageError(f"Unknown preset {name!r}.",
                         hint=f"Use one of: {', '.join(PRESETS)}.") from None


def check_file(path: Path, preset: Preset) -> list[str]:
    """One line per rule of `preset` that the file at `path` breaks; empty when it passes.

    A file that is missing or is not an image is an InputError: there is nothing to check.
    """
    import warnings

    from PIL import Image, UnidentifiedImageError

    try:
        size = path.stat().st_size
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:  # reads the header, not the pixels
                problems = _pixel_problems(image.size, preset)
                problems += _format_problems(image.format, preset)
                if preset.srgb:
                    problems += _colour_problems(image)
                if preset.ai_label_required and not has_ai_label(image.info):
                    problems.append("no IPTC DigitalSourceType trainedAlgorithmicMedia label in "
                                    f"the XMP; {preset.shop} requires it on AI-made images")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file.", hint="Check the path.") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a folder.", hint="Give image files.") from None
    except UnidentifiedImageError:
        raise InputError(f"{path}: not an image that can be read.",
                         hint="Give a JPEG, PNG, WebP, TIFF or GIF file.") from None
    except Image.DecompressionBombError:
        raise InputError(f"{path}: too many pixels to open safely.",
                         hint="No shop takes an image this large: scale it down.") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read it ({exc.strerror or exc}).",
                         hint="Check the file's permissions.") from None
    if preset.max_bytes and size > preset.max_bytes:
        problems.append(f"{size:,} bytes; {preset.shop} takes at most {preset.max_bytes:,}")
    return problems


def _pixel_problems(size: tuple[int, int], preset: Preset) -> list[str]:
    width, height = size
    short, long = sorted(size)
    shown = f"{width}x{height} px"
    problems = []
    if short < preset.min_side:
        problems.append(f"too small: {shown}; {preset.shop} wants both sides at least "
                        f"{preset.min_side} px")
    if long < preset.min_long_side:
        problems.append(f"too small: {shown}; {preset.shop} wants the longest side at least "
                        f"{preset.min_long_side} px")
    if preset.max_side and long > preset.max_side:
        problems.append(f"too large: {shown}; {preset.shop} takes at most {preset.max_side} px "
                        "a side")
    if preset.max_pixels and width * height > preset.max_pixels:
        problems.append(f"too large: {width * height / 1e6:.1f} MP; {preset.shop} takes at "
                        f"most {preset.max_pixels / 1e6:g} MP")
    if preset.aspect and abs(width / height / preset.aspect - 1) > ASPECT_TOLERANCE:
        problems.append(f"aspect {width / height:.2f} ({shown}); {preset.shop} wants "
                        f"{_ratio(preset.aspect)}")
    return problems


def _format_problems(image_format: str | None, preset: Preset) -> list[str]:
    if image_format in preset.formats:
        return []
    return [f"{image_format or 'this format'} is not accepted; {preset.shop} takes "
            f"{', '.join(preset.formats)}"]


def _colour_problems(image) -> list[str]:
    """sRGB means an embedded sRGB profile (or PNG's sRGB chunk): untagged colours are a guess."""
    from PIL import ImageCms

    if image.mode == "CMYK":
        return ["CMYK colour; sRGB expected"]
    icc = image.info.get("icc_profile")
    if not icc:
        return [] if "srgb" in image.info else ["no ICC colour profile; sRGB expected"]
    try:
        description = ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(icc)))
    except (ImageCms.PyCMSError, OSError):
        return ["unreadable ICC colour profile; sRGB expected"]
    description = description.strip()
    if "srgb" not in description.lower():
        return [f"colour profile {description!r}, not sRGB"]
    return []


def has_ai_label(info: dict) -> bool:
    """Whether the XMP packet names an IPTC digital source type made with a trained model.

    Pillow puts the packet in info["xmp"] for JPEG, PNG (iTXt XML:com.adobe.xmp), WebP and
    TIFF; both `trainedAlgorithmicMedia` and `compositeWithTrainedAlgorithmicMedia` count.
    """
    packet = info.get("xmp") or info.get("XML:com.adobe.xmp") or b""
    if isinstance(packet, str):
        packet = packet.encode("utf-8")
    for match in _DIGITAL_SOURCE_TYPE.finditer(packet):
        value = match.group(1).decode("utf-8", "replace").strip()
        if _IPTC_SOURCE_TYPES in value and "trainedalgorithmicmedia" in value.lower():
            return True
    return False
