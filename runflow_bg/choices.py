"""What was asked for, as command-line flags or Python keyword arguments, resolved into the
plain options the use cases take: the asked value first, then the config file, then defaults.

The command line and the Python API both come through here, so a value means the same thing and
is refused with the same message whichever way it was given.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING

from runflow_bg.errors import UsageError

if TYPE_CHECKING:
    from runflow_bg.config import Settings
    from runflow_bg.outputs import Delivery
    from runflow_bg.service.replace import ReplaceOptions

Duration = str | float | None  # "90s", "10m", or seconds


@dataclass(frozen=True)
class DeliveryChoice:
    """How the saved files should look (`--format`, `--preset`, ...); None leaves a value to the
    preset or the default."""

    format: str | None = None
    quality: int | None = None
    max_bytes: str | int | None = None  # "500KB", "2MB" or a number of bytes
    fill: str | None = None
    size: str | None = None  # "2000x2000"
    max_side: int | None = None
    fit: str | None = None
    pad_color: str | None = None
    preset: str | None = None
    ai_label: bool = True
    sidecar: bool = False

    @classmethod
    def from_flags(cls, flags: Mapping) -> DeliveryChoice:
        """From a command's parameters (its `locals()`); `--no-ai-label` turns the label off."""
        values = {f.name: flags[f.name] for f in fields(cls) if f.name in flags}
        values["ai_label"] = not flags.get("no_ai_label", False)
        return cls(**values)


def resolve_delivery(settings: Settings, choice: DeliveryChoice | None,
                     warn: Callable[[str], None]) -> Delivery:
    """The delivery asked for: a preset's bundle, then each value over it."""
    from runflow_bg.delivery import Spec, parse_color, parse_size
    from runflow_bg.outputs import Delivery

    choice = choice or DeliveryChoice()
    options: dict = {}
    if choice.preset is not None:
        from runflow_bg.presets import PRESETS

        if choice.preset not in PRESETS:
            raise UsageError(f"Unknown --preset {choice.preset!r}.",
                             hint=f"One of: {', '.join(sorted(PRESETS))}.")
        options.update(PRESETS[choice.preset].delivery_options())
    try:
        if choice.format is not None:
            if choice.format not in ("keep", "jpg", "jpeg", "png", "webp"):
                raise ValueError(f"--format must be keep, jpg, png or webp, not {choice.format!r}")
            options["format"] = "jpg" if choice.format == "jpeg" else choice.format
        if choice.quality is not None:
            if not 1 <= choice.quality <= 100:
                raise ValueError(f"--quality must be 1-100, not {choice.quality}")
            options["quality"] = choice.quality
        if choice.max_bytes is not None:
            options["max_bytes"] = parse_bytes(str(choice.max_bytes))
        if choice.fill is not None:
            parse_color(choice.fill)
            options["fill"] = choice.fill
        if choice.size is not None:
            options["size"] = parse_size(choice.size)
        if choice.max_side is not None:
            if choice.max_side < 1:
                raise ValueError(f"--max-side must be at least 1, not {choice.max_side}")
            options["max_side"] = choice.max_side
        if choice.fit is not None:
            if choice.fit not in ("contain", "cover", "pad"):
                raise ValueError(f"--fit must be contain, cover or pad, not {choice.fit!r}")
            options["fit"] = choice.fit
        if choice.pad_color is not None:
            parse_color(choice.pad_color)
            options["pad_color"] = choice.pad_color
    except ValueError as exc:
        raise UsageError(f"{exc}.", hint="See `runflow-bg replace --help`.") from None
    if not choice.ai_label:
        options["ai_label"] = False
        warn("Warning: --no-ai-label: the files will not say they are AI-generated; "
             "Google Merchant Center requires that label on such images.")
    return Delivery(spec=Spec(**options), sidecar=choice.sidecar, preset=choice.preset,
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


def seconds(value: Duration, flag: str) -> float | None:
    """A duration given as text (`90s`, `10m`) or as a number of seconds."""
    from runflow_bg.durations import parse_duration

    if value is None or isinstance(value, (int, float)):
        return None if value is None else float(value)
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise UsageError(f"Invalid {flag}: {exc}.") from None


def parse_metadata(items: Iterable[str] | Mapping[str, object] | None) -> dict | None:
    """`KEY=VALUE` items (or a mapping) as the run's metadata."""
    if isinstance(items, Mapping):
        return {str(key): str(value) for key, value in items.items()} or None
    metadata = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"Invalid --metadata {item!r}; expected KEY=VALUE.")
        metadata[key.strip()] = value
    return metadata or None


def is_file_like(out_dir: Path) -> bool:
    """`-o photo.webp` for a folder that does not exist yet is likely a mistake."""
    from runflow_bg.images import IMAGE_SUFFIXES

    return not out_dir.exists() and out_dir.suffix.lower() in IMAGE_SUFFIXES


def file_like_warning(out_dir: Path) -> str:
    return (f"Warning: -o {out_dir} names a folder to create, not an output file; "
            "use --name to choose file names.")


def resolve_request(settings: Settings, *, out: str | os.PathLike | None = None,
                    name: str | None = None, timeout: Duration = None,
                    poll_interval: Duration = None,
                    metadata: Iterable[str] | Mapping[str, object] | None = None,
                    callback_url: str | None = None, prompt: str | None = None,
                    overwrite: bool = False, wait: bool = True, use_cache: bool = True,
                    delivery: Delivery | None = None,
                    name_columns: frozenset[str] = frozenset()) -> ReplaceOptions:
    """How one request runs; `name_columns` are a manifest's columns, usable in the name."""
    from runflow_bg.polling import PollSchedule
    from runflow_bg.service.replace import ReplaceOptions

    if callback_url and not callback_url.startswith(("https://", "http://")):
        raise UsageError("--callback-url must be an http(s) URL.")
    interval = seconds(poll_interval, "--poll-interval")
    if interval is not None and interval <= 0:
        raise UsageError("--poll-interval must be more than zero.")
    return ReplaceOptions(
        out_dir=settings.out_dir(Path(out) if out is not None else None),
        prompt=prompt or None,
        name_template=settings.name_template(name, name_columns),
        overwrite=overwrite,
        wait=wait,
        timeout=seconds(timeout if timeout is not None else settings.wait_timeout(None),
                        "--timeout"),
        poll=PollSchedule(fixed=interval),
        callback_url=callback_url,
        metadata=parse_metadata(metadata),
        use_cache=use_cache,
        delivery=delivery,
    )
