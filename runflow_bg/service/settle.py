"""Settling a submitted run: wait for it, turn a failure into an error, save its outputs, record it.

`replace`, `batch`, `runs wait` and `runs download` all end a run here, so the journal and the
files on disk agree whichever command finished the run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from runflow_bg.client import RunflowClient
from runflow_bg.download import OutputNaming, SavedFile, download_outputs
from runflow_bg.durations import format_duration
from runflow_bg.errors import InputError, Interrupted, RunFailed, RunflowBgError, WaitTimeout
from runflow_bg.journal import FAILED, SUCCEEDED, Journal
from runflow_bg.models import Run, RunState
from runflow_bg.polling import PollSchedule, StatusCallback, wait_for_run
from runflow_bg.progress import Reporter


@dataclass(frozen=True)
class Waiting:
    """Whether and how long to wait: `deadline` is on the client's clock, None for no limit."""

    wait: bool = True
    timeout: float | None = 600.0
    deadline: float | None = None
    poll: PollSchedule = PollSchedule()


def run_failure(run: Run) -> RunFailed:
    """The error a failed or canceled run stands for."""
    what = "was canceled" if run.canceled else "failed"
    reason = ": ".join(part for part in (run.failure_code, run.failure_message) if part)
    return RunFailed(f"Run {run.id} {what}{f' ({reason})' if reason else ''}.",
                     code=run.failure_code or run.status.upper(), run_id=run.id,
                     hint="It has no outputs; submitting the request again starts a new, paid run.")


LOG_LINES_SHOWN = 3


def last_log_lines(client: RunflowClient, run_id: str) -> tuple[str, ...]:
    """A failed run's last log lines, to show with its failure (nothing when they cannot be read)."""
    try:
        lines = client.run_logs(run_id, pages=3)
    except RunflowBgError:
        return ()
    return tuple(line.describe() for line in lines[-LOG_LINES_SHOWN:])


def settle(client: RunflowClient, journal: Journal, run: Run, naming: OutputNaming,
           reporter: Reporter, waiting: Waiting, on_status: StatusCallback | None = None,
           client_ref: str | None = None,
           on_ended: Callable[[Run], None] | None = None) -> tuple[Run, list[SavedFile]]:
    """Wait for the run (or require it finished), then save its outputs; the journal follows.

    A failed run is recorded as failed and raised as RunFailed; an interrupt leaves the run in
    flight and says how to pick it up. `client_ref`: the journal row of a run this process
    submitted (else it is looked up by the run's id). `on_ended` hears of the run once it has
    ended, before its outputs are downloaded.
    """
    if waiting.wait:
        schedule = waiting.poll
        if not schedule.learned:
            schedule = schedule.learn(journal.recent_run_seconds())
        run = _wait(client, run, reporter, waiting, on_status, schedule)
    elif not run.finished:
        raise InputError(f"Run {run.id} is still {run.status}: it has no outputs yet.",
                         hint=f"Wait for it and save its outputs with `runflow-bg runs wait {run.id}`.",
                         run_id=run.id)
    if on_ended is not None:
        on_ended(run)
    if client_ref is None:
        entry = journal.by_run_id(run.id)
        client_ref = entry.client_ref if entry is not None else None
    run_seconds = run.duration_ms / 1000 if run.duration_ms else None
    if run.state is RunState.FAILED:
        failure = run_failure(run)
        failure.log = last_log_lines(client, run.id)
        if client_ref is not None:
            journal.record_finish(client_ref, FAILED, error=failure.message,
                                  run_seconds=run_seconds)
        raise failure
    try:
        saved = download_outputs(
            client, run, naming,
            on_bytes=lambda index, done, total: reporter.on_bytes("download", done, total))
    except KeyboardInterrupt:
        raise Interrupted(f"Interrupted while downloading the outputs of run {run.id}.",
                          hint=f"Download them with `runflow-bg runs download {run.id}`.",
                          run_id=run.id) from None
    for item in saved:
        reporter.on_saved(str(item.path))
    if client_ref is not None:
        journal.record_finish(client_ref, SUCCEEDED, [str(s.path) for s in saved],
                              run_seconds=run_seconds)
    return run, saved


def _wait(client: RunflowClient, run: Run, reporter: Reporter, waiting: Waiting,
          on_status: StatusCallback | None, schedule: PollSchedule) -> Run:
    """Poll until the run ends, when `schedule` (taught how long recent runs took) says."""
    clock = client.clock
    deadline = waiting.deadline
    if deadline is None and waiting.timeout is not None:
        deadline = clock.now() + waiting.timeout
    latest = [run]

    def seen(current: Run, waited: float) -> None:
        latest[0] = current
        (on_status or reporter.on_status)(current, waited)

    try:
        return wait_for_run(lambda run_id: client.get_run(run_id, deadline=deadline), run,
                            deadline=deadline, schedule=schedule,
                            on_status=seen, clock=clock)
    except KeyboardInterrupt:
        raise Interrupted(f"Interrupted while waiting for run {run.id}; it goes on server-side.",
                          hint=f"Pick it up with `runflow-bg runs wait {run.id}`.",
                          run_id=run.id) from None
    except WaitTimeout:
        current = latest[0]
        limit = format_duration(waiting.timeout) if waiting.timeout is not None else "the limit"
        raise WaitTimeout(f"Run {run.id} is still {current.status} after --timeout {limit}; "
                          "it goes on server-side.",
                          hint=f"Pick it up later with `runflow-bg runs wait {run.id}`.",
                          run_id=run.id) from None
    except RunflowBgError as exc:
        exc.run_id = exc.run_id or run.id
        exc.hint = f"{exc.hint or ''} Pick the run up with `runflow-bg runs wait {run.id}`.".strip()
        raise
