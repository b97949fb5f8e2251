"""What the benchmarks share: the CLI run as a process that reports its own peak memory.

The report comes from an exit handler, so it is made on every way out, the quick exit after a
clean finish included.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

PROBE = """
import atexit, resource, sys
atexit.register(lambda: print("PEAK_KB=%d" % resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                              file=sys.stderr, flush=True))
sys.argv = ["runflow-bg", *sys.argv[1:]]
from runflow_bg.cli.app import main
main()
"""


def run_measured(args: list[str], env: dict, cwd: Path | None = None
                 ) -> tuple[subprocess.CompletedProcess, float, float]:
    """`runflow-bg ARGS` as a process: what it did, its wall time in s and its peak RSS in MB."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", PROBE, *args], env=env, cwd=cwd,
                          capture_output=True, text=True)
    took = time.perf_counter() - started
    peaks = [line for line in done.stderr.splitlines() if line.startswith("PEAK_KB=")]
    peak = int(peaks[-1].removeprefix("PEAK_KB=")) / 1024 if peaks else float("nan")
    return done, took, peak
