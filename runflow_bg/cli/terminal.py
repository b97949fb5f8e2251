"""Progress on stderr: a rich spinner and transfer bars on a terminal, plain lines elsewhere."""

from __future__ import annotations

import os
import sys
from typing import TextIO

from runflow_bg.durations import format_duration
from runflow_bg.models import Run, RunState
from runflow_bg.progress import human_size

TRANSFER_BAR_MIN_BYTES = 1_000_000


def _finished_line(run: Run, elapsed: float) -> str:
    took = run.duration_ms / 1000 if run.duration_ms else elapsed
    if run.state is RunState.SUCCEEDED:
        cost = f", cost {run.cost}" if run.cost else ""
        return f"{run.status} in {format_duration(took)}{cost}"
    reason = ": ".join(p for p in (run.failure_code, run.failure_message) if p)
    return f"{run.status}{f' ({reason})' if reason else ''}"


class PlainReporter:
    """One line per state change, no control characters: for logs and CI."""

    def __init__(self, stream: TextIO | None = None, *, quiet: bool = False,
                 verbose: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.verbose = verbose
        self._last = None

    def _line(self, text: str) -> None:
        if self.quiet or text == self._last:
            return
        self._last = text
        self.stream.write(text + "\n")
        self.stream.flush()

    def on_stage(self, message: str) -> None:
        self._line(message)

    def on_notice(self, message: str) -> None:
        self._line(f"note: {message}")

    def on_status(self, run: Run, elapsed: float) -> None:
        status = _finished_line(run, elapsed) if run.finished else run.status
        self._line(f"run {run.id} {status}")

    def on_bytes(self, label: str, done: int, total: int) -> None:
        pass

    def on_saved(self, path: str) -> None:
        self._line(f"saved {path}")

    def on_log(self, message: str) -> None:
        if self.verbose:
            self._line(f"debug: {message}")

    def close(self) -> None:
        pass


class RichReporter(PlainReporter):
    """A spinner with the run id, status and elapsed time; bars for transfers over 1 MB."""

    def __init__(self, *, quiet: bool = False, verbose: bool = False) -> None:
        super().__init__(sys.stderr, quiet=quiet, verbose=verbose)
        from rich.console import Console

        self.console = Console(stderr=True, highlight=False)
        self._progress = None
        self._run_task = None
        self._transfer_task = None
        self._stdout_is_terminal = sys.stdout.isatty()

    def _ensure_progress(self):
        if self._progress is None:
            from rich.progress import (BarColumn, Progress, SpinnerColumn, TextColumn,
                                       TimeElapsedColumn)

            self._progress = Progress(
                SpinnerColumn(), TextColumn("{task.description}"), BarColumn(bar_width=24),
                TextColumn("{task.fields[detail]}"), TimeElapsedColumn(),
                console=self.console, transient=True)
            self._progress.start()
        return self._progress

    def _print(self, text: str, style: str | None = None) -> None:
        if not self.quiet:
            self.console.print(text, style=style, markup=False, highlight=False)

    def on_stage(self, message: str) -> None:
        self._print(f"✓ {message}")

    def on_notice(self, message: str) -> None:
        self._print(f"! {message}", style="yellow")

    def on_status(self, run: Run, elapsed: float) -> None:
        if self.quiet:
            return
        if run.finished:
            self._stop()
            mark = "✓" if run.state is RunState.SUCCEEDED else "✗"
            self._print(f"{mark} run {run.id} {_finished_line(run, elapsed)}",
                        style=None if run.state is RunState.SUCCEEDED else "red")
            return
        progress = self._ensure_progress()
        description = f"run {run.id[:8]}… {run.status}"
        if self._run_task is None:
            self._run_task = progress.add_task(description, total=None, detail="")
        else:
            progress.update(self._run_task, description=description)

    def on_bytes(self, label: str, done: int, total: int) -> None:
        if self.quiet or total < TRANSFER_BAR_MIN_BYTES:
            return
        progress = self._ensure_progress()
        detail = f"{human_size(done)} / {human_size(total)}"
        if self._transfer_task is None:
            self._transfer_task = progress.add_task(label, total=total, detail=detail)
        progress.update(self._transfer_task, completed=done, description=label, detail=detail)
        if done >= total:
            progress.remove_task(self._transfer_task)
            self._transfer_task = None

    def on_saved(self, path: str) -> None:
        if not self._stdout_is_terminal:
            self._print(f"✓ saved {path}")

    def on_log(self, message: str) -> None:
        if self.verbose:
            self._print(f"· {message}", style="dim")

    def _stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
            self._run_task = self._transfer_task = None

    def close(self) -> None:
        self._stop()


def make_reporter(*, quiet: bool = False, verbose: bool = False) -> PlainReporter:
    """A rich reporter on an interactive stderr (unless NO_COLOR or TERM=dumb), else plain."""
    interactive = sys.stderr.isatty() and os.environ.get("TERM") != "dumb"
    if interactive and "NO_COLOR" not in os.environ:
        return RichReporter(quiet=quiet, verbose=verbose)
    return PlainReporter(quiet=quiet, verbose=verbose)
