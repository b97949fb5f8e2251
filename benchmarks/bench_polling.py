"""How late a run's end is noticed, and how many polls it costs (python benchmarks/bench_polling.py).

Simulated runs on a simulated clock (no sleeping), through the real `wait_for_run`, for:
- a back-off, runflow-bg's earlier default (0.25 s for 3 s, then x1.5 up to every 5 s);
- Runflow's JS SDK (a read at once, then one every 2 s);
- the adaptive schedule without history, and with the durations of the account's 50 previous runs.
Two spreads of run durations: independent runs uniform over 20-100 s (Runflow's typical range, as
if every run could take any of it), and one account's runs: a typical duration drawn from
20-100 s per account, each run within about 12 % of it, one in ten 10-40 s longer (a cold start).
Target for the adaptive schedule with history: at most 0.5 s late on average, with no more polls
per run than the SDK.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics

from runflow_bg.clock import Clock
from runflow_bg.models import Run
from runflow_bg.polling import PollSchedule, wait_for_run

HISTORY = 50
LATENESS_TARGET = 0.5


class SimulatedClock(Clock):
    def __init__(self) -> None:
        super().__init__()
        self.time = 0.0

    def now(self) -> float:
        return self.time

    def sleep(self, seconds: float) -> None:
        self.time += seconds


class BackOff:
    """runflow-bg's earlier default: 0.25 s for the first 3 s, then x1.5 each time, up to 5 s."""

    def __init__(self) -> None:
        self.previous: float | None = None

    def interval(self, waited: float) -> float:
        if self.previous is None or waited < 3.0:
            self.previous = 0.25
        else:
            self.previous = min(5.0, self.previous * 1.5)
        return self.previous


def wait(schedule, seconds: float) -> tuple[float, int]:
    """(lateness, polls) of waiting with `schedule` for a run that ends after `seconds`."""
    clock = SimulatedClock()
    polls = 0

    def get_run(run_id: str) -> Run:
        nonlocal polls
        polls += 1
        return Run(run_id, "succeeded" if clock.now() >= seconds else "running")

    wait_for_run(get_run, Run("r", "queued"), deadline=None, schedule=schedule, clock=clock)
    return clock.now() - seconds, polls


def sdk_wait(seconds: float) -> tuple[float, int]:
    """Runflow's JS SDK: a read at once, then one every 2 s until the run has ended."""
    reads = 1 + math.ceil(seconds / 2.0)
    return (reads - 1) * 2.0 - seconds, reads


def uniform_runs(rng: random.Random, accounts: int, runs: int) -> list[tuple[list, list]]:
    return [([rng.uniform(20, 100) for _ in range(HISTORY)], [rng.uniform(20, 100)
                                                              for _ in range(runs)])
            for _ in range(accounts)]


def account_runs(rng: random.Random, accounts: int, runs: int) -> list[tuple[list, list]]:
    def one(typical: float) -> float:
        seconds = typical * math.exp(rng.gauss(0, 0.12))
        return seconds + rng.uniform(10, 40) if rng.random() < 0.1 else seconds

    spreads = []
    for _ in range(accounts):
        typical = rng.uniform(20, 100)
        spreads.append(([one(typical) for _ in range(HISTORY)], [one(typical) for _ in range(runs)]))
    return spreads


def measure(spreads: list[tuple[list, list]]) -> dict[str, tuple[float, float, float]]:
    """Per schedule: mean lateness, 90th percentile of lateness, mean polls per run."""
    results: dict[str, list[tuple[float, int]]] = {
        "back-off (0.25 s, then x1.5 to 5 s)": [], "Runflow's SDK (every 2 s)": [],
        "adaptive, no history": [], f"adaptive, {HISTORY} runs of history": []}
    no_history = PollSchedule()
    for history, runs in spreads:
        learned = PollSchedule().learn(history)
        for seconds in runs:
            results["back-off (0.25 s, then x1.5 to 5 s)"].append(wait(BackOff(), seconds))
            results["Runflow's SDK (every 2 s)"].append(sdk_wait(seconds))
            results["adaptive, no history"].append(wait(no_history, seconds))
            results[f"adaptive, {HISTORY} runs of history"].append(wait(learned, seconds))
    summary = {}
    for label, pairs in results.items():
        late = sorted(lateness for lateness, _ in pairs)
        summary[label] = (statistics.mean(late), late[int(0.9 * len(late))],
                          statistics.mean(polls for _, polls in pairs))
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=100)
    parser.add_argument("--runs", type=int, default=20, help="runs per account")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    for title, spreads in (
            ("runs uniform over 20-100 s", uniform_runs(rng, args.accounts, args.runs)),
            ("one account's runs (typical 20-100 s, +-12 %, 1 in 10 a cold start)",
             account_runs(rng, args.accounts, args.runs))):
        print(f"{title}: {args.accounts * args.runs} runs")
        print(f"  {'schedule':<36} {'late, mean':>10} {'late, p90':>10} {'polls/run':>10}")
        for label, (mean, p90, polls) in measure(spreads).items():
            print(f"  {label:<36} {mean:>9.2f}s {p90:>9.2f}s {polls:>10.1f}")
    print(f"target: adaptive with history <= {LATENESS_TARGET} s late on average, "
          "polls/run <= the SDK's")


if __name__ == "__main__":
    main()
