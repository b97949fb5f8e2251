"""The reporter interface through which use cases tell the CLI what is happening."""

from __future__ import annotations

from typing import Protocol

from runflow_bg.models import Run


class Reporter(Protocol):
    """What a use case reports; the CLI renders it as a spinner or as plain lines."""

    def on_stage(self, message: str) -> None:
        """A step is done, e.g. `checked a.png (...)` or `uploaded inputs.zip (3.1 MB)`."""

    def on_notice(self, message: str) -> None:
        """Something the user should know that is not an error (a downscale, a cached result)."""

    def on_status(self, run: Run, elapsed: float) -> None:
        """A run was read with a new status."""

    def on_bytes(self, label: str, done: int, total: int) -> None:
        """A transfer progressed."""

    def on_saved(self, path: str) -> None:
        """An output file is in place."""


def human_size(size: int) -> str:
    """`3.1 MB`, `812 KB`, `12 B` (decimal units, as in the spec's examples)."""
    if size < 1000:
        return f"{size} B"
    for unit in ("KB", "MB", "GB"):
        size /= 1000
        if size < 1000 or unit == "GB":
            return f"{size:.1f} {unit}" if size < 100 else f"{size:.0f} {unit}"
    raise AssertionError("unreachable")
