"""Wait for a run to finish: poll seldom while it is unlikely to be done, often when it is.

Runs of Runflow's background-replace model take 20-100 s, seldom a few seconds, and one
account's runs take about as long each time. The default schedule uses that:

- Polls come at a rate of sqrt(h(t)) / k per second, where h(t) is the chance per second that
  a run still going after t seconds ends now: the next poll comes when that rate, summed since
  the last one, reaches 1. Where h changes slowly the wait is k / sqrt(h); for a given number
  of polls that spacing makes the end of a run least late on average (the lateness an interval
  risks grows with its square, the polls it costs only with its length), and the sum does not
  step over a sudden rise of h, such as runs that all take 2 s.
- h comes from a spread of run durations: those of the last runs the journal knows, each one
  smoothed (1/8 s at least), blended with a prior of typical runs
  (log-normal, median 55 s: one in 20 under 24 s, one in 20 over 125 s) that counts as 4 runs,
  so that it fades as history grows and still covers a run slower than all of them.
- k is set so that, over that spread, a run is expected to cost 0.95 times the polls of
  Runflow's SDK, which asks at once and then every 2 s.
- Each wait is 0.25 s at least and 10 s at most, and never more than 1.25 times the time
  waited so far (0.25 s at first): a run that ends unusually early is still seen soon (a 1 s
  run with no history by 1.27 s), for about one poll more in a run's first 10 s.
- A batch goes on learning from its own runs as they end (service/batch.py), so its later
  waves are polled as their runs end.

A fixed interval (`--poll-interval`) replaces all this. `benchmarks/bench_polling.py` measures
the lateness and the polls per run of each schedule.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from functools import cached_property, lru_cache

from runflow_bg.clock import Clock
from runflow_bg.errors import WaitTimeout
from runflow_bg.models import Run

StatusCallback = Callable[[Run, float], None]
"""Called with the run as last read and the seconds waited so far."""

PRIOR_MEDIAN = 55.0  # seconds
PRIOR_SPREAD = 0.5  # standard deviation of the log of a duration
PRIOR_RUNS = 4.0  # how many runs of history the prior weighs as
SHORTEST, LONGEST, FIRST = 0.25, 10.0, 0.25  # seconds between polls
GROWTH = 1.25  # a wait is at most this many times the time waited so far
SDK_INTERVAL = 2.0
SHARE_OF_SDK_POLLS = 0.95
_GRID = tuple(0.25 * 1.02 ** i for i in range(470))  # 0.25 s to about 3000 s, 2 % apart
_ENDED = 0.001  # past the time all but this share of runs have ended, polls follow the bounds


@dataclass(frozen=True)
class Durations:
    """How long runs take: log-normal prior blended with the smoothed durations of past runs."""

    history: tuple[float, ...] = ()

    @cached_property
    def _parts(self) -> list[tuple[float, float, float]]:
        """(weight, log of the median, spread) of each log-normal part."""
        past = [seconds for seconds in self.history if seconds > 0]
        prior_weight = PRIOR_RUNS / (PRIOR_RUNS + len(past))
        parts = [(prior_weight, math.log(PRIOR_MEDIAN), PRIOR_SPREAD)]
        if past:
            logs = [math.log(seconds) for seconds in past]
            mean = sum(logs) / len(logs)
            spread = math.sqrt(sum((x - mean) ** 2 for x in logs) / len(logs))
            width = max(0.04, 1.06 * spread * len(logs) ** -0.2)  # Silverman's rule, 4 % at least
            # Centred a moment later and 1/8 s wide at least: a wait starts just after the run's
            # clock does, and polls 0.25 s apart cannot tell finer times apart.
            parts += [((1 - prior_weight) / len(past), math.log(seconds + SHORTEST / 4),
                       max(width, SHORTEST / (2 * seconds))) for seconds in past]
        return parts

    def at(self, t: float) -> tuple[float, float]:
        """The chance that a run takes longer than t seconds, and the chance per second that it
        ends at t."""
        log_t = math.log(t)
        survival = density = 0.0
        for weight, mu, spread in self._parts:
            z = (log_t - mu) / spread
            survival += weight * 0.5 * math.erfc(z / math.sqrt(2))
            density += weight * math.exp(-0.5 * z * z) / (spread * t * math.sqrt(2 * math.pi))
        return survival, density

    def mean(self) -> float:
        return sum(w * math.exp(mu + s * s / 2) for w, mu, s in self._parts)


def _bounded(last: float) -> float:
    """The longest wait after a poll at `last`: 0.25 s at first, then GROWTH times the time
    waited, 10 s at most."""
    return min(LONGEST, max(FIRST, GROWTH * last))


@dataclass(frozen=True)
class PollSchedule:
    """When to poll: fixed, or adaptive from the durations of past runs (see the module's text)."""

    fixed: float | None = None
    history: tuple[float, ...] = ()
    learned: bool = False  # `history` was read: a batch reads it once for all its runs

    def learn(self, durations: Iterable[float]) -> PollSchedule:
        """This schedule, using the durations (in seconds) of this account's recent runs."""
        if self.fixed is not None:
            return self
        return replace(self, history=tuple(durations), learned=True)

    def interval(self, waited: float) -> float:
        """Seconds to wait before the next poll, `waited` seconds into the wait."""
        if self.fixed is not None:
            return self.fixed
        times = self._times
        following = bisect.bisect_right(times, waited)
        if following == len(times):
            return _bounded(waited)
        return max(SHORTEST, times[following] - waited)

    @property
    def _times(self) -> tuple[float, ...]:
        return _poll_times(self.history)


@lru_cache(maxsize=16)  # tens of ms each: computed once per history, not once per run
def _poll_times(history: tuple[float, ...]) -> tuple[float, ...]:
    """The poll times (seconds into the wait) until nearly every run has ended, at the k
    that spends the polls allowed: found by halving, as polls fall when k grows."""
    spread = Durations(history)
    grid, survival, rate = [], [], []
    for t in _GRID:
        going, ending = spread.at(t)
        grid.append(t)
        survival.append(going)
        rate.append(math.sqrt(ending / max(going, 1e-12)))  # sqrt of the hazard
        if going < _ENDED:
            break
    allowed = SHARE_OF_SDK_POLLS * (spread.mean() / SDK_INTERVAL + 1.5)
    low, high = -12.0, 12.0  # log of k
    for _ in range(20):
        middle = (low + high) / 2
        times = _place(grid, rate, math.exp(middle))
        expected = 1 + sum(_interpolate(grid, survival, t) for t in times[:-1])
        if expected > allowed:
            low = middle
        else:
            high = middle
    return tuple(_place(grid, rate, math.exp(high)))


def _place(grid: list[float], rate: list[float], scale: float) -> list[float]:
    """Poll times on `grid`: the next poll comes when sqrt(hazard) / k, summed over the time
    since the last one, reaches 1, or when the bounds say, whichever is first."""
    times: list[float] = []
    last, index = 0.0, 0
    while index + 1 < len(grid):
        limit, credit, poll = last + _bounded(last), 0.0, None
        while index + 1 < len(grid):
            start, end = max(grid[index], last), grid[index + 1]
            step = (rate[index] + rate[index + 1]) / (2 * scale)  # polls per second here
            if credit + step * (end - start) >= 1:
                poll = start + (1 - credit) / step
                break
            if end >= limit:
                poll = limit
                break
            credit += step * (end - start)
            index += 1
        if poll is None:
            break
        last = min(max(poll, last + SHORTEST), limit)
        times.append(last)
        while index + 1 < len(grid) and grid[index + 1] <= last:
            index += 1
    return times


def _interpolate(grid: list[float], values: list[float], t: float) -> float:
    index = bisect.bisect_right(grid, t)
    if index == 0:
        return values[0] if t > 0 else 1.0
    if index == len(grid):
        return values[-1]
    a, b = grid[index - 1], grid[index]
    return values[index - 1] + (values[index] - values[index - 1]) * (t - a) / (b - a)


def wait_for_run(get_run: Callable[[str], Run], run: Run, *, deadline: float | None,
                 schedule: PollSchedule, clock: Clock,
                 on_status: StatusCallback | None = None) -> Run:
    """Poll until the run is finished; WaitTimeout (exit 7) when `deadline` passes first."""
    started = clock.now()
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
        poll_at = now + schedule.interval(now - started)  # the first call works it out
        if deadline is not None:
            poll_at = min(poll_at, max(now, deadline))
        clock.sleep(max(0.0, poll_at - clock.now()))
        run = get_run(run.id)
