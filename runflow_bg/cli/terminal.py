"""The one owner of stdout and stderr: data on stdout, messages and progress on stderr.

`Terminal` decides once per invocation between a live display (a rich spinner, transfer bars,
batch's progress bar) and plain lines: live only when stderr is a terminal and neither
`TERM=dumb`, `NO_COLOR` nor `CI` says otherwise. Every command writes through it, so this is
where text from outside (file names, what a server said) is made safe to print: the API key and
presigned query strings are scrubbed, control characters and undecodable bytes are escaped, and
no line can pass for a CI workflow command. A closed stdout is noticed here too.
"""

from __future__ import annotations

import errno
import json
import os
import re
import sys
import traceback
from collections.abc import Callable, Mapping
from typing import Any, TextIO

from runflow_bg.config import CI_ENV, NO_COLOR_ENV, TERM_ENV
from runflow_bg.durations import format_duration
from runflow_bg.errors import ExitCode, RunflowBgError
from runflow_bg.models import Run, RunState
from runflow_bg.progress import human_size

TRANSFER_BAR_MIN_BYTES = 1_000_000
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_SIGNED_QUERY = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s?#'\"<>]+)\?[^\s'\"<>]*")


def printable(text: str, secrets: tuple[str, ...] = (), *, line_start: bool = True) -> str:
    """Text from anywhere made safe for a terminal or a CI log.

    Secrets become ***, URLs lose their query strings (signatures), undecodable bytes and
    control characters (ESC, BEL, ...) are shown as escapes, and a line cannot begin with `::`,
    which GitHub Actions would read as a workflow command (`line_start` off: the text goes
    inside a command this tool writes, escaped there).
    """
    for secret in secrets:
        text = text.replace(secret, "***")
    text = _SIGNED_QUERY.sub(r"\1", text)
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    text = _CONTROL.sub(lambda match: f"\\x{ord(match.group()):02x}", text)
    if not line_start:
        return text
    return "\n".join("\\" + line if line.lstrip().startswith("::") else line
                     for line in text.split("\n"))


class Terminal:
    """stdout and stderr of one invocation, and how to show progress on them."""

    def __init__(self, environ: Mapping[str, str], stdout: TextIO | None = None,
                 stderr: TextIO | None = None) -> None:
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr
        self.live = (_isatty(self.stderr) and environ.get(TERM_ENV) != "dumb"
                     and NO_COLOR_ENV not in environ and not environ.get(CI_ENV))
        self.stdout_is_terminal = _isatty(self.stdout)
        self.quiet = False
        self.verbose = False
        self.stdout_closed = False
        self.secrets: tuple[str, ...] = ()
        self._on_stdout_closed: list[Callable[[], None]] = []
        self._console = None

    def hide(self, secret: str) -> None:
        """Never print `secret` (the API key), whoever hands it over: a server echoing it too.

        Strings too short to be a key are left alone: hiding them would garble every message.
        """
        if len(secret) >= 8 and secret not in self.secrets:
            self.secrets += (secret,)

    def when_stdout_closes(self, callback: Callable[[], None]) -> None:
        """Call `callback` once stdout is found closed (a reader such as `head` went away)."""
        self._on_stdout_closed.append(callback)

    def configure(self, *, quiet: bool = False, verbose: bool = False) -> Terminal:
        """A command's -q/-v: quiet keeps errors only, verbose adds the request log."""
        self.quiet, self.verbose = quiet, self.verbose or verbose
        return self

    @property
    def console(self):
        """The rich console on stderr, made when first needed (rich is slow to import)."""
        if self._console is None:
            from rich.console import Console

            self._console = Console(file=self.stderr, highlight=False,
                                    force_terminal=self.live, no_color=not self.live)
        return self._console

    # -- stdout: data only ---------------------------------------------------------------------

    def out(self, text: str) -> None:
        """Write data to stdout as is (the caller ends lines); file names keep their bytes."""
        if not text or self.stdout_closed:
            return
        for secret in self.secrets:
            text = text.replace(secret, "***")
        try:
            buffer = getattr(self.stdout, "buffer", None)
            if buffer is not None:
                self.stdout.flush()
                buffer.write(text.encode("utf-8", "surrogateescape"))
                buffer.flush()
            else:
                self.stdout.write(text)
                self.stdout.flush()
        except OSError as exc:
            if not isinstance(exc, BrokenPipeError) and exc.errno != errno.EPIPE:
                raise
            self._close_stdout()

    def _close_stdout(self) -> None:
        """The reader is gone: no more data, no traceback at exit, and whoever cares is told."""
        self.stdout_closed = True
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.stdout.fileno())
            os.close(devnull)
        except (OSError, ValueError, AttributeError):
            pass
        for callback in self._on_stdout_closed:
            callback()

    def out_lines(self, lines: list[str]) -> None:
        self.out("".join(f"{line}\n" for line in lines))

    def out_json(self, data: Any) -> None:
        self.out(json.dumps(data) + "\n")

    # -- stderr: people ------------------------------------------------------------------------

    def say(self, text: str) -> None:
        """A message for the person at the terminal; -q silences it."""
        if not self.quiet:
            self.note(text)

    def note(self, text: str) -> None:
        """A message that -q does not silence (warnings, confirmations of what was done)."""
        self.raw_note(printable(text, self.secrets))

    def raw_note(self, text: str) -> None:
        """A line written as it is: only for text this tool made safe itself (annotations)."""
        try:
            self.stderr.write(text + "\n")
            self.stderr.flush()
        except (OSError, ValueError):
            pass  # stderr is gone too: nothing is left to tell

    def notice(self, message: str) -> None:
        """Something the user should know while it happens (a retry), not an error."""
        if self.quiet:
            return
        if self.live:
            self.rich(f"! {message}", "yellow")
        else:
            self.note(f"note: {message}")

    def log(self, message: str) -> None:
        """A request-log line, shown with -v or --debug (above a live display, if one runs)."""
        if not self.verbose or self.quiet:
            return
        if self.live:
            self.console.print(printable(f"· {message}", self.secrets), style="dim",
                               markup=False, highlight=False)
        else:
            self.note(f"debug: {message}")

    def error(self, exc: BaseException, *, debug: bool = False) -> int:
        """Print `exc` for a person (traceback only with --debug); returns its exit code."""
        if debug:
            traceback.print_exception(exc, file=self.stderr)
        if isinstance(exc, RunflowBgError):
            lines = [f"Error: {exc.message}"]
            if exc.log:
                lines += ["  the run's last log lines:"] + [f"  | {line}" for line in exc.log]
            hint = exc.hint or ""
            if exc.request_id:
                hint = f"{hint} Request id: {exc.request_id}".strip()
            if hint:
                lines.append(f"Hint: {hint}")
            code = int(exc.exit_code)
        else:
            lines = [f"Error: internal error ({type(exc).__name__}).",
                     "Hint: run again with --debug for details, and report it if it persists."]
            code = int(ExitCode.INTERNAL)
        self.note("\n".join(lines))
        return code

    def rich(self, text: str, style: str | None = None) -> None:
        """A line on the live display's console, made safe like every other."""
        self.console.print(printable(text, self.secrets), style=style, markup=False,
                           highlight=False)

    def reporter(self) -> PlainReporter:
        """How a use case's progress is shown: live on a terminal, plain lines elsewhere."""
        return RichReporter(self) if self.live else PlainReporter(self)


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def finished_line(run: Run, elapsed: float) -> str:
    took = run.duration_ms / 1000 if run.duration_ms else elapsed
    if run.state is RunState.SUCCEEDED:
        cost = f", cost {run.cost}" if run.cost and run.cost.strip("0.") else ""
        return f"{run.status} in {format_duration(took)}{cost}"
    reason = ": ".join(p for p in (run.failure_code, run.failure_message) if p)
    return f"{run.status}{f' ({reason})' if reason else ''}"


class PlainReporter:
    """One line per state change, no control characters: for logs and CI."""

    def __init__(self, terminal: Terminal) -> None:
        self.terminal = terminal
        self._last = None

    def _line(self, text: str) -> None:
        if text == self._last:
            return
        self._last = text
        self.terminal.say(text)

    def on_stage(self, message: str) -> None:
        self._line(message)

    def on_notice(self, message: str) -> None:
        self._line(f"note: {message}")

    def on_status(self, run: Run, elapsed: float) -> None:
        status = finished_line(run, elapsed) if run.finished else run.status
        self._line(f"run {run.id} {status}")

    def on_bytes(self, label: str, done: int, total: int) -> None:
        pass

    def on_saved(self, path: str) -> None:
        self._line(f"saved {path}")

    def close(self) -> None:
        pass


class RichReporter(PlainReporter):
    """A spinner with the run id, status and elapsed time; bars for transfers over 1 MB."""

    def __init__(self, terminal: Terminal) -> None:
        super().__init__(terminal)
        self._progress = None
        self._run_task = None
        self._transfer_task = None

    def _ensure_progress(self):
        if self._progress is None:
            from rich.progress import (BarColumn, Progress, SpinnerColumn, TextColumn,
                                       TimeElapsedColumn)

            self._progress = Progress(
                SpinnerColumn(), TextColumn("{task.description}"), BarColumn(bar_width=24),
                TextColumn("{task.fields[detail]}"), TimeElapsedColumn(),
                console=self.terminal.console, transient=True)
            self._progress.start()
        return self._progress

    def _print(self, text: str, style: str | None = None) -> None:
        if not self.terminal.quiet:
            self.terminal.rich(text, style)

    def on_stage(self, message: str) -> None:
        self._print(f"✓ {message}")

    def on_notice(self, message: str) -> None:
        self._print(f"! {message}", style="yellow")

    def on_status(self, run: Run, elapsed: float) -> None:
        if self.terminal.quiet:
            return
        if run.finished:
            self._stop()
            mark = "✓" if run.state is RunState.SUCCEEDED else "✗"
            self._print(f"{mark} run {run.id} {finished_line(run, elapsed)}",
                        style=None if run.state is RunState.SUCCEEDED else "red")
            return
        progress = self._ensure_progress()
        description = f"run {run.id[:8]}… {run.status}"
        if self._run_task is None:
            self._run_task = progress.add_task(description, total=None, detail="")
        else:
            progress.update(self._run_task, description=description)

    def on_bytes(self, label: str, done: int, total: int) -> None:
        if self.terminal.quiet or total < TRANSFER_BAR_MIN_BYTES:
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
        if not self.terminal.stdout_is_terminal:
            self._print(f"✓ saved {path}")

    def _stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
            self._run_task = self._transfer_task = None

    def close(self) -> None:
        self._stop()
