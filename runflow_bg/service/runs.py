"""Runs submitted earlier: read and list them, wait for them, and save their outputs."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePath

from runflow_bg.client import RunflowClient
from runflow_bg.download import OutputNaming, SavedFile, download_outputs
from runflow_bg.durations import format_duration
from runflow_bg.errors import (AuthError, ExitCode, InputError, Interrupted, RunflowBgError,
                               UsageError, WaitTimeout)
from runflow_bg.journal import FAILED, SUCCEEDED, Entry, Journal
from runflow_bg.models import FAILURE_STATUSES, PENDING_STATUSES, SUCCESS_STATUSES, Run, RunState
from runflow_bg.naming import DEFAULT_TEMPLATE, existing_first_output
from runflow_bg.polling import PollSchedule, wait_for_run
from runflow_bg.progress import Reporter
from runflow_bg.service.inputs import check_output_dir
from runflow_bg.service.replace import run_failure

RUN_STATUSES = PENDING_STATUSES | SUCCESS_STATUSES | FAILURE_STATUSES
LIST_PAGE_SIZE = 100


@dataclass(frozen=True)
class FetchOptions:
    """How `runs wait` and `runs download` save outputs; plain values resolved by the CLI.

    `name_template` is the --name flag; without it a run keeps the template it was submitted
    with on this machine, else `default_template` applies.
    """

    out_dir: Path = Path(".")
    name_template: str | None = None
    default_template: str = DEFAULT_TEMPLATE
    overwrite: bool = False
    wait: bool = True
    timeout: float | None = 600.0
    poll: PollSchedule = PollSchedule()


@dataclass
class RunReport:
    """One run as far as this machine knows it; `to_json` is the spec's JSON shape."""

    run_id: str
    entry: Entry | None = None
    run: Run | None = None
    saved: list[SavedFile] = field(default_factory=list)
    error: RunflowBgError | None = None

    def to_json(self) -> dict:
        run, entry = self.run, self.entry
        return {
            "run_id": self.run_id,
            "status": run.status if run else None,
            "photo": entry.photo if entry else None,
            "scene": entry.scene if entry else None,
            "prompt": entry.prompt if entry else _prompt_of(run),
            "client_ref": (run.client_ref if run else None) or (entry.client_ref if entry else None),
            "outputs": self.outputs(),
            "duration_ms": run.duration_ms if run else None,
            "cost": run.cost if run else None,
            "cached": False,
            "skipped": False,
            "error": self.error.to_dict() if self.error else None,
        }

    def outputs(self) -> list[dict]:
        """Output URLs with the files they were saved to, now or by an earlier command."""
        if self.saved:
            return [{"url": saved.url, "path": str(saved.path)} for saved in self.saved]
        urls = self.run.output_urls if self.run else ()
        paths = self.entry.outputs if self.entry and self.entry.status == SUCCEEDED else ()
        return [{"url": url, "path": paths[i] if i < len(paths) else None}
                for i, url in enumerate(urls)]


def _prompt_of(run: Run | None) -> str | None:
    prompt = run.input.get("prompt") if run and run.input else None
    return prompt if isinstance(prompt, str) else None


def describe(client: RunflowClient, journal: Journal, run_id: str) -> RunReport:
    """One run as the API shows it now, with what this machine recorded about it."""
    run = client.get_run(run_id)
    report = RunReport(run.id, journal.by_run_id(run.id), run)
    if run.state is RunState.FAILED:
        report.error = run_failure(run)
    return report


def list_runs(client: RunflowClient, journal: Journal, *, limit: int,
              status: str | None = None) -> list[RunReport]:
    """The account's most recent runs, newest first, optionally of one status."""
    if status is not None and status not in RUN_STATUSES:
        raise UsageError(f"Unknown status {status!r}.",
                         hint=f"One of: {', '.join(sorted(RUN_STATUSES))}.")
    query = f"status_code:{status}" if status else None
    runs: list[Run] = []
    cursor = None
    while len(runs) < limit:
        page = client.list_runs(limit=min(LIST_PAGE_SIZE, limit), q=query, cursor=cursor)
        runs.extend(page.items)
        cursor = page.next_cursor
        if not cursor or not page.items:
            break
    return [RunReport(run.id, journal.by_run_id(run.id), run) for run in runs[:limit]]


def naming_for(run_id: str, entry: Entry | None, options: FetchOptions) -> OutputNaming:
    """Names as the request asked when this machine submitted the run; else {stem} is the run id."""
    template = (options.name_template or (entry.name_template if entry else None)
                or options.default_template)
    if entry is not None and entry.photo:
        stem, scene = _stem(entry.photo), _stem(entry.scene or "")
    else:
        stem, scene = run_id, ""
    return OutputNaming(options.out_dir, template, stem, scene, options.overwrite)


def _stem(name: str) -> str:
    return "stdin" if name == "-" else PurePath(name).stem


def fetch_runs(client: RunflowClient, journal: Journal, run_ids: list[str],
               options: FetchOptions, reporter: Reporter,
               clock: Callable[[], float] = time.monotonic) -> Iterator[RunReport]:
    """Wait for each run (or with `wait` off, require it finished) and save its outputs.

    Runs are handled in the order given and reported one by one; one run's failure does not
    stop the others, except a refused key, which would stop them all. --timeout is a single
    deadline shared by every run.
    """
    check_output_dir(options.out_dir)
    deadline = clock() + options.timeout if options.wait and options.timeout is not None else None
    run_ids = list(dict.fromkeys(run_ids))
    for index, run_id in enumerate(run_ids):
        report = RunReport(run_id, journal.by_run_id(run_id))
        try:
            _fetch(client, journal, report, options, reporter, deadline, clock)
        except KeyboardInterrupt:
            command = "wait" if options.wait else "download"
            raise Interrupted(
                f"Interrupted while handling run {run_id}; runs go on server-side.",
                hint=f"Pick them up with `runflow-bg runs {command} {' '.join(run_ids[index:])}`.",
                run_id=run_id) from None
        except RunflowBgError as exc:
            exc.run_id = exc.run_id or run_id
            report.error = exc
        yield report
        if isinstance(report.error, AuthError):
            return


def _fetch(client: RunflowClient, journal: Journal, report: RunReport, options: FetchOptions,
           reporter: Reporter, deadline: float | None, clock: Callable[[], float]) -> None:
    entry, run_id = report.entry, report.run_id
    naming = naming_for(run_id, entry, options)
    if not options.overwrite:
        existing = existing_first_output(naming.out_dir, naming.template, stem=naming.stem,
                                         scene=naming.scene, run_id=run_id)
        if existing is not None:
            raise InputError(f"{existing} already exists (run {run_id}).",
                             hint="Add --overwrite to replace it, or choose another --name or --out.")
    report.run = client.get_run(run_id)
    if options.wait:
        report.run = _wait(client, report, options, reporter, deadline, clock)
    elif not report.run.finished:
        raise InputError(f"Run {run_id} is still {report.run.status}: it has no outputs yet.",
                         hint=f"Wait for it and save its outputs with `runflow-bg runs wait {run_id}`.")
    run = report.run
    if run.state is RunState.FAILED:
        failure = run_failure(run)
        if entry is not None:
            journal.record_finish(entry.client_ref, FAILED, error=failure.message)
        raise failure
    report.saved = download_outputs(
        client, run, naming,
        on_bytes=lambda index, done, total: reporter.on_bytes("download", done, total))
    for saved in report.saved:
        reporter.on_saved(str(saved.path))
    if entry is not None:
        journal.record_finish(entry.client_ref, SUCCEEDED, [str(s.path) for s in report.saved])


def _wait(client: RunflowClient, report: RunReport, options: FetchOptions, reporter: Reporter,
          deadline: float | None, clock: Callable[[], float]) -> Run:
    def seen(run: Run, waited: float) -> None:
        report.run = run
        reporter.on_status(run, waited)

    timeout = None if deadline is None else max(0.0, deadline - clock())
    try:
        return wait_for_run(client.get_run, report.run, timeout=timeout, schedule=options.poll,
                            on_status=seen, sleep=client.sleep, clock=clock)
    except WaitTimeout:
        run = report.run
        raise WaitTimeout(
            f"Run {run.id} is still {run.status} after --timeout "
            f"{format_duration(options.timeout)}; it goes on server-side.",
            hint=f"Pick it up later with `runflow-bg runs wait {run.id}`.", run_id=run.id) from None


def exit_code(reports: list[RunReport]) -> int:
    """0 when every run was saved; else any other error's code first, then 6 (a run failed),
    then 7 (still running): the most serious problem wins."""
    codes = [report.error.exit_code for report in reports if report.error is not None]
    for code in codes:
        if code not in (ExitCode.RUN_FAILED, ExitCode.TIMEOUT):
            return int(code)
    if ExitCode.RUN_FAILED in codes:
        return int(ExitCode.RUN_FAILED)
    return int(ExitCode.TIMEOUT) if codes else int(ExitCode.OK)
