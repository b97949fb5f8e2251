"""Measure runflow-bg's own costs and print them (run by hand: python benchmarks/bench_cli.py).

Figures, all from one run so that ratios compare like with like:
- start-up: the wall time of `runflow-bg --version`, `--help`, `replace --help` and of a
  completion request (bash, `runflow-bg replace --o<TAB>`), each / the wall time of
  `python -c "import typer"` (medians, interleaved);
- overhead of one `replace` whose run takes 2.0 s (wall time - 2.0 s): with `--local`, and
  against a separate `runflow-bg emulator` process named by RUNFLOW_BASE_URL.
Targets: start-up ratios <= 1.3; overhead <= 0.4 s.

The tool measured is the one installed next to this interpreter (`<venv>/bin/runflow-bg`), so
`other-venv/bin/python benchmarks/bench_cli.py` measures another checkout the same way.
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

RUN_SECONDS = 2.0
OUTPUT_FOLDERS = (f"out-{n}" for n in itertools.count())
START_UP_TARGET = 1.3
OVERHEAD_TARGET = 0.4


def wall_time(argv: list[str], env: dict, cwd: Path) -> float:
    started = time.perf_counter()
    subprocess.run(argv, env=env, cwd=cwd, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def make_inputs(folder: Path) -> None:
    photo = Image.new("RGB", (1200, 1600), "white")
    photo.paste((180, 40, 40), (300, 300, 900, 1400))
    photo.save(folder / "photo.png")
    Image.new("RGB", (2048, 1365), (60, 110, 150)).save(folder / "scene.jpg", quality=90)


def the_cli() -> list[str]:
    """The console script of this interpreter's environment (else the module)."""
    script = Path(sys.executable).parent / "runflow-bg"
    return [str(script)] if script.exists() else [sys.executable, "-m", "runflow_bg"]


def start_up(cli: list[str], env: dict, folder: Path, repeats: int) -> dict[str, float]:
    """Median wall times of the fast paths and of importing typer, interleaved."""
    completion = dict(env, _RUNFLOW_BG_COMPLETE="complete_bash",
                      COMP_WORDS="runflow-bg replace --o", COMP_CWORD="2")
    cases = {
        'python -c "import typer"': ([sys.executable, "-c", "import typer"], env),
        "runflow-bg --version": (cli + ["--version"], env),
        "runflow-bg --help": (cli + ["--help"], env),
        "runflow-bg replace --help": (cli + ["replace", "--help"], env),
        "completion (replace --o<TAB>)": (cli, completion),
    }
    times: dict[str, list[float]] = {label: [] for label in cases}
    for argv, case_env in cases.values():  # the first run of each caches its bytecode
        wall_time(argv, case_env, folder)
    for _ in range(repeats):
        for label, (argv, case_env) in cases.items():
            times[label].append(wall_time(argv, case_env, folder))
    return {label: statistics.median(values) for label, values in times.items()}


def replace_overheads(cli: list[str], env: dict, folder: Path, repeats: int,
                      options: tuple[str, ...] = ()) -> list[float]:
    """Wall time minus the run's own time, one `replace` after another (fresh output folders,
    --no-cache, so each one really submits and waits)."""
    argv = cli + ["replace", "photo.png", "scene.jpg", "-q", "--no-cache", *options]
    wall_time(argv + ["-o", next(OUTPUT_FOLDERS)], env, folder)  # warm the disk cache
    return [wall_time(argv + ["-o", next(OUTPUT_FOLDERS)], env, folder) - RUN_SECONDS
            for _ in range(repeats)]


def emulator_process(cli: list[str], env: dict) -> tuple[subprocess.Popen, dict]:
    """`runflow-bg emulator` in its own process, and the variables that point at it."""
    process = subprocess.Popen(cli + ["emulator", "--port", "0", "--run-seconds", str(RUN_SECONDS)],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               text=True)
    variables = {}
    while len(variables) < 2:
        name, _, value = process.stdout.readline().strip().partition("=")
        variables[name] = value
    return process, variables


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    cli = the_cli()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        make_inputs(folder)
        env = dict(os.environ, RUNFLOW_BG_HOME=str(folder / "home"), NO_COLOR="1",
                   RUNFLOW_BG_LOCAL_RUN_SECONDS=str(RUN_SECONDS))
        env.pop("RUNFLOW_API_KEY", None)
        env.pop("RUNFLOW_BASE_URL", None)
        env.pop("PYTHONDONTWRITEBYTECODE", None)  # as installed: modules load from cached bytecode
        startup = start_up(cli, env, folder, args.repeats * 3)
        local = replace_overheads(cli, env, folder, args.repeats, ("--local",))
        emulator, variables = emulator_process(cli, env)
        try:
            remote = replace_overheads(cli, dict(env, **variables), folder, args.repeats)
        finally:
            emulator.terminate()
            emulator.wait()
        shutil.rmtree(folder / "home", ignore_errors=True)

    print(f"measured: {' '.join(cli)}")
    label = 'python -c "import typer"'
    typer_wall = startup.pop(label)
    print(f"{label:<32} {typer_wall * 1000:6.1f} ms")
    for label, wall in startup.items():
        print(f"{label:<32} {wall * 1000:6.1f} ms, ratio {wall / typer_wall:.2f} "
              f"(target <= {START_UP_TARGET})")
    for label, overheads in (("replace --local", local), ("replace, emulator process", remote)):
        print(f"{label + ' overhead':<32} {statistics.median(overheads):6.3f} s median, "
              f"{min(overheads):.3f}-{max(overheads):.3f} s (runs take {RUN_SECONDS:.1f} s; "
              f"target <= {OVERHEAD_TARGET} s)")


if __name__ == "__main__":
    main()
