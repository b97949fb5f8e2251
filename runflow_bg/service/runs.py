"""Runs submitted earlier: read and list them, wait for them, and save their outputs."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace as with_changes
from pathlib import Path, PurePath

from runflow_bg.client import RunflowClient
from runflow_bg.download import OutputNaming
from runflow_bg.errors import AuthError, ExitCode, InputError, Interrupted, RunflowBgError, UsageError
from runflow_bg.journal import SUCCEEDED, Entry, Journal
from runflow_bg.models import FAILURE_STATUSES, PENDING_STATUSES, SUCCESS_STATUSES, Run, RunState
from runflow_bg.naming import DEFAULT_TEMPLATE, existing_first_output
from runflow_bg.outputs import Delivery
from runflow_bg.polling import PollSchedule
from runflow_bg.progress import Reporter
from runflow_bg.service.inputs import check_output_dir
from runflow_bg.service.results import Outcome
from runflow_bg.service.settle import Waiting, run_failure, settle

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
    delivery: Delivery | None = None


def known_run(run_id: str, entry: Entry | None, run: Run | None = None) -> Outcome:
    """A run with what this machine recorded about it."""
    if entry is None:
        return Outcome(run=run, run_id=run_id)
    return Outcome(photo=entry.photo, scene=entry.scene, prompt=entry.prompt,
                   client_ref=entry.client_ref, run=run, run_id=run_id,
                   recorded=entry.outputs if entry.status == SUCCEEDED else ())


def describe(client: RunflowClient, journal: Journal, run_id: str) -> Outcome:
    """One run as the API shows it now, with what this machine recorded about it."""
    run = client.get_run(run_id)
    outcome = known_run(run.id, journal.by_run_id(run.id), run)
    if run.state is RunState.FAILED:
        outcome.error = run_failure(run)
    return outcome


def list_runs(client: RunflowClient, journal: Journal, *, limit: int,
              status: str | None = None) -> list[Outcome]:
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
    return [known_run(run.id, journal.by_run_id(run.id), run) for run in runs[:limit]]


def naming_for(run_id: str, entry: Entry | None, options: FetchOptions) -> OutputNaming:
    """Names as the request asked when this machine submitted the run; else {stem} is the run id."""
    template = (options.name_template or (entry.name_template if entry else None)
                or options.default_template)
    if entry is not None and entry.photo:
        stem, scene = _stem(entry.photo), _stem(entry.scene or "")
    else:
        stem, scene = run_id, ""
    delivery = options.delivery and with_changes(
        options.delivery, source_name=entry.photo if entry and entry.photo else "")
    return OutputNaming(options.out_dir, template, stem, scene, options.overwrite, delivery)


def _stem(name: str) -> str:
    return "stdin" if name == "-" else PurePath(name).stem


def fetch_runs(client: RunflowClient, journal: Journal, run_ids: list[str],
               options: FetchOptions, reporter: Reporter) -> Iterator[Outcome]:
    """Wait for each run (or with `wait` off, require it finished) and save its outputs.

    Runs are handled in the order given and reported one by one; one run's failure does not
    stop the others, except a refused key, which would stop them all. --timeout is a single
    deadline shared by every run.
    """
    check_output_dir(options.out_dir)
    deadline = None
    if options.wait and options.timeout is not None:
        deadline = client.clock.now() + options.timeout
    waiting = Waiting(wait=options.wait, timeout=options.timeout, deadline=deadline,
                      poll=options.poll)
    run_ids = list(dict.fromkeys(run_ids))
    for index, run_id in enumerate(run_ids):
        outcome = known_run(run_id, journal.by_run_id(run_id))
        try:
            _fetch(client, journal, outcome, options, waiting, reporter)
        except Interrupted as exc:
            command = "wait" if options.wait else "download"
            raise Interrupted(
                f"Interrupted while handling run {run_id}; runs go on server-side.",
                hint=f"Pick them up with `runflow-bg runs {command} {' '.join(run_ids[index:])}`.",
                run_id=run_id) from exc
        except RunflowBgError as exc:
            exc.run_id = exc.run_id or run_id
            outcome.error = exc
        yield outcome
        if isinstance(outcome.error, AuthError):
            return


def _fetch(client: RunflowClient, journal: Journal, outcome: Outcome, options: FetchOptions,
           waiting: Waiting, reporter: Reporter) -> None:
    run_id = outcome.run_id
    naming = naming_for(run_id, journal.by_run_id(run_id), options)
    if not options.overwrite:
        existing = existing_first_output(naming.out_dir, naming.template, stem=naming.stem,
                                         scene=naming.scene, run_id=run_id)
        if existing is not None:
            raise InputError(f"{existing} already exists (run {run_id}).",
                             hint="Add --overwrite to replace it, or choose another --name or --out.")
    try:
        outcome.run = client.get_run(run_id, deadline=waiting.deadline)
    except KeyboardInterrupt:
        raise Interrupted(f"Interrupted while reading run {run_id}.", run_id=run_id) from None

    def seen(run: Run, waited: float) -> None:
        outcome.run = run
        reporter.on_status(run, waited)

    outcome.run, outcome.saved = settle(client, journal, outcome.run, naming, reporter, waiting,
                                        on_status=seen)


def exit_code(outcomes: list[Outcome]) -> int:
    """0 when every run was saved; else any other error's code first, then 6 (a run failed),
    then 7 (still running): the most serious problem wins."""
    codes = [outcome.error.exit_code for outcome in outcomes if outcome.error is not None]
    for code in codes:
        if code not in (ExitCode.RUN_FAILED, ExitCode.TIMEOUT):
            return int(code)
    if ExitCode.RUN_FAILED in codes:
        return int(ExitCode.RUN_FAILED)
    return int(ExitCode.TIMEOUT) if codes else int(ExitCode.OK)
