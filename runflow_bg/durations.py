"""Durations as people type them (`90s`, `10m`, `1h30m`) and as they like to read them."""

from __future__ import annotations

import math
import re

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Seconds in `text`: a bare number of seconds, or parts like 1h30m, 90s, 500ms."""
    value = text.strip().lower()
    try:
        seconds = float(value)
    except ValueError:
        parts = _PART.findall(value)
        if not parts or "".join(n + u for n, u in parts) != value:
            raise ValueError(f"invalid duration {text!r}; use forms like 90s, 10m, 1h") from None
        seconds = sum(float(number) * _UNITS[unit] for number, unit in parts)
    if seconds < 0 or not math.isfinite(seconds):
        raise ValueError(f"invalid duration {text!r}")
    return seconds


def format_duration(seconds: float) -> str:
    """`1m 02s`, `41.2 s`, `1h 03m` – short and unambiguous."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"
