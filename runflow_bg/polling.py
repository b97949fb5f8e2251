"""Wait for a run to finish: quick polls at first, then slower, up to every 5 s."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from runflow_bg.clock import Clock
from runflow_bg.errors import WaitTimeout
from runflow_bg.models import Run

StatusCallback = Callable[[Run, float], None]
"""Called with the run as last read and the seconds waited so far."""


@dataclass(frozen=True)
class PollSchedule:
    """Adaptive intervals (0.25 s for the first seconds, then x1.5 up to 5 s) or a fixed one.

    A run that finishes early is noticed within about half a second; a long run costs a
    request every 5 s at most.
    """

    fixed: float | None = None
    first: float = 0.25
    quick_for: float = 3.0
    growth: float = 1.5
    ceiling: float = 5.0

    def interval(self, previous: float | None, waited: float) -> float:
        if self.fixed is not None:
            return self.fixed
        if previous is None or waited < self.quick_for:
            return self.first
        return min(self.ceiling, previous * self.growth)


def wait_for_run(get_run: Callable[[str], Run], run: Run, *, deadline: float | None,
                 schedule: PollSchedule, clock: Clock,
                 on_status: StatusCallback | None = None) -> Run:
    """Poll until the run is finished; WaitTimeout (exit 7) when `deadline` passes first."""
    started = clock.now()
    interval = None
    last_status = None
    while True:
        now = clock.now()
        if run.status != last_status and on_status:
            on_status(run, now - started)
        last_status = run.status
        if run.finished:
            return run
        if deadline is not None and now >= deadline:
            raise WaitTimeout(f"Run {run.id} is still {run.status}; it goes on server-side.",
                              hint=f"Pick it up later with `runflow-bg runs wait {run.id}`.",
                              run_id=run.id)
        interval = schedule.interval(interval, now - started)
        if deadline is not None:
            interval = min(interval, max(0.0, deadline - now))
        clock.sleep(interval)
        run = get_run(run.id)
