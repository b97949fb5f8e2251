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
NO_CACHE = typer.Option(False, "--no-cache", help="Submit even if an identical request succeeded.")
QUIET = typer.Option(False, "-q", "--quiet", help="Only errors on stderr.")
VERBOSE = typer.Option(False, "-v", "--verbose", help="More detail on stderr.")


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
                   prompt: str | None, overwrite: bool, wait: bool,
                   use_cache: bool) -> ReplaceOptions:
    """Flags first, then the config file, then defaults (`settings` is the invocation's)."""
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
        name_template=settings.name_template(name),
        overwrite=overwrite,
        wait=wait,
        timeout=_duration(settings.wait_timeout(timeout), "--timeout"),
        poll=PollSchedule(fixed=interval),
        callback_url=callback_url,
        metadata=parse_metadata(metadata),
        use_cache=use_cache,
    )
