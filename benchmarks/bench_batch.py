"""Measure batch throughput and print it (run by hand: python benchmarks/bench_batch.py).

Each figure comes from one run of the real CLI, as a process, against the built-in emulator
served by a process of its own (so that the emulator's work does not share the CLI's
interpreter), whose runs skip the compositor (`faults.quick_outputs`: one small WebP each), as
Runflow's own machines would do that work:

- latency: 40 photos at `-j 8`, runs that take 1.0 s. The ideal is the set-up, measured as the
  wall time of the same command with `--dry-run` (start-up, finding, reading and checking the
  photos, planning: all a batch does before its first request), plus ceil(40 / 8) x 1.0 s of
  runs, one wave after the other. Printed: the batch's wall time as a multiple of that ideal
  (target <= 1.2), and of the bare 5.0 s of runs.
- throughput: 1,000 small photos at `-j 64`, runs that take 0.2 s. Printed: items a second over
  the whole command (target >= 100), the CLI's CPU time an item, and the requests and TCP
  connections the emulator received per 1,000 items (a client that keeps its connections
  alive opens about as many as it has workers).
- with --loop, a shell loop of `runflow-bg replace` over the latency photos, for comparison.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

KEY = "rf_bench_key"

EMULATOR = """
import json, resource, sys
from runflow_bg.emulator import Emulator
emulator = Emulator(api_key=sys.argv[1], run_seconds=float(sys.argv[2]), balance="1000000.00")
emulator.faults.quick_outputs = True  # the client is measured here, not the compositor
emulator.start()
print(emulator.base_url, flush=True)
sys.stdin.read()  # until the benchmark closes it
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"connections": emulator.connections_accepted,
                  "requests": len(emulator.requests), "runs": emulator.created_run_count,
                  "emulator_cpu": usage.ru_utime + usage.ru_stime}), flush=True)
emulator.stop()
"""


class EmulatorProcess:
    """The emulator in a child process; `stop()` returns what it counted."""

    def __init__(self, run_seconds: float) -> None:
        self.process = subprocess.Popen([sys.executable, "-c", EMULATOR, KEY, str(run_seconds)],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.base_url = self.process.stdout.readline().strip()
        if not self.base_url.startswith("http"):
            self.process.kill()
            raise SystemExit(f"the emulator did not start: {self.base_url!r}")

    def stop(self) -> dict:
        self.process.stdin.close()
        counts = json.loads(self.process.stdout.readline())
        self.process.wait(timeout=30)
        return counts


def make_photos(folder: Path, count: int, size: tuple[int, int]) -> None:
    (folder / "photos").mkdir(parents=True)
    width, height = size
    for index in range(count):
        photo = Image.new("RGB", size, "white")
        colour = (30 + index % 40 * 5, 80 + index // 40 % 100, 160 - index % 40 * 2)
        photo.paste(colour, (width // 4, height // 4, width * 3 // 4, height * 5 // 6))
        photo.save(folder / "photos" / f"p{index:04d}.png")
    Image.new("RGB", (size[0] * 4 // 3, size[1] * 4 // 3), (70, 110, 150)).save(
        folder / "scene.jpg", quality=90)


def timed(argv: list[str], env: dict, cwd: Path) -> tuple[float, float]:
    """Wall time and CPU time (user + system) of one command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    wall = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"{' '.join(argv[-12:])} exited {done.returncode}:\n"
                         + "\n".join(done.stderr.splitlines()[-15:]))
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def batch_command(cli: list[str], jobs: int) -> list[str]:
    return cli + ["batch", "photos", "--scene", "scene.jpg", "-o", "out", "-j", str(jobs),
                  "--yes", "-q"]


def run_batch(cli: list[str], folder: Path, items: int, jobs: int, run_seconds: float,
              size: tuple[int, int]) -> dict:
    """Plan (--dry-run) then run one batch against a fresh emulator; the figures measured."""
    make_photos(folder, items, size)
    env = dict(os.environ, RUNFLOW_BG_HOME=str(folder / "home"), NO_COLOR="1",
               RUNFLOW_API_KEY=KEY)
    emulator = EmulatorProcess(run_seconds)
    env["RUNFLOW_BASE_URL"] = emulator.base_url
    try:
        setup, _ = timed(batch_command(cli, jobs) + ["--dry-run"], env, folder)
        wall, cpu = timed(batch_command(cli, jobs), env, folder)
    finally:
        counts = emulator.stop()
    saved = len(list((folder / "out").rglob("*-bg.webp")))
    if saved != items or counts["runs"] != items:
        raise SystemExit(f"expected {items} runs and outputs; got {counts['runs']} runs, "
                         f"{saved} outputs")
    return {"setup": setup, "wall": wall, "cpu": cpu, **counts}


def latency(cli: list[str], folder: Path, items: int, jobs: int, run_seconds: float) -> None:
    figures = run_batch(cli, folder, items, jobs, run_seconds, (800, 600))
    waves = math.ceil(items / jobs) * run_seconds
    ideal = figures["setup"] + waves
    print(f"latency: batch of {items} with -j {jobs}, runs of {run_seconds:g} s: "
          f"{figures['wall']:.2f} s = {figures['wall'] / ideal:.2f} x the ideal {ideal:.2f} s "
          f"(set-up {figures['setup']:.2f} s + {waves:g} s of runs; target <= 1.2); "
          f"{figures['wall'] / waves:.2f} x the runs alone")


def throughput(cli: list[str], folder: Path, items: int, jobs: int, run_seconds: float) -> None:
    figures = run_batch(cli, folder, items, jobs, run_seconds, (160, 120))
    per_thousand = 1000 / items
    print(f"throughput: {items} items with -j {jobs}, runs of {run_seconds:g} s: "
          f"{figures['wall']:.2f} s, {items / figures['wall']:.0f} items/s (target >= 100; "
          f"{items / (figures['wall'] - figures['setup']):.0f} after the set-up of "
          f"{figures['setup']:.2f} s); CLI CPU {figures['cpu'] * 1000 / items:.1f} ms an "
          f"item (the emulator's {figures['emulator_cpu'] * 1000 / items:.1f} ms); per 1,000 "
          f"items {figures['requests'] * per_thousand:.0f} requests over "
          f"{figures['connections'] * per_thousand:.0f} connections")


def shell_loop(cli: list[str], folder: Path, items: int) -> None:
    make_photos(folder, items, (800, 600))
    env = dict(os.environ, RUNFLOW_BG_HOME=str(folder / "home"), NO_COLOR="1",
               RUNFLOW_API_KEY=KEY)
    emulator = EmulatorProcess(1.0)
    env["RUNFLOW_BASE_URL"] = emulator.base_url
    loop = ('for p in photos/*.png; do "$@" replace "$p" scene.jpg -o loop -q --no-cache '
            '|| exit 1; done')
    try:
        wall, _ = timed(["bash", "-c", loop, "loop", *cli], env, folder)
    finally:
        emulator.stop()
    print(f"shell loop of runflow-bg replace over {items} photos: {wall:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("latency", "throughput"))
    parser.add_argument("--loop", action="store_true", help="also time a shell loop of replace")
    args = parser.parse_args()
    installed = shutil.which("runflow-bg")
    cli = [installed] if installed else [sys.executable, "-m", "runflow_bg"]
    with tempfile.TemporaryDirectory() as tmp:
        if args.only in (None, "latency"):
            latency(cli, Path(tmp) / "latency", 40, 8, 1.0)
        if args.only in (None, "throughput"):
            throughput(cli, Path(tmp) / "throughput", 1000, 64, 0.2)
        if args.loop:
            shell_loop(cli, Path(tmp) / "loop", 40)


if __name__ == "__main__":
    main()
