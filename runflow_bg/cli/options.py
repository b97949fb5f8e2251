"""Options shared by replace, batch and runs wait, and their resolution into plain values."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from runflow_bg.service.replace import ReplaceOptions

PROMPT = typer.Option(None, "-p", "--prompt", metavar="TEXT", help="Scene description (default: the model's).")
OUT = typer.Option(None, "-o", "--out", metavar="DIR",
                   help="Where results go (created if missing; default: current directory).")
NAME = typer.Option(None, "--name", metavar="TEMPLATE",
                    help="Output names: {stem} {scene} {n} {run} {ext} (default {stem}-bg{n}.{ext}).")
OVERWRITE = typer.Option(False, "--overwrite", help="Replace existing outputs.")
TIMEOUT = typer.Option(None, "--timeout", metavar="DURATION",
                       help="How long to wait (90s, 10m, 1h; default 10m).")
POLL_INTERVAL = typer.Option(None, "--poll-interval", metavar="DURATION",
                             help="Fixed poll interval instead of the adaptive one.")
CALLBACK_URL = typer.Option(None, "--callback-url", metavar="URL",
                            help="URL Runflow POSTs to when the run finishes.")
METADATA = typer.Option([], "--metadata", metavar="KEY=VALUE",
                        help="Metadata passed to the API. Repeatable.")
JSON = typer.Option(False, "--json", help="JSON on stdout, nothing else.")
SIGNED_URLS = typer.Option(False, "--signed-urls",
                           help="In --json, output URLs with their signatures (they grant "
                                "access to the files until they expire).")
DRY_RUN = typer.Option(False, "--dry-run", help="Validate and pack, show what would be sent; no network.")
LOCAL = typer.Option(False, "--local", help="Run against the built-in emulator: offline and free.")
NO_CACHE = typer.Option(False, "--no-cache", help="Submit even if an identical request "
                        "succeeded, and fetch URL inputs afresh.")
QUIET = typer.Option(False, "-q", "--quiet", help="Only errors on stderr.")
VERBOSE = typer.Option(False, "-v", "--verbose", help="More detail on stderr.")


FORMAT = typer.Option(None, "--format", metavar="keep|jpg|png|webp",
                      help="Format of the saved files (default keep: as Runflow sends it).")
QUALITY = typer.Option(None, "--quality", metavar="N", min=1, max=100,
                       help="JPEG/WebP quality, 1-100 (default 92).")
MAX_BYTES = typer.Option(None, "--max-bytes", metavar="SIZE",
                         help="Largest file allowed (500KB, 2MB): lower quality, then size.")
FILL = typer.Option(None, "--fill", metavar="COLOR", help="Colour under transparency for JPEG.")
SIZE = typer.Option(None, "--size", metavar="WxH", help="Exact size of the saved files, with --fit.")
MAX_SIDE = typer.Option(None, "--max-side", metavar="N", min=1,
                        help="Longest side at most N px (never enlarges).")
FIT = typer.Option(None, "--fit", metavar="contain|cover|pad",
                   help="How --size is met: fit inside, fill and crop, or pad (default contain).")
PAD_COLOR = typer.Option(None, "--pad-color", metavar="COLOR", help="Colour of --fit pad borders.")
PRESET = typer.Option(None, "--preset", metavar="NAME",
                      help="Deliver for a shop: amazon, shopify, etsy, ebay, google-merchant, "
                           "woocommerce (`runflow-bg presets` lists the rules).")
NO_AI_LABEL = typer.Option(False, "--no-ai-label",
                           help="Leave out the IPTC label marking the files as AI-generated.")
SIDECAR = typer.Option(False, "--sidecar", help="Write <file>.json next to each saved file.")
KEEP_PROFILE = typer.Option(False, "--keep-profile",
                            help="Send photos with their own colour profile, not converted to sRGB.")
STRICT_INPUTS = typer.Option(False, "--strict-inputs",
                             help="Refuse (exit 4) photos whose backdrop is not plain white, or "
                                  "photo and scene that look swapped, before anything is spent.")


DELIVERY_FLAGS = ("format", "quality", "max_bytes", "fill", "size", "max_side", "fit",
                  "pad_color", "preset", "no_ai_label", "sidecar")


def resolve_delivery(settings, terminal, flags: dict):
    """The delivery asked for: a preset's bundle, then each flag over it. `flags` is the
    command's parameters (its `locals()`), of which the delivery options are taken."""
    (format, quality, max_bytes, fill, size, max_side, fit, pad_color, preset, no_ai_label,
     sidecar) = (flags[name] for name in DELIVERY_FLAGS)
    from runflow_bg.delivery import Spec, parse_color, parse_size
    from runflow_bg.errors import UsageError
    from runflow_bg.outputs import Delivery

    options: dict = {}
    if preset is not None:
        from runflow_bg.presets import PRESETS

        if preset not in PRESETS:
            raise UsageError(f"Unknown --preset {preset!r}.",
                             hint=f"One of: {', '.join(sorted(PRESETS))}.")
        options.update(PRESETS[preset].delivery_options())
    try:
        if format is not None:
            if format not in ("keep", "jpg", "jpeg", "png", "webp"):
                raise ValueError(f"--format must be keep, jpg, png or webp, not {format!r}")
            options["format"] = "jpg" if format == "jpeg" else format
        if quality is not None:
            options["quality"] = quality
        if max_bytes is not None:
            options["max_bytes"] = parse_bytes(max_bytes)
        if fill is not None:
            parse_color(fill)
            options["fill"] = fill
        if size is not None:
            options["size"] = parse_size(size)
        if max_side is not None:
            options["max_side"] = max_side
        if fit is not None:
            if fit not in ("contain", "cover", "pad"):
                raise ValueError(f"--fit must be contain, cover or pad, not {fit!r}")
            options["fit"] = fit
        if pad_color is not None:
            parse_color(pad_color)
            options["pad_color"] = pad_color
    except ValueError as exc:
        raise UsageError(f"{exc}.", hint="See `runflow-bg replace --help`.") from None
    if no_ai_label:
        options["ai_label"] = False
        terminal.note("Warning: --no-ai-label: the files will not say they are AI-generated; "
                      "Google Merchant Center requires that label on such images.")
    return Delivery(spec=Spec(**options), sidecar=sidecar, preset=preset,
                    originals=settings.paths.cache_dir / "originals")


def parse_bytes(text: str) -> int:
    """`500KB`, `2MB`, `1.5MiB`, `800000` -> bytes."""
    units = {"": 1, "b": 1, "kb": 1000, "mb": 1000 ** 2, "kib": 1024, "mib": 1024 ** 2}
    value = text.strip().lower().replace(" ", "")
    number = value.rstrip("kmib")
    unit = value[len(number):]
    try:
        size = float(number) * units[unit]
    except (ValueError, KeyError):
        raise ValueError(f"--max-bytes must be a size such as 500KB or 2MB, not {text!r}") from None
    if size < 1:
        raise ValueError("--max-bytes must be at least one byte")
    return int(size)


def _duration(value: str | None, flag: str) -> float | None:
    from runflow_bg.durations import parse_duration
    from runflow_bg.errors import UsageError

    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise UsageError(f"Invalid {flag}: {exc}.") from None


def parse_metadata(items: list[str]) -> dict | None:
    from runflow_bg.errors import UsageError

    metadata = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"Invalid --metadata {item!r}; expected KEY=VALUE.")
        metadata[key.strip()] = value
    return metadata or None


def warn_if_file_like(terminal, out_dir: Path) -> None:
    """`-o photo.webp` for a folder that does not exist yet is likely a mistake: say so."""
    from runflow_bg.images import IMAGE_SUFFIXES

    if not out_dir.exists() and out_dir.suffix.lower() in IMAGE_SUFFIXES:
        terminal.note(f"Warning: -o {out_dir} names a folder to create, not an output file; "
                      "use --name to choose file names.")


def resolve_common(settings, *, out: Path | None, name: str | None, timeout: str | None,
                   poll_interval: str | None, metadata: list[str], callback_url: str | None,
                   prompt: str | None, overwrite: bool, wait: bool, use_cache: bool,
                   name_columns: frozenset[str] = frozenset()) -> ReplaceOptions:
    """Flags first, then the config file, then defaults (`settings` is the invocation's);
    `name_columns` are a manifest's columns, usable in --name."""
    from runflow_bg.errors import UsageError
    from runflow_bg.polling import PollSchedule
    from runflow_bg.service.replace import ReplaceOptions

    if callback_url and not callback_url.startswith(("https://", "http://")):
        raise UsageError("--callback-url must be an http(s) URL.")
    interval = _duration(poll_interval, "--poll-interval")
    if interval is not None and interval <= 0:
        raise UsageError("--poll-interval must be more than zero.")
    return ReplaceOptions(
        out_dir=settings.out_dir(out),
        prompt=prompt or None,
        name_template=settings.name_template(name, name_columns),
        overwrite=overwrite,
        wait=wait,
        timeout=_duration(settings.wait_timeout(timeout), "--timeout"),
        poll=PollSchedule(fixed=interval),
        callback_url=callback_url,
        metadata=parse_metadata(metadata),
        use_cache=use_cache,
    )
