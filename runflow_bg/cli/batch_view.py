"""How a batch looks: per-item lines or a live progress display, the summary, CI annotations."""

from __future__ import annotations

import threading
from decimal import Decimal

from runflow_bg.cli.terminal import PlainReporter, Terminal, printable
from runflow_bg.config import GITHUB_ACTIONS_ENV, GITHUB_STEP_SUMMARY_ENV
from runflow_bg.models import Run

SUMMARY_ROWS = ("succeeded", "failed", "skipped", "cached")


def _escape_annotation(text: str, *, property: bool = False) -> str:
    """GitHub's escaping for a workflow command's data (and, more strictly, its properties)."""
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return text.replace(":", "%3A").replace(",", "%2C") if property else text


class BatchView:
    """Renders item events from worker threads: plain lines off a terminal, a progress bar on one."""

    def __init__(self, terminal: Terminal, total: int, *, as_json: bool, github: bool) -> None:
        self.terminal = terminal
        self.total = total
        self.as_json = as_json
        self.lines = PlainReporter(terminal) if not terminal.live else None
        self.github = github
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(SUMMARY_ROWS, 0)
        self._progress = self._task = None
        if terminal.live and not terminal.quiet:
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn,
                                       TextColumn, TimeRemainingColumn)

            self._progress = Progress(SpinnerColumn(), BarColumn(bar_width=30), MofNCompleteColumn(),
                                      TextColumn("{task.description}"), TextColumn("ETA"),
                                      TimeRemainingColumn(), console=terminal.console,
                                      redirect_stdout=terminal.stdout_is_terminal)
            self._task = self._progress.add_task(self._describe(0), total=total)
        self.in_flight = lambda: 0

    def start(self) -> None:
        """Show the live display, once the lines before it (estimate, balance) are out."""
        if self._progress is not None:
            self._progress.start()

    def _describe(self, in_flight: int) -> str:
        counts = " · ".join(f"{name} {self._counts[name]}" for name in SUMMARY_ROWS)
        return f"{counts} · in flight {in_flight}"

    def _refresh(self) -> None:
        if self._progress is not None:
            self._progress.update(self._task, description=self._describe(self.in_flight()))

    # -- the Reporter interface, for the items' own steps ----------------------------------

    def on_stage(self, message: str) -> None:
        if self._progress is None and self.terminal.quiet:
            return  # steps show nowhere: no turn taken at the lock the workers share
        with self._lock:
            if self.lines:
                self.lines.on_stage(message)
            self._refresh()

    def on_notice(self, message: str) -> None:
        with self._lock:
            if self._progress is not None:
                self.terminal.rich(f"! {message}", "yellow")
            if self.lines:
                self.lines.on_notice(message)

    def on_status(self, run: Run, elapsed: float) -> None:
        self.on_stage(f"run {run.id} {run.status}")

    def on_bytes(self, label: str, done: int, total: int) -> None:
        pass

    def on_saved(self, path: str) -> None:
        with self._lock:
            if self.lines:
                self.lines.on_saved(path)

    # -- whole items -------------------------------------------------------------------------

    def on_outcome(self, data: dict) -> None:
        """An item is finished: count it, print its JSON line or saved paths, annotate failures."""
        with self._lock:
            state = ("failed" if data["error"] else "cached" if data["cached"]
                     else "skipped" if data["skipped"] else "succeeded")
            self._counts[state] += 1
            if self.as_json:
                self.terminal.out_json(data)
            elif state in ("succeeded", "cached"):
                self.terminal.out_lines([o["path"] for o in data["outputs"]])
            if state == "failed":
                message = data["error"]["message"]
                if self._progress is not None:
                    self.terminal.rich(f"✗ {data['photo']}: {message}", "red")
                if self.lines:
                    self.lines.on_stage(f"{data['photo']}: failed: {message}")
                for line in data["error"].get("log", ()):
                    self.terminal.say(f"{data['photo']}: | {line}")
                if self.github:
                    photo = printable(data["photo"], line_start=False)
                    message = printable(message, self.terminal.secrets, line_start=False)
                    self.terminal.raw_note(f"::error file={_escape_annotation(photo, property=True)}"
                                           f"::{_escape_annotation(message)}")
            elif state == "skipped" and self.lines:
                self.lines.on_stage(f"{data['photo']}: skipped")
            if self._progress is not None:
                self._progress.advance(self._task)
                self._refresh()

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def summary_rows(counts: dict[str, int], runs_created: int,
                 spent: Decimal | None) -> list[tuple[str, str]]:
    """The summary's rows; `spent` None for --local runs, which cost nothing."""
    rows = [(name, str(counts[name])) for name in SUMMARY_ROWS]
    rows.append(("runs created", str(runs_created) + (" (local, free)" if spent is None else "")))
    if spent is not None:
        rows.append(("money spent", f"${spent:.2f}"))
    return rows


def print_summary(terminal: Terminal, rows: list[tuple[str, str]]) -> None:
    if terminal.quiet:
        return
    if terminal.live:
        from rich.table import Table

        table = Table(title="batch summary", show_header=False)
        for name, value in rows:
            table.add_row(name, value)
        terminal.console.print(table)
        return
    width = max(len(name) for name, _ in rows)
    terminal.note("".join(f"{name:<{width}}  {value}\n" for name, value in rows).rstrip("\n"))


def append_step_summary(environ, rows: list[tuple[str, str]]) -> None:
    """In GitHub Actions, add the summary table to the job's summary page."""
    path = environ.get(GITHUB_STEP_SUMMARY_ENV)
    if environ.get(GITHUB_ACTIONS_ENV) != "true" or not path:
        return
    table = ["### runflow-bg batch", "", "| | |", "|---|---|"]
    table += [f"| {name} | {value} |" for name, value in rows]
    with open(path, "a", encoding="utf-8") as handle:
        handle.write("\n".join(table) + "\n\n")
